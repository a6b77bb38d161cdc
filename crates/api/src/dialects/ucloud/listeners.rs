//! The application load balancer's listener calls (CreateListener, DescribeListeners,
//! AddSSLBinding, DeleteSSLBinding) and UpdateSSLBinding, which spans both families.
//! Load balancers are `ulb-<n>` and listeners `vserver-<n>` in both families (see `ids`).

use super::errors::{self, UError};
use super::{attr_int, attr_str, ids, page, vserver, Ctx, Fields};
use certbind_control::{CreateListenerRequest, ReplaceRequest};
use certbind_core::ids::CertId;
use certbind_core::model::*;
use serde_json::{json, Map, Value};

pub fn create_listener(ctx: &Ctx) -> Result<Fields, UError> {
    let lb = ctx.ulb_by_id(ctx.params.required("LoadBalancerId")?)?;
    let protocol = match ctx.params.get("ListenerProtocol").unwrap_or("HTTP") {
        p if p.eq_ignore_ascii_case("HTTP") => Protocol::Http,
        p if p.eq_ignore_ascii_case("HTTPS") => Protocol::Https,
        _ => return Err(UError::invalid("ListenerProtocol", "must be HTTP or HTTPS")),
    };
    let port = ctx.params.int("ListenerPort")?.unwrap_or(80);
    if !(1..=65535).contains(&port) {
        return Err(UError::invalid("ListenerPort", "must be between 1 and 65535"));
    }
    let certs = certificates(ctx, "Certificates")?;
    if protocol == Protocol::Https && certs.is_empty() {
        return Err(UError::new(
            errors::INVALID_PARAMS,
            "Missing params [Certificates]: an HTTPS listener needs its default certificate",
        ));
    }
    if protocol != Protocol::Https && !certs.is_empty() {
        return Err(UError::new(
            errors::VSERVER_NOT_HTTPS,
            "Certificates are only accepted by an HTTPS listener: HTTP carries no certificate",
        ));
    }
    vserver::check_port_free(ctx, &lb, port as u16, protocol)?;
    let mut fields = Map::new();
    for key in ["Remark", "Scheduler", "SecurityPolicyId", "TargetProtocol"] {
        if let Some(v) = ctx.params.get(key) {
            fields.insert(key.into(), json!(v));
        }
    }
    for key in ["IdleTimeout", "RedirectPort"] {
        if let Some(v) = ctx.params.int(key)? {
            fields.insert(key.into(), json!(v));
        }
    }
    let mut certs = certs.into_iter();
    let request = CreateListenerRequest {
        load_balancer_id: lb.id,
        name: ctx.params.get("Name").unwrap_or("listener").to_string(),
        protocol,
        port: port as u16,
        default_certificate_id: certs.next(),
        additional_certificate_ids: certs.collect(),
        attributes: json!({ "ucloud": fields }),
    };
    let detail = ctx.control.create_listener(&ctx.caller, &request, None)?;
    ctx.wait_job(detail.job_id)?;
    let mut out = Fields::new();
    out.insert("ListenerId".into(), json!(ids::vserver(detail.listener.id)));
    Ok(out)
}

/// The certificates of a list parameter (`Certificates.N`, `SSLIds.N`), each checked.
fn certificates(ctx: &Ctx, field: &str) -> Result<Vec<CertId>, UError> {
    ctx.params.list(field).iter().map(|id| ctx.cert_by_id(id).map(|c| c.id)).collect()
}

pub fn describe_listeners(ctx: &Ctx) -> Result<Fields, UError> {
    let vservers = match (ctx.params.get("ListenerId"), ctx.params.get("LoadBalancerId")) {
        (Some(id), _) => vec![vserver::resolve(ctx, None, id)?],
        (None, Some(lb)) => vserver::vservers_of(ctx, &ctx.ulb_by_id(lb)?)?,
        (None, None) => {
            return Err(UError::new(errors::INVALID_PARAMS, "Missing params [LoadBalancerId] or [ListenerId]"));
        }
    };
    let (vservers, total) = page(ctx, vservers, 100)?;
    let listeners: Vec<Value> = vservers
        .iter()
        .map(|v| {
            let a = &v.attributes;
            let certificates: Vec<Value> = v
                .bindings()
                .iter()
                .map(|b| json!({"SSLId": ids::ssl(b.cert_id), "IsDefault": b.role == BindingRole::Default}))
                .collect();
            json!({
                "ListenerId": v.id,
                "Name": v.name,
                "ListenerPort": v.port,
                "ListenerProtocol": v.protocol.as_str(),
                "Certificates": certificates,
                "Remark": attr_str(a, "Remark", ""),
                "Scheduler": attr_str(a, "Scheduler", "Roundrobin"),
                "SecurityPolicyId": attr_str(a, "SecurityPolicyId", "Default"),
                "TargetProtocol": attr_str(a, "TargetProtocol", "HTTP"),
                "IdleTimeout": attr_int(a, "IdleTimeout", 60),
                "RedirectPort": attr_int(a, "RedirectPort", 443),
                "RedirectEnabled": false,
                "CompressionEnabled": false,
                "HTTP2Enabled": false,
                "State": "None",
                "Targets": [],
                "Rules": [],
            })
        })
        .collect();
    let mut out = Fields::new();
    out.insert("Listeners".into(), Value::Array(listeners));
    out.insert("TotalCount".into(), json!(total));
    Ok(out)
}

fn listener_and_certs(ctx: &Ctx) -> Result<(vserver::VServer, Vec<CertId>), UError> {
    let lb = ctx.ulb_by_id(ctx.params.required("LoadBalancerId")?)?;
    let v = vserver::resolve(ctx, Some(&lb), ctx.params.required("ListenerId")?)?;
    let certs = certificates(ctx, "SSLIds")?;
    if certs.is_empty() {
        return Err(UError::missing("SSLIds"));
    }
    if !v.protocol.is_tls() {
        return Err(UError::new(
            errors::VSERVER_NOT_HTTPS,
            format!("listener {} uses {}, which carries no certificate", v.id, v.protocol),
        ));
    }
    Ok((v, certs))
}

pub fn add_ssl_binding(ctx: &Ctx) -> Result<Fields, UError> {
    let (v, certs) = listener_and_certs(ctx)?;
    vserver::bind(ctx, &v, certs)?;
    Ok(Fields::new())
}

pub fn delete_ssl_binding(ctx: &Ctx) -> Result<Fields, UError> {
    let (v, certs) = listener_and_certs(ctx)?;
    vserver::unbind(ctx, &v, certs)?;
    Ok(Fields::new())
}

/// Replaces `OldSSLId` with `NewSSLId` on: every listener of the project (no scope), of a
/// load balancer (`LoadBalancerId`), one listener (`ListenerId`), or one listener that
/// must belong to the load balancer (both). `ULBId` / `VServerId` are accepted as aliases
/// (the seed document's example uses them). Answers once every listener serves the new
/// certificate; a failure leaves every listener as it was.
pub fn update_ssl_binding(ctx: &Ctx) -> Result<Fields, UError> {
    let old = ctx.cert("OldSSLId")?;
    let new = ctx.cert("NewSSLId")?;
    let lb = ctx.params.first_of(&["LoadBalancerId", "ULBId"]).map(|(_, id)| ctx.ulb_by_id(id)).transpose()?;
    let listener = match ctx.params.first_of(&["ListenerId", "VServerId"]) {
        None => None,
        Some((_, id)) => {
            let v = vserver::resolve(ctx, None, id)?;
            if let Some(lb) = &lb {
                if v.lb.id != lb.id {
                    return Err(UError::new(
                        errors::OWNERSHIP_MISMATCH,
                        format!("listener {} does not belong to load balancer {}", v.id, ids::ulb(lb.id)),
                    ));
                }
            }
            match &v.listener {
                Some(detail) => Some(detail.listener.id),
                None => {
                    return Err(UError::new(
                        errors::OLD_SSL_NOT_BOUND,
                        format!("SSL {} is not bound to listener {}", ids::ssl(old.id), v.id),
                    ))
                }
            }
        }
    };
    let request = ReplaceRequest {
        old_certificate_id: old.id,
        new_certificate_id: new.id,
        project_id: Some(ctx.project.id),
        load_balancer_id: lb.map(|lb| lb.id),
        listener_id: listener,
    };
    let submission = ctx.control.replace_certificate(&ctx.caller, &request, false, None)?;
    ctx.wait_job(submission.job_id)?;
    Ok(Fields::new())
}
