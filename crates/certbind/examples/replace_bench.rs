//! Benchmark: one replace job over many listeners, end to end through a real
//! `certbind serve` (release build): submit over the API, poll until the job succeeded
//! (so the data plane serves the new certificate on every listener), and read the server's
//! peak memory. Run by `bench/replace.sh`; prints one JSON line per run.
//!
//! The listeners' load balancers have TEST-NET addresses this host does not own: the data
//! plane builds and publishes their configuration exactly as for any listener, without
//! trying to hold 100,000 sockets open.

#[path = "support/mod.rs"]
mod support;

use certbind::client::Client;
use certbind_control::{Control, ControlConfig, UploadRequest};
use certbind_core::model::*;
use certbind_core::secret::MasterKey;
use certbind_store::{NewListener, NewLoadBalancer, SqliteStore, Store};
use rcgen::{CertificateParams, KeyPair};
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{arg, proc_status_kib};

const KEY_ID: &str = "CBBENCHKEY0000000001";
const SECRET: &str = "bench-secret-0123456789-abcdefghijklmnop";
const MASTER_KEY: &str = "101112131415161718191a1b1c1d1e1f000102030405060708090a0b0c0d0e0f";
const PORTS_PER_LB: usize = 500;
/// How often the job is polled, as a client would (`--poll-ms`).
const POLL_MS: u64 = 100;

fn seed(dir: &std::path::Path, listeners: usize) -> (String, String) {
    let store = Arc::new(SqliteStore::open_dir(dir).expect("open store"));
    let control =
        Control::new(store.clone(), MasterKey::from_text(MASTER_KEY).unwrap(), ControlConfig::default()).unwrap();
    control.bootstrap(Some((KEY_ID, SECRET))).unwrap();
    let caller = control.access_key_secret(KEY_ID).unwrap().unwrap().0;
    let upload = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["bench.example.com".to_string()]).unwrap().self_signed(&key).unwrap();
        let request = UploadRequest {
            name: name.into(),
            certificate_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            ..Default::default()
        };
        control.upload_certificate(&caller, &request, None).unwrap().certificate.id
    };
    let (old, new) = (upload("old"), upload("new"));
    let mut tx = store.write().unwrap();
    let project = tx.default_project(caller.account_id).unwrap().unwrap();
    let revision = tx.next_revision().unwrap();
    let lbs = listeners.div_ceil(PORTS_PER_LB);
    let mut made = 0;
    for i in 0..lbs {
        let lb = tx
            .insert_load_balancer(&NewLoadBalancer {
                account_id: caller.account_id,
                project_id: project.id,
                name: format!("lb{i}"),
                lb_type: LbType::Network,
                region: "bench".into(),
                // TEST-NET-1/2/3: documentation addresses no host owns.
                // (192.0.2.0/24 is left out: some hosts use it for their own interface.)
                address: Some(format!("{}.{}", ["198.51.100", "203.0.113"][i / 250 % 2], i % 250 + 1).parse().unwrap()),
                attributes: json!({}),
            })
            .unwrap();
        for j in 0..PORTS_PER_LB.min(listeners - made) {
            let listener = tx
                .insert_listener(&NewListener {
                    account_id: caller.account_id,
                    load_balancer_id: lb.id,
                    name: String::new(),
                    protocol: Protocol::TcpSsl,
                    port: 20_000 + j as u16,
                    attributes: json!({}),
                })
                .unwrap();
            tx.put_binding(&Binding {
                listener_id: listener.id,
                cert_id: old,
                role: BindingRole::Default,
                status: BindingStatus::Associated,
                revision,
            })
            .unwrap();
            made += 1;
        }
    }
    tx.commit().unwrap();
    (old.to_string(), new.to_string())
}

fn main() {
    let listeners: usize = arg("--listeners", "100000").parse().expect("--listeners N");
    let server_bin = arg("--server", "target/release/certbind");
    let dir = std::env::temp_dir().join(format!("certbind-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let seeded = Instant::now();
    let (old, new) = seed(&dir, listeners);
    let seed_secs = seeded.elapsed().as_secs_f64();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let apply_batch = arg("--apply-batch", "");
    let mut command = Command::new(&server_bin);
    command.args(["serve", "--data-dir"]).arg(&dir).args([
        "--api-addr",
        &format!("127.0.0.1:{port}"),
        "--listen-ip",
        "127.0.0.1",
    ]);
    if !apply_batch.is_empty() {
        command.args(["--apply-batch", &apply_batch]);
    }
    let mut child = command
        .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
        .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
        .env("CERTBIND_MASTER_KEY", MASTER_KEY)
        // BENCH_LOG=debug shows the server's log on stderr while profiling.
        .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "error".into()))
        .stdout(Stdio::null())
        .stderr(if std::env::var("BENCH_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("start certbind serve");
    let base = format!("http://127.0.0.1:{port}");
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    while agent.get(&format!("{base}/healthz")).call().map(|r| r.status() != 200).unwrap_or(true) {
        assert!(started.elapsed() < Duration::from_secs(300), "server did not become ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let startup_secs = started.elapsed().as_secs_f64();
    let rss_before = proc_status_kib(child.id(), "VmHWM");

    let client = Client::new(&base, KEY_ID, SECRET);
    let submitted = Instant::now();
    // --listener lsn-N scopes the replace to one listener among them all.
    let mut body = json!({"old_certificate_id": old, "new_certificate_id": new});
    let scope = arg("--listener", "");
    if !scope.is_empty() {
        body["listener_id"] = json!(scope);
    }
    let poll = Duration::from_millis(arg("--poll-ms", &POLL_MS.to_string()).parse().expect("--poll-ms N"));
    let answer = client.post("/v1/replace", &body).unwrap();
    let accepted_secs = submitted.elapsed().as_secs_f64();
    let job = answer["job_id"].as_str().unwrap().to_string();
    let state = loop {
        let value = client.get(&format!("/v1/jobs/{job}")).unwrap();
        if value["state"] == "succeeded" || value["state"] == "failed" {
            break value;
        }
        std::thread::sleep(poll);
    };
    let wall_secs = submitted.elapsed().as_secs_f64();
    let peak_kib = proc_status_kib(child.id(), "VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        json!({
            "listeners": listeners,
            "state": state["state"],
            "succeeded": state["counts"]["succeeded"],
            "replace_wall_seconds": wall_secs,
            "replace_accepted_seconds": accepted_secs,
            "server_startup_seconds": startup_secs,
            "seed_seconds": seed_secs,
            "peak_rss_mib_before_replace": rss_before as f64 / 1024.0,
            "peak_rss_mib": peak_kib as f64 / 1024.0,
        })
    );
}
