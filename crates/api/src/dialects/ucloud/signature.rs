//! UCloud's request signature (`ucloud/core/auth/_cfg.py: verify_ac`): SHA1 over every
//! parameter but `Signature`, sorted by name, each name followed by its value, then the
//! private key; lowercase hex.

use super::errors::{self, UError};
use super::params::Params;
use certbind_control::{Caller, Control, Seen};
use certbind_core::secret::constant_time_eq;
use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use std::collections::BTreeMap;

pub fn sign(params: &BTreeMap<String, String>, private_key: &str) -> String {
    let mut text = String::new();
    for (k, v) in params {
        if k != "Signature" {
            text.push_str(k);
            text.push_str(v);
        }
    }
    text.push_str(private_key);
    hex::encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes()).as_ref())
}

/// Verifies the request's signature against the secret of its `PublicKey`.
pub fn authenticate(control: &Control, params: &Params) -> Result<Caller, UError> {
    let public_key = params.get("PublicKey").unwrap_or("");
    let Some(given) = params.get("Signature") else {
        return Err(UError::new(errors::BAD_SIGNATURE, "Signature is missing"));
    };
    let found = control.access_key_secret(public_key).map_err(UError::from)?;
    let Some((caller, secret)) = found else {
        return Err(UError::new(
            errors::UNKNOWN_PUBLIC_KEY,
            "PublicKey does not exist: no account has this public key",
        ));
    };
    let expected = sign(params.all(), secret.as_str());
    if !constant_time_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes()) {
        return Err(UError::new(
            errors::BAD_SIGNATURE,
            "Signature does not verify: sign the sorted parameters with the private key of this public key",
        ));
    }
    refuse_replay(control, public_key, &expected, params.get("Action").unwrap_or(""))?;
    Ok(caller)
}

/// UCloud's signature covers every parameter (the action too) but no time and no nonce,
/// so the same request always has the same signature. It is remembered for the
/// configured window: a read may be asked again (its signature cannot become another
/// action), a write sent again within the window is refused as a replay.
fn refuse_replay(control: &Control, public_key: &str, signature: &str, action: &str) -> Result<(), UError> {
    let window = control.config().untimed_replay_window.as_secs() as i64;
    if window == 0 {
        return Ok(());
    }
    let read = action.starts_with("Describe") || action.starts_with("Get");
    let key = format!("{public_key}\n{signature}");
    let valid_until = certbind_core::now_unix() + window;
    match control.seen_request("ucloud-signature", &key, action, valid_until, read)? {
        Seen::First => Ok(()),
        Seen::SameAction { .. } | Seen::OtherAction { .. } if read => Ok(()),
        Seen::SameAction { .. } | Seen::OtherAction { .. } => Err(UError::new(
            errors::BAD_SIGNATURE,
            format!(
                "this signed request was already received (a replay): {action} is refused when sent again within {window} s"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reproduces_ucloud_published_example() {
        let params = map(&[
            ("Action", "DescribeUHostInstance"),
            ("Region", "cn-bj2"),
            ("Limit", "10"),
            ("PublicKey", "someone@example.com1296235120854146120"),
        ]);
        assert_eq!(
            sign(&params, "46f09bb9fab4f12dfc160dae12273d5332b5debe"),
            "4201919d267504385deb93af19e0197870fed36b"
        );
        assert_eq!(sign(&map(&[("foo", "bar")]), "my_private_key"), "634edc1bb957c0d65e5ab5494cf3b7784fbc87af");
    }

    #[test]
    fn reproduces_the_captured_sdk_create_ssl() {
        let params = map(&[
            ("Region", "cn-bj2"),
            ("ProjectId", "org-abc123"),
            ("PrivateKey", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"),
            ("SSLName", "my-cert"),
            ("SSLType", "Pem"),
            ("UserCert", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
            ("Action", "CreateSSL"),
            ("PublicKey", "ucloudsomeone@example.com1296235120854146120"),
            ("Signature", "ignored"),
        ]);
        assert_eq!(
            sign(&params, "46f09bb9fab4f12dfc160dae12273d5332b5debe"),
            "511d011c17dd53d84b1753ed93a1643263c16fc0"
        );
    }
}
