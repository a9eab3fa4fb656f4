//! Four-eyes requests.

use super::*;

pub struct ApprovalRow {
    pub id: i64,
    pub action: String,
    pub sealed: Vec<u8>,
    pub requester: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
}

const COLS: &str =
    "id, action, sealed, requester, created_ms, expires_ms, state, decided_by, decided_ms";

fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRow> {
    Ok(ApprovalRow {
        id: r.get(0)?,
        action: r.get(1)?,
        sealed: r.get(2)?,
        requester: r.get(3)?,
        created_ms: r.get(4)?,
        expires_ms: r.get(5)?,
        state: r.get(6)?,
        decided_by: r.get(7)?,
        decided_ms: r.get(8)?,
    })
}

/// Files a request (its sealed body is set by `set_approval_body`, since
/// the seal is bound to the row id); returns its id.
pub fn insert_approval(
    c: &Connection,
    action: &str,
    requester: &str,
    created_ms: i64,
    expires_ms: i64,
) -> Result<i64> {
    exec(
        c,
        "INSERT INTO approvals (action, sealed, requester, created_ms, expires_ms) VALUES (?1, x'', ?2, ?3, ?4)",
        params![action, requester, created_ms, expires_ms],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn set_approval_body(c: &Connection, id: i64, sealed: &[u8]) -> Result<()> {
    exec(
        c,
        "UPDATE approvals SET sealed = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}

pub fn approval(c: &Connection, id: i64) -> Result<Option<ApprovalRow>> {
    Ok(query_one(
        c,
        &format!("SELECT {COLS} FROM approvals WHERE id = ?1"),
        [id],
        approval_row,
    )
    .optional()?)
}

/// Requests filed since `since_ms`, newest first (at most 500).
pub fn approvals_since(c: &Connection, since_ms: i64) -> Result<Vec<ApprovalRow>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {COLS} FROM approvals WHERE created_ms >= ?1 ORDER BY id DESC LIMIT 500"
    ))?;
    Ok(s.query_map([since_ms], approval_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Decides a pending request; false if it was not pending any more.
pub fn decide_approval(c: &Connection, id: i64, state: &str, by: &str, at_ms: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE approvals SET state = ?2, decided_by = ?3, decided_ms = ?4 WHERE id = ?1 AND state = 'pending'",
        params![id, state, by, at_ms],
    )? == 1)
}
