//! The control plane as the data plane's source of desired state.

use crate::Control;
use certbind_core::ids::CertId;
use certbind_core::serving::chain_der_from_pem;
use certbind_core::serving::{CertMaterial, ServingSource, ServingState};

impl ServingSource for Control {
    fn serving_state(&self) -> Result<ServingState, String> {
        let mut tx = self.store().read().map_err(|e| e.to_string())?;
        tx.serving_state().map_err(|e| e.to_string())
    }

    fn cert_material(&self, ids: &[CertId]) -> Result<Vec<CertMaterial>, String> {
        let mut tx = self.store().read().map_err(|e| e.to_string())?;
        let certs = tx.certificates_by_ids(ids).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(certs.len());
        for cert in certs {
            let sealed = tx.certificate_key_sealed(cert.id).map_err(|e| e.to_string())?.unwrap_or_default();
            let private_key_pem = self
                .master()
                .open_string(&sealed, cert.id.to_string().as_bytes())
                .map_err(|e| format!("certificate {}: {e}", cert.id))?;
            let chain_der = chain_der_from_pem(&cert.chain_pem).map_err(|e| format!("certificate {}: {e}", cert.id))?;
            out.push(CertMaterial {
                id: cert.id,
                chain_der,
                private_key_pem,
                host_names: cert.host_names(),
                not_before: cert.not_before,
                not_after: cert.not_after,
            });
        }
        Ok(out)
    }
}
