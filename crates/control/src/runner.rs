//! The job runner. It applies pending targets in batches, one transaction per batch, so a
//! crash at any instant leaves every listener with the old binding or the new one; after
//! a restart it simply carries on. Targets and bindings are settled (Associated,
//! Dissociated, succeeded) only once the data plane reports serving their revision.

use crate::{Control, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::CoreError;
use certbind_store::{LaggingListener, Tx};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Lists the listeners the data plane serves at an older revision than the one it
/// reports (their newest certificates failed to load): which revision and certificates
/// they serve, and why not the newer ones.
pub type LaggingListeners = Arc<dyn Fn() -> Vec<LaggingListener> + Send + Sync>;

/// Settles up to the data plane's served revision whenever it has moved, and rolls back
/// the changes of listeners that have lagged for too long.
struct Settler {
    served: watch::Receiver<i64>,
    lagging: LaggingListeners,
    settled: i64,
    /// Since when each lagging listener has been seen lagging.
    lagging_since: HashMap<ListenerId, Instant>,
}

impl Settler {
    fn settle(&mut self, control: &Control) -> Result<()> {
        let served = *self.served.borrow();
        if served > self.settled {
            control.settle(served, &(self.lagging)())?;
            self.settled = served;
        }
        Ok(())
    }

    /// A listener that cannot load what it should serve (a certificate whose material is
    /// damaged, say) keeps serving what it had, and its jobs wait. Past the timeout its
    /// pending changes are rolled back to what it serves and their targets fail, as a
    /// cloud fails a task that cannot be configured: the listener is usable again instead
    /// of configuring forever.
    fn roll_back_stuck(&mut self, control: &Control) -> Result<()> {
        let lagging = (self.lagging)();
        let now = Instant::now();
        self.lagging_since.retain(|id, _| lagging.iter().any(|l| l.listener_id == *id));
        for listener in lagging {
            // A listener that never served a default of its own has nothing to go back to
            // (rule 1: a TLS listener always has its default); its changes keep waiting.
            if listener.serving_revision.is_none() || listener.held_default.is_none() {
                continue;
            }
            let since = *self.lagging_since.entry(listener.listener_id).or_insert(now);
            if now.duration_since(since) >= control.config().lagging_timeout {
                control.roll_back(&listener)?;
                // Give the data plane a full timeout to take the rolled-back state.
                self.lagging_since.insert(listener.listener_id, now);
            }
        }
        Ok(())
    }
}

/// How often the runner looks at lagging listeners while there are any.
const LAGGING_CHECK: Duration = Duration::from_secs(1);

/// After `failures` failed passes in a row: half a second, doubling up to 30 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(500).saturating_mul(1 << failures.min(6)).min(Duration::from_secs(30))
}

/// Why a single target could not be applied (recorded on the target; the job goes on).
type TargetError = String;

/// What applying a job needs to know of it.
pub(crate) struct JobToApply {
    pub(crate) id: JobId,
    pub(crate) account: AccountId,
    pub(crate) kind: JobKind,
    pub(crate) old: Option<CertId>,
    pub(crate) new: Option<CertId>,
}

impl Control {
    /// Runs jobs until `shutdown` resolves. `served` is the revision the data plane serves;
    /// `lagging` the listeners that serve an older one.
    pub async fn run_jobs(
        self,
        mut served: watch::Receiver<i64>,
        lagging: LaggingListeners,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let settler_served = served.clone();
        let new_settler = move || Settler {
            served: settler_served.clone(),
            lagging: lagging.clone(),
            settled: -1,
            lagging_since: HashMap::new(),
        };
        let mut settler = new_settler();
        // Consecutive failed passes: a store that cannot take writes (a full disk) is
        // retried with back-off, and said so once per doubling, not twice a second.
        let mut failures: u32 = 0;
        loop {
            served.borrow_and_update();
            let control = self.clone();
            // Each pass settles at least once, whatever the previous pass settled.
            settler.settled = -1;
            let pass = tokio::task::spawn_blocking(move || {
                let result = control.runner_pass(&mut settler);
                (settler, result)
            })
            .await;
            let failed = match pass {
                Ok((returned, result)) => {
                    settler = returned;
                    result.err().map(|e| e.to_string())
                }
                Err(e) => {
                    settler = new_settler();
                    Some(format!("the pass panicked: {e}"))
                }
            };
            let backoff = retry_delay(failures);
            match &failed {
                Some(error) => {
                    failures = failures.saturating_add(1);
                    if failures.is_power_of_two() {
                        tracing::error!(%error, failures, retry_in = ?backoff, "job runner pass failed; retrying");
                    }
                }
                None if failures > 0 => {
                    tracing::info!(failures, "job runner passes succeed again");
                    failures = 0;
                }
                None => {}
            }
            if failed.is_some() {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                continue;
            }
            // While a listener lags, look again soon: its changes roll back on time.
            let idle = if settler.lagging_since.is_empty() { Duration::from_secs(5) } else { LAGGING_CHECK };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.jobs_waiting.notified() => {}
                changed = served.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// One pass: settle what the data plane now serves, then apply every pending target,
    /// settling again between batches as the data plane catches up (so a long job's
    /// bindings turn Associated while it runs, not all at its end).
    fn runner_pass(&self, settler: &mut Settler) -> Result<()> {
        settler.settle(self)?;
        let jobs = self.store().read()?.unfinished_jobs()?;
        for job in jobs {
            let job = JobToApply {
                id: job.id,
                account: job.account_id,
                kind: job.kind,
                old: job.old_cert_id,
                new: job.new_cert_id,
            };
            self.apply_job(&job, settler)?;
        }
        // Targets that changed nothing may already be covered by what is served.
        settler.settle(self)?;
        settler.roll_back_stuck(self)
    }

    /// Puts a lagging listener's bindings back to what it serves, failing the targets of
    /// the changes it could not take.
    fn roll_back(&self, lagging: &LaggingListener) -> Result<()> {
        let mut tx = self.store().write()?;
        let revision = tx.next_revision()?;
        let timeout = self.config().lagging_timeout;
        let reason =
            format!("rolled back after {} s: the listener cannot serve it: {}", timeout.as_secs(), lagging.reason);
        let failed = tx.roll_back_listener(lagging, revision, &reason)?;
        tx.commit()?;
        self.published(revision);
        tracing::warn!(listener = %lagging.listener_id, failed, reason = %lagging.reason, "rolled back changes a listener could not serve");
        Ok(())
    }

    fn settle(&self, served: i64, lagging: &[LaggingListener]) -> Result<()> {
        if served < 0 {
            return Ok(());
        }
        if !lagging.is_empty() {
            tracing::warn!(listeners = lagging.len(), "listeners lag behind the served revision; their changes wait");
        }
        let started = std::time::Instant::now();
        let mut tx = self.store().write()?;
        let settled = tx.settle(served, lagging)?;
        tx.commit()?;
        tracing::debug!(served, bindings = settled.bindings, targets = settled.targets, elapsed = ?started.elapsed(), "settled");
        for job in settled.jobs_finished {
            tracing::info!(%job, "job finished");
        }
        Ok(())
    }

    /// Applies a job batch after batch, one transaction each, settling between batches.
    fn apply_job(&self, job: &JobToApply, settler: &mut Settler) -> Result<()> {
        loop {
            settler.settle(self)?;
            let mut tx = self.store().write()?;
            let applied = self.apply_next_batch(&mut *tx, job, self.config().apply_batch)?;
            tx.commit()?;
            match applied {
                Some(revision) => self.published(revision),
                None => return Ok(()),
            }
        }
    }

    /// Applies up to `limit` of the job's pending targets in `tx`, at a new revision which
    /// it returns; `None` when no target was left. The caller commits, then publishes the
    /// revision. The job runner calls this batch after batch; a small job's submission
    /// calls it once, in the transaction that creates the job, so the change is served
    /// without waiting for the runner.
    pub(crate) fn apply_next_batch(&self, tx: &mut dyn Tx, job: &JobToApply, limit: u64) -> Result<Option<i64>> {
        let started = std::time::Instant::now();
        tx.mark_job_running(job.id)?;
        if let (JobKind::Replace | JobKind::OneClickUpdate, Some(old), Some(new)) = (job.kind, job.old, job.new) {
            // Without the new certificate, the per-target path fails each target with its reason.
            if tx.get_certificate(job.account, new)?.is_some() {
                let revision = tx.next_revision()?;
                let batch = tx.apply_replace_batch(job.id, old, new, revision, limit)?;
                if batch.considered == 0 {
                    return Ok(None);
                }
                // Listeners in an unusual state (holding both certificates) go one by one.
                for target in &batch.needs_review {
                    self.apply_one(tx, job.account, target, revision)?;
                }
                tracing::debug!(
                    job = %job.id, considered = batch.considered, applied = batch.applied, failed = batch.failed,
                    one_by_one = batch.needs_review.len(), revision, elapsed = ?started.elapsed(),
                    "applied replace targets"
                );
                return Ok(Some(revision));
            }
        }
        let targets = tx.pending_targets(job.id, limit)?;
        if targets.is_empty() {
            return Ok(None);
        }
        let revision = tx.next_revision()?;
        // Whether each certificate still exists, checked once per batch, not per target.
        let mut certs_present: HashMap<CertId, bool> = HashMap::new();
        for target in &targets {
            if let Some(new) = target.new_cert_id {
                let present = match certs_present.get(&new) {
                    Some(present) => *present,
                    None => {
                        let present = tx.get_certificate(job.account, new)?.is_some();
                        certs_present.insert(new, present);
                        present
                    }
                };
                if !present {
                    tx.set_target_outcome(
                        job.id,
                        target.seq,
                        TargetStatus::Failed,
                        None,
                        Some(&format!("certificate {new} was deleted")),
                    )?;
                    continue;
                }
            }
            self.apply_one(tx, job.account, target, revision)?;
        }
        tracing::debug!(job = %job.id, applied = targets.len(), revision, elapsed = ?started.elapsed(), "applied job targets");
        Ok(Some(revision))
    }

    /// Applies one target and records its outcome.
    fn apply_one(&self, tx: &mut dyn Tx, account: AccountId, target: &JobTarget, revision: i64) -> Result<()> {
        match self.apply_target(tx, account, target, revision)? {
            Ok(()) => tx.set_target_outcome(target.job_id, target.seq, TargetStatus::Running, Some(revision), None)?,
            Err(reason) => {
                tracing::warn!(job = %target.job_id, listener = %target.listener_id, %reason, "job target failed");
                tx.set_target_outcome(target.job_id, target.seq, TargetStatus::Failed, None, Some(&reason))?
            }
        }
        Ok(())
    }

    /// Applies one target's change to its listener's bindings, re-checking against the
    /// current state: the world may have moved since the job was planned. A change that is
    /// already in place counts as applied. The new certificate is known to exist.
    fn apply_target(
        &self,
        tx: &mut dyn Tx,
        account: AccountId,
        target: &JobTarget,
        revision: i64,
    ) -> Result<std::result::Result<(), TargetError>> {
        if tx.get_listener(account, target.listener_id)?.is_none() {
            return Ok(Err(format!("listener {} was deleted", target.listener_id)));
        }
        let bindings = tx.listener_bindings(target.listener_id)?;
        let live =
            |cert: CertId| bindings.iter().find(|b| b.cert_id == cert && b.status != BindingStatus::Dissociating);
        let put = |tx: &mut dyn Tx, cert: CertId, role: BindingRole, status: BindingStatus| -> Result<()> {
            Ok(tx.put_binding(&Binding { listener_id: target.listener_id, cert_id: cert, role, status, revision })?)
        };
        match target.action {
            TargetAction::Activate => {}
            TargetAction::SetDefault => {
                let Some(new) = target.new_cert_id else { return Ok(Err("no certificate given".into())) };
                let current =
                    bindings.iter().find(|b| b.role == BindingRole::Default && b.status != BindingStatus::Dissociating);
                if current.map(|b| b.cert_id) != Some(new) {
                    // Add the new default before retiring the old one, in one revision.
                    put(tx, new, BindingRole::Default, BindingStatus::Associating)?;
                    if let Some(old) = current {
                        put(tx, old.cert_id, BindingRole::Default, BindingStatus::Dissociating)?;
                    }
                }
            }
            TargetAction::Associate => {
                let Some(new) = target.new_cert_id else { return Ok(Err("no certificate given".into())) };
                if live(new).is_none() {
                    let lb = tx.get_load_balancer(account, target.load_balancer_id)?;
                    if let Some(lb) = lb {
                        let max = self.config().max_additional_per_lb as u64;
                        if tx.count_additional_bindings(lb.id)? >= max {
                            return Ok(Err(format!(
                                "load balancer {} already has {max} additional certificates",
                                lb.id
                            )));
                        }
                    }
                    put(tx, new, BindingRole::Additional, BindingStatus::Associating)?;
                }
            }
            TargetAction::Dissociate => {
                let Some(old) = target.old_cert_id else { return Ok(Err("no certificate given".into())) };
                match live(old) {
                    None => {}
                    Some(b) if b.role == BindingRole::Default => {
                        return Ok(Err(CoreError::DefaultCertificateNotDissociable {
                            cert: old.to_string(),
                            listener: target.listener_id.to_string(),
                        }
                        .to_string()))
                    }
                    Some(_) => put(tx, old, BindingRole::Additional, BindingStatus::Dissociating)?,
                }
            }
            TargetAction::Replace => {
                let (Some(old), Some(new)) = (target.old_cert_id, target.new_cert_id) else {
                    return Ok(Err("old and new certificate are required".into()));
                };
                match (live(old), live(new)) {
                    (None, Some(_)) => {} // already replaced
                    (None, None) => return Ok(Err(format!("listener is no longer bound to {old}"))),
                    (Some(old_binding), new_binding) => {
                        let role = old_binding.role;
                        // The new certificate takes the old one's role (a default stays a
                        // default); it is added in the same revision the old one leaves.
                        let new_role = match new_binding {
                            Some(b) if b.role == BindingRole::Default => BindingRole::Default,
                            _ => role,
                        };
                        if new_binding.map(|b| b.role) != Some(new_role) {
                            put(tx, new, new_role, BindingStatus::Associating)?;
                        }
                        put(tx, old, role, BindingStatus::Dissociating)?;
                    }
                }
            }
        }
        Ok(Ok(()))
    }
}
