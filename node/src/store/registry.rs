//! The federation registry's signed statements.

use super::*;

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
    super::count_removal(c)
}

pub fn registry_ops(c: &Connection) -> Result<Vec<StoredOp>> {
    let mut s = c.prepare_cached("SELECT id, hash, bytes FROM registry_ops ORDER BY id")?;
    let rows = s
        .query_map([], |r| stored_op(r, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
