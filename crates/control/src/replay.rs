//! Replays: what identifies one signed request (a nonce, or the signature itself where
//! there is no nonce) is remembered for as long as the request stays valid, durably and
//! for every node, so each dialect can tell a request it has seen before, after a
//! restart and on another node, and refuse it by its own rules.

use crate::{Control, Result};
use certbind_core::now_unix;
use certbind_store::SeenRequest;

/// Whether a signed request was seen before, and asking for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First seen: now remembered.
    First,
    /// Seen before, `age` seconds ago, asking for the same action.
    SameAction { age: i64 },
    /// Seen before, `age` seconds ago, asking for another action (a signature that does
    /// not cover the action it names).
    OtherAction { age: i64 },
}

impl Control {
    /// Remembers the request `key` of `scope`, asking for `action`, until `valid_until`
    /// (unix seconds), and says whether it was seen before. Call after the signature
    /// has been verified, so no one but a key holder fills the store.
    ///
    /// A read is let through when the store cannot take writes (a full disk): an operator
    /// must still be able to look; it is then not remembered. A write would fail anyway.
    pub fn seen_request(&self, scope: &str, key: &str, action: &str, valid_until: i64, read: bool) -> Result<Seen> {
        let now = now_unix();
        let remembered = match self.store().remember_request(scope, key, action, valid_until, now) {
            Err(e) if read && e.is_write_failure() => {
                tracing::warn!(error = %e, "a read is served without being remembered: the store cannot take writes");
                return Ok(Seen::First);
            }
            other => other?,
        };
        Ok(match remembered {
            SeenRequest::New => Seen::First,
            SeenRequest::SameAction { seen_at } => Seen::SameAction { age: now - seen_at },
            SeenRequest::OtherAction { seen_at } => Seen::OtherAction { age: now - seen_at },
        })
    }
}
