//! What the control plane hands the data plane: the serving state at one store revision,
//! and the certificate material behind it. The data plane only reads these; it never
//! writes desired state.

use crate::ids::*;
use crate::model::{Backend, BindingRole, Protocol};
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
    /// The store's change history up to this state, to ask for what changed after it.
    pub changes: ChangePoint,
    pub listeners: Vec<ServingListener>,
}

/// A point in the store's change history: a data plane that built its snapshot from the
/// state at this point asks [`ServingSource::serving_changes`] for what came after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangePoint {
    /// Binding changes carry the revision that made them.
    pub revision: i64,
    /// Listener changes (created, deleted, moved, backends) carry a sequence number of
    /// their own.
    pub listener_change: i64,
}

/// What changed in the serving state after a [`ChangePoint`], up to `changes`.
#[derive(Debug, Clone, Default)]
pub struct ServingDelta {
    pub revision: i64,
    pub changes: ChangePoint,
    /// Listeners created or changed other than by their bindings, read whole.
    pub listeners: Vec<ServingListener>,
    /// Listeners deleted.
    pub removed: Vec<ListenerId>,
    /// Bindings changed on the other listeners, each as it is now.
    pub bindings: Vec<BindingChange>,
}

/// One binding as it is now. A binding no longer served (dissociating) says so; the
/// listener's other bindings are as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingChange {
    pub listener_id: ListenerId,
    pub cert_id: CertId,
    pub role: BindingRole,
    pub served: bool,
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

/// A listener the data plane serves at an older revision than its snapshot's, because its
/// newer certificates cannot be loaded: its changes after `serving_revision` wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaggingListener {
    pub listener_id: ListenerId,
    /// The revision whose certificates it serves; `None`: none of its own yet.
    pub serving_revision: Option<i64>,
    /// Why its newer certificates are not served.
    pub reason: String,
    /// The certificates it does serve: the default, and the additional ones.
    pub held_default: Option<CertId>,
    pub held_additional: Vec<CertId>,
}

/// Why the material of one certificate cannot be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate {id}: {reason}")]
pub struct MaterialError {
    pub id: CertId,
    pub reason: String,
}

/// Where the data plane reads desired state from (the control plane implements it).
pub trait ServingSource: Send + Sync + 'static {
    fn serving_state(&self) -> Result<ServingState, String>;
    /// What changed after `since`, or `None` when the source cannot say (it keeps no
    /// history, the history was pruned, or the change is so large that reading the whole
    /// state is cheaper): the caller then reads [`ServingSource::serving_state`].
    fn serving_changes(&self, since: ChangePoint) -> Result<Option<ServingDelta>, String> {
        let _ = since;
        Ok(None)
    }
    /// The material of each of `ids` that exists, each on its own: one certificate that
    /// cannot be produced (its sealed key damaged, say) never keeps the others from loading.
    /// `Err` when the source cannot be read at all.
    fn cert_material(&self, ids: &[CertId]) -> Result<Vec<Result<CertMaterial, MaterialError>>, String>;
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
