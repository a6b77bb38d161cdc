//! Users, their keys, policies, the policy simulator and the audit log.

use super::error::ApiError;
use super::{check_limit, created, ok, Authed};
use axum::extract::Path;
use axum::response::Response;
use certbind_core::CoreError;
use certbind_store::AuditFilter;
use serde::Deserialize;

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

pub async fn create_user(authed: Authed) -> Result<Response, ApiError> {
    let body: NameBody = authed.json()?;
    let user = authed.run(move |c, caller| c.create_user(caller, &body.name)).await?;
    Ok(created(user))
}

pub async fn list_users(authed: Authed) -> Result<Response, ApiError> {
    let users = authed.run(|c, caller| c.list_users(caller)).await?;
    Ok(ok(serde_json::json!({ "items": users })))
}

pub async fn show_user(Path(name): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let (keys, policies) =
        authed.run(move |c, caller| Ok((c.list_user_keys(caller, &name)?, c.user_policies(caller, &name)?))).await?;
    let policies: Vec<_> = policies.into_iter().map(|p| p.name).collect();
    Ok(ok(serde_json::json!({ "access_keys": keys, "policies": policies })))
}

pub async fn delete_user(Path(name): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    authed.run(move |c, caller| c.delete_user(caller, &name)).await?;
    Ok(ok(serde_json::json!({ "deleted": true })))
}

pub async fn create_user_key(Path(name): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let key = authed.run(move |c, caller| c.create_user_key(caller, &name)).await?;
    Ok(created(key))
}

#[derive(Deserialize)]
struct KeyUpdate {
    enabled: bool,
}

pub async fn update_user_key(
    Path((name, key_id)): Path<(String, String)>,
    authed: Authed,
) -> Result<Response, ApiError> {
    let body: KeyUpdate = authed.json()?;
    let enabled = body.enabled;
    authed.run(move |c, caller| c.set_user_key_enabled(caller, &name, &key_id, enabled)).await?;
    Ok(ok(serde_json::json!({ "enabled": enabled })))
}

pub async fn delete_user_key(
    Path((name, key_id)): Path<(String, String)>,
    authed: Authed,
) -> Result<Response, ApiError> {
    authed.run(move |c, caller| c.delete_user_key(caller, &name, &key_id)).await?;
    Ok(ok(serde_json::json!({ "deleted": true })))
}

pub async fn attach(Path((name, policy)): Path<(String, String)>, authed: Authed) -> Result<Response, ApiError> {
    authed.run(move |c, caller| c.attach_policy(caller, &name, &policy, true)).await?;
    Ok(ok(serde_json::json!({ "attached": true })))
}

pub async fn detach(Path((name, policy)): Path<(String, String)>, authed: Authed) -> Result<Response, ApiError> {
    authed.run(move |c, caller| c.attach_policy(caller, &name, &policy, false)).await?;
    Ok(ok(serde_json::json!({ "detached": true })))
}

#[derive(Deserialize)]
struct PolicyBody {
    /// The policy document, as a JSON object or as its text.
    document: serde_json::Value,
}

pub async fn put_policy(Path(name): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let body: PolicyBody = authed.json()?;
    let text = match body.document {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    };
    let policy = authed.run(move |c, caller| c.put_policy(caller, &name, &text)).await?;
    Ok(ok(policy))
}

pub async fn list_policies(authed: Authed) -> Result<Response, ApiError> {
    let policies = authed.run(|c, caller| c.list_policies(caller)).await?;
    Ok(ok(serde_json::json!({ "items": policies })))
}

pub async fn delete_policy(Path(name): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    authed.run(move |c, caller| c.delete_policy(caller, &name)).await?;
    Ok(ok(serde_json::json!({ "deleted": true })))
}

#[derive(Deserialize)]
struct SimulateBody {
    user: String,
    action: String,
    resource: String,
}

pub async fn simulate(authed: Authed) -> Result<Response, ApiError> {
    let body: SimulateBody = authed.json()?;
    let result = authed.run(move |c, caller| c.simulate(caller, &body.user, &body.action, &body.resource)).await?;
    Ok(ok(result))
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    since: Option<i64>,
    #[serde(default)]
    offset: u64,
    #[serde(default = "super::default_limit")]
    limit: u64,
}

pub async fn audit(authed: Authed) -> Result<Response, ApiError> {
    let q: AuditQuery = authed.query()?;
    let limit = check_limit(q.limit)?;
    if let Some(outcome) = q.outcome.as_deref().filter(|o| !["allowed", "denied", "failed"].contains(o)) {
        return Err(CoreError::invalid("outcome", format!("{outcome:?} is none of allowed, denied, failed")).into());
    }
    let filter =
        AuditFilter { user: q.user, action: q.action, outcome: q.outcome, since: q.since, offset: q.offset, limit };
    let offset = q.offset;
    let (items, total) = authed.run(move |c, caller| c.list_audit(caller, &filter)).await?;
    Ok(ok(super::Page { items, total, offset, limit }))
}
