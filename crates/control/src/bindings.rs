//! Binding operations. Each one validates everything up front, then commits a durable job
//! with one target per listener change; the runner applies the targets. A dry run runs
//! the same validation inside a transaction that is rolled back.

use crate::certificates::UploadRequest;
use crate::submit::{Plan, Targets};
use crate::{Caller, Control, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::names;
use certbind_core::CoreError;
use certbind_store::{BindingScope, BoundListener, NewTarget, Tx};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetDefaultRequest {
    pub listener_id: ListenerId,
    pub certificate_id: CertId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssociateRequest {
    pub listener_id: ListenerId,
    pub certificate_ids: Vec<CertId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DissociateRequest {
    pub listener_id: ListenerId,
    pub certificate_ids: Vec<CertId>,
}

/// Replace old → new within a scope (UCloud's UpdateSSLBinding semantics): nothing
/// given means the whole account (or `project_id`); a load balancer; a listener; or a load
/// balancer and listener, where the listener must belong to that load balancer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplaceRequest {
    pub old_certificate_id: CertId,
    pub new_certificate_id: CertId,
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    #[serde(default)]
    pub load_balancer_id: Option<LoadBalancerId>,
    #[serde(default)]
    pub listener_id: Option<ListenerId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewCertificateSource {
    /// A stored certificate.
    Id(CertId),
    /// A certificate uploaded with the request.
    Upload(UploadRequest),
}

/// One-click update (Tencent's UpdateCertificateInstance semantics): every listener bound
/// to the old certificate, filtered by load balancer type and region, moves to the new one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OneClickUpdateRequest {
    pub old_certificate_id: CertId,
    pub new_certificate: NewCertificateSource,
    #[serde(default)]
    pub resource_types: Vec<LbType>,
    #[serde(default)]
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedTarget {
    pub listener_id: ListenerId,
    pub load_balancer_id: LoadBalancerId,
    pub resource_type: LbType,
    pub region: String,
    pub action: TargetAction,
    pub old_certificate_id: Option<CertId>,
    pub new_certificate_id: Option<CertId>,
}

/// Host names a listener served with the old certificate that nothing it keeps covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UncoveredHosts {
    pub listener_id: ListenerId,
    pub host_names: Vec<String>,
}

/// The answer to a binding operation: the job, or for a dry run what it would do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSubmission {
    pub job_id: Option<JobId>,
    pub dry_run: bool,
    pub target_count: u64,
    /// Every target, for a dry run; empty otherwise (read them from the job).
    pub targets: Vec<PlannedTarget>,
    pub uncovered_hosts: Vec<UncoveredHosts>,
    /// The certificate a one-click update moves to (set when uploaded with the request).
    pub new_certificate_id: Option<CertId>,
    /// For a dry run by a user: the load balancers among the targets its policies do not
    /// allow (the real run would be refused as a whole).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden: Vec<String>,
}

/// certbind's name for the action a binding job performs.
pub(crate) fn job_action(kind: JobKind) -> &'static str {
    match kind {
        JobKind::CreateListener => "CreateListener",
        JobKind::SetDefault => "SetDefaultCertificate",
        JobKind::Associate => "AssociateCertificates",
        JobKind::Dissociate => "DissociateCertificates",
        JobKind::Replace => "ReplaceCertificate",
        JobKind::OneClickUpdate => "OneClickUpdate",
    }
}

pub(crate) fn check_cert_count(control: &Control, given: usize) -> Result<()> {
    let max = control.config().max_certs_per_request;
    if given > max {
        return Err(CoreError::TooManyCertificates { max, given });
    }
    Ok(())
}

/// Refuses to take a load balancer's additional certificates past the quota.
pub(crate) fn check_additional_quota(control: &Control, tx: &mut dyn Tx, lb: &LoadBalancer, added: u64) -> Result<()> {
    if added == 0 {
        return Ok(());
    }
    let max = control.config().max_additional_per_lb;
    let would_be = tx.count_additional_bindings(lb.id)? + added;
    if would_be > max as u64 {
        return Err(CoreError::AdditionalCertificateQuotaExceeded { load_balancer: lb.id.to_string(), max, would_be });
    }
    Ok(())
}

impl Control {
    pub fn set_default_certificate(
        &self,
        caller: &Caller,
        request: &SetDefaultRequest,
        dry_run: bool,
        token: Option<&str>,
    ) -> Result<JobSubmission> {
        self.submit(caller, "set_default", request, dry_run, token, |tx| {
            let (listener, lb, bindings) = self.tls_listener(tx, caller, request.listener_id)?;
            self.cert(tx, caller, request.certificate_id)?;
            let current = bindings
                .iter()
                .find(|b| b.role == BindingRole::Default && b.status != BindingStatus::Dissociating)
                .map(|b| b.cert_id);
            Ok(Plan {
                kind: JobKind::SetDefault,
                old: current,
                new: Some(request.certificate_id),
                targets: Targets::Listed(vec![target(
                    &listener,
                    &lb,
                    TargetAction::SetDefault,
                    current,
                    Some(request.certificate_id),
                )]),
                uncovered: Vec::new(),
                record_as: None,
            })
        })
    }

    pub fn associate_certificates(
        &self,
        caller: &Caller,
        request: &AssociateRequest,
        dry_run: bool,
        token: Option<&str>,
    ) -> Result<JobSubmission> {
        self.submit(caller, "associate", request, dry_run, token, |tx| {
            let ids = distinct(&request.certificate_ids)?;
            check_cert_count(self, ids.len())?;
            let (listener, lb, bindings) = self.tls_listener(tx, caller, request.listener_id)?;
            let mut added = 0;
            for id in &ids {
                self.cert(tx, caller, *id)?;
                if !bindings.iter().any(|b| b.cert_id == *id && b.status != BindingStatus::Dissociating) {
                    added += 1;
                }
            }
            check_additional_quota(self, tx, &lb, added)?;
            let targets =
                ids.iter().map(|id| target(&listener, &lb, TargetAction::Associate, None, Some(*id))).collect();
            Ok(Plan {
                kind: JobKind::Associate,
                old: None,
                new: ids.first().copied(),
                targets: Targets::Listed(targets),
                uncovered: Vec::new(),
                record_as: None,
            })
        })
    }

    pub fn dissociate_certificates(
        &self,
        caller: &Caller,
        request: &DissociateRequest,
        dry_run: bool,
        token: Option<&str>,
    ) -> Result<JobSubmission> {
        self.submit(caller, "dissociate", request, dry_run, token, |tx| {
            let ids = distinct(&request.certificate_ids)?;
            check_cert_count(self, ids.len())?;
            let (listener, lb, bindings) = self.tls_listener(tx, caller, request.listener_id)?;
            for id in &ids {
                self.cert(tx, caller, *id)?;
                match bindings.iter().find(|b| b.cert_id == *id && b.status != BindingStatus::Dissociating) {
                    None => {
                        return Err(CoreError::CertificateNotBound {
                            cert: id.to_string(),
                            listener: listener.id.to_string(),
                        })
                    }
                    Some(b) if b.role == BindingRole::Default => {
                        return Err(CoreError::DefaultCertificateNotDissociable {
                            cert: id.to_string(),
                            listener: listener.id.to_string(),
                        })
                    }
                    Some(_) => {}
                }
            }
            let targets =
                ids.iter().map(|id| target(&listener, &lb, TargetAction::Dissociate, Some(*id), None)).collect();
            Ok(Plan {
                kind: JobKind::Dissociate,
                old: ids.first().copied(),
                new: None,
                targets: Targets::Listed(targets),
                uncovered: Vec::new(),
                record_as: None,
            })
        })
    }

    pub fn replace_certificate(
        &self,
        caller: &Caller,
        request: &ReplaceRequest,
        dry_run: bool,
        token: Option<&str>,
    ) -> Result<JobSubmission> {
        self.submit(caller, "replace", request, dry_run, token, |tx| {
            let old = self.cert(tx, caller, request.old_certificate_id)?;
            let new = self.cert(tx, caller, request.new_certificate_id)?;
            let mut scope = BindingScope { project_id: request.project_id, ..Default::default() };
            if let Some(project) = request.project_id {
                tx.get_project(caller.account_id, project)?.ok_or_else(|| CoreError::not_found("project", project))?;
            }
            if let Some(lb) = request.load_balancer_id {
                tx.get_load_balancer(caller.account_id, lb)?
                    .ok_or_else(|| CoreError::not_found("load balancer", lb))?;
                scope.load_balancer_id = Some(lb);
            }
            if let Some(id) = request.listener_id {
                let listener =
                    tx.get_listener(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("listener", id))?;
                if let Some(lb) = request.load_balancer_id {
                    if listener.load_balancer_id != lb {
                        return Err(CoreError::OwnershipMismatch {
                            listener: id.to_string(),
                            load_balancer: lb.to_string(),
                        });
                    }
                }
                scope.listener_id = Some(id);
            }
            self.plan_move(tx, caller, JobKind::Replace, &old, &new, &scope, dry_run)
        })
    }

    pub fn one_click_update(
        &self,
        caller: &Caller,
        request: &OneClickUpdateRequest,
        dry_run: bool,
        token: Option<&str>,
    ) -> Result<JobSubmission> {
        for region in &request.regions {
            crate::load_balancers::check_region(region)?;
        }
        let mut uploaded = None;
        let mut submission = self.submit(caller, "one_click_update", request, dry_run, token, |tx| {
            let old = self.cert(tx, caller, request.old_certificate_id)?;
            let new = match &request.new_certificate {
                NewCertificateSource::Id(id) => self.cert(tx, caller, *id)?,
                NewCertificateSource::Upload(upload) => {
                    let mut upload = upload.clone();
                    upload.on_duplicate = crate::certificates::DuplicatePolicy::ReturnExisting;
                    let parsed = certbind_core::cert::parse_bundle(
                        &upload.certificate_pem,
                        upload.chain_pem.as_deref(),
                        &upload.private_key_pem,
                    )?;
                    let outcome = self.store_certificate(tx, caller, &upload, parsed)?;
                    uploaded = Some(outcome.certificate.id);
                    outcome.certificate
                }
            };
            let scope = BindingScope {
                lb_types: request.resource_types.clone(),
                regions: request.regions.clone(),
                ..Default::default()
            };
            let mut plan = self.plan_move(tx, caller, JobKind::OneClickUpdate, &old, &new, &scope, dry_run)?;
            if uploaded.is_some() {
                // The job keeps a reference to the sealed certificate, never the PEM pair.
                let recorded =
                    OneClickUpdateRequest { new_certificate: NewCertificateSource::Id(new.id), ..request.clone() };
                plan.record_as = Some(serde_json::to_value(&recorded).unwrap_or_default());
            }
            Ok(plan)
        })?;
        if submission.new_certificate_id.is_none() {
            submission.new_certificate_id = uploaded;
        }
        Ok(submission)
    }

    /// Plans moving every listener bound to `old` within `scope` onto `new`. A dry run lists
    /// the targets and the host names that would lose coverage.
    #[allow(clippy::too_many_arguments)]
    fn plan_move(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        kind: JobKind,
        old: &Certificate,
        new: &Certificate,
        scope: &BindingScope,
        dry_run: bool,
    ) -> Result<Plan> {
        if old.id == new.id {
            return Err(CoreError::SameCertificate { cert: old.id.to_string() });
        }
        if !dry_run {
            // Targets are made by the store from the same scope; none means an error there.
            return Ok(Plan {
                kind,
                old: Some(old.id),
                new: Some(new.id),
                targets: Targets::BoundToOld(scope.clone()),
                uncovered: Vec::new(),
                record_as: None,
            });
        }
        let bound = tx.listeners_bound_to(caller.account_id, old.id, scope)?;
        if bound.is_empty() {
            return Err(CoreError::OldCertificateNotBound { cert: old.id.to_string() });
        }
        let uncovered = self.uncovered_hosts(tx, caller, old, new, &bound)?;
        let targets = bound
            .iter()
            .map(|b| NewTarget {
                listener_id: b.listener_id,
                load_balancer_id: b.load_balancer_id,
                resource_type: b.lb_type,
                region: b.region.clone(),
                action: TargetAction::Replace,
                old_cert_id: Some(old.id),
                new_cert_id: Some(new.id),
                applied_at_revision: None,
            })
            .collect();
        Ok(Plan {
            kind,
            old: Some(old.id),
            new: Some(new.id),
            targets: Targets::Listed(targets),
            uncovered,
            record_as: None,
        })
    }

    /// For each listener: the names the old certificate served there that neither the new
    /// certificate nor any other certificate staying on the listener covers.
    fn uncovered_hosts(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        old: &Certificate,
        new: &Certificate,
        bound: &[BoundListener],
    ) -> Result<Vec<UncoveredHosts>> {
        let old_names = old.host_names();
        let base = names::uncovered(&old_names, &new.host_names());
        if base.is_empty() {
            return Ok(Vec::new());
        }
        let mut names_of: HashMap<CertId, Vec<String>> = HashMap::new();
        let mut out = Vec::new();
        for b in bound {
            let mut left = base.clone();
            for binding in tx.listener_bindings(b.listener_id)? {
                if binding.cert_id == old.id || binding.status == BindingStatus::Dissociating || left.is_empty() {
                    continue;
                }
                let kept = match names_of.entry(binding.cert_id) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        let names = tx.get_certificate(caller.account_id, binding.cert_id)?.map(|c| c.host_names());
                        entry.insert(names.unwrap_or_default())
                    }
                };
                left = names::uncovered(&left, kept);
            }
            if !left.is_empty() {
                out.push(UncoveredHosts { listener_id: b.listener_id, host_names: left });
            }
        }
        Ok(out)
    }

    fn tls_listener(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        id: ListenerId,
    ) -> Result<(Listener, LoadBalancer, Vec<Binding>)> {
        let listener = tx.get_listener(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("listener", id))?;
        if !listener.protocol.is_tls() {
            return Err(CoreError::ListenerNotTls {
                listener: id.to_string(),
                protocol: listener.protocol.to_string(),
            });
        }
        let lb = tx
            .get_load_balancer(caller.account_id, listener.load_balancer_id)?
            .ok_or_else(|| CoreError::not_found("load balancer", listener.load_balancer_id))?;
        let bindings = tx.listener_bindings(id)?;
        Ok((listener, lb, bindings))
    }

    fn cert(&self, tx: &mut dyn Tx, caller: &Caller, id: CertId) -> Result<Certificate> {
        tx.get_certificate(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("certificate", id))
    }
}

fn distinct(ids: &[CertId]) -> Result<Vec<CertId>> {
    if ids.is_empty() {
        return Err(CoreError::invalid("certificate_ids", "at least one certificate is required"));
    }
    let mut out: Vec<CertId> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    Ok(out)
}

fn target(
    listener: &Listener,
    lb: &LoadBalancer,
    action: TargetAction,
    old: Option<CertId>,
    new: Option<CertId>,
) -> NewTarget {
    NewTarget {
        listener_id: listener.id,
        load_balancer_id: lb.id,
        resource_type: lb.lb_type,
        region: lb.region.clone(),
        action,
        old_cert_id: old,
        new_cert_id: new,
        applied_at_revision: None,
    }
}
