//! The embedded store: one SQLite file in the data directory, WAL mode, `synchronous=FULL`
//! so a commit that returned survives a crash or power loss.

mod fair;
mod rows;
mod seen;
mod tx;

use crate::{SeenRequest, Store, StoreError, Tx};
use fair::FairMutex;
use rusqlite::Connection;
use std::path::Path;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_v2_access.sql"),
    include_str!("schema_v3_changes.sql"),
    include_str!("schema_v4_sealed_requests.sql"),
    include_str!("schema_v5_replay.sql"),
];

pub struct SqliteStore {
    writer: FairMutex<Connection>,
    reader: FairMutex<Connection>,
    seen: seen::SeenRequests,
}

impl SqliteStore {
    /// Opens (creating if needed) `certbind.db` in `dir` and brings its schema up to date.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::open(&dir.join("certbind.db"))
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        make_private(path)?;
        let writer = Self::connect(path)?;
        migrate(&writer)?;
        let reader = Self::connect(path)?;
        let seen = seen::SeenRequests::new(Self::connect(path)?)?;
        Ok(SqliteStore { writer: FairMutex::new(writer), reader: FairMutex::new(reader), seen })
    }

    fn connect(path: &Path) -> Result<Connection, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;
             PRAGMA secure_delete = ON;
             PRAGMA cache_size = -16384;",
        )?;
        Ok(conn)
    }
}

/// The database and its `-wal` and `-shm` files are readable by the owner only. SQLite
/// gives the files it creates beside a database the database's own mode, so a new
/// database is created empty with mode 0600 before SQLite opens it; an older one is
/// narrowed to it.
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", path.display()));
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(io)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = path.with_file_name(format!("{}{suffix}", path.file_name().unwrap_or_default().to_string_lossy()));
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew { found: version, supported });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {};\nCOMMIT;", index + 1))?;
        tracing::info!(version = index + 1, "applied schema migration");
    }
    Ok(())
}

impl Store for SqliteStore {
    fn write(&self) -> Result<Box<dyn Tx + '_>, StoreError> {
        let guard = self.writer.lock();
        Ok(Box::new(tx::SqliteTx::begin(guard, "BEGIN IMMEDIATE")?))
    }

    fn read(&self) -> Result<Box<dyn Tx + '_>, StoreError> {
        let guard = self.reader.lock();
        Ok(Box::new(tx::SqliteTx::begin(guard, "BEGIN")?))
    }

    fn remember_request(
        &self,
        scope: &str,
        key: &str,
        action: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<SeenRequest, StoreError> {
        self.seen.remember(scope, key, action, expires_at, now)
    }

    fn probe_write(&self, now: i64) -> Result<(), StoreError> {
        let conn = self.writer.lock();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let written = conn.execute(
            "INSERT INTO meta (key, value) VALUES ('write_probe', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [now],
        );
        match written.map_err(StoreError::from).and_then(|_| Ok(conn.execute_batch("COMMIT")?)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}
