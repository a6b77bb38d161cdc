//! SSL certificate service (2019-12-05): certificates, and the one-click update of every
//! listener bound to an old certificate with its deploy records.
//!
//! Deploy records are core jobs (`DeployRecordId` is the job id) of kind one_click_update;
//! a record's per-listener details are the job's targets (detail id = job id × 10^7 +
//! target seq). Retry and rollback make new records through `replace_on_listeners`,
//! labelled `tc-retry:<id>` / `tc-rollback:<id>` in the job's client token.

use super::errors::{TcError, TcResult};
use super::{ids, invalid_action, tc_time, Answer, Ctx};
use base64::Engine;
use certbind_control::{ListenerReplaceRequest, NewCertificateSource, OneClickUpdateRequest, UploadRequest};
use certbind_core::ids::{CertId, JobId, ListenerId};
use certbind_core::model::*;
use certbind_core::{now_unix, CoreError};
use certbind_store::{CertificateFilter, JobFilter};
use serde_json::{json, Value};

/// The old certificate's attribute naming the record created by a first
/// `UpdateCertificateInstance` call and not yet handed out: `[job id, unix time]`.
const PENDING_RECORD: &str = "TencentPendingDeployRecord";
/// How long an uncollected record blocks other updates of the same old certificate.
const PENDING_RECORD_TTL: i64 = 600;
const DETAIL_FACTOR: i64 = 10_000_000;
const EXPIRING_WINDOW: i64 = 30 * 86400;
const ROLLBACK_LABEL: &str = "tc-rollback:";

/// The actions of this service that change something (the rest only read).
pub const WRITES: &[&str] = &[
    "UploadCertificate",
    "DeleteCertificate",
    "UpdateCertificateInstance",
    "UpdateCertificateRecordRetry",
    "UpdateCertificateRecordRollback",
];

pub fn dispatch(action: &str, ctx: &Ctx) -> TcResult<Answer> {
    match action {
        "UploadCertificate" => upload_certificate(ctx),
        "DescribeCertificates" => describe_certificates(ctx),
        "DescribeCertificateDetail" => describe_certificate_detail(ctx),
        "DeleteCertificate" => delete_certificate(ctx),
        "UpdateCertificateInstance" => update_certificate_instance(ctx),
        "DescribeHostUpdateRecord" => describe_host_update_record(ctx),
        "DescribeHostUpdateRecordDetail" => describe_host_update_record_detail(ctx),
        "UpdateCertificateRecordRetry" => retry(ctx),
        "UpdateCertificateRecordRollback" => rollback(ctx),
        other => Err(invalid_action(other)),
    }
}

/// A certificate id parameter; a string that cannot be one of ours names no certificate.
fn cert_param(ctx: &Ctx, name: &str) -> TcResult<CertId> {
    let text = ctx.params.req_str(name)?;
    ids::parse_cert(&text).ok_or_else(|| not_found_cert(&text))
}

fn not_found_cert(text: &str) -> TcError {
    TcError::new("FailedOperation.CertificateNotFound", format!("certificate {text:?} does not exist"))
}

/// Tencent attributes kept with a certificate: `ProjectId` and `Tags` as given.
fn tencent_attributes(ctx: &Ctx) -> TcResult<Value> {
    let mut attributes = serde_json::Map::new();
    if let Some(project) = ctx.params.int("ProjectId")? {
        if project < 0 {
            return Err(TcError::invalid_value("ProjectId", "must not be negative"));
        }
        attributes.insert("ProjectId".into(), json!(project));
    }
    if let Some(tags) = ctx.params.raw("Tags") {
        for tag in ctx.params.obj_list("Tags")? {
            tag.allow(&["TagKey", "TagValue"])?;
            tag.req_str("TagKey")?;
        }
        attributes.insert("Tags".into(), tags);
    }
    Ok(Value::Object(attributes))
}

fn upload_request(
    name: &str,
    public_key: &str,
    private_key: &str,
    on_duplicate: &str,
    allow_download: bool,
    attributes: Value,
) -> TcResult<UploadRequest> {
    // DuplicatePolicy is not re-exported by the control crate: build through serde.
    serde_json::from_value(json!({
        "name": name,
        "certificate_pem": public_key,
        "private_key_pem": private_key,
        "on_duplicate": on_duplicate,
        "allow_download": allow_download,
        "attributes": attributes,
    }))
    .map_err(|_| TcError::new("InternalError", "an internal error occurred"))
}

fn upload_certificate(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&[
        "CertificatePublicKey",
        "CertificatePrivateKey",
        "CertificateType",
        "Alias",
        "ProjectId",
        "CertificateUse",
        "Tags",
        "Repeatable",
        "KeyPassword",
    ])?;
    let public_key = p.req_str("CertificatePublicKey")?;
    match p.str("CertificateType")?.as_deref() {
        None | Some("SVR") | Some("") => {}
        Some("CA") => {
            return Err(TcError::invalid_value("CertificateType", "client CA certificates are not supported; use SVR"))
        }
        Some(_) => return Err(TcError::invalid_value("CertificateType", "must be SVR or CA")),
    }
    let private_key = p.req_str("CertificatePrivateKey")?;
    if p.str("KeyPassword")?.is_some_and(|k| !k.is_empty()) {
        return Err(TcError::invalid_value("KeyPassword", "encrypted private keys are not supported"));
    }
    let alias = p.str("Alias")?.unwrap_or_default();
    let repeatable = p.bool("Repeatable")?.unwrap_or(true);
    let mut attributes = tencent_attributes(ctx)?;
    if let (Some(usage), Value::Object(map)) = (p.str("CertificateUse")?, &mut attributes) {
        map.insert("CertificateUse".into(), json!(usage));
    }
    let request = upload_request(
        &alias,
        &public_key,
        &private_key,
        if repeatable { "allow" } else { "return_existing" },
        false,
        attributes,
    )?;
    let outcome = ctx.control.upload_certificate(ctx.caller, &request, None)?;
    let id = ids::cert(outcome.certificate.id);
    if outcome.existing {
        return Answer::new(json!({ "CertificateId": id, "RepeatCertId": id }));
    }
    Answer::new(json!({ "CertificateId": id, "RepeatCertId": Value::Null }))
}

fn encrypt_algorithm(a: KeyAlgorithm) -> &'static str {
    match a {
        KeyAlgorithm::Rsa => "RSA",
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => "ECC",
    }
}

fn main_domain(cert: &Certificate) -> String {
    cert.common_name.clone().or_else(|| cert.sans.first().cloned()).unwrap_or_default()
}

fn ignored(cert: &Certificate) -> bool {
    cert.attributes.get("ExpiringNotificationSwitch").and_then(Value::as_i64) == Some(1)
}

fn project_of(cert: &Certificate) -> String {
    cert.attributes.get("ProjectId").and_then(Value::as_i64).unwrap_or(0).to_string()
}

/// The fields `DescribeCertificates` and `DescribeCertificateDetail` share.
fn certificate_fields(cert: &Certificate, now: i64) -> serde_json::Map<String, Value> {
    let expired = cert.not_after < now;
    let domain = main_domain(cert);
    let value = json!({
        "OwnerUin": cert.account_id.0.to_string(),
        "ProjectId": project_of(cert),
        "From": "upload",
        "CertificateType": "SVR",
        "PackageType": Value::Null,
        "Domain": domain,
        "Alias": cert.name,
        "Status": if expired { 3 } else { 1 },
        "StatusName": if expired { "expired" } else { "issued" },
        "StatusMsg": "",
        "VerifyType": "",
        "VulnerabilityStatus": "INACTIVE",
        "CertBeginTime": tc_time(cert.not_before),
        "CertEndTime": tc_time(cert.not_after),
        "ValidityPeriod": ((cert.not_after - cert.not_before).max(0) / (30 * 86400)).to_string(),
        "InsertTime": tc_time(cert.created_at),
        "CertificateId": ids::cert(cert.id),
        "IsVip": false,
        "IsDv": false,
        "IsWildcard": domain.starts_with("*."),
        "IsVulnerability": false,
        "RenewAble": false,
        "Deployable": !expired,
        "Tags": cert.attributes.get("Tags").cloned().unwrap_or(json!([])),
        "IsIgnore": ignored(cert),
        "IsSM": false,
        "EncryptAlgorithm": encrypt_algorithm(cert.key_algorithm),
        "IsExpiring": !expired && cert.not_after - now < EXPIRING_WINDOW,
        "AllowDownload": cert.allow_download,
        "HostingStatus": -1,
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn describe_certificates(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&[
        "Offset",
        "Limit",
        "SearchKey",
        "CertificateType",
        "ProjectId",
        "ExpirationSort",
        "CertificateStatus",
        "Deployable",
        "Upload",
        "Renew",
        "FilterSource",
        "IsSM",
        "FilterExpiring",
        "Hostable",
        "Tags",
        "IsPendingIssue",
        "CertIds",
        "ServiceId",
    ])?;
    let offset = p.int("Offset")?.unwrap_or(0);
    if offset < 0 {
        return Err(TcError::invalid_value("Offset", "must not be negative"));
    }
    let limit = p.int("Limit")?.unwrap_or(10);
    if limit < 0 {
        return Err(TcError::invalid_value("Limit", "must not be negative"));
    }
    let limit = limit.clamp(1, 1000) as u64;
    let now = now_unix();
    let mut filter = CertificateFilter { offset: offset as u64, limit, ..Default::default() };
    if let Some(key) = p.str("SearchKey")?.filter(|k| !k.is_empty()) {
        // An exact certificate id finds that certificate; anything else matches names.
        match ids::parse_cert(&key).filter(|id| ctx.control.get_certificate(ctx.caller, *id).is_ok()) {
            Some(id) => filter.ids = vec![id],
            None => filter.search = Some(key),
        }
    }
    let cert_ids = p.str_list("CertIds")?;
    if !cert_ids.is_empty() {
        let mut wanted = Vec::new();
        for text in &cert_ids {
            let id = ids::parse_cert(text).ok_or_else(|| {
                TcError::new(
                    "InvalidParameter.ContainsInvalidCertificateId",
                    format!("{text:?} is not a certificate id"),
                )
            })?;
            wanted.push(id);
        }
        if !filter.ids.is_empty() {
            wanted.retain(|id| filter.ids.contains(id));
            if wanted.is_empty() {
                return Answer::new(json!({ "TotalCount": 0, "Certificates": [] }));
            }
        }
        filter.ids = wanted;
    }
    match p.str("ExpirationSort")?.as_deref() {
        None | Some("") => {}
        Some(s) if s.eq_ignore_ascii_case("ASC") => filter.sort_by_expiry = Some(true),
        Some(s) if s.eq_ignore_ascii_case("DESC") => filter.sort_by_expiry = Some(false),
        Some(_) => return Err(TcError::invalid_value("ExpirationSort", "must be ASC or DESC")),
    }
    let (certs, total) = if p.int("FilterExpiring")? == Some(1) {
        // Expiring soon and still valid, minus those whose expiry reminder is switched off
        // (ExpiringNotificationSwitch=1): filtered here, then paged.
        filter.expiring_before = Some(now + EXPIRING_WINDOW);
        let (offset, limit) = (filter.offset as usize, filter.limit as usize);
        filter.offset = 0;
        filter.limit = 1000;
        let (all, _) = ctx.control.list_certificates(ctx.caller, &filter)?;
        let kept: Vec<Certificate> = all.into_iter().filter(|c| c.not_after >= now && !ignored(c)).collect();
        let total = kept.len() as u64;
        (kept.into_iter().skip(offset).take(limit).collect(), total)
    } else {
        ctx.control.list_certificates(ctx.caller, &filter)?
    };
    let list: Vec<Value> = certs
        .iter()
        .map(|c| {
            let mut fields = certificate_fields(c, now);
            let mut names = c.sans.clone();
            let domain = main_domain(c);
            if !domain.is_empty() && !names.contains(&domain) {
                names.insert(0, domain);
            }
            fields.insert("SubjectAltName".into(), json!(names));
            fields.insert("CertSANs".into(), json!(c.sans));
            Value::Object(fields)
        })
        .collect();
    Answer::new(json!({ "TotalCount": total, "Certificates": list }))
}

/// SHA-1 of the leaf's DER, uppercase hex with colons (as the console shows it).
fn sha1_fingerprint(chain_pem: &str) -> Option<String> {
    let start = chain_pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = chain_pem[start..].find("-----END CERTIFICATE-----")? + start;
    let b64: String = chain_pem[start..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let hash = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    Some(hash.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

fn describe_certificate_detail(ctx: &Ctx) -> TcResult<Answer> {
    ctx.params.allow(&["CertificateId"])?;
    let id = cert_param(ctx, "CertificateId")?;
    let cert = ctx.control.get_certificate(ctx.caller, id)?;
    let mut fields = certificate_fields(&cert, now_unix());
    let domain = main_domain(&cert);
    let others: Vec<&String> = cert.sans.iter().filter(|s| **s != domain).collect();
    fields.insert("SubjectAltName".into(), json!(others));
    fields.insert("CertificatePublicKey".into(), json!(cert.chain_pem));
    // The private key only for a certificate uploaded with AllowDownload.
    let private_key =
        if cert.allow_download { Some(ctx.control.certificate_private_key(ctx.caller, id)?.to_string()) } else { None };
    fields.insert("CertificatePrivateKey".into(), json!(private_key));
    fields.insert("CertFingerprint".into(), json!(sha1_fingerprint(&cert.chain_pem)));
    fields.insert("DomainType".into(), json!(if cert.sans.len() > 1 { 2 } else { 1 }));
    fields.insert("CertType".into(), json!("DV"));
    fields.insert("RootCert".into(), Value::Null);
    Answer::new(Value::Object(fields))
}

fn delete_certificate(ctx: &Ctx) -> TcResult<Answer> {
    ctx.params.allow(&["CertificateId", "IsCheckResource"])?;
    let id = cert_param(ctx, "CertificateId")?;
    ctx.params.bool("IsCheckResource")?;
    ctx.control.delete_certificate(ctx.caller, id)?;
    Answer::new(json!({ "DeleteResult": true, "TaskId": Value::Null }))
}

// ---- one-click update and deploy records ----

fn group_status(pending: u64, running: u64, done: u64) -> i64 {
    if pending + running == 0 {
        1
    } else if running + done > 0 {
        3
    } else {
        0
    }
}

/// `UpdateSyncProgress`: one `clb` entry with a line per region.
fn progress(job: &Job) -> Value {
    let mut regions: Vec<(String, TargetCounts)> = Vec::new();
    for group in &job.groups {
        match regions.iter_mut().find(|(r, _)| *r == group.region) {
            Some((_, counts)) => {
                counts.total += group.counts.total;
                counts.pending += group.counts.pending;
                counts.running += group.counts.running;
                counts.succeeded += group.counts.succeeded;
                counts.failed += group.counts.failed;
            }
            None => regions.push((group.region.clone(), group.counts.clone())),
        }
    }
    let lines: Vec<Value> = regions
        .iter()
        .map(|(region, c)| {
            json!({
                "Region": region,
                "TotalCount": c.total,
                "OffsetCount": c.succeeded + c.failed,
                "Status": group_status(c.pending, c.running, c.succeeded + c.failed),
            })
        })
        .collect();
    let c = &job.counts;
    json!([{
        "ResourceType": "clb",
        "UpdateSyncProgressRegions": lines,
        "Status": group_status(c.pending, c.running, c.succeeded + c.failed),
    }])
}

fn is_rollback(job: &Job) -> bool {
    job.client_token.as_deref().is_some_and(|t| t.starts_with(ROLLBACK_LABEL))
}

/// A record's status (and a detail's): 0 pending, 1 success, 2 failed, 3 deploying, 4
/// rollback succeeded, 5 rollback failed.
fn record_status(job: &Job) -> i64 {
    match (job.state, is_rollback(job)) {
        (JobState::Pending, _) => 0,
        (JobState::Running, _) => 3,
        (JobState::Succeeded, false) => 1,
        (JobState::Failed, false) => 2,
        (JobState::Succeeded, true) => 4,
        (JobState::Failed, true) => 5,
    }
}

fn target_status(job: &Job, status: TargetStatus) -> i64 {
    match (status, is_rollback(job)) {
        (TargetStatus::Pending, _) => 0,
        (TargetStatus::Running, _) => 3,
        (TargetStatus::Succeeded, false) => 1,
        (TargetStatus::Failed, false) => 2,
        (TargetStatus::Succeeded, true) => 4,
        (TargetStatus::Failed, true) => 5,
    }
}

fn update_answer(record: i64, status: Option<i64>, job: &Job) -> TcResult<Answer> {
    Answer::new(json!({
        "DeployRecordId": record,
        "DeployStatus": status,
        "UpdateSyncProgress": progress(job),
    }))
}

fn fingerprint_of(ctx: &Ctx, id: Option<CertId>) -> Option<String> {
    id.and_then(|id| ctx.control.get_certificate(ctx.caller, id).ok()).map(|c| c.fingerprint_sha256)
}

fn update_certificate_instance(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&[
        "OldCertificateId",
        "ResourceTypes",
        "CertificateId",
        "Regions",
        "ResourceTypesRegions",
        "CertificatePublicKey",
        "CertificatePrivateKey",
        "ExpiringNotificationSwitch",
        "Repeatable",
        "AllowDownload",
        "Tags",
        "ProjectId",
    ])?;
    let old_text = p.req_str("OldCertificateId")?;
    let types = p.str_list("ResourceTypes")?;
    if types.is_empty() {
        return Err(TcError::missing("ResourceTypes"));
    }
    let unsupported = |t: &str| {
        TcError::new(
            "FailedOperation.CertificateHostResourceTypeInvalid",
            format!("resource type {t:?} is not served here; certbind load balancers are `clb`"),
        )
    };
    if let Some(other) = types.iter().find(|t| !t.eq_ignore_ascii_case("clb")) {
        return Err(unsupported(other));
    }
    let mut regions = Vec::new();
    let per_type = p.obj_list("ResourceTypesRegions")?;
    for entry in &per_type {
        entry.allow(&["ResourceType", "Regions"])?;
        let resource_type = entry.req_str("ResourceType")?;
        if !resource_type.eq_ignore_ascii_case("clb") {
            return Err(unsupported(&resource_type));
        }
        regions.extend(entry.str_list("Regions")?);
    }
    if per_type.is_empty() {
        regions = p.str_list("Regions")?;
    }
    let switch = p.int("ExpiringNotificationSwitch")?;
    if switch.is_some_and(|s| s != 0 && s != 1) {
        return Err(TcError::invalid_value("ExpiringNotificationSwitch", "must be 0 or 1"));
    }
    let new_id = p.str("CertificateId")?.filter(|s| !s.is_empty());
    let public_key = p.str("CertificatePublicKey")?.filter(|s| !s.is_empty());
    let private_key = p.str("CertificatePrivateKey")?.filter(|s| !s.is_empty());
    let old_id = ids::parse_cert(&old_text).ok_or_else(|| not_found_cert(&old_text))?;
    let old = ctx.control.get_certificate(ctx.caller, old_id)?;
    let (source, new_fingerprint) = match (new_id, public_key, private_key) {
        (Some(text), None, None) => {
            let id = ids::parse_cert(&text).ok_or_else(|| not_found_cert(&text))?;
            let cert = ctx.control.get_certificate(ctx.caller, id)?;
            (NewCertificateSource::Id(id), cert.fingerprint_sha256)
        }
        (None, Some(public_key), Some(private_key)) => {
            let repeatable = p.bool("Repeatable")?.unwrap_or(true);
            let request = upload_request(
                "",
                &public_key,
                &private_key,
                if repeatable { "allow" } else { "refuse" },
                p.bool("AllowDownload")?.unwrap_or(false),
                tencent_attributes(ctx)?,
            )?;
            // Parses, matches the key, checks the chain and (Repeatable=false) duplicates.
            let parsed = ctx.control.check_upload(ctx.caller, &request)?;
            (NewCertificateSource::Upload(request), parsed.fingerprint_sha256.clone())
        }
        (Some(_), _, _) => {
            return Err(TcError::new(
                "InvalidParameter.WithDetailReason",
                "give either CertificateId or CertificatePublicKey and CertificatePrivateKey, not both",
            ))
        }
        (None, Some(_), None) => return Err(TcError::missing("CertificatePrivateKey")),
        (None, None, Some(_)) => return Err(TcError::missing("CertificatePublicKey")),
        (None, None, None) => return Err(TcError::missing("CertificateId")),
    };
    let now = now_unix();

    // A record created by an earlier call and not yet handed out: the same update gets
    // its id now; a different one waits.
    let marker = old
        .attributes
        .get(PENDING_RECORD)
        .and_then(Value::as_array)
        .and_then(|a| Some((a.first()?.as_i64()?, a.get(1)?.as_i64()?)));
    if let Some((record, _)) = marker.filter(|(_, at)| now - at < PENDING_RECORD_TTL) {
        if let Ok(job) = ctx.control.get_job(ctx.caller, JobId(record)) {
            if fingerprint_of(ctx, job.new_cert_id).as_deref() == Some(new_fingerprint.as_str()) {
                ctx.control.update_certificate(ctx.caller, old_id, None, Some(json!({ PENDING_RECORD: null })))?;
                return update_answer(record, Some(1), &job);
            }
            return Err(TcError::new(
                "FailedOperation.CertificateDeployHasPendingRecord",
                format!("deploy record {record} for this certificate is still being created; call again with the same parameters or wait"),
            ));
        }
    }
    // A running record for the same old certificate: no new task.
    let filter =
        JobFilter { old_cert_id: Some(old_id), kind: Some(JobKind::OneClickUpdate), limit: 50, ..Default::default() };
    let (jobs, _) = ctx.control.list_jobs(ctx.caller, &filter)?;
    if let Some(running) = jobs.iter().find(|j| !j.state.is_final()) {
        return update_answer(running.id.0, Some(0), running);
    }
    // Another kind of change to the old certificate still running (a replace through
    // another dialect, say): it is not a deploy record whose id could be returned.
    let others = JobFilter { old_cert_id: Some(old_id), limit: 50, ..Default::default() };
    if let Some(other) = ctx.control.list_jobs(ctx.caller, &others)?.0.iter().find(|j| !j.state.is_final()) {
        return Err(TcError::new(
            "FailedOperation.CertificateDeployHasPendingRecord",
            format!(
                "another change of this certificate (task {}) is still running; try again when it is done",
                other.id.0
            ),
        ));
    }
    let request = OneClickUpdateRequest {
        old_certificate_id: old_id,
        new_certificate: source,
        resource_types: LbType::ALL.to_vec(),
        regions,
    };
    let submission = ctx.control.one_click_update(ctx.caller, &request, false, None)?;
    let job_id = submission.job_id.ok_or_else(|| CoreError::Internal("one-click update made no job".into()))?;
    let mut attributes = json!({ PENDING_RECORD: [job_id.0, now] });
    if let Some(switch) = switch {
        attributes["ExpiringNotificationSwitch"] = json!(switch);
    }
    ctx.control.update_certificate(ctx.caller, old_id, None, Some(attributes))?;
    let job = ctx.control.get_job(ctx.caller, job_id)?;
    update_answer(0, None, &job)
}

fn record_regions(job: &Job) -> Vec<String> {
    let mut regions: Vec<String> = Vec::new();
    for g in &job.groups {
        if !regions.contains(&g.region) {
            regions.push(g.region.clone());
        }
    }
    regions
}

fn job_time(job: &Job) -> (String, String) {
    let updated = job.finished_at.or(job.started_at).unwrap_or(job.created_at);
    (tc_time(job.created_at), tc_time(updated))
}

fn cert_text(id: Option<CertId>) -> Value {
    id.map(|c| json!(ids::cert(c))).unwrap_or(Value::Null)
}

fn describe_host_update_record(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&["Offset", "Limit", "CertificateId", "OldCertificateId"])?;
    let offset = p.int("Offset")?.unwrap_or(0).max(0) as u64;
    let limit = p.int("Limit")?.unwrap_or(10).clamp(1, 1000) as u64;
    let empty = || Answer::new(json!({ "TotalCount": 0, "DeployRecordList": [] }));
    let mut filter = JobFilter { kind: Some(JobKind::OneClickUpdate), offset, limit, ..Default::default() };
    if let Some(text) = p.str("OldCertificateId")?.filter(|s| !s.is_empty()) {
        match ids::parse_cert(&text) {
            Some(id) => filter.old_cert_id = Some(id),
            None => return empty(),
        }
    }
    let (jobs, total) = match p.str("CertificateId")?.filter(|s| !s.is_empty()) {
        Some(text) => {
            let Some(new) = ids::parse_cert(&text) else { return empty() };
            filter.offset = 0;
            filter.limit = 1000;
            let (all, _) = ctx.control.list_jobs(ctx.caller, &filter)?;
            let matching: Vec<Job> = all.into_iter().filter(|j| j.new_cert_id == Some(new)).collect();
            let total = matching.len() as u64;
            (matching.into_iter().skip(offset as usize).take(limit as usize).collect(), total)
        }
        None => ctx.control.list_jobs(ctx.caller, &filter)?,
    };
    let list: Vec<Value> = jobs
        .iter()
        .map(|job| {
            let (created, updated) = job_time(job);
            json!({
                "Id": job.id.0,
                "CertId": cert_text(job.new_cert_id),
                "OldCertId": cert_text(job.old_cert_id),
                "ResourceTypes": ["clb"],
                "Regions": record_regions(job),
                "Status": record_status(job),
                "CreateTime": created,
                "UpdateTime": updated,
            })
        })
        .collect();
    Answer::new(json!({ "TotalCount": total, "DeployRecordList": list }))
}

/// A deploy record: a one-click update job of the caller's.
fn record(ctx: &Ctx, id: i64) -> TcResult<Job> {
    let not_found =
        || TcError::new("FailedOperation.CertificateDeployNotExist", format!("deploy record {id} does not exist"));
    if id <= 0 {
        return Err(not_found());
    }
    match ctx.control.get_job(ctx.caller, JobId(id)) {
        Ok(job) if job.kind == JobKind::OneClickUpdate => Ok(job),
        Ok(_) | Err(CoreError::NotFound { .. }) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

fn all_targets(ctx: &Ctx, job: JobId) -> TcResult<Vec<JobTarget>> {
    let mut out = Vec::new();
    loop {
        let page = ctx.control.job_targets(ctx.caller, job, out.len() as u64, 1000)?;
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

fn describe_host_update_record_detail(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&["DeployRecordId", "Limit", "Offset"])?;
    let id = p.int("DeployRecordId")?.ok_or_else(|| TcError::missing("DeployRecordId"))?;
    let limit = p.int("Limit")?.unwrap_or(10).clamp(1, 200) as u64;
    let offset = p.int("Offset")?.unwrap_or(0).max(0) as u64;
    let job = record(ctx, id)?;
    let targets = ctx.control.job_targets(ctx.caller, job.id, offset, limit)?;
    let algorithm = |id: Option<CertId>| {
        id.and_then(|c| ctx.control.get_certificate(ctx.caller, c).ok()).map(|c| encrypt_algorithm(c.key_algorithm))
    };
    let (new_algorithm, old_algorithm) = (algorithm(job.new_cert_id), algorithm(job.old_cert_id));
    let (created, updated) = job_time(&job);
    let mut list = Vec::new();
    for t in &targets {
        let listener = ctx.control.get_listener(ctx.caller, t.listener_id).ok();
        let lb = ctx.control.get_load_balancer(ctx.caller, t.load_balancer_id).ok();
        list.push(json!({
            "Id": job.id.0 * DETAIL_FACTOR + t.seq,
            "CertId": cert_text(t.new_cert_id),
            "OldCertId": cert_text(t.old_cert_id),
            "Domains": [],
            "ResourceType": "clb",
            "Region": t.region,
            "Status": target_status(&job, t.status),
            "ErrorMsg": t.error,
            "CreateTime": created,
            "UpdateTime": updated,
            "InstanceId": ids::lb(t.load_balancer_id),
            "InstanceName": lb.as_ref().map(|l| l.name.clone()),
            "ListenerId": ids::listener(t.listener_id),
            "ListenerName": listener.as_ref().map(|l| l.listener.name.clone()),
            "Protocol": listener.as_ref().map(|l| super::clb::protocol_name(l.listener.protocol)),
            "Port": listener.as_ref().map(|l| l.listener.port),
            "SniSwitch": 0,
            "Url": "",
            "Algorithm": new_algorithm,
            "OldAlgorithm": old_algorithm,
            "InstanceStatus": if lb.is_some() { "1" } else { "deleted" },
            "ListenerStatus": if listener.is_some() { "1" } else { "deleted" },
        }));
    }
    let c = &job.counts;
    Answer::new(json!({
        "TotalCount": c.total,
        "SuccessTotalCount": c.succeeded,
        "FailedTotalCount": c.failed,
        "RunningTotalCount": c.running,
        "PendingTotalCount": c.pending,
        "RecordDetailList": [{ "ResourceType": "clb", "TotalCount": c.total, "List": list }],
    }))
}

fn relabel(e: CoreError, code: &'static str, message: &str) -> TcError {
    match e {
        CoreError::OldCertificateNotBound { .. } | CoreError::SameCertificate { .. } => TcError::new(code, message),
        other => other.into(),
    }
}

fn retry(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&["DeployRecordId", "DeployRecordDetailId"])?;
    const CODE: &str = "FailedOperation.CertificateDeployRetryStatusInvalid";
    let (id, only_seq) = match (p.int("DeployRecordId")?, p.int("DeployRecordDetailId")?) {
        (Some(id), _) => (id, None),
        (None, Some(detail)) => (detail / DETAIL_FACTOR, Some(detail % DETAIL_FACTOR)),
        (None, None) => return Err(TcError::missing("DeployRecordId")),
    };
    let job = record(ctx, id)?;
    if !job.state.is_final() {
        return Err(TcError::new(CODE, format!("deploy record {id} is still running")));
    }
    let failed: Vec<ListenerId> = all_targets(ctx, job.id)?
        .iter()
        .filter(|t| t.status == TargetStatus::Failed && only_seq.is_none_or(|s| s == t.seq))
        .map(|t| t.listener_id)
        .collect();
    let (Some(old), Some(new)) = (job.old_cert_id, job.new_cert_id) else {
        return Err(TcError::new(CODE, "the record has no certificates to retry"));
    };
    if failed.is_empty() {
        return Err(TcError::new(CODE, format!("deploy record {id} has no failed listener to retry")));
    }
    let request = ListenerReplaceRequest {
        old_certificate_id: old,
        new_certificate_id: new,
        listener_ids: failed,
        kind: JobKind::OneClickUpdate,
        label: Some(format!("tc-retry:{id}")),
    };
    ctx.control
        .replace_on_listeners(ctx.caller, &request)
        .map_err(|e| relabel(e, CODE, "no failed listener is still on the old certificate"))?;
    Answer::new(json!({}))
}

fn rollback(ctx: &Ctx) -> TcResult<Answer> {
    let p = &ctx.params;
    p.allow(&["DeployRecordId"])?;
    const CODE: &str = "FailedOperation.CertificateDeployRollbackStatusInvalid";
    let id = p.int("DeployRecordId")?.ok_or_else(|| TcError::missing("DeployRecordId"))?;
    let job = record(ctx, id)?;
    if !job.state.is_final() {
        return Err(TcError::new(CODE, format!("deploy record {id} is still running")));
    }
    let (Some(old), Some(new)) = (job.old_cert_id, job.new_cert_id) else {
        return Err(TcError::new(CODE, "the record has no certificates to roll back"));
    };
    let listeners: Vec<ListenerId> = all_targets(ctx, job.id)?
        .iter()
        .filter(|t| t.status == TargetStatus::Succeeded)
        .map(|t| t.listener_id)
        .collect();
    if listeners.is_empty() {
        return Err(TcError::new(CODE, format!("deploy record {id} changed no listener")));
    }
    let request = ListenerReplaceRequest {
        old_certificate_id: new,
        new_certificate_id: old,
        listener_ids: listeners,
        kind: JobKind::OneClickUpdate,
        label: Some(format!("{ROLLBACK_LABEL}{id}")),
    };
    let submission = ctx
        .control
        .replace_on_listeners(ctx.caller, &request)
        .map_err(|e| relabel(e, CODE, "no listener of the record is still on its new certificate"))?;
    let job_id = submission.job_id.map(|j| j.0).unwrap_or(0);
    Answer::new(json!({ "DeployRecordId": job_id }))
}
