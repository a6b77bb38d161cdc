//! One listener's certificates and the SNI index over them, as ONE structure.
//!
//! Sozu #1074: its name trie and its certificate map were two structures updated
//! separately; they drifted and every handshake for a name failed. Here each shard of
//! the immutable set holds certificates and name entries pointing at those same
//! certificates, and the only two ways to make a set (build, derive) insert and remove a
//! certificate together with its names, so an indexed name always lands on a
//! certificate of the set.

use certbind_core::names::normalize_host;
use certbind_core::serving::CertMaterial;
use certbind_core::CertId;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::CertLoadError;

/// A certificate ready to serve: its signing key loaded once and shared by every
/// listener and snapshot that serves it (certificates are immutable, so it is cached by id).
pub struct LoadedCert {
    pub id: CertId,
    pub key: Arc<CertifiedKey>,
    /// Normalised host names (see [`normalize_host`]), empty ones dropped.
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

impl std::fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key: only what identifies the certificate.
        f.debug_struct("LoadedCert")
            .field("id", &self.id)
            .field("names", &self.names)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl LoadedCert {
    /// Parses the key with `provider` and checks it belongs to the leaf. Errors never
    /// carry key bytes.
    pub fn from_material(material: &CertMaterial, provider: &CryptoProvider) -> Result<Self, CertLoadError> {
        if material.chain_der.is_empty() {
            return Err(CertLoadError::EmptyChain);
        }
        let chain: Vec<CertificateDer<'static>> =
            material.chain_der.iter().map(|der| CertificateDer::from(der.clone())).collect();
        let key =
            PrivateKeyDer::from_pem_slice(material.private_key_pem.as_bytes()).map_err(|_| CertLoadError::KeyPem)?;
        let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| CertLoadError::Key(e.to_string()))?;
        Ok(Self::new(material.id, Arc::new(certified), &material.host_names, material.not_before, material.not_after))
    }

    pub fn new(id: CertId, key: Arc<CertifiedKey>, names: &[String], not_before: i64, not_after: i64) -> Self {
        let mut normalized: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            let name = normalize_host(name.trim());
            if !name.is_empty() && !normalized.contains(&name) {
                normalized.push(name);
            }
        }
        LoadedCert { id, key, names: normalized, not_before, not_after }
    }

    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// A listener's certificate set with its SNI index, split into copy-on-write shards.
///
/// A set of 100,000 certificates must take a one-certificate change in well under a
/// millisecond, not a rebuild of 100,000 index entries: [`CertSet::derive`] copies only
/// the shards the change touches and shares the rest with the set it came from. Each
/// certificate sits in the shard of its id; each name in the shard of that name, with
/// the certificates carrying it. Certificates and names live in the same shards of the
/// same immutable value, and only [`CertSet::new`] and [`CertSet::derive`] make them.
#[derive(Debug)]
pub struct CertSet {
    default: Option<Arc<LoadedCert>>,
    /// A power of two in length.
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl Default for CertSet {
    fn default() -> Self {
        CertSet { default: None, shards: vec![Arc::default()], len: 0 }
    }
}

#[derive(Debug, Default, Clone)]
struct Shard {
    /// The certificates whose id falls in this shard.
    by_id: HashMap<CertId, Arc<LoadedCert>>,
    /// Names falling in this shard, wildcards included (a wildcard name equals itself),
    /// to the certificates carrying them.
    exact: HashMap<Box<str>, Vec<Arc<LoadedCert>>>,
    /// `*.example.com`, indexed under `example.com` when that falls in this shard.
    wildcard: HashMap<Box<str>, Vec<Arc<LoadedCert>>>,
}

/// About this many certificates per shard: a change copies one or a few shards of this
/// size, and a small set stays one shard without per-shard overhead.
const CERTS_PER_SHARD: usize = 512;
const MAX_SHARDS: usize = 256;

fn shard_count_for(len: usize) -> usize {
    (len / CERTS_PER_SHARD).next_power_of_two().clamp(1, MAX_SHARDS)
}

/// FNV-1a: a fixed, fast spread of ids and names over shards. The maps inside the
/// shards keep std's keyed hashing, so a client choosing names cannot degrade lookups.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// How a candidate matched, for ranking.
#[derive(Clone, Copy)]
struct Candidate<'a> {
    cert: &'a Arc<LoadedCert>,
    exact: bool,
}

impl CertSet {
    /// Builds the set from the listener's default certificate and its additional ones.
    /// A certificate listed twice is kept once (the default, or the first listed).
    pub fn new(default: Option<Arc<LoadedCert>>, additional: impl IntoIterator<Item = Arc<LoadedCert>>) -> CertSet {
        let additional: Vec<Arc<LoadedCert>> = additional.into_iter().collect();
        let count = additional.len() + usize::from(default.is_some());
        let shards = shard_count_for(count);
        let names: usize = default.iter().chain(&additional).map(|c| c.names.len()).sum();
        // Sized up front: growing maps of 100k names rehashes them over and over. Each
        // shard is owned by this set alone until it is returned, so inserting into it
        // copies nothing.
        let shard = |_| {
            let mut shard = Shard::default();
            shard.by_id.reserve(count.div_ceil(shards));
            shard.exact.reserve(names.div_ceil(shards));
            Arc::new(shard)
        };
        let mut set = CertSet { default: default.clone(), shards: (0..shards).map(shard).collect(), len: 0 };
        for cert in default.into_iter().chain(additional) {
            if set.insert(cert) {
                set.len += 1;
            }
        }
        set
    }

    /// This set with `removed` taken out, then `added` put in (an id still present is kept
    /// as it is), and `default` as the default, which joins the set if it is not in it.
    /// Shares every shard the change does not touch with `self`. A change that moves the
    /// set far from the size its shards were cut for builds afresh.
    pub fn derive(
        &self,
        default: Option<Arc<LoadedCert>>,
        removed: &[CertId],
        added: impl IntoIterator<Item = Arc<LoadedCert>>,
    ) -> CertSet {
        let added: Vec<Arc<LoadedCert>> = added.into_iter().collect();
        let estimate = (self.len + added.len() + 1).saturating_sub(removed.len());
        let wanted = shard_count_for(estimate);
        if wanted > self.shards.len() * 4 || wanted * 4 < self.shards.len() {
            let gone: HashSet<CertId> = removed.iter().copied().collect();
            let kept = self.certs().filter(|c| !gone.contains(&c.id)).cloned();
            let additional: Vec<Arc<LoadedCert>> = kept.chain(added).collect();
            return CertSet::new(default, additional);
        }
        let mut set = CertSet { default: default.clone(), shards: self.shards.clone(), len: self.len };
        // Out first, then in: an id both removed and given anew ends up as given.
        for id in removed {
            if set.remove(*id) {
                set.len -= 1;
            }
        }
        for cert in default.into_iter().chain(added) {
            if set.insert(cert) {
                set.len += 1;
            }
        }
        set
    }

    fn shard_of_id(&self, id: CertId) -> usize {
        shard_index(self.shards.len(), &id.0.to_le_bytes())
    }

    fn shard_of_name(&self, name: &str) -> usize {
        shard_index(self.shards.len(), name.as_bytes())
    }

    /// Puts `cert` and its names in their shards, copying a shard only while another set
    /// still shares it. False if the id is in the set already.
    fn insert(&mut self, cert: Arc<LoadedCert>) -> bool {
        let home = self.shard_of_id(cert.id);
        if self.shards[home].by_id.contains_key(&cert.id) {
            return false;
        }
        for name in &cert.names {
            let at = self.shard_of_name(name);
            push_cert(&mut Arc::make_mut(&mut self.shards[at]).exact, name, &cert);
            if let Some(suffix) = wildcard_suffix(name) {
                let at = self.shard_of_name(suffix);
                push_cert(&mut Arc::make_mut(&mut self.shards[at]).wildcard, suffix, &cert);
            }
        }
        Arc::make_mut(&mut self.shards[home]).by_id.insert(cert.id, cert);
        true
    }

    fn remove(&mut self, id: CertId) -> bool {
        let home = self.shard_of_id(id);
        let Some(cert) = self.shards[home].by_id.get(&id).cloned() else {
            return false;
        };
        Arc::make_mut(&mut self.shards[home]).by_id.remove(&id);
        for name in &cert.names {
            let at = self.shard_of_name(name);
            remove_cert(&mut Arc::make_mut(&mut self.shards[at]).exact, name, id);
            if let Some(suffix) = wildcard_suffix(name) {
                let at = self.shard_of_name(suffix);
                remove_cert(&mut Arc::make_mut(&mut self.shards[at]).wildcard, suffix, id);
            }
        }
        true
    }

    /// Every certificate of the set, the default included, in no particular order.
    pub fn certs(&self) -> impl Iterator<Item = &Arc<LoadedCert>> {
        self.shards.iter().flat_map(|shard| shard.by_id.values())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, id: CertId) -> Option<&Arc<LoadedCert>> {
        self.shards[self.shard_of_id(id)].by_id.get(&id)
    }

    pub fn default_cert(&self) -> Option<&Arc<LoadedCert>> {
        self.default.as_ref()
    }

    /// Every (indexed pattern, certificate) pair, wildcards as `*.suffix`. For the
    /// consistency property test and diagnostics.
    pub fn index_entries(&self) -> Vec<(String, &Arc<LoadedCert>)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            for (name, certs) in &shard.exact {
                out.extend(certs.iter().map(|cert| (name.to_string(), cert)));
            }
            for (suffix, certs) in &shard.wildcard {
                out.extend(certs.iter().map(|cert| (format!("*.{suffix}"), cert)));
            }
        }
        out
    }

    /// The certificate for a handshake. Among the certificates whose names match `sni`,
    /// the one valid at `now` with the latest `not_after` wins (an exact name breaks a
    /// tie with a wildcard, then the default, then the lower certificate id). With no
    /// match, or no SNI, the default. A matching but expired certificate is still
    /// preferred to the default: a name mismatch breaks clients harder than an expiry.
    pub fn select(&self, sni: Option<&str>, now: i64) -> Option<&Arc<LoadedCert>> {
        self.select_usable(sni, now, |_| true)
    }

    /// [`CertSet::select`] for a client that can use only some certificates (`usable`: its
    /// signature schemes fit the key). When several certificates match the name, as an RSA
    /// and an ECDSA one during a key-type migration, the best one the client can use wins;
    /// when it can use none of them, the best one (its handshake fails as it would anyway).
    /// `usable` is asked only when several match.
    pub fn select_usable(
        &self,
        sni: Option<&str>,
        now: i64,
        usable: impl Fn(&LoadedCert) -> bool,
    ) -> Option<&Arc<LoadedCert>> {
        let matched = sni.and_then(|host| self.best_match(host, now, usable));
        matched.or_else(|| self.default_cert())
    }

    fn best_match(&self, host: &str, now: i64, usable: impl Fn(&LoadedCert) -> bool) -> Option<&Arc<LoadedCert>> {
        // Handshakes usually carry lowercase names already; avoid allocating then.
        let host: Cow<'_, str> = if host.ends_with('.') || host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(normalize_host(host))
        } else {
            Cow::Borrowed(host)
        };
        if host.is_empty() {
            return None;
        }
        let exact = self.shards[self.shard_of_name(&host)].exact.get(host.as_ref()).into_iter().flatten();
        let exact = exact.map(|cert| Candidate { cert, exact: true });
        // A host containing `*` is only ever matched by the identical name (core::names).
        let parent = if host.contains('*') {
            None
        } else {
            host.split_once('.').filter(|(label, rest)| !label.is_empty() && !rest.is_empty()).map(|(_, rest)| rest)
        };
        let wild = parent
            .and_then(|suffix| self.shards[self.shard_of_name(suffix)].wildcard.get(suffix))
            .into_iter()
            .flatten()
            .map(|cert| Candidate { cert, exact: false });
        let default = self.default.as_ref().map(|d| d.id);
        let candidates = exact.chain(wild);
        let mut best: Option<Candidate<'_>> = None;
        let mut several = false;
        for candidate in candidates.clone() {
            several |= best.is_some();
            if best.is_none_or(|b| rank(&candidate, default, now) > rank(&b, default, now)) {
                best = Some(candidate);
            }
        }
        let best = best?;
        if !several || usable(best.cert) {
            return Some(best.cert);
        }
        let usable_best = candidates.filter(|c| usable(c.cert)).max_by_key(|c| rank(c, default, now));
        Some(usable_best.unwrap_or(best).cert)
    }
}

/// Higher is better: valid first, then latest expiry, then exact over wildcard, then the
/// default, then the lower id.
fn rank(
    candidate: &Candidate<'_>,
    default: Option<CertId>,
    now: i64,
) -> (bool, i64, bool, bool, std::cmp::Reverse<i64>) {
    let cert = candidate.cert;
    (cert.is_valid_at(now), cert.not_after, candidate.exact, Some(cert.id) == default, std::cmp::Reverse(cert.id.0))
}

fn shard_index(count: usize, bytes: &[u8]) -> usize {
    (fnv(bytes) as usize) & (count - 1)
}

fn push_cert(index: &mut HashMap<Box<str>, Vec<Arc<LoadedCert>>>, key: &str, cert: &Arc<LoadedCert>) {
    let certs = index.entry(Box::from(key)).or_default();
    if !certs.iter().any(|c| c.id == cert.id) {
        certs.push(cert.clone());
    }
}

fn remove_cert(index: &mut HashMap<Box<str>, Vec<Arc<LoadedCert>>>, key: &str, id: CertId) {
    if let Some(certs) = index.get_mut(key) {
        certs.retain(|c| c.id != id);
        if certs.is_empty() {
            index.remove(key);
        }
    }
}

/// The suffix a name stands for when it is a wildcard in the sense of
/// `certbind_core::names::matches`: `*.` followed by a non-empty suffix without `*`.
fn wildcard_suffix(name: &str) -> Option<&str> {
    name.strip_prefix("*.").filter(|suffix| !suffix.is_empty() && !suffix.contains('*'))
}
