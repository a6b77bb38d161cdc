//! Access control: users and their keys, policies, the decision for each request, and the
//! audit log. The account's root keys may do everything; a user may do what its policies
//! allow (GUIDE's clouds: an explicit Deny wins, no Allow means denied).
//!
//! Every request is judged in one vocabulary: the operation's own `certbind:` action,
//! plus the name its entry point gives it (`alb:AssociateAdditionalCertificatesWithListener`),
//! on resources known by all their names: the native form
//! (`crn:certbind:{region}:{account}:loadbalancer/lb-1`) and each cloud's form, supplied by
//! the API layer through [`ResourceNamer`].

use crate::accounts::{public_key, Principal};
use crate::{Caller, Control, NewAccessKey, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::policy::{evaluate, Decision, NamedPolicy, PolicyDocument};
use certbind_core::{now_unix, CoreError};
use certbind_store::{AuditFilter, Tx};
use serde::Serialize;
use std::sync::Arc;

/// Keys a user may have enabled at once: two, so a key can be rotated without downtime.
pub const MAX_ACTIVE_USER_KEYS: usize = 2;

/// Something a request acts on, as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    LoadBalancer {
        id: LoadBalancerId,
        lb_type: LbType,
        region: String,
    },
    Listener {
        id: ListenerId,
        load_balancer: LoadBalancerId,
        lb_type: LbType,
        region: String,
    },
    Certificate {
        id: CertId,
    },
    Job {
        id: JobId,
    },
    User {
        name: String,
    },
    Policy {
        name: String,
    },
    /// An account of the operator's (which alone creates accounts).
    Account {
        name: String,
    },
    /// Every object of a kind ("loadbalancer", "certificate", ...): lists and creation.
    All {
        kind: &'static str,
    },
}

impl Resource {
    pub fn load_balancer(lb: &LoadBalancer) -> Self {
        Resource::LoadBalancer { id: lb.id, lb_type: lb.lb_type, region: lb.region.clone() }
    }

    /// The name in certbind's own form.
    pub fn native_name(&self, account: AccountId) -> String {
        let a = account.0;
        match self {
            Resource::LoadBalancer { id, region, .. } => format!("crn:certbind:{region}:{a}:loadbalancer/{id}"),
            Resource::Listener { id, region, .. } => format!("crn:certbind:{region}:{a}:listener/{id}"),
            Resource::Certificate { id } => format!("crn:certbind::{a}:certificate/{id}"),
            Resource::Job { id } => format!("crn:certbind::{a}:job/{id}"),
            Resource::User { name } => format!("crn:certbind::{a}:user/{name}"),
            Resource::Policy { name } => format!("crn:certbind::{a}:policy/{name}"),
            Resource::Account { name } => format!("crn:certbind::{a}:account/{name}"),
            Resource::All { kind } => format!("crn:certbind:*:{a}:{kind}/*"),
        }
    }
}

/// The cloud-form names of a resource (the API layer knows each dialect's id forms).
pub type ResourceNamer = Arc<dyn Fn(&Resource, AccountId) -> Vec<String> + Send + Sync>;

/// Why a policy check came out as it did.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    pub user: String,
    pub action: String,
    pub resource: String,
    #[serde(flatten)]
    pub decision: Decision,
}

impl Control {
    /// Lets the API layer name resources in each cloud's form.
    pub fn set_resource_namer(&self, namer: ResourceNamer) {
        let _ = self.inner.namer.set(namer);
    }

    /// Every name a resource goes by: native first, then each cloud's.
    pub fn resource_names(&self, resource: &Resource, account: AccountId) -> Vec<String> {
        let mut names = vec![resource.native_name(account)];
        if let Some(namer) = self.inner.namer.get() {
            names.extend(namer(resource, account));
        }
        names
    }

    /// Allows or refuses `action` (certbind's name) on every one of `resources` for the
    /// caller. Root keys pass; a user needs an Allow for each resource and no Deny.
    pub(crate) fn authorize(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        action: &str,
        resources: &[Resource],
    ) -> Result<()> {
        let Principal::User { id, name } = &caller.principal else { return Ok(()) };
        let policies = load_policies(tx, *id)?;
        let mut actions = vec![format!("certbind:{action}")];
        actions.extend(caller.action.iter().cloned());
        let resources: Vec<Resource> = match caller.action.as_deref() {
            // A cloud's policies govern that cloud's resource types: load balancers for
            // alb/nlb/clb/ulb, certificates for cas/ssl (as the seed names the ALB
            // resource). Reads an entry point makes on the side (jobs, the certificate it
            // binds) are part of its one action, not actions of their own.
            // The load balancers a change of listeners touches are judged whatever the
            // entry point (a one-click `ssl:UpdateCertificateInstance` needs every one).
            Some(cloud) => resources
                .iter()
                .filter(|r| {
                    governed(cloud, r)
                        || (LISTENER_CHANGES.contains(&action) && matches!(r, Resource::LoadBalancer { .. }))
                })
                .cloned()
                .collect(),
            None if resources.is_empty() => vec![Resource::All { kind: "*" }],
            None => resources.to_vec(),
        };
        for resource in &resources {
            let names = self.resource_names(resource, caller.account_id);
            let decision = evaluate(&policies, &actions, std::slice::from_ref(&names));
            if !decision.allowed {
                let shown_action = caller.action.clone().unwrap_or_else(|| actions[0].clone());
                let shown_resource = self.shown_name(caller, &names);
                return Err(CoreError::Forbidden(format!(
                    "user {name} may not perform {shown_action} on {shown_resource}: {}",
                    decision.reason
                )));
            }
        }
        Ok(())
    }

    /// For a bulk operation: which of `resources` the caller may not act on.
    pub(crate) fn forbidden_among(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        action: &str,
        resources: &[Resource],
    ) -> Result<Vec<Resource>> {
        let mut out = Vec::new();
        for resource in resources {
            if let Err(CoreError::Forbidden(_)) = self.authorize(tx, caller, action, std::slice::from_ref(resource)) {
                out.push(resource.clone());
            }
        }
        Ok(out)
    }

    /// The resource name to show in a refusal: in the entry point's own form when it has one.
    fn shown_name(&self, caller: &Caller, names: &[String]) -> String {
        let prefix = caller.action.as_deref().and_then(|a| a.split(':').next()).map(|service| match service {
            "alb" | "nlb" | "cas" => "acs:",
            "ssl" | "clb" => "qcs:",
            "ulb" => "ucs:",
            _ => "crn:",
        });
        prefix
            .and_then(|p| names.iter().find(|n| n.starts_with(p)))
            .or_else(|| names.first())
            .cloned()
            .unwrap_or_default()
    }

    pub fn create_user(&self, caller: &Caller, name: &str) -> Result<User> {
        check_user_name(name)?;
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "CreateUser", &[Resource::User { name: name.to_string() }])?;
        if tx.get_user(caller.account_id, name)?.is_some() {
            return Err(CoreError::invalid("name", format!("a user named {name:?} already exists")));
        }
        let user = tx.insert_user(caller.account_id, name)?;
        tx.commit()?;
        Ok(user)
    }

    pub fn list_users(&self, caller: &Caller) -> Result<Vec<User>> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListUsers", &[Resource::All { kind: "user" }])?;
        Ok(tx.list_users(caller.account_id)?)
    }

    pub fn delete_user(&self, caller: &Caller, name: &str) -> Result<()> {
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "DeleteUser", &[Resource::User { name: name.to_string() }])?;
        let user = self.user(&mut *tx, caller, name)?;
        tx.delete_user(caller.account_id, user.id)?;
        tx.commit()?;
        Ok(())
    }

    /// A new key for a user; at most [`MAX_ACTIVE_USER_KEYS`] may be enabled at once.
    pub fn create_user_key(&self, caller: &Caller, name: &str) -> Result<NewAccessKey> {
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "CreateAccessKey", &[Resource::User { name: name.to_string() }])?;
        let user = self.user(&mut *tx, caller, name)?;
        let active = tx.list_user_keys(user.id)?.iter().filter(|k| k.enabled).count();
        if active >= MAX_ACTIVE_USER_KEYS {
            return Err(CoreError::invalid(
                "user",
                format!("user {name} already has {active} active keys; disable or delete one first"),
            ));
        }
        let key = self.mint_key_for(&mut *tx, caller.account_id, Some(user.id))?;
        tx.commit()?;
        Ok(key)
    }

    pub fn list_user_keys(&self, caller: &Caller, name: &str) -> Result<Vec<AccessKey>> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListAccessKeys", &[Resource::User { name: name.to_string() }])?;
        let user = self.user(&mut *tx, caller, name)?;
        Ok(tx.list_user_keys(user.id)?.into_iter().map(public_key).collect())
    }

    /// Enables or disables a user's key (re-enabling counts against the active limit).
    pub fn set_user_key_enabled(&self, caller: &Caller, name: &str, key_id: &str, enabled: bool) -> Result<()> {
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "UpdateAccessKey", &[Resource::User { name: name.to_string() }])?;
        let user = self.user(&mut *tx, caller, name)?;
        let keys = tx.list_user_keys(user.id)?;
        let key = keys.iter().find(|k| k.key_id == key_id).ok_or_else(|| CoreError::not_found("access key", key_id))?;
        if enabled && !key.enabled && keys.iter().filter(|k| k.enabled).count() >= MAX_ACTIVE_USER_KEYS {
            return Err(CoreError::invalid(
                "enabled",
                format!("user {name} already has {MAX_ACTIVE_USER_KEYS} active keys"),
            ));
        }
        tx.set_access_key_enabled(key_id, enabled)?;
        tx.commit()?;
        Ok(())
    }

    pub fn delete_user_key(&self, caller: &Caller, name: &str, key_id: &str) -> Result<()> {
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "DeleteAccessKey", &[Resource::User { name: name.to_string() }])?;
        let user = self.user(&mut *tx, caller, name)?;
        if !tx.list_user_keys(user.id)?.iter().any(|k| k.key_id == key_id) {
            return Err(CoreError::not_found("access key", key_id));
        }
        tx.delete_access_key(key_id)?;
        tx.commit()?;
        Ok(())
    }

    /// Creates or replaces a named policy.
    pub fn put_policy(&self, caller: &Caller, name: &str, document: &str) -> Result<Policy> {
        check_user_name(name)?;
        let parsed = PolicyDocument::parse(document).map_err(|e| CoreError::invalid("document", e.to_string()))?;
        let value = serde_json::to_value(&parsed).map_err(|e| CoreError::Internal(e.to_string()))?;
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "PutPolicy", &[Resource::Policy { name: name.to_string() }])?;
        let policy = match tx.get_policy(caller.account_id, name)? {
            Some(mut existing) => {
                tx.update_policy(existing.id, &value)?;
                existing.document = value;
                existing
            }
            None => tx.insert_policy(caller.account_id, name, &value)?,
        };
        tx.commit()?;
        Ok(policy)
    }

    pub fn list_policies(&self, caller: &Caller) -> Result<Vec<Policy>> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListPolicies", &[Resource::All { kind: "policy" }])?;
        Ok(tx.list_policies(caller.account_id)?)
    }

    pub fn delete_policy(&self, caller: &Caller, name: &str) -> Result<()> {
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "DeletePolicy", &[Resource::Policy { name: name.to_string() }])?;
        let policy = tx.get_policy(caller.account_id, name)?.ok_or_else(|| CoreError::not_found("policy", name))?;
        tx.delete_policy(caller.account_id, policy.id)?;
        tx.commit()?;
        Ok(())
    }

    pub fn attach_policy(&self, caller: &Caller, user: &str, policy: &str, attach: bool) -> Result<()> {
        let mut tx = self.store().write()?;
        let action = if attach { "AttachPolicy" } else { "DetachPolicy" };
        self.authorize(&mut *tx, caller, action, &[Resource::User { name: user.to_string() }])?;
        let found = self.user(&mut *tx, caller, user)?;
        let policy = tx.get_policy(caller.account_id, policy)?.ok_or_else(|| CoreError::not_found("policy", policy))?;
        if attach {
            tx.attach_policy(found.id, policy.id)?;
        } else if !tx.detach_policy(found.id, policy.id)? {
            return Err(CoreError::invalid("policy", format!("policy {} is not attached to user {user}", policy.name)));
        }
        tx.commit()?;
        Ok(())
    }

    /// Policies attached to a user.
    pub fn user_policies(&self, caller: &Caller, name: &str) -> Result<Vec<Policy>> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListPolicies", &[Resource::User { name: name.to_string() }])?;
        let user = self.user(&mut *tx, caller, name)?;
        Ok(tx.user_policies(user.id)?)
    }

    /// Would `user` be allowed `action` (any vocabulary) on `resource` (a name in any
    /// form, wildcards matched literally)? Says which statement decided.
    pub fn simulate(&self, caller: &Caller, user: &str, action: &str, resource: &str) -> Result<Simulation> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "SimulatePolicy", &[Resource::User { name: user.to_string() }])?;
        let found = self.user(&mut *tx, caller, user)?;
        let policies = load_policies(&mut *tx, found.id)?;
        let decision = evaluate(&policies, &[action.to_string()], &[vec![resource.to_string()]]);
        Ok(Simulation { user: user.to_string(), action: action.to_string(), resource: resource.to_string(), decision })
    }

    /// Records one audited request. Failures to record are logged, never fatal to the
    /// request (the request's own outcome was already decided).
    pub fn record_audit(&self, entry: AuditEntry) {
        let result = self.store().write().and_then(|mut tx| {
            tx.insert_audit(&entry)?;
            tx.commit()
        });
        if let Err(error) = result {
            tracing::error!(%error, action = %entry.action, "cannot write the audit log");
        }
    }

    pub fn list_audit(&self, caller: &Caller, filter: &AuditFilter) -> Result<(Vec<AuditEntry>, u64)> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListAuditLog", &[Resource::All { kind: "audit" }])?;
        Ok(tx.list_audit(caller.account_id, filter)?)
    }

    fn user(&self, tx: &mut dyn Tx, caller: &Caller, name: &str) -> Result<User> {
        tx.get_user(caller.account_id, name)?.ok_or_else(|| CoreError::not_found("user", name))
    }
}

/// What the entry point knows of a request it audits.
pub struct AuditFacts {
    /// "native", "aliyun", "tencent" or "ucloud".
    pub dialect: &'static str,
    pub action: String,
    pub resources: Vec<String>,
    /// "allowed", "denied" or "failed".
    pub outcome: &'static str,
    pub error_code: Option<String>,
    pub source: Option<String>,
    pub request_id: String,
}

/// An audit entry for a request, filled from its caller (if it got as far as having one).
pub fn audit_entry(caller: Option<&Caller>, key_id: Option<&str>, facts: AuditFacts) -> AuditEntry {
    AuditEntry {
        id: 0,
        at: now_unix(),
        account_id: caller.map(|c| c.account_id),
        user: caller.and_then(|c| c.user_name().map(str::to_string)),
        key_id: caller.map(|c| c.key_id.clone()).or_else(|| key_id.map(str::to_string)),
        source: facts.source,
        dialect: facts.dialect.to_string(),
        action: facts.action,
        resources: facts.resources,
        outcome: facts.outcome.to_string(),
        error_code: facts.error_code,
        request_id: facts.request_id,
    }
}

/// certbind's actions that change what listeners serve (the jobs' actions).
const LISTENER_CHANGES: [&str; 6] = [
    "CreateListener",
    "SetDefaultCertificate",
    "AssociateCertificates",
    "DissociateCertificates",
    "ReplaceCertificate",
    "OneClickUpdate",
];

/// Whether a cloud action's policies govern this kind of resource.
fn governed(action: &str, resource: &Resource) -> bool {
    let (service, name) = action.split_once(':').unwrap_or((action, ""));
    // UCloud keeps certificates (SSL) in its load balancer API.
    const UCLOUD_CERTIFICATE_ACTIONS: [&str; 5] =
        ["CreateSSL", "DescribeSSL", "DescribeSSLV2", "UpdateSSLAttribute", "DeleteSSL"];
    let load_balancing = matches!(
        resource,
        Resource::LoadBalancer { .. } | Resource::Listener { .. } | Resource::All { kind: "loadbalancer" | "listener" }
    );
    let certificates = matches!(resource, Resource::Certificate { .. } | Resource::All { kind: "certificate" });
    match service {
        "ulb" if UCLOUD_CERTIFICATE_ACTIONS.contains(&name) => certificates,
        "alb" | "nlb" | "clb" | "ulb" => load_balancing,
        "cas" | "ssl" => certificates,
        _ => true,
    }
}

fn load_policies(tx: &mut dyn Tx, user: UserId) -> Result<Vec<NamedPolicy>> {
    tx.user_policies(user)?
        .into_iter()
        .map(|p| {
            let document = serde_json::from_value(p.document)
                .map_err(|e| CoreError::Internal(format!("policy {}: {e}", p.name)))?;
            Ok(NamedPolicy { name: p.name, document })
        })
        .collect()
}

fn check_user_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)) {
        return Err(CoreError::invalid("name", "must be 1 to 64 letters, digits, '-', '_', '.' or '@'"));
    }
    Ok(())
}
