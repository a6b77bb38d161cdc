//! certbind's HTTP surface on the API address: `/healthz`, `/metrics`, the native API
//! under `/v1`, and (at `/`) the cloud dialects, told apart by the shape of the request.

mod audit_trail;
mod auth;
mod body;
pub mod dialects;
mod native;
mod request_id;

pub use auth::{sign_native_request, Signed, NATIVE_AUTH_SCHEME, NONCE_HEADER};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use certbind_control::Control;
use certbind_core::ids::ListenerId;
use certbind_core::serving::ListenerRuntime;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Largest request body accepted (a PEM bundle with a long chain fits many times over).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the API shows of the data plane.
pub trait DataPlaneView: Send + Sync + 'static {
    fn metrics_text(&self) -> String;
    fn listener_runtime(&self, id: ListenerId) -> Option<ListenerRuntime>;
    fn served_revision(&self) -> i64;
}

#[derive(Clone)]
pub struct ApiState {
    pub control: Control,
    pub dataplane: Option<Arc<dyn DataPlaneView>>,
    /// Set once the server has loaded its state and the data plane serves it.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/v1", native::audited(native::routes(), state.clone()))
        .fallback(dialects::dispatch)
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// 200 while the data plane serves what is stored (it goes on serving from memory when
/// the store cannot take writes), with whether changes can be stored now.
async fn healthz(State(state): State<ApiState>) -> Response {
    let serving = state.ready.load(Ordering::Acquire);
    let writable = writable(&state).await;
    let body = serde_json::json!({
        "status": if serving { "serving" } else { "starting" },
        "serving": serving,
        "writable": writable.is_ok(),
        "write_error": writable.err(),
    });
    let status = if serving { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// 200 only when serving and able to store changes: what a load balancer in front of
/// several certbind nodes should route API writes by.
async fn readyz(State(state): State<ApiState>) -> Response {
    let serving = state.ready.load(Ordering::Acquire);
    match (serving, writable(&state).await) {
        (true, Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response(),
        (true, Err(code)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not writable: {code}\n")).into_response(),
    }
}

async fn writable(state: &ApiState) -> Result<(), &'static str> {
    let control = state.control.clone();
    request_id::spawn_blocking(move || control.writable()).await.unwrap_or(Err("InternalError"))
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let text = state.dataplane.as_ref().map(|d| d.metrics_text()).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
