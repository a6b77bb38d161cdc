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

/// The objects a request names, as `Parameter=value` for each id-like parameter
/// (`ListenerId`, `Certificates.1.CertificateId`, `SSLIds.0`, ...). Credentials, keys and
/// tokens are never taken, whatever their name.
fn named_objects(request: &DialectRequest) -> Vec<String> {
    const MAX: usize = 32;
    let is_id = |key: &str| {
        let last = key.rsplit('.').find(|part| part.parse::<u32>().is_err()).unwrap_or(key);
        (last.ends_with("Id") || last.ends_with("Ids"))
            && !["AccessKeyId", "SecretId", "RegionId", "ProjectId", "RequestId"].contains(&last)
            && !["Key", "Secret", "Signature", "Token", "Private"].iter().any(|word| key.contains(word))
    };
    let mut out: Vec<String> = Vec::new();
    let mut push = |key: &str, value: &str| {
        if out.len() < MAX && is_id(key) && !value.is_empty() && value.len() <= 128 {
            out.push(format!("{key}={value}"));
        }
    };
    for (key, value) in request.query_pairs().iter().chain(request.form_pairs().iter()) {
        push(key, value);
    }
    if let Ok(serde_json::Value::Object(body)) = serde_json::from_slice::<serde_json::Value>(&request.body) {
        for (key, value) in &body {
            match value {
                serde_json::Value::String(text) => push(key, text),
                serde_json::Value::Number(n) => push(key, &n.to_string()),
                serde_json::Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(text) = item.as_str() {
                            push(&format!("{key}.{i}"), text);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
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
            resources: named_objects(request),
            outcome,
            error_code: code,
            source: request.peer.map(|p| p.to_string()),
            request_id: request_id::current(),
        };
        audit_trail::record(&state.control, key_id, facts).await;
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, Method, Uri};

    #[test]
    fn audit_names_the_objects_and_never_a_credential() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        let request = DialectRequest {
            method: Method::POST,
            uri: Uri::from_static("/?ListenerId=lsn-1&AccessKeyId=CBSECRETKEY&Certificates.1.CertificateId=7-local"),
            headers,
            body: axum::body::Bytes::from_static(b"PublicKey=pk&PrivateKey=material&SSLIds.0=ssl-3&ClientToken=t"),
            peer: None,
        };
        let named = named_objects(&request);
        assert_eq!(named, vec!["ListenerId=lsn-1", "Certificates.1.CertificateId=7-local", "SSLIds.0=ssl-3"]);
    }
}
