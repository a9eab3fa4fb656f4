//! Records: sealed views and snapshots, and which entries carry each.

use super::*;

pub struct RecordRow {
    pub row: i64,
    pub case_ref: i64,
    pub rid_index: [u8; 32],
    pub snapshot: Option<Vec<u8>>,
    pub view: Vec<u8>,
    /// What the view and snapshot were built from (`log::record_log_digest`).
    pub log_digest: Vec<u8>,
}

pub(super) fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
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

/// `restricted`: the record may be kept from a member (`RecordView::restricted`:
/// a releasable_to list, or handling code H2).
pub fn insert_record(
    c: &Connection,
    case_ref: i64,
    (rid_index, tag): (&[u8; 32], &[u8; 16]),
    type_index: &[u8; 16],
    view: &[u8],
    restricted: bool,
    log_digest: &Hash,
) -> Result<i64> {
    let mut s = c.prepare_cached(
        "INSERT INTO records (case_ref, rid_index, type_index, snapshot, view, restricted, log_digest, tag) VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7)",
    )?;
    s.execute(params![
        case_ref,
        &rid_index[..],
        &type_index[..],
        view,
        restricted as i64,
        &log_digest.0[..],
        &tag[..]
    ])?;
    Ok(c.last_insert_rowid())
}

/// The record of a case with entry tag `tag`, if this node holds it (and
/// stored it since tags were kept).
pub fn record_by_tag(c: &Connection, case_ref: i64, tag: &[u8; 16]) -> Result<Option<RecordRow>> {
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records WHERE case_ref = ?1 AND tag = ?2",
    )?;
    Ok(s.query_row(params![case_ref, &tag[..]], record_row)
        .optional()?)
}

/// The records of a case that may be kept from a member (a releasable_to
/// list or handling code H2; or stored before that was recorded).
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
    restricted: bool,
) -> Result<()> {
    set_record(c, row, Some(snapshot), view, log_digest, restricted)
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

/// Every record row of a case, snapshots included, in row order.
pub fn records_in_case(c: &Connection, case_ref: i64) -> Result<Vec<RecordRow>> {
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records WHERE case_ref = ?1 ORDER BY id",
    )?;
    Ok(s.query_map([case_ref], record_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Up to `limit` record rows of a case whose entry tag sorts after `after`
/// (empty: from the start), in tag order, optionally of one type, without
/// their snapshots: a page of a listing. Tags are the same on every node
/// (`schema::entry::record_tag`), so is the order; read through the
/// `(case_ref, tag)` index.
pub fn records_page(
    c: &Connection,
    case_ref: i64,
    type_index: Option<&[u8; 16]>,
    after: &[u8],
    (limit, max_bytes): (usize, usize),
) -> Result<Vec<(RecordRow, Vec<u8>)>> {
    let n = i64::try_from(limit).unwrap_or(i64::MAX);
    let with_tag = |r: &rusqlite::Row<'_>| Ok((record_row(r)?, r.get::<_, Vec<u8>>(6)?));
    // Records may be up to 512 KiB: a page stops at `max_bytes` of views
    // too (after at least one).
    let within = within_bytes(max_bytes, |(r, _): &(RecordRow, Vec<u8>)| r.view.len());
    let rows = match type_index {
        Some(t) => {
            let mut s = c.prepare_cached(
                "SELECT id, case_ref, NULL, view, rid_index, log_digest, tag FROM records WHERE case_ref = ?1 AND tag > ?2 AND type_index = ?3 ORDER BY tag LIMIT ?4",
            )?;
            s.query_map(params![case_ref, after, &t[..], n], with_tag)?
                .take_while(within)
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        None => {
            let mut s = c.prepare_cached(
                "SELECT id, case_ref, NULL, view, rid_index, log_digest, tag FROM records WHERE case_ref = ?1 AND tag > ?2 ORDER BY tag LIMIT ?3",
            )?;
            s.query_map(params![case_ref, after, n], with_tag)?
                .take_while(within)
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    Ok(rows)
}

/// Rows of a case stored before records kept their tag (migration 024),
/// with their sealed views, at most `limit`.
pub fn records_without_tag(c: &Connection, case_ref: i64, limit: usize) -> Result<Vec<RecordRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, NULL, view, rid_index, log_digest FROM records WHERE case_ref = ?1 AND tag IS NULL LIMIT ?2",
    )?;
    Ok(s.query_map(params![case_ref, limit], record_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Gives record row `row` its entry tag.
pub fn set_record_tag(c: &Connection, row: i64, tag: &[u8; 16]) -> Result<()> {
    c.execute(
        "UPDATE records SET tag = ?2 WHERE id = ?1",
        params![row, &tag[..]],
    )?;
    Ok(())
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
    restricted: bool,
) -> Result<()> {
    exec(
        c,
        "UPDATE records SET snapshot = ?2, view = ?3, log_digest = ?4, restricted = ?5 WHERE id = ?1",
        params![row, snapshot, view, &log_digest.0[..], restricted as i64],
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

/// What changes whenever a record of the case may have changed: an entry
/// stored (a write, a sync, a waiting entry applied), a control operation (a
/// removal's cut takes entries out), a proved fork (entries frozen out), or a
/// record added or taken out. A cache of the case's views is good while this
/// stays the same.
pub fn records_stamp(c: &Connection, case_ref: i64) -> Result<[i64; 4]> {
    Ok(query_one(
        c,
        "SELECT (SELECT IFNULL(MAX(id), 0) FROM entries), (SELECT IFNULL(MAX(id), 0) FROM control_ops), \
         (SELECT COUNT(*) FROM equivocations WHERE case_ref = ?1), (SELECT COUNT(*) FROM records WHERE case_ref = ?1)",
        [case_ref],
        |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
    )?)
}

/// The records of a case that entries stored after `entry_id` changed (or
/// made): what a cache of the case's views read at `entry_id` must reopen.
pub fn records_changed_since(
    c: &Connection,
    case_ref: i64,
    entry_id: i64,
) -> Result<Vec<RecordRow>> {
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records \
         WHERE case_ref = ?1 AND id IN (SELECT record_ref FROM record_entries WHERE entry_ref > ?2) ORDER BY id",
    )?;
    let rows = s
        .query_map(params![case_ref, entry_id], record_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
