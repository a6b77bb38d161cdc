//! A listener whose new certificate cannot be loaded, through a real `certbind serve`: it
//! keeps serving its previous certificate, says why, and its job waits (GUIDE rule 4: a
//! change is done only once it is served), while other listeners' jobs go on; a later
//! change it can load brings it back.
//!
//! A stored certificate is immutable and checked on upload, so the test breaks one the
//! only way it can break in the field: its sealed key is damaged in the SQLite file.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

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
    let other_job = client
        .post(
            "/v1/replace",
            &json!({"old_certificate_id": other_old_id, "new_certificate_id": other_new_id, "listener_id": other}),
        )
        .unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
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
    let fix = client
        .post(
            "/v1/replace",
            &json!({"old_certificate_id": broken_id, "new_certificate_id": healthy_id, "listener_id": listener}),
        )
        .unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(wait_job(&client, &fix)["state"], "succeeded");
    assert_eq!(served_chain(port, "lag.example.com").unwrap()[0], healthy.der);
    assert!(client.get(&format!("/v1/listeners/{listener}")).unwrap()["runtime"]["reason"].is_null());
    let targets = client.get(&format!("/v1/jobs/{fix}/targets")).unwrap();
    assert!(targets["items"][0]["error"].is_null(), "{targets}");
    let text = metrics(&server);
    assert!(text.contains(&format!("certbind_listener_certificates_stale{{listener=\"{listener}\"}} 0")), "{text}");
}
