//! The native API's audit trail: every write and every refused request, recorded after
//! the answer is known, with who (account, user, key), from where, what and how it ended.
//! Never a secret: bodies are not recorded, only the path that names the objects.

use crate::{audit_trail, request_id, ApiState};
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use certbind_control::AuditFacts;
use http_body_util::BodyExt;
use std::net::SocketAddr;

pub async fn record(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route =
        request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| path.clone());
    let source = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string());
    let key_id = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .map(|rest| rest.split(',').next().unwrap_or("").trim().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    tracing::debug!(%method, %path, status = status.as_u16(), elapsed = ?started.elapsed(), "request handled");
    let write = method != Method::GET && method != Method::HEAD;
    let refused = status.as_u16() == 401 || status.as_u16() == 403;
    if !write && !refused {
        return response;
    }
    // The error code is in the body; it is small JSON, so read it and put it back.
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let code = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
    let outcome = if refused {
        "denied"
    } else if status.is_success() {
        "allowed"
    } else {
        "failed"
    };
    let action = format!("certbind:{method} {route}");
    let resources = vec![path];
    let facts = AuditFacts {
        dialect: "native",
        action,
        resources,
        outcome,
        error_code: code,
        source,
        request_id: request_id::current(),
    };
    audit_trail::record(&state.control, key_id, facts).await;
    Response::from_parts(parts, Body::from(bytes))
}
