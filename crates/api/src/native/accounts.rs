//! Accounts, access keys, projects and regions.

use super::error::ApiError;
use super::{created, ok, Authed};
use axum::extract::Path;
use axum::response::Response;
use serde::Deserialize;

pub async fn whoami(authed: Authed) -> Result<Response, ApiError> {
    let key_id = authed.caller.key_id.clone();
    let (account, projects) = authed.run(|c, caller| Ok((c.account(caller)?, c.list_projects(caller)?))).await?;
    Ok(ok(serde_json::json!({ "account": account, "access_key_id": key_id, "projects": projects })))
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

pub async fn create_account(authed: Authed) -> Result<Response, ApiError> {
    let body: NameBody = authed.json()?;
    let account = authed.run(move |c, caller| c.create_account(caller, &body.name)).await?;
    Ok(created(account))
}

pub async fn list_keys(authed: Authed) -> Result<Response, ApiError> {
    let keys = authed.run(|c, caller| c.list_access_keys(caller)).await?;
    Ok(ok(serde_json::json!({ "items": keys })))
}

pub async fn create_key(authed: Authed) -> Result<Response, ApiError> {
    let key = authed.run(|c, caller| c.create_access_key(caller)).await?;
    Ok(created(key))
}

#[derive(Deserialize)]
struct KeyUpdate {
    enabled: bool,
}

pub async fn update_key(Path(key_id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let body: KeyUpdate = authed.json()?;
    let enabled = body.enabled;
    authed.run(move |c, caller| c.set_access_key_enabled(caller, &key_id, enabled)).await?;
    Ok(ok(serde_json::json!({ "enabled": enabled })))
}

pub async fn delete_key(Path(key_id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    authed.run(move |c, caller| c.delete_access_key(caller, &key_id)).await?;
    Ok(ok(serde_json::json!({ "deleted": true })))
}

pub async fn list_projects(authed: Authed) -> Result<Response, ApiError> {
    let projects = authed.run(|c, caller| c.list_projects(caller)).await?;
    Ok(ok(serde_json::json!({ "items": projects })))
}

pub async fn create_project(authed: Authed) -> Result<Response, ApiError> {
    let body: NameBody = authed.json()?;
    let project = authed.run(move |c, caller| c.create_project(caller, &body.name)).await?;
    Ok(created(project))
}

pub async fn regions(authed: Authed) -> Result<Response, ApiError> {
    let default = authed.control.config().default_region.clone();
    let default_region = default.clone();
    let regions = authed
        .run(move |c, caller| {
            let (lbs, _) = c.list_load_balancers(caller, &Default::default())?;
            let mut regions: Vec<String> = lbs.into_iter().map(|lb| lb.region).collect();
            regions.push(default);
            regions.sort();
            regions.dedup();
            Ok(regions)
        })
        .await?;
    Ok(ok(serde_json::json!({ "default_region": default_region, "items": regions })))
}
