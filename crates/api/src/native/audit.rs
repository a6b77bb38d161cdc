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
    let action = policy_action(&method, &route).unwrap_or_else(|| format!("certbind:{method} {route}"));
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

/// The action a native operation is named by in policies (`certbind:ReplaceCertificate`),
/// as the OpenAPI document gives it for the route; `None` for a route it does not know.
fn policy_action(method: &Method, route: &str) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static ACTIONS: OnceLock<HashMap<(String, String), String>> = OnceLock::new();
    let actions = ACTIONS.get_or_init(|| {
        let document: serde_json::Value = serde_json::from_str(include_str!("openapi.json")).unwrap_or_default();
        let mut actions = HashMap::new();
        for (path, operations) in document["paths"].as_object().into_iter().flatten() {
            for (verb, operation) in operations.as_object().into_iter().flatten() {
                if let Some(action) = operation["x-certbind-action"].as_str() {
                    actions.insert((verb.to_ascii_uppercase(), path.clone()), action.to_string());
                }
            }
        }
        actions
    });
    actions.get(&(method.as_str().to_string(), route.to_string())).cloned()
}
