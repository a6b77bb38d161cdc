//! Benchmark for `bench/replace-vs-haproxy.sh`: the time from submitting a certificate
//! change until the new certificate is served, certbind (a replace job over the native API)
//! against HAProxy's runtime API (`set ssl cert` + `commit ssl cert`) making the same change
//! on the same certificates, measured by real handshakes on loopback. Both servers run side
//! by side and the runs alternate between them.
//!
//! Two cases:
//!
//! * `--case ports`: `--count` (default 1,000) HTTPS listeners on as many ports, all serving
//!   certificate OLD (`bench.example.com`). certbind: one load balancer whose listeners have
//!   OLD as their default certificate, then `POST /v1/replace` OLD -> NEW. HAProxy: as many
//!   frontends, each `bind 127.0.0.1:PORT ssl crt old.pem` on the one shared file, then
//!   `set ssl cert old.pem` with NEW + `commit ssl cert old.pem`. Done when a handshake on
//!   every port presents NEW.
//! * `--case sni`: one listener with `--count` (default 100,000) SNI certificates
//!   `host<i>.bench.example.com`, each its own certificate and key (`host0` is the default).
//!   The certificate of `host<count/2>` is replaced by a new certificate for the same name.
//!   certbind: one HTTPS listener with 1 default + 99,999 additional certificates, then
//!   `POST /v1/replace` OLD -> NEW. HAProxy: one frontend, `bind ... ssl crt-list list.txt`
//!   with one line per certificate file, then `set ssl cert` + `commit ssl cert` on the
//!   rotated file. Done when a handshake for that name presents NEW.
//!
//! Each run rotates to a fresh certificate (C0 -> C1, C1 -> C2, ...). While a change runs,
//! a background thread handshakes round robin over every port (or over the rotated name
//! and a sample of other names) and counts failed handshakes; the checking handshakes
//! count too. Prints one JSON line per run and server.
//!
//! replace_haproxy_bench --case ports|sni [--count N] [--runs R] [--work DIR]
//!     [--server target/release/certbind] [--haproxy /usr/sbin/haproxy] [--check-threads 4]

use certbind::client::Client;
use certbind_control::{Control, ControlConfig, UploadRequest};
use certbind_core::model::*;
use certbind_core::secret::MasterKey;
use certbind_store::{NewListener, NewLoadBalancer, SqliteStore, Store};
use rcgen::{CertificateParams, KeyPair};
#[path = "support/mod.rs"]
mod support;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{arg, full_handshake_config};

const KEY_ID: &str = "CBBENCHHAPROXYKEY001";
const SECRET: &str = "bench-haproxy-secret-0123456789-abcdefgh";
const MASTER_KEY: &str = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
/// How long one change may take before the run is reported as timed out.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(180);
/// How often certbind's job is polled for its state.
const POLL_MS: u64 = 20;

fn log(message: &str) {
    eprintln!("[replace-vs-haproxy] {message}");
}

/// A certificate and its key, as PEM, and the leaf's DER to recognise it in a handshake.
struct Material {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Material {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
        Material { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
    }

    /// Certificate then key, as HAProxy reads a `crt` file (and a `set ssl cert` payload:
    /// no empty line inside).
    fn combined(&self) -> String {
        format!("{}\n{}\n", self.cert_pem.trim_end(), self.key_pem.trim_end())
    }

    fn upload(&self) -> UploadRequest {
        UploadRequest {
            certificate_pem: self.cert_pem.clone(),
            private_key_pem: self.key_pem.clone(),
            ..Default::default()
        }
    }
}

/// Generates `names.len()` certificates on every core.
fn generate(names: &[String]) -> Vec<Material> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let chunk = names.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = names
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|n| Material::new(n)).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
    })
}

/// Kills and reaps a child process when dropped, so a panic leaves nothing running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(command: &mut Command, work: &Path, name: &str) -> Guard {
    let child = command.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
    // bench/replace-vs-haproxy.sh kills these on exit, whatever happens to this program.
    std::fs::write(work.join(format!("{name}.pid")), child.id().to_string()).unwrap();
    Guard(child)
}

fn tls_config() -> Arc<ClientConfig> {
    full_handshake_config(rustls::DEFAULT_VERSIONS)
}

/// Where to handshake and with which SNI.
#[derive(Clone)]
struct Probe {
    addr: SocketAddr,
    sni: ServerName<'static>,
}

/// One full handshake; the leaf certificate the server presented.
fn handshake(config: &Arc<ClientConfig>, probe: &Probe) -> Result<Vec<u8>, String> {
    let mut sock = TcpStream::connect_timeout(&probe.addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut conn = ClientConnection::new(config.clone(), probe.sni.clone()).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let leaf = conn.peer_certificates().and_then(|c| c.first()).ok_or("no certificate")?.to_vec();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(leaf)
}

/// Handshake counters shared by the checking and background threads.
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counts {
    fn record(&self, result: &Result<Vec<u8>, String>) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                self.first_error.lock().unwrap().get_or_insert_with(|| e.clone());
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// What `until_all_serve` saw, in seconds since its `start`.
struct Served {
    /// When the last probe was first seen presenting the wanted certificate (an upper
    /// bound of the time the change took); None on timeout.
    all_new: Option<f64>,
    /// When the latest handshake that still presented the other certificate started (a
    /// lower bound).
    last_other: f64,
    /// Handshakes that presented a certificate that was neither.
    unexpected: u64,
}

/// Handshakes on every probe until each presents `want`, sweeping the probes still pending
/// with `threads` threads.
fn until_all_serve(
    config: &Arc<ClientConfig>,
    probes: &[Probe],
    want: &[u8],
    other: &[u8],
    threads: usize,
    start: Instant,
    counts: &Counts,
) -> Served {
    let mut pending: Vec<Probe> = probes.to_vec();
    let unexpected = AtomicU64::new(0);
    let (mut last, mut last_other) = (0.0f64, 0.0f64);
    while !pending.is_empty() {
        if start.elapsed() > CHANGE_TIMEOUT {
            return Served { all_new: None, last_other, unexpected: unexpected.into_inner() };
        }
        let next = AtomicUsize::new(0);
        let still: Mutex<Vec<Probe>> = Mutex::new(Vec::new());
        let seen: Mutex<(f64, f64)> = Mutex::new((last, last_other));
        std::thread::scope(|scope| {
            for _ in 0..threads.min(pending.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(probe) = pending.get(i) else { break };
                    let began = start.elapsed().as_secs_f64();
                    let result = handshake(config, probe);
                    let at = start.elapsed().as_secs_f64();
                    counts.record(&result);
                    match result {
                        Ok(leaf) if leaf == want => {
                            let mut seen = seen.lock().unwrap();
                            seen.0 = seen.0.max(at);
                        }
                        Ok(leaf) => {
                            if leaf == other {
                                let mut seen = seen.lock().unwrap();
                                seen.1 = seen.1.max(began);
                            } else {
                                unexpected.fetch_add(1, Ordering::Relaxed);
                            }
                            still.lock().unwrap().push(probe.clone());
                        }
                        Err(_) => still.lock().unwrap().push(probe.clone()),
                    }
                });
            }
        });
        (last, last_other) = seen.into_inner().unwrap();
        pending = still.into_inner().unwrap();
    }
    Served { all_new: Some(last), last_other, unexpected: unexpected.into_inner() }
}

/// A server under test: how to make the change, and how long its own acknowledgement took.
trait Server: Sync {
    fn name(&self) -> &'static str;
    /// Submits the change old -> new (index `run`) and waits for the server's own
    /// acknowledgement; returns figures relative to `start` as JSON.
    fn change(&self, run: usize, start: Instant) -> Value;
}

struct Certbind {
    client: Client,
    /// The certificate ids C0, C1, ...
    ids: Vec<String>,
}

impl Server for Certbind {
    fn name(&self) -> &'static str {
        "certbind"
    }
    fn change(&self, run: usize, start: Instant) -> Value {
        let body = json!({"old_certificate_id": self.ids[run - 1], "new_certificate_id": self.ids[run]});
        let answer = self.client.post("/v1/replace", &body).expect("submit replace");
        let accepted = start.elapsed().as_secs_f64();
        let job = answer["job_id"].as_str().expect("job id").to_string();
        loop {
            let value = self.client.get(&format!("/v1/jobs/{job}")).expect("job state");
            if value["state"] == "succeeded" || value["state"] == "failed" || start.elapsed() > CHANGE_TIMEOUT {
                return json!({
                    "job": job,
                    "state": value["state"],
                    "accepted_seconds": accepted,
                    "acknowledged_seconds": start.elapsed().as_secs_f64(),
                });
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }
}

struct Haproxy {
    socket: PathBuf,
    /// The crt file whose certificate rotates, as named in the configuration.
    file: PathBuf,
    /// `set ssl cert` payloads for C0, C1, ...
    payloads: Vec<String>,
}

fn haproxy_cli(socket: &Path, command: &str) -> String {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect to the HAProxy stats socket");
    stream.write_all(command.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

impl Server for Haproxy {
    fn name(&self) -> &'static str {
        "haproxy"
    }
    fn change(&self, run: usize, start: Instant) -> Value {
        let file = self.file.display();
        let set = haproxy_cli(&self.socket, &format!("set ssl cert {file} <<\n{}\n", self.payloads[run]));
        assert!(set.contains("Transaction created") || set.contains("Transaction updated"), "set ssl cert: {set}");
        let accepted = start.elapsed().as_secs_f64();
        let commit = haproxy_cli(&self.socket, &format!("commit ssl cert {file}\n"));
        assert!(commit.contains("Success"), "commit ssl cert: {commit}");
        json!({
            "state": "succeeded",
            "accepted_seconds": accepted,
            "acknowledged_seconds": start.elapsed().as_secs_f64(),
        })
    }
}

/// One change on one server, with background handshakes throughout.
#[allow(clippy::too_many_arguments)]
fn measure(
    server: &dyn Server,
    run: usize,
    config: &Arc<ClientConfig>,
    targets: &[Probe],
    background: &[Probe],
    old: &[u8],
    new: &[u8],
    threads: usize,
) -> Value {
    // Every target serves OLD before the change starts.
    // Its duration, one sweep over the targets, is the resolution of the measurement.
    let counts = Counts::default();
    let ready = until_all_serve(config, targets, old, new, threads, Instant::now(), &counts).all_new;
    assert!(ready.is_some(), "{}: the targets do not serve the old certificate", server.name());

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let (config, background, counts, stop) = (config.clone(), background.to_vec(), counts.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                counts.record(&handshake(&config, &background[i % background.len()]));
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));

    let start = Instant::now();
    let (served, ack) = std::thread::scope(|scope| {
        let change = scope.spawn(|| server.change(run, start));
        let served = until_all_serve(config, targets, new, old, threads, start, &counts);
        (served, change.join().expect("change"))
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    json!({
        "run": run,
        "server": server.name(),
        "targets": targets.len(),
        "one_sweep_seconds": ready,
        "all_serve_new_seconds": served.all_new,
        "last_old_seen_seconds": served.last_other,
        "accepted_seconds": ack["accepted_seconds"],
        "acknowledged_seconds": ack["acknowledged_seconds"],
        "state": ack["state"],
        "timed_out": served.all_new.is_none(),
        "handshakes": counts.ok.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed),
        "failed_handshakes": counts.failed.load(Ordering::Relaxed),
        "first_error": *counts.first_error.lock().unwrap(),
        "unexpected_certificates": served.unexpected,
    })
}

/// `count` ports this host can bind on 127.0.0.1, below the ephemeral range so client
/// connections never take them; held together so they are distinct.
fn free_ports(count: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut port = 20_000u16;
    while held.len() < count {
        assert!(port < 32_000, "not enough free ports");
        if let Ok(socket) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(socket);
        }
        port += 1;
    }
    held.iter().map(|s| s.local_addr().unwrap().port()).collect()
}

/// Seeds certbind's store in one transaction: `certs` imported, one load balancer, and
/// `listeners` HTTPS listeners given as (port, [(certificate index, role)]).
fn seed_certbind(dir: &Path, materials: &[&Material], listeners: &[(u16, Vec<(usize, BindingRole)>)]) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let store = Arc::new(SqliteStore::open_dir(dir).expect("open store"));
    let config = ControlConfig { max_additional_per_lb: materials.len() as u32 + 1, ..ControlConfig::default() };
    let control = Control::new(store.clone(), MasterKey::from_text(MASTER_KEY).unwrap(), config).unwrap();
    control.bootstrap(Some((KEY_ID, SECRET))).unwrap();
    let caller = control.access_key_secret(KEY_ID).unwrap().unwrap().0;
    let requests: Vec<UploadRequest> = materials.iter().map(|m| m.upload()).collect();
    let ids: Vec<certbind_core::CertId> =
        control.import_certificates(&caller, &requests).unwrap().into_iter().map(|o| o.certificate.id).collect();
    let mut tx = store.write().unwrap();
    let project = tx.default_project(caller.account_id).unwrap().unwrap();
    let revision = tx.next_revision().unwrap();
    let lb = tx
        .insert_load_balancer(&NewLoadBalancer {
            account_id: caller.account_id,
            project_id: project.id,
            name: "bench".into(),
            lb_type: LbType::Application,
            region: "bench".into(),
            address: None,
            attributes: json!({}),
        })
        .unwrap();
    for (port, bindings) in listeners {
        let listener = tx
            .insert_listener(&NewListener {
                account_id: caller.account_id,
                load_balancer_id: lb.id,
                name: String::new(),
                protocol: Protocol::Https,
                port: *port,
                attributes: json!({}),
            })
            .unwrap();
        for (index, role) in bindings {
            tx.put_binding(&Binding {
                listener_id: listener.id,
                cert_id: ids[*index],
                role: *role,
                status: BindingStatus::Associated,
                revision,
            })
            .unwrap();
        }
    }
    tx.commit().unwrap();
    ids.iter().map(|id| id.to_string()).collect()
}

fn start_certbind(server_bin: &str, work: &Path, max_additional: usize) -> (Guard, Client, f64) {
    // An ephemeral port: the listeners' ports (below that range) are not bound yet.
    let api_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let child = spawn(
        Command::new(server_bin)
            .args(["serve", "--data-dir"])
            .arg(work.join("certbind-data"))
            .args(["--api-addr", &format!("127.0.0.1:{api_port}"), "--listen-ip", "127.0.0.1"])
            .args(["--max-additional-certs-per-lb", &max_additional.to_string()])
            .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
            .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
            .env("CERTBIND_MASTER_KEY", MASTER_KEY)
            // CERTBIND_BENCH_LOG=debug (with bench/replace-vs-haproxy.sh's KEEP_LOGS) shows
            // where the time of each change goes.
            .env("RUST_LOG", std::env::var("CERTBIND_BENCH_LOG").unwrap_or_else(|_| "error".into()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("certbind.log")).unwrap()),
        work,
        "certbind",
    );
    let base = format!("http://127.0.0.1:{api_port}");
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    while agent.get(&format!("{base}/healthz")).call().map(|r| r.status() != 200).unwrap_or(true) {
        assert!(started.elapsed() < Duration::from_secs(600), "certbind did not become ready; see certbind.log");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, Client::new(&base, KEY_ID, SECRET), started.elapsed().as_secs_f64())
}

fn start_haproxy(haproxy_bin: &str, work: &Path, frontends: &str) -> (Guard, PathBuf) {
    let socket = work.join("haproxy.sock");
    let config = format!(
        "global\n    stats socket {} level admin\n    maxconn 5000\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
         {frontends}",
        socket.display()
    );
    let path = work.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(work.join("haproxy.log")).unwrap();
    let child = spawn(
        Command::new(haproxy_bin).arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(log),
        work,
        "haproxy",
    );
    (child, socket)
}

fn wait_for_haproxy(guard: &mut Guard, socket: &Path, since: Instant) -> f64 {
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(guard.0.try_wait().unwrap().is_none(), "HAProxy exited; see haproxy.log");
        assert!(since.elapsed() < Duration::from_secs(900), "HAProxy did not start; see haproxy.log");
        std::thread::sleep(Duration::from_millis(20));
    }
    since.elapsed().as_secs_f64()
}

fn main() {
    let case = arg("--case", "ports");
    let runs: usize = arg("--runs", "3").parse().expect("--runs N");
    let server_bin = arg("--server", "target/release/certbind");
    let haproxy_bin = arg("--haproxy", "/usr/sbin/haproxy");
    let threads: usize = arg("--check-threads", "4").parse().expect("--check-threads N");
    let work =
        PathBuf::from(arg("--work", &std::env::temp_dir().join("certbind-replace-haproxy").display().to_string()));
    std::fs::create_dir_all(&work).unwrap();
    let config = tls_config();

    // The rotation chain C0 -> C1 -> ... -> C<runs>, and (sni) the other certificates.
    let (count, rotated_name) = match case.as_str() {
        "ports" => (arg("--count", "1000").parse::<usize>().expect("--count N"), "bench.example.com".to_string()),
        "sni" => {
            let count = arg("--count", "100000").parse::<usize>().expect("--count N");
            assert!(count >= 2, "--count must be at least 2 for sni");
            (count, format!("host{}.bench.example.com", count / 2))
        }
        other => panic!("unknown --case {other}"),
    };
    let generated = Instant::now();
    let chain = generate(&vec![rotated_name.clone(); runs + 1]);
    let others = if case == "sni" {
        let names: Vec<String> = (0..count).map(|i| format!("host{i}.bench.example.com")).collect();
        let mut others = generate(&names);
        // host<count/2> is the first certificate of the chain.
        others[count / 2] = Material { cert_pem: String::new(), key_pem: String::new(), der: Vec::new() };
        others
    } else {
        Vec::new()
    };
    log(&format!(
        "generated {} certificates in {:.1} s",
        chain.len() + others.len(),
        generated.elapsed().as_secs_f64()
    ));

    let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let sni = |name: &str| ServerName::try_from(name.to_string()).unwrap();
    let seeded = Instant::now();
    let (certbind_guard, certbind, haproxy_guard, haproxy, targets, background) = if case == "ports" {
        let ports = free_ports(2 * count);
        let (cb_ports, hp_ports) = ports.split_at(count);
        // certbind: the chain is imported, C0 is every listener's default certificate.
        let listeners: Vec<_> = cb_ports.iter().map(|p| (*p, vec![(0, BindingRole::Default)])).collect();
        let ids = seed_certbind(&work.join("certbind-data"), &chain.iter().collect::<Vec<_>>(), &listeners);
        log(&format!("seeded certbind in {:.1} s", seeded.elapsed().as_secs_f64()));
        let (guard, client, startup) = start_certbind(&server_bin, &work, 25);
        log(&format!("certbind serving {count} listeners after {startup:.2} s"));
        // HAProxy: one frontend per port, all on the one crt file.
        let file = work.join("old.pem");
        std::fs::write(&file, chain[0].combined()).unwrap();
        let frontends: String = hp_ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "frontend f{i}\n    bind 127.0.0.1:{p} ssl crt {}\n    http-request return status 200\n",
                    file.display()
                )
            })
            .collect();
        let since = Instant::now();
        let (mut hp_guard, socket) = start_haproxy(&haproxy_bin, &work, &frontends);
        log(&format!(
            "HAProxy serving {count} frontends after {:.2} s",
            wait_for_haproxy(&mut hp_guard, &socket, since)
        ));
        let payloads = chain.iter().map(Material::combined).collect();
        let probes = |ports: &[u16]| -> Vec<Probe> {
            ports.iter().map(|p| Probe { addr: localhost(*p), sni: sni(&rotated_name) }).collect()
        };
        (
            guard,
            Certbind { client, ids },
            hp_guard,
            Haproxy { socket, file, payloads },
            [probes(cb_ports), probes(hp_ports)],
            [probes(cb_ports), probes(hp_ports)],
        )
    } else {
        let ports = free_ports(2);
        // certbind: host0 is the default certificate, the others (with C0 for the rotated
        // name) additional; C1... are imported unbound.
        let mut materials: Vec<&Material> =
            others.iter().enumerate().map(|(i, m)| if i == count / 2 { &chain[0] } else { m }).collect();
        materials.extend(chain[1..].iter());
        let bindings: Vec<(usize, BindingRole)> =
            (0..count).map(|i| (i, if i == 0 { BindingRole::Default } else { BindingRole::Additional })).collect();
        let ids = seed_certbind(&work.join("certbind-data"), &materials, &[(ports[0], bindings)]);
        log(&format!("seeded certbind in {:.1} s", seeded.elapsed().as_secs_f64()));
        let mut chain_ids = vec![ids[count / 2].clone()];
        chain_ids.extend(ids[count..].iter().cloned());
        let (guard, client, startup) = start_certbind(&server_bin, &work, count + 1);
        log(&format!("certbind serving {count} certificates after {startup:.2} s"));
        // HAProxy: one crt file per certificate, listed in a crt-list (the first is the default).
        let dir = work.join("certs");
        std::fs::create_dir_all(&dir).unwrap();
        let mut list = String::new();
        for (i, material) in materials.iter().take(count).enumerate() {
            let file = dir.join(format!("host{i}.pem"));
            std::fs::write(&file, material.combined()).unwrap();
            list.push_str(&format!("{}\n", file.display()));
        }
        std::fs::write(work.join("list.txt"), list).unwrap();
        let frontends = format!(
            "frontend sni\n    bind 127.0.0.1:{} ssl crt-list {}\n    http-request return status 200\n",
            ports[1],
            work.join("list.txt").display()
        );
        let since = Instant::now();
        let (mut hp_guard, socket) = start_haproxy(&haproxy_bin, &work, &frontends);
        log(&format!(
            "HAProxy serving {count} certificates after {:.2} s",
            wait_for_haproxy(&mut hp_guard, &socket, since)
        ));
        let file = dir.join(format!("host{}.pem", count / 2));
        let payloads = chain.iter().map(Material::combined).collect();
        // Background: the rotated name and 99 others spread over the list.
        let names: Vec<String> = std::iter::once(rotated_name.clone())
            .chain((0..99).map(|k| format!("host{}.bench.example.com", (k * count / 99 + 7) % count)))
            .collect();
        let probes = |port: u16, names: &[String]| -> Vec<Probe> {
            names.iter().map(|n| Probe { addr: localhost(port), sni: sni(n) }).collect()
        };
        let target = [rotated_name.clone()];
        (
            guard,
            Certbind { client, ids: chain_ids },
            hp_guard,
            Haproxy { socket, file, payloads },
            [probes(ports[0], &target), probes(ports[1], &target)],
            [probes(ports[0], &names), probes(ports[1], &names)],
        )
    };
    drop(others);

    let servers: [&dyn Server; 2] = [&certbind, &haproxy];
    for run in 1..=runs {
        // Alternate which server goes first.
        let order = if run % 2 == 1 { [0, 1] } else { [1, 0] };
        for s in order {
            let mut line = measure(
                servers[s],
                run,
                &config,
                &targets[s],
                &background[s],
                &chain[run - 1].der,
                &chain[run].der,
                threads,
            );
            line["case"] = json!(case);
            line["count"] = json!(count);
            println!("{line}");
        }
    }
    drop(certbind_guard);
    drop(haproxy_guard);
}
