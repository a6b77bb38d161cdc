//! The control plane: every operation a dialect can ask for, as validated plans committed
//! to the store in one transaction, and the runner that carries jobs through to the data
//! plane. Dialects call [`Control`]; they never touch the store or the data plane.

mod access;
mod accounts;
mod bindings;
mod certificates;
mod health;
mod idempotency;
mod jobs;
mod listener_replace;
mod load_balancers;
mod replay;
mod runner;
mod serving;
mod submit;

pub use access::{audit_entry, AuditFacts, Resource, ResourceNamer, Simulation, MAX_ACTIVE_USER_KEYS};
pub use accounts::{Caller, CreatedAccount, NewAccessKey, Principal};
pub use bindings::{
    AssociateRequest, DissociateRequest, JobSubmission, NewCertificateSource, OneClickUpdateRequest, PlannedTarget,
    ReplaceRequest, SetDefaultRequest, UncoveredHosts,
};
pub use certificates::{DuplicatePolicy, UploadOutcome, UploadRequest};
pub use listener_replace::ListenerReplaceRequest;
pub use load_balancers::{CreateListenerRequest, CreateLoadBalancerRequest, ListenerDetail};
pub use replay::Seen;
pub use runner::LaggingListeners;

use certbind_core::secret::MasterKey;
use certbind_core::CoreError;
use certbind_store::Store;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// Limits and defaults an operator may tune.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Region for requests that carry none.
    pub default_region: String,
    /// Additional (SNI) certificates allowed per load balancer.
    pub max_additional_per_lb: u32,
    /// Certificates per associate / dissociate request.
    pub max_certs_per_request: usize,
    /// Targets applied per store transaction by the job runner.
    pub apply_batch: u64,
    /// How long a listener may keep failing to load what it should serve before its
    /// pending changes are rolled back to what it does serve, their targets failed.
    pub lagging_timeout: std::time::Duration,
    /// How long a signed request that carries no time (UCloud's) is remembered, and a
    /// write sent again within it refused as a replay; zero remembers none.
    pub untimed_replay_window: std::time::Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            default_region: "local".to_string(),
            max_additional_per_lb: 25,
            max_certs_per_request: 15,
            apply_batch: 20000,
            lagging_timeout: std::time::Duration::from_secs(60),
            untimed_replay_window: std::time::Duration::from_secs(300),
        }
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;

/// Shared handle to the control plane. Its methods block on the store: async callers run
/// them on the blocking pool.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    master: MasterKey,
    config: ControlConfig,
    /// The newest committed revision; the data plane rebuilds when it moves.
    committed: watch::Sender<i64>,
    /// Wakes the job runner when a job is created.
    jobs_waiting: Notify,
    /// Cloud-form resource names, set by the API layer.
    namer: std::sync::OnceLock<access::ResourceNamer>,
    last_probe: health::LastProbe,
}

impl Control {
    pub fn new(store: Arc<dyn Store>, master: MasterKey, config: ControlConfig) -> Result<Self> {
        let revision = store.read()?.revision()?;
        let (committed, _) = watch::channel(revision);
        Ok(Control {
            inner: Arc::new(Inner {
                store,
                master,
                config,
                committed,
                jobs_waiting: Notify::new(),
                namer: std::sync::OnceLock::new(),
                last_probe: Default::default(),
            }),
        })
    }

    pub fn config(&self) -> &ControlConfig {
        &self.inner.config
    }

    /// The newest committed revision, for the data plane to follow.
    pub fn committed_revisions(&self) -> watch::Receiver<i64> {
        self.inner.committed.subscribe()
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.inner.master
    }

    /// Announces a committed revision (call after commit, never before).
    pub(crate) fn published(&self, revision: i64) {
        self.inner.committed.send_if_modified(|current| {
            if revision > *current {
                *current = revision;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn wake_runner(&self) {
        self.inner.jobs_waiting.notify_one();
    }
}
