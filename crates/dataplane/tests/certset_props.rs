//! Property: a listener's SNI index and its certificate set cannot disagree (Sozu #1074),
//! and selection agrees with a brute-force reading of the matching rules.

use certbind_core::names::{matches, normalize_host};
use certbind_core::CertId;
use certbind_dataplane::certset::{CertSet, LoadedCert};
use proptest::prelude::*;
use rustls::sign::CertifiedKey;
use std::sync::{Arc, OnceLock};

const NOW: i64 = 1_000_000;

/// One real key shared by every generated certificate: the property is about names and
/// validity, which `LoadedCert` carries beside the key.
fn shared_key() -> Arc<CertifiedKey> {
    static KEY: OnceLock<Arc<CertifiedKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["prop.test".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let provider = rustls::crypto::ring::default_provider();
        Arc::new(CertifiedKey::from_der(vec![cert.der().clone()], der, &provider).expect("certified key"))
    })
    .clone()
}

const NAMES: &[&str] = &[
    "example.com",
    "www.example.com",
    "api.example.com",
    "*.example.com",
    "WWW.Example.com.",
    "a.b.example.com",
    "*.b.example.com",
    "test.org",
    "*.test.org",
    "f*.example.com",
    "*.*.example.com",
    "*",
    "",
    ".",
];

const HOSTS: &[&str] = &[
    "example.com",
    "www.example.com",
    "WWW.EXAMPLE.COM",
    "api.example.com.",
    "zz.example.com",
    "a.b.example.com",
    "c.b.example.com",
    "test.org",
    "x.test.org",
    "f*.example.com",
    "*.example.com",
    "unknown.net",
    "",
];

#[derive(Debug, Clone)]
struct CertSpec {
    id: i64,
    names: Vec<String>,
    not_before: i64,
    not_after: i64,
}

fn cert_spec() -> impl Strategy<Value = CertSpec> {
    (
        0i64..10,
        prop::collection::vec(prop::sample::select(NAMES), 0..4),
        prop::sample::select(vec![NOW - 100, NOW, NOW + 50]),
        prop::sample::select(vec![NOW - 50, NOW, NOW + 10, NOW + 100, NOW + 200]),
    )
        .prop_map(|(id, names, not_before, not_after)| CertSpec {
            id,
            names: names.into_iter().map(str::to_owned).collect(),
            not_before,
            not_after,
        })
}

fn loaded(spec: &CertSpec) -> Arc<LoadedCert> {
    Arc::new(LoadedCert::new(CertId(spec.id), shared_key(), &spec.names, spec.not_before, spec.not_after))
}

/// The rules read directly: among certificates with a name matching `host`, valid at
/// `NOW` first, then the latest expiry, then an exact name over a wildcard, then the
/// earlier position (the default first); no match, or no host, gives the default.
fn oracle(set: &CertSet, host: Option<&str>) -> Option<CertId> {
    let best = host.and_then(|host| {
        let normalized = normalize_host(host);
        set.certs()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.names.iter().any(|n| matches(n, host)))
            .max_by_key(|(i, c)| {
                let exact = c.names.contains(&normalized);
                (c.is_valid_at(NOW), c.not_after, exact, std::cmp::Reverse(*i))
            })
            .map(|(_, c)| c.id)
    });
    best.or_else(|| set.default_cert().map(|c| c.id))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn index_and_certificates_cannot_disagree(
        default in prop::option::of(cert_spec()),
        additional in prop::collection::vec(cert_spec(), 0..8),
    ) {
        let set = CertSet::new(default.as_ref().map(loaded), additional.iter().map(loaded));

        // The set holds each certificate once; the default is the one given.
        let mut ids: Vec<_> = set.certs().iter().map(|c| c.id).collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len(), count);
        prop_assert_eq!(set.default_cert().map(|c| c.id), default.as_ref().map(|d| CertId(d.id)));

        // Every indexed name points at a certificate of the set that carries that name.
        for (pattern, cert) in set.index_entries() {
            prop_assert!(set.certs().iter().any(|c| Arc::ptr_eq(c, cert)), "{} -> {:?} not in set", pattern, cert.id);
            prop_assert!(cert.names.contains(&pattern), "{} indexed for {:?}", pattern, cert.names);
        }

        // Every name of every certificate resolves to a certificate of the set matching it.
        for cert in set.certs() {
            for name in &cert.names {
                let probe = match name.strip_prefix("*.") {
                    Some(suffix) if !suffix.contains('*') && !suffix.is_empty() => format!("zz.{suffix}"),
                    _ => name.clone(),
                };
                let chosen = set.select(Some(&probe), NOW);
                prop_assert!(chosen.is_some(), "{} resolves to nothing", probe);
                let chosen = chosen.unwrap();
                prop_assert!(set.certs().iter().any(|c| Arc::ptr_eq(c, chosen)));
                prop_assert!(chosen.names.iter().any(|n| matches(n, &probe)), "{} served by {:?}", probe, chosen.names);
            }
        }

        // Selection agrees with the rules read directly.
        for host in HOSTS.iter().map(|h| Some(*h)).chain([None]) {
            prop_assert_eq!(set.select(host, NOW).map(|c| c.id), oracle(&set, host), "host {:?}", host);
        }
    }
}
