//! Benchmark for `bench/sni.sh`: one HTTPS listener carrying N SNI certificates (default
//! 100,000), seeded through the real store, then a release `certbind serve` started on it.
//! Reports the load time (start until `/healthz` answers, which waits for the data plane
//! to serve the stored state), the server's memory per certificate beyond a one-certificate
//! baseline, and the average size of each certificate's DER and key, so memory can be
//! judged net of the material itself. The handshake rate is measured by the script.
//!
//! sni_bench --certificates 100000 --server target/release/certbind --port P --api-port Q --data-dir D

#[path = "support/mod.rs"]
mod support;

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

const KEY_ID: &str = "CBBENCHSNIKEY0000001";
const SECRET: &str = "bench-sni-secret-0123456789-abcdefghijkl";
const MASTER_KEY: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

/// Seeds `count` certificates (`host<i>.bench.example.com`) bound to one HTTPS listener
/// on `port`: the first as its default, the rest as SNI certificates. Returns the mean
/// DER + key PEM bytes per certificate.
fn seed(dir: &std::path::Path, count: usize, port: u16) -> f64 {
    let store = Arc::new(SqliteStore::open_dir(dir).expect("open store"));
    let config = ControlConfig { max_additional_per_lb: count as u32, ..ControlConfig::default() };
    let control = Control::new(store.clone(), MasterKey::from_text(MASTER_KEY).unwrap(), config).unwrap();
    control.bootstrap(Some((KEY_ID, SECRET))).unwrap();
    let caller = control.access_key_secret(KEY_ID).unwrap().unwrap().0;
    let mut material_bytes = 0usize;
    let requests: Vec<UploadRequest> = (0..count)
        .map(|i| {
            let key = KeyPair::generate().unwrap();
            let name = format!("host{i}.bench.example.com");
            let cert = CertificateParams::new(vec![name]).unwrap().self_signed(&key).unwrap();
            let key_pem = key.serialize_pem();
            material_bytes += cert.der().len() + key_pem.len();
            UploadRequest { certificate_pem: cert.pem(), private_key_pem: key_pem, ..Default::default() }
        })
        .collect();
    let ids: Vec<_> =
        control.import_certificates(&caller, &requests).unwrap().into_iter().map(|o| o.certificate.id).collect();
    let mut tx = store.write().unwrap();
    let project = tx.default_project(caller.account_id).unwrap().unwrap();
    let revision = tx.next_revision().unwrap();
    let lb = tx
        .insert_load_balancer(&NewLoadBalancer {
            account_id: caller.account_id,
            project_id: project.id,
            name: "sni".into(),
            lb_type: LbType::Application,
            region: "bench".into(),
            address: None,
            attributes: json!({}),
        })
        .unwrap();
    let listener = tx
        .insert_listener(&NewListener {
            account_id: caller.account_id,
            load_balancer_id: lb.id,
            name: "sni".into(),
            protocol: Protocol::Https,
            port,
            attributes: json!({}),
        })
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let role = if i == 0 { BindingRole::Default } else { BindingRole::Additional };
        tx.put_binding(&Binding {
            listener_id: listener.id,
            cert_id: *id,
            role,
            status: BindingStatus::Associated,
            revision,
        })
        .unwrap();
    }
    tx.commit().unwrap();
    material_bytes as f64 / count as f64
}

fn main() {
    let count: usize = arg("--certificates", "100000").parse().expect("--certificates N");
    let server_bin = arg("--server", "target/release/certbind");
    let port: u16 = arg("--port", "0").parse().expect("--port P");
    let api_port: u16 = arg("--api-port", "0").parse().expect("--api-port P");
    let dir = std::path::PathBuf::from(arg("--data-dir", "/tmp/certbind-sni-bench"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let material = seed(&dir, count, port);

    let started = Instant::now();
    // The server outlives this program: bench/sni.sh measures handshakes against it and
    // then stops it by the pid printed below.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(&server_bin)
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .args(["--api-addr", &format!("127.0.0.1:{api_port}"), "--listen-ip", "127.0.0.1"])
        .args(["--max-additional-certs-per-lb", &count.to_string()])
        .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
        .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
        .env("CERTBIND_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start certbind serve");
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let health = format!("http://127.0.0.1:{api_port}/healthz");
    while agent.get(&health).call().map(|r| r.status() != 200).unwrap_or(true) {
        assert!(started.elapsed() < Duration::from_secs(600), "server did not become ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let load_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "{}",
        json!({
            "certificates": count,
            "load_seconds": load_seconds,
            "rss_kib": proc_status_kib(child.id(), "VmRSS"),
            "material_bytes_per_certificate": material,
            "pid": child.id(),
        })
    );
    // The script measures handshakes, then stops the server by pid.
}
