//! Mapping between SQLite rows and domain values.

use crate::tx::ServingCertificate;
use certbind_core::ids::*;
use certbind_core::model::*;
use rusqlite::types::Type;
use rusqlite::Row;

pub(crate) fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, format!("unknown {what}").into())
}

pub(crate) fn parse_enum<T>(row: &Row, idx: usize, parse: fn(&str) -> Option<T>, what: &str) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).ok_or_else(|| corrupt(idx, what))
}

pub(crate) fn json(row: &Row, idx: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|_| corrupt(idx, "json"))
}

pub(crate) const ACCOUNT_COLS: &str = "id, name, created_at";
pub(crate) fn account(row: &Row) -> rusqlite::Result<Account> {
    Ok(Account { id: AccountId(row.get(0)?), name: row.get(1)?, created_at: row.get(2)? })
}

pub(crate) const PROJECT_COLS: &str = "id, account_id, name, is_default, created_at";
pub(crate) fn project(row: &Row) -> rusqlite::Result<Project> {
    Ok(Project {
        id: ProjectId(row.get(0)?),
        account_id: AccountId(row.get(1)?),
        name: row.get(2)?,
        is_default: row.get(3)?,
        created_at: row.get(4)?,
    })
}

pub(crate) const CERT_COLS: &str = "id, account_id, project_id, name, common_name, sans, subject, issuer, serial, \
     not_before, not_after, fingerprint, key_algorithm, key_bits, chain_pem, allow_download, attributes, created_at";
pub(crate) fn certificate(row: &Row) -> rusqlite::Result<Certificate> {
    let sans: String = row.get(5)?;
    Ok(Certificate {
        id: CertId(row.get(0)?),
        account_id: AccountId(row.get(1)?),
        project_id: ProjectId(row.get(2)?),
        name: row.get(3)?,
        common_name: row.get(4)?,
        sans: serde_json::from_str(&sans).map_err(|_| corrupt(5, "sans"))?,
        subject: row.get(6)?,
        issuer: row.get(7)?,
        serial: row.get(8)?,
        not_before: row.get(9)?,
        not_after: row.get(10)?,
        fingerprint_sha256: row.get(11)?,
        key_algorithm: parse_enum(row, 12, KeyAlgorithm::parse, "key algorithm")?,
        key_bits: row.get(13)?,
        chain_pem: row.get(14)?,
        allow_download: row.get(15)?,
        attributes: json(row, 16)?,
        created_at: row.get(17)?,
    })
}

pub(crate) const LB_COLS: &str = "id, account_id, project_id, name, lb_type, region, address, attributes, created_at";
pub(crate) fn load_balancer(row: &Row) -> rusqlite::Result<LoadBalancer> {
    let address: Option<String> = row.get(6)?;
    Ok(LoadBalancer {
        id: LoadBalancerId(row.get(0)?),
        account_id: AccountId(row.get(1)?),
        project_id: ProjectId(row.get(2)?),
        name: row.get(3)?,
        lb_type: parse_enum(row, 4, LbType::parse, "load balancer type")?,
        region: row.get(5)?,
        address: match address {
            Some(text) => Some(text.parse().map_err(|_| corrupt(6, "address"))?),
            None => None,
        },
        attributes: json(row, 7)?,
        created_at: row.get(8)?,
    })
}

pub(crate) const LISTENER_COLS: &str = "id, account_id, load_balancer_id, name, protocol, port, attributes, created_at";
pub(crate) fn listener(row: &Row) -> rusqlite::Result<Listener> {
    Ok(Listener {
        id: ListenerId(row.get(0)?),
        account_id: AccountId(row.get(1)?),
        load_balancer_id: LoadBalancerId(row.get(2)?),
        name: row.get(3)?,
        protocol: parse_enum(row, 4, Protocol::parse, "protocol")?,
        port: row.get(5)?,
        attributes: json(row, 6)?,
        created_at: row.get(7)?,
    })
}

pub(crate) const BINDING_COLS: &str = "listener_id, cert_id, role, status, revision";
pub(crate) fn binding(row: &Row) -> rusqlite::Result<Binding> {
    Ok(Binding {
        listener_id: ListenerId(row.get(0)?),
        cert_id: CertId(row.get(1)?),
        role: parse_enum(row, 2, BindingRole::parse, "binding role")?,
        status: parse_enum(row, 3, BindingStatus::parse, "binding status")?,
        revision: row.get(4)?,
    })
}

pub(crate) const JOB_COLS: &str =
    "id, account_id, kind, state, old_cert_id, new_cert_id, client_token, error, created_at, started_at, finished_at";
pub(crate) fn job(row: &Row) -> rusqlite::Result<Job> {
    Ok(Job {
        id: JobId(row.get(0)?),
        account_id: AccountId(row.get(1)?),
        kind: parse_enum(row, 2, JobKind::parse, "job kind")?,
        state: parse_enum(row, 3, JobState::parse, "job state")?,
        old_cert_id: row.get::<_, Option<i64>>(4)?.map(CertId),
        new_cert_id: row.get::<_, Option<i64>>(5)?.map(CertId),
        client_token: row.get(6)?,
        error: row.get(7)?,
        created_at: row.get(8)?,
        started_at: row.get(9)?,
        finished_at: row.get(10)?,
        counts: TargetCounts::default(),
        groups: Vec::new(),
    })
}

pub(crate) const TARGET_COLS: &str = "job_id, seq, listener_id, load_balancer_id, resource_type, region, action, \
     old_cert_id, new_cert_id, status, error";
pub(crate) fn target(row: &Row) -> rusqlite::Result<JobTarget> {
    Ok(JobTarget {
        job_id: JobId(row.get(0)?),
        seq: row.get(1)?,
        listener_id: ListenerId(row.get(2)?),
        load_balancer_id: LoadBalancerId(row.get(3)?),
        resource_type: parse_enum(row, 4, LbType::parse, "resource type")?,
        region: row.get(5)?,
        action: parse_enum(row, 6, TargetAction::parse, "target action")?,
        old_cert_id: row.get::<_, Option<i64>>(7)?.map(CertId),
        new_cert_id: row.get::<_, Option<i64>>(8)?.map(CertId),
        status: parse_enum(row, 9, TargetStatus::parse, "target status")?,
        error: row.get(10)?,
    })
}

pub(crate) const SERVING_CERT_COLS: &str = "id, common_name, sans, not_before, not_after, chain_pem, key_sealed";
pub(crate) fn serving_certificate(row: &Row) -> rusqlite::Result<ServingCertificate> {
    let sans = row.get_ref(2)?.as_str().map_err(|_| corrupt(2, "sans"))?;
    Ok(ServingCertificate {
        id: CertId(row.get(0)?),
        common_name: row.get(1)?,
        sans: serde_json::from_str(sans).map_err(|_| corrupt(2, "sans"))?,
        not_before: row.get(3)?,
        not_after: row.get(4)?,
        chain_pem: row.get(5)?,
        key_sealed: row.get(6)?,
    })
}
