//! Certificates: upload (with a validate-only dry run), list, show, update, delete.

use super::error::ApiError;
use super::{check_limit, created, ok, parse_id, Authed, Page, WithOptions};
use axum::extract::Path;
use axum::response::Response;
use certbind_control::UploadRequest;
use certbind_core::ids::*;
use certbind_core::model::Certificate;
use certbind_core::now_unix;
use certbind_store::CertificateFilter;
use serde::{Deserialize, Serialize};

/// A certificate as the native API shows it: stored fields plus its validity now.
#[derive(Serialize)]
struct CertificateView {
    #[serde(flatten)]
    certificate: Certificate,
    host_names: Vec<String>,
    validity: certbind_core::model::Validity,
}

fn view(certificate: Certificate) -> CertificateView {
    CertificateView { host_names: certificate.host_names(), validity: certificate.validity(now_unix()), certificate }
}

pub async fn upload(authed: Authed) -> Result<Response, ApiError> {
    let body: WithOptions<UploadRequest> = authed.json()?;
    let WithOptions { request, options } = body;
    if options.dry_run {
        let parsed = authed.run(move |c, caller| c.check_upload(caller, &request)).await?;
        return Ok(ok(serde_json::json!({
            "dry_run": true,
            "common_name": parsed.common_name,
            "sans": parsed.sans,
            "not_before": parsed.not_before,
            "not_after": parsed.not_after,
            "fingerprint_sha256": parsed.fingerprint_sha256,
            "key_algorithm": parsed.key_algorithm,
            "key_bits": parsed.key_bits,
        })));
    }
    let outcome =
        authed.run(move |c, caller| c.upload_certificate(caller, &request, options.client_token.as_deref())).await?;
    Ok(created(serde_json::json!({
        "certificate": view(outcome.certificate),
        "duplicate_of": outcome.duplicate_of,
        "existing": outcome.existing,
    })))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    search: Option<String>,
    #[serde(default)]
    project_id: Option<ProjectId>,
    /// Only certificates expiring within this many days (expired ones included).
    #[serde(default)]
    expiring_within_days: Option<u32>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    offset: u64,
    #[serde(default = "super::default_limit")]
    limit: u64,
}

pub async fn list(authed: Authed) -> Result<Response, ApiError> {
    let q: ListQuery = authed.query()?;
    let limit = check_limit(q.limit)?;
    let sort_by_expiry = match q.sort.as_deref() {
        None | Some("id") => None,
        Some("expiry") => Some(true),
        Some("-expiry") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(
                "InvalidParameter",
                format!("sort must be id, expiry or -expiry, not {other:?}"),
            ))
        }
    };
    let filter = CertificateFilter {
        project_id: q.project_id,
        search: q.search,
        ids: Vec::new(),
        expiring_before: q.expiring_within_days.map(|d| now_unix() + i64::from(d) * 86_400),
        sort_by_expiry,
        offset: q.offset,
        limit,
    };
    let offset = q.offset;
    let (items, total) = authed.run(move |c, caller| c.list_certificates(caller, &filter)).await?;
    Ok(ok(Page { items: items.into_iter().map(view).collect(), total, offset, limit }))
}

pub async fn show(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, CertId::parse, "certificate")?;
    let (certificate, bindings) =
        authed.run(move |c, caller| Ok((c.get_certificate(caller, id)?, c.certificate_bindings(caller, id)?))).await?;
    let bindings: Vec<_> = bindings
        .into_iter()
        .map(|(listener, binding)| {
            serde_json::json!({
                "listener_id": listener.id,
                "load_balancer_id": listener.load_balancer_id,
                "protocol": listener.protocol,
                "port": listener.port,
                "role": binding.role,
                "status": binding.status,
            })
        })
        .collect();
    Ok(ok(serde_json::json!({ "certificate": view(certificate), "bindings": bindings })))
}

#[derive(Deserialize)]
struct CertificateUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    attributes: Option<serde_json::Value>,
}

pub async fn update(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, CertId::parse, "certificate")?;
    let body: CertificateUpdate = authed.json()?;
    let cert =
        authed.run(move |c, caller| c.update_certificate(caller, id, body.name.as_deref(), body.attributes)).await?;
    Ok(ok(view(cert)))
}

pub async fn delete(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, CertId::parse, "certificate")?;
    authed.run(move |c, caller| c.delete_certificate(caller, id)).await?;
    Ok(ok(serde_json::json!({ "deleted": id })))
}

pub async fn private_key(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, CertId::parse, "certificate")?;
    let key = authed.run(move |c, caller| c.certificate_private_key(caller, id)).await?;
    Ok(ok(serde_json::json!({ "certificate_id": id, "private_key_pem": key.as_str() })))
}
