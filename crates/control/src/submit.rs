//! Submitting a planned change: the plan an operation makes, the one transaction that
//! checks access to every target, honours the client token, records the job (by
//! reference, never with a key) and, for a small job, applies it at once; and the dry
//! run that validates the same and commits nothing.

use crate::access::Resource;
use crate::accounts::Principal;
use crate::bindings::{job_action, JobSubmission, PlannedTarget, UncoveredHosts};
use crate::idempotency::{idempotent, request_hash};
use crate::runner::JobToApply;
use crate::{Caller, Control, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::CoreError;
use certbind_store::{BindingScope, BoundListener, NewJob, NewTarget, Tx};
use serde::Serialize;

pub(crate) struct Plan {
    pub(crate) kind: JobKind,
    pub(crate) old: Option<CertId>,
    pub(crate) new: Option<CertId>,
    pub(crate) targets: Targets,
    pub(crate) uncovered: Vec<UncoveredHosts>,
    /// What the job records as its request when that is not the request itself: a
    /// certificate uploaded with the request is recorded by its id, never its key.
    pub(crate) record_as: Option<serde_json::Value>,
}

/// A plan's targets: listed one by one, or (for a real replace, which may cover 100k
/// listeners) every listener bound to the old certificate within a scope, which the store
/// turns into targets in one statement.
pub(crate) enum Targets {
    Listed(Vec<NewTarget>),
    BoundToOld(BindingScope),
}

impl Control {
    /// Runs a plan: validates under the write lock, then either rolls back (dry run) or
    /// commits the job with its targets and wakes the runner.
    pub(crate) fn submit<R: Serialize>(
        &self,
        caller: &Caller,
        operation: &str,
        request: &R,
        dry_run: bool,
        token: Option<&str>,
        plan: impl FnOnce(&mut dyn Tx) -> Result<Plan>,
    ) -> Result<JobSubmission> {
        let mut tx = self.store().write()?;
        if dry_run {
            let plan = plan(&mut *tx)?;
            let Targets::Listed(targets) = plan.targets else {
                return Err(CoreError::Internal("a dry run plans listed targets".into()));
            };
            let forbidden = self.forbidden_targets(&mut *tx, caller, plan.kind, &targets)?;
            // Dropping the transaction rolls back anything the plan touched.
            drop(tx);
            return Ok(JobSubmission {
                job_id: None,
                dry_run: true,
                target_count: targets.len() as u64,
                targets: targets.iter().map(planned).collect(),
                uncovered_hosts: plan.uncovered,
                new_certificate_id: plan.new,
                forbidden,
            });
        }
        let hash = request_hash(operation, request);
        let mut applied_at = None;
        let submission = idempotent(&mut *tx, caller, token, &hash, |tx| {
            let mut plan = plan(tx)?;
            let recorded = plan.record_as.take().unwrap_or_else(|| serde_json::to_value(request).unwrap_or_default());
            let job = NewJob {
                account_id: caller.account_id,
                kind: plan.kind,
                old_cert_id: plan.old,
                new_cert_id: plan.new,
                client_token: token.map(str::to_string),
                request: recorded,
            };
            // A bulk change is allowed only if every target is: checked before anything is written.
            let listed_for_check = match &plan.targets {
                Targets::Listed(targets) => Some(targets.clone()),
                Targets::BoundToOld(scope) if matches!(caller.principal, Principal::User { .. }) => {
                    let old = plan.old.ok_or_else(|| CoreError::Internal("replace without old certificate".into()))?;
                    Some(bound_targets(tx.listeners_bound_to(caller.account_id, old, scope)?))
                }
                Targets::BoundToOld(_) => None,
            };
            if let Some(targets) = listed_for_check {
                self.authorize_targets(tx, caller, plan.kind, &targets)?;
            }
            if caller.one_change_at_a_time {
                if let Targets::Listed(targets) = &plan.targets {
                    let mut seen = std::collections::HashSet::new();
                    for listener in targets.iter().map(|t| t.listener_id).filter(|l| seen.insert(*l)) {
                        if tx.listener_busy(listener)? {
                            return Err(CoreError::ListenerBusy { listener: listener.to_string() });
                        }
                    }
                }
            }
            let (job_id, target_count) = match &plan.targets {
                Targets::Listed(targets) => (tx.insert_job(&job, targets)?, targets.len() as u64),
                Targets::BoundToOld(scope) => {
                    let (job_id, count) = tx.insert_replace_job(&job, scope)?;
                    if count == 0 {
                        // Returning the error rolls the empty job back.
                        let cert = plan.old.map(|c| c.to_string()).unwrap_or_default();
                        return Err(CoreError::OldCertificateNotBound { cert });
                    }
                    (job_id, count)
                }
            };
            // A small job is applied in the transaction that creates it: its change is
            // served without waiting for the runner, and it is as crash-safe (one commit).
            if target_count <= INLINE_APPLY_MAX.min(self.config().apply_batch) {
                let job = JobToApply {
                    id: job_id,
                    account: caller.account_id,
                    kind: plan.kind,
                    old: plan.old,
                    new: plan.new,
                };
                applied_at = self.apply_next_batch(tx, &job, target_count)?;
            }
            Ok(JobSubmission {
                job_id: Some(job_id),
                dry_run: false,
                target_count,
                targets: Vec::new(),
                uncovered_hosts: plan.uncovered,
                new_certificate_id: plan.new,
                forbidden: Vec::new(),
            })
        })?;
        tx.commit()?;
        tracing::debug!(job = ?submission.job_id, targets = submission.target_count, applied_at, "job submitted");
        if let Some(revision) = applied_at {
            self.published(revision);
        }
        self.wake_runner();
        Ok(submission)
    }
}

impl Control {
    /// The load balancers among `targets` the caller may not change (by their names).
    pub(crate) fn forbidden_targets(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        kind: JobKind,
        targets: &[NewTarget],
    ) -> Result<Vec<String>> {
        if matches!(caller.principal, Principal::Root) {
            return Ok(Vec::new());
        }
        let forbidden = self.forbidden_among(tx, caller, job_action(kind), &target_load_balancers(targets))?;
        Ok(forbidden.iter().map(|r| r.native_name(caller.account_id)).collect())
    }

    /// Refuses the whole change unless every target's load balancer is allowed.
    pub(crate) fn authorize_targets(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        kind: JobKind,
        targets: &[NewTarget],
    ) -> Result<()> {
        if matches!(caller.principal, Principal::Root) {
            return Ok(());
        }
        self.authorize(tx, caller, job_action(kind), &target_load_balancers(targets))
    }
}

/// The distinct load balancers of some targets, as authorization resources.
fn target_load_balancers(targets: &[NewTarget]) -> Vec<Resource> {
    let mut seen = std::collections::HashSet::new();
    targets
        .iter()
        .filter(|t| seen.insert(t.load_balancer_id))
        .map(|t| Resource::LoadBalancer { id: t.load_balancer_id, lb_type: t.resource_type, region: t.region.clone() })
        .collect()
}

/// Replace targets for listeners bound to the old certificate (for checks only).
pub(crate) fn bound_targets(bound: Vec<BoundListener>) -> Vec<NewTarget> {
    bound
        .into_iter()
        .map(|b| NewTarget {
            listener_id: b.listener_id,
            load_balancer_id: b.load_balancer_id,
            resource_type: b.lb_type,
            region: b.region,
            action: TargetAction::Replace,
            old_cert_id: None,
            new_cert_id: None,
            applied_at_revision: None,
        })
        .collect()
}

/// Jobs of up to this many targets are applied as they are submitted.
pub(crate) const INLINE_APPLY_MAX: u64 = 1_000;

pub(crate) fn planned(t: &NewTarget) -> PlannedTarget {
    PlannedTarget {
        listener_id: t.listener_id,
        load_balancer_id: t.load_balancer_id,
        resource_type: t.resource_type,
        region: t.region.clone(),
        action: t.action,
        old_certificate_id: t.old_cert_id,
        new_certificate_id: t.new_cert_id,
    }
}
