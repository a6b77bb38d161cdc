//! Classic ULB VServers: CreateVServer, DescribeVServer, UpdateVServerAttribute,
//! DeleteVServer, BindSSL, UnbindSSL; and the VServer model the ULB and listener calls
//! share.
//!
//! A VServer is a core listener. The exception: UCloud creates an HTTPS VServer without a
//! certificate and binds one later, while certbind never runs a TLS listener without its
//! default certificate. Such a VServer waits in its load balancer's attributes
//! (`ucloud_pending_vservers`) with the id `vserver-<ulb n>p<k>`; its first BindSSL (or
//! AddSSLBinding) creates the listener with that certificate as default, and the listener
//! keeps the id (`ucloud_vserver_id` in its attributes).

use super::errors::{self, UError};
use super::ids::{self, VServerRef};
use super::{attr_int, attr_str, page, Ctx, Fields};
use certbind_control::{AssociateRequest, CreateListenerRequest, DissociateRequest, ListenerDetail};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_store::{ListenerFilter, LoadBalancerFilter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

const PENDING_KEY: &str = "ucloud_pending_vservers";
const VSERVER_ID_KEY: &str = "ucloud_vserver_id";

/// Serializes read-modify-write of the pending VServers kept in load balancer attributes.
static PENDING_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PendingState {
    #[serde(default)]
    next: u64,
    #[serde(default)]
    pending: BTreeMap<String, PendingVServer>,
    /// Pending key → the listener its first certificate created.
    #[serde(default)]
    created: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingVServer {
    name: String,
    port: u16,
    /// The `ucloud` attribute object (`{"ucloud": {...}}`).
    attributes: Value,
}

fn pending_state(lb: &LoadBalancer) -> PendingState {
    lb.attributes.get(PENDING_KEY).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

/// Changes the pending VServers of a load balancer (re-read under the lock).
fn update_pending<T>(
    ctx: &Ctx,
    lb: LoadBalancerId,
    change: impl FnOnce(&mut PendingState) -> Result<T, UError>,
) -> Result<T, UError> {
    let _guard = PENDING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let current = ctx.control.get_load_balancer(&ctx.caller, lb)?;
    let mut state = pending_state(&current);
    let out = change(&mut state)?;
    let value = serde_json::to_value(&state).map_err(|e| UError::new(errors::INTERNAL, e.to_string()))?;
    ctx.control.update_load_balancer(&ctx.caller, lb, None, Some(json!({ PENDING_KEY: value })))?;
    Ok(out)
}

/// The VServer id UCloud shows for a listener.
pub fn vserver_id(listener: &Listener) -> String {
    listener
        .attributes
        .get(VSERVER_ID_KEY)
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| ids::vserver(listener.id))
}

/// A VServer: a listener, or an HTTPS VServer waiting for its first certificate.
pub struct VServer {
    pub lb: LoadBalancer,
    pub id: String,
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// `{"ucloud": {...}}`: the UCloud fields certbind stores without acting on them.
    pub attributes: Value,
    pub listener: Option<ListenerDetail>,
    pending_key: Option<u64>,
}

impl VServer {
    fn live(lb: LoadBalancer, detail: ListenerDetail) -> VServer {
        VServer {
            id: vserver_id(&detail.listener),
            name: detail.listener.name.clone(),
            protocol: detail.listener.protocol,
            port: detail.listener.port,
            attributes: detail.listener.attributes.clone(),
            lb,
            listener: Some(detail),
            pending_key: None,
        }
    }

    fn pending(lb: LoadBalancer, key: u64, record: PendingVServer) -> VServer {
        VServer {
            id: ids::pending_vserver(lb.id, key),
            name: record.name,
            protocol: Protocol::Https,
            port: record.port,
            attributes: record.attributes,
            lb,
            listener: None,
            pending_key: Some(key),
        }
    }

    /// The listener's current bindings (none while pending), skipping dissociating ones.
    pub fn bindings(&self) -> Vec<&Binding> {
        self.listener
            .iter()
            .flat_map(|d| d.bindings.iter())
            .filter(|b| b.status != BindingStatus::Dissociating)
            .collect()
    }
}

/// Every VServer of a load balancer, listeners first, in id order.
pub fn vservers_of(ctx: &Ctx, lb: &LoadBalancer) -> Result<Vec<VServer>, UError> {
    let filter = ListenerFilter { load_balancer_id: Some(lb.id), ..Default::default() };
    let (listeners, _) = ctx.control.list_listeners(&ctx.caller, &filter)?;
    let mut out: Vec<VServer> = listeners.into_iter().map(|d| VServer::live(lb.clone(), d)).collect();
    for (key, record) in pending_state(lb).pending {
        if let Ok(key) = key.parse() {
            out.push(VServer::pending(lb.clone(), key, record));
        }
    }
    Ok(out)
}

/// Resolves a VServer id within the project; with `within`, it must belong to that load
/// balancer.
pub fn resolve(ctx: &Ctx, within: Option<&LoadBalancer>, text: &str) -> Result<VServer, UError> {
    let not_found = || match within {
        Some(lb) => {
            UError::new(errors::VSERVER_NOT_FOUND, format!("VServer {text} does not exist in ULB {}", ids::ulb(lb.id)))
        }
        None => UError::new(errors::VSERVER_NOT_FOUND, format!("VServer {text} does not exist in this project")),
    };
    let listener_id = match ids::parse_vserver(text)? {
        VServerRef::Listener(id) => id,
        VServerRef::Pending(lb_id, key) => {
            if within.is_some_and(|lb| lb.id != lb_id) {
                return Err(not_found());
            }
            let lb = ctx.ulb_by_id(&ids::ulb(lb_id)).map_err(|_| not_found())?;
            let state = pending_state(&lb);
            if let Some(record) = state.pending.get(&key.to_string()) {
                return Ok(VServer::pending(lb, key, record.clone()));
            }
            match state.created.get(&key.to_string()) {
                Some(id) => ListenerId(*id),
                None => return Err(not_found()),
            }
        }
    };
    let detail = match ctx.control.get_listener(&ctx.caller, listener_id) {
        Ok(detail) => detail,
        Err(certbind_core::CoreError::NotFound { .. }) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if within.is_some_and(|lb| lb.id != detail.listener.load_balancer_id) {
        return Err(not_found());
    }
    let lb = ctx.ulb_by_id(&ids::ulb(detail.listener.load_balancer_id)).map_err(|_| not_found())?;
    Ok(VServer::live(lb, detail))
}

/// The VServer fields UCloud validates as integers, and the ones it takes as strings.
const INT_FIELDS: &[&str] = &["ClientTimeout", "EnableHTTP2", "EnableCompression", "ForwardPort"];
const STR_FIELDS: &[&str] = &[
    "ListenType",
    "Method",
    "PersistenceType",
    "PersistenceInfo",
    "MonitorType",
    "Domain",
    "Path",
    "RequestMsg",
    "ResponseMsg",
    "SecurityPolicyId",
];

fn vserver_fields(ctx: &Ctx) -> Result<Map<String, Value>, UError> {
    let mut out = Map::new();
    for field in INT_FIELDS {
        if let Some(n) = ctx.params.int(field)? {
            out.insert(field.to_string(), json!(n));
        }
    }
    for field in STR_FIELDS {
        if let Some(v) = ctx.params.get(field) {
            out.insert(field.to_string(), json!(v));
        }
    }
    Ok(out)
}

pub fn create_vserver(ctx: &Ctx) -> Result<Fields, UError> {
    let lb = ctx.ulb_by_id(ctx.params.required("ULBId")?)?;
    let lb_listen_type = attr_str(&lb.attributes, "ListenType", "RequestProxy");
    let listen_type = ctx.params.get("ListenType").unwrap_or(&lb_listen_type).to_string();
    let protocol_text = ctx.params.get("Protocol").unwrap_or("HTTP");
    let allowed: &[Protocol] = match listen_type.as_str() {
        "RequestProxy" => &[Protocol::Http, Protocol::Https, Protocol::Tcp],
        "PacketsTransmit" => &[Protocol::Tcp, Protocol::Udp],
        _ => return Err(UError::invalid("ListenType", "must be RequestProxy or PacketsTransmit")),
    };
    let protocol = Protocol::parse(protocol_text)
        .filter(|p| allowed.contains(p))
        .ok_or_else(|| UError::invalid("Protocol", format!("{protocol_text} is not available with {listen_type}")))?;
    let port = ctx.params.int("FrontendPort")?.unwrap_or(80);
    if !(1..=65535).contains(&port) {
        return Err(UError::invalid("FrontendPort", "must be between 1 and 65535"));
    }
    let port = port as u16;
    let name = ctx.params.get("VServerName").unwrap_or("VServer").to_string();
    let mut fields = vserver_fields(ctx)?;
    fields.insert("ListenType".into(), json!(listen_type));
    let attributes = json!({ "ucloud": fields });
    check_port_free(ctx, &lb, port, protocol)?;
    let id = if protocol == Protocol::Https {
        update_pending(ctx, lb.id, |state| {
            state.next += 1;
            let key = state.next;
            state.pending.insert(key.to_string(), PendingVServer { name, port, attributes });
            Ok(ids::pending_vserver(lb.id, key))
        })?
    } else {
        let request = CreateListenerRequest {
            load_balancer_id: lb.id,
            name,
            protocol,
            port,
            default_certificate_id: None,
            additional_certificate_ids: Vec::new(),
            attributes,
        };
        let detail = ctx.control.create_listener(&ctx.caller, &request, None)?;
        ctx.wait_job(detail.job_id)?;
        ids::vserver(detail.listener.id)
    };
    let mut out = Fields::new();
    out.insert("VServerId".into(), json!(id));
    Ok(out)
}

/// A port a waiting VServer holds is taken, as is one a listener uses (which the control
/// plane checks again when it creates a listener).
pub fn check_port_free(ctx: &Ctx, lb: &LoadBalancer, port: u16, protocol: Protocol) -> Result<(), UError> {
    let udp = |p: Protocol| matches!(p, Protocol::Udp | Protocol::Quic);
    for v in vservers_of(ctx, lb)? {
        if v.port == port && udp(v.protocol) == udp(protocol) {
            return Err(UError::new(
                errors::PORT_IN_USE,
                format!("port {port} on ULB {} is already used by VServer {}", ids::ulb(lb.id), v.id),
            ));
        }
    }
    Ok(())
}

/// Creates the listener of a waiting HTTPS VServer with its first certificate(s).
pub fn create_pending_listener(
    ctx: &Ctx,
    v: &VServer,
    default: CertId,
    additional: Vec<CertId>,
) -> Result<ListenerId, UError> {
    let key = v.pending_key.ok_or_else(|| UError::new(errors::INTERNAL, "not a waiting VServer"))?;
    // Under the lock, from the record as it is now, so that two first bindings of one
    // VServer cannot both create it.
    let detail = update_pending(ctx, v.lb.id, |state| {
        let Some(record) = state.pending.remove(&key.to_string()) else {
            return Err(UError::new(
                errors::CONFLICT,
                format!("VServer {} got its first certificate meanwhile; retry the call", v.id),
            ));
        };
        let mut attributes = record.attributes;
        if let Value::Object(map) = &mut attributes {
            map.insert(VSERVER_ID_KEY.into(), json!(v.id));
        }
        let request = CreateListenerRequest {
            load_balancer_id: v.lb.id,
            name: record.name,
            protocol: Protocol::Https,
            port: record.port,
            default_certificate_id: Some(default),
            additional_certificate_ids: additional,
            attributes,
        };
        let detail = ctx.control.create_listener(&ctx.caller, &request, None)?;
        state.created.insert(key.to_string(), detail.listener.id.0);
        Ok(detail)
    })?;
    let listener = detail.listener.id;
    ctx.wait_job(detail.job_id)?;
    Ok(listener)
}

/// Binds certificates to a VServer: the first certificate of a waiting VServer becomes its
/// default; on a listener they are added as additional (SNI) certificates.
pub fn bind(ctx: &Ctx, v: &VServer, certs: Vec<CertId>) -> Result<(), UError> {
    let Some(detail) = &v.listener else {
        let mut certs = certs.into_iter();
        let default = certs.next().ok_or_else(|| UError::missing("SSLIds"))?;
        create_pending_listener(ctx, v, default, certs.collect())?;
        return Ok(());
    };
    let request = AssociateRequest { listener_id: detail.listener.id, certificate_ids: certs };
    let submission = ctx.control.associate_certificates(&ctx.caller, &request, false, None)?;
    ctx.wait_job(submission.job_id)
}

/// Unbinds additional certificates from a VServer.
pub fn unbind(ctx: &Ctx, v: &VServer, certs: Vec<CertId>) -> Result<(), UError> {
    let Some(detail) = &v.listener else {
        let cert = certs.first().map(|c| ids::ssl(*c)).unwrap_or_default();
        return Err(UError::new(errors::SSL_NOT_UNBINDABLE, format!("SSL {cert} is not bound to VServer {}", v.id)));
    };
    let request = DissociateRequest { listener_id: detail.listener.id, certificate_ids: certs };
    let submission = ctx.control.dissociate_certificates(&ctx.caller, &request, false, None)?;
    ctx.wait_job(submission.job_id)
}

pub fn bind_ssl(ctx: &Ctx) -> Result<Fields, UError> {
    let cert = ctx.cert("SSLId")?;
    let lb = ctx.ulb_by_id(ctx.params.required("ULBId")?)?;
    let v = resolve(ctx, Some(&lb), ctx.params.required("VServerId")?)?;
    if !v.protocol.is_tls() {
        return Err(UError::new(
            errors::VSERVER_NOT_HTTPS,
            format!("VServer {} uses {}, which carries no certificate: only HTTPS VServers take SSL", v.id, v.protocol),
        ));
    }
    bind(ctx, &v, vec![cert.id])?;
    Ok(Fields::new())
}

pub fn unbind_ssl(ctx: &Ctx) -> Result<Fields, UError> {
    let cert = ctx.cert("SSLId")?;
    let lb = ctx.ulb_by_id(ctx.params.required("ULBId")?)?;
    let v = resolve(ctx, Some(&lb), ctx.params.required("VServerId")?)?;
    unbind(ctx, &v, vec![cert.id])?;
    Ok(Fields::new())
}

pub fn describe_vserver(ctx: &Ctx) -> Result<Fields, UError> {
    let lb = ctx.params.get("ULBId").map(|id| ctx.ulb_by_id(id)).transpose()?;
    let vservers = match (ctx.params.get("VServerId"), &lb) {
        (Some(id), lb) => vec![resolve(ctx, lb.as_ref(), id)?],
        (None, Some(lb)) => vservers_of(ctx, lb)?,
        (None, None) => {
            let filter = LoadBalancerFilter {
                project_id: Some(ctx.project.id),
                region: Some(ctx.region.clone()),
                ..Default::default()
            };
            let mut all = Vec::new();
            for lb in ctx.control.list_load_balancers(&ctx.caller, &filter)?.0 {
                all.extend(vservers_of(ctx, &lb)?);
            }
            all
        }
    };
    let (vservers, total) = page(ctx, vservers, 100)?;
    let mut certs = HashMap::new();
    let data = vservers.iter().map(|v| vserver_set(ctx, v, &mut certs)).collect::<Result<Vec<_>, _>>()?;
    let mut out = Fields::new();
    out.insert("DataSet".into(), Value::Array(data));
    out.insert("TotalCount".into(), json!(total));
    Ok(out)
}

/// A VServer as UCloud shows it (`ULBVServerSet`), with its certificates in `SSLSet`.
pub fn vserver_set(ctx: &Ctx, v: &VServer, certs: &mut HashMap<CertId, Certificate>) -> Result<Value, UError> {
    let a = &v.attributes;
    let mut ssl_set = Vec::new();
    for binding in v.bindings() {
        let cert = match certs.get(&binding.cert_id) {
            Some(cert) => cert.clone(),
            None => {
                let cert = ctx.control.get_certificate(&ctx.caller, binding.cert_id)?;
                certs.insert(cert.id, cert.clone());
                cert
            }
        };
        let mut item = super::ssl::ssl_set(&cert);
        item.insert(
            "BindedTargetSet".into(),
            json!([{"ULBId": ids::ulb(v.lb.id), "ULBName": v.lb.name, "VServerId": v.id, "VServerName": v.name}]),
        );
        ssl_set.push(Value::Object(item));
    }
    Ok(json!({
        "ULBId": ids::ulb(v.lb.id),
        "VServerId": v.id,
        "VServerName": v.name,
        "Protocol": v.protocol.as_str(),
        "FrontendPort": v.port,
        "ListenType": attr_str(a, "ListenType", "RequestProxy"),
        "Method": attr_str(a, "Method", "Roundrobin"),
        "PersistenceType": attr_str(a, "PersistenceType", "None"),
        "PersistenceInfo": attr_str(a, "PersistenceInfo", ""),
        "MonitorType": attr_str(a, "MonitorType", "Port"),
        "Domain": attr_str(a, "Domain", ""),
        "Path": attr_str(a, "Path", ""),
        "RequestMsg": attr_str(a, "RequestMsg", ""),
        "ResponseMsg": attr_str(a, "ResponseMsg", ""),
        "ClientTimeout": attr_int(a, "ClientTimeout", 60),
        "EnableHTTP2": attr_int(a, "EnableHTTP2", 0),
        "EnableCompression": attr_int(a, "EnableCompression", 0),
        "ForwardPort": attr_int(a, "ForwardPort", 0),
        "Status": 0,
        "BackendSet": [],
        "PolicySet": [],
        "SSLSet": ssl_set,
    }))
}

pub fn update_vserver_attribute(ctx: &Ctx) -> Result<Fields, UError> {
    let lb = ctx.ulb_by_id(ctx.params.required("ULBId")?)?;
    let v = resolve(ctx, Some(&lb), ctx.params.required("VServerId")?)?;
    if let Some(protocol) = ctx.params.get("Protocol") {
        if Protocol::parse(protocol) != Some(v.protocol) {
            return Err(UError::invalid("Protocol", "a VServer's protocol cannot be changed"));
        }
    }
    let name = ctx.params.get("VServerName");
    let mut fields = v.attributes.get("ucloud").and_then(Value::as_object).cloned().unwrap_or_default();
    fields.extend(vserver_fields(ctx)?);
    match &v.listener {
        Some(detail) => {
            ctx.control.update_listener(&ctx.caller, detail.listener.id, name, Some(json!({ "ucloud": fields })))?;
        }
        None => {
            let key = v.pending_key.unwrap_or_default().to_string();
            update_pending(ctx, lb.id, |state| {
                let record = state.pending.get_mut(&key).ok_or_else(|| {
                    UError::new(errors::VSERVER_NOT_FOUND, format!("VServer {} does not exist", v.id))
                })?;
                if let Some(name) = name {
                    record.name = name.to_string();
                }
                record.attributes = json!({ "ucloud": fields });
                Ok(())
            })?;
        }
    }
    Ok(Fields::new())
}

pub fn delete_vserver(ctx: &Ctx) -> Result<Fields, UError> {
    let lb = ctx.ulb_by_id(ctx.params.required("ULBId")?)?;
    let v = resolve(ctx, Some(&lb), ctx.params.required("VServerId")?)?;
    match &v.listener {
        Some(detail) => ctx.control.delete_listener(&ctx.caller, detail.listener.id)?,
        None => {
            let key = v.pending_key.unwrap_or_default().to_string();
            update_pending(ctx, lb.id, |state| {
                state.pending.remove(&key);
                Ok(())
            })?;
        }
    }
    Ok(Fields::new())
}
