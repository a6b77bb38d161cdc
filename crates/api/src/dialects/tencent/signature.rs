//! Reading a Tencent Cloud API 3.0 request and checking its signature: TC3-HMAC-SHA256
//! (the SDK default, POST with a JSON body or GET with a query) and the legacy
//! HmacSHA1 / HmacSHA256 form (parameters and signature in a form body or the query).

use super::errors::{TcError, TcResult};
use super::params::unflatten;
use super::DialectRequest;
use axum::http::Method;
use base64::Engine;
use certbind_core::now_unix;
use certbind_core::secret::constant_time_eq;
use ring::digest::{digest, SHA256};
use ring::hmac;
use serde_json::{Map, Value};

/// Requests more than this far from the server's clock are refused.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// A request read but not yet verified.
pub struct Incoming {
    pub action: String,
    pub version: String,
    pub region: Option<String>,
    params: Params,
    pub secret_id: String,
    /// Unix seconds the request was signed at.
    pub timestamp: i64,
    check: Check,
}

/// What identifies one signed request, for replay refusal.
pub struct ReplayIdentity {
    pub scope: &'static str,
    pub key: String,
    /// The last second the request would be accepted at.
    pub valid_until: i64,
    /// A legacy request has a nonce of its own: no honest client sends it twice.
    pub has_nonce: bool,
}

/// Where the action's parameters are, parsed only once the signature holds (so an
/// unsigned request learns nothing about what it sent).
enum Params {
    /// The JSON body (POST) or the flattened query (GET).
    Tc3,
    /// The legacy form's business parameters, unflattened.
    Legacy(Vec<(String, String)>),
}

enum Check {
    Tc3 { date: String, service: String, string_to_sign: String, given: String },
    Legacy { sha1: bool, string_to_sign: String, given: String, nonce: String },
}

/// Common parameters of the legacy form, not passed to the action.
const LEGACY_COMMON: &[&str] = &[
    "Action",
    "Version",
    "Region",
    "Timestamp",
    "Nonce",
    "SecretId",
    "Signature",
    "SignatureMethod",
    "Language",
    "RequestClient",
    "Token",
];

pub fn read(request: &DialectRequest) -> TcResult<Incoming> {
    let authorization = request.header("authorization").unwrap_or("").trim().to_string();
    if request.header("x-tc-action").is_some() && !authorization.is_empty() {
        return read_tc3(request, &authorization);
    }
    if request.header("x-tc-action").is_some() && authorization.is_empty() {
        // TC3 headers without a signature: maybe the legacy form in the body or query.
        let pairs = legacy_pairs(request);
        if !pairs.iter().any(|(k, _)| k == "Signature") {
            return Err(TcError::auth("AuthFailure.InvalidAuthorization", "the Authorization header is missing"));
        }
    }
    read_legacy(request)
}

fn read_tc3(request: &DialectRequest, authorization: &str) -> TcResult<Incoming> {
    let invalid = |m: &str| TcError::auth("AuthFailure.InvalidAuthorization", m.to_string());
    let rest = authorization
        .strip_prefix("TC3-HMAC-SHA256")
        .ok_or_else(|| invalid("the Authorization header must use TC3-HMAC-SHA256"))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut given = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v.trim()),
            Some(("SignedHeaders", v)) => signed_headers = Some(v.trim()),
            Some(("Signature", v)) => given = Some(v.trim()),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(given)) = (credential, signed_headers, given) else {
        return Err(invalid("the Authorization header needs Credential=, SignedHeaders= and Signature="));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 4 || scope[3] != "tc3_request" || scope[0].is_empty() {
        return Err(invalid("Credential must be SecretId/YYYY-MM-DD/service/tc3_request"));
    }
    let (secret_id, date, service) = (scope[0], scope[1], scope[2]);
    let timestamp: i64 = request
        .header("x-tc-timestamp")
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| invalid("the X-TC-Timestamp header is missing or not unix seconds"))?;
    check_skew(timestamp)?;
    let expected_date = time::OffsetDateTime::from_unix_timestamp(timestamp)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default();
    if date != expected_date {
        return Err(TcError::auth(
            "AuthFailure.SignatureFailure",
            "the credential scope date is not the UTC date of X-TC-Timestamp",
        ));
    }
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(invalid("SignedHeaders is malformed"));
        }
        let value = request.header(&name).unwrap_or("").trim().to_ascii_lowercase();
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let payload_hash = if request.header("x-tc-content-sha256") == Some("UNSIGNED-PAYLOAD") {
        hex::encode(digest(&SHA256, b"UNSIGNED-PAYLOAD"))
    } else {
        hex::encode(digest(&SHA256, &request.body))
    };
    let query = request.uri.query().unwrap_or("");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method.as_str(),
        request.uri.path(),
        query,
        canonical_headers,
        signed_headers.to_ascii_lowercase(),
        payload_hash
    );
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        hex::encode(digest(&SHA256, canonical_request.as_bytes()))
    );
    let params = Params::Tc3;
    Ok(Incoming {
        action: request.header("x-tc-action").unwrap_or("").to_string(),
        version: request.header("x-tc-version").unwrap_or("").to_string(),
        region: request.header("x-tc-region").filter(|r| !r.is_empty()).map(str::to_string),
        params,
        secret_id: secret_id.to_string(),
        timestamp,
        check: Check::Tc3 {
            date: date.to_string(),
            service: service.to_string(),
            string_to_sign,
            given: given.to_ascii_lowercase(),
        },
    })
}

fn legacy_pairs(request: &DialectRequest) -> Vec<(String, String)> {
    let mut pairs = request.query_pairs();
    pairs.extend(request.form_pairs());
    pairs
}

fn read_legacy(request: &DialectRequest) -> TcResult<Incoming> {
    let invalid = |m: &str| TcError::auth("AuthFailure.InvalidAuthorization", m.to_string());
    let pairs = legacy_pairs(request);
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let given = get("Signature").ok_or_else(|| invalid("the request carries no signature"))?;
    let secret_id = get("SecretId").filter(|s| !s.is_empty()).ok_or_else(|| invalid("SecretId is missing"))?;
    let sha1 = match get("SignatureMethod").as_deref() {
        None | Some("HmacSHA1") => true,
        Some("HmacSHA256") => false,
        Some(_) => return Err(invalid("SignatureMethod must be HmacSHA1 or HmacSHA256")),
    };
    let timestamp: i64 = get("Timestamp")
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| invalid("Timestamp is missing or not unix seconds"))?;
    check_skew(timestamp)?;
    let nonce = get("Nonce")
        .filter(|n| !n.is_empty() && n.len() <= 64)
        .ok_or_else(|| invalid("Nonce is missing or longer than 64 characters"))?;
    let mut signed: Vec<(String, String)> =
        pairs.iter().filter(|(k, _)| k != "Signature").map(|(k, v)| (k.replace('_', "."), v.clone())).collect();
    signed.sort();
    let joined: Vec<String> = signed.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let string_to_sign = format!(
        "{}{}{}?{}",
        request.method.as_str(),
        request.header("host").unwrap_or(""),
        request.uri.path(),
        joined.join("&")
    );
    let business: Vec<(String, String)> =
        pairs.iter().filter(|(k, _)| !LEGACY_COMMON.contains(&k.as_str())).cloned().collect();
    Ok(Incoming {
        action: get("Action").unwrap_or_default(),
        version: get("Version").unwrap_or_default(),
        region: get("Region").filter(|r| !r.is_empty()),
        params: Params::Legacy(business),
        secret_id,
        timestamp,
        check: Check::Legacy { sha1, string_to_sign, given, nonce },
    })
}

fn check_skew(timestamp: i64) -> TcResult<()> {
    if (now_unix() - timestamp).abs() > MAX_SKEW_SECONDS {
        return Err(TcError::auth(
            "AuthFailure.SignatureExpire",
            "the request timestamp is more than 5 minutes from the server's clock",
        ));
    }
    Ok(())
}

fn hmac256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message).as_ref().to_vec()
}

impl Incoming {
    /// The nonce where the request has one (legacy), else the signature itself (TC3),
    /// valid for as long as the timestamp is.
    pub fn replay_identity(&self) -> ReplayIdentity {
        let valid_until = self.timestamp + MAX_SKEW_SECONDS;
        match &self.check {
            Check::Tc3 { given, .. } => ReplayIdentity {
                scope: "tencent-tc3",
                key: format!("{}\n{given}", self.secret_id),
                valid_until,
                has_nonce: false,
            },
            Check::Legacy { nonce, .. } => ReplayIdentity {
                scope: "tencent-nonce",
                key: format!("{}\n{nonce}", self.secret_id),
                valid_until,
                has_nonce: true,
            },
        }
    }

    /// The action's parameters as one JSON object (call after [`Incoming::verify`]).
    pub fn params(&self, request: &DialectRequest) -> TcResult<Map<String, Value>> {
        match &self.params {
            Params::Legacy(pairs) => unflatten(pairs),
            Params::Tc3 if request.method == Method::GET => unflatten(&request.query_pairs()),
            Params::Tc3 if request.body.iter().all(|b| b.is_ascii_whitespace()) => Ok(Map::new()),
            Params::Tc3 => match serde_json::from_slice::<Value>(&request.body) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err(TcError::invalid("body", "the request body must be a JSON object")),
                Err(e) => Err(TcError::invalid("body", format!("the request body is not JSON: {e}"))),
            },
        }
    }

    /// Checks the signature against the SecretId's secret, in constant time.
    pub fn verify(&self, secret: &str) -> TcResult<()> {
        let ok = match &self.check {
            Check::Tc3 { date, service, string_to_sign, given } => {
                let secret_date = hmac256(format!("TC3{secret}").as_bytes(), date.as_bytes());
                let secret_service = hmac256(&secret_date, service.as_bytes());
                let secret_signing = hmac256(&secret_service, b"tc3_request");
                let expected = hex::encode(hmac256(&secret_signing, string_to_sign.as_bytes()));
                constant_time_eq(expected.as_bytes(), given.as_bytes())
            }
            Check::Legacy { sha1, string_to_sign, given, .. } => {
                let algorithm = if *sha1 { hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY } else { hmac::HMAC_SHA256 };
                let tag = hmac::sign(&hmac::Key::new(algorithm, secret.as_bytes()), string_to_sign.as_bytes());
                let expected = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
                constant_time_eq(expected.as_bytes(), given.as_bytes())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(TcError::auth(
                "AuthFailure.SignatureFailure",
                "the request signature does not match; check the SecretKey and the signing method",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the wire reference (section 1.4), end to end minus the clock.
    #[test]
    fn tc3_worked_example() {
        let body = br#"{"CertificatePublicKey": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "CertificatePrivateKey": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "Alias": "my-cert", "Repeatable": false}"#;
        assert_eq!(
            hex::encode(digest(&SHA256, body)),
            "b29f3f549270081949a3a48d221466891bfcdbe5b0e06f32648a7e15d3acaf39"
        );
        let incoming = Incoming {
            action: "UploadCertificate".into(),
            version: "2019-12-05".into(),
            region: None,
            params: Params::Tc3,
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE".into(),
            timestamp: 1700000000,
            check: Check::Tc3 {
                date: "2023-11-14".into(),
                service: "ssl".into(),
                string_to_sign: "TC3-HMAC-SHA256\n1700000000\n2023-11-14/ssl/tc3_request\n50f9dc75913ccb84a6a8d74a6fe593c4b9608eb999fe0b75b81d4102e519a8e1".into(),
                given: "8e4233ce5a8aa80021ea19d59e1f836c08894b161e46249db8abbeb69372a7b1".into(),
            },
        };
        incoming.verify("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE").unwrap();
        assert_eq!(incoming.verify("wrong").unwrap_err().code, "AuthFailure.SignatureFailure");
    }
}
