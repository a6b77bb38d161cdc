//! First start mints a credential and shows it once; private keys and access-key secrets
//! never reach the database, its WAL, the log (at debug level), the audit log or any
//! response in plaintext, whichever path took the key; the data files are the owner's alone.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

fn credential_from(stdout: &str) -> (String, String) {
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} not printed: {stdout}"))
            .to_string()
    };
    (value("CERTBIND_ACCESS_KEY_ID"), value("CERTBIND_ACCESS_KEY_SECRET"))
}

fn data_files(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["certbind.db", "certbind.db-wal", "certbind.db-shm"] {
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

/// Pieces of a PEM key's body that only the key has: 16-character windows of its base64
/// (leaving out those its certificate shares, the public key, and those every key of its
/// type shares, the algorithm's header), each as it is and URL-encoded, so found however
/// the key travelled (PEM, JSON, a form body).
fn key_fragments(issued: &Issued) -> Vec<String> {
    let body = |pem: &str| -> String { pem.lines().filter(|l| !l.starts_with("-----")).collect() };
    let certificate = body(&issued.cert_pem);
    let same_type = body(&rcgen::KeyPair::generate().unwrap().serialize_pem());
    let key = body(&issued.key_pem);
    let mut fragments = Vec::new();
    for start in (0..key.len().saturating_sub(15)).step_by(4) {
        let piece = &key[start..start + 16];
        if !certificate.contains(piece) && !same_type.contains(piece) {
            fragments.push(piece.to_string());
            let encoded = piece.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
            if encoded != piece {
                fragments.push(encoded);
            }
        }
    }
    fragments
}

fn assert_no_key(what: &str, haystack: &[u8], keys: &[(&str, &Issued)]) {
    let text = String::from_utf8_lossy(haystack);
    for (name, issued) in keys {
        let fragments = key_fragments(issued);
        assert!(fragments.len() >= 4, "{name}: a key has a secret part");
        for fragment in &fragments {
            assert!(!text.contains(fragment.as_str()), "{what} holds bytes of the private key uploaded through {name}");
        }
    }
    assert!(!text.contains("PRIVATE KEY"), "{what} holds a PEM private key");
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn no_path_that_takes_a_key_leaves_it_in_the_database_log_audit_or_a_response() {
    let dir = TempDir::new("keys-every-path");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut server = Server::start_with(&data, ServerOptions { debug_log: Some(log.clone()), ..Default::default() });
    let client = server.client();
    let ca = Ca::new("Keys CA");
    let issue = |name: &str| ca.issue(&[&format!("{name}.keys.example.com")]);
    let (native, native_update) = (issue("native"), issue("native-update"));
    let (cli_upload, cli_update) = (issue("cli-upload"), issue("cli-update"));
    let (cas3, cas2, tc_old, tc_new, uc1, uc2) =
        (issue("cas3"), issue("cas2"), issue("tc-old"), issue("tc-new"), issue("uc1"), issue("uc2"));
    let mut responses = String::new();

    // Native upload, then a one-click update that uploads its new certificate.
    let old = upload(&client, &native, "native");
    let lb = create_lb(&client, "east", "application");
    create_listener(&client, &lb, "HTTPS", free_port(), Some(&old));
    let answer = one_click_upload(&client, &old, &native_update);
    responses.push_str(&answer.to_string());
    let uploaded = answer["new_certificate_id"].as_str().unwrap().to_string();
    let job = wait_job(&client, answer["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");

    // The CLI: an upload, and a one-click update with a PEM pair, from files.
    let cli = |args: &[&str], pair: &Issued, name: &str| -> String {
        let (cert_file, key_file) = (dir.path().join(format!("{name}.crt")), dir.path().join(format!("{name}.key")));
        std::fs::write(&cert_file, &pair.cert_pem).unwrap();
        std::fs::write(&key_file, &pair.key_pem).unwrap();
        let (cert_flag, key_flag) = if args[0] == "update" { ("--new-cert", "--new-key") } else { ("--cert", "--key") };
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_certbind"))
            .args(args)
            .args(["--json", cert_flag])
            .arg(&cert_file)
            .arg(key_flag)
            .arg(&key_file)
            .env("CERTBIND_API", server.url())
            .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
            .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "certbind {args:?} failed: {said}");
        said
    };
    responses.push_str(&cli(&["cert", "upload", "--name", "cli-upload"], &cli_upload, "cli-upload"));
    responses.push_str(&cli(&["update", "--old", &uploaded, "--wait"], &cli_update, "cli-update"));

    // Every dialect's upload, through the official SDKs.
    let default_project = default_project_name(&client);
    let port = free_port().to_string();
    let mut env: Vec<(String, String)> =
        vec![("CHAIN".into(), ca.pem.clone()), ("PORT".into(), port), ("UCLOUD_PROJECT".into(), default_project)];
    for (name, issued) in
        [("CAS3", &cas3), ("CAS2", &cas2), ("TC_OLD", &tc_old), ("TC_NEW", &tc_new), ("UC1", &uc1), ("UC2", &uc2)]
    {
        env.push((format!("{name}_CERT"), issued.cert_pem.clone()));
        env.push((format!("{name}_KEY"), issued.key_pem.clone()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (sdk_stdout, ids) = run_sdk_script_output("keys_every_path.py", &server, &env);
    assert!(ids["TC_DEPLOY"].as_i64().unwrap_or(0) > 0, "{ids}");
    responses.push_str(&sdk_stdout);

    // What the API shows of it all afterwards: certificates, jobs, their targets, the audit log.
    for path in ["/v1/certificates", "/v1/jobs", "/v1/audit-log"] {
        responses.push_str(&client.get(path).unwrap().to_string());
    }
    let jobs = client.get("/v1/jobs").unwrap();
    for job in jobs["items"].as_array().unwrap() {
        let id = job["id"].as_str().unwrap();
        for view in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/targets")] {
            responses.push_str(&client.get(&view).unwrap().to_string());
        }
    }
    // While the server runs, its WAL and SHM files exist; none is for anyone else's eyes.
    assert_eq!(mode(&data), 0o700, "the data directory is private");
    for file in ["certbind.db", "certbind.db-wal", "certbind.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file} is private");
    }
    server.stop();

    let keys = [
        ("the native API", &native),
        ("a native one-click update", &native_update),
        ("the CLI's upload", &cli_upload),
        ("the CLI's one-click update", &cli_update),
        ("CAS (ACS3)", &cas3),
        ("CAS (RPC v2)", &cas2),
        ("Tencent UploadCertificate", &tc_old),
        ("Tencent UpdateCertificateInstance", &tc_new),
        ("UCloud CreateSSL", &uc1),
        ("UCloud CreateSSL (SSLContent)", &uc2),
    ];
    let log_text = std::fs::read(&log).unwrap();
    assert!(contains(&log_text, "DEBUG"), "the log was kept at debug level");
    assert_no_key("the database, WAL or SHM", &data_files(&data), &keys);
    assert_no_key("the debug log", &log_text, &keys);
    assert_no_key("a response", responses.as_bytes(), &keys);
}

#[test]
fn an_older_database_with_a_key_in_a_job_request_is_sealed_on_upgrade_and_narrowed_to_its_owner() {
    let dir = TempDir::new("keys-upgrade");
    let mut server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Upgrade CA");
    let (old_pair, new_pair) = (ca.issue(&["upgrade.example.com"]), ca.issue(&["upgrade.example.com"]));
    let old = upload(&client, &old_pair, "old");
    let lb = create_lb(&client, "east", "application");
    create_listener(&client, &lb, "HTTPS", free_port(), Some(&old));
    let answer = one_click_upload(&client, &old, &new_pair);
    let job = answer["job_id"].as_str().unwrap().to_string();
    let new = answer["new_certificate_id"].as_str().unwrap().to_string();
    wait_job(&client, &job);
    server.stop();

    // What a database written before schema 4 holds: the request with its PEM pair, in
    // files anyone could read.
    let db_path = dir.path().join("certbind.db");
    {
        let db = rusqlite::Connection::open(&db_path).unwrap();
        let legacy = json!({"old_certificate_id": old, "new_certificate": {"upload": {
            "name": "", "certificate_pem": new_pair.cert_pem, "private_key_pem": new_pair.key_pem}},
            "resource_types": [], "regions": []});
        let job_number: i64 = job.trim_start_matches("job-").parse().unwrap();
        db.execute("UPDATE jobs SET request = ?1 WHERE id = ?2", rusqlite::params![legacy.to_string(), job_number])
            .unwrap();
        db.execute_batch("DROP TABLE IF EXISTS seen_requests; PRAGMA user_version = 3;").unwrap();
    }
    for file in [&db_path, &dir.path().to_path_buf()] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let mut server = Server::start(dir.path());
    let client = server.client();
    let shown = client.get(&format!("/v1/jobs/{job}")).unwrap();
    assert_eq!(shown["state"], "succeeded", "the job is intact: {shown}");
    server.stop();

    let db = rusqlite::Connection::open(&db_path).unwrap();
    let request: String =
        db.query_row("SELECT request FROM jobs WHERE id = ?1", [job.trim_start_matches("job-")], |r| r.get(0)).unwrap();
    let request: serde_json::Value = serde_json::from_str(&request).unwrap();
    assert_eq!(request["new_certificate"], json!({"id": new}), "the job now names the sealed certificate");
    drop(db);
    assert_no_key("the upgraded database", &data_files(dir.path()), &[("a one-click update", &new_pair)]);
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&db_path), 0o600);
}
