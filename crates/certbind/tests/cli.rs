//! The README's walkthrough, with the CLI alone: upload, load balancer, HTTPS listener,
//! bind, replace, watch the job.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};

struct Cli<'a> {
    server: &'a Server,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_certbind"))
            .args(args)
            .env("CERTBIND_API", self.server.url())
            .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
            .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "certbind {args:?} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

#[test]
fn newcomer_walkthrough_with_the_cli_alone() {
    let dir = TempDir::new("cli");
    let server = Server::start(dir.path());
    let cli = Cli { server: &server };
    let ca = Ca::new("CLI CA");
    let files = TempDir::new("cli-files");
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().to_string()
    };
    let v1 = ca.issue(&["shop.example.com"]);
    let v2 = ca.issue(&["shop.example.com", "www.shop.example.com"]);
    let (c1, k1, c2, k2) = (
        write("v1.crt", &v1.cert_pem),
        write("v1.key", &v1.key_pem),
        write("v2.crt", &v2.cert_pem),
        write("v2.key", &v2.key_pem),
    );

    let cert1 = cli.json(&["cert", "upload", "--cert", &c1, "--key", &k1, "--name", "shop-2026"]);
    let cert1 = cert1["certificate"]["id"].as_str().unwrap().to_string();
    let cert2 = cli.json(&["cert", "upload", "--cert", &c2, "--key", &k2, "--name", "shop-2027"]);
    let cert2 = cert2["certificate"]["id"].as_str().unwrap().to_string();
    let table = cli.ok(&["cert", "list"]);
    assert!(table.lines().next().unwrap().starts_with("ID"), "human table by default: {table}");
    assert!(table.contains("shop-2026") && table.contains("shop-2027"));

    let lb = cli.json(&["lb", "create", "--type", "application", "--name", "edge", "--region", "eu-west"]);
    let lb = lb["id"].as_str().unwrap().to_string();
    let port = free_port().to_string();
    let listener =
        cli.json(&["listener", "create", "--lb", &lb, "--protocol", "https", "--port", &port, "--cert", &cert1]);
    let listener_id = listener["id"].as_str().unwrap().to_string();
    let job = listener["job_id"].as_str().unwrap().to_string();
    cli.ok(&["job", "wait", &job]);
    assert_eq!(served_chain(port.parse().unwrap(), "shop.example.com").unwrap()[0], v1.der);

    let dry = cli.ok(&["replace", "--old", &cert1, "--new", &cert2, "--dry-run"]);
    assert!(dry.contains("dry run: 1 listener change(s)"), "{dry}");

    let out = cli.ok(&["replace", "--old", &cert1, "--new", &cert2, "--wait"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(served_chain(port.parse().unwrap(), "shop.example.com").unwrap()[0], v2.der);

    let jobs = cli.json(&["job", "list"]);
    assert_eq!(jobs["total"], 2);
    let replace_job = jobs["items"][0]["id"].as_str().unwrap().to_string();
    let shown = cli.ok(&["job", "show", &replace_job, "--targets"]);
    assert!(shown.contains(&listener_id) && shown.contains("succeeded"), "{shown}");

    // Access control from the CLI: a user, a policy from a file, the simulator's verdict.
    cli.ok(&["user", "create", "ops"]);
    let policy = write(
        "policy.json",
        &format!(
            r#"{{"Statement":[{{"Sid":"edge-only","Effect":"Allow","Action":"certbind:*","Resource":"crn:certbind:*:*:loadbalancer/{lb}"}}]}}"#
        ),
    );
    cli.ok(&["policy", "put", "edge-only", "--file", &policy]);
    cli.ok(&["policy", "attach", "--user", "ops", "edge-only"]);
    let allowed = cli.ok(&[
        "policy",
        "simulate",
        "--user",
        "ops",
        "--action",
        "certbind:ReplaceCertificate",
        "--resource",
        &format!("crn:certbind:eu-west:1:loadbalancer/{lb}"),
    ]);
    assert!(allowed.starts_with("allowed: policy edge-only, statement edge-only"), "{allowed}");
    let denied = cli.run(&[
        "policy",
        "simulate",
        "--user",
        "ops",
        "--action",
        "certbind:ReplaceCertificate",
        "--resource",
        "crn:certbind:eu-west:1:loadbalancer/lb-999",
    ]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stdout).starts_with("denied"));
    let audit = cli.ok(&["audit", "list"]);
    assert!(audit.lines().next().unwrap().contains("OUTCOME") && audit.contains("certbind:CreateUser"), "{audit}");

    // Errors: a clear message and a failing exit status.
    let out = cli.run(&["cert", "delete", &cert2]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CertificateInUse"));
    cli.ok(&["cert", "delete", &cert1]);
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_instead_of_panicking() {
    use std::os::unix::process::ExitStatusExt;
    let dir = TempDir::new("cli-pipe");
    let server = Server::start(dir.path());
    let client = server.client();
    let ca = Ca::new("Pipe CA");
    for i in 0..30 {
        upload(&client, &ca.issue(&[&format!("n{i}.pipe.example.com")]), &format!("n{i}"));
    }
    // A reader that is gone before the CLI writes (as `| head -1` is after one line).
    let mut child = Command::new(env!("CARGO_BIN_EXE_certbind"))
        .args(["--json", "audit", "list"])
        .env("CERTBIND_API", server.url())
        .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
        .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success() || out.status.signal() == Some(13), "ended by {:?}: {stderr}", out.status);
}
