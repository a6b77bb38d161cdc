//! ALB 2020-06-16 and NLB 2022-04-30: load balancers, listeners, their certificates and
//! the asynchronous jobs that change them. The two products share one implementation;
//! they differ in parameter names (`Certificates.N.CertificateId` vs `CertificateIds.N`,
//! `AdditionalCertificateIds.N`), a few action names, the listener protocols they allow
//! and the load balancer type they map to.

use super::errors::{from_core, AliError, AliResult};
use super::{ids, Ctx, Product};
use certbind_control::{
    AssociateRequest, CreateListenerRequest, CreateLoadBalancerRequest, DissociateRequest, ListenerDetail,
    SetDefaultRequest,
};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::CoreError;
use certbind_store::{JobFilter, ListenerFilter, LoadBalancerFilter};
use serde_json::{json, Value};

pub const ALB_ACTIONS: &[&str] = &[
    "CreateLoadBalancer",
    "GetLoadBalancerAttribute",
    "ListLoadBalancers",
    "DeleteLoadBalancer",
    "CreateListener",
    "GetListenerAttribute",
    "ListListeners",
    "UpdateListenerAttribute",
    "DeleteListener",
    "AssociateAdditionalCertificatesWithListener",
    "DissociateAdditionalCertificatesFromListener",
    "ListListenerCertificates",
    "ListAsynJobs",
];

pub const NLB_ACTIONS: &[&str] = &[
    "CreateLoadBalancer",
    "GetLoadBalancerAttribute",
    "ListLoadBalancers",
    "DeleteLoadBalancer",
    "CreateListener",
    "GetListenerAttribute",
    "ListListeners",
    "UpdateListenerAttribute",
    "DeleteListener",
    "AssociateAdditionalCertificatesWithListener",
    "DisassociateAdditionalCertificatesWithListener",
    "ListListenerCertificates",
    "GetJobStatus",
];

pub async fn handle(ctx: &Ctx, action: &str) -> AliResult<Value> {
    match action {
        "CreateLoadBalancer" => create_lb(ctx).await,
        "GetLoadBalancerAttribute" => get_lb(ctx).await,
        "ListLoadBalancers" => list_lbs(ctx).await,
        "DeleteLoadBalancer" => delete_lb(ctx).await,
        "CreateListener" => create_listener(ctx).await,
        "GetListenerAttribute" => get_listener(ctx).await,
        "ListListeners" => list_listeners(ctx).await,
        "UpdateListenerAttribute" => update_listener(ctx).await,
        "DeleteListener" => delete_listener(ctx).await,
        "AssociateAdditionalCertificatesWithListener" => associate(ctx).await,
        "DissociateAdditionalCertificatesFromListener" | "DisassociateAdditionalCertificatesWithListener" => {
            dissociate(ctx).await
        }
        "ListListenerCertificates" => list_listener_certificates(ctx).await,
        "ListAsynJobs" => list_asyn_jobs(ctx).await,
        "GetJobStatus" => get_job_status(ctx).await,
        _ => Err(AliError::new(404, "InvalidAction.NotFound", "Specified api is not found.")),
    }
}

fn lb_type(product: Product) -> LbType {
    match product {
        Product::Nlb => LbType::Network,
        _ => LbType::Application,
    }
}

fn protocol(product: Product, text: &str) -> AliResult<Protocol> {
    let allowed: &[Protocol] = match product {
        Product::Nlb => &[Protocol::Tcp, Protocol::Udp, Protocol::TcpSsl],
        _ => &[Protocol::Http, Protocol::Https, Protocol::Quic],
    };
    Protocol::parse(text).filter(|p| allowed.contains(p)).ok_or_else(|| {
        let names: Vec<&str> = allowed.iter().map(|p| p.as_str()).collect();
        AliError::illegal("ListenerProtocol", &format!("must be one of {}", names.join(", ")))
    })
}

/// Certificate references of a request: ALB `Certificates.N.CertificateId`, NLB
/// `CertificateIds.N` (or `AdditionalCertificateIds.N` for the additional ones).
fn cert_refs(ctx: &Ctx, additional: bool) -> AliResult<(String, Vec<String>)> {
    match (ctx.product, additional) {
        (Product::Nlb, true) => Ok(("AdditionalCertificateIds".into(), ctx.params.list("AdditionalCertificateIds")?)),
        (Product::Nlb, false) => Ok(("CertificateIds".into(), ctx.params.list("CertificateIds")?)),
        _ => Ok(("Certificates".into(), ctx.params.list_field("Certificates", "CertificateId")?)),
    }
}

fn parse_certs(refs: &[String]) -> AliResult<Vec<CertId>> {
    refs.iter().map(|r| ids::parse_cert_ref(r).ok_or_else(|| AliError::not_found("Certificate", r))).collect()
}

fn next_token(offset: u64, shown: usize, total: u64) -> String {
    let next = offset + shown as u64;
    if next < total {
        next.to_string()
    } else {
        String::new()
    }
}

// ---- load balancers ----

async fn create_lb(ctx: &Ctx) -> AliResult<Value> {
    let p = &ctx.params;
    let name = p.get("LoadBalancerName").unwrap_or("").to_string();
    let vpc = p.required("VpcId")?.to_string();
    let address_type = p.get("AddressType").unwrap_or("Intranet").to_string();
    if !matches!(address_type.as_str(), "Internet" | "Intranet") {
        return Err(AliError::illegal("AddressType", "must be Internet or Intranet"));
    }
    let dry_run = p.dry_run()?;
    let token = p.client_token()?;
    let mut attributes = json!({ "vpc_id": vpc, "address_type": address_type });
    if ctx.product == Product::Alb {
        attributes["edition"] = json!(p.get("LoadBalancerEdition").unwrap_or("Standard"));
    }
    let request = CreateLoadBalancerRequest {
        name,
        lb_type: lb_type(ctx.product),
        region: Some(ctx.region()),
        project_id: None,
        address: None,
        attributes,
    };
    if dry_run {
        return Err(AliError::dry_run());
    }
    let lb = ctx.run(move |c, caller| c.create_load_balancer(caller, &request, token.as_deref())).await?;
    let id = ids::lb(ctx.product, lb.id);
    Ok(match ctx.product {
        // NLB spells it with a lower-case b.
        Product::Nlb => json!({ "LoadbalancerId": id, "OrderId": "" }),
        _ => json!({ "LoadBalancerId": id }),
    })
}

async fn lb_checked(ctx: &Ctx, text: &str) -> AliResult<LoadBalancer> {
    let id = ids::parse_lb(ctx.product, text).ok_or_else(|| AliError::not_found("LoadBalancer", text))?;
    let lb = ctx.run(move |c, caller| c.get_load_balancer(caller, id)).await?;
    if lb.lb_type != lb_type(ctx.product) {
        return Err(AliError::not_found("LoadBalancer", text));
    }
    Ok(lb)
}

fn lb_view(product: Product, lb: &LoadBalancer) -> Value {
    let attr = |k: &str, d: &str| lb.attributes.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
    let id = ids::lb(product, lb.id);
    let mut v = json!({
        "LoadBalancerId": id,
        "LoadBalancerName": lb.name,
        "LoadBalancerStatus": "Active",
        "RegionId": lb.region,
        "VpcId": attr("vpc_id", ""),
        "AddressType": attr("address_type", "Intranet"),
        "AddressIpVersion": "IPv4",
        "CreateTime": ids::iso(lb.created_at),
        "DNSName": format!("{id}.{}.certbind.local", lb.region),
    });
    match product {
        Product::Nlb => {
            v["LoadBalancerType"] = json!("Network");
            v["LoadBalancerBusinessStatus"] = json!("Normal");
        }
        _ => {
            v["LoadBalancerEdition"] = json!(attr("edition", "Standard"));
            v["LoadBalancerBussinessStatus"] = json!("Normal");
        }
    }
    v
}

async fn get_lb(ctx: &Ctx) -> AliResult<Value> {
    let lb = lb_checked(ctx, ctx.params.required("LoadBalancerId")?).await?;
    Ok(lb_view(ctx.product, &lb))
}

async fn list_lbs(ctx: &Ctx) -> AliResult<Value> {
    let p = &ctx.params;
    let wanted = p.list("LoadBalancerIds")?;
    let max = p.int_in("MaxResults", 1, 100, 20)?;
    let offset = p.next_token()?;
    let parsed: Vec<LoadBalancerId> = wanted.iter().filter_map(|t| ids::parse_lb(ctx.product, t)).collect();
    if !wanted.is_empty() && parsed.is_empty() {
        return Ok(json!({ "LoadBalancers": [], "TotalCount": 0, "MaxResults": max, "NextToken": "" }));
    }
    let filter = LoadBalancerFilter {
        ids: parsed,
        lb_type: Some(lb_type(ctx.product)),
        offset,
        limit: max,
        ..Default::default()
    };
    let (lbs, total) = ctx.run(move |c, caller| c.list_load_balancers(caller, &filter)).await?;
    let items: Vec<Value> = lbs.iter().map(|lb| lb_view(ctx.product, lb)).collect();
    Ok(json!({
        "LoadBalancers": items,
        "TotalCount": total,
        "MaxResults": max,
        "NextToken": next_token(offset, lbs.len(), total),
    }))
}

async fn delete_lb(ctx: &Ctx) -> AliResult<Value> {
    let lb = lb_checked(ctx, ctx.params.required("LoadBalancerId")?).await?;
    if ctx.params.dry_run()? {
        return Err(AliError::dry_run());
    }
    ctx.run(move |c, caller| c.delete_load_balancer(caller, lb.id)).await?;
    Ok(json!({}))
}

// ---- listeners ----

async fn listener_checked(ctx: &Ctx, text: &str) -> AliResult<(ListenerDetail, LoadBalancer)> {
    let id = ids::parse_listener(text).ok_or_else(|| AliError::not_found("Listener", text))?;
    let (detail, lb) = ctx
        .run(move |c, caller| {
            let detail = c.get_listener(caller, id)?;
            let lb = c.get_load_balancer(caller, detail.listener.load_balancer_id)?;
            Ok((detail, lb))
        })
        .await?;
    if lb.lb_type != lb_type(ctx.product) {
        return Err(AliError::not_found("Listener", text));
    }
    Ok((detail, lb))
}

fn runtime_state(ctx: &Ctx, id: ListenerId) -> Option<String> {
    ctx.state.dataplane.as_ref().and_then(|d| d.listener_runtime(id)).map(|r| r.state)
}

fn listener_status(ctx: &Ctx, detail: &ListenerDetail) -> &'static str {
    match runtime_state(ctx, detail.listener.id).as_deref() {
        Some("bind_failed") | Some("stopped") => "Stopped",
        None => "Provisioning",
        Some(_) if detail.bindings.iter().any(|b| b.status != BindingStatus::Associated) => "Configuring",
        Some(_) => "Running",
    }
}

fn default_cert(detail: &ListenerDetail) -> Option<CertId> {
    detail
        .bindings
        .iter()
        .find(|b| b.role == BindingRole::Default && b.status != BindingStatus::Dissociating)
        .map(|b| b.cert_id)
}

fn listener_view(ctx: &Ctx, detail: &ListenerDetail, lb: &LoadBalancer) -> Value {
    let l = &detail.listener;
    let default = default_cert(detail).map(|c| ids::cert_ref(c, &lb.region));
    let mut v = json!({
        "ListenerId": ids::listener(l.id),
        "LoadBalancerId": ids::lb(ctx.product, lb.id),
        "ListenerProtocol": l.protocol.as_str(),
        "ListenerPort": l.port,
        "ListenerDescription": l.name,
        "ListenerStatus": listener_status(ctx, detail),
        "CaEnabled": false,
    });
    if l.protocol.is_tls() {
        v["SecurityPolicyId"] = json!("tls_cipher_policy_1_0");
    }
    match ctx.product {
        Product::Nlb => {
            v["RegionId"] = json!(lb.region);
            v["CertificateIds"] = json!(default.into_iter().collect::<Vec<_>>());
            v["ServerGroupId"] = json!(l.attributes.get("server_group_id").and_then(Value::as_str).unwrap_or(""));
            v["IdleTimeout"] = json!(900);
            v["StartPort"] = json!("0");
            v["EndPort"] = json!("0");
            v["AlpnEnabled"] = json!(false);
            v["ProxyProtocolEnabled"] = json!(false);
        }
        _ => {
            let certs: Vec<Value> = default.into_iter().map(|c| json!({ "CertificateId": c })).collect();
            v["Certificates"] = json!(certs);
            v["IdleTimeout"] = json!(15);
            v["RequestTimeout"] = json!(60);
            v["GzipEnabled"] = json!(true);
            v["Http2Enabled"] = json!(true);
        }
    }
    v
}

async fn create_listener(ctx: &Ctx) -> AliResult<Value> {
    let p = &ctx.params;
    let lb_text = p.required("LoadBalancerId")?.to_string();
    let protocol = protocol(ctx.product, p.required("ListenerProtocol")?)?;
    let port: u64 = p.int("ListenerPort")?.ok_or_else(|| AliError::missing("ListenerPort"))?;
    if !(1..=65535).contains(&port) {
        return Err(AliError::illegal("ListenerPort", "must be between 1 and 65535"));
    }
    let (_, refs) = cert_refs(ctx, false)?;
    let certs = parse_certs(&refs)?;
    let name = p.get("ListenerDescription").unwrap_or("").to_string();
    let dry_run = p.dry_run()?;
    let token = p.client_token()?;
    let lb = lb_checked(ctx, &lb_text).await?;
    let mut attributes = json!({});
    if let Some(group) = p.get("ServerGroupId") {
        attributes["server_group_id"] = json!(group);
    }
    let request = CreateListenerRequest {
        load_balancer_id: lb.id,
        name,
        protocol,
        port: port as u16,
        default_certificate_id: certs.first().copied(),
        additional_certificate_ids: certs.iter().skip(1).copied().collect(),
        attributes,
    };
    if dry_run {
        if protocol.is_tls() && certs.is_empty() {
            return Err(from_core(
                ctx.product,
                CoreError::DefaultCertificateRequired { protocol: protocol.to_string() },
            ));
        }
        if !protocol.is_tls() && !certs.is_empty() {
            return Err(from_core(
                ctx.product,
                CoreError::ListenerNotTls { listener: "(new)".into(), protocol: protocol.to_string() },
            ));
        }
        ctx.run(move |c, caller| {
            for id in &certs {
                c.get_certificate(caller, *id)?;
            }
            Ok(())
        })
        .await?;
        return Err(AliError::dry_run());
    }
    let detail = ctx.run(move |c, caller| c.create_listener(caller, &request, token.as_deref())).await?;
    Ok(json!({
        "ListenerId": ids::listener(detail.listener.id),
        "JobId": detail.job_id.map(ids::job).unwrap_or_default(),
    }))
}

async fn get_listener(ctx: &Ctx) -> AliResult<Value> {
    let (detail, lb) = listener_checked(ctx, ctx.params.required("ListenerId")?).await?;
    Ok(listener_view(ctx, &detail, &lb))
}

async fn list_listeners(ctx: &Ctx) -> AliResult<Value> {
    let p = &ctx.params;
    let max = p.int_in("MaxResults", 1, 100, 20)?;
    let offset = p.next_token()?;
    let listener_ids: Vec<String> = p.list("ListenerIds")?;
    let lb_ids: Vec<String> = p.list("LoadBalancerIds")?;
    let wanted_protocol = match p.get("ListenerProtocol") {
        Some(t) => Some(protocol(ctx.product, t)?),
        None => None,
    };
    let product = ctx.product;
    let lb_filter: Vec<Option<LoadBalancerId>> = lb_ids.iter().map(|t| ids::parse_lb(product, t)).collect::<Vec<_>>();
    let wanted_listeners: Vec<ListenerId> = listener_ids.iter().filter_map(|t| ids::parse_listener(t)).collect();
    // Only ids that cannot be ours were asked for: nothing matches.
    let nothing_wanted = !listener_ids.is_empty() && wanted_listeners.is_empty();
    let rows = ctx
        .run(move |c, caller| {
            let scopes: Vec<Option<LoadBalancerId>> =
                if lb_filter.is_empty() { vec![None] } else { lb_filter.into_iter().flatten().map(Some).collect() };
            let mut out = Vec::new();
            for scope in scopes {
                if let Some(lb) = scope {
                    match c.get_load_balancer(caller, lb) {
                        Ok(found) if found.lb_type == lb_type(product) => {}
                        Ok(_) | Err(CoreError::NotFound { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                let filter = ListenerFilter {
                    load_balancer_id: scope,
                    ids: wanted_listeners.clone(),
                    protocol: wanted_protocol,
                    offset: 0,
                    limit: 10_000,
                };
                for detail in c.list_listeners(caller, &filter)?.0 {
                    let lb = c.get_load_balancer(caller, detail.listener.load_balancer_id)?;
                    if lb.lb_type == lb_type(product) {
                        out.push((detail, lb));
                    }
                }
            }
            Ok(out)
        })
        .await?;
    let rows = if nothing_wanted { Vec::new() } else { rows };
    let total = rows.len() as u64;
    let page: Vec<Value> = rows
        .iter()
        .skip(offset as usize)
        .take(max as usize)
        .map(|(detail, lb)| listener_view(ctx, detail, lb))
        .collect();
    Ok(json!({
        "Listeners": page,
        "TotalCount": total,
        "MaxResults": max,
        "NextToken": next_token(offset, page.len(), total),
    }))
}

/// Whether a write carrying this client token was already accepted: its retry goes
/// straight to the control plane, which answers with the first job.
async fn token_used(ctx: &Ctx, token: Option<&str>) -> AliResult<bool> {
    let Some(token) = token.map(str::to_string) else { return Ok(false) };
    ctx.run(move |c, caller| {
        let filter = JobFilter { limit: 10_000, ..Default::default() };
        Ok(c.list_jobs(caller, &filter)?.0.iter().any(|j| j.client_token.as_deref() == Some(&token)))
    })
    .await
}

/// Refuses a binding change on a listener that is not serving (`IncorrectStatus.Listener`)
/// or that another job is still changing (`ResourceInConfiguring.Listener`): a binding
/// not yet Associated, or an unfinished job with a target on the listener. (The control
/// plane checks the latter again in the transaction that creates the job, so two writes
/// arriving together cannot both pass.)
async fn check_writable(ctx: &Ctx, detail: &ListenerDetail) -> AliResult<()> {
    let shown = ids::listener(detail.listener.id);
    if matches!(runtime_state(ctx, detail.listener.id).as_deref(), Some("bind_failed") | Some("stopped")) {
        return Err(AliError::new(
            400,
            "IncorrectStatus.Listener",
            format!("The status of listener [{shown}] is incorrect."),
        ));
    }
    let listener_id = detail.listener.id;
    let mut busy = detail.bindings.iter().any(|b| b.status != BindingStatus::Associated);
    if !busy {
        busy = ctx
            .run(move |c, caller| {
                for state in [JobState::Pending, JobState::Running] {
                    let filter = JobFilter { state: Some(state), limit: 10_000, ..Default::default() };
                    for job in c.list_jobs(caller, &filter)?.0 {
                        // Replace and one-click update jobs may span many listeners; on
                        // this one they show as bindings not yet Associated.
                        if matches!(job.kind, JobKind::Replace | JobKind::OneClickUpdate) {
                            continue;
                        }
                        if c.job_targets(caller, job.id, 0, 100)?.iter().any(|t| t.listener_id == listener_id) {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            })
            .await?;
    }
    if busy {
        return Err(AliError::new(
            400,
            "ResourceInConfiguring.Listener",
            format!("The specified resource {shown} is configuring, please try again later."),
        ));
    }
    Ok(())
}

fn require_tls(ctx: &Ctx, detail: &ListenerDetail) -> AliResult<()> {
    if detail.listener.protocol.is_tls() {
        return Ok(());
    }
    Err(from_core(
        ctx.product,
        CoreError::ListenerNotTls {
            listener: ids::listener(detail.listener.id),
            protocol: detail.listener.protocol.to_string(),
        },
    ))
}

async fn update_listener(ctx: &Ctx) -> AliResult<Value> {
    let p = &ctx.params;
    let listener_text = p.required("ListenerId")?.to_string();
    let (_, refs) = cert_refs(ctx, false)?;
    let certs = parse_certs(&refs)?;
    if certs.len() > 1 {
        return Err(AliError::invalid_parameter("Only one default server certificate is supported."));
    }
    let description = p.get("ListenerDescription").map(str::to_string);
    let dry_run = p.dry_run()?;
    let token = p.client_token()?;
    let (detail, _lb) = listener_checked(ctx, &listener_text).await?;
    let listener_id = detail.listener.id;
    let mut job = String::new();
    if let Some(cert) = certs.first().copied() {
        require_tls(ctx, &detail)?;
        if !token_used(ctx, token.as_deref()).await? {
            check_writable(ctx, &detail).await?;
        }
        let request = SetDefaultRequest { listener_id, certificate_id: cert };
        let submission = ctx
            .run(move |c, caller| {
                c.set_default_certificate(&caller.one_change_at_a_time(), &request, dry_run, token.as_deref())
            })
            .await?;
        job = submission.job_id.map(ids::job).unwrap_or_default();
    }
    if dry_run {
        return Err(AliError::dry_run());
    }
    if let Some(name) = description {
        ctx.run(move |c, caller| c.update_listener(caller, listener_id, Some(&name), None)).await?;
    }
    Ok(json!({ "JobId": job }))
}

async fn delete_listener(ctx: &Ctx) -> AliResult<Value> {
    let (detail, _) = listener_checked(ctx, ctx.params.required("ListenerId")?).await?;
    if ctx.params.dry_run()? {
        return Err(AliError::dry_run());
    }
    let id = detail.listener.id;
    ctx.run(move |c, caller| c.delete_listener(caller, id)).await?;
    Ok(json!({}))
}

async fn associate(ctx: &Ctx) -> AliResult<Value> {
    change_additional(ctx, true).await
}

async fn dissociate(ctx: &Ctx) -> AliResult<Value> {
    change_additional(ctx, false).await
}

async fn change_additional(ctx: &Ctx, associate: bool) -> AliResult<Value> {
    let p = &ctx.params;
    let listener_text = p.required("ListenerId")?.to_string();
    let (param, refs) = cert_refs(ctx, true)?;
    if refs.is_empty() {
        return Err(AliError::missing(&param));
    }
    let certs = parse_certs(&refs)?;
    let dry_run = p.dry_run()?;
    let token = p.client_token()?;
    let (detail, lb) = listener_checked(ctx, &listener_text).await?;
    require_tls(ctx, &detail)?;
    let retry = token_used(ctx, token.as_deref()).await?;
    if !retry {
        check_writable(ctx, &detail).await?;
    }
    let listener_id = detail.listener.id;
    let submission = if associate {
        if let Some(bound) = certs
            .iter()
            .filter(|_| !retry)
            .find(|id| detail.bindings.iter().any(|b| b.cert_id == **id && b.status != BindingStatus::Dissociating))
        {
            return Err(AliError::new(
                400,
                "ResourceAlreadyAssociated.Certificate",
                format!(
                    "The specified resource {} is already associated with {}.",
                    ids::cert_ref(*bound, &lb.region),
                    ids::listener(listener_id)
                ),
            ));
        }
        let request = AssociateRequest { listener_id, certificate_ids: certs };
        ctx.run(move |c, caller| {
            c.associate_certificates(&caller.one_change_at_a_time(), &request, dry_run, token.as_deref())
        })
        .await?
    } else {
        let request = DissociateRequest { listener_id, certificate_ids: certs };
        ctx.run(move |c, caller| {
            c.dissociate_certificates(&caller.one_change_at_a_time(), &request, dry_run, token.as_deref())
        })
        .await?
    };
    if dry_run {
        return Err(AliError::dry_run());
    }
    Ok(json!({ "JobId": submission.job_id.map(ids::job).unwrap_or_default() }))
}

async fn list_listener_certificates(ctx: &Ctx) -> AliResult<Value> {
    let p = &ctx.params;
    let listener_text = p.required("ListenerId")?.to_string();
    let type_param = if ctx.product == Product::Nlb { "CertType" } else { "CertificateType" };
    let cert_type = p.get(type_param).map(str::to_string);
    if let Some(t) = &cert_type {
        if t != "Ca" && t != "Server" {
            return Err(AliError::illegal(type_param, "must be Ca or Server"));
        }
    }
    let max_limit = if ctx.product == Product::Nlb { 50 } else { 100 };
    let max = p.int_in("MaxResults", 1, max_limit, 20)?;
    let offset = p.next_token()?;
    let filter_refs = p.list("CertificateIds")?;
    let filter: Vec<CertId> = filter_refs.iter().filter_map(|r| ids::parse_cert_ref(r)).collect();
    let (detail, lb) = listener_checked(ctx, &listener_text).await?;
    let mut bindings: Vec<&Binding> = detail
        .bindings
        .iter()
        .filter(|_| cert_type.as_deref() != Some("Ca"))
        .filter(|b| filter_refs.is_empty() || filter.contains(&b.cert_id))
        .collect();
    // Default first, then by id; a default being replaced shows once per binding row.
    bindings.sort_by_key(|b| (b.role != BindingRole::Default, b.cert_id));
    let total = bindings.len() as u64;
    let page: Vec<&Binding> = bindings.into_iter().skip(offset as usize).take(max as usize).collect();
    let certs: Vec<Value> = page
        .iter()
        .map(|b| {
            json!({
                "CertificateId": ids::cert_ref(b.cert_id, &lb.region),
                "CertificateType": "Server",
                "IsDefault": b.role == BindingRole::Default,
                "Status": b.status.as_str(),
            })
        })
        .collect();
    let mut body = json!({
        "Certificates": certs,
        "TotalCount": total,
        "MaxResults": max,
        "NextToken": next_token(offset, page.len(), total),
    });
    if ctx.product == Product::Nlb {
        body["CertificateIds"] = json!(page.iter().map(|b| ids::cert_ref(b.cert_id, &lb.region)).collect::<Vec<_>>());
    }
    Ok(body)
}

// ---- jobs ----

fn job_status(state: JobState) -> &'static str {
    match state {
        JobState::Pending | JobState::Running => "Processing",
        JobState::Succeeded => "Succeeded",
        JobState::Failed => "Failed",
    }
}

fn api_name(kind: JobKind) -> (&'static str, &'static str) {
    match kind {
        JobKind::CreateListener => ("CreateListener", "Create"),
        JobKind::SetDefault => ("UpdateListenerAttribute", "Update"),
        JobKind::Associate => ("AssociateAdditionalCertificatesWithListener", "Update"),
        JobKind::Dissociate => ("DissociateAdditionalCertificatesFromListener", "Update"),
        JobKind::Replace => ("ReplaceCertificate", "Update"),
        JobKind::OneClickUpdate => ("UpdateCertificate", "Update"),
    }
}

async fn list_asyn_jobs(ctx: &Ctx) -> AliResult<Value> {
    let p = &ctx.params;
    let max = p.int_in("MaxResults", 1, 100, 20)?;
    let offset = p.next_token()?;
    let job_ids: Vec<String> = p.list("JobIds")?;
    let resource_ids: Vec<String> = p.list("ResourceIds")?;
    let api_filter = p.get("ApiName").map(str::to_string);
    let wanted: Vec<JobId> = job_ids.iter().filter_map(|t| ids::parse_job(t)).collect();
    let by_id = !job_ids.is_empty();
    let (jobs, total) = ctx
        .run(move |c, caller| {
            let (jobs, total) = if by_id {
                let mut jobs = Vec::new();
                for id in wanted {
                    match c.get_job(caller, id) {
                        Ok(job) => jobs.push(job),
                        Err(CoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                let total = jobs.len() as u64;
                (jobs, total)
            } else {
                c.list_jobs(caller, &JobFilter { offset, limit: max, ..Default::default() })?
            };
            let mut out = Vec::with_capacity(jobs.len());
            for job in jobs {
                let target = c.job_targets(caller, job.id, 0, 1)?.into_iter().next();
                out.push((job, target.map(|t| t.listener_id)));
            }
            Ok((out, total))
        })
        .await?;
    let items: Vec<Value> = jobs
        .iter()
        .filter(|(job, listener)| {
            (resource_ids.is_empty() || listener.map(|l| resource_ids.contains(&ids::listener(l))).unwrap_or(false))
                && api_filter.as_deref().map(|a| a == api_name(job.kind).0).unwrap_or(true)
        })
        .map(|(job, listener)| {
            let (api, operate) = api_name(job.kind);
            json!({
                "Id": ids::job(job.id),
                "ApiName": api,
                "Status": job_status(job.state),
                "ResourceId": listener.map(ids::listener).unwrap_or_default(),
                "ResourceType": "listener",
                "OperateType": operate,
                "CreateTime": job.created_at * 1000,
                "ModifyTime": job.finished_at.or(job.started_at).unwrap_or(job.created_at) * 1000,
                "ErrorCode": if job.state == JobState::Failed { "OperationFailed" } else { "" },
                "ErrorMessage": job.error.clone().unwrap_or_default(),
            })
        })
        .collect();
    let shown = jobs.len();
    Ok(json!({
        "Jobs": items,
        "TotalCount": total,
        "MaxResults": max,
        "NextToken": if by_id { String::new() } else { next_token(offset, shown, total) },
    }))
}

async fn get_job_status(ctx: &Ctx) -> AliResult<Value> {
    let text = ctx.params.required("JobId")?.to_string();
    let id = ids::parse_job(&text).ok_or_else(|| AliError::not_found("Job", &text))?;
    let job = ctx.run(move |c, caller| c.get_job(caller, id)).await?;
    Ok(json!({ "Status": job_status(job.state) }))
}
