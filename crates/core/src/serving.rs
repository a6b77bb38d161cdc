//! What the control plane hands the data plane: the serving state at one store revision,
//! and the certificate material behind it. The data plane only reads these; it never
//! writes desired state.

use crate::ids::*;
use crate::model::{Backend, Protocol};
use std::net::IpAddr;
use zeroize::Zeroizing;

/// What the data plane needs to serve one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingListener {
    pub listener_id: ListenerId,
    pub account_id: AccountId,
    pub load_balancer_id: LoadBalancerId,
    /// The load balancer's own address; `None` means the server's `--listen-ip`.
    pub address: Option<IpAddr>,
    pub protocol: Protocol,
    pub port: u16,
    /// From bindings that are Associating or Associated; Dissociating ones are not served.
    pub default_cert: Option<CertId>,
    pub additional_certs: Vec<CertId>,
    pub backends: Vec<Backend>,
}

/// The whole serving state at one store revision.
#[derive(Debug, Clone, Default)]
pub struct ServingState {
    pub revision: i64,
    pub listeners: Vec<ServingListener>,
}

/// One certificate, ready to load into a TLS stack. Certificates never change once
/// stored, so the data plane may cache material by id for as long as it likes.
pub struct CertMaterial {
    pub id: CertId,
    /// Leaf first, then intermediates (DER).
    pub chain_der: Vec<Vec<u8>>,
    /// The private key, decrypted, PEM.
    pub private_key_pem: Zeroizing<String>,
    /// Host names the certificate serves (DNS SANs, or the CN without any).
    pub host_names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

impl std::fmt::Debug for CertMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertMaterial")
            .field("id", &self.id)
            .field("host_names", &self.host_names)
            .finish_non_exhaustive()
    }
}

/// Where the data plane reads desired state from (the control plane implements it).
pub trait ServingSource: Send + Sync + 'static {
    fn serving_state(&self) -> Result<ServingState, String>;
    fn cert_material(&self, ids: &[CertId]) -> Result<Vec<CertMaterial>, String>;
}

/// What the data plane reports about one listener's socket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListenerRuntime {
    /// "serving", "bind_failed", "stopped"
    pub state: String,
    pub address: String,
    pub reason: Option<String>,
}

/// Decodes a stored chain (PEM, leaf first) to DER for a TLS stack.
pub fn chain_der_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("stored chain does not decode: {e}"))?;
    if chain.is_empty() {
        return Err("stored chain holds no certificate".to_string());
    }
    Ok(chain)
}
