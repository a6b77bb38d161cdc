//! The audit trail of the cloud dialects: every write and every refused request, with the
//! action in its cloud's vocabulary, the outcome and error code read back from the
//! dialect's own answer. Never a secret: bodies are not recorded.

use super::{Dialect, DialectRequest};
use crate::{audit_trail, request_id, ApiState};
use axum::body::Body;
use axum::response::Response;
use certbind_control::AuditFacts;
use http_body_util::BodyExt;

/// What the request asks for: `(vocabulary action, key id)`.
fn describe(dialect: Dialect, request: &DialectRequest) -> (String, Option<String>) {
    let query = request.query_pairs();
    let form = request.form_pairs();
    let param = |name: &str| {
        query.iter().chain(form.iter()).find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&request.body)
                .ok()
                .and_then(|v| v.get(name).and_then(|x| x.as_str()).map(str::to_string))
        })
    };
    let credential = |header: Option<&str>, separator: char| {
        header
            .and_then(|h| h.split("Credential=").nth(1))
            .map(|rest| rest.split([separator, ',']).next().unwrap_or("").trim().to_string())
    };
    match dialect {
        Dialect::Tencent => {
            let service = match request.header("x-tc-version").or(param("Version").as_deref()) {
                Some("2019-12-05") => "ssl",
                _ => "clb",
            };
            let action =
                request.header("x-tc-action").map(str::to_string).or_else(|| param("Action")).unwrap_or_default();
            let key = credential(request.header("authorization"), '/').or_else(|| param("SecretId"));
            (format!("{service}:{action}"), key)
        }
        Dialect::Aliyun => {
            let version = request.header("x-acs-version").map(str::to_string).or_else(|| param("Version"));
            let service = match version.as_deref() {
                Some("2020-06-16") => "alb",
                Some("2022-04-30") => "nlb",
                Some("2020-04-07") => "cas",
                _ => "acs",
            };
            let action =
                request.header("x-acs-action").map(str::to_string).or_else(|| param("Action")).unwrap_or_default();
            let key = credential(request.header("authorization"), ',').or_else(|| param("AccessKeyId"));
            (format!("{service}:{action}"), key)
        }
        Dialect::Ucloud => (format!("ulb:{}", param("Action").unwrap_or_default()), param("PublicKey")),
    }
}

/// The error code in a dialect's answer, if it is an error.
fn error_code(dialect: Dialect, status: u16, body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match dialect {
        Dialect::Tencent => value["Response"]["Error"]["Code"].as_str().map(str::to_string),
        Dialect::Aliyun => (status >= 400).then(|| value["Code"].as_str().unwrap_or("Unknown").to_string()),
        Dialect::Ucloud => match value["RetCode"].as_i64() {
            Some(0) | None => None,
            Some(code) => Some(code.to_string()),
        },
    }
}

/// Codes that mean "who are you / you may not": recorded as denied.
fn is_refusal(code: &str) -> bool {
    const UCLOUD_REFUSALS: [&str; 3] = ["171", "172", "4062"];
    code.starts_with("Forbidden")
        || code.starts_with("AuthFailure")
        || code.starts_with("InvalidAccessKeyId")
        || code.starts_with("SignatureDoesNotMatch")
        || code.starts_with("SignatureNonceUsed")
        || code.starts_with("InvalidTimeStamp")
        || UCLOUD_REFUSALS.contains(&code)
}

fn is_read(action: &str) -> bool {
    let name = action.split(':').nth(1).unwrap_or(action);
    ["Describe", "List", "Get", "Check", "Query"].iter().any(|prefix| name.starts_with(prefix))
}

/// Records the request if it was a write or was refused, and passes the answer on.
pub async fn record(state: &ApiState, dialect: Dialect, request: &DialectRequest, response: Response) -> Response {
    let (action, key_id) = describe(dialect, request);
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let code = error_code(dialect, parts.status.as_u16(), &bytes);
    let refused = code.as_deref().is_some_and(is_refusal);
    if refused || !is_read(&action) {
        let outcome = match (&code, refused) {
            (_, true) => "denied",
            (Some(_), false) => "failed",
            (None, false) => "allowed",
        };
        let dialect_name = match dialect {
            Dialect::Tencent => "tencent",
            Dialect::Aliyun => "aliyun",
            Dialect::Ucloud => "ucloud",
        };
        let facts = AuditFacts {
            dialect: dialect_name,
            action,
            resources: vec![request.uri.path().to_string()],
            outcome,
            error_code: code,
            source: request.peer.map(|p| p.to_string()),
            request_id: request_id::current(),
        };
        audit_trail::record(&state.control, key_id, facts).await;
    }
    Response::from_parts(parts, Body::from(bytes))
}
