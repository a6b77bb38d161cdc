//! Tencent Cloud error codes, and the one function mapping core errors to them.

use certbind_core::cert::CertError;
use certbind_core::{CoreError, StorageFailure};

#[derive(Debug)]
pub struct TcError {
    pub code: &'static str,
    pub message: String,
}

impl TcError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        TcError { code, message: message.into() }
    }

    pub fn missing(name: &str) -> Self {
        TcError::new("MissingParameter", format!("the request is missing the required parameter `{name}`"))
    }

    pub fn invalid(name: &str, reason: impl std::fmt::Display) -> Self {
        TcError::new("InvalidParameter", format!("parameter `{name}` is malformed: {reason}"))
    }

    pub fn invalid_value(name: &str, reason: impl std::fmt::Display) -> Self {
        TcError::new("InvalidParameterValue", format!("parameter `{name}` has an invalid value: {reason}"))
    }

    pub fn auth(code: &'static str, message: impl Into<String>) -> Self {
        TcError::new(code, message)
    }
}

pub type TcResult<T> = Result<T, TcError>;

impl From<CoreError> for TcError {
    fn from(e: CoreError) -> Self {
        from_core(e)
    }
}

/// Maps a core error to the Tencent code a caller of ssl or clb expects. Internal errors
/// are logged here and answered with a generic message (never a path, key or trace).
pub fn from_core(e: CoreError) -> TcError {
    let message = retell(&e.to_string());
    let code = match &e {
        CoreError::NotFound { what, .. } => match *what {
            "certificate" => "FailedOperation.CertificateNotFound",
            "job" => "FailedOperation.CertificateDeployNotExist",
            _ => "ResourceNotFound",
        },
        CoreError::InvalidArgument { .. } => "InvalidParameterValue",
        CoreError::Certificate(cert) => match cert {
            CertError::KeyMismatch => "FailedOperation.CertificateMatchError",
            CertError::ChainOutOfOrder { .. } => "InvalidParameterValue.IntermediateCertNotSame",
            _ => "FailedOperation.CertificateParseError",
        },
        CoreError::DuplicateCertificate { .. } => "FailedOperation.CertificateExists",
        CoreError::CertificateInUse { .. } => "FailedOperation.BoundResources",
        CoreError::OldCertificateNotBound { .. } => "FailedOperation.CertificateDeployInstanceEmpty",
        CoreError::PortInUse { .. } => "InvalidParameter.PortCheckFailed",
        CoreError::ProtocolNotAllowed { .. } => "InvalidParameter.ProtocolCheckFailed",
        CoreError::LoadBalancerNotEmpty { .. } | CoreError::ListenerBusy { .. } => "ResourceInUse",
        CoreError::ListenerNotTls { .. }
        | CoreError::DefaultCertificateNotDissociable { .. }
        | CoreError::CertificateNotBound { .. }
        | CoreError::DefaultCertificateRequired { .. }
        | CoreError::OwnershipMismatch { .. }
        | CoreError::SameCertificate { .. } => "InvalidParameterValue",
        CoreError::IdempotencyConflict { .. } => "InvalidParameter",
        CoreError::TooManyCertificates { .. } | CoreError::AdditionalCertificateQuotaExceeded { .. } => "LimitExceeded",
        CoreError::Unauthenticated(_) => "AuthFailure",
        CoreError::Forbidden(_) => "AuthFailure.UnauthorizedOperation",
        CoreError::Storage { failure, detail } => {
            crate::request_id::log_storage_failure(*failure, detail);
            match failure {
                StorageFailure::Full => "FailedOperation.StorageFull",
                StorageFailure::ReadOnly => "FailedOperation.StorageReadOnly",
                StorageFailure::Busy => "FailedOperation.StorageBusy",
                StorageFailure::Unavailable => "FailedOperation.StorageUnavailable",
            }
        }
        CoreError::Internal(_) => {
            tracing::error!(request_id = %crate::request_id::current(), error = %e, "internal error in the tencent dialect");
            return TcError::new("InternalError", "an internal error occurred; quote the RequestId to the operator");
        }
    };
    TcError { code, message }
}

/// Rewrites the native ids a core message names (`cert-12`, `lb-3`, `lsn-7`, `job-9`) in
/// their Tencent forms, so a message never shows an id the caller cannot use.
fn retell(message: &str) -> String {
    use certbind_core::ids::{CertId, ListenerId, LoadBalancerId};
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while !rest.is_empty() {
        // After '/' an id is part of a resource name (`crn:…:loadbalancer/lb-3`): left as is.
        let at_word_start = out.chars().last().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-' && c != '/');
        let mut replaced = false;
        if at_word_start {
            for prefix in ["cert-", "lb-", "lsn-", "job-"] {
                let Some(tail) = rest.strip_prefix(prefix) else { continue };
                let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
                let boundary = tail[digits.len()..].chars().next().is_none_or(|c| !c.is_ascii_alphanumeric());
                let Ok(n) = digits.parse::<i64>() else { continue };
                if digits.is_empty() || digits.len() > 18 || !boundary {
                    continue;
                }
                out.push_str(&match prefix {
                    "cert-" => super::ids::cert(CertId(n)),
                    "lb-" => super::ids::lb(LoadBalancerId(n)),
                    "lsn-" => super::ids::listener(ListenerId(n)),
                    _ => n.to_string(),
                });
                rest = &tail[digits.len()..];
                replaced = true;
                break;
            }
        }
        if !replaced {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbind_core::ids::{CertId, ListenerId};

    #[test]
    fn messages_show_tencent_ids() {
        let e = from_core(CoreError::CertificateInUse { cert: CertId(12).to_string(), listeners: 2 });
        assert_eq!(e.code, "FailedOperation.BoundResources");
        assert!(e.message.contains(&super::super::ids::cert(CertId(12))), "{}", e.message);
        assert!(!e.message.contains("cert-12"), "{}", e.message);
        let e = from_core(CoreError::not_found("listener", ListenerId(7)));
        assert_eq!(e.message, format!("listener {} does not exist", super::super::ids::listener(ListenerId(7))));
        assert_eq!(retell("lb-3x and xlb-3 stay"), "lb-3x and xlb-3 stay");
        assert_eq!(retell("crn:certbind:r:1:loadbalancer/lb-3"), "crn:certbind:r:1:loadbalancer/lb-3");
        let e = from_core(CoreError::Internal("disk /secret/path failed".into()));
        assert_eq!(e.code, "InternalError");
        assert!(!e.message.contains("secret"), "{}", e.message);
    }
}
