//! Host name matching: which certificate answers an SNI name, and whether a replacement
//! certificate still covers every name the old one served.
//!
//! Matching follows the rules TLS clients apply (RFC 6125): names compare
//! case-insensitively, a trailing dot is ignored, and a wildcard is only recognised as
//! the whole leftmost label (`*.example.com`), where it stands for exactly one non-empty
//! label. A name that merely contains `*` elsewhere (`f*.example.com`,
//! `www.*.example.com`) only ever matches itself.

use std::net::IpAddr;

/// Lowercases `host` (ASCII; internationalised names arrive as punycode) and strips one
/// trailing dot.
pub fn normalize_host(host: &str) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

/// Whether the certificate name `pattern` answers for `host`.
///
/// Exact names match case-insensitively. `*.example.com` matches `a.example.com` but
/// neither `example.com` nor `a.b.example.com`. A host that is itself a wildcard name is
/// only matched by the identical pattern, never by a wildcard standing for its `*`.
pub fn matches(pattern: &str, host: &str) -> bool {
    let pattern = normalize_host(pattern);
    let host = normalize_host(host);
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    if pattern == host {
        return true;
    }
    if host.contains('*') {
        return false;
    }
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    if suffix.is_empty() || suffix.contains('*') {
        return false;
    }
    match host.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == suffix,
        None => false,
    }
}

/// Whether any of `names` matches `host` (see [`matches`]). A wildcard `host` such as
/// `*.example.com` is covered only by the identical wildcard among `names`.
pub fn covers(names: &[String], host: &str) -> bool {
    names.iter().any(|name| matches(name, host))
}

/// The host names a certificate answers for: its DNS subject alternative names, or its
/// common name when it has no DNS SAN. Normalised (see [`normalize_host`]), deduplicated,
/// first occurrence kept. Entries of `sans` that are IP addresses are not host names and
/// are left out.
pub fn served_names(common_name: Option<&str>, sans: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for san in sans {
        let san = san.trim();
        if san.is_empty() || san.parse::<IpAddr>().is_ok() {
            continue;
        }
        push_unique(&mut out, normalize_host(san));
    }
    if out.is_empty() {
        if let Some(cn) = common_name.map(str::trim).filter(|cn| !cn.is_empty()) {
            push_unique(&mut out, normalize_host(cn));
        }
    }
    out
}

/// The names in `old_names` that no name in `new_names` covers, normalised and
/// deduplicated, in their original order.
pub fn uncovered(old_names: &[String], new_names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for old in old_names {
        if !covers(new_names, old) {
            push_unique(&mut out, normalize_host(old));
        }
    }
    out
}

fn push_unique(out: &mut Vec<String>, name: String) {
    if !name.is_empty() && !out.contains(&name) {
        out.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalize_lowercases_and_strips_one_trailing_dot() {
        assert_eq!(normalize_host("WWW.Example.COM"), "www.example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("example.com.."), "example.com.");
        assert_eq!(normalize_host("*.Example.com."), "*.example.com");
        assert_eq!(normalize_host(""), "");
    }

    #[test]
    fn exact_match_is_case_insensitive_and_ignores_trailing_dot() {
        assert!(matches("example.com", "example.com"));
        assert!(matches("Example.COM", "example.com"));
        assert!(matches("example.com", "EXAMPLE.com."));
        assert!(matches("example.com.", "example.com"));
        assert!(!matches("example.com", "www.example.com"));
        assert!(!matches("www.example.com", "example.com"));
        assert!(!matches("example.com", "example.org"));
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "WWW.Example.Com."));
        assert!(matches("*.Example.com", "api.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", ".example.com"));
        assert!(!matches("*.example.com", "a.example.org"));
        assert!(!matches("*.example.com", "aexample.com"));
    }

    #[test]
    fn star_outside_the_leftmost_label_is_not_a_wildcard() {
        assert!(!matches("f*.example.com", "foo.example.com"));
        assert!(!matches("*foo.example.com", "afoo.example.com"));
        assert!(!matches("www.*.example.com", "www.a.example.com"));
        assert!(!matches("*.*.example.com", "a.b.example.com"));
        assert!(!matches("**.example.com", "a.example.com"));
        assert!(!matches("*", "localhost"));
        assert!(!matches("*.", "a"));
        // Such a name still equals itself.
        assert!(matches("f*.example.com", "F*.example.com"));
    }

    #[test]
    fn empty_names_never_match() {
        assert!(!matches("", ""));
        assert!(!matches("", "example.com"));
        assert!(!matches("example.com", ""));
        assert!(!matches(".", "."));
    }

    #[test]
    fn wildcard_host_is_covered_only_by_the_identical_wildcard() {
        assert!(matches("*.example.com", "*.example.com"));
        assert!(matches("*.EXAMPLE.com", "*.example.com."));
        assert!(!matches("*.com", "*.example.com"));
        assert!(!matches("*.example.com", "*.a.example.com"));
        assert!(!matches("a.example.com", "*.example.com"));
        assert!(covers(&v(&["*.example.com"]), "*.example.com"));
        assert!(!covers(&v(&["a.example.com", "b.example.com"]), "*.example.com"));
    }

    #[test]
    fn covers_checks_every_name() {
        let names = v(&["example.com", "*.example.com", "other.org"]);
        assert!(covers(&names, "example.com"));
        assert!(covers(&names, "www.example.com"));
        assert!(covers(&names, "OTHER.org."));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(!covers(&names, "www.other.org"));
        assert!(!covers(&[], "example.com"));
    }

    #[test]
    fn served_names_prefers_dns_sans_and_skips_ips() {
        let sans = v(&["WWW.example.com", "example.com.", "www.example.com", "192.0.2.1", "2001:db8::1"]);
        assert_eq!(served_names(Some("ignored.example.com"), &sans), v(&["www.example.com", "example.com"]));
    }

    #[test]
    fn served_names_falls_back_to_the_common_name() {
        assert_eq!(served_names(Some("Legacy.Example.com"), &[]), v(&["legacy.example.com"]));
        assert_eq!(served_names(Some("legacy.example.com"), &v(&["192.0.2.1"])), v(&["legacy.example.com"]));
        assert_eq!(served_names(None, &[]), Vec::<String>::new());
        assert_eq!(served_names(Some("  "), &v(&["10.0.0.1"])), Vec::<String>::new());
    }

    #[test]
    fn uncovered_lists_old_names_the_new_certificate_misses() {
        let old = v(&["example.com", "www.example.com", "*.example.com", "api.example.org", "WWW.example.com"]);
        let new = v(&["example.com", "*.example.com"]);
        assert_eq!(uncovered(&old, &new), v(&["api.example.org"]));

        // Explicit names do not cover the old wildcard.
        let new = v(&["example.com", "www.example.com", "a.example.com", "api.example.org"]);
        assert_eq!(uncovered(&old, &new), v(&["*.example.com"]));

        assert_eq!(uncovered(&old, &[]), v(&["example.com", "www.example.com", "*.example.com", "api.example.org"]));
        assert!(uncovered(&[], &new).is_empty());
        assert!(uncovered(&old, &old).is_empty());
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent_once_no_trailing_dot(host in "[a-zA-Z0-9.*-]{0,30}") {
            let once = normalize_host(&host);
            if !once.ends_with('.') {
                prop_assert_eq!(normalize_host(&once), once.clone());
            }
        }

        #[test]
        fn matching_ignores_case(label in "[a-z0-9-]{1,10}", domain in "[a-z0-9-]{1,10}\\.[a-z]{2,5}") {
            let host = format!("{label}.{domain}");
            let wildcard = format!("*.{domain}");
            let deeper = format!("x.{host}");
            prop_assert!(matches(&host.to_ascii_uppercase(), &host));
            prop_assert!(matches(&wildcard.to_ascii_uppercase(), &host));
            prop_assert!(!matches(&wildcard, &domain));
            prop_assert!(!matches(&wildcard, &deeper));
        }

        #[test]
        fn every_name_covers_itself(name in "[a-z0-9*.-]{1,30}") {
            let normalized = normalize_host(&name);
            prop_assume!(!normalized.is_empty());
            let names = vec![name.clone()];
            prop_assert!(covers(&names, &name));
            prop_assert!(uncovered(&names, &names).is_empty());
        }
    }
}
