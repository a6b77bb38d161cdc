//! The memory of signed requests (schema 5), on a connection of its own: every signed
//! request writes here before it runs, so it must not queue behind the main writer's
//! transactions, and it commits with `synchronous=NORMAL`: in WAL mode that survives a
//! crash of the process (`kill -9`), which is what a replay after a restart needs; only a
//! power loss may forget the last moments' requests.

use super::fair::FairMutex;
use crate::{SeenRequest, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::atomic::{AtomicI64, Ordering};

/// Expired rows are removed at most this often (seconds).
const PRUNE_EVERY: i64 = 60;

pub(super) struct SeenRequests {
    conn: FairMutex<Connection>,
    last_prune: AtomicI64,
}

impl SeenRequests {
    pub(super) fn new(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        Ok(SeenRequests { conn: FairMutex::new(conn), last_prune: AtomicI64::new(0) })
    }

    pub(super) fn remember(
        &self,
        scope: &str,
        key: &str,
        action: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<SeenRequest, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let earlier: Option<(String, i64)> = tx
            .query_row(
                "SELECT action, seen_at FROM seen_requests WHERE scope = ?1 AND key = ?2 AND expires_at >= ?3",
                params![scope, key, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let seen = match earlier {
            Some((first, seen_at)) if first == action => SeenRequest::SameAction { seen_at },
            Some((_, seen_at)) => SeenRequest::OtherAction { seen_at },
            None => {
                tx.execute(
                    "INSERT OR REPLACE INTO seen_requests (scope, key, action, seen_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![scope, key, action, now, expires_at],
                )?;
                SeenRequest::New
            }
        };
        let last = self.last_prune.load(Ordering::Relaxed);
        if now - last >= PRUNE_EVERY
            && self.last_prune.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tx.execute("DELETE FROM seen_requests WHERE expires_at < ?1", [now])?;
        }
        tx.commit()?;
        Ok(seen)
    }
}
