//! When the store cannot take writes (here: a full disk), a real `certbind serve` keeps serving, refuses changes with a specific code and the
//! request id in its log line, says so on `/healthz` and `/readyz`, and recovers when the
//! disk does. The data directory lives on a small tmpfs of the test's own.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `size_mib`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size_mib: u32) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "this test mounts a tmpfs (it runs as root, as CI does)");
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the disk holding `path` until it has no byte left.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
}

fn health(server: &Server) -> (u16, Value) {
    let response = ureq::get(&format!("{}/healthz", server.url())).config().http_status_as_error(false).build().call();
    let mut response = response.unwrap();
    (response.status().as_u16(), serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap())
}

fn ready(server: &Server) -> u16 {
    let response = ureq::get(&format!("{}/readyz", server.url())).config().http_status_as_error(false).build().call();
    response.unwrap().status().as_u16()
}

/// Uploads until one upload fails; returns how many succeeded and the failure.
fn upload_until_refused(client: &certbind::client::Client, ca: &Ca) -> (usize, certbind::client::ClientError) {
    for stored in 0..500 {
        let leaf = ca.issue(&[&format!("n{stored}.disk.example.com")]);
        let body =
            json!({"certificate_pem": leaf.cert_pem, "chain_pem": leaf.chain_pem, "private_key_pem": leaf.key_pem});
        if let Err(e) = client.post("/v1/certificates", &body) {
            return (stored, e);
        }
    }
    panic!("500 uploads onto a full disk all succeeded");
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_full_disk_refuses_changes_with_a_specific_code_while_serving_and_reads_go_on() {
    let dir = TempDir::new("storage-errors");
    let disk = SmallDisk::mount(&dir.path().join("disk"), 24);
    let log = dir.path().join("server.log");
    let server =
        Server::start_with(&disk.0.join("data"), ServerOptions { debug_log: Some(log.clone()), ..Default::default() });
    let client = server.client();
    let ca = Ca::new("Disk CA");
    let cert = upload(&client, &ca.issue(&["disk.example.com"]), "served");
    let lb = create_lb(&client, "east", "application");
    let port = free_port();
    create_listener(&client, &lb, "HTTPS", port, Some(&cert));
    assert_eq!(
        health(&server),
        (200, json!({"status": "serving", "serving": true, "writable": true, "write_error": null}))
    );
    assert_eq!(ready(&server), 200);

    // The disk fills up.
    fill(&disk.0.join("filler"));
    let before = client.get("/v1/certificates").unwrap()["total"].as_u64().unwrap();
    let (stored, refusal) = upload_until_refused(&client, &ca);
    let certbind::client::ClientError::Api { status, code, message, request_id } = refusal else {
        panic!("not an API error: {refusal}");
    };
    assert_eq!((status, code.as_str()), (503, "StorageFull"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(
        client.get("/v1/certificates").unwrap()["total"].as_u64().unwrap(),
        before + stored as u64,
        "the refused upload left nothing half-written"
    );
    // The operator finds the request by its id, with what the store said.
    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged.lines().find(|l| l.contains(&request_id)).unwrap_or_else(|| panic!("{request_id} not logged"));
    assert!(line.contains("storage failure") && line.contains("StorageFull"), "{line}");
    assert!(!line.contains('\u{1b}'), "plain log lines when not on a terminal: {line:?}");

    // Serving goes on; health says what is wrong.
    assert!(served_chain(port, "disk.example.com").is_ok(), "the listener still serves");
    eventually("healthz reports the store not writable", || {
        health(&server)
            == (200, json!({"status": "serving", "serving": true, "writable": false, "write_error": "StorageFull"}))
    });
    assert_eq!(ready(&server), 503);

    // Space again: writable again.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    eventually("readyz recovers", || ready(&server) == 200);
    upload(&client, &ca.issue(&["after.disk.example.com"]), "after");

    assert!(served_chain(port, "disk.example.com").is_ok(), "the listener still serves");
}
