//! A listener whose new certificate cannot be loaded, through a real `certbind serve`: it
//! keeps serving its previous certificate, says why, and its job waits (GUIDE rule 4: a
//! change is done only once it is served), while other listeners' jobs go on; a later
//! change it can load brings it back, and past `--lagging-timeout-secs` the change is
//! rolled back and its job fails.
//!
//! A stored certificate is immutable and checked on upload, so the test breaks one the
//! only way it can break in the field: its sealed key is damaged in the SQLite file.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Damages the sealed key of a stored certificate in the server's SQLite file.
fn damage_key(dir: &std::path::Path, cert: &str) {
    let number: i64 = cert.trim_start_matches("cert-").parse().unwrap();
    let db = rusqlite::Connection::open(dir.join("certbind.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let damaged = db.execute("UPDATE certificates SET key_sealed = x'00112233' WHERE id = ?1", [number]).unwrap();
    assert_eq!(damaged, 1);
}

fn submit_replace(client: &certbind::client::Client, old: &str, new: &str, listener: &str) -> String {
    let body = json!({"old_certificate_id": old, "new_certificate_id": new, "listener_id": listener});
    client.post("/v1/replace", &body).unwrap()["job_id"].as_str().unwrap().to_string()
}

fn metrics(server: &Server) -> String {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    agent.get(&format!("{}/metrics", server.url())).call().unwrap().body_mut().read_to_string().unwrap()
}

#[test]
fn a_listener_whose_new_certificate_cannot_load_keeps_serving_and_its_job_waits() {
    let dir = TempDir::new("lagging");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Lagging Root");
    let (old, broken, healthy, other_old, other_new) = (
        ca.issue(&["lag.example.com"]),
        ca.issue(&["lag.example.com"]),
        ca.issue(&["lag.example.com"]),
        ca.issue(&["other.example.com"]),
        ca.issue(&["other.example.com"]),
    );
    let old_id = upload(&client, &old, "old");
    let broken_id = upload(&client, &broken, "broken");
    let healthy_id = upload(&client, &healthy, "healthy");
    let other_old_id = upload(&client, &other_old, "other-old");
    let other_new_id = upload(&client, &other_new, "other-new");
    let lb = create_lb(&client, "cn-test-1", "application");
    let (port, other_port) = (free_port(), free_port());
    let listener = create_listener(&client, &lb, "HTTPS", port, Some(&old_id));
    let other = create_listener(&client, &lb, "HTTPS", other_port, Some(&other_old_id));

    // Damage the sealed key of a certificate no listener serves yet.
    let number: i64 = broken_id.trim_start_matches("cert-").parse().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("certbind.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let damaged = db.execute("UPDATE certificates SET key_sealed = x'00112233' WHERE id = ?1", [number]).unwrap();
    assert_eq!(damaged, 1);
    drop(db);

    let job = client
        .post(
            "/v1/replace",
            &json!({"old_certificate_id": old_id, "new_certificate_id": broken_id, "listener_id": listener}),
        )
        .unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The listener says why it still serves the old certificate.
    let started = Instant::now();
    let reason = loop {
        let runtime = client.get(&format!("/v1/listeners/{listener}")).unwrap()["runtime"].clone();
        if let Some(reason) = runtime["reason"].as_str() {
            break reason.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no reason reported: {runtime}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(reason.contains(&broken_id), "{reason}");
    assert_eq!(served_chain(port, "lag.example.com").unwrap()[0], old.der);
    let text = metrics(&server);
    assert!(text.contains(&format!("certbind_listener_certificates_stale{{listener=\"{listener}\"}} 1")), "{text}");

    // Another listener's job completes meanwhile.
    let other_job = submit_replace(&client, &other_old_id, &other_new_id, &other);
    assert_eq!(wait_job(&client, &other_job)["state"], "succeeded");
    assert_eq!(served_chain(other_port, "other.example.com").unwrap()[0], other_new.der);

    // The lagging change is not reported done, and its bindings stay in transition, across
    // the data plane's retries.
    std::thread::sleep(Duration::from_millis(1500));
    let state = client.get(&format!("/v1/jobs/{job}")).unwrap();
    assert_eq!(state["state"], "running", "{state}");
    // Its target says why it waits.
    let targets = client.get(&format!("/v1/jobs/{job}/targets")).unwrap();
    let target = &targets["items"][0];
    assert_eq!(target["status"], "running", "{targets}");
    assert!(target["error"].as_str().is_some_and(|e| e.contains(&broken_id)), "{targets}");
    let mut held = bindings(&client, &listener);
    held.sort();
    let mut expected = vec![
        (broken_id.clone(), "default".to_string(), "Associating".to_string()),
        (old_id.clone(), "default".to_string(), "Dissociating".to_string()),
    ];
    expected.sort();
    assert_eq!(held, expected);
    assert_eq!(served_chain(port, "lag.example.com").unwrap()[0], old.der);

    // A change to a certificate that loads brings the listener back.
    let fix = submit_replace(&client, &broken_id, &healthy_id, &listener);
    assert_eq!(wait_job(&client, &fix)["state"], "succeeded");
    assert_eq!(served_chain(port, "lag.example.com").unwrap()[0], healthy.der);
    assert!(client.get(&format!("/v1/listeners/{listener}")).unwrap()["runtime"]["reason"].is_null());
    let targets = client.get(&format!("/v1/jobs/{fix}/targets")).unwrap();
    assert!(targets["items"][0]["error"].is_null(), "{targets}");
    let text = metrics(&server);
    assert!(text.contains(&format!("certbind_listener_certificates_stale{{listener=\"{listener}\"}} 0")), "{text}");
}

#[test]
fn a_change_a_listener_cannot_serve_is_rolled_back_after_the_timeout_and_its_job_fails() {
    let dir = TempDir::new("lagging-timeout");
    let options = ServerOptions { extra_args: vec!["--lagging-timeout-secs".into(), "2".into()], ..Default::default() };
    let server = Server::start_with(dir.path(), options);
    let client = server.client();
    let ca = Ca::new("Rollback Root");
    let (old, broken, extra, healthy) = (
        ca.issue(&["roll.example.com"]),
        ca.issue(&["roll.example.com"]),
        ca.issue(&["extra.example.com"]),
        ca.issue(&["roll.example.com"]),
    );
    let (old_id, broken_id, extra_id, healthy_id) = (
        upload(&client, &old, "old"),
        upload(&client, &broken, "broken"),
        upload(&client, &extra, "extra"),
        upload(&client, &healthy, "healthy"),
    );
    let lb = create_lb(&client, "cn-test-1", "application");
    let port = free_port();
    let listener = create_listener(&client, &lb, "HTTPS", port, Some(&old_id));
    let extra_job =
        client.post(&format!("/v1/listeners/{listener}/associate"), &json!({"certificate_ids": [extra_id]})).unwrap();
    assert_eq!(wait_job(&client, extra_job["job_id"].as_str().unwrap())["state"], "succeeded");
    damage_key(dir.path(), &broken_id);

    let job = submit_replace(&client, &old_id, &broken_id, &listener);
    let done = wait_job(&client, &job);
    assert_eq!(done["state"], "failed", "{done}");
    let targets = client.get(&format!("/v1/jobs/{job}/targets")).unwrap();
    let error = targets["items"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("rolled back") && error.contains(&broken_id), "{targets}");

    // The bindings are what the listener serves, settled; nothing half-done remains.
    let mut held = bindings(&client, &listener);
    held.sort();
    let mut expected = vec![
        (old_id.clone(), "default".to_string(), "Associated".to_string()),
        (extra_id.clone(), "additional".to_string(), "Associated".to_string()),
    ];
    expected.sort();
    assert_eq!(held, expected);
    assert_eq!(served_chain(port, "roll.example.com").unwrap()[0], old.der);
    assert_eq!(served_chain(port, "extra.example.com").unwrap()[0], extra.der);
    let started = Instant::now();
    while !client.get(&format!("/v1/listeners/{listener}")).unwrap()["runtime"]["reason"].is_null() {
        assert!(started.elapsed() < Duration::from_secs(10), "the listener still reports a failure");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The listener takes the next change as usual.
    let next = submit_replace(&client, &old_id, &healthy_id, &listener);
    assert_eq!(wait_job(&client, &next)["state"], "succeeded");
    assert_eq!(served_chain(port, "roll.example.com").unwrap()[0], healthy.der);
}
