//! Classic load balancers: CreateULB, DescribeULB, DeleteULB.
//!
//! A ULB is a core load balancer in the request's project and region: an application
//! load balancer for `ListenType` RequestProxy (HTTP, HTTPS, TCP VServers), a network one
//! for PacketsTransmit (TCP, UDP). The UCloud fields without meaning here (Tag, Remark,
//! VPCId, ...) are stored in its attributes and shown back.

use super::errors::UError;
use super::{attr_str, ids, page, vserver, Ctx, Fields};
use certbind_control::CreateLoadBalancerRequest;
use certbind_core::model::*;
use certbind_store::LoadBalancerFilter;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const STORED: &[&str] = &[
    "Tag",
    "Remark",
    "BusinessId",
    "VPCId",
    "SubnetId",
    "FirewallId",
    "ChargeType",
    "IPVersion",
    "OuterMode",
    "InnerMode",
];

pub fn create_ulb(ctx: &Ctx) -> Result<Fields, UError> {
    let inner = ctx.params.get("InnerMode").is_some_and(|v| v.eq_ignore_ascii_case("Yes"));
    let default_listen_type = if inner { "PacketsTransmit" } else { "RequestProxy" };
    let listen_type = ctx.params.get("ListenType").unwrap_or(default_listen_type);
    let lb_type = match listen_type {
        "RequestProxy" => LbType::Application,
        "PacketsTransmit" => LbType::Network,
        _ => return Err(UError::invalid("ListenType", "must be RequestProxy or PacketsTransmit")),
    };
    let mut fields = Map::new();
    for key in STORED {
        if let Some(value) = ctx.params.get(key) {
            fields.insert(key.to_string(), json!(value));
        }
    }
    fields.insert("ListenType".into(), json!(listen_type));
    let request = CreateLoadBalancerRequest {
        name: ctx.params.get("ULBName").unwrap_or("ULB").to_string(),
        lb_type,
        region: Some(ctx.region.clone()),
        project_id: Some(ctx.project.id),
        address: None,
        attributes: json!({ "ucloud": fields }),
    };
    let lb = ctx.control.create_load_balancer(&ctx.caller, &request, None).map_err(|e| match e {
        certbind_core::CoreError::InvalidArgument { field, reason } if field == "region" => {
            UError::invalid("Region", reason)
        }
        e => e.into(),
    })?;
    let mut out = Fields::new();
    out.insert("ULBId".into(), json!(ids::ulb(lb.id)));
    out.insert("IPv6AddressId".into(), json!(""));
    Ok(out)
}

pub fn describe_ulb(ctx: &Ctx) -> Result<Fields, UError> {
    let lbs = match ctx.params.get("ULBId") {
        Some(id) => vec![ctx.ulb_by_id(id)?],
        None => {
            let filter = LoadBalancerFilter {
                project_id: Some(ctx.project.id),
                region: Some(ctx.region.clone()),
                ..Default::default()
            };
            let mut lbs = ctx.control.list_load_balancers(&ctx.caller, &filter)?.0;
            for key in ["VPCId", "SubnetId", "BusinessId"] {
                if let Some(wanted) = ctx.params.get(key) {
                    lbs.retain(|lb| attr_str(&lb.attributes, key, "") == wanted);
                }
            }
            lbs
        }
    };
    let (lbs, total) = page(ctx, lbs, 20)?;
    let mut certs = HashMap::new();
    let mut data = Vec::with_capacity(lbs.len());
    for lb in &lbs {
        let vservers = vserver::vservers_of(ctx, lb)?
            .iter()
            .map(|v| vserver::vserver_set(ctx, v, &mut certs))
            .collect::<Result<Vec<_>, _>>()?;
        let a = &lb.attributes;
        data.push(json!({
            "ULBId": ids::ulb(lb.id),
            "ULBName": lb.name,
            "Name": lb.name,
            "Tag": attr_str(a, "Tag", "Default"),
            "Remark": attr_str(a, "Remark", ""),
            "BusinessId": attr_str(a, "BusinessId", ""),
            "VPCId": attr_str(a, "VPCId", ""),
            "SubnetId": attr_str(a, "SubnetId", ""),
            "IPVersion": attr_str(a, "IPVersion", "IPv4"),
            "ListenType": attr_str(a, "ListenType", "RequestProxy"),
            "ULBType": if attr_str(a, "InnerMode", "") .eq_ignore_ascii_case("Yes") { "InnerMode" } else { "OuterMode" },
            "PrivateIP": lb.address.map(|ip| ip.to_string()).unwrap_or_default(),
            "CreateTime": lb.created_at,
            "IPSet": [],
            "FirewallSet": [],
            "Resource": [],
            "SnatIps": [],
            "VServerSet": Value::Array(vservers),
        }));
    }
    let mut out = Fields::new();
    out.insert("DataSet".into(), Value::Array(data));
    out.insert("TotalCount".into(), json!(total));
    Ok(out)
}

pub fn delete_ulb(ctx: &Ctx) -> Result<Fields, UError> {
    let lb = ctx.ulb_by_id(ctx.params.required("ULBId")?)?;
    ctx.control.delete_load_balancer(&ctx.caller, lb.id)?;
    Ok(Fields::new())
}
