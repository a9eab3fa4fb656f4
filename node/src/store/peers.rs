//! Peers to dial, their next attempt and last sync.

use super::*;

pub fn add_peer(c: &Connection, addr: &str) -> Result<bool> {
    Ok(exec(c, "INSERT OR IGNORE INTO peers (addr) VALUES (?1)", [addr])? > 0)
}

/// A remembered peer: its address, when it last synced, and when `serve`
/// tries it next if it could not reach it.
pub struct PeerRow {
    pub addr: String,
    pub last_sync: Option<String>,
    pub next_dial: Option<String>,
}

pub fn peers(c: &Connection) -> Result<Vec<PeerRow>> {
    let mut s = c.prepare_cached("SELECT addr, last_sync, next_dial FROM peers ORDER BY id")?;
    let rows = s
        .query_map([], |r| {
            Ok(PeerRow {
                addr: r.get(0)?,
                last_sync: r.get(1)?,
                next_dial: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Records when `serve` will next dial `addr` (None: connected).
pub fn set_peer_next_dial(c: &Connection, addr: &str, when: Option<&str>) -> Result<()> {
    exec(
        c,
        "UPDATE peers SET next_dial = ?2 WHERE addr = ?1",
        params![addr, when],
    )?;
    Ok(())
}

pub fn peer_synced(c: &Connection, peer_id: &str, when: &str) -> Result<()> {
    exec(
        c,
        "UPDATE peers SET last_sync = ?2 WHERE addr LIKE '%/p2p/' || ?1",
        params![peer_id, when],
    )?;
    Ok(())
}
