//! Rotation under load, end to end: clients handshake continuously with a real
//! `certbind serve` while replace, associate and dissociate jobs run. No handshake fails,
//! and every handshake that starts after a job reports success sees that job's result.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Handshake {
    started: Instant,
    sni: &'static str,
    leaf: Result<Vec<u8>, String>,
}

#[test]
fn jobs_rotate_certificates_without_a_failed_handshake() {
    let dir = TempDir::new("rotation");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Rotation CA");
    let old = ca.issue(&["www.example.com"]);
    let new = ca.issue(&["www.example.com"]);
    let extra = ca.issue(&["extra.example.com"]);
    let (old_id, new_id, extra_id) =
        (upload(&client, &old, "old"), upload(&client, &new, "new"), upload(&client, &extra, "extra"));
    let lb = create_lb(&client, "local", "application");
    let port = free_port();
    let listener = create_listener(&client, &lb, "HTTPS", port, Some(&old_id));

    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Handshake>>> = Arc::default();
    let workers: Vec<_> = ["www.example.com", "www.example.com", "extra.example.com", "extra.example.com"]
        .into_iter()
        .map(|sni| {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let leaf = served_chain(port, sni).map(|chain| chain[0].clone());
                    log.lock().unwrap().push(Handshake { started, sni, leaf });
                }
            })
        })
        .collect();

    // (submitted, reported success) of each job.
    let run = |path: String, body: serde_json::Value| -> (Instant, Instant) {
        let submitted = Instant::now();
        let job = client.post(&path, &body).unwrap();
        assert_eq!(wait_job(&client, job["job_id"].as_str().unwrap())["state"], "succeeded");
        let done = Instant::now();
        std::thread::sleep(Duration::from_millis(300));
        (submitted, done)
    };
    std::thread::sleep(Duration::from_millis(200));
    let replaced = run("/v1/replace".into(), json!({"old_certificate_id": old_id, "new_certificate_id": new_id}));
    let associated = run(format!("/v1/listeners/{listener}/associate"), json!({"certificate_ids": [extra_id]}));
    let dissociated = run(format!("/v1/listeners/{listener}/dissociate"), json!({"certificate_ids": [extra_id]}));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }

    let log = log.lock().unwrap();
    assert!(log.len() > 100, "too few handshakes to mean anything: {}", log.len());
    let failed: Vec<&String> = log.iter().filter_map(|h| h.leaf.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of {} handshakes failed: {:?}", failed.len(), log.len(), failed.first());
    for h in log.iter() {
        let leaf = h.leaf.as_ref().unwrap();
        // Between a job's success and the next job's submission, the state is settled.
        let t = h.started;
        let expected = match h.sni {
            "www.example.com" if t > replaced.1 => Some(&new.der),
            "extra.example.com" if t > dissociated.1 => Some(&new.der),
            "extra.example.com" if t > associated.1 && t < dissociated.0 => Some(&extra.der),
            "extra.example.com" if t > replaced.1 && t < associated.0 => Some(&new.der),
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(leaf, expected, "a handshake for {} started after its job succeeded saw the old state", h.sni);
        }
        assert!(leaf == &old.der || leaf == &new.der || leaf == &extra.der);
    }
    eprintln!("{} handshakes, none failed", log.len());
}
