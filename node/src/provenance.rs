//! Provenance (issue 19): an agency that shares a record can show where it
//! went. A node holding another agency's record notes when it arrived and
//! how often people here consulted it (each person under a pseudonym this
//! node keys), and reports both to the record's originator in a signed
//! report, batched, whenever they meet (`serve`); the originator checks and
//! files each report, and `record provenance RECORD` shows which nodes hold
//! the record, since when, and how often it was read there.
//!
//! Reports go point to point, never through other members: they concern
//! the originator alone, and the pseudonyms mean nothing to anyone else.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::access::Need;
use crate::audit::{self, Action, Actor, Event};
use crate::cases::{self, Case};
use crate::{Node, NodeError, Result, store};

/// Domain of a report's signature.
pub const REPORT_CONTEXT: &[u8] = b"casesync/provenance-report/v1";
/// Most records one report names.
pub const MAX_ITEMS: usize = 1000;
/// Largest report accepted (the items' bound with room for their readers).
pub const MAX_REPORT_BYTES: usize = 4 * 1024 * 1024;
/// How often a node reports to one originator at most, by default.
const REPORT_EVERY_SECS: u64 = 60;

/// A holder's signed word to an originator about records it holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    /// The originator's PeerId: a report signed for one node is no use at another.
    pub to: String,
    pub time: String,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Item {
    pub case: String,
    pub record: String,
    /// When the record arrived at the holder (Unix milliseconds, its clock).
    pub stored_ms: i64,
    pub reads: u64,
    /// Reader pseudonym -> reads (`others` for readers past the bound).
    pub readers: BTreeMap<String, u64>,
}

fn report_every() -> std::time::Duration {
    std::time::Duration::from_secs(
        std::env::var("CASESYNC_PROVENANCE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(REPORT_EVERY_SECS),
    )
}

/// A report ready to go to an originator, and what it covers.
pub struct Outgoing {
    pub report: Vec<u8>,
    pub signature: Vec<u8>,
    /// (record row, its version sent, record id).
    sent: Vec<(i64, i64, String)>,
    stamp: String,
    now_ms: i64,
}

/// What is due to the originator with `key` (rows changed since it last
/// acknowledged them), signed, at most once per interval; `None` when
/// nothing is due (one indexed query). The network side sends it
/// (`serve`), then calls [`reported`].
pub fn due_report(node: &Node, peer: &str, key: &[u8; 32]) -> Result<Option<Outgoing>> {
    let conn = node.store.conn();
    let stamp = format!("provenance.sent.{}", casesync_crypto::hash::hex(key));
    let (now_ms, now) = crate::clock::now();
    let last = store::meta_stamp(conn, &stamp)?;
    if last > 0 && now_ms.saturating_sub(last) < report_every().as_millis() as i64 {
        return Ok(None);
    }
    let due = store::provenance_due(conn, key, MAX_ITEMS)?;
    if due.is_empty() {
        return Ok(None);
    }
    let mut items = Vec::with_capacity(due.len());
    let mut sent = Vec::with_capacity(due.len());
    for d in &due {
        let Some(row) = store::record_by_row(conn, d.record_ref)? else {
            continue;
        };
        let view = node.storage.record_view(&row)?;
        items.push(Item {
            case: view.case.clone(),
            record: view.id.clone(),
            stored_ms: d.stored_ms,
            reads: d.reads.max(0) as u64,
            readers: serde_json::from_str(&d.readers).unwrap_or_default(),
        });
        sent.push((d.record_ref, d.version, view.id));
    }
    let r = Report {
        to: peer.to_string(),
        time: now,
        items,
    };
    let report = serde_json::to_vec(&r)
        .map_err(|e| NodeError::Io(format!("cannot encode a report: {e}")))?;
    let signature = node.keys.sign(REPORT_CONTEXT, &report).to_vec();
    Ok(Some(Outgoing {
        report,
        signature,
        sent,
        stamp,
        now_ms,
    }))
}

/// The originator filed `out` (`filed` of its records): its rows are
/// reported as they were sent, and the sending is audited as a disclosure
/// naming the records.
pub fn reported(node: &Node, actor: &Actor, peer: &str, out: &Outgoing, filed: u64) -> Result<()> {
    node.store.write(|tx| -> Result<()> {
        for (row, version, _) in &out.sent {
            store::provenance_reported(tx, *row, *version)?;
        }
        store::set_meta_stamp(tx, &out.stamp, out.now_ms)?;
        audit::append(
            node,
            actor,
            tx,
            Event::new(Action::ProvenanceSend)
                .peer(peer.to_string())
                .records(out.sent.iter().map(|(_, _, id)| id.clone()))
                .detail(format!(
                    "storage and read receipts of {} record(s) sent to their originator ({filed} filed there)",
                    out.sent.len()
                )),
        )?;
        Ok(())
    })
}

/// Files a partner's signed report of this node's records: each item
/// whose case holds the partner as a member (now or before) and whose
/// record this node originated; the rest are left out and counted.
/// Returns how many were filed, or why the report was refused (audited);
/// a report that is oversized or whose signature fails is an error.
pub fn answer_report(
    node: &Node,
    actor: &Actor,
    peer: &str,
    holder: &[u8; 32],
    report: &[u8],
    signature: &[u8],
) -> Result<std::result::Result<u64, String>> {
    if report.len() > MAX_REPORT_BYTES {
        return Err(NodeError::Protocol(format!(
            "a provenance report is at most {MAX_REPORT_BYTES} bytes"
        )));
    }
    // Verified before it is decoded.
    let sig = <[u8; casesync_crypto::SIGNATURE_LEN]>::try_from(signature)
        .map_err(|_| NodeError::Protocol("a report's signature is 64 bytes".into()))?;
    if casesync_crypto::identity::verify(holder, REPORT_CONTEXT, report, &sig).is_err() {
        return Err(NodeError::Protocol(
            "a provenance report's signature does not verify".into(),
        ));
    }
    let refuse = |why: String| -> Result<std::result::Result<u64, String>> {
        audit::append_alone(
            node,
            actor,
            Event::new(Action::ProvenanceReceive)
                .peer(peer.to_string())
                .refused(why.clone()),
        )?;
        Ok(Err(why))
    };
    let r: Report = match serde_json::from_slice(report) {
        Ok(r) => r,
        Err(e) => return refuse(format!("malformed provenance report: {e}")),
    };
    if r.to != node.card.peer_id() {
        return refuse("the report was signed for another node".into());
    }
    if r.items.len() > MAX_ITEMS {
        return refuse(format!("a report names at most {MAX_ITEMS} records"));
    }
    let me = node.card.peer_id();
    let hash = casesync_crypto::hash::sha256(report);
    node.store.write(|tx| -> Result<std::result::Result<u64, String>> {
        let (now_ms, _) = crate::clock::now();
        let id = store::insert_provenance_report(tx, holder, now_ms, &hash)?;
        let mut sealed_input = report.to_vec();
        sealed_input.extend_from_slice(&sig);
        store::set_provenance_report(tx, id, &node.storage.seal_provenance(id, &sealed_input)?)?;
        let mut cases: HashMap<String, Option<Case>> = HashMap::new();
        let (mut filed, mut left_out, mut records) = (0u64, 0u64, Vec::new());
        for item in &r.items {
            let case = match cases.get(&item.case) {
                Some(c) => c.as_ref(),
                None => {
                    let c = item
                        .case
                        .parse()
                        .ok()
                        .and_then(|id| cases::load(node, tx, &id).ok())
                        .filter(|c: &Case| {
                            c.state.members.contains_key(holder)
                                || c.state.removed.contains_key(holder)
                        });
                    cases.entry(item.case.clone()).or_insert(c).as_ref()
                }
            };
            let row = match (case, item.record.parse::<casesync_schema::RecordId>()) {
                (Some(c), Ok(rid)) => store::record_in_case(
                    tx,
                    c.case_ref,
                    &node.storage.record_index(&rid.0),
                )?
                .map(|row| (c, row)),
                _ => None,
            };
            let Some((case, row)) = row else {
                left_out += 1;
                continue;
            };
            if node.storage.record_view(&row)?.originator != me {
                left_out += 1;
                continue;
            }
            // The holder's clock: never later than this node's now.
            let since = item.stored_ms.clamp(0, now_ms);
            let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
            store::set_provenance_in(
                tx,
                case.case_ref,
                &row.rid_index,
                holder,
                (since, clamp(item.reads), item.readers.len() as i64),
                id,
            )?;
            filed += 1;
            records.push(item.record.clone());
        }
        audit::append(
            node,
            actor,
            tx,
            Event::new(Action::ProvenanceReceive)
                .peer(peer.to_string())
                .records(records)
                .detail(format!(
                    "signed report {}: storage and read receipts of {filed} record(s) of this node filed{}",
                    hash.short(),
                    if left_out > 0 {
                        format!(", {left_out} left out (not this node's records, or not shared with the sender)")
                    } else {
                        String::new()
                    }
                )),
        )?;
        Ok(Ok(filed))
    })
}

/// One node holding a record, as `record provenance` shows it.
#[derive(Debug, Serialize)]
pub struct Holder {
    pub node: String,
    pub name: String,
    pub org: String,
    /// `originator` (this node), `holds` (a signed report says so),
    /// `no report yet`, or `removed` (the node was removed from the case).
    pub state: &'static str,
    /// Since when it holds the record (RFC 3339), if known.
    pub since: Option<String>,
    pub reads: Option<i64>,
    /// How many people there read it (pseudonyms).
    pub readers: Option<i64>,
    /// When its latest report arrived, and that report's hash.
    pub reported: Option<String>,
    pub report: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Provenance {
    pub record: String,
    pub case: String,
    pub holders: Vec<Holder>,
}

/// `record provenance RECORD`, on the record's originator: each member
/// node of its case with what its signed reports say (holds since when,
/// how often read, by how many people), and nodes that held it before
/// their removal. A consultation, audited.
pub fn show(node: &Node, actor: &Actor, record_text: &str) -> Result<Provenance> {
    audit::audited(
        node,
        actor,
        Action::RecordProvenance,
        None,
        Some(record_text),
        || {
            node.store.write(|tx| -> Result<Provenance> {
                let (case, rid, view) =
                    crate::records::open_for(node, actor, tx, record_text, Need::Read)?;
                let me = node.card.peer_id();
                if view.originator != me {
                    return Err(NodeError::Refused(format!(
                        "record {rid} was made by {}: its provenance is kept there (this node reports its own storage and reads of it to that node)",
                        view.originator
                    )));
                }
                let registry = crate::trust::load(tx)?;
                let reports = store::provenance_of(
                    tx,
                    case.case_ref,
                    &node.storage.record_index(&rid.0),
                )?;
                let by_holder: HashMap<Vec<u8>, &store::ProvenanceIn> =
                    reports.iter().map(|r| (r.holder.clone(), r)).collect();
                let mut holders = Vec::new();
                let keys = case
                    .state
                    .members
                    .keys()
                    .map(|k| (*k, false))
                    .chain(case.state.removed.keys().map(|k| (*k, true)));
                for (k, removed) in keys {
                    let labels = cases::labels_of(registry.as_ref(), &case, &k);
                    let peer = casesync_crypto::identity::peer_id_of(&k).unwrap_or_default();
                    let got = by_holder.get(&k[..]);
                    if removed && got.is_none() {
                        continue;
                    }
                    let state = if peer == me {
                        "originator"
                    } else if removed {
                        "removed"
                    } else if got.is_some() {
                        "holds"
                    } else {
                        "no report yet"
                    };
                    holders.push(Holder {
                        node: peer.clone(),
                        name: labels.as_ref().map(|l| l.name.clone()).unwrap_or_default(),
                        org: labels.map(|l| l.org).unwrap_or_default(),
                        state,
                        since: if peer == me {
                            Some(view.created.clone())
                        } else {
                            got.map(|g| crate::clock::format_ms(g.stored_ms))
                        },
                        reads: got.map(|g| g.reads),
                        readers: got.map(|g| g.readers),
                        reported: got.map(|g| crate::clock::format_ms(g.received_ms)),
                        report: got.map(|g| {
                            casesync_crypto::hash::hex(&g.report_hash[..g.report_hash.len().min(8)])
                        }),
                    });
                }
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::RecordProvenance)
                        .case(case.id)
                        .records([rid]),
                )?;
                Ok(Provenance {
                    record: rid.to_string(),
                    case: case.id.to_string(),
                    holders,
                })
            })
        },
    )
}
