//! The control plane as the data plane's source of desired state.

use crate::Control;
use certbind_core::ids::CertId;
use certbind_core::names::served_names;
use certbind_core::serving::chain_der_from_pem;
use certbind_core::serving::{CertMaterial, ChangePoint, MaterialError, ServingDelta, ServingSource, ServingState};

impl ServingSource for Control {
    fn serving_state(&self) -> Result<ServingState, String> {
        let mut tx = self.store().read().map_err(|e| e.to_string())?;
        tx.serving_state().map_err(|e| e.to_string())
    }

    fn serving_changes(&self, since: ChangePoint) -> Result<Option<ServingDelta>, String> {
        let mut tx = self.store().read().map_err(|e| e.to_string())?;
        tx.serving_changes(since).map_err(|e| e.to_string())
    }

    fn cert_material(&self, ids: &[CertId]) -> Result<Vec<Result<CertMaterial, MaterialError>>, String> {
        // Certificates and sealed keys in one query, and the read transaction closed
        // before the CPU work.
        let sealed = {
            let mut tx = self.store().read().map_err(|e| e.to_string())?;
            tx.serving_certificates(ids).map_err(|e| e.to_string())?
        };
        // Opening and decoding is CPU work: spread it (100k certificates at start).
        Ok(certbind_core::parallel::map(&sealed, |cert| {
            let failed = |reason: String| MaterialError { id: cert.id, reason };
            let private_key_pem = self
                .master()
                .open_string(&cert.key_sealed, cert.id.to_string().as_bytes())
                .map_err(|e| failed(e.to_string()))?;
            let chain_der = chain_der_from_pem(&cert.chain_pem).map_err(failed)?;
            Ok(CertMaterial {
                id: cert.id,
                chain_der,
                private_key_pem,
                host_names: served_names(cert.common_name.as_deref(), &cert.sans),
                not_before: cert.not_before,
                not_after: cert.not_after,
            })
        }))
    }
}
