//! Certificates: CreateSSL, DescribeSSL, DescribeSSLV2, UpdateSSLAttribute, DeleteSSL.

use super::errors::UError;
use super::{ids, page, vserver, Ctx, Fields};
use certbind_control::UploadRequest;
use certbind_core::ids::LoadBalancerId;
use certbind_core::model::*;
use certbind_store::CertificateFilter;
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn create_ssl(ctx: &Ctx) -> Result<Fields, UError> {
    let name = ctx.params.required("SSLName")?;
    if let Some(kind) = ctx.params.get("SSLType") {
        if !kind.eq_ignore_ascii_case("Pem") {
            return Err(UError::invalid("SSLType", "only Pem is supported"));
        }
    }
    if ctx.params.get("USSLId").is_some() {
        return Err(UError::invalid(
            "USSLId",
            "certificates of the UCloud SSL service are not available here; upload the PEM instead",
        ));
    }
    let (certificate_pem, chain_pem, private_key_pem) = if let Some(content) = ctx.params.get("SSLContent") {
        let (certs, key) = split_bundle(content);
        (certs, None, key)
    } else {
        let Some(user_cert) = ctx.params.get("UserCert") else {
            return Err(UError::new(
                super::errors::INVALID_PARAMS,
                "Missing params [SSLContent]: give SSLContent, or UserCert with PrivateKey",
            ));
        };
        let key = ctx.params.required("PrivateKey")?;
        (user_cert.to_string(), ctx.params.get("CaCert").map(str::to_string), key.to_string())
    };
    let request = UploadRequest {
        name: name.to_string(),
        certificate_pem,
        chain_pem,
        private_key_pem,
        project_id: Some(ctx.project.id),
        // UCloud stores the same certificate twice if asked to (DuplicatePolicy::Allow,
        // which the control crate does not re-export by name).
        on_duplicate: serde_json::from_value(json!("allow"))
            .map_err(|e| UError::new(super::errors::INTERNAL, e.to_string()))?,
        allow_download: false,
        attributes: json!({"ucloud": {"SSLType": "Pem"}}),
    };
    let outcome = ctx.control.upload_certificate(&ctx.caller, &request, None)?;
    let mut fields = Fields::new();
    fields.insert("SSLId".into(), json!(ids::ssl(outcome.certificate.id)));
    Ok(fields)
}

/// Splits a UCloud `SSLContent` bundle (certificate, key and CA certificate, in any
/// order) into its certificates, in order, and its private key(s).
fn split_bundle(content: &str) -> (String, String) {
    let mut certs = String::new();
    let mut keys = String::new();
    let mut rest = content;
    let mut found = false;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else { break };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else { break };
        let block = &rest[start..start + end + end_marker.len()];
        let target = if label.contains("PRIVATE KEY") { &mut keys } else { &mut certs };
        target.push_str(block);
        target.push('\n');
        found = true;
        rest = &rest[start + end + end_marker.len()..];
    }
    if !found {
        // Not PEM at all: hand it over as the certificate, whose parser says what is wrong.
        return (content.to_string(), String::new());
    }
    (certs, keys)
}

pub fn describe_ssl(ctx: &Ctx) -> Result<Fields, UError> {
    describe(ctx, false)
}

pub fn describe_ssl_v2(ctx: &Ctx) -> Result<Fields, UError> {
    describe(ctx, true)
}

fn describe(ctx: &Ctx, v2: bool) -> Result<Fields, UError> {
    let certs = match ctx.params.get("SSLId") {
        Some(id) => vec![ctx.cert_by_id(id)?],
        None => {
            let filter = CertificateFilter { project_id: Some(ctx.project.id), ..Default::default() };
            ctx.control.list_certificates(&ctx.caller, &filter)?.0
        }
    };
    let (certs, total) = page(ctx, certs, 20)?;
    let mut lb_names: HashMap<LoadBalancerId, String> = HashMap::new();
    let mut data = Vec::with_capacity(certs.len());
    for cert in &certs {
        let mut item = ssl_set(cert);
        let mut targets = Vec::new();
        let mut relations = Vec::new();
        for (listener, binding) in ctx.control.certificate_bindings(&ctx.caller, cert.id)? {
            let lb_name = match lb_names.get(&listener.load_balancer_id) {
                Some(name) => name.clone(),
                None => {
                    let name = ctx.control.get_load_balancer(&ctx.caller, listener.load_balancer_id)?.name;
                    lb_names.insert(listener.load_balancer_id, name.clone());
                    name
                }
            };
            let ulb_id = ids::ulb(listener.load_balancer_id);
            let vserver_id = vserver::vserver_id(&listener);
            targets.push(json!({
                "ULBId": ulb_id, "ULBName": lb_name, "VServerId": vserver_id, "VServerName": listener.name,
            }));
            relations.push(json!({
                "LoadBalancerId": ulb_id,
                "LoadBalancerName": lb_name,
                "ListenerId": vserver_id,
                "ListenerName": listener.name,
                "IsDefault": binding.role == BindingRole::Default,
            }));
        }
        if v2 {
            item.insert("DNSNames".into(), json!(cert.host_names().join(",")));
            item.insert("Relations".into(), Value::Array(relations));
        } else {
            item.insert("BindedTargetSet".into(), Value::Array(targets));
        }
        data.push(Value::Object(item));
    }
    let mut fields = Fields::new();
    fields.insert("DataSet".into(), Value::Array(data));
    fields.insert("TotalCount".into(), json!(total));
    Ok(fields)
}

/// The fields UCloud shows of a certificate (never its key).
pub fn ssl_set(cert: &Certificate) -> Fields {
    let mut item = Fields::new();
    item.insert("SSLId".into(), json!(ids::ssl(cert.id)));
    item.insert("SSLName".into(), json!(cert.name));
    item.insert("SSLType".into(), json!("Pem"));
    item.insert("SSLContent".into(), json!(cert.chain_pem));
    item.insert("HashValue".into(), json!(cert.fingerprint_sha256));
    item.insert("Domains".into(), json!(cert.host_names().join(",")));
    item.insert("CreateTime".into(), json!(cert.created_at));
    item.insert("NotBefore".into(), json!(cert.not_before));
    item.insert("NotAfter".into(), json!(cert.not_after));
    item.insert("SSLSource".into(), json!(0));
    item.insert("USSLId".into(), json!(""));
    item
}

pub fn update_ssl_attribute(ctx: &Ctx) -> Result<Fields, UError> {
    let cert = ctx.cert("SSLId")?;
    let name = ctx.params.required("SSLName")?;
    ctx.control.update_certificate(&ctx.caller, cert.id, Some(name), None)?;
    Ok(Fields::new())
}

pub fn delete_ssl(ctx: &Ctx) -> Result<Fields, UError> {
    let cert = ctx.cert("SSLId")?;
    ctx.control.delete_certificate(&ctx.caller, cert.id)?;
    Ok(Fields::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_splits_into_certificates_and_key() {
        let bundle = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n\
                      -----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n\
                      -----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n";
        let (certs, key) = split_bundle(bundle);
        assert_eq!(
            certs,
            "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(key, "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n");
    }
}
