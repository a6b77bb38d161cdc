//! The README's shell blocks (the CLI tour, the access-control walkthrough) run verbatim,
//! in order, against a fresh `certbind serve`, so the README cannot drift from the
//! product. `certbind` is this build's binary; the tour makes its own certificates.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// The README's ```sh blocks, but the one that builds and runs certbind itself.
fn tour_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("an ended block");
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks.retain(|b| !b.contains("cargo run"));
    blocks
}

#[test]
fn the_readme_runs_as_written() {
    let dir = TempDir::new("readme-tour");
    let server = Server::start(&dir.path().join("data"));
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts"), work.join("scripts"))
        .unwrap();
    let blocks = tour_blocks();
    assert!(blocks.len() >= 2, "the tour and the access-control walkthrough");
    let script = format!("set -euo pipefail\ncertbind() {{ \"$CERTBIND_BIN\" \"$@\"; }}\n{}", blocks.join("\n"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("CERTBIND_BIN", env!("CARGO_BIN_EXE_certbind"))
        .env("CERTBIND_API", server.url())
        .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
        .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "the README stops:\n{stdout}\n{stderr}");

    // And it did what it says.
    let client = server.client();
    let listener = client.get("/v1/listeners/lsn-1").unwrap();
    let bindings: Vec<(String, String)> = listener["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["cert_id"].as_str().unwrap().to_string(), b["role"].as_str().unwrap().to_string()))
        .collect();
    assert!(bindings.contains(&("cert-2".into(), "default".into())), "{listener}");
    assert!(bindings.contains(&("cert-3".into(), "additional".into())), "{listener}");
    assert_eq!(bindings.len(), 2, "{listener}");
    for job in 1..=6 {
        assert_eq!(client.get(&format!("/v1/jobs/job-{job}")).unwrap()["state"], "succeeded", "job-{job}");
    }
    assert!(stdout.contains("allowed"), "the policy simulation allows what the policy says: {stdout}");
}
