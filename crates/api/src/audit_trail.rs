//! Writing one audited request, for the native API and the dialects alike: the signer is
//! resolved from its key id (if that key exists) so the entry names account and user.

use certbind_control::{AuditFacts, Control};

pub async fn record(control: &Control, key_id: Option<String>, facts: AuditFacts) {
    let control = control.clone();
    let _ = crate::request_id::spawn_blocking(move || {
        let caller = key_id.as_deref().and_then(|k| control.access_key_secret(k).ok().flatten()).map(|(c, _)| c);
        let entry = certbind_control::audit_entry(caller.as_ref(), key_id.as_deref(), facts);
        control.record_audit(entry);
    })
    .await;
}
