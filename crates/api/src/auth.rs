//! The native API's request signature.
//!
//! ```text
//! Authorization: CERTBIND-HMAC-SHA256 Credential=<key id>, Signature=<hex>
//! X-Certbind-Date: <unix seconds>
//! X-Certbind-Nonce: <1 to 64 printable characters, new for every request>
//! signature = hex(HMAC-SHA256(secret, METHOD \n PATH \n QUERY \n DATE \n NONCE \n hex(SHA256(body))))
//! ```
//! The secret never crosses the wire; a request is good for 15 minutes either side of the
//! server's clock, and once: its nonce is remembered (in the store, for every node) for
//! as long as its date is valid.

use crate::native::error::ApiError;
use axum::http::StatusCode;
use certbind_control::{Caller, Control, Seen};
use certbind_core::secret::constant_time_eq;
use certbind_core::{now_unix, CoreError};
use ring::digest::{digest, SHA256};
use ring::hmac;

pub const NATIVE_AUTH_SCHEME: &str = "CERTBIND-HMAC-SHA256";
pub const DATE_HEADER: &str = "x-certbind-date";
pub const NONCE_HEADER: &str = "x-certbind-nonce";
const MAX_SKEW_SECONDS: i64 = 15 * 60;
const MAX_NONCE_LEN: usize = 64;

/// What a native request is signed over, besides the secret.
pub struct Signed<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub date: i64,
    pub nonce: &'a str,
    pub body: &'a [u8],
}

/// The `Authorization` header value for a request (used by the CLI and tests).
pub fn sign_native_request(key_id: &str, secret: &str, request: &Signed<'_>) -> String {
    let signature = signature(secret, request);
    format!("{NATIVE_AUTH_SCHEME} Credential={key_id}, Signature={signature}")
}

fn signature(secret: &str, r: &Signed<'_>) -> String {
    let body_hash = hex::encode(digest(&SHA256, r.body));
    let string_to_sign = format!("{}\n{}\n{}\n{}\n{}\n{body_hash}", r.method, r.path, r.query, r.date, r.nonce);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, string_to_sign.as_bytes()))
}

pub struct SignedRequest<'a> {
    pub authorization: Option<&'a str>,
    pub date: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// Verifies a native request, blocking on the store for the key's secret.
pub fn verify(control: &Control, request: &SignedRequest<'_>) -> Result<Caller, ApiError> {
    let unauthenticated = |message: &str| ApiError::from(CoreError::Unauthenticated(message.to_string()));
    let header = request.authorization.ok_or_else(|| unauthenticated("missing Authorization header"))?;
    let rest = header
        .strip_prefix(NATIVE_AUTH_SCHEME)
        .ok_or_else(|| unauthenticated("Authorization must use the CERTBIND-HMAC-SHA256 scheme"))?;
    let mut credential = None;
    let mut signature_hex = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", value)) => credential = Some(value.trim()),
            Some(("Signature", value)) => signature_hex = Some(value.trim()),
            _ => {}
        }
    }
    let (Some(key_id), Some(given)) = (credential, signature_hex) else {
        return Err(unauthenticated("Authorization needs Credential= and Signature="));
    };
    let date: i64 = request
        .date
        .and_then(|d| d.trim().parse().ok())
        .ok_or_else(|| unauthenticated("missing or malformed X-Certbind-Date header (unix seconds)"))?;
    if (now_unix() - date).abs() > MAX_SKEW_SECONDS {
        return Err(unauthenticated("X-Certbind-Date is more than 15 minutes from the server's clock"));
    }
    let nonce = request
        .nonce
        .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_LEN && n.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            unauthenticated("missing or malformed X-Certbind-Nonce header (1 to 64 printable characters)")
        })?;
    let (caller, secret) = control
        .access_key_secret(key_id)
        .map_err(ApiError::from)?
        .ok_or_else(|| unauthenticated(&format!("access key {key_id} does not exist or is disabled")))?;
    let signed =
        Signed { method: request.method, path: request.path, query: request.query, date, nonce, body: request.body };
    let expected = signature(&secret, &signed);
    if !constant_time_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes()) {
        return Err(unauthenticated("signature does not match; check the access key secret"));
    }
    let key = format!("{key_id}\n{nonce}");
    let read = matches!(request.method, "GET" | "HEAD");
    match control.seen_request("native-nonce", &key, "", date + MAX_SKEW_SECONDS, read)? {
        Seen::First => Ok(caller),
        Seen::SameAction { .. } | Seen::OtherAction { .. } => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "RequestReplayed",
            format!("nonce {nonce:?} was already used; every request needs a new X-Certbind-Nonce"),
        )),
    }
}
