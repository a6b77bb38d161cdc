//! Replace limited to an explicit set of listeners. A retry or a rollback of an earlier
//! job must touch exactly that job's listeners, not everything bound to the certificate
//! (which a scoped replace would).

use crate::bindings::JobSubmission;
use crate::{Caller, Control, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::CoreError;
use certbind_store::{NewJob, NewTarget};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerReplaceRequest {
    pub old_certificate_id: CertId,
    pub new_certificate_id: CertId,
    pub listener_ids: Vec<ListenerId>,
    /// `Replace` or `OneClickUpdate`: how the job is listed.
    pub kind: JobKind,
    /// Recorded as the job's client token, so the caller can recognise the job later
    /// (say, "a rollback of job 12"). Not an idempotency key.
    #[serde(default)]
    pub label: Option<String>,
}

impl Control {
    /// Moves each listed listener still bound to the old certificate onto the new one, in
    /// the old binding's role, as one job. Listeners gone or no longer on the old
    /// certificate are skipped; none left is `OldCertificateNotBound`.
    pub fn replace_on_listeners(&self, caller: &Caller, request: &ListenerReplaceRequest) -> Result<JobSubmission> {
        if !matches!(request.kind, JobKind::Replace | JobKind::OneClickUpdate) {
            return Err(CoreError::invalid("kind", "must be replace or one_click_update"));
        }
        let (old, new) = (request.old_certificate_id, request.new_certificate_id);
        if old == new {
            return Err(CoreError::SameCertificate { cert: old.to_string() });
        }
        let mut tx = self.store().write()?;
        for id in [old, new] {
            tx.get_certificate(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("certificate", id))?;
        }
        let mut seen = std::collections::HashSet::new();
        let mut targets = Vec::new();
        for id in &request.listener_ids {
            if !seen.insert(*id) {
                continue;
            }
            let Some(listener) = tx.get_listener(caller.account_id, *id)? else { continue };
            let bound =
                tx.listener_bindings(*id)?.iter().any(|b| b.cert_id == old && b.status != BindingStatus::Dissociating);
            if !bound {
                continue;
            }
            let Some(lb) = tx.get_load_balancer(caller.account_id, listener.load_balancer_id)? else { continue };
            targets.push(NewTarget {
                listener_id: listener.id,
                load_balancer_id: lb.id,
                resource_type: lb.lb_type,
                region: lb.region.clone(),
                action: TargetAction::Replace,
                old_cert_id: Some(old),
                new_cert_id: Some(new),
                applied_at_revision: None,
            });
        }
        if targets.is_empty() {
            return Err(CoreError::OldCertificateNotBound { cert: old.to_string() });
        }
        self.authorize_targets(&mut *tx, caller, request.kind, &targets)?;
        let job_id = tx.insert_job(
            &NewJob {
                account_id: caller.account_id,
                kind: request.kind,
                old_cert_id: Some(old),
                new_cert_id: Some(new),
                client_token: request.label.clone(),
                request: serde_json::to_value(request).unwrap_or_default(),
            },
            &targets,
        )?;
        tx.commit()?;
        self.wake_runner();
        Ok(JobSubmission {
            job_id: Some(job_id),
            dry_run: false,
            target_count: targets.len() as u64,
            targets: Vec::new(),
            uncovered_hosts: Vec::new(),
            new_certificate_id: Some(new),
            forbidden: Vec::new(),
        })
    }
}
