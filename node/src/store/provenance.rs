//! Provenance: storage and read receipts of other agencies' records (the
//! holder's side, until reported) and partners' reports (the originator's).

use super::*;

/// One record held here for its originator, as a report names it.
pub struct ProvenanceOut {
    pub record_ref: i64,
    pub stored_ms: i64,
    pub reads: i64,
    /// JSON object: reader pseudonym -> reads.
    pub readers: String,
    pub version: i64,
}

/// Notes that a record of `originator` is stored here since `stored_ms`
/// (kept as it is when noted before).
pub fn note_stored(
    c: &Connection,
    record_ref: i64,
    originator: &[u8; 32],
    stored_ms: i64,
) -> Result<()> {
    exec(
        c,
        "INSERT OR IGNORE INTO provenance_out (record_ref, originator, stored_ms) VALUES (?1, ?2, ?3)",
        params![record_ref, &originator[..], stored_ms],
    )?;
    Ok(())
}

/// The readers and reads noted for a record of another agency (None: the
/// record is not one this node reports).
pub fn provenance_readers(c: &Connection, record_ref: i64) -> Result<Option<String>> {
    Ok(
        c.prepare_cached("SELECT readers FROM provenance_out WHERE record_ref = ?1")?
            .query_row([record_ref], |r| r.get(0))
            .optional()?,
    )
}

/// Sets a record's readers after a consultation: one more read, due again.
pub fn note_read(c: &Connection, record_ref: i64, readers: &str) -> Result<()> {
    exec(
        c,
        "UPDATE provenance_out SET reads = reads + 1, readers = ?2, version = version + 1 WHERE record_ref = ?1",
        params![record_ref, readers],
    )?;
    Ok(())
}

/// What is due to `originator`: rows changed since it last acknowledged them.
pub fn provenance_due(
    c: &Connection,
    originator: &[u8; 32],
    limit: usize,
) -> Result<Vec<ProvenanceOut>> {
    let mut s = c.prepare_cached(
        "SELECT record_ref, stored_ms, reads, readers, version FROM provenance_out \
         WHERE originator = ?1 AND reported < version ORDER BY record_ref LIMIT ?2",
    )?;
    Ok(s.query_map(params![&originator[..], limit as i64], |r| {
        Ok(ProvenanceOut {
            record_ref: r.get(0)?,
            stored_ms: r.get(1)?,
            reads: r.get(2)?,
            readers: r.get(3)?,
            version: r.get(4)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The originator acknowledged a row as it was at `version`.
pub fn provenance_reported(c: &Connection, record_ref: i64, version: i64) -> Result<()> {
    exec(
        c,
        "UPDATE provenance_out SET reported = MAX(reported, ?2) WHERE record_ref = ?1",
        params![record_ref, version],
    )?;
    Ok(())
}

/// Files a partner's report (sealed by the caller, bound to its row);
/// returns its row. `set_provenance_report` puts the sealed bytes in.
pub fn insert_provenance_report(
    c: &Connection,
    holder: &[u8; 32],
    received_ms: i64,
    hash: &Hash,
) -> Result<i64> {
    exec(
        c,
        "INSERT INTO provenance_reports (holder, received_ms, hash, sealed) VALUES (?1, ?2, ?3, x'')",
        params![&holder[..], received_ms, &hash.0[..]],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn set_provenance_report(c: &Connection, id: i64, sealed: &[u8]) -> Result<()> {
    exec(
        c,
        "UPDATE provenance_reports SET sealed = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}

/// What a holder reported of one record, as the originator keeps it.
pub struct ProvenanceIn {
    pub holder: Vec<u8>,
    pub stored_ms: i64,
    pub reads: i64,
    pub readers: i64,
    pub received_ms: i64,
    pub report_hash: Vec<u8>,
}

pub fn set_provenance_in(
    c: &Connection,
    case_ref: i64,
    rid_index: &[u8; 32],
    holder: &[u8; 32],
    (stored_ms, reads, readers): (i64, i64, i64),
    report_ref: i64,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO provenance_in (case_ref, rid_index, holder, stored_ms, reads, readers, report_ref) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (case_ref, rid_index, holder) DO UPDATE SET \
         stored_ms = MIN(stored_ms, excluded.stored_ms), reads = excluded.reads, \
         readers = excluded.readers, report_ref = excluded.report_ref",
        params![
            case_ref,
            &rid_index[..],
            &holder[..],
            stored_ms,
            reads,
            readers,
            report_ref
        ],
    )?;
    Ok(())
}

/// Every holder's latest report of one record.
pub fn provenance_of(
    c: &Connection,
    case_ref: i64,
    rid_index: &[u8; 32],
) -> Result<Vec<ProvenanceIn>> {
    let mut s = c.prepare_cached(
        "SELECT p.holder, p.stored_ms, p.reads, p.readers, r.received_ms, r.hash \
         FROM provenance_in p JOIN provenance_reports r ON r.id = p.report_ref \
         WHERE p.case_ref = ?1 AND p.rid_index = ?2 ORDER BY p.holder",
    )?;
    Ok(s.query_map(params![case_ref, &rid_index[..]], |r| {
        Ok(ProvenanceIn {
            holder: r.get(0)?,
            stored_ms: r.get(1)?,
            reads: r.get(2)?,
            readers: r.get(3)?,
            received_ms: r.get(4)?,
            report_hash: r.get(5)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}
