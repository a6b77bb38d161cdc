//! Test harness: a PKI made with rcgen, a `ServingSource` whose state the test changes
//! between revisions, a running data plane, and a rustls client trusting the test CA.
#![allow(dead_code)]

use certbind_core::ids::{AccountId, BackendId, CertId, ListenerId, LoadBalancerId};
use certbind_core::model::{Backend, BindingRole, Protocol};
use certbind_core::serving::{
    BindingChange, CertMaterial, ChangePoint, MaterialError, ServingDelta, ServingListener, ServingSource, ServingState,
};
use certbind_dataplane::{DataPlane, DataPlaneConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const DAY: i64 = 86_400;

pub fn now() -> i64 {
    certbind_core::now_unix()
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind((LOCALHOST, 0)).expect("bind port 0");
    socket.local_addr().expect("local addr").port()
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One generated certificate, as the control plane would hand it over.
#[derive(Clone)]
pub struct TestCert {
    pub id: CertId,
    pub chain_der: Vec<Vec<u8>>,
    pub key_pem: String,
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

impl TestCert {
    pub fn leaf_der(&self) -> &[u8] {
        &self.chain_der[0]
    }

    pub fn material(&self) -> CertMaterial {
        CertMaterial {
            id: self.id,
            chain_der: self.chain_der.clone(),
            private_key_pem: self.key_pem.clone().into(),
            host_names: self.names.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }
}

/// Root CA → intermediate → leaves. Clients trust only the root, so a handshake that
/// verifies proves the intermediate was sent.
pub struct Pki {
    pub root_der: CertificateDer<'static>,
    pub intermediate_der: Vec<u8>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
    next_id: Mutex<i64>,
}

fn year_now() -> i32 {
    1970 + (now() / 31_556_952) as i32
}

impl Pki {
    pub fn new() -> Pki {
        let mut root_params = CertificateParams::new(Vec::<String>::new()).expect("root params");
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params.distinguished_name.push(DnType::CommonName, "certbind test root");
        let root = CertifiedIssuer::self_signed(root_params, KeyPair::generate().expect("root key")).expect("root");
        let mut inter_params = CertificateParams::new(Vec::<String>::new()).expect("intermediate params");
        inter_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        inter_params.distinguished_name.push(DnType::CommonName, "certbind test intermediate");
        let intermediate =
            CertifiedIssuer::signed_by(inter_params, KeyPair::generate().expect("intermediate key"), &root)
                .expect("intermediate");
        Pki {
            root_der: root.der().clone(),
            intermediate_der: intermediate.der().to_vec(),
            intermediate,
            next_id: Mutex::new(1),
        }
    }

    /// A leaf valid from years ago for `years_left` more years.
    pub fn leaf(&self, names: &[&str]) -> TestCert {
        let y = year_now();
        self.leaf_between(names, (y - 1, 1, 1), (y + 2, 1, 1))
    }

    /// A leaf valid between two (year, month, day) dates.
    pub fn leaf_between(&self, names: &[&str], from: (i32, u8, u8), until: (i32, u8, u8)) -> TestCert {
        self.leaf_with(names, from, until, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// A leaf whose key is of `algorithm` (ECDSA P-256 or P-384).
    pub fn leaf_with(
        &self,
        names: &[&str],
        from: (i32, u8, u8),
        until: (i32, u8, u8),
        algorithm: &'static rcgen::SignatureAlgorithm,
    ) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let key = KeyPair::generate_for(algorithm).expect("leaf key");
        let cert = params.signed_by(&key, &self.intermediate).expect("leaf");
        let id = {
            let mut next = self.next_id.lock().expect("id lock");
            *next += 1;
            CertId(*next)
        };
        TestCert {
            id,
            chain_der: vec![cert.der().to_vec(), self.intermediate_der.clone()],
            key_pem: key.serialize_pem(),
            names,
            not_before: params.not_before.unix_timestamp(),
            not_after: params.not_after.unix_timestamp(),
        }
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.root_der.clone()).expect("root");
        Arc::new(roots)
    }
}

pub fn year_offset(years: i32) -> i32 {
    year_now() + years
}

#[derive(Default)]
struct SourceState {
    revision: i64,
    listeners: Vec<ServingListener>,
    certs: HashMap<CertId, TestCert>,
    /// Certificates whose material the source pretends it cannot produce.
    broken: HashSet<CertId>,
    fail_state: bool,
    material_calls: usize,
    /// The listeners at each committed revision, to answer `serving_changes`.
    history: BTreeMap<i64, Vec<ServingListener>>,
}

/// A `ServingSource` whose state the test edits, then commits as a new revision.
#[derive(Default)]
pub struct TestSource {
    state: Mutex<SourceState>,
}

impl ServingSource for TestSource {
    fn serving_state(&self) -> Result<ServingState, String> {
        let state = self.state.lock().map_err(|_| "poisoned".to_string())?;
        if state.fail_state {
            return Err("test source: state unavailable".into());
        }
        let changes = ChangePoint { revision: state.revision, listener_change: state.revision };
        Ok(ServingState { revision: state.revision, changes, listeners: state.listeners.clone() })
    }

    /// The difference between the state at `since` and now, as the store reports it: a
    /// listener whose socket or backends changed whole, binding changes for the others.
    /// So every data plane test also runs the data plane's incremental build.
    fn serving_changes(&self, since: ChangePoint) -> Result<Option<ServingDelta>, String> {
        let state = self.state.lock().map_err(|_| "poisoned".to_string())?;
        if state.fail_state {
            return Err("test source: state unavailable".into());
        }
        let Some(before) = state.history.get(&since.revision) else { return Ok(None) };
        let changes = ChangePoint { revision: state.revision, listener_change: state.revision };
        let mut delta = ServingDelta { revision: state.revision, changes, ..Default::default() };
        for now in &state.listeners {
            let Some(old) = before.iter().find(|l| l.listener_id == now.listener_id) else {
                delta.listeners.push(now.clone());
                continue;
            };
            let same_socket = (old.address, old.port, old.protocol) == (now.address, now.port, now.protocol);
            if !same_socket || old.backends != now.backends {
                delta.listeners.push(now.clone());
                continue;
            }
            let roles = |l: &ServingListener| -> BTreeMap<CertId, BindingRole> {
                let mut roles: BTreeMap<CertId, BindingRole> =
                    l.additional_certs.iter().map(|id| (*id, BindingRole::Additional)).collect();
                roles.extend(l.default_cert.map(|id| (id, BindingRole::Default)));
                roles
            };
            let (old_roles, new_roles) = (roles(old), roles(now));
            for (cert, role) in &old_roles {
                if !new_roles.contains_key(cert) {
                    let change =
                        BindingChange { listener_id: now.listener_id, cert_id: *cert, role: *role, served: false };
                    delta.bindings.push(change);
                }
            }
            for (cert, role) in &new_roles {
                if old_roles.get(cert) != Some(role) {
                    let change =
                        BindingChange { listener_id: now.listener_id, cert_id: *cert, role: *role, served: true };
                    delta.bindings.push(change);
                }
            }
        }
        for old in before {
            if !state.listeners.iter().any(|l| l.listener_id == old.listener_id) {
                delta.removed.push(old.listener_id);
            }
        }
        Ok(Some(delta))
    }

    fn cert_material(&self, ids: &[CertId]) -> Result<Vec<Result<CertMaterial, MaterialError>>, String> {
        let mut state = self.state.lock().map_err(|_| "poisoned".to_string())?;
        state.material_calls += 1;
        // Broken certificates fail one by one, as a damaged sealed key does in the store.
        let material = |id: &CertId| match state.broken.contains(id) {
            true => Some(Err(MaterialError { id: *id, reason: "test source: material unavailable".into() })),
            false => state.certs.get(id).map(|cert| Ok(cert.material())),
        };
        Ok(ids.iter().filter_map(material).collect())
    }
}

pub fn listener(id: i64, protocol: Protocol, port: u16) -> ServingListener {
    ServingListener {
        listener_id: ListenerId(id),
        account_id: AccountId(1),
        load_balancer_id: LoadBalancerId(1),
        address: None,
        protocol,
        port,
        default_cert: None,
        additional_certs: Vec::new(),
        backends: Vec::new(),
    }
}

pub fn backend(listener: i64, address: String, weight: u32) -> Backend {
    Backend { id: BackendId(1), listener_id: ListenerId(listener), address, weight }
}

/// What a test changes in one revision.
pub struct Edit<'a> {
    pub listeners: &'a mut Vec<ServingListener>,
    certs: &'a mut HashMap<CertId, TestCert>,
    pub broken: &'a mut HashSet<CertId>,
    pub fail_state: &'a mut bool,
}

impl Edit<'_> {
    pub fn add_cert(&mut self, cert: &TestCert) -> CertId {
        self.certs.insert(cert.id, cert.clone());
        cert.id
    }

    pub fn listener(&mut self, id: i64) -> &mut ServingListener {
        self.listeners.iter_mut().find(|l| l.listener_id == ListenerId(id)).expect("listener in state")
    }
}

/// A running data plane over a `TestSource`.
pub struct Harness {
    pub dataplane: Arc<DataPlane>,
    pub source: Arc<TestSource>,
    committed: watch::Sender<i64>,
    shutdown: Option<oneshot::Sender<()>>,
    run: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(Duration::from_secs(2)).await
    }

    pub async fn start_with(drain_timeout: Duration) -> Harness {
        let source = Arc::new(TestSource::default());
        let admission = certbind_dataplane::admission::Admission::new(Default::default());
        let dataplane =
            DataPlane::new(DataPlaneConfig { listen_ip: LOCALHOST, drain_timeout, admission }, source.clone());
        let (committed, committed_rx) = watch::channel(0);
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let run = tokio::spawn(dataplane.clone().run(committed_rx, async move {
            let _ = shutdown_rx.await;
        }));
        let harness = Harness { dataplane, source, committed, shutdown: Some(shutdown), run: Some(run) };
        harness.wait_served(0).await;
        harness
    }

    /// Applies `edit` as a new revision, without waiting for it to be served.
    pub fn commit_nowait(&self, edit: impl FnOnce(&mut Edit<'_>)) -> i64 {
        let revision = {
            let mut state = self.source.state.lock().expect("state lock");
            let state = &mut *state;
            let mut e = Edit {
                listeners: &mut state.listeners,
                certs: &mut state.certs,
                broken: &mut state.broken,
                fail_state: &mut state.fail_state,
            };
            edit(&mut e);
            state.revision += 1;
            let listeners = state.listeners.clone();
            state.history.insert(state.revision, listeners);
            state.revision
        };
        self.committed.send_replace(revision);
        revision
    }

    /// Applies `edit` as a new revision and waits until the data plane serves it.
    pub async fn commit(&self, edit: impl FnOnce(&mut Edit<'_>)) -> i64 {
        let revision = self.commit_nowait(edit);
        self.wait_served(revision).await;
        revision
    }

    pub async fn wait_served(&self, revision: i64) {
        let mut served = self.dataplane.served_revision();
        tokio::time::timeout(Duration::from_secs(20), served.wait_for(|r| *r >= revision))
            .await
            .expect("revision served in time")
            .expect("data plane alive");
    }

    pub fn material_calls(&self) -> usize {
        self.source.state.lock().expect("state lock").material_calls
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(run) = self.run.take() {
            run.await.expect("run loop ends cleanly");
        }
    }
}

/// Verifies the chain against the test root as if the server were `name`, whatever name
/// (or none) the client sent: lets no-SNI and unknown-SNI handshakes still check which
/// certificate came back, and that its chain is complete.
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// How a test client connects.
#[derive(Clone)]
pub struct ClientOptions {
    /// Sent as SNI when set.
    pub sni: Option<String>,
    /// The name the served certificate must be valid for.
    pub verify_as: String,
    pub versions: Vec<&'static SupportedProtocolVersion>,
    pub alpn: Vec<Vec<u8>>,
    /// Offer only these signature schemes (the key types the client can verify); all the
    /// provider's when `None`.
    pub signature_schemes: Option<Vec<SignatureScheme>>,
}

impl ClientOptions {
    pub fn sni(name: &str) -> ClientOptions {
        ClientOptions {
            sni: Some(name.into()),
            verify_as: name.into(),
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            alpn: Vec::new(),
            signature_schemes: None,
        }
    }

    pub fn no_sni(verify_as: &str) -> ClientOptions {
        ClientOptions { sni: None, ..ClientOptions::sni(verify_as) }
    }

    pub fn verify_as(mut self, name: &str) -> ClientOptions {
        self.verify_as = name.into();
        self
    }
}

pub fn client_config(pki: &Pki, options: &ClientOptions) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(schemes) = &options.signature_schemes {
        // Chains still verify with every algorithm; only the offered schemes shrink.
        let offered = provider.signature_verification_algorithms.mapping.iter().filter(|(s, _)| schemes.contains(s));
        let mapping: Vec<_> = offered.cloned().collect();
        provider.signature_verification_algorithms.mapping = Box::leak(mapping.into_boxed_slice());
    }
    let provider = Arc::new(provider);
    let inner = WebPkiServerVerifier::builder_with_provider(pki.roots(), provider.clone()).build().expect("verifier");
    let verifier =
        Arc::new(VerifyAs { inner, name: ServerName::try_from(options.verify_as.clone()).expect("verify name") });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&options.versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Every handshake must be a full one: a resumed session sends no certificate.
    config.resumption = Resumption::disabled();
    config.enable_sni = options.sni.is_some();
    config.alpn_protocols = options.alpn.clone();
    Arc::new(config)
}

pub async fn tls_connect_with(
    config: Arc<ClientConfig>,
    options: &ClientOptions,
    port: u16,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect((LOCALHOST, port)).await?;
    let name = options.sni.clone().unwrap_or_else(|| options.verify_as.clone());
    let name = ServerName::try_from(name).map_err(|e| std::io::Error::other(e.to_string()))?;
    TlsConnector::from(config).connect(name, tcp).await
}

pub async fn tls_connect(pki: &Pki, options: &ClientOptions, port: u16) -> std::io::Result<TlsStream<TcpStream>> {
    tls_connect_with(client_config(pki, options), options, port).await
}

/// The leaf the server presented.
pub fn served_leaf(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().expect("peer certificates")[0].to_vec()
}

/// Polls until `check` holds (sockets open and close asynchronously to some events).
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
