//! The bodies of certbind's fuzz targets: each takes raw bytes, shapes them into what one
//! parser of untrusted input takes, and runs it. A target may return anything; it must
//! never panic. libFuzzer drives them from `fuzz/` (`bench/fuzz.sh`); the test command
//! runs every one over its committed corpus (`tests/corpora.rs`).

use certbind_core::{cert, names, policy};

/// A target's body: raw bytes in, any outcome but a panic.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("pem_intake", pem_intake),
    ("dialect_request", dialect_request),
    ("sni_names", sni_names),
    ("policy", policy_document),
];

/// Splits `data` at `separator` into at most `n` parts (missing ones empty).
fn parts(data: &[u8], separator: &[u8], n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < n {
        match rest.windows(separator.len()).position(|w| w == separator) {
            Some(at) => {
                out.push(String::from_utf8_lossy(&rest[..at]).into_owned());
                rest = &rest[at + separator.len()..];
            }
            None => break,
        }
    }
    out.push(String::from_utf8_lossy(rest).into_owned());
    out.resize(n, String::new());
    out
}

/// Certificate intake: a leaf (PEM), an optional chain and a private key, separated by
/// lines of `====`, as every upload path takes them.
pub fn pem_intake(data: &[u8]) {
    let [leaf, chain, key]: [String; 3] = parts(data, b"\n====\n", 3).try_into().unwrap_or_default();
    let chain = (!chain.is_empty()).then_some(chain.as_str());
    let _ = cert::parse_bundle(&leaf, chain, &key);
    let _ = cert::load_signing_key(&key);
}

/// A request at `/` on the API address: `METHOD URI` on the first line, `name: value`
/// header lines, an empty line, the body; classified, its signature read and checked,
/// its parameters parsed.
pub fn dialect_request(data: &[u8]) {
    let Some(head_end) = data.windows(2).position(|w| w == b"\n\n") else { return };
    let (head, body) = (&data[..head_end], &data[head_end + 2..]);
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let Some((method, uri)) = lines.next().and_then(|l| l.split_once(' ')) else { return };
    let headers: Vec<(&str, &[u8])> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim(), v.trim().as_bytes())).collect();
    if let Some(request) = certbind_api::dialects::untrusted::request(method, uri, &headers, body) {
        let _ = certbind_api::dialects::untrusted::parse(&request);
    }
}

/// SNI matching: a certificate name pattern and a host, one per line, checked against
/// what must hold whatever the names: case does not matter, a name without a wildcard
/// matches only itself, and a wildcard stands for exactly one label.
pub fn sni_names(data: &[u8]) {
    let [pattern, host]: [String; 2] = parts(data, b"\n", 2).try_into().unwrap_or_default();
    let matched = names::matches(&pattern, &host);
    assert_eq!(matched, names::matches(&pattern.to_ascii_uppercase(), &host.to_ascii_lowercase()));
    let (p, h) = (names::normalize_host(&pattern), names::normalize_host(&host));
    if matched && p != h {
        assert!(p.starts_with("*."), "{pattern:?} matched {host:?} without a wildcard");
        assert_eq!(p.split('.').count(), h.split('.').count(), "{pattern:?} matched {host:?}: labels differ");
        assert!(!h.contains('*'), "a wildcard host is matched only by itself");
    }
    assert_eq!(names::covers(&[pattern], &host), matched);
}

/// A policy document (JSON), then lines naming an action and a resource to judge.
pub fn policy_document(data: &[u8]) {
    let [document, action, resource]: [String; 3] = parts(data, b"\n\n", 3).try_into().unwrap_or_default();
    let Ok(document) = policy::PolicyDocument::parse(&document) else { return };
    let policies = [policy::NamedPolicy { name: "fuzzed".into(), document }];
    let decision = policy::evaluate(&policies, &[action], &[vec![resource]]);
    let _ = decision.allowed;
}
