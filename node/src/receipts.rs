//! What this node notes of other agencies' records it holds, for their
//! originators (issue 19): when each arrived, and how often each person
//! here consulted it, under a pseudonym this node keys. `provenance`
//! reports them to the originator; this module is below `records` and
//! `ingest`, which note as they store and show.

use std::collections::{BTreeMap, HashMap};

use rusqlite::Connection;

use crate::audit::Actor;
use crate::cases::Case;
use crate::{Node, NodeError, Result, store};

/// Most reader pseudonyms kept per record; reads by others beyond are
/// counted under `others`.
pub const MAX_READERS: usize = 256;

/// The originator's key of `view`, when it is not this node and this node
/// can place it: what makes a record one to report.
fn originator_key(
    node: &Node,
    keys: &HashMap<String, [u8; 32]>,
    view: &casesync_schema::doc::RecordView,
) -> Option<[u8; 32]> {
    keys.get(&view.originator)
        .copied()
        .filter(|k| *k != node.keys.public().ed25519)
}

/// The members' keys of a case by PeerId (for many records at once).
pub(crate) fn member_keys(case: &Case) -> HashMap<String, [u8; 32]> {
    case.state
        .members
        .iter()
        .map(|(k, m)| (m.card.peer_id(), *k))
        .collect()
}

/// Notes that record `row`, just stored from a partner, is another
/// agency's: from now on it is reported to its originator.
pub(crate) fn note_stored(
    node: &Node,
    conn: &Connection,
    keys: &HashMap<String, [u8; 32]>,
    row: i64,
    view: &casesync_schema::doc::RecordView,
) -> Result<()> {
    if let Some(o) = originator_key(node, keys, view) {
        store::note_stored(conn, row, &o, crate::clock::now().0)?;
    }
    Ok(())
}

/// Notes that `actor` consulted record `row` (`record show`, `record
/// history`, opening its evidence file), if it is one this node reports.
pub(crate) fn note_read(node: &Node, conn: &Connection, actor: &Actor, row: i64) -> Result<()> {
    let Some(readers) = store::provenance_readers(conn, row)? else {
        return Ok(());
    };
    let mut readers: BTreeMap<String, u64> = serde_json::from_str(&readers).unwrap_or_default();
    let person = actor
        .account
        .as_ref()
        .map_or(actor.operator.as_str(), |a| a.name.as_str());
    let who = node.storage.reader_pseudonym(person);
    let key = if readers.contains_key(&who) || readers.len() < MAX_READERS {
        who
    } else {
        "others".to_string()
    };
    *readers.entry(key).or_default() += 1;
    let json = serde_json::to_string(&readers).map_err(|e| NodeError::Io(e.to_string()))?;
    store::note_read(conn, row, &json)?;
    Ok(())
}
