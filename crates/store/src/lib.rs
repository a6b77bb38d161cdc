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
}
