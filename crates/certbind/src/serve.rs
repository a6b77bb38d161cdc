//! `certbind serve`: opens the data directory, starts the data plane, the job runner and
//! the API, and stops them in order on SIGTERM / SIGINT.

use certbind_api::{ApiState, DataPlaneView};
use certbind_control::{Control, ControlConfig};
use certbind_core::ids::ListenerId;
use certbind_core::secret::MasterKey;
use certbind_core::serving::{ListenerRuntime, ServingSource};
use certbind_dataplane::admission::{Admission, ConnectionLimits};
use certbind_dataplane::{DataPlane, DataPlaneConfig};
use certbind_store::SqliteStore;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub api_addr: SocketAddr,
    pub listen_ip: IpAddr,
    pub default_region: String,
    pub max_additional_per_lb: u32,
    pub drain_timeout: Duration,
    pub apply_batch: u64,
    pub lagging_timeout: Duration,
    /// How long requests signed without a time (UCloud) are remembered against replays.
    pub untimed_replay_window: Duration,
    /// Connection caps and deadlines; `max_connections` 0 means "as many as the open-file
    /// limit allows".
    pub limits: ConnectionLimits,
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("data directory {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("data directory {path} is in use by another certbind serve (it holds {path}/{LOCK_FILE}); stop that one or choose another --data-dir")]
    DataDirInUse { path: String },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("store: {0}")]
    Store(#[from] certbind_store::StoreError),
    #[error("{0}")]
    Control(#[from] certbind_core::CoreError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

const MASTER_KEY_FILE: &str = "master.key";
/// Held locked (exclusively) for as long as a server runs on the data directory.
const LOCK_FILE: &str = "lock";

/// Takes the data directory for this process: two servers on one SQLite file would each
/// run a job runner and each serve what they think is stored. The lock goes with the
/// process, however it ends.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, ServeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.display().to_string();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| ServeError::DataDir { path: path.clone(), reason: e.to_string() })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::DataDirInUse { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(ServeError::DataDir { path, reason: e.to_string() }),
    }
}

/// The master key from `CERTBIND_MASTER_KEY`, or from the data directory, generated with
/// mode 0600 on first start.
fn master_key(dir: &Path) -> Result<MasterKey, ServeError> {
    if let Ok(text) = std::env::var("CERTBIND_MASTER_KEY") {
        return MasterKey::from_text(&text).map_err(|e| ServeError::MasterKey(format!("CERTBIND_MASTER_KEY: {e}")));
    }
    let path = dir.join(MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_text(&text).map_err(|e| ServeError::MasterKey(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = MasterKey::generate().map_err(|e| ServeError::MasterKey(e.to_string()))?;
            write_private_file(&path, text.as_bytes())
                .map_err(|e| ServeError::MasterKey(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "generated a new master key");
            Ok(key)
        }
        Err(e) => Err(ServeError::MasterKey(format!("{}: {e}", path.display()))),
    }
}

/// Creates the data directory if needed and makes it the owner's alone (0700): it holds
/// the master key and the database.
fn private_data_dir(dir: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |e: std::io::Error| ServeError::DataDir { path: dir.display().to_string(), reason: e.to_string() };
    std::fs::create_dir_all(dir).map_err(failed)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)
}

fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

struct DataPlaneAdapter(Arc<DataPlane>, watch::Receiver<i64>);

impl DataPlaneView for DataPlaneAdapter {
    fn metrics_text(&self) -> String {
        self.0.metrics_text()
    }
    fn listener_runtime(&self, id: ListenerId) -> Option<ListenerRuntime> {
        self.0.listener_runtime(id)
    }
    fn served_revision(&self) -> i64 {
        *self.1.borrow()
    }
}

pub async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let dir = &options.data_dir;
    private_data_dir(dir)?;
    let _data_dir_lock = lock_data_dir(dir)?;
    let master = master_key(dir)?;
    let store = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || SqliteStore::open_dir(&dir)
    })
    .await
    .map_err(|e| ServeError::DataDir { path: dir.display().to_string(), reason: e.to_string() })??;
    let config = ControlConfig {
        default_region: options.default_region.clone(),
        max_additional_per_lb: options.max_additional_per_lb,
        apply_batch: options.apply_batch,
        lagging_timeout: options.lagging_timeout,
        untimed_replay_window: options.untimed_replay_window,
        ..ControlConfig::default()
    };
    let control = Control::new(Arc::new(store), master, config)?;
    control.set_resource_namer(Arc::new(certbind_api::dialects::resources::cloud_names));

    let credential = match (std::env::var("CERTBIND_ACCESS_KEY_ID"), std::env::var("CERTBIND_ACCESS_KEY_SECRET")) {
        (Ok(id), Ok(secret)) => Some((id, secret)),
        _ => None,
    };
    let created = control.bootstrap(credential.as_ref().map(|(i, s)| (i.as_str(), s.as_str())))?;
    if let Some(created) = created {
        // Shown once: only the key id is stored in the clear.
        println!("created account {} ({})", created.account.name, created.account.id);
        println!("export CERTBIND_ACCESS_KEY_ID={}", created.access_key.key_id);
        println!("export CERTBIND_ACCESS_KEY_SECRET={}", created.access_key.secret);
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown = {
        let shutdown_rx = shutdown_rx.clone();
        move || {
            let mut rx = shutdown_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        }
    };

    let admission = Admission::new(crate::open_files::fit_limits(options.limits.clone()));
    let source: Arc<dyn ServingSource> = Arc::new(control.clone());
    let dataplane = DataPlane::new(
        DataPlaneConfig {
            listen_ip: options.listen_ip,
            drain_timeout: options.drain_timeout,
            admission: admission.clone(),
        },
        source,
    );
    let served = dataplane.served_revision();
    let dataplane_task = tokio::spawn(dataplane.clone().run(control.committed_revisions(), shutdown()));
    let lagging: certbind_control::LaggingListeners = {
        let dataplane = dataplane.clone();
        Arc::new(move || dataplane.lagging_listeners())
    };
    let runner_task = tokio::spawn(control.clone().run_jobs(served.clone(), lagging, shutdown()));

    let ready = Arc::new(AtomicBool::new(false));
    let state = ApiState {
        control: control.clone(),
        dataplane: Some(Arc::new(DataPlaneAdapter(dataplane.clone(), served.clone()))),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(options.api_addr)
        .await
        .map_err(|e| ServeError::Bind { addr: options.api_addr, reason: e.to_string() })?;
    tracing::info!(api = %options.api_addr, listen_ip = %options.listen_ip, data_dir = %dir.display(), "certbind serving");

    // Ready once the data plane serves the state that was stored at start.
    let start_revision = *control.committed_revisions().borrow();
    tokio::spawn({
        let mut served = served.clone();
        let ready = ready.clone();
        async move {
            if served.wait_for(|r| *r >= start_revision).await.is_ok() {
                ready.store(true, Ordering::Release);
                tracing::info!(revision = start_revision, "ready");
            }
        }
    });

    let app = certbind_api::router(state);
    let api_task = tokio::spawn(crate::api_server::serve_api(
        listener,
        app,
        admission,
        shutdown_rx.clone(),
        options.drain_timeout,
    ));

    wait_for_signal().await;
    tracing::info!("shutting down");
    ready.store(false, Ordering::Release);
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(options.drain_timeout + Duration::from_secs(1), async {
        let _ = api_task.await;
        let _ = runner_task.await;
        let _ = dataplane_task.await;
    })
    .await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
