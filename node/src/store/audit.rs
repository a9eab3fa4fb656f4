//! The audit chain's rows and heads, peers' heads, and events waiting for an unlock.

use super::*;

/// One stored audit row (`seq`, sealed entry, link hash, signature).
pub struct AuditRow {
    pub seq: u64,
    pub sealed: Vec<u8>,
    pub hash: Vec<u8>,
    pub signature: Vec<u8>,
}

const AUDIT_HEAD: &str = "audit_head";

/// The head recorded with the last audit entry: its seq, link hash and the
/// node's signature of both (empty where a store predates the signature).
pub fn audit_head(c: &Connection) -> Result<Option<casesync_schema::audit::Head>> {
    // Read leniently (a head without its signature fails `audit verify`,
    // which says so, rather than this read).
    Ok(meta_get(c, AUDIT_HEAD)?.and_then(|v| {
        let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
        Some(casesync_schema::audit::Head {
            seq,
            hash: Hash::from_slice(v.get(8..40)?)?,
            signature: v.get(40..).unwrap_or_default().to_vec(),
        })
    }))
}

/// Appends one audit row and moves the head to it (inside the caller's
/// transaction, with the action it records).
pub fn audit_append(
    c: &Connection,
    seq: u64,
    case_index: Option<&[u8; 32]>,
    sealed: &[u8],
    hash: &Hash,
    signature: &[u8],
    head: &casesync_schema::audit::Head,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO audit_log (seq, case_index, sealed, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            seq as i64,
            case_index.map(|x| &x[..]),
            sealed,
            &hash.0[..],
            signature
        ],
    )?;
    meta_put(c, AUDIT_HEAD, &head.encode())
}

/// The audit head a peer last showed (its encoded bytes).
pub fn peer_audit_head(c: &Connection, peer: &[u8; 32]) -> Result<Option<Vec<u8>>> {
    Ok(query_one(
        c,
        "SELECT head FROM peer_audit_heads WHERE peer = ?1",
        [&peer[..]],
        |r| r.get(0),
    )
    .optional()?)
}

pub fn put_peer_audit_head(c: &Connection, peer: &[u8; 32], seq: u64, head: &[u8]) -> Result<()> {
    exec(
        c,
        "INSERT INTO peer_audit_heads (peer, seq, head) VALUES (?1, ?2, ?3) ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq, head = excluded.head",
        params![&peer[..], seq as i64, head],
    )?;
    Ok(())
}

/// Every audit row in seq order (optionally one case's), for `f`.
pub fn for_each_audit_row<E: From<StoreError>>(
    c: &Connection,
    case_index: Option<&[u8; 32]>,
    mut f: impl FnMut(AuditRow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut s = c.prepare_cached(
        "SELECT seq, sealed, hash, signature FROM audit_log WHERE ?1 IS NULL OR case_index = ?1 ORDER BY seq",
    )
    .map_err(StoreError::from)?;
    let mut rows = s
        .query(params![case_index.map(|x| &x[..])])
        .map_err(StoreError::from)?;
    while let Some(r) = rows.next().map_err(StoreError::from)? {
        let row = (|| {
            // Columns read as whatever bytes they hold: a hand-edited row may
            // have changed type, and must fail verification, not the read.
            let bytes = |i: usize| -> rusqlite::Result<Vec<u8>> {
                Ok(r.get_ref(i)?
                    .as_bytes()
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default())
            };
            Ok::<_, rusqlite::Error>(AuditRow {
                seq: r.get::<_, i64>(0)? as u64,
                sealed: bytes(1)?,
                hash: bytes(2)?,
                signature: bytes(3)?,
            })
        })()
        .map_err(StoreError::from)?;
        f(row)?;
    }
    Ok(())
}

pub fn insert_audit_pending(c: &Connection, entry: &str) -> Result<()> {
    exec(c, "INSERT INTO audit_pending (entry) VALUES (?1)", [entry])?;
    Ok(())
}

/// Events waiting to join the chain, oldest first: (row, entry JSON).
pub fn audit_pending(c: &Connection) -> Result<Vec<(i64, String)>> {
    let mut s = c.prepare_cached("SELECT id, entry FROM audit_pending ORDER BY id")?;
    let rows = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn delete_audit_pending(c: &Connection, row: i64) -> Result<()> {
    exec(c, "DELETE FROM audit_pending WHERE id = ?1", [row])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_a_fresh_database_and_are_idempotent() {
        let dir = std::env::temp_dir().join(format!("casesync-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        drop(Store::open(&path).unwrap());
        let s = Store::open(&path).unwrap();
        let v: i64 = s
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        s.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store of schema 8 with a record and its entry upgrades to 9 with
    /// every row and reference kept, and the same record id may then exist
    /// once per case.
    #[test]
    fn records_move_to_ids_per_case_with_every_reference_kept() {
        let dir = std::env::temp_dir().join(format!("casesync-store-v8-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        {
            let mut c = Connection::open(&path).unwrap();
            configure(&c).unwrap();
            c.pragma_update(None, "foreign_keys", "OFF").unwrap();
            let tx = c.transaction().unwrap();
            for sql in &MIGRATIONS[..8] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 8).unwrap();
            tx.execute_batch(
                "INSERT INTO cases (id, case_id, sealed_meta) VALUES (1, x'01', x'00'), (2, x'02', x'00');
                 INSERT INTO entries (id, case_ref, author, seq, hash, bytes) VALUES (5, 1, x'aa', 1, x'bb', x'cc');
                 INSERT INTO records (id, case_ref, rid_index, type_index, snapshot, view) VALUES (7, 1, x'99', randomblob(32), NULL, x'97');
                 INSERT INTO record_entries (record_ref, entry_ref) VALUES (7, 5);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        let c = s.conn();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let fk: i64 = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on");
        let kept: (i64, i64) = c
            .query_row(
                "SELECT r.id, re.entry_ref FROM records r JOIN record_entries re ON re.record_ref = r.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (7, 5));
        // Migration 026 keeps 16 bytes of each type index.
        let type_len: i64 = c
            .query_row(
                "SELECT length(type_index) FROM records WHERE id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(type_len, 16);
        // The same id in another case is another record; twice in one case is refused.
        c.execute(
            "INSERT INTO records (case_ref, rid_index, type_index, view) VALUES (2, x'99', x'98', x'97')",
            [],
        )
        .unwrap();
        assert!(
            c.execute(
                "INSERT INTO records (case_ref, rid_index, type_index, view) VALUES (1, x'99', x'98', x'97')",
                [],
            )
            .is_err()
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
