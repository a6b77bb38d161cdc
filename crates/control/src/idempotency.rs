//! Client tokens: the same token with the same request returns the first answer; with a
//! different request, an error. The token, the change and the remembered answer commit in
//! one transaction, so a retry after a crash finds either all of them or none.

use crate::{Caller, Result};
use certbind_core::CoreError;
use certbind_store::{IdempotencyRecord, Tx};
use ring::digest::{digest, SHA256};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A digest of what the request asks for (the token itself excluded).
pub(crate) fn request_hash<T: Serialize>(operation: &str, request: &T) -> String {
    let body = serde_json::to_string(request).unwrap_or_default();
    hex::encode(digest(&SHA256, format!("{operation}\n{body}").as_bytes()))
}

pub(crate) fn check_token(token: &str) -> Result<()> {
    if token.is_empty() || token.len() > 64 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CoreError::invalid("client_token", "must be 1 to 64 printable ASCII characters"));
    }
    Ok(())
}

/// Runs `apply` unless the token already answered; records the answer under the token.
pub(crate) fn idempotent<R, F>(tx: &mut dyn Tx, caller: &Caller, token: Option<&str>, hash: &str, apply: F) -> Result<R>
where
    R: Serialize + DeserializeOwned,
    F: FnOnce(&mut dyn Tx) -> Result<R>,
{
    let Some(token) = token else { return apply(tx) };
    check_token(token)?;
    if let Some(record) = tx.idempotency_get(caller.account_id, token)? {
        if record.request_hash != hash {
            return Err(CoreError::IdempotencyConflict { token: token.to_string() });
        }
        return serde_json::from_value(record.response).map_err(|e| CoreError::Internal(e.to_string()));
    }
    let answer = apply(tx)?;
    let response = serde_json::to_value(&answer).map_err(|e| CoreError::Internal(e.to_string()))?;
    tx.idempotency_put(caller.account_id, token, &IdempotencyRecord { request_hash: hash.to_string(), response })?;
    Ok(answer)
}
