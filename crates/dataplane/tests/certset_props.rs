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
        0i64..40,
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
/// default, then the lower id; no match, or no host, gives the default.
fn oracle(set: &CertSet, host: Option<&str>) -> Option<CertId> {
    let default = set.default_cert().map(|c| c.id);
    let best = host.and_then(|host| {
        let normalized = normalize_host(host);
        set.certs()
            .filter(|c| c.names.iter().any(|n| matches(n, host)))
            .max_by_key(|c| {
                let exact = c.names.contains(&normalized);
                (c.is_valid_at(NOW), c.not_after, exact, Some(c.id) == default, std::cmp::Reverse(c.id))
            })
            .map(|c| c.id)
    });
    best.or(default)
}

/// The rules for a client that can use only `usable` certificates: when several match the
/// name, the best usable one; otherwise (or when none is usable) as for any client.
fn oracle_usable(set: &CertSet, host: Option<&str>, usable: fn(&LoadedCert) -> bool) -> Option<CertId> {
    let default = set.default_cert().map(|c| c.id);
    let Some(host) = host else { return oracle(set, None) };
    let normalized = normalize_host(host);
    let matching: Vec<_> = set.certs().filter(|c| c.names.iter().any(|n| matches(n, host))).collect();
    if matching.len() < 2 {
        return oracle(set, Some(host));
    }
    let best_usable = matching.into_iter().filter(|c| usable(c)).max_by_key(|c| {
        let exact = c.names.contains(&normalized);
        (c.is_valid_at(NOW), c.not_after, exact, Some(c.id) == default, std::cmp::Reverse(c.id))
    });
    best_usable.map(|c| c.id).or_else(|| oracle(set, Some(host)))
}

/// Everything observable of a set.
#[derive(Debug, PartialEq)]
struct Observed {
    /// Members, by id, sorted.
    ids: Vec<i64>,
    default: Option<CertId>,
    /// Index entries (pattern, certificate id), sorted.
    entries: Vec<(String, i64)>,
    /// The selection for every probe host, and for no SNI.
    picks: Vec<Option<CertId>>,
}

fn observed(set: &CertSet) -> Observed {
    let mut ids: Vec<i64> = set.certs().map(|c| c.id.0).collect();
    ids.sort();
    let mut entries: Vec<(String, i64)> = set.index_entries().into_iter().map(|(p, c)| (p, c.id.0)).collect();
    entries.sort();
    let picks = HOSTS.iter().map(|h| Some(*h)).chain([None]).map(|h| set.select(h, NOW).map(|c| c.id)).collect();
    Observed { ids, default: set.default_cert().map(|c| c.id), entries, picks }
}

/// Unique ids: a stored certificate has one id, and a listener binds it once.
fn unique(specs: Vec<CertSpec>) -> Vec<CertSpec> {
    let mut seen = std::collections::HashSet::new();
    specs.into_iter().filter(|s| seen.insert(s.id)).collect()
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
        let mut ids: Vec<_> = set.certs().map(|c| c.id).collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len(), count);
        prop_assert_eq!(set.default_cert().map(|c| c.id), default.as_ref().map(|d| CertId(d.id)));

        // Every indexed name points at a certificate of the set that carries that name.
        for (pattern, cert) in set.index_entries() {
            prop_assert!(set.certs().any(|c| Arc::ptr_eq(c, cert)), "{} -> {:?} not in set", pattern, cert.id);
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
                prop_assert!(set.certs().any(|c| Arc::ptr_eq(c, chosen)));
                prop_assert!(chosen.names.iter().any(|n| matches(n, &probe)), "{} served by {:?}", probe, chosen.names);
            }
        }

        // Selection agrees with the rules read directly, for any client and for one that
        // can use only some certificates.
        let even: fn(&LoadedCert) -> bool = |c| c.id.0 % 2 == 0;
        for host in HOSTS.iter().map(|h| Some(*h)).chain([None]) {
            prop_assert_eq!(set.select(host, NOW).map(|c| c.id), oracle(&set, host), "host {:?}", host);
            let picked = set.select_usable(host, NOW, even).map(|c| c.id);
            prop_assert_eq!(picked, oracle_usable(&set, host, even), "host {:?}, even ids only", host);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A set derived by a change equals the set built from scratch for the result, in
    /// members, default, index and selection, through a chain of changes: derived sets
    /// share shards with their ancestors, and a change must never leak into them.
    #[test]
    fn a_derived_set_equals_one_built_from_scratch(
        start in prop::collection::vec(cert_spec(), 0..40),
        changes in prop::collection::vec(
            (prop::collection::vec(0i64..40, 0..6), prop::collection::vec(cert_spec(), 0..6), prop::option::of(0usize..8)),
            1..6,
        ),
    ) {
        let start = unique(start);
        let mut members: Vec<Arc<LoadedCert>> = start.iter().map(loaded).collect();
        let set = CertSet::new(None, members.clone());
        let mut history = vec![(observed(&set), set)];
        for (removed, added, default_pick) in changes {
            let removed: Vec<CertId> = removed.into_iter().map(CertId).collect();
            members.retain(|c| !removed.contains(&c.id));
            let added: Vec<Arc<LoadedCert>> = unique(added)
                .iter()
                .filter(|spec| !members.iter().any(|c| c.id.0 == spec.id))
                .map(loaded)
                .collect();
            members.extend(added.iter().cloned());
            let default = default_pick.and_then(|i| members.get(i % members.len().max(1)).cloned());
            let previous = &history.last().unwrap().1;
            let derived = previous.derive(default.clone(), &removed, added);
            let scratch = CertSet::new(default, members.clone());
            prop_assert_eq!(derived.len(), scratch.len());
            prop_assert_eq!(observed(&derived), observed(&scratch));
            history.push((observed(&derived), derived));
        }
        // Deriving changed none of the sets derived from.
        for (before, set) in &history {
            prop_assert_eq!(before, &observed(set));
        }
    }
}

/// Large sets are sharded: one change to 5,000 certificates copies a few shards and shares
/// the rest, and still equals the set built from scratch.
#[test]
fn a_change_to_a_large_set_equals_the_set_built_from_scratch() {
    let specs: Vec<CertSpec> = (0..5_000)
        .map(|i| CertSpec {
            id: i,
            names: vec![format!("host{i}.example.com")],
            not_before: NOW - 1,
            not_after: NOW + 1,
        })
        .collect();
    let certs: Vec<Arc<LoadedCert>> = specs.iter().map(loaded).collect();
    let set = CertSet::new(Some(certs[0].clone()), certs[1..].iter().cloned());
    let replacement = loaded(&CertSpec {
        id: 9_999,
        names: vec!["host2500.example.com".into()],
        not_before: NOW - 1,
        not_after: NOW + 1,
    });
    let derived = set.derive(Some(certs[0].clone()), &[CertId(2_500)], [replacement.clone()]);
    let mut members: Vec<Arc<LoadedCert>> = certs[1..].iter().filter(|c| c.id != CertId(2_500)).cloned().collect();
    members.push(replacement);
    let scratch = CertSet::new(Some(certs[0].clone()), members);
    assert_eq!(observed(&derived), observed(&scratch));
    assert_eq!(derived.select(Some("host2500.example.com"), NOW).map(|c| c.id), Some(CertId(9_999)));
    assert_eq!(set.select(Some("host2500.example.com"), NOW).map(|c| c.id), Some(CertId(2_500)));
    assert_eq!(derived.len(), 5_000);
}
