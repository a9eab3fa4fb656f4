//! The log engine: every local change becomes a signed, sealed entry appended to
//! this node's log of the case, in the same transaction as the materialized state
//! it produces; stored entries are re-verified before their content is trusted.

use std::ops::Range;

use casesync_crypto::{Hash, SymmetricKey};
use casesync_schema::entry::{self, EntryHeader, LogEntry, RecordChange, ViewItem};
use casesync_schema::{CaseId, RecordId};
use rusqlite::Connection;

use crate::cases::Case;
use crate::store::{self, StoredEntry};
use crate::{Node, NodeError, Result};

/// An entry written by [`append`]: its row and which of the given changes it carries.
pub struct Appended {
    pub row: i64,
    pub changes: Range<usize>,
}

/// Appends `changes` to this node's log of `case`, packed into as few entries as
/// the entry size cap allows. Must run inside a write transaction.
pub fn append(
    conn: &Connection,
    node: &Node,
    case: &Case,
    epoch: &Hash,
    key: &SymmetricKey,
    changes: &[RecordChange],
) -> Result<Vec<Appended>> {
    let me = node.keys.public().ed25519;
    let (mut seq, mut prev) = store::log_head(conn, case.case_ref, &me)?.unwrap_or((0, Hash::ZERO));
    let view: Vec<ViewItem> = store::log_heads(conn, case.case_ref)?
        .into_iter()
        .filter(|(a, _, _)| a != &me)
        .map(|(author, seq, hash)| ViewItem { author, seq, hash })
        .collect();
    let (ms, _) = crate::clock::now();
    let mut out = Vec::new();
    let mut start = 0;
    while start < changes.len() {
        let mut end = start;
        let mut size = 0;
        while end < changes.len() {
            let cost = entry::payload_cost(&changes[end]);
            if end > start && size + cost > entry::TARGET_PAYLOAD_BYTES {
                break;
            }
            size += cost;
            end += 1;
        }
        let payload = entry::encode_payload(&changes[start..end]);
        seq += 1;
        let header = EntryHeader {
            case: case.id,
            author: me,
            seq,
            prev,
            epoch: *epoch,
            time_ms: ms,
            view: view.clone(),
        };
        let e = LogEntry::create(&node.keys, header, key, &payload)?;
        let row = store::insert_entry(conn, case.case_ref, &me, seq, &e.hash(), e.bytes())?;
        prev = e.hash();
        out.push(Appended {
            row,
            changes: start..end,
        });
        start = end;
    }
    Ok(out)
}

/// Names a stored entry for people: `case/author-peer-id/seq`.
pub fn entry_name(case: &CaseId, author: &[u8], seq: i64) -> String {
    let peer = <[u8; 32]>::try_from(author)
        .ok()
        .and_then(|a| casesync_crypto::identity::peer_id_of(&a).ok())
        .unwrap_or_else(|| casesync_crypto::hash::hex(author));
    format!("{case}/{peer}/{seq}")
}

/// Re-checks one stored entry: its signature over the stored bytes, its hash, and
/// that its header matches the columns it is filed under.
pub fn verify_stored(se: &StoredEntry, case: &CaseId) -> std::result::Result<LogEntry, String> {
    let e = LogEntry::decode_verified(&se.bytes).map_err(|e| e.to_string())?;
    if !e.hash().ct_eq(&se.hash) {
        return Err("entry bytes do not match the stored hash".into());
    }
    let h = &e.header;
    if &h.case != case || h.author[..] != se.author[..] || h.seq as i64 != se.seq {
        return Err("entry header does not match where it is filed (case, author, seq)".into());
    }
    Ok(e)
}

/// Verifies the entries that carry a record's changes; fails naming the first bad
/// one, and fails if the record's history is empty or points at a missing entry.
pub fn verify_record_entries(
    conn: &Connection,
    case: &Case,
    record_ref: i64,
    record: &RecordId,
) -> Result<Vec<LogEntry>> {
    let stored = store::entries_of_record(conn, record_ref)?;
    if stored.is_empty() {
        return Err(NodeError::Integrity(format!(
            "record {record}: no log entry carries it; the store was altered, run `casesync log verify`"
        )));
    }
    stored
        .iter()
        .map(|se| {
            let Some(se) = se else {
                return Err(NodeError::Integrity(format!(
                    "record {record}: one of its log entries is missing (verification failed); the store was altered, run `casesync log verify`"
                )));
            };
            verify_stored(se, &case.id).map_err(|reason| {
                NodeError::Integrity(format!(
                    "record {record}: log entry {} failed verification ({reason}); the store was altered, run `casesync log verify`",
                    entry_name(&case.id, &se.author, se.seq)
                ))
            })
        })
        .collect()
}
