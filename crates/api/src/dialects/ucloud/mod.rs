//! The UCloud ULB dialect, as `ucloud-sdk-python3` (0.11.150) speaks it: form-encoded
//! `POST /` with `Action`, `PublicKey` and `Signature`; answers are HTTP 200 with
//! `{"RetCode": 0, "Action": "<Action>Response", ...}`, or a non-zero `RetCode` and a
//! `Message` (see `errors`).
//!
//! Scoping: UCloud's `ProjectId` (a string such as `org-abc123`) names the core project
//! of the caller's account with that name, created on first use; no `ProjectId` (or the
//! name of the account's default project) means the default project. Every id a request
//! names must belong to that project. `Region` is stored on load balancers, and
//! DescribeULB lists the load balancers of the request's region. Ids: see `ids`.
//!
//! UCloud is synchronous: every change is submitted to the control plane as a job, and
//! the answer waits until the job has finished, that is until the data plane serves it.

mod errors;
pub(crate) mod ids;
mod listeners;
pub(crate) mod params;
pub(crate) mod signature;
mod ssl;
mod ulb;
mod vserver;

use super::DialectRequest;
use crate::ApiState;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use certbind_control::{Caller, Control};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::CoreError;
use errors::UError;
use params::Params;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// The fields of a successful answer (besides `RetCode` and `Action`).
type Fields = Map<String, Value>;

/// How long a synchronous call waits for its job before giving up.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn handle(state: &ApiState, request: DialectRequest) -> Response {
    let params = Params::from_request(&request);
    let action = params.get("Action").unwrap_or("").to_string();
    let control = state.control.clone();
    let span = tracing::info_span!("ucloud", action = %action);
    let result = crate::request_id::spawn_blocking(move || {
        let _entered = span.enter();
        serve(&control, &params)
    })
    .await
    .unwrap_or_else(|e| Err(UError::new(errors::INTERNAL, format!("the request failed: {e}"))));
    respond(&action, result)
}

/// A request body over `limit` bytes, in UCloud's envelope.
pub fn too_large(request: &DialectRequest, limit: usize) -> Response {
    let params = Params::from_request(request);
    let action = params.get("Action").unwrap_or("").to_string();
    let message = format!("the request body exceeds {limit} bytes");
    respond(&action, Err(UError::new(errors::INVALID_PARAMS, message)))
}

fn respond(action: &str, result: Result<Fields, UError>) -> Response {
    let mut body = Map::new();
    let response_action = if action.is_empty() { "Response".to_string() } else { format!("{action}Response") };
    match result {
        Ok(fields) => {
            body.insert("RetCode".into(), json!(0));
            body.insert("Action".into(), json!(response_action));
            body.extend(fields);
        }
        Err(error) => {
            body.insert("RetCode".into(), json!(error.code));
            body.insert("Action".into(), json!(response_action));
            body.insert("Message".into(), json!(error.message));
        }
    }
    let mut response = Json(Value::Object(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&crate::request_id::current()) {
        response.headers_mut().insert("x-ucloud-request-uuid", value);
    }
    response
}

fn serve(control: &Control, params: &Params) -> Result<Fields, UError> {
    let Some(action) = params.get("Action") else {
        return Err(UError::new(errors::MISSING_ACTION, "Missing Action"));
    };
    // Policies name this action in UCloud's vocabulary (`ulb:UpdateSSLBinding`).
    let caller = signature::authenticate(control, params)?.acting_as(format!("ulb:{action}"));
    let handler: fn(&Ctx) -> Result<Fields, UError> = match action {
        "CreateSSL" => ssl::create_ssl,
        "DescribeSSL" => ssl::describe_ssl,
        "DescribeSSLV2" => ssl::describe_ssl_v2,
        "UpdateSSLAttribute" => ssl::update_ssl_attribute,
        "DeleteSSL" => ssl::delete_ssl,
        "CreateULB" => ulb::create_ulb,
        "DescribeULB" => ulb::describe_ulb,
        "DeleteULB" => ulb::delete_ulb,
        "CreateVServer" => vserver::create_vserver,
        "DescribeVServer" => vserver::describe_vserver,
        "UpdateVServerAttribute" => vserver::update_vserver_attribute,
        "DeleteVServer" => vserver::delete_vserver,
        "BindSSL" => vserver::bind_ssl,
        "UnbindSSL" => vserver::unbind_ssl,
        "CreateListener" => listeners::create_listener,
        "DescribeListeners" => listeners::describe_listeners,
        "AddSSLBinding" => listeners::add_ssl_binding,
        "DeleteSSLBinding" => listeners::delete_ssl_binding,
        "UpdateSSLBinding" => listeners::update_ssl_binding,
        other => {
            return Err(UError::new(errors::UNKNOWN_ACTION, format!("Action {other} is not available")));
        }
    };
    let project = resolve_project(control, &caller, params.get("ProjectId"))?;
    let region = params.get("Region").map(str::to_string).unwrap_or_else(|| control.config().default_region.clone());
    let ctx = Ctx { control, caller, project, region, params };
    handler(&ctx)
}

/// The core project a `ProjectId` names (created on first use), or the default project.
fn resolve_project(control: &Control, caller: &Caller, name: Option<&str>) -> Result<Project, UError> {
    let find = |projects: Vec<Project>| match name {
        None => projects.into_iter().find(|p| p.is_default),
        Some(name) => projects.into_iter().find(|p| p.name == name),
    };
    if let Some(project) = find(control.list_projects(caller)?) {
        return Ok(project);
    }
    let Some(name) = name else {
        return Err(UError::new(errors::INTERNAL, "the account has no default project"));
    };
    match control.create_project(caller, name) {
        Ok(project) => Ok(project),
        Err(CoreError::InvalidArgument { reason, .. }) => match find(control.list_projects(caller)?) {
            // Created meanwhile by a concurrent request.
            Some(project) => Ok(project),
            None => Err(UError::invalid("ProjectId", reason)),
        },
        Err(e) => Err(e.into()),
    }
}

/// One verified request: who asks, in which project and region, with which parameters.
pub(crate) struct Ctx<'a> {
    control: &'a Control,
    caller: Caller,
    project: Project,
    region: String,
    params: &'a Params,
}

impl Ctx<'_> {
    /// A certificate of the project, by the `ssl-<n>` id in parameter `field`.
    fn cert(&self, field: &str) -> Result<Certificate, UError> {
        let text = self.params.required(field)?;
        self.cert_by_id(text)
    }

    fn cert_by_id(&self, text: &str) -> Result<Certificate, UError> {
        let id = ids::parse_ssl(text)?;
        match self.control.get_certificate(&self.caller, id) {
            Ok(cert) if cert.project_id == self.project.id => Ok(cert),
            Ok(_) | Err(CoreError::NotFound { .. }) => {
                Err(UError::new(errors::SSL_NOT_FOUND, format!("SSL {text} does not exist in this project")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A load balancer of the project, by its `ulb-<n>` id.
    fn ulb_by_id(&self, text: &str) -> Result<LoadBalancer, UError> {
        let id = ids::parse_ulb(text)?;
        match self.control.get_load_balancer(&self.caller, id) {
            Ok(lb) if lb.project_id == self.project.id => Ok(lb),
            Ok(_) | Err(CoreError::NotFound { .. }) => {
                Err(UError::new(errors::ULB_NOT_FOUND, format!("ULB {text} does not exist in this project")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for a job to finish; a failed job is an error (its changes were not made).
    fn wait_job(&self, job: Option<JobId>) -> Result<(), UError> {
        let Some(job) = job else { return Ok(()) };
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let current = self.control.get_job(&self.caller, job)?;
            match current.state {
                JobState::Succeeded => return Ok(()),
                JobState::Failed => {
                    let reason = current.error.unwrap_or_else(|| "a listener could not be changed".to_string());
                    return Err(UError::new(
                        errors::INTERNAL,
                        ids::ucloud_ids(&format!("the change failed: {reason}")),
                    ));
                }
                _ => {}
            }
            if start.elapsed() > JOB_TIMEOUT {
                return Err(UError::new(
                    errors::INTERNAL,
                    format!("the change did not finish within {} seconds", JOB_TIMEOUT.as_secs()),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// A page of `items` from `Offset`/`Limit` (default limit `default_limit`).
fn page<T>(ctx: &Ctx, items: Vec<T>, default_limit: u64) -> Result<(Vec<T>, u64), UError> {
    let total = items.len() as u64;
    let offset = ctx.params.uint("Offset", 0)?;
    let limit = ctx.params.uint("Limit", default_limit)?;
    let limit = if limit == 0 { default_limit } else { limit };
    Ok((items.into_iter().skip(offset as usize).take(limit as usize).collect(), total))
}

/// A string attribute from a dialect attribute object.
fn attr_str(attributes: &Value, key: &str, default: &str) -> String {
    attributes.get("ucloud").and_then(|u| u.get(key)).and_then(Value::as_str).unwrap_or(default).to_string()
}

/// An integer attribute from a dialect attribute object.
fn attr_int(attributes: &Value, key: &str, default: i64) -> i64 {
    attributes.get("ucloud").and_then(|u| u.get(key)).and_then(Value::as_i64).unwrap_or(default)
}
