//! CAS 2020-04-07: uploaded certificates. `CertId` is the core certificate's integer id,
//! the same certificate every other dialect sees.

use super::errors::{AliError, AliResult};
use super::ids;
use super::Ctx;
use certbind_control::UploadRequest;
use certbind_core::ids::CertId;
use certbind_core::model::{Certificate, KeyAlgorithm, Validity};
use certbind_store::CertificateFilter;
use serde_json::{json, Value};

pub const ACTIONS: &[&str] =
    &["UploadUserCertificate", "GetUserCertificateDetail", "ListUserCertificateOrder", "DeleteUserCertificate"];

pub async fn handle(ctx: &Ctx, action: &str) -> AliResult<Value> {
    match action {
        "UploadUserCertificate" => upload(ctx).await,
        "GetUserCertificateDetail" => detail(ctx).await,
        "ListUserCertificateOrder" => list(ctx).await,
        "DeleteUserCertificate" => delete(ctx).await,
        _ => Err(AliError::new(404, "InvalidAction.NotFound", "Specified api is not found.")),
    }
}

fn cert_id(ctx: &Ctx) -> AliResult<CertId> {
    let id: i64 = ctx.params.int("CertId")?.ok_or_else(|| AliError::missing("CertId"))?;
    if id <= 0 {
        return Err(AliError::illegal("CertId", "must be a positive integer"));
    }
    Ok(CertId(id))
}

async fn upload(ctx: &Ctx) -> AliResult<Value> {
    let name = ctx.params.required("Name")?.to_string();
    if name.chars().count() > 63 {
        return Err(AliError::illegal("Name", "at most 63 characters"));
    }
    let cert = ctx.params.required("Cert")?.to_string();
    let key = ctx.params.required("Key")?.to_string();
    let token = ctx.params.client_token()?;
    // CAS stores a second copy of a certificate uploaded twice (under its own CertId).
    // `DuplicatePolicy` is not re-exported by the control crate, so the request is built
    // from its serialized form.
    let request: UploadRequest = serde_json::from_value(json!({
        "name": name,
        "certificate_pem": cert,
        "private_key_pem": key,
        "on_duplicate": "allow",
    }))
    .map_err(|_| AliError::internal("could not build the upload request"))?;
    let outcome = ctx.run(move |c, caller| c.upload_certificate(caller, &request, token.as_deref())).await?;
    let id = outcome.certificate.id.0;
    Ok(json!({ "CertId": id, "ResourceId": format!("cas-upload-{id}") }))
}

fn algorithm(cert: &Certificate) -> &'static str {
    match cert.key_algorithm {
        KeyAlgorithm::Rsa => "RSA",
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => "ECC",
    }
}

fn common(cert: &Certificate) -> String {
    cert.common_name.clone().or_else(|| cert.sans.first().cloned()).unwrap_or_default()
}

fn expired(cert: &Certificate) -> bool {
    cert.validity(certbind_core::now_unix()) == Validity::Expired
}

async fn detail(ctx: &Ctx) -> AliResult<Value> {
    let id = cert_id(ctx)?;
    let filter = ctx.params.bool("CertFilter")?.unwrap_or(false);
    let cert = ctx.run(move |c, caller| c.get_certificate(caller, id)).await?;
    let mut body = json!({
        "Id": cert.id.0,
        "Name": cert.name,
        "Common": common(&cert),
        "CommonName": common(&cert),
        "Sans": cert.sans.join(","),
        "Issuer": cert.issuer,
        "IssuerCommonName": cert.issuer,
        "SerialNo": cert.serial,
        "Fingerprint": cert.fingerprint_sha256.to_ascii_uppercase(),
        "Algorithm": algorithm(&cert),
        "StartDate": ids::date(cert.not_before),
        "EndDate": ids::date(cert.not_after),
        "NotBefore": cert.not_before * 1000,
        "NotAfter": cert.not_after * 1000,
        "Expired": expired(&cert),
        "RemainDay": ((cert.not_after - certbind_core::now_unix()) / 86400).max(0),
        "BuyInAliyun": false,
    });
    if !filter {
        // The chain only: private keys never leave certbind (GUIDE rule 7).
        body["Cert"] = Value::String(cert.chain_pem.clone());
    }
    Ok(body)
}

async fn list(ctx: &Ctx) -> AliResult<Value> {
    let page = ctx.params.int_in("CurrentPage", 1, 1_000_000, 1)?;
    let size = ctx.params.int_in("ShowSize", 1, 500, 50)?;
    let order_type = ctx.params.get("OrderType").unwrap_or("UPLOAD").to_ascii_uppercase();
    let keyword = ctx.params.get("Keyword").map(str::to_string);
    let status = ctx.params.get("Status").map(str::to_ascii_uppercase);
    if !matches!(order_type.as_str(), "UPLOAD" | "CERT" | "CPACK" | "BUY") {
        return Err(AliError::illegal("OrderType", "must be CPACK, BUY, UPLOAD or CERT"));
    }
    if order_type == "CPACK" || order_type == "BUY" {
        // certbind sells nothing: there are no purchased certificates.
        return Ok(json!({ "CertificateOrderList": [], "TotalCount": 0, "CurrentPage": page, "ShowSize": size }));
    }
    let filter = CertificateFilter { search: keyword, offset: (page - 1) * size, limit: size, ..Default::default() };
    let (certs, total) = ctx.run(move |c, caller| c.list_certificates(caller, &filter)).await?;
    let list: Vec<Value> = certs
        .iter()
        .filter(|cert| match status.as_deref() {
            Some("EXPIRED") => expired(cert),
            Some("ISSUED") => !expired(cert),
            _ => true,
        })
        .map(|cert| {
            json!({
                "CertificateId": cert.id.0,
                "InstanceId": format!("cas-upload-{}", cert.id.0),
                "Name": cert.name,
                "CommonName": common(cert),
                "Sans": cert.sans.join(","),
                "Issuer": cert.issuer,
                "SerialNo": cert.serial,
                "Fingerprint": cert.fingerprint_sha256.to_ascii_uppercase(),
                "Algorithm": algorithm(cert),
                "StartDate": ids::date(cert.not_before),
                "EndDate": ids::date(cert.not_after),
                "CertStartTime": cert.not_before * 1000,
                "CertEndTime": cert.not_after * 1000,
                "Expired": expired(cert),
                "Status": if expired(cert) { "EXPIRED" } else { "ISSUED" },
                "Upload": true,
                "SourceType": "upload",
                "CertType": "Upload",
            })
        })
        .collect();
    Ok(json!({ "CertificateOrderList": list, "TotalCount": total, "CurrentPage": page, "ShowSize": size }))
}

async fn delete(ctx: &Ctx) -> AliResult<Value> {
    let id = cert_id(ctx)?;
    ctx.run(move |c, caller| c.delete_certificate(caller, id)).await?;
    Ok(json!({}))
}
