//! The log engine: every local change becomes a signed, sealed entry appended to
//! this node's log of the case, in the same transaction as the materialized state
//! it produces; stored entries are re-verified before their content is trusted.
//!
//! A store may be behind what its node signed: restored from a backup, or a copy
//! of the data directory. Entries it wrote after the copy may sit on partners,
//! and writing the same positions again would be an equivocation, for which
//! partners freeze the log and erase both forks. So a store that cannot show it
//! is the one the node last wrote with carries a *chain floor*
//! ([`start_new_chains`]): the node's next entry in every case starts a new
//! chain of its log (`entry::chain_of`) numbered at least that floor, from its
//! last entry there, under a new Automerge actor; the chains it may have
//! written stay whole on every node, and sync brings them back.

use std::ops::Range;

use casesync_crypto::{Hash, SymmetricKey};
use casesync_schema::entry::{
    self, EntryHeader, LogEntry, MAX_CHAIN, RecordChange, ViewItem, chain_base, chain_of,
    position_of,
};
use casesync_schema::{CaseId, RecordId};
use rusqlite::Connection;

use crate::store::{self, StoredEntry};
use crate::{Node, NodeError, Result};

/// An entry written by [`append`]: its row and which of the given changes it carries.
pub struct Appended {
    pub row: i64,
    pub hash: Hash,
    pub changes: Range<usize>,
}

/// Appends `changes` to this node's log of `case`, packed into as few entries as
/// the entry size cap allows. Must run inside a write transaction.
pub fn append(
    conn: &Connection,
    node: &Node,
    (case_ref, case_id): (i64, CaseId),
    epoch: &Hash,
    key: &SymmetricKey,
    changes: &[RecordChange],
) -> Result<Vec<Appended>> {
    let me = node.keys.public().ed25519;
    let (first, mut prev) = next_position(conn, node, case_ref)?;
    let mut seq = first - 1;
    let view: Vec<ViewItem> = store::log_heads(conn, case_ref)?
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
            if end > start
                && (size + cost > entry::TARGET_PAYLOAD_BYTES || end - start == entry::MAX_PARTS)
            {
                break;
            }
            size += cost;
            end += 1;
        }
        seq += 1;
        if chain_of(seq) != chain_of(first) {
            return Err(NodeError::Refused(
                "this node's log of the case is full (4,294,967,295 entries in one chain)".into(),
            ));
        }
        let header = EntryHeader {
            case: case_id,
            author: me,
            seq,
            prev,
            epoch: *epoch,
            time_ms: ms,
            view: view.clone(),
        };
        let e = LogEntry::create(&node.keys, header, key, &changes[start..end])?;
        let row = store::insert_entry(conn, case_ref, &me, seq, &e.hash(), e.bytes())?;
        prev = e.hash();
        out.push(Appended {
            row,
            hash: e.hash(),
            changes: start..end,
        });
        start = end;
    }
    Ok(out)
}

/// Meta key of the chain floor: the least chain this node's next entry in any
/// case goes in.
const CHAIN_FLOOR: &str = "log_chain_floor";

/// Marks this store as possibly behind what its node signed (restored from a
/// backup, or found at another file than the one it last wrote): the node's
/// next entry in every case starts a new chain, numbered from the clock (Unix
/// seconds since 2020, so that two restores of one backup start different
/// chains) and above any floor before. Returns the floor.
pub fn start_new_chains(conn: &Connection) -> Result<u64> {
    let before = chain_floor(conn)?.unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .saturating_sub(1_577_836_800);
    let floor = now.max(before + 1).min(MAX_CHAIN);
    store::meta_put(conn, CHAIN_FLOOR, &floor.to_be_bytes())?;
    Ok(floor)
}

fn chain_floor(conn: &Connection) -> Result<Option<u64>> {
    Ok(store::meta_get(conn, CHAIN_FLOOR)?
        .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
        .map(u64::from_be_bytes))
}

/// Meta key of the file the store last wrote with: device, inode and birth
/// time of the database file (file systems reuse a deleted file's inode at
/// once; the birth time, in nanoseconds where the file system keeps one,
/// tells the new file from the old).
const STORE_FILE: &str = "store_file";

fn file_identity(db: &std::path::Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(db)
        .map_err(|e| NodeError::Io(format!("cannot read {}: {e}", db.display())))?;
    let born = m
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Ok([
        m.dev().to_be_bytes(),
        m.ino().to_be_bytes(),
        born.to_be_bytes(),
    ]
    .concat())
}

/// Records that the store at `db` is the one this node writes with.
pub fn record_store_file(conn: &Connection, db: &std::path::Path) -> Result<()> {
    Ok(store::meta_put(conn, STORE_FILE, &file_identity(db)?)?)
}

/// At unlock: a store found at another file than it last wrote with (a data
/// directory copied, moved to another disk, or restored from a copy) cannot
/// show that it holds everything its node signed, so its next entries start
/// new chains ([`start_new_chains`]; audited). A copy written back over the
/// same file in place (or a whole-disk snapshot rolled back) keeps the file's
/// identity and is not seen: restore with `casesync restore`, or into a new
/// directory. Returns the new floor when it started new chains.
pub fn notice_copied_store(node: &Node, actor: &crate::audit::Actor) -> Result<Option<u64>> {
    let db = node.dir.db_path();
    let here = file_identity(&db)?;
    match store::meta_get(node.store.conn(), STORE_FILE)? {
        Some(known) if known == here => Ok(None),
        None => {
            node.store.write(|tx| record_store_file(tx, &db))?;
            Ok(None)
        }
        Some(_) => node.store.write(|tx| -> Result<Option<u64>> {
            // Another process may have seen it first.
            if store::meta_get(tx, STORE_FILE)?.is_some_and(|k| k == here) {
                return Ok(None);
            }
            let floor = start_new_chains(tx)?;
            record_store_file(tx, &db)?;
            crate::audit::append(
                node,
                actor,
                tx,
                crate::audit::Event::new(crate::audit::Action::NewChains).detail(format!(
                    "the store is not at the file it last wrote with (copied or restored): this node's next entry in each case starts chain {floor} of its log"
                )),
            )?;
            Ok(Some(floor))
        }),
    }
}

/// A partner answered that it saw this node's audit head at `earlier` (its own
/// signature, so no one else can make it up): if that is further than the
/// head this store holds, or another link at the same place, the store went
/// back, and the node's next entries start new chains (audited). Returns a
/// line for the log when it did.
pub fn notice_rollback(
    node: &Node,
    actor: &crate::audit::Actor,
    earlier: &[u8],
    peer: &impl std::fmt::Display,
) -> Result<Option<String>> {
    use casesync_schema::audit::{Head, HeadChange, compare_heads};
    let Some(seen) = Head::decode(earlier).filter(|h| h.is_signed_by(&node.keys.public().ed25519))
    else {
        return Ok(None);
    };
    node.store.write(|tx| -> Result<Option<String>> {
        let mine = store::audit_head(tx)?;
        let behind = match &mine {
            None => true,
            Some(m) => matches!(
                compare_heads(Some(&seen), m),
                HeadChange::Rewound { .. } | HeadChange::Rewritten { .. }
            ),
        };
        if !behind {
            return Ok(None);
        }
        let floor = start_new_chains(tx)?;
        let line = format!(
            "{peer} saw this node's audit log at entry {}, further than this store holds: the store went back (restored or rolled back in place); this node's next entry in each case starts chain {floor} of its log",
            seen.seq
        );
        crate::audit::append(
            node,
            actor,
            tx,
            crate::audit::Event::new(crate::audit::Action::NewChains).detail(line.clone()),
        )?;
        Ok(Some(line))
    })
}

/// Where this node's next entry in a case goes: (seq, prev). After its last
/// entry, or at the start of a new chain when the store carries a chain floor
/// above that entry's chain (or the chain is full).
pub fn next_position(conn: &Connection, node: &Node, case_ref: i64) -> Result<(u64, Hash)> {
    let me = node.keys.public().ed25519;
    let (head, prev) = store::log_head(conn, case_ref, &me)?.unwrap_or((0, Hash::ZERO));
    let chain = chain_of(head);
    let floor = chain_floor(conn)?.unwrap_or(0);
    if chain >= floor && position_of(head) < u32::MAX as u64 {
        return Ok((head + 1, prev));
    }
    let next = (chain + 1).max(floor);
    if next > MAX_CHAIN {
        return Err(NodeError::Refused(
            "this node's log of the case has no chain left to start".into(),
        ));
    }
    Ok((chain_base(next) + 1, prev))
}

/// The Automerge actor of this node's next changes in a case: one per chain
/// of its log, since a restored node may have made changes it no longer holds.
pub fn actor_for_next(conn: &Connection, node: &Node, case_ref: i64) -> Result<automerge::ActorId> {
    let (seq, _) = next_position(conn, node, case_ref)?;
    Ok(casesync_schema::doc::actor_for_chain(
        &node.keys.public().ed25519,
        chain_of(seq),
    ))
}

/// What a record's stored view and snapshot were built from: SHA-256 over the
/// hashes of the entries that carry its changes, in the order they were
/// stored. Sealed rows are bound to it, so a summary that does not match the
/// entries is seen (`record show`, `log verify`).
pub fn record_log_digest(hashes: &[Hash]) -> Hash {
    let mut h = casesync_crypto::hash::Sha256Stream::new();
    h.update(b"casesync/record-log/v1");
    for x in hashes {
        h.update(&x.0);
    }
    h.finish()
}

/// [`record_log_digest`] of a record as its links in the store say.
pub fn stored_log_digest(conn: &Connection, record_ref: i64) -> Result<Hash> {
    Ok(record_log_digest(&store::record_entry_hashes(
        conn, record_ref,
    )?))
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
    case: &CaseId,
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
            verify_stored(se, case).map_err(|reason| {
                NodeError::Integrity(format!(
                    "record {record}: log entry {} failed verification ({reason}); the store was altered, run `casesync log verify`",
                    entry_name(case, &se.author, se.seq)
                ))
            })
        })
        .collect()
}
