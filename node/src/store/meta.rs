//! Node facts kept as key and value (the node card, the audit head, the chain floor).

use super::*;

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

pub fn meta_delete(c: &Connection, key: &str) -> Result<()> {
    exec(c, "DELETE FROM meta WHERE key = ?1", [key])?;
    Ok(())
}

/// A bookmark of background work (the last entry id it looked at): 0 if
/// never set or not 8 bytes.
pub fn meta_stamp(c: &Connection, key: &str) -> Result<i64> {
    Ok(meta_get(c, key)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(i64::from_be_bytes)
        .unwrap_or(0))
}

pub fn set_meta_stamp(c: &Connection, key: &str, value: i64) -> Result<()> {
    meta_put(c, key, &value.to_be_bytes())
}
