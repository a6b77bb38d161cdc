//! The immutable serving snapshot and how it is built from the control plane's state.
//!
//! Build the candidate completely, then publish it with one atomic swap (linkerd, Sozu).
//! A listener whose certificates cannot be built at this revision keeps the certificate
//! set it served before (GUIDE rule 6: never without a certificate; rule 3: old binding
//! or new, never half) and carries the error, so status APIs and metrics report it.

use certbind_core::model::Protocol;
use certbind_core::serving::{ServingListener, ServingSource, ServingState};
use certbind_core::{CertId, ListenerId};
use rustls::crypto::CryptoProvider;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::backends::BackendSet;
use crate::certset::{CertSet, LoadedCert};
use crate::error::{CertLoadError, ListenerBuildError};

/// Everything the data plane serves at one revision. Never mutated once published.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// -1 for the empty snapshot before the first build.
    pub(crate) revision: i64,
    pub(crate) listeners: HashMap<ListenerId, Arc<ListenerView>>,
}

impl Snapshot {
    pub(crate) fn empty() -> Snapshot {
        Snapshot { revision: -1, listeners: HashMap::new() }
    }
}

/// Where and how a listener's socket listens: a change of any of these reopens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketSpec {
    pub(crate) address: Option<IpAddr>,
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
}

#[derive(Debug)]
pub(crate) struct ListenerView {
    pub(crate) socket: SocketSpec,
    /// `Some` for TLS listeners.
    pub(crate) certs: Option<Arc<CertSet>>,
    /// The revision whose bindings `certs` reflects; older than the snapshot's when
    /// this revision's certificates failed to load. `None` if they never loaded.
    pub(crate) certs_revision: Option<i64>,
    pub(crate) cert_error: Option<ListenerBuildError>,
    /// The bindings `certs` was built for (default first, then additional, each once),
    /// to reuse the set when a later revision leaves them unchanged.
    default_cert: Option<CertId>,
    cert_ids: Vec<CertId>,
    pub(crate) backends: Arc<BackendSet>,
}

/// How many certificates [`CertCache::fetch_missing`] asks the source for at once: at
/// least the minimum (one call for a small set), at most the maximum (bounded memory in
/// flight, and chunks enough for the workers to overlap).
const FETCH_CHUNK_MIN: usize = 256;
const FETCH_CHUNK_MAX: usize = 4096;

/// Loaded certificates by id, kept across builds: certificates never change once stored,
/// so each is fetched and its key parsed once, however many listeners or revisions use it.
pub(crate) struct CertCache {
    provider: Arc<CryptoProvider>,
    loaded: HashMap<CertId, Arc<LoadedCert>>,
}

impl CertCache {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> CertCache {
        CertCache { provider, loaded: HashMap::new() }
    }

    /// Loads the ids not cached yet; returns why each id that is still missing failed.
    /// Failures are not cached: the next build retries them.
    ///
    /// Reading and decrypting (the source) and parsing keys are both CPU work and 100k
    /// certificates at start take a while: the ids are split into chunks, and one worker
    /// per core takes chunk after chunk, asking the source for it and parsing its keys,
    /// so that one worker's fetch overlaps another's parsing and no core waits for a
    /// whole phase to finish. A small set is one chunk and one call, on this thread.
    fn fetch_missing(&mut self, ids: &HashSet<CertId>, source: &dyn ServingSource) -> HashMap<CertId, CertLoadError> {
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
    fn retain_served(&mut self, snapshot: &Snapshot) {
        let served: HashSet<CertId> = snapshot
            .listeners
            .values()
            .filter_map(|view| view.certs.as_ref())
            .flat_map(|set| set.certs().iter().map(|c| c.id))
            .collect();
        self.loaded.retain(|id, _| served.contains(id));
    }
}

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
        Ok(materials) => out.extend(
            materials
                .iter()
                .filter(|material| ids.contains(&material.id))
                .map(|material| (material.id, LoadedCert::from_material(material, provider).map(Arc::new))),
        ),
        Err(reason) => {
            let error = CertLoadError::Source(reason);
            out.extend(chunk.iter().map(|id| (*id, Err(error.clone()))));
        }
    }
}

/// What a build produced: the snapshot to publish and the listeners that fell back.
#[derive(Debug)]
pub(crate) struct BuildOutcome {
    pub(crate) snapshot: Snapshot,
    pub(crate) failures: Vec<(ListenerId, ListenerBuildError)>,
}

/// Builds the snapshot for `state`, reusing what `previous` and `cache` already hold.
pub(crate) fn build(
    state: ServingState,
    previous: &Snapshot,
    cache: &mut CertCache,
    source: &dyn ServingSource,
) -> BuildOutcome {
    let wanted: HashSet<CertId> =
        state.listeners.iter().filter(|l| l.protocol.is_tls()).flat_map(listener_cert_ids).collect();
    let load_failures = cache.fetch_missing(&wanted, source);

    let mut snapshot = Snapshot { revision: state.revision, listeners: HashMap::with_capacity(state.listeners.len()) };
    let mut failures = Vec::new();
    let mut shared = SharedSets::default();
    for listener in &state.listeners {
        let before = previous.listeners.get(&listener.listener_id);
        let view = build_listener(listener, state.revision, before, cache, &load_failures, &mut shared);
        if let Some(error) = &view.cert_error {
            failures.push((listener.listener_id, error.clone()));
        }
        snapshot.listeners.insert(listener.listener_id, Arc::new(view));
    }
    cache.retain_served(&snapshot);
    BuildOutcome { snapshot, failures }
}

/// The default first, then the additional ones, each once.
fn listener_cert_ids(listener: &ServingListener) -> Vec<CertId> {
    let mut seen = HashSet::with_capacity(listener.additional_certs.len() + 1);
    listener.default_cert.iter().chain(&listener.additional_certs).filter(|id| seen.insert(**id)).copied().collect()
}

/// Certificate sets built during one build, by (default, bindings): listeners bound to
/// the same certificates share one set. A rotation over 100k listeners of one
/// certificate builds one set, not 100k.
#[derive(Default)]
struct SharedSets {
    sets: HashMap<(Option<CertId>, Vec<CertId>), Arc<CertSet>>,
}

impl SharedSets {
    fn get_or_build(&mut self, listener: &ServingListener, ids: &[CertId], cache: &CertCache) -> Arc<CertSet> {
        let key = (listener.default_cert, ids.to_vec());
        self.sets.entry(key).or_insert_with(|| Arc::new(loaded_set(listener, cache))).clone()
    }

    fn remember(&mut self, listener: &ServingListener, ids: &[CertId], set: &Arc<CertSet>) {
        self.sets.entry((listener.default_cert, ids.to_vec())).or_insert_with(|| set.clone());
    }
}

fn build_listener(
    listener: &ServingListener,
    revision: i64,
    before: Option<&Arc<ListenerView>>,
    cache: &CertCache,
    load_failures: &HashMap<CertId, CertLoadError>,
    shared: &mut SharedSets,
) -> ListenerView {
    let backends = match before {
        Some(view) if view.backends.same_backends(&listener.backends) => view.backends.clone(),
        _ => Arc::new(BackendSet::new(&listener.backends)),
    };
    let socket = SocketSpec { address: listener.address, port: listener.port, protocol: listener.protocol };
    if !listener.protocol.is_tls() {
        return ListenerView {
            socket,
            certs: None,
            certs_revision: None,
            cert_error: None,
            default_cert: None,
            cert_ids: Vec::new(),
            backends,
        };
    }

    let ids = listener_cert_ids(listener);
    // Unchanged bindings (the common case: a revision touches few listeners) reuse the
    // built set instead of re-indexing what may be 100k names.
    if let Some(view) = before {
        let unchanged = view.cert_error.is_none() && view.default_cert == listener.default_cert && view.cert_ids == ids;
        if let (true, Some(certs)) = (unchanged, &view.certs) {
            shared.remember(listener, &ids, certs);
            return ListenerView {
                socket,
                certs: Some(certs.clone()),
                certs_revision: Some(revision),
                cert_error: None,
                default_cert: listener.default_cert,
                cert_ids: ids,
                backends,
            };
        }
    }
    let error = ids.iter().find_map(|id| {
        let source = match cache.loaded.get(id) {
            Some(_) => return None,
            None => load_failures.get(id).cloned().unwrap_or(CertLoadError::Missing),
        };
        Some(ListenerBuildError { revision, cert: *id, source })
    });
    let served_before = before.and_then(|view| view.certs.clone().map(|certs| (certs, view.certs_revision)));
    let (certs, certs_revision) = match (&error, served_before) {
        (None, _) => (shared.get_or_build(listener, &ids, cache), Some(revision)),
        // Keep serving what this listener served before, whole.
        (Some(_), Some(kept)) => kept,
        // A new listener has nothing older to fall back to: serve what did load, so
        // at least those names work, and report the rest.
        (Some(_), None) => (Arc::new(loaded_set(listener, cache)), None),
    };
    ListenerView {
        socket,
        certs: Some(certs),
        certs_revision,
        cert_error: error,
        default_cert: listener.default_cert,
        cert_ids: ids,
        backends,
    }
}

/// The listener's certificates that are loaded, as one set.
fn loaded_set(listener: &ServingListener, cache: &CertCache) -> CertSet {
    let default = listener.default_cert.and_then(|id| cache.loaded.get(&id).cloned());
    let additional = listener.additional_certs.iter().filter_map(|id| cache.loaded.get(id).cloned());
    CertSet::new(default, additional)
}
