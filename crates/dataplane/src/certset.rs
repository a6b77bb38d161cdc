//! One listener's certificates and the SNI index over them, as ONE structure.
//!
//! Sozu #1074: its name trie and its certificate map were two structures updated
//! separately; they drifted and every handshake for a name failed. Here the index holds
//! positions into the certificate vector of the same immutable value, both built by the
//! only constructor, so an indexed name always lands on a certificate of the set.

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

/// A listener's certificate set with its SNI index.
#[derive(Debug, Default)]
pub struct CertSet {
    certs: Vec<Arc<LoadedCert>>,
    default: Option<usize>,
    /// Every name, wildcards included (a wildcard name equals itself), to positions in
    /// `certs`.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// `*.example.com` indexed under `example.com`, to positions in `certs`.
    wildcard: HashMap<Box<str>, Vec<u32>>,
}

/// How a candidate matched, for ranking.
#[derive(Clone, Copy)]
struct Candidate {
    position: usize,
    exact: bool,
}

impl CertSet {
    /// Builds the set from the listener's default certificate and its additional ones.
    /// A certificate listed twice is kept once; the default sits at position 0.
    pub fn new(default: Option<Arc<LoadedCert>>, additional: impl IntoIterator<Item = Arc<LoadedCert>>) -> CertSet {
        let additional: Vec<Arc<LoadedCert>> = additional.into_iter().collect();
        // Sized up front: growing maps of 100k names rehashes them over and over.
        let count = additional.len() + usize::from(default.is_some());
        let names = default.iter().chain(&additional).map(|cert| cert.names.len()).sum();
        let mut set = CertSet {
            certs: Vec::with_capacity(count),
            default: None,
            exact: HashMap::with_capacity(names),
            wildcard: HashMap::new(),
        };
        let mut seen: HashSet<CertId> = HashSet::with_capacity(count);
        if let Some(cert) = default {
            set.default = Some(0);
            seen.insert(cert.id);
            set.push(cert);
        }
        for cert in additional {
            if seen.insert(cert.id) {
                set.push(cert);
            }
        }
        set
    }

    fn push(&mut self, cert: Arc<LoadedCert>) {
        let position = self.certs.len() as u32;
        for name in &cert.names {
            push_position(&mut self.exact, name, position);
            if let Some(suffix) = wildcard_suffix(name) {
                push_position(&mut self.wildcard, suffix, position);
            }
        }
        self.certs.push(cert);
    }

    pub fn certs(&self) -> &[Arc<LoadedCert>] {
        &self.certs
    }

    pub fn default_cert(&self) -> Option<&Arc<LoadedCert>> {
        self.default.and_then(|i| self.certs.get(i))
    }

    /// Every (indexed pattern, certificate) pair, wildcards as `*.suffix`. For the
    /// consistency property test and diagnostics.
    pub fn index_entries(&self) -> Vec<(String, &Arc<LoadedCert>)> {
        let mut out = Vec::new();
        for (name, positions) in &self.exact {
            for &p in positions {
                if let Some(cert) = self.certs.get(p as usize) {
                    out.push((name.to_string(), cert));
                }
            }
        }
        for (suffix, positions) in &self.wildcard {
            for &p in positions {
                if let Some(cert) = self.certs.get(p as usize) {
                    out.push((format!("*.{suffix}"), cert));
                }
            }
        }
        out
    }

    /// The certificate for a handshake. Among the certificates whose names match `sni`,
    /// the one valid at `now` with the latest `not_after` wins (an exact name breaks a
    /// tie with a wildcard, then the earlier position: the default first). With no
    /// match, or no SNI, the default. A matching but expired certificate is still
    /// preferred to the default: a name mismatch breaks clients harder than an expiry.
    pub fn select(&self, sni: Option<&str>, now: i64) -> Option<&Arc<LoadedCert>> {
        let matched = sni.and_then(|host| self.best_match(host, now));
        matched.or_else(|| self.default_cert())
    }

    fn best_match(&self, host: &str, now: i64) -> Option<&Arc<LoadedCert>> {
        // Handshakes usually carry lowercase names already; avoid allocating then.
        let host: Cow<'_, str> = if host.ends_with('.') || host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(normalize_host(host))
        } else {
            Cow::Borrowed(host)
        };
        if host.is_empty() {
            return None;
        }
        let exact = self.exact.get(host.as_ref()).into_iter().flatten();
        let exact = exact.map(|&p| Candidate { position: p as usize, exact: true });
        // A host containing `*` is only ever matched by the identical name (core::names).
        let parent = if host.contains('*') {
            None
        } else {
            host.split_once('.').filter(|(label, rest)| !label.is_empty() && !rest.is_empty()).map(|(_, rest)| rest)
        };
        let wild = parent
            .and_then(|suffix| self.wildcard.get(suffix))
            .into_iter()
            .flatten()
            .map(|&p| Candidate { position: p as usize, exact: false });
        let mut best: Option<(Candidate, &Arc<LoadedCert>)> = None;
        for candidate in exact.chain(wild) {
            let Some(cert) = self.certs.get(candidate.position) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((current, current_cert)) => rank(candidate, cert, now) > rank(*current, current_cert, now),
            };
            if better {
                best = Some((candidate, cert));
            }
        }
        best.map(|(_, cert)| cert)
    }
}

/// Higher is better: valid first, then latest expiry, then exact over wildcard, then the
/// earlier position.
fn rank(candidate: Candidate, cert: &LoadedCert, now: i64) -> (bool, i64, bool, std::cmp::Reverse<usize>) {
    (cert.is_valid_at(now), cert.not_after, candidate.exact, std::cmp::Reverse(candidate.position))
}

fn push_position(index: &mut HashMap<Box<str>, Vec<u32>>, key: &str, position: u32) {
    let positions = index.entry(Box::from(key)).or_default();
    if !positions.contains(&position) {
        positions.push(position);
    }
}

/// The suffix a name stands for when it is a wildcard in the sense of
/// `certbind_core::names::matches`: `*.` followed by a non-empty suffix without `*`.
fn wildcard_suffix(name: &str) -> Option<&str> {
    name.strip_prefix("*.").filter(|suffix| !suffix.is_empty() && !suffix.contains('*'))
}
