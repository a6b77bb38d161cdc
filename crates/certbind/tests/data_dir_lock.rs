//! One server per data directory: a second `certbind serve` on it stops at once with a
//! clear error, and the first goes on serving.

mod common;

use common::*;
use std::process::Command;

#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let dir = TempDir::new("data-dir-lock");
    let server = Server::start(dir.path());
    let second = Command::new(env!("CARGO_BIN_EXE_certbind"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--api-addr", &format!("127.0.0.1:{}", free_port()), "--listen-ip", "127.0.0.1"])
        .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
        .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
        .env("CERTBIND_MASTER_KEY", MASTER_KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server started: {stderr}");
    assert!(stderr.contains("is in use by another certbind serve"), "{stderr}");
    assert!(server.client().get("/v1/certificates").is_ok(), "the first one still serves");
}
