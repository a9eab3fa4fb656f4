//! The search index: keyed hashes of each record's selectors and words.

use super::*;

/// Replaces the terms a record is filed under.
pub fn replace_search_terms(
    c: &Connection,
    record_ref: i64,
    case_ref: i64,
    terms: &[([u8; 16], i64)],
) -> Result<()> {
    exec(
        c,
        "DELETE FROM search_terms WHERE record_ref = ?1",
        [record_ref],
    )?;
    let mut s = c.prepare_cached(
        "INSERT INTO search_terms (record_ref, case_ref, term, weight) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (t, w) in terms {
        s.execute(params![record_ref, case_ref, &t[..], w])?;
    }
    Ok(())
}

/// (record, case, weight) for every record filed under `term`, at most `limit`.
pub fn records_with_term(
    c: &Connection,
    term: &[u8; 16],
    limit: i64,
) -> Result<Vec<(i64, i64, i64)>> {
    let mut s = c.prepare_cached(
        "SELECT record_ref, case_ref, weight FROM search_terms WHERE term = ?1 LIMIT ?2",
    )?;
    let rows = s
        .query_map(params![&term[..], limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Records that have no search terms yet (written before the index existed).
pub fn records_without_terms(c: &Connection, limit: i64) -> Result<Vec<RecordRow>> {
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records r \
         WHERE NOT EXISTS (SELECT 1 FROM search_terms t WHERE t.record_ref = r.id) ORDER BY id LIMIT ?1",
    )?;
    Ok(s.query_map([limit], record_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}
