//! First start mints a credential and shows it once; private keys and access-key secrets
//! never reach the database file in plaintext.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

fn credential_from(stdout: &str) -> (String, String) {
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} not printed: {stdout}"))
            .to_string()
    };
    (value("CERTBIND_ACCESS_KEY_ID"), value("CERTBIND_ACCESS_KEY_SECRET"))
}

fn data_files(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["certbind.db", "certbind.db-wal"] {
        if let Ok(content) = std::fs::read(dir.join(name)) {
            bytes.extend(content);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn first_start_shows_a_credential_once_and_keeps_secrets_sealed() {
    let dir = TempDir::new("secrets");
    let options = || ServerOptions { fixed_credentials: false, ..Default::default() };
    let mut server = Server::start_with(dir.path(), options());
    // Stop to read what it printed; the data directory now holds the account.
    let stdout = server.stop();
    let (key_id, secret) = credential_from(&stdout);

    let mode = std::fs::metadata(dir.path().join("master.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the master key file is private");

    let mut server = Server::start_with(dir.path(), options());
    let client = server.client_with(&key_id, &secret);
    let ca = Ca::new("Secrets CA");
    let leaf = ca.issue(&["secret.example.com"]);
    let cert = upload(&client, &leaf, "sealed");
    // Without allow_download the key cannot be read back.
    let (status, code) = error_code(client.get(&format!("/v1/certificates/{cert}/private-key")));
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    let downloadable = ca.issue(&["download.example.com"]);
    let answer = client
        .post(
            "/v1/certificates",
            &json!({"certificate_pem": downloadable.cert_pem, "private_key_pem": downloadable.key_pem, "allow_download": true}),
        )
        .unwrap();
    let id = answer["certificate"]["id"].as_str().unwrap();
    let key = client.get(&format!("/v1/certificates/{id}/private-key")).unwrap();
    assert_eq!(key["private_key_pem"].as_str().unwrap().trim(), downloadable.key_pem.trim());

    let second_stdout = server.stop();
    assert!(!second_stdout.contains("CERTBIND_ACCESS_KEY_SECRET"), "the credential is shown only on first start");

    let bytes = data_files(dir.path());
    assert!(!bytes.is_empty());
    assert!(contains(&bytes, &key_id), "the key id is stored in the clear");
    assert!(!contains(&bytes, &secret), "the access key secret is not");
    for pem in [&leaf.key_pem, &downloadable.key_pem] {
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!contains(&bytes, line), "private key bytes found in the database");
        }
    }
    assert!(!contains(&bytes, "PRIVATE KEY"));

    // A restart with the same data directory opens the sealed keys again.
    let server = Server::start_with(dir.path(), options());
    let client = server.client_with(&key_id, &secret);
    let key = client.get(&format!("/v1/certificates/{id}/private-key")).unwrap();
    assert_eq!(key["private_key_pem"].as_str().unwrap().trim(), downloadable.key_pem.trim());
}
