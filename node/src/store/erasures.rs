//! Erasures carried out here, and the rewriting of what held an erased record.

use super::*;

/// Whether this node carried out the erasure of `tag` in case `case_ref`.
pub fn erasure_done(c: &Connection, case_ref: i64, tag: &[u8; 16]) -> Result<bool> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM erasures_done WHERE case_ref = ?1 AND tag = ?2",
        params![case_ref, &tag[..]],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

pub fn note_erasure_done(
    c: &Connection,
    case_ref: i64,
    tag: &[u8; 16],
    op: &Hash,
    done_ms: i64,
    entries: i64,
) -> Result<()> {
    exec(
        c,
        "INSERT OR IGNORE INTO erasures_done (case_ref, tag, op, done_ms, entries) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![case_ref, &tag[..], &op.0[..], done_ms, entries],
    )?;
    Ok(())
}

/// Every stored entry of a case, row and bytes (for the erasure of a record
/// this node never held as a row: its entries are found by their parts).
pub fn entry_bytes_of_case(c: &Connection, case_ref: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut s =
        c.prepare_cached("SELECT id, bytes FROM entries WHERE case_ref = ?1 ORDER BY id")?;
    Ok(s.query_map([case_ref], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Entries waiting for what they build on, of a case: row and bytes.
pub fn waiting_bytes_of_case(c: &Connection, case_ref: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut s =
        c.prepare_cached("SELECT id, bytes FROM waiting_entries WHERE case_ref = ?1 ORDER BY id")?;
    Ok(s.query_map([case_ref], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Replaces an entry's bytes with the same entry, a record's parts erased
/// (its hash, which the row keeps, is unchanged).
pub fn rewrite_entry(c: &Connection, row: i64, bytes: &[u8]) -> Result<()> {
    exec(
        c,
        "UPDATE entries SET bytes = ?2 WHERE id = ?1",
        params![row, bytes],
    )?;
    Ok(())
}

pub fn rewrite_waiting(c: &Connection, row: i64, bytes: &[u8]) -> Result<()> {
    exec(
        c,
        "UPDATE waiting_entries SET bytes = ?2 WHERE id = ?1",
        params![row, bytes],
    )?;
    Ok(())
}
