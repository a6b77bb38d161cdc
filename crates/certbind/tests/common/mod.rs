//! Test harness: real `certbind serve` processes on free loopback ports, certificates
//! made with rcgen, and a signed API client.

#![allow(dead_code)]

use certbind::client::{Client, ClientError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const KEY_ID: &str = "CBTESTROOTKEY0000001";
pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnopq";
/// 32 bytes, hex: a fixed master key so tests can seed a data directory in-process.
pub const MASTER_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "certbind-test-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct ServerOptions {
    pub extra_args: Vec<String>,
    /// Use the fixed root credential and master key (most tests).
    pub fixed_credentials: bool,
    /// Keep the server's log, at debug level, in this file.
    pub debug_log: Option<PathBuf>,
    /// Run the server under this open-file limit, soft and hard (as `ulimit -n`).
    pub open_files: Option<u64>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { extra_args: Vec::new(), fixed_credentials: true, debug_log: None, open_files: None }
    }
}

/// A running `certbind serve`, killed when dropped.
pub struct Server {
    pub dir: PathBuf,
    pub api_port: u16,
    pub child: Option<Child>,
    options: ServerOptions,
    pub stdout: String,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, ServerOptions::default())
    }

    pub fn start_with(dir: &Path, options: ServerOptions) -> Server {
        let mut server = Server { dir: dir.to_path_buf(), api_port: 0, child: None, options, stdout: String::new() };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        for _attempt in 0..5 {
            self.api_port = free_port();
            let mut command = Command::new(env!("CARGO_BIN_EXE_certbind"));
            command
                .arg("serve")
                .arg("--data-dir")
                .arg(&self.dir)
                .arg("--api-addr")
                .arg(format!("127.0.0.1:{}", self.api_port))
                .arg("--listen-ip")
                .arg("127.0.0.1")
                .arg("--drain-timeout-secs")
                .arg("1")
                .args(&self.options.extra_args)
                // CERTBIND_TEST_LOG=debug shows a server's log on the test's stderr.
                .env("RUST_LOG", std::env::var("CERTBIND_TEST_LOG").unwrap_or_else(|_| "warn".into()))
                .env_remove("CERTBIND_ACCESS_KEY_ID")
                .env_remove("CERTBIND_ACCESS_KEY_SECRET")
                .env_remove("CERTBIND_MASTER_KEY")
                .stdout(Stdio::piped())
                .stderr(if std::env::var_os("CERTBIND_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
            if let Some(limit) = self.options.open_files {
                use std::os::unix::process::CommandExt;
                // SAFETY: only an async-signal-safe setrlimit call between fork and exec.
                unsafe {
                    command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, limit, limit));
                }
            }
            if let Some(path) = &self.options.debug_log {
                let log = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the log file");
                command.env("RUST_LOG", "debug").stderr(log);
            }
            if self.options.fixed_credentials {
                command
                    .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
                    .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
                    .env("CERTBIND_MASTER_KEY", MASTER_KEY);
            }
            let child = command.spawn().expect("start certbind serve");
            self.child = Some(child);
            if self.wait_ready(Duration::from_secs(30)) {
                return;
            }
            self.kill9();
        }
        panic!("certbind serve did not become ready");
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        while start.elapsed() < timeout {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if let Ok(response) = agent.get(&format!("{}/healthz", self.url())).call() {
                if response.status() == 200 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url(), KEY_ID, SECRET)
    }

    pub fn client_with(&self, key_id: &str, secret: &str) -> Client {
        Client::new(&self.url(), key_id, secret)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops with SIGTERM and collects what the server printed.
    pub fn stop(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            unsafe_sigterm(child.id());
            let _ = child.wait();
            if let Some(mut out) = child.stdout.take() {
                use std::io::Read;
                let mut text = String::new();
                let _ = out.read_to_string(&mut text);
                self.stdout.push_str(&text);
            }
        }
        self.stdout.clone()
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A certificate authority issuing leaves with a chain.
pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// The issuing CA (an intermediate when the leaf came from `Ca::intermediate`).
    pub chain_pem: String,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let cert = params.self_signed(&key).unwrap();
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    pub fn intermediate(&self, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_valid(names, None)
    }

    /// A leaf valid from `not_before` to `not_after` (unix seconds) when given.
    pub fn issue_valid(&self, names: &[&str], validity: Option<(i64, i64)>) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        if let Some((nb, na)) = validity {
            params.not_before = time::OffsetDateTime::from_unix_timestamp(nb).unwrap();
            params.not_after = time::OffsetDateTime::from_unix_timestamp(na).unwrap();
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain_pem: self.pem.clone(),
            der: cert.der().to_vec(),
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

pub fn upload(client: &Client, issued: &Issued, name: &str) -> String {
    let answer = client
        .post(
            "/v1/certificates",
            &json!({
                "name": name,
                "certificate_pem": issued.cert_pem,
                "chain_pem": issued.chain_pem,
                "private_key_pem": issued.key_pem,
                "on_duplicate": "allow",
            }),
        )
        .unwrap_or_else(|e| panic!("upload {name}: {e}"));
    answer["certificate"]["id"].as_str().unwrap().to_string()
}

pub fn create_lb(client: &Client, region: &str, lb_type: &str) -> String {
    let lb = client.post("/v1/load-balancers", &json!({"lb_type": lb_type, "region": region})).unwrap();
    lb["id"].as_str().unwrap().to_string()
}

/// Creates a listener and waits for it to be served.
pub fn create_listener(client: &Client, lb: &str, protocol: &str, port: u16, cert: Option<&str>) -> String {
    let answer = client
        .post(
            "/v1/listeners",
            &json!({"load_balancer_id": lb, "protocol": protocol, "port": port, "default_certificate_id": cert}),
        )
        .unwrap_or_else(|e| panic!("create listener: {e}"));
    let job = answer["job_id"].as_str().unwrap().to_string();
    assert_eq!(wait_job(client, &job)["state"], "succeeded");
    answer["id"].as_str().unwrap().to_string()
}

pub fn wait_job(client: &Client, job: &str) -> Value {
    let start = Instant::now();
    loop {
        let value = client.get(&format!("/v1/jobs/{job}")).unwrap();
        if value["state"] == "succeeded" || value["state"] == "failed" {
            return value;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "job {job} did not finish: {value}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The name of the account's default project (what UCloud's SDK names as its project).
pub fn default_project_name(client: &Client) -> String {
    let projects = client.get("/v1/projects").unwrap();
    projects["items"]
        .as_array()
        .and_then(|items| items.iter().find(|p| p["is_default"] == true))
        .and_then(|p| p["name"].as_str())
        .unwrap_or_else(|| panic!("no default project: {projects}"))
        .to_string()
}

/// A one-click update of every listener bound to `old` onto `new`, uploaded with the
/// request as a PEM pair; the answer.
pub fn one_click_upload(client: &Client, old: &str, new: &Issued) -> Value {
    let upload = json!({"certificate_pem": new.cert_pem, "private_key_pem": new.key_pem});
    client
        .post("/v1/one-click-update", &json!({"old_certificate_id": old, "new_certificate": {"upload": upload}}))
        .unwrap_or_else(|e| panic!("one-click update: {e}"))
}

/// The API error code of a failed call (panics if the call succeeded).
pub fn error_code(result: Result<Value, ClientError>) -> (u16, String) {
    match result {
        Ok(value) => panic!("expected an error, got {value}"),
        Err(ClientError::Api { status, code, .. }) => (status, code),
        Err(other) => panic!("expected an API error, got {other}"),
    }
}

/// `(cert id, role, status)` for each binding of a listener.
pub fn bindings(client: &Client, listener: &str) -> Vec<(String, String, String)> {
    let value = client.get(&format!("/v1/listeners/{listener}")).unwrap();
    value["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["cert_id"].as_str().unwrap().to_string(),
                b["role"].as_str().unwrap().to_string(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Accepts any server certificate: these tests look at *which* certificate is served.
#[derive(Debug)]
struct AcceptAny(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config that accepts any server certificate and offers `alpn`.
pub fn any_server_client_config(alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}

/// Handshakes with `127.0.0.1:port` sending `sni` and returns the presented chain (DER).
pub fn served_chain(port: u16, sni: &str) -> Result<Vec<Vec<u8>>, String> {
    use std::io::Write;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let chain = conn.peer_certificates().ok_or("no certificate")?.iter().map(|c| c.to_vec()).collect();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    let _ = sock.flush();
    Ok(chain)
}

/// The Python with the clouds' official SDKs: `CERTBIND_SDK_PYTHON`, or the workspace's
/// `.venv` that `scripts/sdk-venv` (run by `scripts/test`) creates.
pub fn sdk_python() -> PathBuf {
    if let Ok(path) = std::env::var("CERTBIND_SDK_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(venv.exists(), "no SDK virtualenv at {}: run ./scripts/sdk-venv (./scripts/test does)", venv.display());
    venv
}

/// Runs `tests/sdk/<script>` with the SDK Python against `server`. The script gets the
/// endpoint and the root credential in `CERTBIND_ENDPOINT`, `CERTBIND_ACCESS_KEY_ID` and
/// `CERTBIND_ACCESS_KEY_SECRET` (plus `env`), must exit 0, and prints a JSON object as its
/// last line of output, which is returned.
pub fn run_sdk_script(script: &str, server: &Server, env: &[(&str, &str)]) -> Value {
    run_sdk_script_output(script, server, env).1
}

/// As `run_sdk_script`, also returning everything the script printed.
pub fn run_sdk_script_output(script: &str, server: &Server, env: &[(&str, &str)]) -> (String, Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk").join(script);
    let mut command = Command::new(sdk_python());
    command
        .arg(&path)
        .env("CERTBIND_ENDPOINT", server.url())
        .env("CERTBIND_ACCESS_KEY_ID", KEY_ID)
        .env("CERTBIND_ACCESS_KEY_SECRET", SECRET)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("{}");
    let result =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{script} printed no JSON result ({e}):\n{stdout}"));
    (stdout.to_string(), result)
}
