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

// ---- meta ----

pub fn meta_get(c: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(
        query_one(c, "SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?,
    )
}

pub fn meta_put(c: &Connection, key: &str, value: &[u8]) -> Result<()> {
    exec(
        c,
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![key, value],
    )?;
    Ok(())
}

// ---- trust registry ----

/// Stores a registry statement; returns whether it was new.
pub fn insert_registry_op(c: &Connection, hash: &Hash, bytes: &[u8]) -> Result<bool> {
    Ok(exec(
        c,
        "INSERT OR IGNORE INTO registry_ops (hash, bytes) VALUES (?1, ?2)",
        params![&hash.0[..], bytes],
    )? > 0)
}

/// The hashes of the stored registry statements, in order: a fingerprint of the
/// registry without reading (or verifying) the statements.
pub fn registry_op_hashes(c: &Connection) -> Result<Vec<Hash>> {
    let mut s = c.prepare_cached("SELECT hash FROM registry_ops ORDER BY id")?;
    let rows = s
        .query_map([], |r| {
            let b: Vec<u8> = r.get(0)?;
            Ok(Hash::from_slice(&b).unwrap_or(Hash::ZERO))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Forgets the federation: its statements and its id (`federation leave`,
/// only for a node that holds no case; the caller checks).
pub fn forget_federation(c: &Connection) -> Result<()> {
    exec(c, "DELETE FROM registry_ops", [])?;
    exec(c, "DELETE FROM meta WHERE key = 'federation'", [])?;
    Ok(())
}

pub fn registry_ops(c: &Connection) -> Result<Vec<StoredOp>> {
    let mut s = c.prepare_cached("SELECT id, hash, bytes FROM registry_ops ORDER BY id")?;
    let rows = s
        .query_map([], |r| stored_op(r, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---- peers ----

pub fn add_peer(c: &Connection, addr: &str) -> Result<bool> {
    Ok(exec(c, "INSERT OR IGNORE INTO peers (addr) VALUES (?1)", [addr])? > 0)
}

/// A remembered peer: its address, when it last synced, and when `serve`
/// tries it next if it could not reach it.
pub struct PeerRow {
    pub addr: String,
    pub last_sync: Option<String>,
    pub next_dial: Option<String>,
}

pub fn peers(c: &Connection) -> Result<Vec<PeerRow>> {
    let mut s = c.prepare_cached("SELECT addr, last_sync, next_dial FROM peers ORDER BY id")?;
    let rows = s
        .query_map([], |r| {
            Ok(PeerRow {
                addr: r.get(0)?,
                last_sync: r.get(1)?,
                next_dial: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Records when `serve` will next dial `addr` (None: connected).
pub fn set_peer_next_dial(c: &Connection, addr: &str, when: Option<&str>) -> Result<()> {
    exec(
        c,
        "UPDATE peers SET next_dial = ?2 WHERE addr = ?1",
        params![addr, when],
    )?;
    Ok(())
}

pub fn peer_synced(c: &Connection, peer_id: &str, when: &str) -> Result<()> {
    exec(
        c,
        "UPDATE peers SET last_sync = ?2 WHERE addr LIKE '%/p2p/' || ?1",
        params![peer_id, when],
    )?;
    Ok(())
}

// ---- cases ----

pub struct CaseRow {
    pub case_ref: i64,
    pub case_id: [u8; 16],
    pub sealed_meta: Vec<u8>,
}

pub fn insert_case(c: &Connection, case_id: &[u8; 16], sealed_meta: &[u8]) -> Result<i64> {
    exec(
        c,
        "INSERT INTO cases (case_id, sealed_meta) VALUES (?1, ?2)",
        params![&case_id[..], sealed_meta],
    )?;
    Ok(c.last_insert_rowid())
}

fn case_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRow> {
    let id: Vec<u8> = r.get(1)?;
    let mut case_id = [0u8; 16];
    if id.len() == 16 {
        case_id.copy_from_slice(&id);
    }
    Ok(CaseRow {
        case_ref: r.get(0)?,
        case_id,
        sealed_meta: r.get(2)?,
    })
}

pub fn case_by_id(c: &Connection, case_id: &[u8; 16]) -> Result<Option<CaseRow>> {
    Ok(query_one(
        c,
        "SELECT id, case_id, sealed_meta FROM cases WHERE case_id = ?1",
        [&case_id[..]],
        case_row,
    )
    .optional()?)
}

pub fn case_by_ref(c: &Connection, case_ref: i64) -> Result<Option<CaseRow>> {
    Ok(query_one(
        c,
        "SELECT id, case_id, sealed_meta FROM cases WHERE id = ?1",
        [case_ref],
        case_row,
    )
    .optional()?)
}

pub fn list_cases(c: &Connection) -> Result<Vec<CaseRow>> {
    let mut s = c.prepare_cached("SELECT id, case_id, sealed_meta FROM cases ORDER BY id")?;
    let rows = s
        .query_map([], case_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---- control operations ----

pub fn insert_control_op(c: &Connection, case_ref: i64, hash: &Hash, bytes: &[u8]) -> Result<()> {
    exec(
        c,
        "INSERT OR IGNORE INTO control_ops (case_ref, hash, bytes) VALUES (?1, ?2, ?3)",
        params![case_ref, &hash.0[..], bytes],
    )?;
    Ok(())
}

pub struct StoredOp {
    pub row: i64,
    pub hash: Hash,
    pub bytes: Vec<u8>,
}

/// Reads a `StoredOp` from columns `at`, `at + 1`, `at + 2` (id, hash, bytes).
fn stored_op(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredOp> {
    Ok(StoredOp {
        row: r.get(at)?,
        hash: hash_of(r.get(at + 1)?),
        bytes: r.get(at + 2)?,
    })
}

pub fn control_ops(c: &Connection, case_ref: i64) -> Result<Vec<StoredOp>> {
    let mut s = c.prepare_cached(
        "SELECT id, hash, bytes FROM control_ops WHERE case_ref = ?1 ORDER BY id",
    )?;
    let rows = s
        .query_map([case_ref], |r| stored_op(r, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The hashes of a case's control operations, in the order they were stored.
pub fn control_op_hashes(c: &Connection, case_ref: i64) -> Result<Vec<Hash>> {
    let mut s = c.prepare_cached("SELECT hash FROM control_ops WHERE case_ref = ?1 ORDER BY id")?;
    let rows = s
        .query_map([case_ref], |r| Ok(hash_of(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn all_control_ops(c: &Connection) -> Result<Vec<(i64, StoredOp)>> {
    let mut s = c.prepare_cached(
        "SELECT case_ref, id, hash, bytes FROM control_ops ORDER BY case_ref, id",
    )?;
    let rows = s
        .query_map([], |r| Ok((r.get(0)?, stored_op(r, 1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---- epoch keys ----

pub fn put_epoch_key(c: &Connection, case_ref: i64, epoch: &Hash, sealed: &[u8]) -> Result<()> {
    exec(
        c,
        "INSERT OR IGNORE INTO epoch_keys (case_ref, epoch, sealed_key) VALUES (?1, ?2, ?3)",
        params![case_ref, &epoch.0[..], sealed],
    )?;
    Ok(())
}

pub fn epoch_keys(c: &Connection, case_ref: i64) -> Result<Vec<(Hash, Vec<u8>)>> {
    let mut s = c.prepare_cached("SELECT epoch, sealed_key FROM epoch_keys WHERE case_ref = ?1")?;
    let rows = s
        .query_map([case_ref], |r| Ok((hash_of(r.get(0)?), r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---- entries ----

pub struct StoredEntry {
    pub row: i64,
    pub case_ref: i64,
    pub author: Vec<u8>,
    pub seq: i64,
    pub hash: Hash,
    pub bytes: Vec<u8>,
}

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEntry> {
    Ok(StoredEntry {
        row: r.get(0)?,
        case_ref: r.get(1)?,
        author: r.get(2)?,
        seq: r.get(3)?,
        hash: hash_of(r.get(4)?),
        bytes: r.get(5)?,
    })
}

const ENTRY_COLS: &str = "e.id, e.case_ref, e.author, e.seq, e.hash, e.bytes";

pub fn insert_entry(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
    hash: &Hash,
    bytes: &[u8],
) -> Result<i64> {
    exec(
        c,
        "INSERT INTO entries (case_ref, author, seq, hash, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![case_ref, &author[..], seq as i64, &hash.0[..], bytes],
    )?;
    Ok(c.last_insert_rowid())
}

/// The last (seq, hash) of one author's log in a case.
pub fn log_head(c: &Connection, case_ref: i64, author: &[u8; 32]) -> Result<Option<(u64, Hash)>> {
    Ok(c
        .query_row(
            "SELECT seq, hash FROM entries WHERE case_ref = ?1 AND author = ?2 ORDER BY seq DESC LIMIT 1",
            params![case_ref, &author[..]],
            |r| Ok((r.get::<_, i64>(0)? as u64, hash_of(r.get(1)?))),
        )
        .optional()?)
}

/// The last (seq, hash) of every chain of one author's log in a case.
pub fn chain_heads(c: &Connection, case_ref: i64, author: &[u8; 32]) -> Result<Vec<(u64, Hash)>> {
    let mut s = c.prepare_cached(
        "SELECT MAX(seq), hash FROM entries WHERE case_ref = ?1 AND author = ?2 \
         GROUP BY seq >> 32 ORDER BY MAX(seq)",
    )?;
    let rows = s
        .query_map(params![case_ref, &author[..]], |r| {
            Ok((r.get::<_, i64>(0)? as u64, hash_of(r.get(1)?)))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The seq of `author`'s entry with `hash` in a case, if held (where a new
/// chain of its log starts from).
pub fn seq_of_entry(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    hash: &Hash,
) -> Result<Option<u64>> {
    Ok(query_one(
        c,
        "SELECT seq FROM entries WHERE case_ref = ?1 AND author = ?2 AND hash = ?3",
        params![case_ref, &author[..], &hash.0[..]],
        |r| Ok(r.get::<_, i64>(0)? as u64),
    )
    .optional()?)
}

/// The hash of the entry at (author, seq) of a case, if held.
pub fn entry_hash_at(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
) -> Result<Option<Hash>> {
    Ok(query_one(
        c,
        "SELECT hash FROM entries WHERE case_ref = ?1 AND author = ?2 AND seq = ?3",
        params![case_ref, &author[..], seq as i64],
        |r| Ok(hash_of(r.get(0)?)),
    )
    .optional()?)
}

/// The last (seq, hash) of every chain of every author's log in a case
/// (`entry::chain_of`), ordered by author and seq.
pub fn log_heads(c: &Connection, case_ref: i64) -> Result<Vec<([u8; 32], u64, Hash)>> {
    let mut s = c.prepare_cached(
        "SELECT author, MAX(seq), hash FROM entries WHERE case_ref = ?1 \
         GROUP BY author, seq >> 32 ORDER BY author, MAX(seq)",
    )?;
    let rows = s
        .query_map([case_ref], |r| {
            let author = key_of(r.get(0)?);
            Ok((author, r.get::<_, i64>(1)? as u64, hash_of(r.get(2)?)))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The entries that carry a record's changes. `None` in the list marks a link to
/// an entry that is no longer there (a hand-edited store); callers must refuse.
pub fn entries_of_record(c: &Connection, record_ref: i64) -> Result<Vec<Option<StoredEntry>>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM record_entries re LEFT JOIN entries e ON e.id = re.entry_ref \
         WHERE re.record_ref = ?1 ORDER BY re.entry_ref"
    ))?;
    let rows = s
        .query_map([record_ref], |r| match r.get::<_, Option<i64>>(0)? {
            Some(_) => entry_row(r).map(Some),
            None => Ok(None),
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Calls `f` for every stored entry in (case, author, seq) order, one at a time,
/// so verifying a large store does not hold it all in memory.
pub fn for_each_entry(c: &Connection, mut f: impl FnMut(StoredEntry)) -> Result<()> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM entries e ORDER BY e.case_ref, e.author, e.seq"
    ))?;
    let mut rows = s.query([])?;
    while let Some(r) = rows.next()? {
        f(entry_row(r)?);
    }
    Ok(())
}

/// Every entry of one case, in (author, seq) order.
pub fn for_each_entry_of_case(
    c: &Connection,
    case_ref: i64,
    mut f: impl FnMut(StoredEntry),
) -> Result<()> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM entries e WHERE e.case_ref = ?1 ORDER BY e.author, e.seq"
    ))?;
    let mut rows = s.query([case_ref])?;
    while let Some(r) = rows.next()? {
        f(entry_row(r)?);
    }
    Ok(())
}

/// Up to `limit` entries of one author's log after `seq`, in order.
pub fn entries_after(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM entries e WHERE e.case_ref = ?1 AND e.author = ?2 AND e.seq > ?3 ORDER BY e.seq LIMIT ?4"
    ))?;
    let rows = s
        .query_map(
            params![case_ref, &author[..], seq as i64, limit as i64],
            entry_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---- equivocation: proofs and frozen logs ----

/// Records a proof that `author` equivocated at `seq` in a case; keeps the
/// lowest seq if there are several. Returns the seq the log is frozen before.
pub fn insert_equivocation(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
    entry_a: &[u8],
    entry_b: &[u8],
) -> Result<u64> {
    exec(
        c,
        "INSERT INTO equivocations (case_ref, author, seq, entry_a, entry_b) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (case_ref, author) DO UPDATE SET seq = excluded.seq, entry_a = excluded.entry_a, entry_b = excluded.entry_b \
         WHERE excluded.seq < equivocations.seq",
        params![case_ref, &author[..], seq as i64, entry_a, entry_b],
    )?;
    Ok(query_one(
        c,
        "SELECT seq FROM equivocations WHERE case_ref = ?1 AND author = ?2",
        params![case_ref, &author[..]],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// A proof of equivocation: the author, the seq, and the two entries.
pub struct Equivocation {
    pub author: [u8; 32],
    pub seq: u64,
    pub entry_a: Vec<u8>,
    pub entry_b: Vec<u8>,
}

pub fn equivocations(c: &Connection, case_ref: i64) -> Result<Vec<Equivocation>> {
    let mut s = c.prepare_cached(
        "SELECT author, seq, entry_a, entry_b FROM equivocations WHERE case_ref = ?1 ORDER BY author",
    )?;
    let rows = s
        .query_map([case_ref], |r| {
            let author = key_of(r.get(0)?);
            Ok(Equivocation {
                author,
                seq: r.get::<_, i64>(1)? as u64,
                entry_a: r.get(2)?,
                entry_b: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Every author proved to have equivocated, with the number of cases.
pub fn equivocators(c: &Connection) -> Result<Vec<([u8; 32], u64)>> {
    let mut s = c.prepare_cached("SELECT author, COUNT(*) FROM equivocations GROUP BY author")?;
    let rows = s
        .query_map([], |r| {
            let author = key_of(r.get(0)?);
            Ok((author, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Removes an author's entries from `seq` on in a case (a frozen log), with
/// their links and waiting copies; returns the records they touched.
pub fn remove_entries_from(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
) -> Result<Vec<i64>> {
    remove_entries_in(c, case_ref, author, seq..=i64::MAX as u64)
}

/// Takes out `author`'s entries with a seq in `seqs` (one chain's tail: a
/// removal's cut is per chain); returns the records they touched.
pub fn remove_entries_in(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seqs: std::ops::RangeInclusive<u64>,
) -> Result<Vec<i64>> {
    let (from, to) = (*seqs.start() as i64, *seqs.end() as i64);
    let mut s = c.prepare_cached(
        "SELECT DISTINCT re.record_ref FROM record_entries re JOIN entries e ON e.id = re.entry_ref \
         WHERE e.case_ref = ?1 AND e.author = ?2 AND e.seq >= ?3 AND e.seq <= ?4",
    )?;
    let records = s
        .query_map(params![case_ref, &author[..], from, to], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    exec(
        c,
        "DELETE FROM record_entries WHERE entry_ref IN \
         (SELECT id FROM entries WHERE case_ref = ?1 AND author = ?2 AND seq >= ?3 AND seq <= ?4)",
        params![case_ref, &author[..], from, to],
    )?;
    exec(
        c,
        "DELETE FROM entries WHERE case_ref = ?1 AND author = ?2 AND seq >= ?3 AND seq <= ?4",
        params![case_ref, &author[..], from, to],
    )?;
    Ok(records)
}

pub fn record_by_row(c: &Connection, row: i64) -> Result<Option<RecordRow>> {
    Ok(query_one(
        c,
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records WHERE id = ?1",
        [row],
        record_row,
    )
    .optional()?)
}

/// Replaces a record's materialized state (snapshot `None`: a single change).
pub fn set_record(
    c: &Connection,
    row: i64,
    snapshot: Option<&[u8]>,
    view: &[u8],
    log_digest: &Hash,
) -> Result<()> {
    exec(
        c,
        "UPDATE records SET snapshot = ?2, view = ?3, log_digest = ?4 WHERE id = ?1",
        params![row, snapshot, view, &log_digest.0[..]],
    )?;
    Ok(())
}

/// The hashes of the entries linked to a record, in the order they were
/// stored: what `log::record_log_digest` is computed over.
pub fn record_entry_hashes(c: &Connection, record_ref: i64) -> Result<Vec<Hash>> {
    let mut s = c.prepare_cached(
        "SELECT e.hash FROM record_entries re JOIN entries e ON e.id = re.entry_ref \
         WHERE re.record_ref = ?1 ORDER BY re.entry_ref",
    )?;
    let rows = s
        .query_map([record_ref], |r| Ok(hash_of(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Every record's row and stored log digest, for `log verify`.
pub fn record_digests(c: &Connection) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut s = c.prepare_cached("SELECT id, log_digest FROM records ORDER BY id")?;
    let rows = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn delete_record(c: &Connection, row: i64) -> Result<()> {
    exec(c, "DELETE FROM record_entries WHERE record_ref = ?1", [row])?;
    exec(c, "DELETE FROM records WHERE id = ?1", [row])?;
    Ok(())
}

// ---- entries waiting for what they build on ----

/// Keeps an entry that cannot be applied yet; returns whether it was new.
pub fn insert_waiting(
    c: &Connection,
    case_ref: i64,
    hash: &Hash,
    bytes: &[u8],
    source: &str,
) -> Result<bool> {
    Ok(exec(
        c,
        "INSERT OR IGNORE INTO waiting_entries (case_ref, hash, bytes, source) VALUES (?1, ?2, ?3, ?4)",
        params![case_ref, &hash.0[..], bytes, source],
    )? > 0)
}

/// The waiting entries of a case: (row, bytes).
pub fn waiting_in_case(c: &Connection, case_ref: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut s =
        c.prepare_cached("SELECT id, bytes FROM waiting_entries WHERE case_ref = ?1 ORDER BY id")?;
    let rows = s
        .query_map([case_ref], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn delete_waiting(c: &Connection, row: i64) -> Result<()> {
    exec(c, "DELETE FROM waiting_entries WHERE id = ?1", [row])?;
    Ok(())
}

/// How many entries of a case wait for entries they build on.
pub fn waiting_count(c: &Connection, case_ref: i64) -> Result<u64> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM waiting_entries WHERE case_ref = ?1",
        [case_ref],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// How many entries, and how many bytes, wait from `source`.
pub fn waiting_from(c: &Connection, source: &str) -> Result<(u64, u64)> {
    Ok(query_one(
        c,
        "SELECT COUNT(*), IFNULL(SUM(length(bytes)), 0) FROM waiting_entries WHERE source = ?1",
        [source],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// How many entries, and how many bytes, wait in all (every source).
pub fn waiting_total(c: &Connection) -> Result<(u64, u64)> {
    Ok(query_one(
        c,
        "SELECT COUNT(*), IFNULL(SUM(length(bytes)), 0) FROM waiting_entries",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// A number that changes whenever anything is appended to the store (by this or
/// another process): how `serve` notices local writes to push.
pub fn change_marker(c: &Connection) -> Result<(i64, i64, i64)> {
    Ok(query_one(
        c,
        "SELECT (SELECT IFNULL(MAX(id), 0) FROM entries), (SELECT IFNULL(MAX(id), 0) FROM control_ops), (SELECT IFNULL(MAX(id), 0) FROM registry_ops)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}

pub fn entry_count(c: &Connection, case_ref: i64) -> Result<u64> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM entries WHERE case_ref = ?1",
        [case_ref],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

// ---- records ----

pub struct RecordRow {
    pub row: i64,
    pub case_ref: i64,
    pub rid_index: [u8; 32],
    pub snapshot: Option<Vec<u8>>,
    pub view: Vec<u8>,
    /// What the view and snapshot were built from (`log::record_log_digest`).
    pub log_digest: Vec<u8>,
}

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    let idx: Vec<u8> = r.get(4)?;
    let mut rid_index = [0u8; 32];
    if idx.len() == 32 {
        rid_index.copy_from_slice(&idx);
    }
    Ok(RecordRow {
        row: r.get(0)?,
        case_ref: r.get(1)?,
        rid_index,
        snapshot: r.get(2)?,
        view: r.get(3)?,
        log_digest: r.get(5)?,
    })
}

/// `restricted`: the record has a releasable_to list (fixed when it is made).
pub fn insert_record(
    c: &Connection,
    case_ref: i64,
    rid_index: &[u8; 32],
    type_index: &[u8; 32],
    view: &[u8],
    restricted: bool,
    log_digest: &Hash,
) -> Result<i64> {
    let mut s = c.prepare_cached(
        "INSERT INTO records (case_ref, rid_index, type_index, snapshot, view, restricted, log_digest) VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6)",
    )?;
    s.execute(params![
        case_ref,
        &rid_index[..],
        &type_index[..],
        view,
        restricted as i64,
        &log_digest.0[..]
    ])?;
    Ok(c.last_insert_rowid())
}

/// The records of a case that have a releasable_to list (or were stored
/// before that was recorded).
pub fn restricted_records(c: &Connection, case_ref: i64) -> Result<Vec<RecordRow>> {
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records WHERE case_ref = ?1 AND restricted = 1 ORDER BY id",
    )?;
    Ok(s.query_map([case_ref], record_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn update_record(
    c: &Connection,
    row: i64,
    snapshot: &[u8],
    view: &[u8],
    log_digest: &Hash,
) -> Result<()> {
    set_record(c, row, Some(snapshot), view, log_digest)
}

pub fn link_record_entry(c: &Connection, record_ref: i64, entry_ref: i64) -> Result<()> {
    let mut s = c.prepare_cached(
        "INSERT OR IGNORE INTO record_entries (record_ref, entry_ref) VALUES (?1, ?2)",
    )?;
    s.execute(params![record_ref, entry_ref])?;
    Ok(())
}

/// The record with this id in this case (a record id is unique per case).
pub fn record_in_case(
    c: &Connection,
    case_ref: i64,
    rid_index: &[u8; 32],
) -> Result<Option<RecordRow>> {
    Ok(query_one(
        c,
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records WHERE case_ref = ?1 AND rid_index = ?2",
        params![case_ref, &rid_index[..]],
        record_row,
    )
    .optional()?)
}

/// Every record with this id, in any case (at most a few: each case has its own).
pub fn records_by_index(c: &Connection, rid_index: &[u8; 32]) -> Result<Vec<RecordRow>> {
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records WHERE rid_index = ?1 ORDER BY id LIMIT 16",
    )?;
    Ok(s.query_map([&rid_index[..]], record_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn records_in_case(
    c: &Connection,
    case_ref: i64,
    type_index: Option<&[u8; 32]>,
) -> Result<Vec<RecordRow>> {
    let rows = match type_index {
        Some(t) => {
            let mut s = c.prepare_cached(
                "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records WHERE case_ref = ?1 AND type_index = ?2 ORDER BY id",
            )?;
            s.query_map(params![case_ref, &t[..]], record_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        None => {
            let mut s = c.prepare_cached("SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records WHERE case_ref = ?1 ORDER BY id")?;
            s.query_map([case_ref], record_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    Ok(rows)
}

/// Record rows whose history is incomplete: linked to an entry that is gone, or
/// linked to no entry at all (a hand-edited store).
pub fn records_with_missing_entries(c: &Connection) -> Result<Vec<i64>> {
    let mut s = c.prepare_cached(
        "SELECT r.id FROM records r WHERE NOT EXISTS (SELECT 1 FROM record_entries re WHERE re.record_ref = r.id) \
         UNION SELECT re.record_ref FROM record_entries re LEFT JOIN entries e ON e.id = re.entry_ref WHERE e.id IS NULL \
         ORDER BY 1",
    )?;
    let rows = s
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(rows)
}

pub fn record_count(c: &Connection, case_ref: i64) -> Result<u64> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM records WHERE case_ref = ?1",
        [case_ref],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

// ---- audit ----

/// One stored audit row (`seq`, sealed entry, link hash, signature).
pub struct AuditRow {
    pub seq: u64,
    pub sealed: Vec<u8>,
    pub hash: Vec<u8>,
    pub signature: Vec<u8>,
}

const AUDIT_HEAD: &str = "audit_head";

/// The head recorded with the last audit entry: its seq, link hash and the
/// node's signature of both (empty where a store predates the signature).
pub fn audit_head(c: &Connection) -> Result<Option<casesync_schema::audit::Head>> {
    // Read leniently (a head without its signature fails `audit verify`,
    // which says so, rather than this read).
    Ok(meta_get(c, AUDIT_HEAD)?.and_then(|v| {
        let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
        Some(casesync_schema::audit::Head {
            seq,
            hash: Hash::from_slice(v.get(8..40)?)?,
            signature: v.get(40..).unwrap_or_default().to_vec(),
        })
    }))
}

/// Appends one audit row and moves the head to it (inside the caller's
/// transaction, with the action it records).
pub fn audit_append(
    c: &Connection,
    seq: u64,
    case_index: Option<&[u8; 32]>,
    sealed: &[u8],
    hash: &Hash,
    signature: &[u8],
    head: &casesync_schema::audit::Head,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO audit_log (seq, case_index, sealed, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            seq as i64,
            case_index.map(|x| &x[..]),
            sealed,
            &hash.0[..],
            signature
        ],
    )?;
    meta_put(c, AUDIT_HEAD, &head.encode())
}

/// The audit head a peer last showed (its encoded bytes).
pub fn peer_audit_head(c: &Connection, peer: &[u8; 32]) -> Result<Option<Vec<u8>>> {
    Ok(query_one(
        c,
        "SELECT head FROM peer_audit_heads WHERE peer = ?1",
        [&peer[..]],
        |r| r.get(0),
    )
    .optional()?)
}

pub fn put_peer_audit_head(c: &Connection, peer: &[u8; 32], seq: u64, head: &[u8]) -> Result<()> {
    exec(
        c,
        "INSERT INTO peer_audit_heads (peer, seq, head) VALUES (?1, ?2, ?3) ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq, head = excluded.head",
        params![&peer[..], seq as i64, head],
    )?;
    Ok(())
}

/// Every audit row in seq order (optionally one case's), for `f`.
pub fn for_each_audit_row<E: From<StoreError>>(
    c: &Connection,
    case_index: Option<&[u8; 32]>,
    mut f: impl FnMut(AuditRow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut s = c.prepare_cached(
        "SELECT seq, sealed, hash, signature FROM audit_log WHERE ?1 IS NULL OR case_index = ?1 ORDER BY seq",
    )
    .map_err(StoreError::from)?;
    let mut rows = s
        .query(params![case_index.map(|x| &x[..])])
        .map_err(StoreError::from)?;
    while let Some(r) = rows.next().map_err(StoreError::from)? {
        let row = (|| {
            // Columns read as whatever bytes they hold: a hand-edited row may
            // have changed type, and must fail verification, not the read.
            let bytes = |i: usize| -> rusqlite::Result<Vec<u8>> {
                Ok(r.get_ref(i)?
                    .as_bytes()
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default())
            };
            Ok::<_, rusqlite::Error>(AuditRow {
                seq: r.get::<_, i64>(0)? as u64,
                sealed: bytes(1)?,
                hash: bytes(2)?,
                signature: bytes(3)?,
            })
        })()
        .map_err(StoreError::from)?;
        f(row)?;
    }
    Ok(())
}

pub fn insert_audit_pending(c: &Connection, entry: &str) -> Result<()> {
    exec(c, "INSERT INTO audit_pending (entry) VALUES (?1)", [entry])?;
    Ok(())
}

/// Events waiting to join the chain, oldest first: (row, entry JSON).
pub fn audit_pending(c: &Connection) -> Result<Vec<(i64, String)>> {
    let mut s = c.prepare_cached("SELECT id, entry FROM audit_pending ORDER BY id")?;
    let rows = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn delete_audit_pending(c: &Connection, row: i64) -> Result<()> {
    exec(c, "DELETE FROM audit_pending WHERE id = ?1", [row])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_a_fresh_database_and_are_idempotent() {
        let dir = std::env::temp_dir().join(format!("casesync-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        drop(Store::open(&path).unwrap());
        let s = Store::open(&path).unwrap();
        let v: i64 = s
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        s.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store of schema 8 with a record and its entry upgrades to 9 with
    /// every row and reference kept, and the same record id may then exist
    /// once per case.
    #[test]
    fn records_move_to_ids_per_case_with_every_reference_kept() {
        let dir = std::env::temp_dir().join(format!("casesync-store-v8-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        {
            let mut c = Connection::open(&path).unwrap();
            configure(&c).unwrap();
            c.pragma_update(None, "foreign_keys", "OFF").unwrap();
            let tx = c.transaction().unwrap();
            for sql in &MIGRATIONS[..8] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 8).unwrap();
            tx.execute_batch(
                "INSERT INTO cases (id, case_id, sealed_meta) VALUES (1, x'01', x'00'), (2, x'02', x'00');
                 INSERT INTO entries (id, case_ref, author, seq, hash, bytes) VALUES (5, 1, x'aa', 1, x'bb', x'cc');
                 INSERT INTO records (id, case_ref, rid_index, type_index, snapshot, view) VALUES (7, 1, x'99', x'98', NULL, x'97');
                 INSERT INTO record_entries (record_ref, entry_ref) VALUES (7, 5);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        let c = s.conn();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let fk: i64 = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on");
        let kept: (i64, i64) = c
            .query_row(
                "SELECT r.id, re.entry_ref FROM records r JOIN record_entries re ON re.record_ref = r.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (7, 5));
        // The same id in another case is another record; twice in one case is refused.
        c.execute(
            "INSERT INTO records (case_ref, rid_index, type_index, view) VALUES (2, x'99', x'98', x'97')",
            [],
        )
        .unwrap();
        assert!(
            c.execute(
                "INSERT INTO records (case_ref, rid_index, type_index, view) VALUES (1, x'99', x'98', x'97')",
                [],
            )
            .is_err()
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
