//! The SQLite store: the only module that writes SQL.
//!
//! One database per node, WAL mode, foreign keys on, `synchronous = FULL` so a
//! write a command reports as done survives a power cut. Migrations are
//! append-only and each runs in a transaction with its `user_version` bump.
//! Other modules get plain values in and out; they never see SQL.

use std::path::Path;
use std::time::Duration;

use casesync_crypto::Hash;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Migrations in order; index + 1 is the schema version. Only ever append.
const MIGRATIONS: &[&str] = &[
    include_str!("001_initial.sql"),
    include_str!("002_registry.sql"),
    include_str!("003_peers.sql"),
    include_str!("004_indexes.sql"),
    include_str!("005_waiting.sql"),
    include_str!("006_equivocations.sql"),
    include_str!("007_audit.sql"),
    include_str!("008_records_by_case.sql"),
    include_str!("009_record_ids_per_case.sql"),
    include_str!("010_restricted_records.sql"),
    include_str!("011_peer_audit_heads.sql"),
    include_str!("012_peer_next_dial.sql"),
    include_str!("013_record_log_digest.sql"),
    include_str!("014_users.sql"),
    include_str!("015_search.sql"),
    include_str!("016_match.sql"),
    include_str!("017_search_by_term.sql"),
    include_str!("018_evidence.sql"),
    include_str!("019_evidence_per_record.sql"),
    include_str!("020_erasures.sql"),
    include_str!("021_review.sql"),
    include_str!("022_approvals.sql"),
    include_str!("023_h2_and_provenance.sql"),
    include_str!("024_record_tags.sql"),
    include_str!("025_search_index.sql"),
    include_str!("026_record_row_size.sql"),
    include_str!("027_record_entries_by_entry.sql"),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(rusqlite::Error),
    /// SQLite rolled the transaction back: nothing of it was written.
    #[error(
        "the disk holding the data dir is full ({0}); nothing was written: free some space and try again"
    )]
    DiskFull(rusqlite::Error),
    #[error(
        "the store was written by a newer casesync (schema {found}, this build knows {known}); upgrade casesync"
    )]
    TooNew { found: i64, known: i64 },
    #[error(
        "upgrading the store to schema {version} would leave {broken} broken reference(s); nothing was changed: run `casesync log verify` and report this"
    )]
    Migration { version: usize, broken: i64 },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StoreError::DiskFull(e)
        } else {
            StoreError::Sql(e)
        }
    }
}

impl StoreError {
    /// SQLite could not read or write its files and said only "disk I/O
    /// error": the disk may be full (some writes to a full disk are reported
    /// so) or failing. A plain full disk is [`StoreError::DiskFull`].
    pub fn is_io_error(&self) -> bool {
        matches!(self, StoreError::Sql(e)
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
}

/// Runs one statement through the connection's statement cache: the same few
/// statements run once per entry or record in bulk work, and preparing each
/// anew was a tenth of receiving a case.
fn exec(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// [`exec`] for a query of one row.
fn query_one<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

/// For `take_while` over a query's rows: rows while fewer than `max_bytes`
/// (by `size`) have been read, so the row that reaches the bound is the
/// last one and the first is always taken. What a page or batch holds is
/// then bounded whatever the rows' sizes.
fn within_bytes<T>(
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> impl FnMut(&rusqlite::Result<T>) -> bool {
    let mut read = 0usize;
    move |row| {
        let go = read < max_bytes;
        if let Ok(r) = row {
            read = read.saturating_add(size(r));
        }
        go
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(Duration::from_secs(30))?;
    // Pragmas outside any transaction: journal_mode is ignored inside one.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Freed pages are zeroed, so deleted ciphertext does not linger in the file.
    conn.pragma_update(None, "secure_delete", "ON")?;
    // 32 MiB of page cache: bulk imports insert into indexes keyed by random
    // HMACs, which thrash the 2 MiB default.
    conn.pragma_update(None, "cache_size", -32768)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let current: i64 = query_one(conn, "PRAGMA user_version", [], |r| r.get(0))?;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    if current == known {
        return Ok(());
    }
    // SQLite's way to rebuild a table that others reference: foreign keys off
    // (only possible outside a transaction), then checked before each commit.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let r = run_migrations(conn, current);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    r
}

fn run_migrations(conn: &mut Connection, current: i64) -> Result<()> {
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-check under the write lock: another process may have migrated meanwhile.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        let broken: i64 =
            tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(StoreError::Migration {
                version: i + 1,
                broken,
            });
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Writes a consistent snapshot of the store to a new database file at `path`
/// (`VACUUM INTO`: one read transaction, so writers in other processes go on).
pub fn snapshot_into(c: &Connection, path: &str) -> Result<()> {
    c.execute("VACUUM INTO ?1", [path])?;
    Ok(())
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Store { conn })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in an IMMEDIATE transaction (the write lock is taken up front, so
    /// two processes never both read-then-write the same log) and commits it; any
    /// error rolls everything back, so a command either fully happens or not at all.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(StoreError::from)?;
        match f(&self.conn) {
            Ok(v) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(StoreError::from(e).into())
                }
            },
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Runs `f` in a read transaction: one consistent snapshot of the store
    /// (WAL), taking no write lock, so other connections write meanwhile.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(StoreError::from)?;
        let r = f(&self.conn);
        let _ = self.conn.execute_batch("COMMIT");
        r
    }

    /// Like [`Store::write`], but the commit does not wait for the disk
    /// (`synchronous = NORMAL` for this one transaction): a power cut may roll
    /// it back, never corrupt the store, and the next synced commit (any
    /// [`Store::write`]) makes it durable with everything before it. Only for
    /// items a peer pushed and can send again, received together with their
    /// audit entries (so a lost receipt loses its entry too); never for what a
    /// command reports as done, nor for an entry recording what left the node.
    pub fn write_unsynced<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::from)?;
        let r = self.write(f);
        // Back to FULL whatever happened; if even that fails, this connection
        // must not be used for writes a command reports as durable.
        match self.conn.pragma_update(None, "synchronous", "FULL") {
            Ok(()) => r,
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    /// Folds the WAL back into the database file (after a bulk write).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Runs `f` inside a savepoint of the caller's transaction: what `f` wrote is
/// kept if it returns `Ok` and undone if it returns `Err`, so one refused item of
/// a batch leaves no trace while the rest of the batch commits.
pub fn savepoint<T, E>(
    c: &Connection,
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> Result<std::result::Result<T, E>> {
    c.execute_batch("SAVEPOINT item")?;
    let r = f();
    match &r {
        Ok(_) => c.execute_batch("RELEASE item")?,
        Err(_) => c.execute_batch("ROLLBACK TO item; RELEASE item")?,
    }
    Ok(r)
}

/// A 32-byte key column (an author); zeros if the row was tampered to another length.
fn key_of(v: Vec<u8>) -> [u8; 32] {
    <[u8; 32]>::try_from(v.as_slice()).unwrap_or([0; 32])
}

fn hash_of(v: Vec<u8>) -> Hash {
    Hash::from_slice(&v).unwrap_or(Hash::ZERO)
}

mod approvals;
mod audit;
mod cases;
mod entries;
mod erasures;
mod evidence;
mod matching;
mod meta;
mod peers;
mod provenance;
mod records;
mod registry;
mod review;
mod search;
mod users;
pub use approvals::*;
pub use audit::*;
pub use cases::*;
pub use entries::*;
pub use erasures::*;
pub use evidence::*;
pub use matching::*;
pub use meta::*;
pub use peers::*;
pub use provenance::*;
pub use records::*;
pub use registry::*;
pub use review::*;
pub use search::*;
pub use users::*;
// Shared by the table families: a control operation or statement row.
use cases::stored_op;
