//! Accounts of the web front end, their sessions and case assignments.

use super::*;

/// One account as stored.
#[derive(Clone, Debug)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub password: String,
    pub disabled: bool,
    pub created: String,
    pub failed_logins: i64,
    pub locked_until_ms: i64,
}

const USER_COLUMNS: &str =
    "id, name, role, password, disabled, created, failed_logins, locked_until_ms";

fn user_row(r: &rusqlite::Row) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        password: r.get(3)?,
        disabled: r.get::<_, i64>(4)? != 0,
        created: r.get(5)?,
        failed_logins: r.get(6)?,
        locked_until_ms: r.get(7)?,
    })
}

/// Adds an account; false if the name is taken.
pub fn insert_user(
    c: &Connection,
    name: &str,
    role: &str,
    password: &str,
    created: &str,
) -> Result<bool> {
    Ok(exec(
        c,
        "INSERT OR IGNORE INTO users (name, role, password, created) VALUES (?1, ?2, ?3, ?4)",
        params![name, role, password, created],
    )? > 0)
}

pub fn user_by_name(c: &Connection, name: &str) -> Result<Option<UserRow>> {
    Ok(query_one(
        c,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
        [name],
        user_row,
    )
    .optional()?)
}

pub fn users(c: &Connection) -> Result<Vec<UserRow>> {
    let mut s = c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
    let rows = s
        .query_map([], user_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn set_user_disabled(c: &Connection, id: i64, disabled: bool) -> Result<()> {
    exec(
        c,
        "UPDATE users SET disabled = ?2 WHERE id = ?1",
        params![id, disabled as i64],
    )?;
    Ok(())
}

/// A new password clears the failed-login count and any lock.
pub fn set_user_password(c: &Connection, id: i64, password: &str) -> Result<()> {
    exec(
        c,
        "UPDATE users SET password = ?2, failed_logins = 0, locked_until_ms = 0 WHERE id = ?1",
        params![id, password],
    )?;
    Ok(())
}

pub fn set_login_failures(
    c: &Connection,
    id: i64,
    failed: i64,
    locked_until_ms: i64,
) -> Result<()> {
    exec(
        c,
        "UPDATE users SET failed_logins = ?2, locked_until_ms = ?3 WHERE id = ?1",
        params![id, failed, locked_until_ms],
    )?;
    Ok(())
}

/// One session as stored: its user and the hash of its CSRF token.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub user_id: i64,
    pub csrf_hash: Vec<u8>,
    pub created_ms: i64,
    pub seen_ms: i64,
}

pub fn insert_session(
    c: &Connection,
    token_hash: &[u8],
    user_id: i64,
    csrf_hash: &[u8],
    now_ms: i64,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO sessions (token_hash, user_id, csrf_hash, created_ms, seen_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![token_hash, user_id, csrf_hash, now_ms],
    )?;
    Ok(())
}

pub fn session(c: &Connection, token_hash: &[u8]) -> Result<Option<SessionRow>> {
    Ok(query_one(
        c,
        "SELECT user_id, csrf_hash, created_ms, seen_ms FROM sessions WHERE token_hash = ?1",
        [token_hash],
        |r| {
            Ok(SessionRow {
                user_id: r.get(0)?,
                csrf_hash: r.get(1)?,
                created_ms: r.get(2)?,
                seen_ms: r.get(3)?,
            })
        },
    )
    .optional()?)
}

pub fn touch_session(c: &Connection, token_hash: &[u8], now_ms: i64) -> Result<()> {
    exec(
        c,
        "UPDATE sessions SET seen_ms = ?2 WHERE token_hash = ?1",
        params![token_hash, now_ms],
    )?;
    Ok(())
}

pub fn delete_session(c: &Connection, token_hash: &[u8]) -> Result<()> {
    exec(
        c,
        "DELETE FROM sessions WHERE token_hash = ?1",
        [token_hash],
    )?;
    Ok(())
}

/// Ends every session of an account (disabled, or its password changed).
pub fn delete_sessions_of(c: &Connection, user_id: i64) -> Result<usize> {
    Ok(exec(
        c,
        "DELETE FROM sessions WHERE user_id = ?1",
        [user_id],
    )?)
}

pub fn user_by_id(c: &Connection, id: i64) -> Result<Option<UserRow>> {
    Ok(query_one(
        c,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id],
        user_row,
    )
    .optional()?)
}

/// Assigns a case to an account; false if it was already assigned.
pub fn assign_case(c: &Connection, user_id: i64, case_ref: i64) -> Result<bool> {
    Ok(exec(
        c,
        "INSERT OR IGNORE INTO case_assignments (user_id, case_ref) VALUES (?1, ?2)",
        params![user_id, case_ref],
    )? > 0)
}

pub fn unassign_case(c: &Connection, user_id: i64, case_ref: i64) -> Result<bool> {
    Ok(exec(
        c,
        "DELETE FROM case_assignments WHERE user_id = ?1 AND case_ref = ?2",
        params![user_id, case_ref],
    )? > 0)
}

pub fn is_assigned(c: &Connection, user_id: i64, case_ref: i64) -> Result<bool> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM case_assignments WHERE user_id = ?1 AND case_ref = ?2",
        params![user_id, case_ref],
        |r| r.get::<_, i64>(0),
    )? > 0)
}
