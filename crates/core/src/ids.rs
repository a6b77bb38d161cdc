//! Typed identifiers. The store keys everything by integer; the native API shows each id
//! with a prefix naming its kind (`cert-12`), so a listener id passed where a certificate
//! id belongs is refused instead of silently meaning something else. Cloud dialects
//! render the same integers in their own forms.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! typed_id {
    ($name:ident, $prefix:literal, $what:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            pub const WHAT: &'static str = $what;

            /// Parses the native form (`cert-12`); a bare integer is accepted too.
            pub fn parse(text: &str) -> Option<Self> {
                let digits = text.strip_prefix(concat!($prefix, "-")).unwrap_or(text);
                if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}-{}", $prefix, self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text)
                    .ok_or_else(|| serde::de::Error::custom(format!(concat!("not a ", $what, " id: {:?}"), text)))
            }
        }
    };
}

typed_id!(AccountId, "acct", "account");
typed_id!(ProjectId, "proj", "project");
typed_id!(CertId, "cert", "certificate");
typed_id!(LoadBalancerId, "lb", "load balancer");
typed_id!(ListenerId, "lsn", "listener");
typed_id!(JobId, "job", "job");
typed_id!(BackendId, "be", "backend");
typed_id!(UserId, "user", "user");
typed_id!(PolicyId, "pol", "policy");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_form_round_trips_and_rejects_other_kinds() {
        assert_eq!(CertId::parse("cert-42"), Some(CertId(42)));
        assert_eq!(CertId::parse("42"), Some(CertId(42)));
        assert_eq!(CertId(42).to_string(), "cert-42");
        assert_eq!(CertId::parse("lsn-42"), None);
        assert_eq!(CertId::parse("cert-"), None);
        assert_eq!(CertId::parse("cert-99999999999999999999"), None);
        assert_eq!(CertId::parse("cert--1"), None);
    }
}
