//! Ingest: items written by other nodes (from the network or a bundle) go
//! through the same checks before anything is stored: signature first, then
//! authority (a member allowed to write, under an epoch of the case), then the
//! author's hash chain and the entry's view (everything it built on must be
//! here), and only then are its changes materialized.
//! An item that fails is named in the report and leaves no trace. An entry that
//! passes the first two checks but arrived before what it builds on waits in
//! `waiting_entries` (bounded per source) and is retried whenever its case is
//! ingested again: entries may arrive in any order.

use casesync_crypto::Hash;
use casesync_schema::bundle::{BundleBody, CaseItems};
use casesync_schema::control::{self, CaseMeta, ControlOp, LogEnd};
use casesync_schema::doc;
use casesync_schema::entry::{self, LogEntry, RecordChange, RecordTag, ViewItem};
use casesync_schema::record::ReleasableTo;
use casesync_schema::registry::{self, RegistryOp};
use casesync_schema::{CaseId, RecordId};
use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::ActorId;
use casesync_crypto::SymmetricKey;
use rayon::prelude::*;
use rusqlite::Connection;

use crate::audit::{self, Action, Event};
use crate::cases::{self, Case};
use crate::sealing::StorageKeys;
use crate::{Node, NodeError, Result, log, store};

mod cuts;
mod docs;
mod entries;

use cuts::*;
pub use cuts::{BuiltOnFrozen, built_on_frozen};
use docs::*;
use entries::*;

/// Entry bytes prepared (opened, records built) at once: bounds the memory an
/// ingest holds however large the batch.
const PREPARE_BYTES: usize = 1 << 20;

/// Bounds on the entries one source may leave waiting for what they build on:
/// enough for any honest reordering, too little to fill a disk.
const MAX_WAITING_PER_SOURCE: u64 = 10_000;
const MAX_WAITING_BYTES_PER_SOURCE: u64 = 64 << 20;
/// And in all: a source is only a key (a bundle's sender outside a federation
/// is any key at all), so the bound per source alone bounds nothing.
const MAX_WAITING_TOTAL: u64 = 100_000;
const MAX_WAITING_BYTES_TOTAL: u64 = 256 << 20;

/// Whether one more entry of `size` bytes may wait, given what waits from its
/// source and in all (count, bytes). Pure.
fn may_wait(
    source: (u64, u64),
    total: (u64, u64),
    size: u64,
) -> std::result::Result<(), &'static str> {
    if source.0 >= MAX_WAITING_PER_SOURCE || source.1 + size > MAX_WAITING_BYTES_PER_SOURCE {
        return Err("its source");
    }
    if total.0 >= MAX_WAITING_TOTAL || total.1 + size > MAX_WAITING_BYTES_TOTAL {
        return Err("all sources together");
    }
    Ok(())
}

/// Most registry statements one message may carry: a federation of this
/// many nodes is far beyond any joint investigation team.
pub const MAX_REGISTRY_OPS_PER_MESSAGE: usize = 16_384;
/// Most control operations in one message, all cases together; a sender
/// splits a longer log, parents first (`sync::items_for`).
pub const MAX_CONTROL_OPS_PER_MESSAGE: usize = 16_384;

#[derive(Debug, Default, serde::Serialize)]
pub struct IngestReport {
    pub registry_ops: usize,
    pub control_ops: usize,
    pub entries: usize,
    pub duplicates: usize,
    pub records_created: usize,
    pub records_updated: usize,
    /// Entries kept until what they build on arrives.
    pub waiting: usize,
    /// Parts of entries held here filled in: records under H2 whose
    /// originator has since consented that this node hold them.
    pub parts_filled: usize,
    /// Items refused, each with its reason.
    pub rejected: Vec<String>,
    /// Entries accepted, as (case, author, seq): for the audit log.
    #[serde(skip)]
    pub accepted: Vec<(CaseId, [u8; 32], u64)>,
    /// Records created or updated, with their case.
    #[serde(skip)]
    pub records: Vec<(CaseId, RecordId)>,
    /// Entries taken out of a log (a removal's cut, a proved fork): which, in
    /// which case.
    #[serde(skip)]
    pub erased: Vec<(CaseId, String)>,
}

/// Most rejection reasons one audit entry lists (a hostile peer may send
/// thousands of bad items); the count is always complete.
const MAX_REASONS: usize = 100;

impl IngestReport {
    /// What an ingest from `peer` did, in its transaction: per case, the entries
    /// collected and the records they created or changed; entries taken out
    /// (erasure); and what was rejected, with the reasons.
    pub fn audit(
        &self,
        node: &Node,
        actor: &crate::audit::Actor,
        tx: &Connection,
        action: Action,
        peer: &str,
    ) -> Result<()> {
        let r = self;
        let mut cases: Vec<CaseId> = r.accepted.iter().map(|a| a.0).collect();
        cases.sort();
        cases.dedup();
        for case in cases {
            let mut records: Vec<String> = r
                .records
                .iter()
                .filter(|x| x.0 == case)
                .map(|x| x.1.to_string())
                .collect();
            records.sort();
            records.dedup();
            let ev = Event::new(action)
                .case(case)
                .peer(peer)
                .entries(audit::entry_ranges(
                    r.accepted.iter().filter(|a| a.0 == case).copied(),
                ))
                .records(records);
            audit::append(node, actor, tx, ev)?;
        }
        if r.accepted.is_empty() && (r.registry_ops > 0 || r.control_ops > 0) {
            let ev = Event::new(action).peer(peer).detail(format!(
                "{} registry statements, {} control operations",
                r.registry_ops, r.control_ops
            ));
            audit::append(node, actor, tx, ev)?;
        }
        for (case, what) in &r.erased {
            audit::append(
                node,
                actor,
                tx,
                Event::new(Action::EntriesErased)
                    .case(*case)
                    .peer(peer)
                    .detail(what.clone()),
            )?;
        }
        if !r.rejected.is_empty() {
            let mut why: Vec<&str> = r
                .rejected
                .iter()
                .take(MAX_REASONS)
                .map(String::as_str)
                .collect();
            let more = r.rejected.len().saturating_sub(MAX_REASONS);
            let tail = format!("and {more} more");
            if more > 0 {
                why.push(&tail);
            }
            let ev = Event::new(Action::SyncReject).peer(peer).refused(format!(
                "{} item(s) rejected: {}",
                r.rejected.len(),
                why.join("; ")
            ));
            audit::append(node, actor, tx, ev)?;
        }
        Ok(())
    }

    /// Adds what a later ingest in the same transaction did.
    pub fn absorb(&mut self, o: IngestReport) {
        // Every field named, so a new one cannot be forgotten here.
        let IngestReport {
            registry_ops,
            control_ops,
            entries,
            duplicates,
            records_created,
            records_updated,
            waiting,
            parts_filled,
            rejected,
            accepted,
            records,
            erased,
        } = o;
        self.registry_ops += registry_ops;
        self.control_ops += control_ops;
        self.entries += entries;
        self.duplicates += duplicates;
        self.records_created += records_created;
        self.records_updated += records_updated;
        self.waiting += waiting;
        self.parts_filled += parts_filled;
        self.rejected.extend(rejected);
        self.accepted.extend(accepted);
        self.records.extend(records);
        self.erased.extend(erased);
    }
}

/// Ingests a bundle's items inside the caller's write transaction.
/// `source` names the sender (a PeerId, or the bundle's sender) for the bounds
/// on what may wait; `sender` is its key. Only a member of a case (with the
/// control operations it sends taken into account) can hand this node items of
/// that case; anything else is refused alike whether this node holds the case
/// or not, so a non-member learns nothing from the answer.
pub fn ingest(
    node: &Node,
    conn: &Connection,
    body: &BundleBody,
    source: &str,
    sender: &[u8; 32],
) -> Result<IngestReport> {
    let mut report = IngestReport::default();
    ingest_registry(conn, &body.registry_ops, &mut report)?;
    for items in &body.cases {
        ingest_case(node, conn, items, source, sender, &mut report)?;
    }
    Ok(report)
}

fn ingest_registry(conn: &Connection, ops: &[Vec<u8>], report: &mut IngestReport) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let Some(st) = crate::trust::load(conn)? else {
        report.rejected.push(
            "registry statements: this node belongs to no federation (join with a token first)"
                .into(),
        );
        return Ok(());
    };
    if ops.len() > MAX_REGISTRY_OPS_PER_MESSAGE {
        report.rejected.push(format!(
            "registry statements: {} in one message (at most {MAX_REGISTRY_OPS_PER_MESSAGE}); none kept",
            ops.len()
        ));
        return Ok(());
    }
    // Statements held already are neither verified nor resolved again.
    let held: HashSet<Hash> = store::registry_op_hashes(conn)?.into_iter().collect();
    let mut new_ops: Vec<RegistryOp> = Vec::new();
    for bytes in ops {
        if held.contains(&casesync_crypto::hash::sha256(bytes)) {
            continue;
        }
        match RegistryOp::decode_verified(bytes) {
            Err(e) => report.rejected.push(format!("registry statement: {e}")),
            Ok(op) if op.federation != st.federation && op.hash() != st.federation => {
                report.rejected.push(format!(
                    "registry statement {}: another federation",
                    op.hash().short()
                ))
            }
            Ok(op) if new_ops.iter().any(|o| o.hash() == op.hash()) => {}
            Ok(op) => new_ops.push(op),
        }
    }
    if new_ops.is_empty() {
        return Ok(());
    }
    // Only statements that fold are kept: their author held the authority in
    // their own causal past. Anything else (any enrolled node can sign
    // statements) is refused and counted, so no node can fill the registry.
    let mut all = crate::trust::stored_ops(conn)?;
    all.extend(new_ops.iter().cloned());
    let resolved = registry::resolve(st.federation, &all)?;
    let mut refused = 0usize;
    for op in &new_ops {
        if resolved.folds.contains(&op.hash()) {
            store::insert_registry_op(conn, &op.hash(), op.bytes())?;
            report.registry_ops += 1;
        } else {
            refused += 1;
        }
    }
    if refused > 0 {
        report.rejected.push(format!(
            "{refused} registry statement(s) whose author held no authority for them (or whose parents are missing); not kept"
        ));
    }
    Ok(())
}

fn ingest_case(
    node: &Node,
    conn: &Connection,
    items: &CaseItems,
    source: &str,
    sender: &[u8; 32],
    report: &mut IngestReport,
) -> Result<()> {
    let case_id = items.case;
    let existing = store::case_by_id(conn, &case_id.0)?;
    if let Some(row) = &existing {
        // The common case (entries of a case this node holds, no new control
        // operations) needs no resolution here: `cases::load` keeps the state
        // resolved per set of operations.
        let held = store::control_op_hashes(conn, row.case_ref)?;
        let all_held = items.control_ops.iter().all(|b| {
            let h = casesync_crypto::hash::sha256(b);
            held.iter().any(|k| k.ct_eq(&h))
        });
        if all_held {
            let case = cases::load(node, conn, &case_id)?;
            if !is_member(node, &case.state, case_id, sender, report) {
                return Ok(());
            }
            return ingest_entries(node, conn, &case, items, source, report);
        }
    }
    if items.control_ops.len() > MAX_CONTROL_OPS_PER_MESSAGE {
        report.rejected.push(format!(
            "case {case_id}: {} control operations in one message (at most {MAX_CONTROL_OPS_PER_MESSAGE}); none kept",
            items.control_ops.len()
        ));
        return Ok(());
    }
    let mut ops: Vec<ControlOp> = match &existing {
        Some(row) => store::control_ops(conn, row.case_ref)?
            .iter()
            .map(|o| ControlOp::decode_verified(&o.bytes))
            .collect::<std::result::Result<_, _>>()?,
        None => Vec::new(),
    };
    let known: HashSet<Hash> = ops.iter().map(|o| o.hash()).collect();
    let mut new_ops = Vec::new();
    for bytes in &items.control_ops {
        if known.contains(&casesync_crypto::hash::sha256(bytes)) {
            continue;
        }
        match ControlOp::decode_verified(bytes) {
            Err(e) => report
                .rejected
                .push(format!("case {case_id}: control operation: {e}")),
            Ok(op) if op.case != case_id => report.rejected.push(format!(
                "case {case_id}: control operation filed under another case"
            )),
            Ok(op) => new_ops.push(op),
        }
    }
    ops.extend(new_ops.iter().cloned());
    // Cheap checks before any resolution (which builds ancestor sets): a case
    // this node does not hold needs a genesis that matches its id and must
    // name this node; and only the creator or a node some operation adds can
    // ever hold authority, so operations by anyone else are dropped unread.
    // A crafted log for any case id then costs a scan, not a resolution.
    if existing.is_none() && !names_this_node(node, case_id, &ops) {
        report.rejected.push(not_kept(case_id));
        return Ok(());
    }
    let may_hold: HashSet<[u8; 32]> = ops.iter().filter_map(control::may_grant).collect();
    let before = ops.len();
    ops.retain(|o| may_hold.contains(&o.author));
    new_ops.retain(|o| may_hold.contains(&o.author));
    if ops.len() < before {
        report.rejected.push(format!(
            "case {case_id}: {} control operation(s) by nodes that never held a role in the case; not kept",
            before - ops.len()
        ));
    }
    let state = match control::resolve_in(case_id, &ops, &cases::federation_facts(conn)?) {
        Ok(s) => s,
        Err(e) => {
            report.rejected.push(format!("case {case_id}: {e}"));
            return Ok(());
        }
    };
    // Only operations that fold are kept (authorized in their causal past).
    let before = new_ops.len();
    new_ops.retain(|o| state.folds.contains(&o.hash()));
    if new_ops.len() < before {
        report.rejected.push(format!(
            "case {case_id}: {} control operation(s) whose author held no authority for them (or whose parents are missing); not kept",
            before - new_ops.len()
        ));
    }
    if !is_member(node, &state, case_id, sender, report) {
        return Ok(());
    }
    let case_ref = match existing {
        Some(row) => row.case_ref,
        None => {
            let title = state
                .epochs
                .first()
                .and_then(|e| cases::unwrap_epoch(&node.keys, &case_id, e).ok())
                .and_then(|k| CaseMeta::open(&state.sealed_meta, &case_id, &k).ok())
                .unwrap_or(CaseMeta {
                    title: "(title not shared with this node)".into(),
                    require_justification: false,
                });
            let sealed = node
                .storage
                .seal_case_meta(&case_id.0, &cases::encode_local_meta(&title))?;
            store::insert_case(conn, &case_id.0, &sealed)?
        }
    };
    for op in &new_ops {
        store::insert_control_op(conn, case_ref, &op.hash(), op.bytes())?;
        report.control_ops += 1;
    }
    for e in &state.epochs {
        if let Ok(k) = cases::unwrap_epoch(&node.keys, &case_id, e) {
            store::put_epoch_key(
                conn,
                case_ref,
                &e.id,
                &node.storage.seal_epoch_key(&case_id.0, &e.id.0, &k)?,
            )?;
        }
    }
    let case = cases::load(node, conn, &case_id)?;
    ingest_entries(node, conn, &case, items, source, report)
}

/// Whether `ops` hold a genesis of `case` (its id derived from the creator's
/// key and nonce) and name this node: as creator or in an added card.
fn names_this_node(node: &Node, case: CaseId, ops: &[ControlOp]) -> bool {
    let me = node.keys.public().ed25519;
    let genesis = ops.iter().any(|o| {
        matches!(&o.body, control::ControlBody::Create { nonce, .. }
            if o.parents.is_empty() && control::case_id_for(&o.author, nonce) == case)
    });
    genesis && ops.iter().any(|o| control::may_grant(o) == Some(me))
}

/// Deny by default: nothing of a case is kept unless this node and the
/// sender are both members. Says so in `report` (one line, the same whatever
/// the reason) when they are not.
fn is_member(
    node: &Node,
    state: &control::CaseState,
    case_id: CaseId,
    sender: &[u8; 32],
    report: &mut IngestReport,
) -> bool {
    let member =
        state.role_of(&node.keys.public().ed25519).is_some() && state.role_of(sender).is_some();
    if !member {
        report.rejected.push(not_kept(case_id));
    }
    member
}

/// The one refusal for a case that this node or the sender is not a member
/// of: a non-member cannot tell whether this node holds the case.
fn not_kept(case_id: CaseId) -> String {
    format!("case {case_id}: the sender or this node is not a member; nothing of it was kept")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_is_bounded_per_source_and_in_all() {
        assert_eq!(may_wait((0, 0), (0, 0), 100), Ok(()));
        assert!(may_wait((MAX_WAITING_PER_SOURCE, 0), (0, 0), 1).is_err());
        assert!(may_wait((0, MAX_WAITING_BYTES_PER_SOURCE), (0, 0), 1).is_err());
        // Many fresh sources, each within its own bound, still stop at the total.
        assert_eq!(
            may_wait((0, 0), (MAX_WAITING_TOTAL, 0), 1),
            Err("all sources together")
        );
        assert_eq!(
            may_wait((0, 0), (0, MAX_WAITING_BYTES_TOTAL), 1),
            Err("all sources together")
        );
    }
}
