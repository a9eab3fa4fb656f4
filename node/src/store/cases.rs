//! Cases, their control operations and cached epoch keys.

use super::*;

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

/// The rows of the cases `filter` (a WHERE clause, or nothing) keeps, in
/// row order.
fn case_rows(c: &Connection, filter: &str, params: impl rusqlite::Params) -> Result<Vec<CaseRow>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT id, case_id, sealed_meta FROM cases {filter} ORDER BY id"
    ))?;
    let rows = s
        .query_map(params, case_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn list_cases(c: &Connection) -> Result<Vec<CaseRow>> {
    case_rows(c, "", [])
}

/// The cases with an entry, control operation or proof of equivocation
/// stored after `mark`, in the order of [`list_cases`].
pub fn cases_changed_since(c: &Connection, mark: &super::ChangeMark) -> Result<Vec<CaseRow>> {
    case_rows(
        c,
        "WHERE id IN (SELECT case_ref FROM entries WHERE id > ?1 \
         UNION SELECT case_ref FROM control_ops WHERE id > ?2 \
         UNION SELECT case_ref FROM equivocations WHERE id > ?3)",
        params![mark.entries, mark.control_ops, mark.equivocations],
    )
}

/// The cases holding entries with parts withheld from this node, in the
/// order of [`list_cases`] (most nodes hold none: a refill round then costs
/// this one query, not a look at every case).
pub fn cases_with_withheld_parts(c: &Connection) -> Result<Vec<CaseRow>> {
    case_rows(
        c,
        "WHERE id IN (SELECT e.case_ref FROM withheld_parts w JOIN entries e ON e.id = w.entry_ref)",
        [],
    )
}

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
pub(super) fn stored_op(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredOp> {
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
