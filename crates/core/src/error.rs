//! The domain's typed errors. Every dialect maps these to its own envelope and codes in
//! one function; the `code()` here is what the native API shows.

use crate::cert::CertError;
use thiserror::Error;

/// How an error should be answered, independent of dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    QuotaExceeded,
    /// The request was fine; the server cannot store changes now (try again later).
    Unavailable,
    Internal,
}

/// Why the store could not take a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFailure {
    Full,
    ReadOnly,
    Busy,
    Unavailable,
}

impl StorageFailure {
    pub fn code(self) -> &'static str {
        match self {
            StorageFailure::Full => "StorageFull",
            StorageFailure::ReadOnly => "StorageReadOnly",
            StorageFailure::Busy => "StorageBusy",
            StorageFailure::Unavailable => "StorageUnavailable",
        }
    }

    fn message(self) -> &'static str {
        match self {
            StorageFailure::Full => "the database's disk is full: no change can be stored until space is freed",
            StorageFailure::ReadOnly => "the database cannot be written (read-only file or file system)",
            StorageFailure::Busy => "the database is locked by another writer; try again",
            StorageFailure::Unavailable => "the database cannot be read or written now (I/O error)",
        }
    }
}

#[derive(Debug, Error)]
pub enum CoreError {
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },

    #[error("invalid parameter {field}: {reason}")]
    InvalidArgument { field: String, reason: String },

    #[error(transparent)]
    Certificate(#[from] CertError),

    #[error("certificate {existing} has the same fingerprint; upload with allow_duplicate to store it again")]
    DuplicateCertificate { existing: String },

    #[error("certificate {cert} is bound to {listeners} listener(s); dissociate or replace it first")]
    CertificateInUse { cert: String, listeners: u64 },

    #[error("listener {listener} uses {protocol}, which carries no certificate")]
    ListenerNotTls { listener: String, protocol: String },

    #[error(
        "certificate {cert} is the default certificate of listener {listener}; replace it instead of dissociating it"
    )]
    DefaultCertificateNotDissociable { cert: String, listener: String },

    #[error("certificate {cert} is not bound to listener {listener}")]
    CertificateNotBound { cert: String, listener: String },

    #[error("at most {max} certificates per request, {given} given")]
    TooManyCertificates { max: usize, given: usize },

    #[error("load balancer {load_balancer} would carry {would_be} additional certificates, over its quota of {max}")]
    AdditionalCertificateQuotaExceeded { load_balancer: String, max: u32, would_be: u64 },

    #[error("a {protocol} listener needs a default certificate")]
    DefaultCertificateRequired { protocol: String },

    #[error("listener {listener} does not belong to load balancer {load_balancer}")]
    OwnershipMismatch { listener: String, load_balancer: String },

    #[error("certificate {cert} is not bound to any listener in the requested scope")]
    OldCertificateNotBound { cert: String },

    #[error("old and new certificate are the same ({cert})")]
    SameCertificate { cert: String },

    #[error("{protocol} is not available on a {lb_type} load balancer")]
    ProtocolNotAllowed { protocol: String, lb_type: String },

    #[error("port {port} on load balancer {load_balancer} is already used by listener {listener}")]
    PortInUse { port: u16, load_balancer: String, listener: String },

    #[error("load balancer {load_balancer} still has {listeners} listener(s); delete them first")]
    LoadBalancerNotEmpty { load_balancer: String, listeners: u64 },

    #[error("listener {listener} is still being changed by another job; try again once it is done")]
    ListenerBusy { listener: String },

    #[error("client token {token:?} was already used for a different request")]
    IdempotencyConflict { token: String },

    #[error("{0}")]
    Unauthenticated(String),

    #[error("{0}")]
    Forbidden(String),

    /// `detail` is for the operator's log, never for a client.
    #[error("{}; nothing was changed", failure.message())]
    Storage { failure: StorageFailure, detail: String },

    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        CoreError::NotFound { what, id: id.to_string() }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// A stable, specific code for the native API and for logs.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::NotFound { what, .. } => match *what {
                "certificate" => "CertificateNotFound",
                "load balancer" => "LoadBalancerNotFound",
                "listener" => "ListenerNotFound",
                "job" => "JobNotFound",
                "project" => "ProjectNotFound",
                "backend" => "BackendNotFound",
                "access key" => "AccessKeyNotFound",
                "account" => "AccountNotFound",
                _ => "NotFound",
            },
            CoreError::InvalidArgument { .. } => "InvalidParameter",
            CoreError::Certificate(e) => e.code(),
            CoreError::DuplicateCertificate { .. } => "CertificateDuplicate",
            CoreError::CertificateInUse { .. } => "CertificateInUse",
            CoreError::ListenerNotTls { .. } => "ListenerProtocolNotTls",
            CoreError::DefaultCertificateNotDissociable { .. } => "DefaultCertificateNotDissociable",
            CoreError::CertificateNotBound { .. } => "CertificateNotBound",
            CoreError::TooManyCertificates { .. } => "TooManyCertificatesInRequest",
            CoreError::AdditionalCertificateQuotaExceeded { .. } => "AdditionalCertificateQuotaExceeded",
            CoreError::DefaultCertificateRequired { .. } => "DefaultCertificateRequired",
            CoreError::OwnershipMismatch { .. } => "ListenerOwnershipMismatch",
            CoreError::OldCertificateNotBound { .. } => "OldCertificateNotBound",
            CoreError::SameCertificate { .. } => "SameCertificate",
            CoreError::ProtocolNotAllowed { .. } => "ProtocolNotAllowed",
            CoreError::PortInUse { .. } => "PortInUse",
            CoreError::LoadBalancerNotEmpty { .. } => "LoadBalancerNotEmpty",
            CoreError::ListenerBusy { .. } => "ListenerBusy",
            CoreError::IdempotencyConflict { .. } => "IdempotencyConflict",
            CoreError::Unauthenticated(_) => "Unauthenticated",
            CoreError::Forbidden(_) => "Forbidden",
            CoreError::Storage { failure, .. } => failure.code(),
            CoreError::Internal(_) => "InternalError",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::NotFound { .. } => ErrorKind::NotFound,
            CoreError::InvalidArgument { .. }
            | CoreError::Certificate(_)
            | CoreError::ListenerNotTls { .. }
            | CoreError::DefaultCertificateNotDissociable { .. }
            | CoreError::CertificateNotBound { .. }
            | CoreError::DefaultCertificateRequired { .. }
            | CoreError::OwnershipMismatch { .. }
            | CoreError::OldCertificateNotBound { .. }
            | CoreError::SameCertificate { .. }
            | CoreError::ProtocolNotAllowed { .. } => ErrorKind::InvalidArgument,
            CoreError::DuplicateCertificate { .. }
            | CoreError::CertificateInUse { .. }
            | CoreError::PortInUse { .. }
            | CoreError::LoadBalancerNotEmpty { .. }
            | CoreError::ListenerBusy { .. }
            | CoreError::IdempotencyConflict { .. } => ErrorKind::Conflict,
            CoreError::TooManyCertificates { .. } | CoreError::AdditionalCertificateQuotaExceeded { .. } => {
                ErrorKind::QuotaExceeded
            }
            CoreError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            CoreError::Forbidden(_) => ErrorKind::Forbidden,
            CoreError::Storage { .. } => ErrorKind::Unavailable,
            CoreError::Internal(_) => ErrorKind::Internal,
        }
    }
}
