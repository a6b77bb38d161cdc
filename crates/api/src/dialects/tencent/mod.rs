//! The Tencent Cloud API 3.0 dialect: service `ssl` (2019-12-05) and `clb` (2018-03-17),
//! as the official Python SDKs send them (wire reference, section 1).
//!
//! Every answer is HTTP 200 with `Content-Type: application/json` exactly (the SDK only
//! looks for `Response.Error` under that type) and the `{"Response": {...}}` envelope.
//! A request is read (signature.rs), verified against the SecretId's secret, throttled
//! where the API says so, then handled by its action in ssl.rs or clb.rs, all on the
//! blocking pool since Control blocks on the store.

mod clb;
pub mod errors;
pub mod ids;
pub(crate) mod params;
pub(crate) mod signature;
mod ssl;

use super::DialectRequest;
use crate::ApiState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use certbind_control::{Caller, Control, Seen};
use certbind_core::ids::AccountId;
use errors::{TcError, TcResult};
use params::Params;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SSL_VERSION: &str = "2019-12-05";
pub const CLB_VERSION: &str = "2018-03-17";

/// Everything an action handler needs.
pub struct Ctx<'a> {
    pub control: &'a Control,
    pub caller: &'a Caller,
    /// `X-TC-Region` (or the legacy `Region`), when sent.
    pub region: Option<&'a str>,
    pub request_id: &'a str,
    pub params: Params,
}

/// A successful action's fields (without `RequestId`), and the `RequestId` to show when
/// the action chose one (CLB writes: the task id).
pub struct Answer {
    pub fields: Map<String, Value>,
    pub request_id: Option<String>,
}

impl Answer {
    pub fn new(fields: Value) -> TcResult<Answer> {
        match fields {
            Value::Object(fields) => Ok(Answer { fields, request_id: None }),
            _ => Err(TcError::new("InternalError", "an internal error occurred")),
        }
    }
}

pub async fn handle(state: &ApiState, request: DialectRequest) -> Response {
    let request_id = crate::request_id::current();
    let control = state.control.clone();
    let rid = request_id.clone();
    let result =
        crate::request_id::spawn_blocking(move || process(&control, &request, &rid)).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "tencent handler panicked");
            Err(TcError::new("InternalError", "an internal error occurred; quote the RequestId to the operator"))
        });
    match result {
        Ok(answer) => {
            let mut fields = answer.fields;
            fields.insert("RequestId".into(), Value::String(answer.request_id.unwrap_or(request_id)));
            respond(json!({ "Response": fields }))
        }
        Err(error) => respond(json!({
            "Response": {
                "Error": { "Code": error.code, "Message": error.message },
                "RequestId": request_id,
            }
        })),
    }
}

/// A request body over `limit` bytes, in Tencent's envelope (the code the cloud uses).
pub fn too_large(_request: &DialectRequest, limit: usize) -> Response {
    respond(json!({
        "Response": {
            "Error": {
                "Code": "RequestSizeLimitExceeded",
                "Message": format!("the request body exceeds {limit} bytes"),
            },
            "RequestId": crate::request_id::current(),
        }
    }))
}

fn respond(body: Value) -> Response {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (StatusCode::OK, bytes).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn process(control: &Control, request: &DialectRequest, request_id: &str) -> TcResult<Answer> {
    let incoming = signature::read(request)?;
    let (caller, secret) = control
        .access_key_secret(&incoming.secret_id)
        .map_err(errors::from_core)?
        .ok_or_else(|| TcError::auth("AuthFailure.SecretIdNotFound", "the SecretId does not exist or is disabled"))?;
    incoming.verify(secret.as_str())?;
    drop(secret);
    if incoming.action.is_empty() {
        return Err(TcError::missing("Action"));
    }
    refuse_replay(control, &incoming)?;
    // Policies name this action in Tencent's vocabulary (`ssl:UpdateCertificateInstance`).
    let service = if incoming.version == SSL_VERSION { "ssl" } else { "clb" };
    let caller = caller.acting_as(format!("{service}:{}", incoming.action));
    let ctx = Ctx {
        control,
        caller: &caller,
        region: incoming.region.as_deref(),
        request_id,
        params: Params(incoming.params(request)?),
    };
    match incoming.version.as_str() {
        SSL_VERSION => {
            if incoming.action == "UpdateCertificateInstance" {
                throttle(caller.account_id)?;
            }
            ssl::dispatch(&incoming.action, &ctx)
        }
        CLB_VERSION => clb::dispatch(&incoming.action, &ctx),
        "" => Err(TcError::missing("Version")),
        other => Err(TcError::new(
            "InvalidAction",
            format!(
                "no action {} in API version {other:?}; served are ssl {SSL_VERSION} and clb {CLB_VERSION}",
                incoming.action
            ),
        )),
    }
}

/// Seconds after a TC3 signature first arrived in which it may still name another write.
const SAME_SECOND_GRACE: i64 = 2;

/// A signed request is served once. A legacy request has a nonce: any repeat is a
/// replay. TC3 has none, and the SDK signs neither `X-TC-Action` nor `X-TC-Version`: two
/// honest requests with the same body in the same second carry the same signature, and
/// a captured one can be re-sent naming another action. So under a signature seen
/// before:
/// - a read may be asked for again (what an honest client repeats, and what a captured
///   read already disclosed);
/// - `UpdateCertificateInstance` may be sent again (its document says to call it again
///   with the same parameters until it returns a record; a repeat starts no second task);
/// - another write is allowed only within [`SAME_SECOND_GRACE`] of the signature's first
///   arrival (an honest client's two requests of one second: an attacker would have to
///   re-send a request within that instant), never as the same write again.
fn refuse_replay(control: &Control, incoming: &signature::Incoming) -> TcResult<()> {
    let identity = incoming.replay_identity();
    let action = format!("{}:{}", incoming.version, incoming.action);
    // An action served here that changes something; anything else changes nothing.
    let write = ssl::WRITES.contains(&incoming.action.as_str()) || clb::WRITES.contains(&incoming.action.as_str());
    let read = !write;
    let seen = control
        .seen_request(identity.scope, &identity.key, &action, identity.valid_until, read)
        .map_err(errors::from_core)?;
    let allowed = match seen {
        Seen::First => true,
        _ if identity.has_nonce => false,
        Seen::SameAction { .. } => read || incoming.action == "UpdateCertificateInstance",
        Seen::OtherAction { age } => read || age <= SAME_SECOND_GRACE,
    };
    if allowed {
        return Ok(());
    }
    Err(TcError::auth(
        "AuthFailure.SignatureExpire",
        "this signed request was already received (a replay); sign the request again",
    ))
}

pub fn invalid_action(action: &str) -> TcError {
    TcError::new("InvalidAction", format!("the action {action:?} does not exist in this API version"))
}

/// `UpdateCertificateInstance` calls allowed per second per account
/// (`CERTBIND_TENCENT_UPDATE_RATE`, default 10 as the API documents).
fn update_rate() -> usize {
    static RATE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        std::env::var("CERTBIND_TENCENT_UPDATE_RATE").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(10)
    })
}

fn throttle(account: AccountId) -> TcResult<()> {
    static WINDOWS: Mutex<Option<HashMap<AccountId, VecDeque<Instant>>>> = Mutex::new(None);
    let mut guard = WINDOWS.lock().unwrap_or_else(|p| p.into_inner());
    let windows = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    let window = windows.entry(account).or_default();
    while window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
        window.pop_front();
    }
    if window.len() >= update_rate() {
        return Err(TcError::new(
            "LimitExceeded.RateLimitExceeded",
            format!("UpdateCertificateInstance allows {} requests per second", update_rate()),
        ));
    }
    window.push_back(now);
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` in GMT+8, as the Tencent APIs show times.
pub fn tc_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix + 8 * 3600) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}
