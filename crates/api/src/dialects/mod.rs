//! The cloud dialects, all served at `/` on the API address and told apart by the shape
//! of the request (GUIDE section 2; the contract in issue 2):
//!
//! - Tencent Cloud API 3.0: an `X-TC-Action` header;
//! - Alibaba Cloud (ALB, NLB, CAS): an `x-acs-action` header, or `Action` with
//!   `SignatureVersion` in the query (the legacy RPC form);
//! - UCloud: `Action`, `PublicKey` and `Signature` fields in a form (or JSON) body or
//!   the query.
//!
//! Each dialect lives in its own module with its signature check, its action table, its
//! request and response types, and one function mapping core errors to its own codes.

pub mod aliyun;
mod audit;
pub mod resources;
pub mod tencent;
pub mod ucloud;
pub mod untrusted;

use crate::body::{read_limited, BodyError};
use crate::native::error::ApiError;
use crate::{ApiState, MAX_BODY_BYTES};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// A dialect request, its body read in full (bounded by [`MAX_BODY_BYTES`]).
pub struct DialectRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address, when the server knows it (for the audit log).
    pub peer: Option<SocketAddr>,
}

impl DialectRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Query parameters, percent-decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(self.uri.query().unwrap_or("")).unwrap_or_default()
    }

    /// Form-body parameters (for `application/x-www-form-urlencoded` bodies).
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        let is_form = self
            .header("content-type")
            .map(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
            .unwrap_or(false);
        if !is_form {
            return Vec::new();
        }
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Tencent,
    Aliyun,
    Ucloud,
}

/// Which dialect a request speaks, from its shape alone (before any parsing that could
/// fail).
pub fn classify(request: &DialectRequest) -> Option<Dialect> {
    if request.header("x-tc-action").is_some() {
        return Some(Dialect::Tencent);
    }
    if request.header("x-acs-action").is_some() {
        return Some(Dialect::Aliyun);
    }
    let query = request.query_pairs();
    let has = |pairs: &[(String, String)], key: &str| pairs.iter().any(|(k, _)| k == key);
    if has(&query, "Action") && has(&query, "SignatureVersion") {
        return Some(Dialect::Aliyun);
    }
    let form = request.form_pairs();
    // Tencent's legacy HmacSHA1/HmacSHA256 form: no X-TC-* headers, common parameters
    // (SecretId, Nonce, Signature) in the form body or the query.
    let tencent_legacy =
        |pairs: &[(String, String)]| has(pairs, "SecretId") && has(pairs, "Nonce") && has(pairs, "Action");
    if tencent_legacy(&form) || tencent_legacy(&query) {
        return Some(Dialect::Tencent);
    }
    if has(&form, "Action") && has(&form, "PublicKey") {
        return Some(Dialect::Ucloud);
    }
    if has(&query, "Action") && has(&query, "PublicKey") {
        return Some(Dialect::Ucloud);
    }
    let json_fields = request
        .header("content-type")
        .filter(|ct| ct.to_ascii_lowercase().starts_with("application/json"))
        .and_then(|_| serde_json::from_slice::<serde_json::Value>(&request.body).ok());
    if let Some(serde_json::Value::Object(map)) = json_fields {
        if map.contains_key("Action") && map.contains_key("PublicKey") {
            return Some(Dialect::Ucloud);
        }
    }
    None
}

/// The handler for `/` (and any path the native API does not claim).
pub async fn dispatch(State(state): State<ApiState>, request: Request) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (parts, body) = request.into_parts();
    let body = match read_limited(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { head, tail }) => {
            // Parameters cut at either end make no pair; those whole on either side stay.
            let mut kept = head.to_vec();
            kept.push(b'&');
            kept.extend_from_slice(&tail);
            let body = Bytes::from(kept);
            let request = DialectRequest { method: parts.method, uri: parts.uri, headers: parts.headers, body, peer };
            return refuse_too_large(&state, request).await;
        }
        Err(BodyError::Unreadable(reason)) => return ApiError::bad_request("InvalidRequest", reason).into_response(),
    };
    let request = DialectRequest { method: parts.method, uri: parts.uri, headers: parts.headers, body, peer };
    let Some(dialect) = classify(&request) else { return crate::native::not_found().await.into_response() };
    // Each dialect borrows the request; the audit trail reads it again afterwards.
    let response = match dialect {
        Dialect::Tencent => tencent::handle(&state, clone_request(&request)).await,
        Dialect::Aliyun => aliyun::handle(&state, clone_request(&request)).await,
        Dialect::Ucloud => ucloud::handle(&state, clone_request(&request)).await,
    };
    audit::record(&state, dialect, &request, response).await
}

/// A body over [`MAX_BODY_BYTES`], refused in the envelope of the dialect its headers,
/// query and kept ends speak (a form with an `Action` that is no one else's is UCloud's),
/// and audited as a failed request.
async fn refuse_too_large(state: &ApiState, request: DialectRequest) -> Response {
    let dialect = classify(&request).or_else(|| {
        let form = request.form_pairs();
        let has = |key: &str| form.iter().any(|(k, _)| k == key);
        match (has("Action"), has("SecretId") || has("Nonce")) {
            (true, true) => Some(Dialect::Tencent),
            (true, false) => Some(Dialect::Ucloud),
            (false, _) => None,
        }
    });
    let response = match dialect {
        Some(Dialect::Tencent) => tencent::too_large(&request, MAX_BODY_BYTES),
        Some(Dialect::Aliyun) => aliyun::too_large(&request, MAX_BODY_BYTES),
        Some(Dialect::Ucloud) => ucloud::too_large(&request, MAX_BODY_BYTES),
        None => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLarge",
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            )
            .into_response()
        }
    };
    match dialect {
        Some(dialect) => audit::record(state, dialect, &request, response).await,
        None => response,
    }
}

fn clone_request(request: &DialectRequest) -> DialectRequest {
    DialectRequest {
        method: request.method.clone(),
        uri: request.uri.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
        peer: request.peer,
    }
}
