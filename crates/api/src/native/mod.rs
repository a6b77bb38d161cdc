//! The native JSON API under `/v1`. Every request is signed (see `auth`); every answer is
//! JSON; every error uses the envelope in `error`.

mod access;
mod accounts;
mod audit;
mod certificates;
pub mod error;
mod jobs;
mod load_balancers;

use crate::auth::{self, SignedRequest, DATE_HEADER, NONCE_HEADER};
use crate::body::{read_limited, BodyError};
use crate::{ApiState, MAX_BODY_BYTES};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use certbind_control::{Caller, Control};
use error::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/account", get(accounts::whoami))
        .route("/accounts", post(accounts::create_account))
        .route("/access-keys", get(accounts::list_keys).post(accounts::create_key))
        .route("/access-keys/{key_id}", axum::routing::delete(accounts::delete_key).patch(accounts::update_key))
        .route("/projects", get(accounts::list_projects).post(accounts::create_project))
        .route("/regions", get(accounts::regions))
        .route("/certificates", get(certificates::list).post(certificates::upload))
        .route("/certificates/{id}", get(certificates::show).patch(certificates::update).delete(certificates::delete))
        .route("/certificates/{id}/private-key", get(certificates::private_key))
        .route("/load-balancers", get(load_balancers::list_lbs).post(load_balancers::create_lb))
        .route(
            "/load-balancers/{id}",
            get(load_balancers::show_lb).patch(load_balancers::update_lb).delete(load_balancers::delete_lb),
        )
        .route("/listeners", get(load_balancers::list_listeners).post(load_balancers::create_listener))
        .route(
            "/listeners/{id}",
            get(load_balancers::show_listener)
                .patch(load_balancers::update_listener)
                .delete(load_balancers::delete_listener),
        )
        .route("/listeners/{id}/backends", post(load_balancers::add_backend))
        .route("/listeners/{id}/backends/{backend}", axum::routing::delete(load_balancers::remove_backend))
        .route("/listeners/{id}/default-certificate", post(jobs::set_default))
        .route("/listeners/{id}/associate", post(jobs::associate))
        .route("/listeners/{id}/dissociate", post(jobs::dissociate))
        .route("/replace", post(jobs::replace))
        .route("/one-click-update", post(jobs::one_click_update))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/targets", get(jobs::targets))
        .route("/users", get(access::list_users).post(access::create_user))
        .route("/users/{name}", get(access::show_user).delete(access::delete_user))
        .route("/users/{name}/access-keys", post(access::create_user_key))
        .route(
            "/users/{name}/access-keys/{key_id}",
            axum::routing::patch(access::update_user_key).delete(access::delete_user_key),
        )
        .route("/users/{name}/policies/{policy}", post(access::attach).delete(access::detach))
        .route("/policies", get(access::list_policies))
        .route("/policies/{name}", axum::routing::put(access::put_policy).delete(access::delete_policy))
        .route("/policy-simulation", post(access::simulate))
        .route("/audit-log", get(access::audit))
}

/// Records writes and refusals of the native API in the audit log.
pub fn audited(router: Router<ApiState>, state: ApiState) -> Router<ApiState> {
    router.layer(axum::middleware::from_fn_with_state(state, audit::record))
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such endpoint; the native API lives under /v1")
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

/// A verified request: who signed it, and its query and body still to be parsed.
pub struct Authed {
    pub caller: Caller,
    pub control: Control,
    pub dataplane: Option<std::sync::Arc<dyn crate::DataPlaneView>>,
    query: String,
    body: Bytes,
}

impl FromRequest<ApiState> for Authed {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let body = read_limited(body, MAX_BODY_BYTES).await.map_err(|e| match e {
            BodyError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLarge",
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            ),
            BodyError::Unreadable(reason) => ApiError::bad_request("InvalidRequest", reason),
        })?;
        let header_text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let authorization = header_text(header::AUTHORIZATION.as_str());
        let date = header_text(DATE_HEADER);
        let nonce = header_text(NONCE_HEADER);
        let method = parts.method.to_string();
        // Signed over the path as sent: the nested router strips the `/v1` prefix.
        let uri =
            parts.extensions.get::<axum::extract::OriginalUri>().map(|o| o.0.clone()).unwrap_or(parts.uri.clone());
        let path = uri.path().to_string();
        let query = uri.query().unwrap_or("").to_string();
        let control = state.control.clone();
        let (caller, body, query) = blocking(move || {
            let caller = auth::verify(
                &control,
                &SignedRequest {
                    authorization: authorization.as_deref(),
                    date: date.as_deref(),
                    nonce: nonce.as_deref(),
                    method: &method,
                    path: &path,
                    query: &query,
                    body: &body,
                },
            )?;
            Ok((caller, body, query))
        })
        .await?;
        Ok(Authed { caller, control: state.control.clone(), dataplane: state.dataplane.clone(), query, body })
    }
}

impl Authed {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return serde_json::from_str("{}")
                .map_err(|e| ApiError::bad_request("InvalidParameter", format!("request body: {e}")));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request("InvalidParameter", format!("request body: {e}")))
    }

    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_urlencoded::from_str(&self.query)
            .map_err(|e| ApiError::bad_request("InvalidParameter", format!("query: {e}")))
    }

    /// Runs a control-plane call on the blocking pool (the store blocks).
    pub async fn run<T, F>(self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Control, &Caller) -> certbind_control::Result<T> + Send + 'static,
    {
        blocking(move || f(&self.control, &self.caller).map_err(ApiError::from)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    crate::request_id::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string())))
}

/// Options every write may carry: a client token, and a dry run for binding operations.
#[derive(Debug, Default, Deserialize)]
pub struct WriteOptions {
    #[serde(default)]
    pub client_token: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// A body with its write options alongside the operation's own fields.
#[derive(Deserialize)]
pub struct WithOptions<T> {
    #[serde(flatten)]
    pub request: T,
    #[serde(flatten)]
    pub options: WriteOptions,
}

/// A page of a list.
#[derive(Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    pub offset: u64,
    #[serde(default = "default_limit")]
    pub limit: u64,
}

fn default_limit() -> u64 {
    100
}

pub fn check_limit(limit: u64) -> Result<u64, ApiError> {
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("InvalidParameter", "limit must be between 1 and 1000"));
    }
    Ok(limit)
}

pub fn ok<T: Serialize>(value: T) -> Response {
    Json(value).into_response()
}

pub fn created<T: Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

pub fn accepted<T: Serialize>(value: T) -> Response {
    (StatusCode::ACCEPTED, Json(value)).into_response()
}

pub fn parse_id<T>(text: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, ApiError> {
    parse(text).ok_or_else(|| ApiError::bad_request("InvalidParameter", format!("{text:?} is not a {what} id")))
}
