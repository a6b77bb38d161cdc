//! Request signatures: ACS3-HMAC-SHA256 (what the SDKs send by default) and the legacy RPC
//! signature (HMAC-SHA1, `SignatureVersion=1.0`, `Config(signature_algorithm='v2')`).
//! Both are recomputed from the received bytes and compared in constant time.

use super::errors::{AliError, AliResult};
use crate::dialects::DialectRequest;
use base64::Engine;
use ring::{digest, hmac};

/// What a request claims about who signed it and when.
pub struct SignedClaim {
    pub key_id: String,
    /// `x-acs-date` or `Timestamp` (`YYYY-MM-DDTHH:MM:SSZ`).
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    scheme: Scheme,
}

enum Scheme {
    Acs3 { signed_headers: Vec<String>, signature: String },
    RpcV2 { signature: String },
}

/// RFC 3986 percent-encoding (unreserved kept, upper-case hex), as the SDK does.
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn incomplete(what: &str) -> AliError {
    AliError::new(
        400,
        "IncompleteSignature",
        format!("The request signature does not conform to Aliyun standards: {what}."),
    )
}

/// Reads the claim from the request, without checking it.
pub fn claim(request: &DialectRequest, query: &[(String, String)]) -> AliResult<SignedClaim> {
    if let Some(auth) = request.header("authorization") {
        let (algorithm, rest) = auth.trim().split_once(' ').ok_or_else(|| incomplete("malformed Authorization"))?;
        if algorithm != "ACS3-HMAC-SHA256" {
            return Err(incomplete("unsupported signature algorithm"));
        }
        let mut key_id = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',') {
            let Some((k, v)) = part.trim().split_once('=') else { continue };
            match k {
                "Credential" => key_id = Some(v.to_string()),
                "SignedHeaders" => signed_headers = Some(v.split(';').map(|h| h.trim().to_ascii_lowercase()).collect()),
                "Signature" => signature = Some(v.to_string()),
                _ => {}
            }
        }
        let (Some(key_id), Some(signed_headers), Some(signature)) = (key_id, signed_headers, signature) else {
            return Err(incomplete("Authorization lacks Credential, SignedHeaders or Signature"));
        };
        // What selects the operation, and what makes the request unique in time, must be
        // covered by the signature.
        let signed: &Vec<String> = &signed_headers;
        for required in ["host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce"] {
            if !signed.iter().any(|h| h == required) {
                return Err(incomplete(&format!("SignedHeaders must include {required}")));
            }
        }
        return Ok(SignedClaim {
            key_id,
            timestamp: request.header("x-acs-date").map(str::to_string),
            nonce: request.header("x-acs-signature-nonce").map(str::to_string),
            scheme: Scheme::Acs3 { signed_headers, signature },
        });
    }
    let find = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(signature) = find("Signature") else {
        return Err(AliError::missing("Signature"));
    };
    let key_id = find("AccessKeyId").ok_or_else(|| AliError::missing("AccessKeyId"))?;
    if let Some(method) = find("SignatureMethod") {
        if method != "HMAC-SHA1" {
            return Err(AliError::illegal("SignatureMethod", "only HMAC-SHA1 is supported"));
        }
    }
    Ok(SignedClaim {
        key_id,
        timestamp: find("Timestamp"),
        nonce: find("SignatureNonce"),
        scheme: Scheme::RpcV2 { signature },
    })
}

fn mismatch() -> AliError {
    AliError::new(
        400,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    )
}

/// Checks the signature with the key's secret.
pub fn verify(
    claim: &SignedClaim,
    request: &DialectRequest,
    query: &[(String, String)],
    form: &[(String, String)],
    secret: &str,
) -> AliResult<()> {
    let expected_ok = match &claim.scheme {
        Scheme::Acs3 { signed_headers, signature } => {
            let payload_hash = hex::encode(digest::digest(&digest::SHA256, &request.body));
            if let Some(claimed) = request.header("x-acs-content-sha256") {
                if !claimed.eq_ignore_ascii_case(&payload_hash) {
                    return Err(mismatch());
                }
            }
            let mut sorted: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            sorted.sort();
            let canonical_query =
                sorted.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&");
            let mut headers = String::new();
            for name in signed_headers {
                let values: Vec<&str> =
                    request.headers.get_all(name.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
                if values.is_empty() {
                    return Err(mismatch());
                }
                headers.push_str(name);
                headers.push(':');
                headers.push_str(values.join(",").trim());
                headers.push('\n');
            }
            let canonical_request = format!(
                "{}\n{}\n{}\n{}\n{}\n{}",
                request.method.as_str(),
                if request.uri.path().is_empty() { "/" } else { request.uri.path() },
                canonical_query,
                headers,
                signed_headers.join(";"),
                payload_hash
            );
            let string_to_sign = format!(
                "ACS3-HMAC-SHA256\n{}",
                hex::encode(digest::digest(&digest::SHA256, canonical_request.as_bytes()))
            );
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
            let computed = hex::encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
            certbind_core::secret::constant_time_eq(computed.as_bytes(), signature.to_ascii_lowercase().as_bytes())
        }
        Scheme::RpcV2 { signature } => {
            let mut params: Vec<(&str, &str)> = query
                .iter()
                .chain(form.iter())
                .filter(|(k, _)| k != "Signature")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            params.sort();
            let canonical = params.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&");
            let string_to_sign = format!("{}&{}&{}", request.method.as_str(), pct("/"), pct(&canonical));
            let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, format!("{secret}&").as_bytes());
            let computed =
                base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
            certbind_core::secret::constant_time_eq(computed.as_bytes(), signature.as_bytes())
        }
    };
    if expected_ok {
        Ok(())
    } else {
        Err(mismatch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, Method, Uri};

    /// The worked example (a) of the wire-protocol reference, section 2.5.
    #[test]
    fn acs3_worked_example_verifies() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:18081"),
            ("x-acs-version", "2020-06-16"),
            ("x-acs-action", "AssociateAdditionalCertificatesWithListener"),
            ("user-agent", "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"),
            ("x-acs-date", "2023-11-14T22:13:20Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("accept", "application/json"),
            ("x-acs-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("x-acs-credentials-provider", "static_ak"),
            ("authorization", "ACS3-HMAC-SHA256 Credential=LTAI5tEXAMPLEKEYID,SignedHeaders=accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=869617e3bcfc4cbd71b2e00f7fae4eae3939ca1ef9a8f39057a9c8f2cf91863b"),
        ] {
            headers.insert(k, HeaderValue::from_static(v));
        }
        let request = DialectRequest {
            method: Method::POST,
            uri: "/?Certificates.1.CertificateId=12315790-cn-hangzhou&ListenerId=lsn-bp1bpn0kn908w4nbw%2A%2A%2A%2A"
                .parse::<Uri>()
                .unwrap(),
            headers,
            body: Bytes::new(),
            peer: None,
        };
        let query = request.query_pairs();
        let claim = claim(&request, &query).unwrap();
        assert_eq!(claim.key_id, "LTAI5tEXAMPLEKEYID");
        verify(&claim, &request, &query, &[], "EXAMPLESECRETabcdef0123456789").unwrap();
        assert!(verify(&claim, &request, &query, &[], "EXAMPLESECRETabcdef012345678X").is_err());
    }

    /// The worked example (b): NLB parameters in a form body, covered by the payload hash.
    #[test]
    fn acs3_form_body_example_verifies_and_a_changed_body_does_not() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:18081"),
            ("x-acs-version", "2022-04-30"),
            ("x-acs-action", "AssociateAdditionalCertificatesWithListener"),
            ("user-agent", "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"),
            ("x-acs-date", "2023-11-14T22:13:20Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("accept", "application/json"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-acs-content-sha256", "5cac35aff394690507c6c49351cd5b968830895a4f1a534ca386d7bfdd4b2c5d"),
            ("x-acs-credentials-provider", "static_ak"),
            ("authorization", "ACS3-HMAC-SHA256 Credential=LTAI5tEXAMPLEKEYID,SignedHeaders=accept;content-type;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=caa05563d1ac2421b846e04b578874454db4a1e9044c67c8318a766364ed0929"),
        ] {
            headers.insert(k, HeaderValue::from_static(v));
        }
        let body = "AdditionalCertificateIds.1=12315790-cn-hangzhou&ListenerId=lsn-bp1bpn0kn908w4nbw%2A%2A%2A%2A&RegionId=cn-hangzhou";
        let mut request = DialectRequest {
            method: Method::POST,
            uri: "/".parse::<Uri>().unwrap(),
            headers,
            body: Bytes::from_static(body.as_bytes()),
            peer: None,
        };
        let claim = claim(&request, &[]).unwrap();
        let form = request.form_pairs();
        verify(&claim, &request, &[], &form, "EXAMPLESECRETabcdef0123456789").unwrap();
        request.body =
            Bytes::from_static(b"AdditionalCertificateIds.1=999-cn-hangzhou&ListenerId=lsn-x&RegionId=cn-hangzhou");
        let form = request.form_pairs();
        assert_eq!(
            verify(&claim, &request, &[], &form, "EXAMPLESECRETabcdef0123456789").unwrap_err().code,
            "SignatureDoesNotMatch"
        );
    }

    #[test]
    fn rpc_v2_signature_round_trips() {
        // Signed here the way the SDK's Utils.get_rpcsignature does, then verified.
        let query: Vec<(String, String)> = [
            ("Action", "ListListeners"),
            ("Format", "json"),
            ("Version", "2020-06-16"),
            ("Timestamp", "2026-11-24T04:07:41Z"),
            ("SignatureNonce", "n1"),
            ("ClientToken", "tok 1+2/3*~"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("AccessKeyId", "LTAI5tEXAMPLEKEYID"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut sorted = query.clone();
        sorted.sort();
        let canonical = sorted.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&");
        assert!(canonical.contains("ClientToken=tok%201%2B2%2F3%2A~"));
        let sts = format!("POST&%2F&{}", pct(&canonical));
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"secret&");
        let signature = base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, sts.as_bytes()).as_ref());
        let mut signed = query.clone();
        signed.push(("Signature".to_string(), signature));
        let request = DialectRequest {
            method: Method::POST,
            uri: "/".parse::<Uri>().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            peer: None,
        };
        let claim = claim(&request, &signed).unwrap();
        assert_eq!(claim.key_id, "LTAI5tEXAMPLEKEYID");
        verify(&claim, &request, &signed, &[], "secret").unwrap();
        assert!(verify(&claim, &request, &signed, &[], "other").is_err());
    }
}
