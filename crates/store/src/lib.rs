//! certbind's one source of truth. Everything the control plane knows goes through a
//! [`Store`]: a transaction at a time, each committed durably before the caller answers.
//! The trait is shaped so that a PostgreSQL implementation can follow the SQLite one:
//! object-safe transactions, no SQLite-specific types across the boundary.

mod error;
pub mod sqlite;
mod tx;

pub use error::StoreError;
pub use sqlite::SqliteStore;
pub use tx::*;

/// A store hands out transactions. Dropping a transaction without committing rolls it
/// back, so an error anywhere in an operation changes nothing.
pub trait Store: Send + Sync + 'static {
    /// A read-write transaction. Writers are serialised: validation done inside a
    /// transaction cannot be invalidated by a concurrent writer.
    fn write(&self) -> Result<Box<dyn Tx + '_>, StoreError>;

    /// A read-only view (it may run concurrently with a writer).
    fn read(&self) -> Result<Box<dyn Tx + '_>, StoreError>;

    /// Remembers a signed request (`key` within `scope`, asking for `action`) until
    /// `expires_at`, durably and atomically across every node of the store, and says
    /// whether it was seen before, unexpired, at `now`.
    fn remember_request(
        &self,
        scope: &str,
        key: &str,
        action: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<SeenRequest, StoreError>;

    /// Commits a tiny real change (so it needs what any change needs: space, a writable
    /// file, the write lock), to tell whether the store can take writes now.
    fn probe_write(&self, now: i64) -> Result<(), StoreError>;
}

/// What [`Store::remember_request`] knew of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenRequest {
    /// Never seen (or forgotten since it expired): now remembered.
    New,
    /// Seen before (first at `seen_at`, unix seconds), asking for the same action.
    SameAction { seen_at: i64 },
    /// Seen before, asking for another action: its signature does not cover the action.
    OtherAction { seen_at: i64 },
}
