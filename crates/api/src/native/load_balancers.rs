//! Load balancers, listeners and backends.

use super::error::ApiError;
use super::{accepted, check_limit, created, ok, parse_id, Authed, Page, WithOptions};
use crate::DataPlaneView;
use axum::extract::Path;
use axum::response::Response;
use certbind_control::{CreateListenerRequest, CreateLoadBalancerRequest, ListenerDetail};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_store::{ListenerFilter, LoadBalancerFilter};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub async fn create_lb(authed: Authed) -> Result<Response, ApiError> {
    let body: WithOptions<CreateLoadBalancerRequest> = authed.json()?;
    let token = body.options.client_token;
    let lb = authed.run(move |c, caller| c.create_load_balancer(caller, &body.request, token.as_deref())).await?;
    Ok(created(lb))
}

#[derive(Deserialize)]
struct LbQuery {
    #[serde(default)]
    project_id: Option<ProjectId>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    lb_type: Option<LbType>,
    // Not flattened: serde_urlencoded cannot parse numbers inside a flattened struct.
    #[serde(default)]
    offset: u64,
    #[serde(default = "super::default_limit")]
    limit: u64,
}

pub async fn list_lbs(authed: Authed) -> Result<Response, ApiError> {
    let q: LbQuery = authed.query()?;
    let limit = check_limit(q.limit)?;
    let filter = LoadBalancerFilter {
        project_id: q.project_id,
        ids: Vec::new(),
        lb_type: q.lb_type,
        region: q.region,
        offset: q.offset,
        limit,
    };
    let (items, total) = authed.run(move |c, caller| c.list_load_balancers(caller, &filter)).await?;
    Ok(ok(Page { items, total, offset: q.offset, limit }))
}

pub async fn show_lb(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, LoadBalancerId::parse, "load balancer")?;
    let dataplane = authed.dataplane.clone();
    let (lb, listeners) = authed
        .run(move |c, caller| {
            let lb = c.get_load_balancer(caller, id)?;
            let filter = ListenerFilter { load_balancer_id: Some(id), ..Default::default() };
            Ok((lb, c.list_listeners(caller, &filter)?.0))
        })
        .await?;
    let listeners: Vec<_> = listeners.into_iter().map(|l| listener_view(l, &dataplane)).collect();
    Ok(ok(serde_json::json!({ "load_balancer": lb, "listeners": listeners })))
}

#[derive(Deserialize)]
struct Update {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    attributes: Option<serde_json::Value>,
}

pub async fn update_lb(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, LoadBalancerId::parse, "load balancer")?;
    let body: Update = authed.json()?;
    let lb =
        authed.run(move |c, caller| c.update_load_balancer(caller, id, body.name.as_deref(), body.attributes)).await?;
    Ok(ok(lb))
}

pub async fn delete_lb(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, LoadBalancerId::parse, "load balancer")?;
    authed.run(move |c, caller| c.delete_load_balancer(caller, id)).await?;
    Ok(ok(serde_json::json!({ "deleted": id })))
}

/// A listener with the data plane's view of its socket.
#[derive(Serialize)]
struct ListenerView {
    #[serde(flatten)]
    detail: ListenerDetail,
    runtime: Option<certbind_core::serving::ListenerRuntime>,
}

fn listener_view(detail: ListenerDetail, dataplane: &Option<Arc<dyn DataPlaneView>>) -> ListenerView {
    let runtime = dataplane.as_ref().and_then(|d| d.listener_runtime(detail.listener.id));
    ListenerView { detail, runtime }
}

pub async fn create_listener(authed: Authed) -> Result<Response, ApiError> {
    let body: WithOptions<CreateListenerRequest> = authed.json()?;
    let token = body.options.client_token;
    let dataplane = authed.dataplane.clone();
    let detail = authed.run(move |c, caller| c.create_listener(caller, &body.request, token.as_deref())).await?;
    Ok(accepted(listener_view(detail, &dataplane)))
}

#[derive(Deserialize)]
struct ListenerQuery {
    #[serde(default)]
    load_balancer_id: Option<LoadBalancerId>,
    #[serde(default)]
    protocol: Option<Protocol>,
    // Not flattened: serde_urlencoded cannot parse numbers inside a flattened struct.
    #[serde(default)]
    offset: u64,
    #[serde(default = "super::default_limit")]
    limit: u64,
}

pub async fn list_listeners(authed: Authed) -> Result<Response, ApiError> {
    let q: ListenerQuery = authed.query()?;
    let limit = check_limit(q.limit)?;
    let filter = ListenerFilter {
        load_balancer_id: q.load_balancer_id,
        ids: Vec::new(),
        protocol: q.protocol,
        offset: q.offset,
        limit,
    };
    let dataplane = authed.dataplane.clone();
    let (items, total) = authed.run(move |c, caller| c.list_listeners(caller, &filter)).await?;
    let items: Vec<_> = items.into_iter().map(|l| listener_view(l, &dataplane)).collect();
    Ok(ok(Page { items, total, offset: q.offset, limit }))
}

pub async fn show_listener(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, ListenerId::parse, "listener")?;
    let dataplane = authed.dataplane.clone();
    let detail = authed.run(move |c, caller| c.get_listener(caller, id)).await?;
    Ok(ok(listener_view(detail, &dataplane)))
}

pub async fn update_listener(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, ListenerId::parse, "listener")?;
    let body: Update = authed.json()?;
    let listener =
        authed.run(move |c, caller| c.update_listener(caller, id, body.name.as_deref(), body.attributes)).await?;
    Ok(ok(listener))
}

pub async fn delete_listener(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, ListenerId::parse, "listener")?;
    authed.run(move |c, caller| c.delete_listener(caller, id)).await?;
    Ok(ok(serde_json::json!({ "deleted": id })))
}

#[derive(Deserialize)]
struct BackendBody {
    address: String,
    #[serde(default = "default_weight")]
    weight: u32,
}

fn default_weight() -> u32 {
    100
}

pub async fn add_backend(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, ListenerId::parse, "listener")?;
    let body: BackendBody = authed.json()?;
    let backend = authed.run(move |c, caller| c.add_backend(caller, id, &body.address, body.weight)).await?;
    Ok(created(backend))
}

pub async fn remove_backend(Path((id, backend)): Path<(String, String)>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, ListenerId::parse, "listener")?;
    let backend = parse_id(&backend, BackendId::parse, "backend")?;
    authed.run(move |c, caller| c.remove_backend(caller, id, backend)).await?;
    Ok(ok(serde_json::json!({ "deleted": backend })))
}
