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
        .route("/metrics", get(metrics))
        .nest("/v1", native::audited(native::routes(), state.clone()))
        .fallback(dialects::dispatch)
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

async fn healthz(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let text = state.dataplane.as_ref().map(|d| d.metrics_text()).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
