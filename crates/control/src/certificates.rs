//! Certificate upload, lookup and deletion. Only a parsed certificate whose key matches
//! it is ever stored (GUIDE rule 2); its private key is sealed before it reaches the store.

use crate::access::Resource;
use crate::accounts::check_name;
use crate::idempotency::{idempotent, request_hash};
use crate::{Caller, Control, Result};
use certbind_core::cert::{parse_bundle, ParsedCertificate};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::{now_unix, CoreError};
use certbind_store::{CertificateFilter, NewCertificate, Tx};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What to do when the uploaded certificate's fingerprint is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Refuse with `CertificateDuplicate`.
    #[default]
    Refuse,
    /// Store another copy.
    Allow,
    /// Store nothing and answer with the existing certificate (Tencent's `Repeatable=false`).
    ReturnExisting,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct UploadRequest {
    #[serde(default)]
    pub name: String,
    /// Leaf certificate, optionally followed by its chain.
    pub certificate_pem: String,
    #[serde(default)]
    pub chain_pem: Option<String>,
    pub private_key_pem: String,
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    #[serde(default)]
    pub on_duplicate: DuplicatePolicy,
    #[serde(default)]
    pub allow_download: bool,
    #[serde(default)]
    pub attributes: serde_json::Value,
}

impl std::fmt::Debug for UploadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadRequest").field("name", &self.name).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadOutcome {
    pub certificate: Certificate,
    pub validity: Validity,
    /// Set when the upload matched an existing certificate's fingerprint.
    pub duplicate_of: Option<CertId>,
    /// True when nothing new was stored (ReturnExisting).
    pub existing: bool,
}

impl Control {
    pub fn upload_certificate(
        &self,
        caller: &Caller,
        request: &UploadRequest,
        token: Option<&str>,
    ) -> Result<UploadOutcome> {
        let parsed = validate_upload(request)?;
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "UploadCertificate", &[Resource::All { kind: "certificate" }])?;
        // The hash covers the key too (through the request), so a retry with another key
        // under the same token is a conflict, not a silent success.
        let hash = request_hash("upload_certificate", request);
        let outcome =
            idempotent(&mut *tx, caller, token, &hash, |tx| self.store_certificate(tx, caller, request, parsed))?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Imports many certificates in one transaction (an estate moving in): each is
    /// validated exactly as an upload, and either all are stored or none.
    pub fn import_certificates(&self, caller: &Caller, requests: &[UploadRequest]) -> Result<Vec<UploadOutcome>> {
        let parsed = requests.iter().map(validate_upload).collect::<Result<Vec<_>>>()?;
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "UploadCertificate", &[Resource::All { kind: "certificate" }])?;
        let mut outcomes = Vec::with_capacity(requests.len());
        for (request, parsed) in requests.iter().zip(parsed) {
            outcomes.push(self.store_certificate(&mut *tx, caller, request, parsed)?);
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// Validates an upload fully (parse, key match, chain, project, duplicates) without storing.
    pub fn check_upload(&self, caller: &Caller, request: &UploadRequest) -> Result<ParsedCertificate> {
        let parsed = validate_upload(request)?;
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "UploadCertificate", &[Resource::All { kind: "certificate" }])?;
        self.resolve_project(&mut *tx, caller, request.project_id)?;
        if request.on_duplicate == DuplicatePolicy::Refuse {
            if let Some(existing) = tx.find_certificate_by_fingerprint(caller.account_id, &parsed.fingerprint_sha256)? {
                return Err(CoreError::DuplicateCertificate { existing: existing.to_string() });
            }
        }
        Ok(parsed)
    }

    pub(crate) fn store_certificate(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        request: &UploadRequest,
        parsed: ParsedCertificate,
    ) -> Result<UploadOutcome> {
        let project = self.resolve_project(tx, caller, request.project_id)?;
        let duplicate_of = tx.find_certificate_by_fingerprint(caller.account_id, &parsed.fingerprint_sha256)?;
        if let Some(existing) = duplicate_of {
            match request.on_duplicate {
                DuplicatePolicy::Refuse => {
                    return Err(CoreError::DuplicateCertificate { existing: existing.to_string() })
                }
                DuplicatePolicy::ReturnExisting => {
                    let certificate = tx
                        .get_certificate(caller.account_id, existing)?
                        .ok_or_else(|| CoreError::not_found("certificate", existing))?;
                    let validity = certificate.validity(now_unix());
                    return Ok(UploadOutcome { certificate, validity, duplicate_of, existing: true });
                }
                DuplicatePolicy::Allow => {}
            }
        }
        let name = if request.name.is_empty() {
            parsed
                .common_name
                .clone()
                .or_else(|| parsed.sans.first().cloned())
                .unwrap_or_else(|| "certificate".to_string())
        } else {
            request.name.clone()
        };
        let new = NewCertificate {
            account_id: caller.account_id,
            project_id: project.id,
            name,
            common_name: parsed.common_name.clone(),
            sans: parsed.sans.clone(),
            subject: parsed.subject.clone(),
            issuer: parsed.issuer.clone(),
            serial: parsed.serial.clone(),
            not_before: parsed.not_before,
            not_after: parsed.not_after,
            fingerprint_sha256: parsed.fingerprint_sha256.clone(),
            key_algorithm: parsed.key_algorithm,
            key_bits: parsed.key_bits,
            chain_pem: parsed.chain_pem.clone(),
            allow_download: request.allow_download,
            attributes: if request.attributes.is_null() { serde_json::json!({}) } else { request.attributes.clone() },
        };
        let master = self.master();
        let key_pem = parsed.private_key_pem;
        let certificate = tx.insert_certificate(&new, &mut |id| {
            master
                .seal(key_pem.as_bytes(), id.to_string().as_bytes())
                .map_err(|e| certbind_store::StoreError::Corrupt(e.to_string()))
        })?;
        let validity = certificate.validity(now_unix());
        Ok(UploadOutcome { certificate, validity, duplicate_of, existing: false })
    }

    pub fn get_certificate(&self, caller: &Caller, id: CertId) -> Result<Certificate> {
        let mut tx = self.store().read()?;
        let cert = tx.get_certificate(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("certificate", id))?;
        self.authorize(&mut *tx, caller, "GetCertificate", &[Resource::Certificate { id }])?;
        Ok(cert)
    }

    pub fn list_certificates(&self, caller: &Caller, filter: &CertificateFilter) -> Result<(Vec<Certificate>, u64)> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListCertificates", &[Resource::All { kind: "certificate" }])?;
        Ok(tx.list_certificates(caller.account_id, filter)?)
    }

    /// Listener bindings of a certificate: (listener, load balancer, role, status).
    pub fn certificate_bindings(&self, caller: &Caller, id: CertId) -> Result<Vec<(Listener, Binding)>> {
        let mut tx = self.store().read()?;
        tx.get_certificate(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("certificate", id))?;
        self.authorize(&mut *tx, caller, "GetCertificate", &[Resource::Certificate { id }])?;
        let bound = tx.listeners_bound_to(caller.account_id, id, &Default::default())?;
        let mut out = Vec::with_capacity(bound.len());
        for b in bound {
            let Some(listener) = tx.get_listener(caller.account_id, b.listener_id)? else { continue };
            if let Some(binding) = tx.listener_bindings(b.listener_id)?.into_iter().find(|x| x.cert_id == id) {
                out.push((listener, binding));
            }
        }
        Ok(out)
    }

    /// The private key, only for certificates uploaded with `allow_download`.
    pub fn certificate_private_key(&self, caller: &Caller, id: CertId) -> Result<Zeroizing<String>> {
        let mut tx = self.store().read()?;
        let cert = tx.get_certificate(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("certificate", id))?;
        self.authorize(&mut *tx, caller, "DownloadCertificate", &[Resource::Certificate { id }])?;
        if !cert.allow_download {
            return Err(CoreError::Forbidden(format!("certificate {id} was not uploaded with allow_download")));
        }
        let sealed = tx.certificate_key_sealed(id)?.ok_or_else(|| CoreError::not_found("certificate", id))?;
        self.master().open_string(&sealed, id.to_string().as_bytes()).map_err(|e| CoreError::Internal(e.to_string()))
    }

    pub fn update_certificate(
        &self,
        caller: &Caller,
        id: CertId,
        name: Option<&str>,
        attributes: Option<serde_json::Value>,
    ) -> Result<Certificate> {
        let mut tx = self.store().write()?;
        let mut cert =
            tx.get_certificate(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("certificate", id))?;
        self.authorize(&mut *tx, caller, "UpdateCertificate", &[Resource::Certificate { id }])?;
        if let Some(name) = name {
            check_name("name", name, 128)?;
            cert.name = name.to_string();
        }
        if let Some(serde_json::Value::Object(extra)) = attributes {
            if let serde_json::Value::Object(current) = &mut cert.attributes {
                current.extend(extra);
            } else {
                cert.attributes = serde_json::Value::Object(extra);
            }
        }
        tx.update_certificate(&cert)?;
        tx.commit()?;
        Ok(cert)
    }

    /// Deletes a certificate that nothing uses: no binding in any state, no job about to
    /// bind it.
    pub fn delete_certificate(&self, caller: &Caller, id: CertId) -> Result<()> {
        let mut tx = self.store().write()?;
        tx.get_certificate(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("certificate", id))?;
        self.authorize(&mut *tx, caller, "DeleteCertificate", &[Resource::Certificate { id }])?;
        let listeners = tx.count_certificate_bindings(id)?;
        if listeners > 0 {
            return Err(CoreError::CertificateInUse { cert: id.to_string(), listeners });
        }
        let jobs = tx.unfinished_jobs_for_certificate(id)?;
        if let Some(job) = jobs.first() {
            return Err(CoreError::CertificateInUse {
                cert: format!("{id} (job {job} is still running)"),
                listeners: 0,
            });
        }
        tx.delete_certificate(caller.account_id, id)?;
        tx.commit()?;
        Ok(())
    }
}

fn validate_upload(request: &UploadRequest) -> Result<ParsedCertificate> {
    check_name("name", &request.name, 128)?;
    Ok(parse_bundle(&request.certificate_pem, request.chain_pem.as_deref(), &request.private_key_pem)?)
}
