//! Retention review: cases' groups and records' last reviews.

use std::collections::HashMap;

use super::*;

pub fn case_group(c: &Connection, case_ref: i64) -> Result<Option<u8>> {
    Ok(query_one(
        c,
        "SELECT grp FROM case_retention WHERE case_ref = ?1",
        [case_ref],
        |r| r.get(0),
    )
    .optional()?)
}

pub fn set_case_group(c: &Connection, case_ref: i64, group: u8) -> Result<()> {
    exec(
        c,
        "INSERT INTO case_retention (case_ref, grp) VALUES (?1, ?2) \
         ON CONFLICT (case_ref) DO UPDATE SET grp = excluded.grp",
        params![case_ref, group],
    )?;
    Ok(())
}

/// Every record of a case with a review on file: its row and `next_ms`.
pub fn reviews_in_case(c: &Connection, case_ref: i64) -> Result<HashMap<i64, i64>> {
    let mut s = c.prepare_cached(
        "SELECT d.record_ref, d.next_ms FROM review_decisions d JOIN records r ON r.id = d.record_ref \
         WHERE r.case_ref = ?1",
    )?;
    Ok(s.query_map([case_ref], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<HashMap<_, _>>>()?)
}

pub fn set_review(c: &Connection, record_ref: i64, next_ms: i64, decided_ms: i64) -> Result<()> {
    exec(
        c,
        "INSERT INTO review_decisions (record_ref, next_ms, decided_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT (record_ref) DO UPDATE SET next_ms = excluded.next_ms, decided_ms = excluded.decided_ms",
        params![record_ref, next_ms, decided_ms],
    )?;
    Ok(())
}
