//! The data plane's errors. None of them ever carries private key bytes.

use certbind_core::CertId;

/// Why one certificate could not be made servable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CertLoadError {
    #[error("the certificate chain is empty")]
    EmptyChain,
    #[error("the private key is not a PEM private key")]
    KeyPem,
    #[error("the private key cannot be used: {0}")]
    Key(String),
    #[error("the serving source returned no material for it")]
    Missing,
    #[error("the serving source failed: {0}")]
    Source(String),
}

/// Why a listener's certificate set for a revision could not be built.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("certificate {cert} of revision {revision} cannot be served: {source}")]
pub struct ListenerBuildError {
    pub revision: i64,
    pub cert: CertId,
    pub source: CertLoadError,
}

/// Why a whole snapshot could not be built.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("reading the serving state failed: {0}")]
    State(String),
    #[error("the snapshot build task failed: {0}")]
    Task(String),
}
