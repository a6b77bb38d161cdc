use certbind_core::{CoreError, StorageFailure};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    /// The disk holding the database (or the database's size limit) is full.
    #[error("the database's disk is full: {0}")]
    Full(String),
    /// The database or its directory cannot be written.
    #[error("the database is read-only: {0}")]
    ReadOnly(String),
    /// Another process holds the database's write lock for longer than the busy timeout.
    #[error("the database is locked by another writer: {0}")]
    Busy(String),
    #[error("data file: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the database schema is version {found}, newer than this certbind ({supported}); upgrade certbind")]
    SchemaTooNew { found: i64, supported: i64 },
}

impl StoreError {
    /// The store cannot take writes now (it may still read).
    pub fn is_write_failure(&self) -> bool {
        matches!(self, StoreError::Full(_) | StoreError::ReadOnly(_) | StoreError::Busy(_) | StoreError::Io(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let text = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full(text),
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(text),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy(text),
            Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => StoreError::Io(text),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt(text),
            _ => StoreError::Database(text),
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::Full(_) => StorageFailure::Full,
            StoreError::ReadOnly(_) => StorageFailure::ReadOnly,
            StoreError::Busy(_) => StorageFailure::Busy,
            StoreError::Io(_) => StorageFailure::Unavailable,
            StoreError::Database(_) | StoreError::Corrupt(_) | StoreError::SchemaTooNew { .. } => {
                return CoreError::Internal(e.to_string())
            }
        };
        CoreError::Storage { failure: kind, detail: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_failures_become_specific_storage_codes() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); PRAGMA query_only = ON;").unwrap();
        let refused = StoreError::from(conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err());
        assert!(matches!(refused, StoreError::ReadOnly(_)), "{refused:?}");
        assert_eq!(CoreError::from(refused).code(), "StorageReadOnly");

        conn.execute_batch("PRAGMA query_only = OFF; PRAGMA max_page_count = 1;").unwrap();
        let big = "x".repeat(64 * 1024);
        let full = StoreError::from(conn.execute("INSERT INTO t VALUES (?1)", [big]).unwrap_err());
        assert!(matches!(full, StoreError::Full(_)), "{full:?}");
        let core = CoreError::from(full);
        assert_eq!(core.code(), "StorageFull");
        assert!(!core.to_string().contains("database or disk"), "the client is not shown SQLite's words: {core}");
    }
}
