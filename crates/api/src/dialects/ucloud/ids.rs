//! UCloud's ids for certbind's objects. The numbers are the core integer ids:
//!
//! - certificates: `ssl-<n>`;
//! - load balancers: `ulb-<n>` (both the classic ULB calls and the application load
//!   balancer calls use it; `alb-<n>` is accepted as input too);
//! - listeners: `vserver-<n>` (classic VServer and application listener alike; `als-<n>`
//!   and `lsn-<n>` are accepted as input too);
//! - an HTTPS VServer created without a certificate (UCloud allows it; certbind never
//!   serves a TLS listener without one) waits as `vserver-<ulb n>p<k>` until its first
//!   BindSSL creates the listener, and keeps that id afterwards.

use super::errors::{self, UError};
use certbind_core::ids::{CertId, ListenerId, LoadBalancerId};

pub fn ssl(id: CertId) -> String {
    format!("ssl-{}", id.0)
}

pub fn ulb(id: LoadBalancerId) -> String {
    format!("ulb-{}", id.0)
}

pub fn vserver(id: ListenerId) -> String {
    format!("vserver-{}", id.0)
}

pub fn pending_vserver(lb: LoadBalancerId, key: u64) -> String {
    format!("vserver-{}p{}", lb.0, key)
}

fn number(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn strip_any<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes.iter().find_map(|p| text.strip_prefix(p))
}

pub fn parse_ssl(text: &str) -> Result<CertId, UError> {
    strip_any(text, &["ssl-"])
        .and_then(number)
        .map(CertId)
        .ok_or_else(|| UError::new(errors::SSL_NOT_FOUND, format!("SSL {text} does not exist")))
}

pub fn parse_ulb(text: &str) -> Result<LoadBalancerId, UError> {
    strip_any(text, &["ulb-", "alb-"])
        .and_then(number)
        .map(LoadBalancerId)
        .ok_or_else(|| UError::new(errors::ULB_NOT_FOUND, format!("ULB {text} does not exist")))
}

/// A VServer id: a listener, or a VServer still waiting for its first certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VServerRef {
    Listener(ListenerId),
    Pending(LoadBalancerId, u64),
}

pub fn parse_vserver(text: &str) -> Result<VServerRef, UError> {
    let not_found = || UError::new(errors::VSERVER_NOT_FOUND, format!("VServer {text} does not exist"));
    let rest = strip_any(text, &["vserver-", "als-", "lsn-"]).ok_or_else(not_found)?;
    if let Some(n) = number(rest) {
        return Ok(VServerRef::Listener(ListenerId(n)));
    }
    let (lb, key) = rest.split_once('p').ok_or_else(not_found)?;
    match (number(lb), number(key)) {
        (Some(lb), Some(key)) => Ok(VServerRef::Pending(LoadBalancerId(lb), key as u64)),
        _ => Err(not_found()),
    }
}

/// Rewrites core ids in a message (`cert-3`, `lsn-4`, `lb-5`) into UCloud's forms.
pub fn ucloud_ids(message: &str) -> String {
    const FORMS: &[(&str, &str)] = &[("cert-", "ssl-"), ("lsn-", "vserver-"), ("lb-", "ulb-")];
    let bytes = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    'scan: while i < message.len() {
        // After '/' an id is part of a resource name (`crn:…:loadbalancer/lb-3`): left as is.
        let boundary =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'-' || bytes[i - 1] == b'/');
        if boundary {
            for (core, ucloud) in FORMS {
                if message[i..].starts_with(core) {
                    let digits = message[i + core.len()..].bytes().take_while(u8::is_ascii_digit).count();
                    if digits > 0 {
                        out.push_str(ucloud);
                        out.push_str(&message[i + core.len()..i + core.len() + digits]);
                        i += core.len() + digits;
                        continue 'scan;
                    }
                }
            }
        }
        let ch = message[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_messages_use_ucloud_forms() {
        assert_eq!(parse_ssl("ssl-12").unwrap(), CertId(12));
        assert!(parse_ssl("cert-12").is_err());
        assert_eq!(parse_ulb("alb-3").unwrap(), LoadBalancerId(3));
        assert_eq!(parse_vserver("vserver-7").unwrap(), VServerRef::Listener(ListenerId(7)));
        assert_eq!(parse_vserver("vserver-3p2").unwrap(), VServerRef::Pending(LoadBalancerId(3), 2));
        assert!(parse_vserver("vserver-").is_err());
        assert_eq!(
            ucloud_ids("certificate cert-3 is bound to lsn-4 of lb-5, not ulb-6 or alb-7"),
            "certificate ssl-3 is bound to vserver-4 of ulb-5, not ulb-6 or alb-7"
        );
        assert_eq!(ucloud_ids("crn:certbind:r:1:loadbalancer/lb-3"), "crn:certbind:r:1:loadbalancer/lb-3");
    }
}
