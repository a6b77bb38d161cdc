//! Loaded certificates by id, kept across snapshot builds, and how missing ones are
//! fetched from the serving source and parsed, in parallel.

use certbind_core::serving::ServingSource;
use certbind_core::CertId;
use rustls::crypto::CryptoProvider;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::certset::{CertSet, LoadedCert};
use crate::error::CertLoadError;
use crate::snapshot::Snapshot;

/// How many certificates [`CertCache::fetch_missing`] asks the source for at once: at
/// least the minimum (one call for a small set), at most the maximum (bounded memory in
/// flight, and chunks enough for the workers to overlap).
const FETCH_CHUNK_MIN: usize = 256;
const FETCH_CHUNK_MAX: usize = 4096;

/// Loaded certificates by id, kept across builds: certificates never change once stored,
/// so each is fetched and its key parsed once, however many listeners or revisions use it.
pub(crate) struct CertCache {
    provider: Arc<CryptoProvider>,
    pub(crate) loaded: HashMap<CertId, Arc<LoadedCert>>,
    /// How many certificates stayed after the last [`CertCache::retain_served`].
    served_at_last_retain: usize,
}

impl CertCache {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> CertCache {
        CertCache { provider, loaded: HashMap::new(), served_at_last_retain: 0 }
    }

    /// Loads the ids not cached yet; returns why each id that is still missing failed.
    /// Failures are not cached: the next build retries them.
    ///
    /// Reading and decrypting (the source) and parsing keys are both CPU work and 100k
    /// certificates at start take a while: the ids are split into chunks, and one worker
    /// per core takes chunk after chunk, asking the source for it and parsing its keys,
    /// so that one worker's fetch overlaps another's parsing and no core waits for a
    /// whole phase to finish. A small set is one chunk and one call, on this thread.
    pub(crate) fn fetch_missing(
        &mut self,
        ids: &HashSet<CertId>,
        source: &dyn ServingSource,
    ) -> HashMap<CertId, CertLoadError> {
        let mut missing: Vec<CertId> = ids.iter().filter(|id| !self.loaded.contains_key(id)).copied().collect();
        let mut failures = HashMap::new();
        if missing.is_empty() {
            return failures;
        }
        missing.sort_unstable();
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let chunk = missing.len().div_ceil(threads).clamp(FETCH_CHUNK_MIN, FETCH_CHUNK_MAX);
        let chunks: Vec<&[CertId]> = missing.chunks(chunk).collect();
        let next = AtomicUsize::new(0);
        let provider = self.provider.as_ref();
        let work = || {
            let mut out = Vec::new();
            while let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
                load_chunk(chunk, ids, source, provider, &mut out);
            }
            out
        };
        let results = if chunks.len() == 1 || threads == 1 {
            work()
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads.min(chunks.len())).map(|_| scope.spawn(work)).collect();
                let joined =
                    workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
                joined.flatten().collect::<Vec<_>>()
            })
        };
        self.loaded.reserve(results.len());
        for (id, result) in results {
            match result {
                Ok(cert) => {
                    self.loaded.insert(id, cert);
                }
                Err(error) => {
                    failures.insert(id, error);
                }
            }
        }
        for id in missing {
            if !self.loaded.contains_key(&id) {
                failures.entry(id).or_insert(CertLoadError::Missing);
            }
        }
        failures
    }

    /// Drops certificates no listener serves any more.
    pub(crate) fn retain_served(&mut self, snapshot: &Snapshot) {
        let mut sets_seen: HashSet<*const CertSet> = HashSet::new();
        let mut served: HashSet<CertId> = HashSet::with_capacity(self.loaded.len());
        for set in snapshot.listeners.values().filter_map(|view| view.certs.as_ref()) {
            // Listeners sharing one set: read it once.
            if sets_seen.insert(Arc::as_ptr(set)) {
                served.extend(set.certs().map(|c| c.id));
            }
        }
        self.loaded.retain(|id, _| served.contains(id));
        self.served_at_last_retain = self.loaded.len();
    }

    /// [`CertCache::retain_served`], once the cache has grown well past what was served at
    /// the last pass: a change to one of 100,000 certificates must not cost a pass over
    /// all of them, and the cache stays within twice what is served.
    pub(crate) fn retain_served_if_grown(&mut self, snapshot: &Snapshot) {
        if self.loaded.len() > 2 * self.served_at_last_retain + RETAIN_SLACK {
            self.retain_served(snapshot);
        }
    }
}

/// How many certificates the cache may gain beyond twice what it served at the last pass
/// before it looks for unserved ones again.
const RETAIN_SLACK: usize = 1024;

/// Fetches one chunk of ids from the source and parses the keys of those among `ids`,
/// appending each outcome to `out`.
fn load_chunk(
    chunk: &[CertId],
    ids: &HashSet<CertId>,
    source: &dyn ServingSource,
    provider: &CryptoProvider,
    out: &mut Vec<(CertId, Result<Arc<LoadedCert>, CertLoadError>)>,
) {
    match source.cert_material(chunk) {
        Ok(materials) => out.extend(materials.iter().filter_map(|material| {
            match material {
                Ok(material) => ids
                    .contains(&material.id)
                    .then(|| (material.id, LoadedCert::from_material(material, provider).map(Arc::new))),
                Err(error) => Some((error.id, Err(CertLoadError::Source(error.reason.clone())))),
            }
        })),
        Err(reason) => {
            let error = CertLoadError::Source(reason);
            out.extend(chunk.iter().map(|id| (*id, Err(error.clone()))));
        }
    }
}
