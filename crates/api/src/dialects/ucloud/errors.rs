//! UCloud's error envelope and the one mapping from core errors to `RetCode`s.
//!
//! Codes at or below 2000 are what the SDK treats as non-retryable; everything a caller
//! can fix by changing the request stays there. The common codes (160, 161, 171, 172,
//! 230) follow UCloud's common error list; the ULB codes are certbind's own, one per
//! kind of refusal, so a caller can tell them apart.

use super::ids::ucloud_ids;
use certbind_core::cert::CertError;
use certbind_core::CoreError;

/// `Action` is missing.
pub const MISSING_ACTION: i64 = 160;
/// `Action` names nothing this dialect serves.
pub const UNKNOWN_ACTION: i64 = 161;
/// `Signature` is missing or does not verify.
pub const BAD_SIGNATURE: i64 = 171;
/// No account has this `PublicKey`.
pub const UNKNOWN_PUBLIC_KEY: i64 = 172;
/// A required parameter is missing, or a parameter's value is invalid.
pub const INVALID_PARAMS: i64 = 230;
/// An SSL certificate id names no certificate in the project.
pub const SSL_NOT_FOUND: i64 = 4021;
/// A ULB id names no load balancer in the project.
pub const ULB_NOT_FOUND: i64 = 4022;
/// A VServer (listener) id names no listener of the load balancer / project.
pub const VSERVER_NOT_FOUND: i64 = 4023;
/// The certificate does not parse (PEM, X.509, unsupported key, chain order, size).
pub const SSL_INVALID: i64 = 4030;
/// The private key does not belong to the certificate.
pub const SSL_KEY_MISMATCH: i64 = 4031;
/// A certificate operation on a VServer whose protocol carries no certificate.
pub const VSERVER_NOT_HTTPS: i64 = 4040;
/// The listener does not belong to the load balancer given with it.
pub const OWNERSHIP_MISMATCH: i64 = 4041;
/// UpdateSSLBinding: the old certificate is bound to no listener in the scope.
pub const OLD_SSL_NOT_BOUND: i64 = 4042;
/// DeleteSSL of a certificate that is still bound.
pub const SSL_IN_USE: i64 = 4043;
/// Unbinding a certificate that is not bound, or that is the default one.
pub const SSL_NOT_UNBINDABLE: i64 = 4044;
/// The frontend port is taken.
pub const PORT_IN_USE: i64 = 4050;
/// A quota or per-request limit.
pub const QUOTA_EXCEEDED: i64 = 4060;
/// Any other conflict with the current state.
pub const CONFLICT: i64 = 4061;
/// Permission refused.
pub const FORBIDDEN: i64 = 4062;
/// certbind failed; the change was not made (or was rolled back).
pub const INTERNAL: i64 = 5000;
/// The store cannot take changes now (disk full, read-only, locked): nothing changed.
pub const STORAGE_UNAVAILABLE: i64 = 5001;

#[derive(Debug, Clone)]
pub struct UError {
    pub code: i64,
    pub message: String,
}

impl UError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        UError { code, message: message.into() }
    }

    pub fn missing(field: &str) -> Self {
        UError::new(INVALID_PARAMS, format!("Missing params [{field}]"))
    }

    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        UError::new(INVALID_PARAMS, format!("Params [{field}] not available: {reason}"))
    }
}

impl From<CoreError> for UError {
    fn from(e: CoreError) -> Self {
        let code = match &e {
            CoreError::NotFound { what, .. } => match *what {
                "certificate" => SSL_NOT_FOUND,
                "load balancer" => ULB_NOT_FOUND,
                "listener" => VSERVER_NOT_FOUND,
                _ => INVALID_PARAMS,
            },
            CoreError::InvalidArgument { .. }
            | CoreError::SameCertificate { .. }
            | CoreError::ProtocolNotAllowed { .. }
            | CoreError::DefaultCertificateRequired { .. } => INVALID_PARAMS,
            CoreError::Certificate(CertError::KeyMismatch) => SSL_KEY_MISMATCH,
            CoreError::Certificate(_) => SSL_INVALID,
            CoreError::ListenerNotTls { .. } => VSERVER_NOT_HTTPS,
            CoreError::OwnershipMismatch { .. } => OWNERSHIP_MISMATCH,
            CoreError::OldCertificateNotBound { .. } => OLD_SSL_NOT_BOUND,
            CoreError::CertificateInUse { .. } => SSL_IN_USE,
            CoreError::CertificateNotBound { .. } | CoreError::DefaultCertificateNotDissociable { .. } => {
                SSL_NOT_UNBINDABLE
            }
            CoreError::PortInUse { .. } => PORT_IN_USE,
            CoreError::TooManyCertificates { .. } | CoreError::AdditionalCertificateQuotaExceeded { .. } => {
                QUOTA_EXCEEDED
            }
            CoreError::DuplicateCertificate { .. }
            | CoreError::LoadBalancerNotEmpty { .. }
            | CoreError::ListenerBusy { .. }
            | CoreError::IdempotencyConflict { .. } => CONFLICT,
            CoreError::Unauthenticated(_) => UNKNOWN_PUBLIC_KEY,
            CoreError::Forbidden(_) => FORBIDDEN,
            CoreError::Storage { failure, detail } => {
                crate::request_id::log_storage_failure(*failure, detail);
                STORAGE_UNAVAILABLE
            }
            CoreError::Internal(_) => INTERNAL,
        };
        if code == INTERNAL {
            tracing::error!(request_id = %crate::request_id::current(), error = %e, "internal error");
        }
        let message = match &e {
            CoreError::DefaultCertificateNotDissociable { cert, listener } => format!(
                "certificate {cert} is the default certificate of VServer {listener}; use UpdateSSLBinding to replace it"
            ),
            _ => e.to_string(),
        };
        UError { code, message: ucloud_ids(&message) }
    }
}
