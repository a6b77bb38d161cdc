//! Cloud Load Balancer (2018-03-17): load balancers, listeners and their certificates.
//!
//! Every certbind load balancer (application or network) is a CLB instance; its region is
//! the one the SDK client was made for (`X-TC-Region`). Writes that change what a
//! listener serves are asynchronous: their `RequestId` is the task id that
//! `DescribeTaskStatus` follows (ids.rs).

use super::errors::{TcError, TcResult};
use super::params::Params;
use super::{ids, invalid_action, tc_time, Answer, Ctx};
use certbind_control::{AssociateRequest, CreateListenerRequest, CreateLoadBalancerRequest, DissociateRequest};
use certbind_control::{ListenerDetail, SetDefaultRequest};
use certbind_core::ids::{CertId, JobId, ListenerId, LoadBalancerId};
use certbind_core::model::*;
use certbind_store::{ListenerFilter, LoadBalancerFilter};
use serde_json::{json, Value};

/// The actions of this service that change something (the rest only read).
pub const WRITES: &[&str] =
    &["CreateLoadBalancer", "DeleteLoadBalancer", "CreateListener", "ModifyListener", "DeleteListener"];

pub fn dispatch(action: &str, ctx: &Ctx) -> TcResult<Answer> {
    match action {
        "CreateLoadBalancer" => create_load_balancer(ctx),
        "DescribeLoadBalancers" => describe_load_balancers(ctx),
        "DeleteLoadBalancer" => delete_load_balancer(ctx),
        "CreateListener" => create_listener(ctx),
        "DescribeListeners" => describe_listeners(ctx),
        "ModifyListener" => modify_listener(ctx),
        "DeleteListener" => delete_listener(ctx),
        "DescribeTaskStatus" => describe_task_status(ctx),
        "DescribeLoadBalancerListByCertId" => describe_load_balancer_list_by_cert_id(ctx),
        other => Err(invalid_action(other)),
    }
}

pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::TcpSsl => "TCP_SSL",
        other => other.as_str(),
    }
}

fn parse_protocol(text: &str) -> TcResult<Protocol> {
    match text.to_ascii_uppercase().as_str() {
        "TCP_SSL" => Ok(Protocol::TcpSsl),
        "HTTP" => Ok(Protocol::Http),
        "HTTPS" => Ok(Protocol::Https),
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "QUIC" => Ok(Protocol::Quic),
        _ => Err(TcError::invalid_value("Protocol", "must be TCP, UDP, HTTP, HTTPS, TCP_SSL or QUIC")),
    }
}

fn lb_param(ctx: &Ctx, name: &str) -> TcResult<LoadBalancerId> {
    let text = ctx.params.req_str(name)?;
    parse_lb(&text)
}

fn parse_lb(text: &str) -> TcResult<LoadBalancerId> {
    ids::parse_lb(text)
        .ok_or_else(|| TcError::new("ResourceNotFound", format!("load balancer {text:?} does not exist")))
}

fn listener_param(ctx: &Ctx, name: &str) -> TcResult<ListenerId> {
    let text = ctx.params.req_str(name)?;
    ids::parse_listener(&text)
        .ok_or_else(|| TcError::new("ResourceNotFound", format!("listener {text:?} does not exist")))
}

fn parse_cert(text: &str) -> TcResult<CertId> {
    ids::parse_cert(text).ok_or_else(|| {
        TcError::new("FailedOperation.CertificateNotFound", format!("certificate {text:?} does not exist"))
    })
}

/// An answer whose `RequestId` is the task id of `job` (when the write made one).
fn task_answer(ctx: &Ctx, fields: Value, job: Option<JobId>) -> TcResult<Answer> {
    let mut answer = Answer::new(fields)?;
    if let Some(job) = job {
        answer.request_id = Some(ids::task_request_id(ctx.request_id, job));
    }
    Ok(answer)
}

fn create_load_balancer(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&[
        "LoadBalancerType",
        "Forward",
        "LoadBalancerName",
        "VpcId",
        "SubnetId",
        "ProjectId",
        "AddressIPVersion",
        "Number",
        "MasterZoneId",
        "ZoneId",
        "InternetAccessible",
        "VipIsp",
        "Tags",
        "Vip",
        "BandwidthPackageId",
        "ExclusiveCluster",
        "SlaType",
        "ClusterIds",
        "ClientToken",
        "SnatPro",
        "SnatIps",
        "ClusterTag",
        "SlaveZoneId",
        "EipAddressId",
        "LoadBalancerPassToTarget",
        "DynamicVip",
        "Egress",
        "LBChargePrepaid",
        "LBChargeType",
        "AccessLogTopicId",
        "AdvancedRoute",
        "AvailableZoneAffinityInfo",
    ])?;
    let lb_type = p.req_str("LoadBalancerType")?;
    if lb_type != "OPEN" && lb_type != "INTERNAL" {
        return Err(TcError::invalid_value("LoadBalancerType", "must be OPEN or INTERNAL"));
    }
    let number = p.int("Number")?.unwrap_or(1);
    if !(1..=20).contains(&number) {
        return Err(TcError::invalid_value("Number", "must be between 1 and 20"));
    }
    let name = p.str("LoadBalancerName")?.unwrap_or_default();
    let mut attributes = json!({ "LoadBalancerType": lb_type, "Forward": p.int("Forward")?.unwrap_or(1) });
    if let Some(project) = p.int("ProjectId")? {
        attributes["ProjectId"] = json!(project);
    }
    if let Some(tags) = p.raw("Tags") {
        attributes["Tags"] = tags;
    }
    let token = p.str("ClientToken")?;
    let mut created = Vec::new();
    for i in 0..number {
        let request = CreateLoadBalancerRequest {
            name: name.clone(),
            lb_type: LbType::Application,
            region: ctx.region.map(str::to_string),
            project_id: None,
            address: None,
            attributes: attributes.clone(),
        };
        let token = token.as_ref().map(|t| format!("tc-clb:{t}:{i}"));
        let lb = ctx.control.create_load_balancer(ctx.caller, &request, token.as_deref())?;
        created.push(ids::lb(lb.id));
    }
    Answer::new(json!({ "LoadBalancerIds": created, "DealName": Value::Null }))
}

fn lb_json(lb: &LoadBalancer) -> Value {
    let attr = |k: &str| lb.attributes.get(k).cloned();
    json!({
        "LoadBalancerId": ids::lb(lb.id),
        "LoadBalancerName": lb.name,
        "LoadBalancerType": attr("LoadBalancerType").unwrap_or(json!("OPEN")),
        "Forward": attr("Forward").unwrap_or(json!(1)),
        "Domain": "",
        "LoadBalancerVips": lb.address.map(|a| vec![a.to_string()]).unwrap_or_default(),
        "Status": 1,
        "CreateTime": tc_time(lb.created_at),
        "StatusTime": tc_time(lb.created_at),
        "ProjectId": attr("ProjectId").unwrap_or(json!(0)),
        "Tags": attr("Tags").unwrap_or(json!([])),
        "AddressIPVersion": "ipv4",
        "TargetRegionInfo": { "Region": lb.region, "VpcId": "" },
    })
}

fn describe_load_balancers(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&[
        "LoadBalancerIds",
        "LoadBalancerType",
        "Forward",
        "LoadBalancerName",
        "Domain",
        "LoadBalancerVips",
        "BackendPublicIps",
        "BackendPrivateIps",
        "Offset",
        "Limit",
        "OrderBy",
        "OrderType",
        "SearchKey",
        "ProjectId",
        "WithRs",
        "VpcId",
        "SecurityGroup",
        "MasterZone",
        "Filters",
        "AdditionalFields",
    ])?;
    let offset = p.int("Offset")?.unwrap_or(0).max(0) as u64;
    let limit = p.int("Limit")?.unwrap_or(20).clamp(1, 100) as u64;
    let mut wanted = Vec::new();
    for text in p.str_list("LoadBalancerIds")? {
        match ids::parse_lb(&text) {
            Some(id) => wanted.push(id),
            None => return Answer::new(json!({ "TotalCount": 0, "LoadBalancerSet": [] })),
        }
    }
    let filter =
        LoadBalancerFilter { ids: wanted, region: ctx.region.map(str::to_string), offset, limit, ..Default::default() };
    let (lbs, total) = ctx.control.list_load_balancers(ctx.caller, &filter)?;
    let name = p.str("LoadBalancerName")?.filter(|n| !n.is_empty());
    let set: Vec<Value> = lbs.iter().filter(|lb| name.as_ref().is_none_or(|n| lb.name == *n)).map(lb_json).collect();
    Answer::new(json!({ "TotalCount": total, "LoadBalancerSet": set }))
}

fn delete_load_balancer(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&["LoadBalancerIds", "ForceDelete"])?;
    let texts = p.str_list("LoadBalancerIds")?;
    if texts.is_empty() {
        return Err(TcError::missing("LoadBalancerIds"));
    }
    let lbs = texts.iter().map(|t| parse_lb(t)).collect::<TcResult<Vec<_>>>()?;
    for id in &lbs {
        ctx.control.get_load_balancer(ctx.caller, *id)?;
    }
    for id in lbs {
        ctx.control.delete_load_balancer(ctx.caller, id)?;
    }
    Answer::new(json!({}))
}

/// The certificates a `Certificate` (CertificateInput) or `MultiCertInfo` names, default
/// first, uploading any given as content.
fn certificates_of(ctx: &Ctx) -> TcResult<Option<Vec<CertId>>> {
    let p = &ctx.params;
    let single = p.obj("Certificate")?;
    let multi = p.obj("MultiCertInfo")?;
    match (single, multi) {
        (Some(_), Some(_)) => {
            Err(TcError::new("InvalidParameterCombination", "Certificate and MultiCertInfo cannot be given together"))
        }
        (Some(c), None) => {
            c.allow(&[
                "SSLMode",
                "SSLVerifyClient",
                "CertId",
                "CertCaId",
                "CertName",
                "CertKey",
                "CertContent",
                "CertCaName",
                "CertCaContent",
            ])?;
            check_ssl_mode(&c)?;
            Ok(Some(vec![cert_input(ctx, &c, "Certificate")?]))
        }
        (None, Some(m)) => {
            m.allow(&["SSLMode", "CertList", "SSLVerifyClient"])?;
            check_ssl_mode(&m)?;
            let list = m.obj_list("CertList")?;
            if list.is_empty() {
                return Err(TcError::missing("MultiCertInfo.CertList"));
            }
            let mut out = Vec::new();
            for c in &list {
                c.allow(&["CertId", "CertName", "CertContent", "CertKey"])?;
                let id = cert_input(ctx, c, "MultiCertInfo.CertList")?;
                if !out.contains(&id) {
                    out.push(id);
                }
            }
            Ok(Some(out))
        }
        (None, None) => Ok(None),
    }
}

fn check_ssl_mode(p: &Params) -> TcResult<()> {
    match p.str("SSLMode")?.as_deref() {
        None | Some("") | Some("UNIDIRECTIONAL") => Ok(()),
        Some("MUTUAL") => Err(TcError::new("UnsupportedOperation", "mutual TLS listeners are not supported")),
        Some(_) => Err(TcError::invalid_value("SSLMode", "must be UNIDIRECTIONAL or MUTUAL")),
    }
}

/// One server certificate: by `CertId`, or uploaded from `CertContent` + `CertKey`.
fn cert_input(ctx: &Ctx, c: &Params, field: &str) -> TcResult<CertId> {
    if let Some(id) = c.str("CertId")?.filter(|s| !s.is_empty()) {
        let id = parse_cert(&id)?;
        ctx.control.get_certificate(ctx.caller, id)?;
        return Ok(id);
    }
    let content = c.str("CertContent")?.filter(|s| !s.is_empty());
    let key = c.str("CertKey")?.filter(|s| !s.is_empty());
    let (Some(content), Some(key)) = (content, key) else {
        return Err(TcError::missing(&format!("{field}.CertId")));
    };
    let request: certbind_control::UploadRequest = serde_json::from_value(json!({
        "name": c.str("CertName")?.unwrap_or_default(),
        "certificate_pem": content,
        "private_key_pem": key,
        "on_duplicate": "return_existing",
    }))
    .map_err(|_| TcError::new("InternalError", "an internal error occurred"))?;
    Ok(ctx.control.upload_certificate(ctx.caller, &request, None)?.certificate.id)
}

fn create_listener(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&[
        "LoadBalancerId",
        "Ports",
        "Protocol",
        "ListenerNames",
        "HealthCheck",
        "Certificate",
        "SessionExpireTime",
        "Scheduler",
        "SniSwitch",
        "TargetType",
        "SessionType",
        "KeepaliveEnable",
        "EndPort",
        "DeregisterTargetRst",
        "MultiCertInfo",
        "MaxConn",
        "MaxCps",
        "IdleConnectTimeout",
        "ProxyProtocol",
        "SnatEnable",
        "FullEndPorts",
        "H2cSwitch",
        "SslCloseSwitch",
        "DataCompressMode",
        "RescheduleTargetZeroWeight",
        "RescheduleUnhealthy",
        "RescheduleExpandTarget",
        "RescheduleStartTime",
        "RescheduleInterval",
    ])?;
    let lb = lb_param(ctx, "LoadBalancerId")?;
    let ports = p.int_list("Ports")?;
    if ports.is_empty() {
        return Err(TcError::missing("Ports"));
    }
    let protocol = parse_protocol(&p.req_str("Protocol")?)?;
    let names = p.str_list("ListenerNames")?;
    if !names.is_empty() && names.len() != ports.len() {
        return Err(TcError::invalid_value("ListenerNames", "must name each port, in order"));
    }
    if p.int("SniSwitch")? == Some(1) {
        return Err(TcError::new("UnsupportedOperation", "SNI listeners with per-domain rules are not supported"));
    }
    ctx.control.get_load_balancer(ctx.caller, lb)?;
    let gives_certificate = p.has("Certificate") || p.has("MultiCertInfo");
    if gives_certificate && !protocol.is_tls() {
        // Refused before any certificate content is uploaded.
        return Err(TcError::invalid_value("Certificate", "only HTTPS, TCP_SSL and QUIC listeners carry certificates"));
    }
    let certs = certificates_of(ctx)?;
    if protocol.is_tls() && certs.is_none() {
        return Err(TcError::missing("Certificate"));
    }
    let certs = certs.unwrap_or_default();
    let mut created = Vec::new();
    let mut last_job = None;
    for (i, port) in ports.iter().enumerate() {
        if !(1..=65535).contains(port) {
            return Err(TcError::invalid_value("Ports", "each port must be between 1 and 65535"));
        }
        let request = CreateListenerRequest {
            load_balancer_id: lb,
            name: names.get(i).cloned().unwrap_or_default(),
            protocol,
            port: *port as u16,
            default_certificate_id: certs.first().copied(),
            additional_certificate_ids: certs.iter().skip(1).copied().collect(),
            attributes: json!({}),
        };
        let detail = ctx.control.create_listener(ctx.caller, &request, None)?;
        created.push(ids::listener(detail.listener.id));
        last_job = detail.job_id.or(last_job);
    }
    task_answer(ctx, json!({ "ListenerIds": created }), last_job)
}

fn live(detail: &ListenerDetail, role: BindingRole) -> Vec<CertId> {
    detail
        .bindings
        .iter()
        .filter(|b| b.role == role && b.status != BindingStatus::Dissociating)
        .map(|b| b.cert_id)
        .collect()
}

fn listener_json(detail: &ListenerDetail) -> Value {
    let l = &detail.listener;
    let certificate = if l.protocol.is_tls() {
        let default = live(detail, BindingRole::Default);
        let extra: Vec<String> = live(detail, BindingRole::Additional).into_iter().map(ids::cert).collect();
        json!({
            "SSLMode": "UNIDIRECTIONAL",
            "SSLVerifyClient": Value::Null,
            "CertId": default.first().map(|c| ids::cert(*c)),
            "CertCaId": Value::Null,
            "ExtCertIds": extra,
        })
    } else {
        Value::Null
    };
    json!({
        "ListenerId": ids::listener(l.id),
        "ListenerName": l.name,
        "Protocol": protocol_name(l.protocol),
        "Port": l.port,
        "Certificate": certificate,
        "SniSwitch": 0,
        "Scheduler": "WRR",
        "SessionExpireTime": 0,
        "Rules": if matches!(l.protocol, Protocol::Http | Protocol::Https) { json!([]) } else { Value::Null },
        "CreateTime": tc_time(l.created_at),
        "EndPort": 0,
        "TargetType": "NODE",
        "SessionType": "NORMAL",
        "KeepaliveEnable": 0,
        "MaxConn": -1,
        "MaxCps": -1,
    })
}

fn describe_listeners(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&["LoadBalancerId", "ListenerIds", "Protocol", "Port"])?;
    let lb = lb_param(ctx, "LoadBalancerId")?;
    let mut wanted = Vec::new();
    for text in p.str_list("ListenerIds")? {
        match ids::parse_listener(&text) {
            Some(id) => wanted.push(id),
            None => return Answer::new(json!({ "TotalCount": 0, "Listeners": [] })),
        }
    }
    let protocol = p.str("Protocol")?.filter(|s| !s.is_empty()).map(|s| parse_protocol(&s)).transpose()?;
    let port = p.int("Port")?;
    let filter = ListenerFilter { load_balancer_id: Some(lb), ids: wanted, protocol, offset: 0, limit: 1000 };
    let (listeners, _) = ctx.control.list_listeners(ctx.caller, &filter)?;
    let list: Vec<Value> =
        listeners.iter().filter(|d| port.is_none_or(|p| i64::from(d.listener.port) == p)).map(listener_json).collect();
    Answer::new(json!({ "TotalCount": list.len(), "Listeners": list }))
}

fn owned_listener(ctx: &Ctx) -> TcResult<ListenerDetail> {
    let lb = lb_param(ctx, "LoadBalancerId")?;
    let id = listener_param(ctx, "ListenerId")?;
    ctx.control.get_load_balancer(ctx.caller, lb)?;
    let detail = ctx.control.get_listener(ctx.caller, id)?;
    if detail.listener.load_balancer_id != lb {
        return Err(TcError::new(
            "ResourceNotFound",
            format!("listener {} is not on load balancer {}", ids::listener(id), ids::lb(lb)),
        ));
    }
    Ok(detail)
}

fn modify_listener(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&[
        "LoadBalancerId",
        "ListenerId",
        "ListenerName",
        "SessionExpireTime",
        "HealthCheck",
        "Certificate",
        "Scheduler",
        "SniSwitch",
        "TargetType",
        "KeepaliveEnable",
        "DeregisterTargetRst",
        "SessionType",
        "MultiCertInfo",
        "MaxConn",
        "MaxCps",
        "IdleConnectTimeout",
        "ProxyProtocol",
        "SnatEnable",
        "DataCompressMode",
        "RescheduleTargetZeroWeight",
        "RescheduleUnhealthy",
        "RescheduleExpandTarget",
        "RescheduleStartTime",
        "RescheduleInterval",
    ])?;
    let detail = owned_listener(ctx)?;
    let id = detail.listener.id;
    if p.int("SniSwitch")? == Some(1) {
        return Err(TcError::new("UnsupportedOperation", "SNI listeners with per-domain rules are not supported"));
    }
    if (p.has("Certificate") || p.has("MultiCertInfo")) && !detail.listener.protocol.is_tls() {
        return Err(TcError::invalid_value("Certificate", "only HTTPS, TCP_SSL and QUIC listeners carry certificates"));
    }
    let certs = certificates_of(ctx)?;
    if let Some(name) = p.str("ListenerName")? {
        ctx.control.update_listener(ctx.caller, id, Some(&name), None)?;
    }
    let mut last_job = None;
    if let Some(certs) = certs {
        let default = certs[0];
        if live(&detail, BindingRole::Default).first() != Some(&default) {
            let request = SetDefaultRequest { listener_id: id, certificate_id: default };
            last_job = ctx.control.set_default_certificate(ctx.caller, &request, false, None)?.job_id;
        }
        // MultiCertInfo lists the complete set: add what is missing, drop what is not listed.
        if p.has("MultiCertInfo") {
            let current = live(&detail, BindingRole::Additional);
            let add: Vec<CertId> = certs[1..].iter().filter(|c| !current.contains(c)).copied().collect();
            let drop: Vec<CertId> = current.iter().filter(|c| !certs.contains(c) && **c != default).copied().collect();
            if !add.is_empty() {
                let request = AssociateRequest { listener_id: id, certificate_ids: add };
                last_job = ctx.control.associate_certificates(ctx.caller, &request, false, None)?.job_id.or(last_job);
            }
            if !drop.is_empty() {
                let request = DissociateRequest { listener_id: id, certificate_ids: drop };
                last_job = ctx.control.dissociate_certificates(ctx.caller, &request, false, None)?.job_id.or(last_job);
            }
        }
    }
    task_answer(ctx, json!({}), last_job)
}

fn delete_listener(ctx: &Ctx) -> TcResult<Answer> {
    ctx.params.allow(&["LoadBalancerId", "ListenerId"])?;
    let detail = owned_listener(ctx)?;
    ctx.control.delete_listener(ctx.caller, detail.listener.id)?;
    Answer::new(json!({}))
}

fn describe_task_status(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&["TaskId", "DealName"])?;
    if p.str("TaskId")?.is_none_or(|t| t.is_empty()) && p.str("DealName")?.is_some_and(|d| !d.is_empty()) {
        return Answer::new(json!({ "Status": 0, "LoadBalancerIds": [], "Message": Value::Null }));
    }
    let text = p.req_str("TaskId")?;
    let task = ids::parse_task(&text)
        .ok_or_else(|| TcError::invalid_value("TaskId", "must be the RequestId of a CLB write"))?;
    let Some(job_id) = task else {
        // A write that finished before answering.
        return Answer::new(json!({ "Status": 0, "LoadBalancerIds": [], "Message": Value::Null }));
    };
    let job = ctx.control.get_job(ctx.caller, job_id).map_err(|e| match e {
        certbind_core::CoreError::NotFound { .. } => {
            TcError::new("ResourceNotFound", format!("task {text:?} does not exist"))
        }
        other => other.into(),
    })?;
    let status = match job.state {
        JobState::Succeeded => 0,
        JobState::Failed => 1,
        JobState::Pending | JobState::Running => 2,
    };
    let targets = ctx.control.job_targets(ctx.caller, job.id, 0, 100)?;
    let mut lbs: Vec<String> = Vec::new();
    for t in targets {
        let id = ids::lb(t.load_balancer_id);
        if !lbs.contains(&id) {
            lbs.push(id);
        }
    }
    Answer::new(json!({ "Status": status, "LoadBalancerIds": lbs, "Message": job.error }))
}

fn describe_load_balancer_list_by_cert_id(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&["CertIds"])?;
    let texts = p.str_list("CertIds")?;
    if texts.is_empty() {
        return Err(TcError::missing("CertIds"));
    }
    let mut set = Vec::new();
    for text in texts {
        let id = parse_cert(&text)?;
        let bound = ctx.control.certificate_bindings(ctx.caller, id)?;
        let mut lb_ids: Vec<LoadBalancerId> = Vec::new();
        for (listener, binding) in &bound {
            if binding.status != BindingStatus::Dissociating && !lb_ids.contains(&listener.load_balancer_id) {
                lb_ids.push(listener.load_balancer_id);
            }
        }
        let mut lbs = Vec::new();
        for lb in lb_ids {
            if let Ok(lb) = ctx.control.get_load_balancer(ctx.caller, lb) {
                lbs.push(lb_json(&lb));
            }
        }
        set.push(json!({ "CertId": text, "LoadBalancers": lbs }));
    }
    Answer::new(json!({ "CertSet": set }))
}
