//! Binding operations (each answers with a job, or a dry-run report) and job status.

use super::error::ApiError;
use super::{accepted, check_limit, ok, parse_id, Authed, Page, PageQuery, WithOptions};
use axum::extract::Path;
use axum::response::Response;
use certbind_control::{
    AssociateRequest, DissociateRequest, JobSubmission, OneClickUpdateRequest, ReplaceRequest, SetDefaultRequest,
};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_store::JobFilter;
use serde::Deserialize;

fn submitted(submission: JobSubmission) -> Response {
    if submission.dry_run {
        ok(submission)
    } else {
        accepted(submission)
    }
}

#[derive(Deserialize)]
struct CertificateBody {
    certificate_id: CertId,
}

#[derive(Deserialize)]
struct CertificatesBody {
    certificate_ids: Vec<CertId>,
}

pub async fn set_default(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let listener_id = parse_id(&id, ListenerId::parse, "listener")?;
    let body: WithOptions<CertificateBody> = authed.json()?;
    let request = SetDefaultRequest { listener_id, certificate_id: body.request.certificate_id };
    let o = body.options;
    let s = authed
        .run(move |c, caller| c.set_default_certificate(caller, &request, o.dry_run, o.client_token.as_deref()))
        .await?;
    Ok(submitted(s))
}

pub async fn associate(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let listener_id = parse_id(&id, ListenerId::parse, "listener")?;
    let body: WithOptions<CertificatesBody> = authed.json()?;
    let request = AssociateRequest { listener_id, certificate_ids: body.request.certificate_ids };
    let o = body.options;
    let s = authed
        .run(move |c, caller| c.associate_certificates(caller, &request, o.dry_run, o.client_token.as_deref()))
        .await?;
    Ok(submitted(s))
}

pub async fn dissociate(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let listener_id = parse_id(&id, ListenerId::parse, "listener")?;
    let body: WithOptions<CertificatesBody> = authed.json()?;
    let request = DissociateRequest { listener_id, certificate_ids: body.request.certificate_ids };
    let o = body.options;
    let s = authed
        .run(move |c, caller| c.dissociate_certificates(caller, &request, o.dry_run, o.client_token.as_deref()))
        .await?;
    Ok(submitted(s))
}

pub async fn replace(authed: Authed) -> Result<Response, ApiError> {
    let body: WithOptions<ReplaceRequest> = authed.json()?;
    let (request, o) = (body.request, body.options);
    let s = authed
        .run(move |c, caller| c.replace_certificate(caller, &request, o.dry_run, o.client_token.as_deref()))
        .await?;
    Ok(submitted(s))
}

pub async fn one_click_update(authed: Authed) -> Result<Response, ApiError> {
    let body: WithOptions<OneClickUpdateRequest> = authed.json()?;
    let (request, o) = (body.request, body.options);
    let s =
        authed.run(move |c, caller| c.one_click_update(caller, &request, o.dry_run, o.client_token.as_deref())).await?;
    Ok(submitted(s))
}

#[derive(Deserialize)]
struct JobQuery {
    #[serde(default)]
    state: Option<JobState>,
    #[serde(default)]
    kind: Option<JobKind>,
    // Not flattened: serde_urlencoded cannot parse numbers inside a flattened struct.
    #[serde(default)]
    offset: u64,
    #[serde(default = "super::default_limit")]
    limit: u64,
}

pub async fn list(authed: Authed) -> Result<Response, ApiError> {
    let q: JobQuery = authed.query()?;
    let limit = check_limit(q.limit)?;
    let filter = JobFilter { state: q.state, kind: q.kind, old_cert_id: None, offset: q.offset, limit };
    let (items, total) = authed.run(move |c, caller| c.list_jobs(caller, &filter)).await?;
    Ok(ok(Page { items, total, offset: q.offset, limit }))
}

pub async fn show(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, JobId::parse, "job")?;
    let job = authed.run(move |c, caller| c.get_job(caller, id)).await?;
    Ok(ok(job))
}

pub async fn targets(Path(id): Path<String>, authed: Authed) -> Result<Response, ApiError> {
    let id = parse_id(&id, JobId::parse, "job")?;
    let q: PageQuery = authed.query()?;
    let limit = check_limit(q.limit)?;
    let offset = q.offset;
    let (items, total) = authed
        .run(move |c, caller| {
            let job = c.get_job(caller, id)?;
            Ok((c.job_targets(caller, id, offset, limit)?, job.counts.total))
        })
        .await?;
    Ok(ok(Page { items, total, offset, limit }))
}
