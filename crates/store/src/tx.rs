//! The transaction interface: domain-level reads and writes, nothing dialect-specific.

use crate::StoreError;
use certbind_core::ids::*;
use certbind_core::model::*;
use std::net::IpAddr;

pub use certbind_core::serving::{
    BindingChange, ChangePoint, LaggingListener, ServingDelta, ServingListener, ServingState,
};

pub type StoreResult<T> = Result<T, StoreError>;

/// An access key as stored: the secret still sealed under the master key.
#[derive(Debug, Clone)]
pub struct StoredAccessKey {
    pub key_id: String,
    pub account_id: AccountId,
    /// The user the key belongs to; `None` for the account's root keys.
    pub user_id: Option<UserId>,
    pub secret_sealed: Vec<u8>,
    pub enabled: bool,
    pub created_at: i64,
}

/// A certificate to insert. The private key arrives sealed; the store never sees it plain.
pub struct NewCertificate {
    pub account_id: AccountId,
    pub project_id: ProjectId,
    pub name: String,
    pub common_name: Option<String>,
    pub sans: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub fingerprint_sha256: String,
    pub key_algorithm: KeyAlgorithm,
    pub key_bits: u32,
    pub chain_pem: String,
    pub allow_download: bool,
    pub attributes: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct CertificateFilter {
    pub project_id: Option<ProjectId>,
    /// Substring of the name, common name or any SAN.
    pub search: Option<String>,
    pub ids: Vec<CertId>,
    /// Only certificates whose not_after is before this instant.
    pub expiring_before: Option<i64>,
    /// Sort by expiry (ascending when true) instead of by id.
    pub sort_by_expiry: Option<bool>,
    pub offset: u64,
    pub limit: u64,
}

pub struct NewLoadBalancer {
    pub account_id: AccountId,
    pub project_id: ProjectId,
    pub name: String,
    pub lb_type: LbType,
    pub region: String,
    pub address: Option<IpAddr>,
    pub attributes: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct LoadBalancerFilter {
    pub project_id: Option<ProjectId>,
    pub ids: Vec<LoadBalancerId>,
    pub lb_type: Option<LbType>,
    pub region: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

pub struct NewListener {
    pub account_id: AccountId,
    pub load_balancer_id: LoadBalancerId,
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub attributes: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct ListenerFilter {
    pub load_balancer_id: Option<LoadBalancerId>,
    pub ids: Vec<ListenerId>,
    pub protocol: Option<Protocol>,
    pub offset: u64,
    pub limit: u64,
}

/// Where a replace or one-click update looks for listeners bound to a certificate.
#[derive(Debug, Clone, Default)]
pub struct BindingScope {
    pub project_id: Option<ProjectId>,
    pub load_balancer_id: Option<LoadBalancerId>,
    pub listener_id: Option<ListenerId>,
    /// Empty means every type.
    pub lb_types: Vec<LbType>,
    /// Empty means every region.
    pub regions: Vec<String>,
}

/// A listener currently bound (not dissociating) to some certificate, with what a job
/// target needs to know about it.
#[derive(Debug, Clone)]
pub struct BoundListener {
    pub listener_id: ListenerId,
    pub load_balancer_id: LoadBalancerId,
    pub lb_type: LbType,
    pub region: String,
    pub project_id: ProjectId,
    pub role: BindingRole,
}

pub struct NewJob {
    pub account_id: AccountId,
    pub kind: JobKind,
    pub old_cert_id: Option<CertId>,
    pub new_cert_id: Option<CertId>,
    pub client_token: Option<String>,
    pub request: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct NewTarget {
    pub listener_id: ListenerId,
    pub load_balancer_id: LoadBalancerId,
    pub resource_type: LbType,
    pub region: String,
    pub action: TargetAction,
    pub old_cert_id: Option<CertId>,
    pub new_cert_id: Option<CertId>,
    /// Targets whose change was committed with the job (listener creation) start Running
    /// at that revision; all others start Pending.
    pub applied_at_revision: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<JobKind>,
    pub old_cert_id: Option<CertId>,
    pub offset: u64,
    pub limit: u64,
}

/// A remembered answer to a request that carried a client token.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub response: serde_json::Value,
}

/// What [`Tx::apply_replace_batch`] did.
#[derive(Debug, Clone, Default)]
pub struct ReplaceBatch {
    /// Pending targets looked at (0: none left).
    pub considered: u64,
    /// Targets applied (now Running at the batch's revision), including listeners that
    /// were already on the new certificate.
    pub applied: u64,
    /// Targets whose listener holds neither certificate any more (now Failed).
    pub failed: u64,
    /// Targets whose listener holds both certificates: left Pending for the caller to
    /// apply one by one.
    pub needs_review: Vec<JobTarget>,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<i64>,
    pub offset: u64,
    pub limit: u64,
}

/// Outcome of settling bindings and targets up to a served revision.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    pub bindings: u64,
    pub targets: u64,
    pub jobs_finished: Vec<JobId>,
}

/// The columns a certificate is served from ([`Tx::serving_certificates`]); the private
/// key is still sealed under the master key.
#[derive(Clone)]
pub struct ServingCertificate {
    pub id: CertId,
    pub common_name: Option<String>,
    pub sans: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub chain_pem: String,
    pub key_sealed: Vec<u8>,
}

impl std::fmt::Debug for ServingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCertificate").field("id", &self.id).finish_non_exhaustive()
    }
}

/// One transaction. Every method runs inside it; nothing is visible to others until
/// [`Tx::commit`].
pub trait Tx {
    fn commit(self: Box<Self>) -> StoreResult<()>;

    // ---- revisions: every change to what the data plane serves bumps the revision ----
    fn revision(&mut self) -> StoreResult<i64>;
    /// The revision this transaction's serving changes will carry (bumped once per
    /// transaction, on first call).
    fn next_revision(&mut self) -> StoreResult<i64>;

    // ---- accounts, keys, projects ----
    fn insert_account(&mut self, name: &str) -> StoreResult<Account>;
    fn get_account(&mut self, id: AccountId) -> StoreResult<Option<Account>>;
    fn list_accounts(&mut self) -> StoreResult<Vec<Account>>;
    fn insert_access_key(&mut self, key: &StoredAccessKey) -> StoreResult<()>;
    fn get_access_key(&mut self, key_id: &str) -> StoreResult<Option<StoredAccessKey>>;
    fn list_access_keys(&mut self, account: AccountId) -> StoreResult<Vec<StoredAccessKey>>;
    fn set_access_key_enabled(&mut self, key_id: &str, enabled: bool) -> StoreResult<bool>;
    fn delete_access_key(&mut self, key_id: &str) -> StoreResult<bool>;
    fn insert_project(&mut self, account: AccountId, name: &str, is_default: bool) -> StoreResult<Project>;
    fn get_project(&mut self, account: AccountId, id: ProjectId) -> StoreResult<Option<Project>>;
    fn default_project(&mut self, account: AccountId) -> StoreResult<Option<Project>>;
    fn list_projects(&mut self, account: AccountId) -> StoreResult<Vec<Project>>;

    // ---- certificates ----
    /// The sealed key is stored with the row; `seal` gets the new id so the seal can be
    /// bound to it.
    fn insert_certificate(
        &mut self,
        cert: &NewCertificate,
        seal: &mut dyn FnMut(CertId) -> StoreResult<Vec<u8>>,
    ) -> StoreResult<Certificate>;
    fn get_certificate(&mut self, account: AccountId, id: CertId) -> StoreResult<Option<Certificate>>;
    fn certificate_key_sealed(&mut self, id: CertId) -> StoreResult<Option<Vec<u8>>>;
    /// Certificates by id regardless of account (for the data plane).
    fn certificates_by_ids(&mut self, ids: &[CertId]) -> StoreResult<Vec<Certificate>>;
    fn find_certificate_by_fingerprint(&mut self, account: AccountId, fingerprint: &str)
        -> StoreResult<Option<CertId>>;
    fn list_certificates(
        &mut self,
        account: AccountId,
        filter: &CertificateFilter,
    ) -> StoreResult<(Vec<Certificate>, u64)>;
    fn update_certificate(&mut self, cert: &Certificate) -> StoreResult<()>;
    fn delete_certificate(&mut self, account: AccountId, id: CertId) -> StoreResult<bool>;
    /// Listeners holding any binding (in any state) to the certificate.
    fn count_certificate_bindings(&mut self, id: CertId) -> StoreResult<u64>;

    // ---- load balancers and listeners ----
    fn insert_load_balancer(&mut self, lb: &NewLoadBalancer) -> StoreResult<LoadBalancer>;
    fn get_load_balancer(&mut self, account: AccountId, id: LoadBalancerId) -> StoreResult<Option<LoadBalancer>>;
    fn list_load_balancers(
        &mut self,
        account: AccountId,
        filter: &LoadBalancerFilter,
    ) -> StoreResult<(Vec<LoadBalancer>, u64)>;
    fn update_load_balancer(&mut self, lb: &LoadBalancer) -> StoreResult<()>;
    fn delete_load_balancer(&mut self, account: AccountId, id: LoadBalancerId) -> StoreResult<bool>;
    fn count_listeners(&mut self, lb: LoadBalancerId) -> StoreResult<u64>;

    fn insert_listener(&mut self, listener: &NewListener) -> StoreResult<Listener>;
    fn get_listener(&mut self, account: AccountId, id: ListenerId) -> StoreResult<Option<Listener>>;
    fn list_listeners(&mut self, account: AccountId, filter: &ListenerFilter) -> StoreResult<(Vec<Listener>, u64)>;
    fn update_listener(&mut self, listener: &Listener) -> StoreResult<()>;
    /// Deletes the listener with its bindings and backends.
    fn delete_listener(&mut self, account: AccountId, id: ListenerId) -> StoreResult<bool>;
    /// A listener that would collide with a new one on `lb` at `port` over the same
    /// transport: on the same load balancer, or on any load balancer bound to the same
    /// address (`None`: the server's listen IP).
    fn listener_on_port(
        &mut self,
        lb: &LoadBalancer,
        port: u16,
        udp: bool,
    ) -> StoreResult<Option<(ListenerId, LoadBalancerId)>>;

    // ---- bindings ----
    fn listener_bindings(&mut self, listener: ListenerId) -> StoreResult<Vec<Binding>>;
    fn put_binding(&mut self, binding: &Binding) -> StoreResult<()>;
    fn delete_binding(&mut self, listener: ListenerId, cert: CertId) -> StoreResult<()>;
    /// Additional bindings (not dissociating) across all listeners of a load balancer.
    fn count_additional_bindings(&mut self, lb: LoadBalancerId) -> StoreResult<u64>;
    fn listeners_bound_to(
        &mut self,
        account: AccountId,
        cert: CertId,
        scope: &BindingScope,
    ) -> StoreResult<Vec<BoundListener>>;

    // ---- backends ----
    fn insert_backend(&mut self, listener: ListenerId, address: &str, weight: u32) -> StoreResult<Backend>;
    fn list_backends(&mut self, listener: ListenerId) -> StoreResult<Vec<Backend>>;
    fn delete_backend(&mut self, listener: ListenerId, id: BackendId) -> StoreResult<bool>;

    // ---- jobs ----
    fn insert_job(&mut self, job: &NewJob, targets: &[NewTarget]) -> StoreResult<JobId>;
    /// Creates a replace job (`job.old_cert_id` → `job.new_cert_id`) with one pending
    /// target per listener bound to the old certificate within `scope`, set-based.
    /// Returns the job and its number of targets.
    fn insert_replace_job(&mut self, job: &NewJob, scope: &BindingScope) -> StoreResult<(JobId, u64)>;
    fn get_job(&mut self, account: AccountId, id: JobId) -> StoreResult<Option<Job>>;
    fn list_jobs(&mut self, account: AccountId, filter: &JobFilter) -> StoreResult<(Vec<Job>, u64)>;
    fn job_targets(&mut self, job: JobId, offset: u64, limit: u64) -> StoreResult<Vec<JobTarget>>;
    /// Jobs not yet finished, oldest first (the runner's work list, also after a crash).
    /// Their counts are not filled in.
    fn unfinished_jobs(&mut self) -> StoreResult<Vec<Job>>;
    fn mark_job_running(&mut self, job: JobId) -> StoreResult<()>;
    fn pending_targets(&mut self, job: JobId, limit: u64) -> StoreResult<Vec<JobTarget>>;
    /// Applies up to `limit` pending targets of a replace job (every target `old` → `new`)
    /// as a set, at `revision`: a listener holding `old` but not `new` gets `new` in
    /// `old`'s role while `old` turns Dissociating, in this one revision (add, then
    /// remove); a listener already on `new` only counts as applied; one holding neither
    /// fails. The same rules as applying each target alone, without a round trip per
    /// listener: this is what makes a rotation over 100k listeners quick.
    fn apply_replace_batch(
        &mut self,
        job: JobId,
        old: CertId,
        new: CertId,
        revision: i64,
        limit: u64,
    ) -> StoreResult<ReplaceBatch>;
    fn set_target_outcome(
        &mut self,
        job: JobId,
        seq: i64,
        status: TargetStatus,
        revision: Option<i64>,
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// Marks bindings and targets up to `served` as done, and finishes jobs with no work
    /// left. `lagging` lists listeners the data plane serves at an older revision (their
    /// certificates failed to load): theirs settle only up to that revision (`None`: not
    /// at all), and their running targets carry the reason. Idempotent.
    fn settle(&mut self, served: i64, lagging: &[LaggingListener]) -> StoreResult<Settled>;
    /// Puts a lagging listener's bindings back to what it serves (`held_*`), at `revision`:
    /// bindings changed after its serving revision become Associated if held, and go
    /// otherwise; its running targets of those changes fail with `reason`. Returns how
    /// many targets failed.
    fn roll_back_listener(&mut self, lagging: &LaggingListener, revision: i64, reason: &str) -> StoreResult<u64>;
    /// Whether another change to the listener is under way: a binding not yet settled, or
    /// an unfinished job target on it.
    fn listener_busy(&mut self, listener: ListenerId) -> StoreResult<bool>;
    /// Jobs still referencing a certificate as old or new and not finished.
    fn unfinished_jobs_for_certificate(&mut self, cert: CertId) -> StoreResult<Vec<JobId>>;

    // ---- idempotency ----
    fn idempotency_get(&mut self, account: AccountId, token: &str) -> StoreResult<Option<IdempotencyRecord>>;
    fn idempotency_put(&mut self, account: AccountId, token: &str, record: &IdempotencyRecord) -> StoreResult<()>;

    // ---- serving ----
    fn serving_state(&mut self) -> StoreResult<ServingState>;
    /// What changed in the serving state after `since`; `None` when that history is no
    /// longer kept or too many listeners changed: read [`Tx::serving_state`] instead.
    fn serving_changes(&mut self, since: ChangePoint) -> StoreResult<Option<ServingDelta>>;

    // ---- users, policies, audit (access control) ----
    fn insert_user(&mut self, account: AccountId, name: &str) -> StoreResult<User>;
    fn get_user(&mut self, account: AccountId, name: &str) -> StoreResult<Option<User>>;
    fn get_user_by_id(&mut self, id: UserId) -> StoreResult<Option<User>>;
    fn list_users(&mut self, account: AccountId) -> StoreResult<Vec<User>>;
    /// Deletes the user with its keys and policy attachments.
    fn delete_user(&mut self, account: AccountId, id: UserId) -> StoreResult<bool>;
    fn list_user_keys(&mut self, user: UserId) -> StoreResult<Vec<StoredAccessKey>>;
    fn insert_policy(&mut self, account: AccountId, name: &str, document: &serde_json::Value) -> StoreResult<Policy>;
    fn get_policy(&mut self, account: AccountId, name: &str) -> StoreResult<Option<Policy>>;
    fn list_policies(&mut self, account: AccountId) -> StoreResult<Vec<Policy>>;
    fn update_policy(&mut self, id: PolicyId, document: &serde_json::Value) -> StoreResult<()>;
    /// Deletes the policy and detaches it from every user.
    fn delete_policy(&mut self, account: AccountId, id: PolicyId) -> StoreResult<bool>;
    fn attach_policy(&mut self, user: UserId, policy: PolicyId) -> StoreResult<()>;
    fn detach_policy(&mut self, user: UserId, policy: PolicyId) -> StoreResult<bool>;
    fn user_policies(&mut self, user: UserId) -> StoreResult<Vec<Policy>>;
    fn insert_audit(&mut self, entry: &AuditEntry) -> StoreResult<()>;
    fn list_audit(&mut self, account: AccountId, filter: &AuditFilter) -> StoreResult<(Vec<AuditEntry>, u64)>;

    // ---- serving: bulk certificate material ----
    /// What serving needs of each certificate in `ids` (regardless of account), with its
    /// sealed key, in ascending id order; ids that do not exist are left out. One query
    /// however many ids: the data plane loads 100k certificates at start.
    fn serving_certificates(&mut self, ids: &[CertId]) -> StoreResult<Vec<ServingCertificate>>;
}
