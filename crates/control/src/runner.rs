//! The job runner. It applies pending targets in batches, one transaction per batch, so a
//! crash at any instant leaves every listener with the old binding or the new one; after
//! a restart it simply carries on. Targets and bindings are settled (Associated,
//! Dissociated, succeeded) only once the data plane reports serving their revision.

use crate::{Control, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::CoreError;
use certbind_store::Tx;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Why a single target could not be applied (recorded on the target; the job goes on).
type TargetError = String;

impl Control {
    /// Runs jobs until `shutdown` resolves. `served` is the revision the data plane serves.
    pub async fn run_jobs(self, mut served: watch::Receiver<i64>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let served_now = *served.borrow_and_update();
            let control = self.clone();
            let pass = tokio::task::spawn_blocking(move || control.runner_pass(served_now)).await;
            let retry_soon = match pass {
                Ok(Ok(())) => false,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "job runner pass failed; retrying");
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "job runner pass panicked; retrying");
                    true
                }
            };
            let idle = if retry_soon { Duration::from_millis(500) } else { Duration::from_secs(5) };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.jobs_waiting.notified() => {}
                changed = served.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// One pass: settle what the data plane now serves, then apply every pending target.
    pub fn runner_pass(&self, served: i64) -> Result<()> {
        self.settle(served)?;
        let jobs = self.store().read()?.unfinished_jobs()?;
        for (job, account) in jobs {
            self.apply_job(job, account)?;
        }
        // Targets that changed nothing may already be covered by what is served.
        self.settle(served)?;
        Ok(())
    }

    fn settle(&self, served: i64) -> Result<()> {
        if served < 0 {
            return Ok(());
        }
        let mut tx = self.store().write()?;
        let settled = tx.settle(served)?;
        tx.commit()?;
        for job in settled.jobs_finished {
            tracing::info!(%job, "job finished");
        }
        Ok(())
    }

    fn apply_job(&self, job: JobId, account: AccountId) -> Result<()> {
        loop {
            let mut tx = self.store().write()?;
            tx.mark_job_running(job)?;
            let targets = tx.pending_targets(job, self.config().apply_batch)?;
            if targets.is_empty() {
                tx.commit()?;
                return Ok(());
            }
            let revision = tx.next_revision()?;
            for target in &targets {
                match self.apply_target(&mut *tx, account, target, revision)? {
                    Ok(()) => tx.set_target_outcome(job, target.seq, TargetStatus::Running, Some(revision), None)?,
                    Err(reason) => {
                        tracing::warn!(%job, listener = %target.listener_id, %reason, "job target failed");
                        tx.set_target_outcome(job, target.seq, TargetStatus::Failed, None, Some(&reason))?
                    }
                }
            }
            tx.commit()?;
            self.published(revision);
            tracing::debug!(%job, applied = targets.len(), revision, "applied job targets");
        }
    }

    /// Applies one target's change to its listener's bindings, re-checking against the
    /// current state: the world may have moved since the job was planned. A change that is
    /// already in place counts as applied.
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
        if let Some(new) = target.new_cert_id {
            if tx.get_certificate(account, new)?.is_none() {
                return Ok(Err(format!("certificate {new} was deleted")));
            }
        }
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
