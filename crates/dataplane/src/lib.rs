//! certbind's data plane: the listeners themselves.
//!
//! The control plane commits desired state at store revisions; on each new revision the
//! data plane reads what changed from a [`ServingSource`] (the whole serving state at
//! start, or when the source cannot say), builds an immutable snapshot that shares
//! everything unchanged with the previous one (per TLS listener, one
//! [`certset::CertSet`]: its certificates and the SNI index over them), publishes it with
//! one atomic swap, opens and closes sockets to match, and only then reports the revision
//! as served. Handshakes read the current snapshot without a lock; a connection keeps
//! what it negotiated.
//!
//! # When a snapshot does not build
//!
//! * The serving state cannot be read: nothing changes, the previous snapshot keeps
//!   serving, the served revision does not advance, and the build is retried with backoff.
//! * Some listener's certificates cannot be loaded (material missing, key unusable, the
//!   source failing): that listener keeps the certificate set it served before (a new
//!   listener gets the certificates that did load), every other listener gets the new
//!   revision, and the snapshot is published. The served revision then DOES advance,
//!   because everything that could be built was published; the failure is reported by
//!   `tracing::error`, `certbind_snapshot_build_failures_total`,
//!   `certbind_listener_certificates_stale`, the listener's runtime `reason`, and
//!   [`DataPlane::listener_served_revision`] staying at the older revision, which is what a
//!   job confirming one listener's change should wait on. The build is retried with
//!   backoff, so a transient source failure heals without a new revision.
//!
//! Not advancing the whole served revision for one broken listener was rejected: a
//! certificate never changes once stored, so an unloadable one would stall every job of
//! every listener until someone unbound it.

pub mod admission;
mod backends;
mod certcache;
mod certids;
pub mod certset;
mod counted;
mod error;
mod listener;
mod listener_map;
mod metrics;
mod proxy;
mod snapshot;
mod sockets;
mod tls;
mod upstream;

pub use error::{CertLoadError, ListenerBuildError, SnapshotError};

use arc_swap::ArcSwap;
use certbind_core::serving::{LaggingListener, ListenerRuntime, ServingSource};
use certbind_core::ListenerId;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::crypto::CryptoProvider;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use admission::Admission;
use backends::{HealthTable, QUARANTINE};
use certcache::CertCache;
use metrics::MetricsRegistry;
use snapshot::{BuildOutcome, Snapshot};
use sockets::{Sockets, STATE_SERVING};
use upstream::HttpPool;

/// Retry delays after a failed or partial build.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often listeners whose port could not be bound try again.
const BIND_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// Where listeners of load balancers without their own address listen.
    pub listen_ip: IpAddr,
    /// How long stopped listeners (and shutdown) let open connections finish.
    pub drain_timeout: Duration,
    /// The connection table and its limits, shared with the API.
    pub admission: Arc<Admission>,
}

/// What the accept loops, handshakes and requests share with the run loop.
pub(crate) struct Shared {
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) metrics: MetricsRegistry,
    pub(crate) health: HealthTable,
    pub(crate) http_pool: Arc<HttpPool>,
    pub(crate) http_server: auto::Builder<TokioExecutor>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) runtime: Mutex<HashMap<ListenerId, ListenerRuntime>>,
}

pub struct DataPlane {
    config: DataPlaneConfig,
    source: Arc<dyn ServingSource>,
    shared: Arc<Shared>,
    served: watch::Sender<i64>,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("config", &self.config)
            .field("served_revision", &*self.served.borrow())
            .finish_non_exhaustive()
    }
}

/// The HTTP/1.1 and HTTP/2 server every HTTP listener (and the API) runs connections
/// with: header read deadline, one header limit for both versions, PING liveness for
/// HTTP/2. Idle connections are closed by admission, not here.
pub fn http_server(limits: &admission::ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's smallest read buffer is 8 KiB; headers must fit in it whole.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.http2_ping_interval))
        .keep_alive_timeout(limits.http2_ping_interval)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

impl DataPlane {
    pub fn new(config: DataPlaneConfig, source: Arc<dyn ServingSource>) -> Arc<Self> {
        let http_server = http_server(config.admission.limits());
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            metrics: MetricsRegistry::default(),
            health: HealthTable::new(QUARANTINE),
            http_pool: Arc::new(HttpPool::default()),
            http_server,
            admission: config.admission.clone(),
            runtime: Mutex::new(HashMap::new()),
        });
        let (served, _) = watch::channel(-1);
        Arc::new(DataPlane { config, source, shared, served })
    }

    /// Revision of the snapshot currently published (served). Starts at -1 until the
    /// first publish.
    pub fn served_revision(&self) -> watch::Receiver<i64> {
        self.served.subscribe()
    }

    /// Runs until `shutdown` resolves: on every change of `committed` (the store's latest
    /// committed revision), and once at start, rebuilds the snapshot from
    /// `source.serving_state()`, publishes it atomically, reconciles sockets, then sends
    /// the snapshot's revision on [`DataPlane::served_revision`]. Revisions committed while
    /// a build runs are coalesced into one build from the latest state. On shutdown,
    /// stops accepting and lets open connections finish for up to the drain timeout.
    pub async fn run(self: Arc<Self>, mut committed: watch::Receiver<i64>, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut sockets = Sockets::new(self.shared.clone(), self.config.listen_ip, self.config.drain_timeout);
        let mut cache = CertCache::new(self.shared.provider.clone());
        let mut committed_open = true;
        let mut retry_delay = RETRY_MIN;
        let mut retry_at: Option<Instant> = None;
        let mut rebuild = true;
        // After a build task failed (its cache lost with it), the next build reads everything.
        let mut whole_state_next = false;
        committed.borrow_and_update();
        loop {
            if rebuild {
                rebuild = false;
                let build_started = Instant::now();
                let build = self.build(cache, std::mem::take(&mut whole_state_next));
                tokio::pin!(build);
                let (returned, result) = tokio::select! {
                    built = &mut build => built,
                    _ = &mut shutdown => break,
                };
                cache = returned;
                tracing::debug!(elapsed = ?build_started.elapsed(), "snapshot built");
                let complete = match result {
                    Ok(outcome) => self.publish(outcome, &mut sockets).await,
                    Err(error) => {
                        whole_state_next = matches!(error, SnapshotError::Task(_));
                        tracing::error!(%error, "snapshot build failed; the previous snapshot keeps serving");
                        self.shared.metrics.snapshot_build_failures.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                };
                if complete {
                    retry_delay = RETRY_MIN;
                    retry_at = None;
                } else {
                    retry_at = Some(Instant::now() + retry_delay);
                    retry_delay = (retry_delay * 2).min(RETRY_MAX);
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                changed = committed.changed(), if committed_open => match changed {
                    Ok(()) => rebuild = true,
                    // The store side is gone: keep serving what we have until shutdown.
                    Err(_) => committed_open = false,
                },
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    retry_at = None;
                    rebuild = true;
                }
                _ = tokio::time::sleep(BIND_RETRY), if sockets.has_bind_failures() => {
                    let snapshot = self.shared.snapshot.load_full();
                    sockets.reconcile(&snapshot, true).await;
                }
            }
        }
        sockets.shutdown().await;
    }

    /// Builds off the async runtime: reading the state and parsing keys is blocking work
    /// (100k certificates take a while). From the changes since the published snapshot,
    /// unless `whole_state` or the source cannot say what changed.
    async fn build(&self, cache: CertCache, whole_state: bool) -> (CertCache, Result<BuildOutcome, SnapshotError>) {
        let source = self.source.clone();
        let previous = self.shared.snapshot.load_full();
        let provider = self.shared.provider.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut cache = cache;
            // What changed since the previous snapshot, when the source can say; else all.
            let started = std::time::Instant::now();
            let changes = match previous.revision {
                _ if whole_state => Ok(None),
                -1 => Ok(None),
                _ => source.serving_changes(previous.changes),
            };
            tracing::debug!(elapsed = ?started.elapsed(), "serving changes read");
            let result = match changes {
                Ok(Some(delta)) => Ok(snapshot::apply_changes(delta, &previous, &mut cache, source.as_ref())),
                Ok(None) => {
                    source.serving_state().map(|state| snapshot::build(state, &previous, &mut cache, source.as_ref()))
                }
                Err(error) => Err(error),
            };
            (cache, result.map_err(SnapshotError::State))
        })
        .await;
        match joined {
            Ok(built) => built,
            Err(error) => (CertCache::new(provider), Err(SnapshotError::Task(error.to_string()))),
        }
    }

    /// Publishes, reconciles sockets, then reports the revision. Returns whether every
    /// listener got this revision's certificates.
    async fn publish(&self, outcome: BuildOutcome, sockets: &mut Sockets) -> bool {
        let BuildOutcome { snapshot, failures, from_changes } = outcome;
        let revision = snapshot.revision;
        for (listener, error) in &failures {
            tracing::error!(%listener, %error, "listener keeps its previous certificates");
        }
        if !failures.is_empty() {
            self.shared.metrics.snapshot_build_failures.fetch_add(1, Ordering::Relaxed);
        }
        let builds = match from_changes {
            true => &self.shared.metrics.snapshot_builds_from_changes,
            false => &self.shared.metrics.snapshot_builds,
        };
        builds.fetch_add(1, Ordering::Relaxed);
        let snapshot = Arc::new(snapshot);
        self.shared.snapshot.store(snapshot.clone());
        sockets.reconcile(&snapshot, false).await;
        self.served.send_if_modified(|served| {
            let changed = *served != revision;
            *served = revision;
            changed
        });
        tracing::debug!(revision, listeners = snapshot.listeners.len(), "snapshot published");
        failures.is_empty()
    }

    /// Per-listener socket status: "serving", "bind_failed" (with the OS reason),
    /// "unsupported" (UDP, QUIC), or "stopped" after shutdown. A serving TLS listener whose
    /// latest certificates failed to load says so in `reason`. `None` for a listener the
    /// served snapshot does not have.
    pub fn listener_runtime(&self, id: ListenerId) -> Option<ListenerRuntime> {
        let mut status = {
            let runtime = self.shared.runtime.lock().unwrap_or_else(|p| p.into_inner());
            runtime.get(&id)?.clone()
        };
        if status.state == STATE_SERVING && status.reason.is_none() {
            let snapshot = self.shared.snapshot.load();
            if let Some(view) = snapshot.listeners.get(&id) {
                status.reason = view.cert_error.as_ref().map(|error| match view.certs_revision {
                    Some(kept) => format!("{error}; still serving the certificates of revision {kept}"),
                    None => format!("{error}; serving only the certificates that loaded"),
                });
            }
        }
        Some(status)
    }

    /// The revision whose desired state this listener serves: the served revision, or an
    /// older one while its newer certificates cannot be loaded (`None` if they never
    /// could). A job confirming a change on one listener waits for this to reach the
    /// change's revision.
    pub fn listener_served_revision(&self, id: ListenerId) -> Option<i64> {
        let snapshot = self.shared.snapshot.load();
        snapshot.listeners.get(&id)?.serving_revision(snapshot.revision)
    }

    /// Listeners serving an older revision than the published snapshot because their newer
    /// certificates could not be loaded, with the revision they do serve (`None`: none of
    /// theirs yet). Usually empty; the job runner must not confirm their changes.
    pub fn lagging_listeners(&self) -> Vec<LaggingListener> {
        let snapshot = self.shared.snapshot.load();
        snapshot
            .with_errors
            .iter()
            .filter_map(|id| Some((id, snapshot.listeners.get(id)?)))
            .filter_map(|(id, view)| {
                let serving_revision = view.serving_revision(snapshot.revision);
                (serving_revision != Some(snapshot.revision)).then(|| {
                    let (held_default, held_additional) = view.held_certificates();
                    LaggingListener {
                        listener_id: *id,
                        serving_revision,
                        reason: view.cert_error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                        held_default,
                        held_additional,
                    }
                })
            })
            .collect()
    }

    /// Prometheus text exposition: per-listener connection, handshake and byte counters,
    /// expiry of every served certificate, and the data plane's own state.
    pub fn metrics_text(&self) -> String {
        let runtime = self.shared.runtime.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let snapshot = self.shared.snapshot.load();
        let served = *self.served.borrow();
        let mut text = self.shared.metrics.render(&snapshot, served, &runtime);
        self.shared.admission.render_metrics(&mut text);
        text
    }
}
