//! Every request gets an id, echoed in `x-request-id` and in every error body, so a user
//! can quote it and an operator can find it in the logs.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use ring::rand::{SecureRandom, SystemRandom};
use tracing::Instrument;

tokio::task_local! {
    /// The current request's id, for error bodies built far from the request.
    static CURRENT: String;
}

/// The id of the request being handled on this task (empty outside one).
pub fn current() -> String {
    CURRENT.try_with(|id| id.clone()).unwrap_or_default()
}

/// Runs `f` on the blocking pool as part of the current request: its id (for error
/// bodies and log lines) and its tracing span go along.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let id = current();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || CURRENT.sync_scope(id, || span.in_scope(f)))
}

/// Logs a failure to store a change, once per request, with the request's id and what
/// the store said (which the client is not told).
pub fn log_storage_failure(failure: certbind_core::StorageFailure, detail: &str) {
    tracing::error!(request_id = %current(), code = failure.code(), %detail, "storage failure: the request changed nothing");
}

pub fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    // Uniqueness, not secrecy: a failed fill still yields a usable (zero) id.
    let _ = SystemRandom::new().fill(&mut bytes);
    let hex = hex::encode_upper(bytes);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

pub async fn assign(request: Request, next: Next) -> Response {
    let id = new_request_id();
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = CURRENT.scope(id.clone(), next.run(request).instrument(span)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
