//! The deconfliction set (`match_set`) and each partner's daily quota.

use super::*;

/// The last entry stored: what the set was filled up to.
pub fn last_entry_id(c: &Connection) -> Result<i64> {
    Ok(query_one(
        c,
        "SELECT IFNULL(MAX(id), 0) FROM entries",
        [],
        |r| r.get(0),
    )?)
}

/// Records (of any case) that entries stored after `entry_id` changed or
/// made, after row `after`, in row order, at most `limit`.
pub fn records_changed_after(
    c: &Connection,
    entry_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordRow>> {
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records \
         WHERE id > ?2 AND id IN (SELECT record_ref FROM record_entries WHERE entry_ref > ?1) \
         ORDER BY id LIMIT ?3",
    )?;
    Ok(s.query_map(params![entry_id, after, limit], record_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// How many records entries stored after `entry_id` changed or made.
pub fn count_records_changed_after(c: &Connection, entry_id: i64) -> Result<u64> {
    Ok(query_one(
        c,
        "SELECT COUNT(DISTINCT record_ref) FROM record_entries WHERE entry_ref > ?1",
        [entry_id],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Replaces what a record contributes to the set.
pub fn replace_match_rows(
    c: &Connection,
    record_ref: i64,
    case_ref: i64,
    rows: &[([u8; 16], Vec<u8>)],
) -> Result<()> {
    exec(
        c,
        "DELETE FROM match_set WHERE record_ref = ?1",
        [record_ref],
    )?;
    let mut s = c.prepare_cached(
        "INSERT INTO match_set (record_ref, case_ref, tag, hit) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (tag, hit) in rows {
        s.execute(params![record_ref, case_ref, &tag[..], hit])?;
    }
    Ok(())
}

/// One row of the set as a page lists it.
pub struct MatchRow {
    pub tag: Vec<u8>,
    pub hit: Vec<u8>,
    pub case_ref: i64,
    pub record_ref: i64,
    /// The record has a releasable_to list (its view is checked per asker).
    pub restricted: bool,
}

/// Rows with a tag after `after`, in tag order: at least `limit` (unless
/// the set ends), and never a tag cut between two pages. Also whether more
/// follow.
pub fn match_page(c: &Connection, after: &[u8], limit: usize) -> Result<(Vec<MatchRow>, bool)> {
    let mut s = c.prepare_cached(
        "SELECT m.tag, m.hit, m.case_ref, m.record_ref, r.restricted \
         FROM match_set m JOIN records r ON r.id = m.record_ref WHERE m.tag > ?1 ORDER BY m.tag, m.case_ref",
    )?;
    let mut rows = s.query([after])?;
    let mut out: Vec<MatchRow> = Vec::new();
    while let Some(r) = rows.next()? {
        let tag: Vec<u8> = r.get(0)?;
        if out.len() >= limit && out.last().is_some_and(|l| l.tag != tag) {
            return Ok((out, true));
        }
        out.push(MatchRow {
            tag,
            hit: r.get(1)?,
            case_ref: r.get(2)?,
            record_ref: r.get(3)?,
            restricted: r.get::<_, i64>(4)? != 0,
        });
    }
    Ok((out, false))
}

/// Rows in the set, in all.
pub fn match_set_size(c: &Connection) -> Result<u64> {
    Ok(query_one(c, "SELECT COUNT(*) FROM match_set", [], |r| {
        r.get::<_, i64>(0)
    })? as u64)
}

/// `peer`'s count today (`day`), or 0 if its last use was another day.
pub fn match_quota_used(c: &Connection, peer: &str, day: i64) -> Result<u64> {
    let used: Option<(i64, i64)> = query_one(
        c,
        "SELECT day, used FROM match_quota WHERE peer = ?1",
        [peer],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?;
    Ok(match used {
        Some((d, n)) if d == day => n.max(0) as u64,
        _ => 0,
    })
}

pub fn set_match_quota_used(c: &Connection, peer: &str, day: i64, used: u64) -> Result<()> {
    exec(
        c,
        "INSERT OR REPLACE INTO match_quota (peer, day, used) VALUES (?1, ?2, ?3)",
        params![peer, day, used as i64],
    )?;
    Ok(())
}
