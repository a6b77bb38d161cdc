//! The control plane through a real `certbind serve`: every operation over the native
//! API, the data plane confirming each change on real TLS handshakes.

mod common;

use common::*;
use serde_json::json;

#[test]
fn upload_parses_and_flags_validity_and_duplicates() {
    let dir = TempDir::new("upload");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Upload CA");
    let leaf = ca.issue(&["www.example.com", "api.example.com"]);

    let answer = client
        .post(
            "/v1/certificates",
            &json!({"certificate_pem": leaf.cert_pem, "chain_pem": leaf.chain_pem, "private_key_pem": leaf.key_pem}),
        )
        .unwrap();
    let cert = &answer["certificate"];
    assert_eq!(cert["common_name"], "www.example.com");
    assert_eq!(cert["sans"], json!(["www.example.com", "api.example.com"]));
    assert_eq!(cert["key_algorithm"], "EC_P256");
    assert_eq!(cert["key_bits"], 256);
    assert_eq!(cert["validity"], "valid");
    assert_eq!(cert["issuer"].as_str().unwrap(), "CN=Upload CA");
    let fingerprint = hex_sha256(&leaf.der);
    assert_eq!(cert["fingerprint_sha256"], fingerprint);
    assert!(cert.get("private_key_pem").is_none(), "a response never carries the key");

    // The same certificate again: refused by default, stored when allowed.
    let again = json!({"certificate_pem": leaf.cert_pem, "private_key_pem": leaf.key_pem});
    let (status, code) = error_code(client.post("/v1/certificates", &again));
    assert_eq!((status, code.as_str()), (409, "CertificateDuplicate"));
    let mut allowed = again.clone();
    allowed["on_duplicate"] = json!("allow");
    let second = client.post("/v1/certificates", &allowed).unwrap();
    assert_eq!(second["duplicate_of"], cert["id"]);
    assert_ne!(second["certificate"]["id"], cert["id"]);

    let now = certbind_core::now_unix();
    let expired = ca.issue_valid(&["old.example.com"], Some((now - 86_400 * 30, now - 86_400)));
    let future = ca.issue_valid(&["soon.example.com"], Some((now + 86_400, now + 86_400 * 30)));
    let e = upload(&client, &expired, "expired");
    let f = upload(&client, &future, "future");
    assert_eq!(client.get(&format!("/v1/certificates/{e}")).unwrap()["certificate"]["validity"], "expired");
    assert_eq!(client.get(&format!("/v1/certificates/{f}")).unwrap()["certificate"]["validity"], "not_yet_valid");

    let list = client.get("/v1/certificates?search=soon").unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"].as_str().unwrap(), f);
    let expiring = client.get("/v1/certificates?expiring_within_days=0").unwrap();
    assert_eq!(expiring["total"], 1, "only the expired certificate has expired by now");
}

fn hex_sha256(der: &[u8]) -> String {
    use ring::digest::{digest, SHA256};
    hex::encode(digest(&SHA256, der))
}

#[test]
fn bad_uploads_get_specific_codes_and_change_nothing() {
    let dir = TempDir::new("bad-upload");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Bad CA");
    let leaf = ca.issue(&["a.example.com"]);
    let other = ca.issue(&["b.example.com"]);
    let unrelated = Ca::new("Unrelated CA");

    let cases = [
        (json!({"certificate_pem": "not a pem", "private_key_pem": leaf.key_pem}), "CertificateMalformed"),
        (json!({"certificate_pem": "", "private_key_pem": leaf.key_pem}), "CertificateMissing"),
        (json!({"certificate_pem": leaf.cert_pem, "private_key_pem": other.key_pem}), "CertificateKeyMismatch"),
        (json!({"certificate_pem": leaf.cert_pem, "private_key_pem": ""}), "PrivateKeyMissing"),
        (
            json!({"certificate_pem": leaf.cert_pem, "chain_pem": unrelated.pem, "private_key_pem": leaf.key_pem}),
            "CertificateChainInvalid",
        ),
        (json!({"certificate_pem": leaf.cert_pem}), "InvalidParameter"),
        (
            json!({"certificate_pem": leaf.cert_pem, "private_key_pem": leaf.key_pem, "project_id": "proj-999"}),
            "ProjectNotFound",
        ),
    ];
    for (body, expected) in cases {
        let (status, code) = error_code(client.post("/v1/certificates", &body));
        assert_eq!(code, expected, "for {body}");
        assert!(status == 400 || status == 404, "status {status} for {expected}");
        let key_body: Vec<&str> =
            leaf.key_pem.lines().chain(other.key_pem.lines()).filter(|l| !l.starts_with("-----")).collect();
        let message_has_key = match client.post("/v1/certificates", &body) {
            Err(e) => key_body.iter().any(|line| e.to_string().contains(&line[..16])),
            Ok(_) => true,
        };
        assert!(!message_has_key, "an error never echoes key material");
    }
    assert_eq!(client.get("/v1/certificates").unwrap()["total"], 0, "nothing was stored");

    // An oversized body is refused before it is parsed.
    let huge = "A".repeat(2 * 1024 * 1024);
    let (status, code) = error_code(client.call_raw("POST", "/v1/certificates", huge.into_bytes()));
    assert_eq!((status, code.as_str()), (413, "RequestTooLarge"));
    let (status, code) = error_code(client.call_raw("POST", "/v1/certificates", b"{not json".to_vec()));
    assert_eq!((status, code.as_str()), (400, "InvalidParameter"));
    // The server is still fine.
    assert_eq!(client.get("/v1/certificates").unwrap()["total"], 0);
}

#[test]
fn requests_must_be_signed_with_a_live_key() {
    let dir = TempDir::new("auth");
    let server = Server::start(dir.path());
    let (status, code) = error_code(server.client_with(KEY_ID, "wrong-secret").get("/v1/certificates"));
    assert_eq!((status, code.as_str()), (401, "Unauthenticated"));
    let (status, _) = error_code(server.client_with("CBNOSUCHKEY", SECRET).get("/v1/account"));
    assert_eq!(status, 401);

    // A second key works, then stops working once disabled, and is gone once deleted.
    let client = server.client();
    let key = client.post("/v1/access-keys", &json!({})).unwrap();
    let (id, secret) = (key["key_id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    let second = server.client_with(id, secret);
    assert!(second.get("/v1/account").is_ok());
    client.patch(&format!("/v1/access-keys/{id}"), &json!({"enabled": false})).unwrap();
    assert_eq!(error_code(second.get("/v1/account")).0, 401);
    client.patch(&format!("/v1/access-keys/{id}"), &json!({"enabled": true})).unwrap();
    assert!(second.get("/v1/account").is_ok());
    client.delete(&format!("/v1/access-keys/{id}")).unwrap();
    assert_eq!(error_code(second.get("/v1/account")).0, 401);
}

#[test]
fn listener_lifecycle_binds_and_serves_certificates() {
    let dir = TempDir::new("lifecycle");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Lifecycle CA");
    let a = ca.issue(&["a.example.com"]);
    let b = ca.issue(&["b.example.com"]);
    let c = ca.issue(&["c.example.com"]);
    let (ida, idb, idc) = (upload(&client, &a, "a"), upload(&client, &b, "b"), upload(&client, &c, "c"));

    let lb = create_lb(&client, "eu-west", "application");
    let port = free_port();
    let listener = create_listener(&client, &lb, "HTTPS", port, Some(&ida));
    assert_eq!(bindings(&client, &listener), vec![(ida.clone(), "default".into(), "Associated".into())]);
    assert_eq!(served_chain(port, "a.example.com").unwrap()[0], a.der);

    // Associate two SNI certificates.
    let job =
        client.post(&format!("/v1/listeners/{listener}/associate"), &json!({"certificate_ids": [idb, idc]})).unwrap();
    let done = wait_job(&client, job["job_id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["counts"]["total"], 2);
    assert_eq!(done["counts"]["succeeded"], 2);
    assert_eq!(done["groups"][0]["resource_type"], "application");
    assert_eq!(done["groups"][0]["region"], "eu-west");
    let mut got = bindings(&client, &listener);
    got.sort();
    let mut want = vec![
        (ida.clone(), "default".to_string(), "Associated".to_string()),
        (idb.clone(), "additional".into(), "Associated".into()),
        (idc.clone(), "additional".into(), "Associated".into()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(served_chain(port, "b.example.com").unwrap()[0], b.der);
    assert_eq!(served_chain(port, "c.example.com").unwrap()[0], c.der);
    assert_eq!(served_chain(port, "unknown.example.com").unwrap()[0], a.der, "unknown SNI gets the default");

    // The default cannot be dissociated; an additional one can.
    let (status, code) =
        error_code(client.post(&format!("/v1/listeners/{listener}/dissociate"), &json!({"certificate_ids": [ida]})));
    assert_eq!((status, code.as_str()), (400, "DefaultCertificateNotDissociable"));
    let job = client.post(&format!("/v1/listeners/{listener}/dissociate"), &json!({"certificate_ids": [idc]})).unwrap();
    assert_eq!(wait_job(&client, job["job_id"].as_str().unwrap())["state"], "succeeded");
    assert!(!bindings(&client, &listener).iter().any(|(id, _, _)| *id == idc), "dissociated means gone");
    assert_eq!(served_chain(port, "c.example.com").unwrap()[0], a.der);

    // Set the default to b (an additional one): b becomes the default, a is gone.
    let job =
        client.post(&format!("/v1/listeners/{listener}/default-certificate"), &json!({"certificate_id": idb})).unwrap();
    assert_eq!(wait_job(&client, job["job_id"].as_str().unwrap())["state"], "succeeded");
    assert_eq!(bindings(&client, &listener), vec![(idb.clone(), "default".into(), "Associated".into())]);
    assert_eq!(served_chain(port, "a.example.com").unwrap()[0], b.der);

    // A bound certificate cannot be deleted; an unbound one can.
    let (status, code) = error_code(client.delete(&format!("/v1/certificates/{idb}")));
    assert_eq!((status, code.as_str()), (409, "CertificateInUse"));
    client.delete(&format!("/v1/certificates/{ida}")).unwrap();
    let (status, code) = error_code(client.get(&format!("/v1/certificates/{ida}")));
    assert_eq!((status, code.as_str()), (404, "CertificateNotFound"));

    // Deleting the listener closes its port.
    client.delete(&format!("/v1/listeners/{listener}")).unwrap();
    let start = std::time::Instant::now();
    while served_chain(port, "b.example.com").is_ok() {
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "port still open");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    client.delete(&format!("/v1/certificates/{idb}")).unwrap();
}

#[test]
fn binding_errors_are_specific_and_change_nothing() {
    let dir = TempDir::new("bind-errors");
    let server = Server::start_with(
        dir.path(),
        ServerOptions { extra_args: vec!["--max-additional-certs-per-lb".into(), "3".into()], ..Default::default() },
    );
    let client = server.client();
    let ca = Ca::new("Errors CA");
    let ids: Vec<String> = (0..17).map(|i| upload(&client, &ca.issue(&[&format!("h{i}.example.com")]), "x")).collect();
    let lb = create_lb(&client, "local", "application");
    let https = create_listener(&client, &lb, "HTTPS", free_port(), Some(&ids[0]));
    let http = create_listener(&client, &lb, "HTTP", free_port(), None);
    let before = bindings(&client, &https);
    let jobs_before = client.get("/v1/jobs").unwrap()["total"].clone();

    let associate = |listener: &str, certs: &[String]| {
        client.post(&format!("/v1/listeners/{listener}/associate"), &json!({"certificate_ids": certs}))
    };
    assert_eq!(error_code(associate(&http, &ids[1..2])), (400, "ListenerProtocolNotTls".into()));
    assert_eq!(error_code(associate(&https, &ids[1..17])), (400, "TooManyCertificatesInRequest".into()));
    assert_eq!(error_code(associate(&https, &ids[1..5])), (400, "AdditionalCertificateQuotaExceeded".into()));
    assert_eq!(error_code(associate(&https, &["cert-99999".to_string()])), (404, "CertificateNotFound".into()));
    assert_eq!(error_code(associate("lsn-99999", &ids[1..2])), (404, "ListenerNotFound".into()));
    assert_eq!(error_code(associate(&https, &["lsn-1".to_string()])), (400, "InvalidParameter".into()));
    assert_eq!(error_code(associate(&https, &[])), (400, "InvalidParameter".into()));
    let (_, code) = error_code(
        client.post("/v1/listeners", &json!({"load_balancer_id": lb, "protocol": "HTTPS", "port": free_port()})),
    );
    assert_eq!(code, "DefaultCertificateRequired");
    let nlb = create_lb(&client, "local", "network");
    let (_, code) = error_code(client.post(
        "/v1/listeners",
        &json!({"load_balancer_id": nlb, "protocol": "HTTPS", "port": free_port(), "default_certificate_id": ids[0]}),
    ));
    assert_eq!(code, "ProtocolNotAllowed");
    let port = client.get(&format!("/v1/listeners/{https}")).unwrap()["port"].as_u64().unwrap();
    let (status, code) = error_code(client.post(
        "/v1/listeners",
        &json!({"load_balancer_id": lb, "protocol": "HTTPS", "port": port, "default_certificate_id": ids[0]}),
    ));
    assert_eq!((status, code.as_str()), (409, "PortInUse"));

    assert_eq!(bindings(&client, &https), before, "failed requests changed nothing");
    assert_eq!(client.get("/v1/jobs").unwrap()["total"], jobs_before, "failed requests created no job");

    // Up to the quota works.
    let job = associate(&https, &ids[1..4]).unwrap();
    assert_eq!(wait_job(&client, job["job_id"].as_str().unwrap())["state"], "succeeded");
}

#[test]
fn replace_honours_every_scope_and_the_ownership_check() {
    let dir = TempDir::new("replace");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Replace CA");
    let old = upload(&client, &ca.issue(&["www.example.com"]), "old");
    let new = upload(&client, &ca.issue(&["www.example.com"]), "new");
    let lb1 = create_lb(&client, "r1", "application");
    let lb2 = create_lb(&client, "r2", "network");
    let l1a = create_listener(&client, &lb1, "HTTPS", free_port(), Some(&old));
    let l1b = create_listener(&client, &lb1, "HTTPS", free_port(), Some(&old));
    let l2 = create_listener(&client, &lb2, "TCPSSL", free_port(), Some(&old));
    let default_of = |l: &str| bindings(&client, l).into_iter().find(|b| b.1 == "default").unwrap().0;
    let replace = |body: serde_json::Value| client.post("/v1/replace", &body);

    // Ownership: a listener of lb1 named with lb2 is refused.
    let (status, code) = error_code(replace(
        json!({"old_certificate_id": old, "new_certificate_id": new, "load_balancer_id": lb2, "listener_id": l1a}),
    ));
    assert_eq!((status, code.as_str()), (400, "ListenerOwnershipMismatch"));

    // Listener scope.
    let job = replace(json!({"old_certificate_id": old, "new_certificate_id": new, "listener_id": l1a})).unwrap();
    assert_eq!(job["target_count"], 1);
    assert_eq!(wait_job(&client, job["job_id"].as_str().unwrap())["state"], "succeeded");
    assert_eq!((default_of(&l1a), default_of(&l1b), default_of(&l2)), (new.clone(), old.clone(), old.clone()));

    // Load balancer + listener with the right owner.
    let job = replace(
        json!({"old_certificate_id": old, "new_certificate_id": new, "load_balancer_id": lb1, "listener_id": l1b}),
    )
    .unwrap();
    assert_eq!(wait_job(&client, job["job_id"].as_str().unwrap())["state"], "succeeded");
    assert_eq!(default_of(&l1b), new);

    // Load balancer scope: nothing of lb1 is bound to old any more.
    let (_, code) =
        error_code(replace(json!({"old_certificate_id": old, "new_certificate_id": new, "load_balancer_id": lb1})));
    assert_eq!(code, "OldCertificateNotBound");

    // Account scope moves the rest, and back again.
    let job = replace(json!({"old_certificate_id": old, "new_certificate_id": new})).unwrap();
    assert_eq!(job["target_count"], 1);
    assert_eq!(wait_job(&client, job["job_id"].as_str().unwrap())["state"], "succeeded");
    assert_eq!(default_of(&l2), new);
    let job = replace(json!({"old_certificate_id": new, "new_certificate_id": old, "load_balancer_id": lb1})).unwrap();
    let done = wait_job(&client, job["job_id"].as_str().unwrap());
    assert_eq!(done["counts"]["succeeded"], 2);
    assert_eq!((default_of(&l1a), default_of(&l1b), default_of(&l2)), (old.clone(), old.clone(), new.clone()));

    let (_, code) = error_code(replace(json!({"old_certificate_id": old, "new_certificate_id": old})));
    assert_eq!(code, "SameCertificate");
    let (_, code) =
        error_code(replace(json!({"old_certificate_id": old, "new_certificate_id": new, "project_id": "proj-77"})));
    assert_eq!(code, "ProjectNotFound");
}

#[test]
fn dry_run_reports_targets_and_uncovered_names_and_changes_nothing() {
    let dir = TempDir::new("dry-run");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Dry CA");
    let old = upload(&client, &ca.issue(&["www.example.com", "api.example.com", "img.example.com"]), "old");
    let new = upload(&client, &ca.issue(&["www.example.com"]), "new");
    let img = upload(&client, &ca.issue(&["*.example.com"]), "wildcard");
    let lb = create_lb(&client, "local", "application");
    let l1 = create_listener(&client, &lb, "HTTPS", free_port(), Some(&old));
    let l2 = create_listener(&client, &lb, "HTTPS", free_port(), Some(&old));
    let job = client.post(&format!("/v1/listeners/{l2}/associate"), &json!({"certificate_ids": [img]})).unwrap();
    wait_job(&client, job["job_id"].as_str().unwrap());
    let jobs_before = client.get("/v1/jobs").unwrap()["total"].clone();

    let report = client
        .post("/v1/replace", &json!({"old_certificate_id": old, "new_certificate_id": new, "dry_run": true}))
        .unwrap();
    assert_eq!(report["dry_run"], true);
    assert!(report["job_id"].is_null());
    assert_eq!(report["target_count"], 2);
    let uncovered = report["uncovered_hosts"].as_array().unwrap();
    // l1 loses api and img; l2 keeps both through its wildcard certificate.
    assert_eq!(uncovered.len(), 1, "{report}");
    assert_eq!(uncovered[0]["listener_id"].as_str().unwrap(), l1);
    assert_eq!(uncovered[0]["host_names"], json!(["api.example.com", "img.example.com"]));

    assert_eq!(client.get("/v1/jobs").unwrap()["total"], jobs_before);
    assert_eq!(bindings(&client, &l1), vec![(old.clone(), "default".into(), "Associated".into())]);

    // A dry run of an invalid request fails like the real one.
    let (_, code) = error_code(
        client.post("/v1/replace", &json!({"old_certificate_id": new, "new_certificate_id": old, "dry_run": true})),
    );
    assert_eq!(code, "OldCertificateNotBound");
    // A dry-run upload validates and stores nothing.
    let leaf = ca.issue(&["x.example.com"]);
    let check = client
        .post(
            "/v1/certificates",
            &json!({"certificate_pem": leaf.cert_pem, "private_key_pem": leaf.key_pem, "dry_run": true}),
        )
        .unwrap();
    assert_eq!(check["dry_run"], true);
    assert_eq!(client.get("/v1/certificates?search=x.example.com").unwrap()["total"], 0);
}

#[test]
fn client_tokens_make_requests_idempotent() {
    let dir = TempDir::new("idempotency");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Token CA");
    let old = upload(&client, &ca.issue(&["t.example.com"]), "old");
    let new = upload(&client, &ca.issue(&["t.example.com"]), "new");
    let other = upload(&client, &ca.issue(&["t.example.com"]), "other");
    let lb = create_lb(&client, "local", "application");
    create_listener(&client, &lb, "HTTPS", free_port(), Some(&old));

    let body = json!({"old_certificate_id": old, "new_certificate_id": new, "client_token": "rotate-2026-11"});
    let first = client.post("/v1/replace", &body).unwrap();
    wait_job(&client, first["job_id"].as_str().unwrap());
    // The same request again (even after it ran) is the same job, not a new one.
    let second = client.post("/v1/replace", &body).unwrap();
    assert_eq!(first["job_id"], second["job_id"]);
    assert_eq!(client.get("/v1/jobs?kind=replace").unwrap()["total"], 1);

    let mut different = body.clone();
    different["new_certificate_id"] = json!(other);
    let (status, code) = error_code(client.post("/v1/replace", &different));
    assert_eq!((status, code.as_str()), (409, "IdempotencyConflict"));

    // Uploads honour tokens too.
    let leaf = ca.issue(&["u.example.com"]);
    let upload_body =
        json!({"certificate_pem": leaf.cert_pem, "private_key_pem": leaf.key_pem, "client_token": "upload-1"});
    let a = client.post("/v1/certificates", &upload_body).unwrap();
    let b = client.post("/v1/certificates", &upload_body).unwrap();
    assert_eq!(a["certificate"]["id"], b["certificate"]["id"]);
    let (_, code) = error_code(client.post(
        "/v1/certificates",
        &json!({"certificate_pem": leaf.cert_pem, "private_key_pem": leaf.key_pem, "name": "renamed", "client_token": "upload-1"}),
    ));
    assert_eq!(code, "IdempotencyConflict");
    let (_, code) = error_code(
        client.post("/v1/replace", &json!({"old_certificate_id": old, "new_certificate_id": new, "client_token": ""})),
    );
    assert_eq!(code, "InvalidParameter");
}

#[test]
fn one_click_update_filters_by_type_and_region_and_uploads_in_request() {
    let dir = TempDir::new("one-click");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("One-click CA");
    let old = upload(&client, &ca.issue(&["shop.example.com"]), "old");
    let alb_east = create_lb(&client, "east", "application");
    let alb_west = create_lb(&client, "west", "application");
    let nlb_east = create_lb(&client, "east", "network");
    let a = create_listener(&client, &alb_east, "HTTPS", free_port(), Some(&old));
    let b = create_listener(&client, &alb_west, "HTTPS", free_port(), Some(&old));
    let c = create_listener(&client, &nlb_east, "TCPSSL", free_port(), Some(&old));
    let default_of = |l: &str| bindings(&client, l).into_iter().find(|b| b.1 == "default").unwrap().0;

    // A new certificate given as a PEM pair, only for application load balancers in east.
    let fresh = ca.issue(&["shop.example.com"]);
    let answer = client
        .post(
            "/v1/one-click-update",
            &json!({
                "old_certificate_id": old,
                "new_certificate": {"upload": {"certificate_pem": fresh.cert_pem, "private_key_pem": fresh.key_pem}},
                "resource_types": ["application"],
                "regions": ["east"],
            }),
        )
        .unwrap();
    let new = answer["new_certificate_id"].as_str().unwrap().to_string();
    let job = wait_job(&client, answer["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["counts"]["total"], 1);
    assert_eq!((default_of(&a), default_of(&b), default_of(&c)), (new.clone(), old.clone(), old.clone()));

    // Everything else, counted per type and region.
    let answer = client
        .post("/v1/one-click-update", &json!({"old_certificate_id": old, "new_certificate": {"id": new}}))
        .unwrap();
    let job = wait_job(&client, answer["job_id"].as_str().unwrap());
    assert_eq!(job["counts"]["succeeded"], 2);
    let mut groups: Vec<(String, String, u64)> = job["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["resource_type"].as_str().unwrap().into(),
                g["region"].as_str().unwrap().into(),
                g["total"].as_u64().unwrap(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(groups, vec![("application".into(), "west".into(), 1), ("network".into(), "east".into(), 1)]);
    let targets = client.get(&format!("/v1/jobs/{}/targets", job["id"].as_str().unwrap())).unwrap();
    assert_eq!(targets["items"].as_array().unwrap().len(), 2);
    assert!(targets["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "succeeded" && t["old_cert_id"] == json!(old)));

    // A mismatched pair in the request is refused and stores nothing.
    let other = ca.issue(&["shop.example.com"]);
    let certs_before = client.get("/v1/certificates").unwrap()["total"].clone();
    let (_, code) = error_code(client.post(
        "/v1/one-click-update",
        &json!({"old_certificate_id": new, "new_certificate": {"upload": {"certificate_pem": fresh.cert_pem, "private_key_pem": other.key_pem}}}),
    ));
    assert_eq!(code, "CertificateKeyMismatch");
    assert_eq!(client.get("/v1/certificates").unwrap()["total"], certs_before);
}

#[test]
fn accounts_are_isolated() {
    let dir = TempDir::new("tenants");
    let server = Server::start(dir.path());
    let root = server.client();
    let created = root.post("/v1/accounts", &json!({"name": "team-b"})).unwrap();
    let other = server.client_with(
        created["access_key"]["key_id"].as_str().unwrap(),
        created["access_key"]["secret"].as_str().unwrap(),
    );
    // Only the operator account creates accounts.
    assert_eq!(error_code(other.post("/v1/accounts", &json!({"name": "x"}))).0, 403);

    let ca = Ca::new("Tenant CA");
    let cert = upload(&root, &ca.issue(&["root.example.com"]), "root-cert");
    let lb = create_lb(&root, "local", "application");
    let listener = create_listener(&root, &lb, "HTTPS", free_port(), Some(&cert));

    assert_eq!(other.get("/v1/certificates").unwrap()["total"], 0);
    assert_eq!(other.get("/v1/load-balancers").unwrap()["total"], 0);
    assert_eq!(other.get("/v1/jobs").unwrap()["total"], 0);
    assert_eq!(error_code(other.get(&format!("/v1/certificates/{cert}"))), (404, "CertificateNotFound".into()));
    assert_eq!(error_code(other.get(&format!("/v1/listeners/{listener}"))), (404, "ListenerNotFound".into()));
    assert_eq!(error_code(other.delete(&format!("/v1/certificates/{cert}"))), (404, "CertificateNotFound".into()));
    // Binding another account's certificate to one's own listener is "not found" too.
    let own = upload(&other, &ca.issue(&["b.example.com"]), "b");
    let own_lb = create_lb(&other, "local", "application");
    let own_listener = create_listener(&other, &own_lb, "HTTPS", free_port(), Some(&own));
    let (_, code) =
        error_code(other.post(&format!("/v1/listeners/{own_listener}/associate"), &json!({"certificate_ids": [cert]})));
    assert_eq!(code, "CertificateNotFound");
    assert_eq!(root.get("/v1/certificates").unwrap()["total"], 1);
}

#[test]
fn replace_onto_a_certificate_already_bound_promotes_it() {
    let dir = TempDir::new("replace-promote");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Promote CA");
    let (old_leaf, new_leaf) = (ca.issue(&["p.example.com"]), ca.issue(&["p.example.com", "q.example.com"]));
    let old = upload(&client, &old_leaf, "old");
    let new = upload(&client, &new_leaf, "new");
    let lb = create_lb(&client, "local", "application");
    let port = free_port();
    let both = create_listener(&client, &lb, "HTTPS", port, Some(&old));
    let plain = create_listener(&client, &lb, "HTTPS", free_port(), Some(&old));
    let job = client.post(&format!("/v1/listeners/{both}/associate"), &json!({"certificate_ids": [new]})).unwrap();
    wait_job(&client, job["job_id"].as_str().unwrap());

    // One listener holds both certificates (new as an SNI certificate), the other only old.
    let job = client.post("/v1/replace", &json!({"old_certificate_id": old, "new_certificate_id": new})).unwrap();
    let done = wait_job(&client, job["job_id"].as_str().unwrap());
    assert_eq!(done["counts"]["succeeded"], 2, "{done}");
    assert_eq!(bindings(&client, &both), vec![(new.clone(), "default".into(), "Associated".into())]);
    assert_eq!(bindings(&client, &plain), vec![(new.clone(), "default".into(), "Associated".into())]);
    assert_eq!(served_chain(port, "p.example.com").unwrap()[0], new_leaf.der);
    assert_eq!(served_chain(port, "other.example.com").unwrap()[0], new_leaf.der, "new is the default now");
    client.delete(&format!("/v1/certificates/{old}")).unwrap();
}

#[test]
fn a_small_job_is_applied_in_the_transaction_that_creates_it() {
    let dir = TempDir::new("inline");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Inline CA");
    let (old, new) = (ca.issue(&["inline.example.com"]), ca.issue(&["inline.example.com"]));
    let (old_id, new_id) = (upload(&client, &old, "old"), upload(&client, &new, "new"));
    let lb = create_lb(&client, "local", "application");
    let port = free_port();
    let listener = create_listener(&client, &lb, "HTTPS", port, Some(&old_id));
    // Back and forth ten times: a runner that happened to be quick once cannot pass for it.
    for round in 0..10 {
        let (from, to, leaf) = if round % 2 == 0 { (&old_id, &new_id, &new) } else { (&new_id, &old_id, &old) };
        let answer =
            client.post("/v1/replace", &json!({"old_certificate_id": from, "new_certificate_id": to})).unwrap();
        let job = answer["job_id"].as_str().unwrap();
        // Read at once: the runner has not been near it, yet nothing is left pending and
        // the listener's bindings already name the new certificate.
        let targets = client.get(&format!("/v1/jobs/{job}/targets")).unwrap();
        assert_ne!(targets["items"][0]["status"], "pending", "{targets}");
        assert!(bindings(&client, &listener).iter().any(|(cert, role, _)| cert == to && role == "default"));
        assert_eq!(wait_job(&client, job)["state"], "succeeded");
        assert_eq!(served_chain(port, "inline.example.com").unwrap()[0], leaf.der);
    }
}

#[test]
fn listener_sockets_report_bind_failures_and_metrics() {
    let dir = TempDir::new("runtime");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Runtime CA");
    let leaf = ca.issue(&["m.example.com"]);
    let cert = upload(&client, &leaf, "m");
    let lb = create_lb(&client, "local", "application");

    // A port some other program holds: the listener exists and says why it does not serve.
    let occupant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = occupant.local_addr().unwrap().port();
    let blocked = create_listener(&client, &lb, "HTTPS", taken, Some(&cert));
    let runtime = client.get(&format!("/v1/listeners/{blocked}")).unwrap()["runtime"].clone();
    assert_eq!(runtime["state"], "bind_failed", "{runtime}");
    assert!(runtime["reason"].as_str().unwrap().to_lowercase().contains("in use"), "{runtime}");

    let port = free_port();
    let serving = create_listener(&client, &lb, "HTTPS", port, Some(&cert));
    assert_eq!(client.get(&format!("/v1/listeners/{serving}")).unwrap()["runtime"]["state"], "serving");
    served_chain(port, "m.example.com").unwrap();

    // The server counts a handshake once it has the client's Finished, a moment after the
    // client is done: read the counter until it shows up.
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let counter = format!("certbind_listener_handshakes_total{{listener=\"{serving}\"");
    let start = std::time::Instant::now();
    let text = loop {
        let text = agent.get(&format!("{}/metrics", server.url())).call().unwrap().body_mut().read_to_string().unwrap();
        let count = text
            .lines()
            .find(|l| l.starts_with(&counter))
            .and_then(|l| l.split_whitespace().last().and_then(|v| v.parse::<f64>().ok()))
            .unwrap_or(0.0);
        if count >= 1.0 {
            break text;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "no handshake counted for {serving}:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(text.contains(&format!("certbind_certificate_not_after_seconds{{cert=\"{cert}\"}}")), "{text}");
    // The whole state was read once, at start; every change since came from the store's
    // change history.
    let builds = |from: &str| {
        let prefix = format!("certbind_snapshot_builds_total{{from=\"{from}\"}} ");
        let line = text.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
        line.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert_eq!(builds("state"), 1, "{text}");
    assert!(builds("changes") >= 2, "{text}");
    drop(occupant);
}
