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
