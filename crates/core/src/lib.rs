//! certbind's domain: the types every layer speaks and the rules that hold no matter
//! which dialect a request came through. Nothing in this crate performs I/O.

pub mod cert;
pub mod error;
pub mod ids;
pub mod model;
pub mod names;
pub mod parallel;
pub mod policy;
pub mod secret;
pub mod serving;

pub use error::{CoreError, ErrorKind, StorageFailure};
pub use ids::{AccountId, CertId, JobId, ListenerId, LoadBalancerId, PolicyId, ProjectId, UserId};

/// Seconds since the Unix epoch, the one clock representation certbind stores.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// RFC 3339 rendering of a stored timestamp, for responses.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
