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
use casesync_schema::entry::{self, LogEntry, RecordChange, ViewItem};
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
    pub fn audit(&self, node: &Node, tx: &Connection, action: Action, peer: &str) -> Result<()> {
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
            audit::append(node, tx, ev)?;
        }
        if r.accepted.is_empty() && (r.registry_ops > 0 || r.control_ops > 0) {
            let ev = Event::new(action).peer(peer).detail(format!(
                "{} registry statements, {} control operations",
                r.registry_ops, r.control_ops
            ));
            audit::append(node, tx, ev)?;
        }
        for (case, what) in &r.erased {
            audit::append(
                node,
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
            audit::append(node, tx, ev)?;
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

/// The entries of a case this node holds and is a member of.
fn ingest_entries(
    node: &Node,
    conn: &Connection,
    case: &Case,
    items: &CaseItems,
    source: &str,
    report: &mut IngestReport,
) -> Result<()> {
    let case_id = case.id;
    let case_ref = case.case_ref;
    // Signatures first, on every core: nothing of an entry is looked at before
    // its signature holds.
    let decoded: Vec<_> = items
        .entries
        .par_iter()
        .map(|b| LogEntry::decode_verified(b))
        .collect();
    // Each entry with its row in `waiting_entries` if it was waiting there.
    let mut verified: Vec<(LogEntry, Option<i64>)> = Vec::with_capacity(decoded.len());
    for d in decoded {
        match d {
            Err(e) => report.rejected.push(format!("case {case_id}: entry: {e}")),
            Ok(e) if e.header.case != case_id => report
                .rejected
                .push(format!("case {case_id}: entry filed under another case")),
            Ok(e) => verified.push((e, None)),
        }
    }
    // Entries that arrived earlier than what they build on get another chance.
    for (row, bytes) in store::waiting_in_case(conn, case_ref)? {
        match LogEntry::decode_verified(&bytes) {
            Ok(e) if e.header.case == case_id => verified.push((e, Some(row))),
            _ => store::delete_waiting(conn, row)?,
        }
    }
    // Then, chunk by chunk (bounded memory), the work that needs no store, also
    // on every core: authority, opening the payload, building the record each
    // creating change makes. Then, in log order, the checks against the store and
    // the writes. Entries whose predecessor or view is not here yet wait for the
    // next pass; passes go on while they make progress.
    let keys = epoch_keys(node, conn, case, verified.iter().map(|(e, _)| e));
    let storage = &node.storage;
    let actor = crate::records::actor(node);
    let me = cases::own_labels(node, conn)?;
    let mut frozen: HashMap<[u8; 32], u64> = store::equivocations(conn, case_ref)?
        .into_iter()
        .map(|q| (q.author, q.seq))
        .collect();
    let ends = log_ends(conn, case, &verified, &frozen)?;
    enforce_cuts(node, conn, case, &ends, report)?;
    let mut pending = verified;
    pending.sort_by_key(|(e, _)| (e.header.author, e.header.seq));
    let mut docs = DocCache::default();
    loop {
        let mut progressed = false;
        let mut waiting = Vec::new();
        let mut rest = pending.into_iter().peekable();
        while rest.peek().is_some() {
            let mut chunk = Vec::new();
            let mut size = 0;
            while let Some(item) =
                rest.next_if(|(e, _)| chunk.is_empty() || size + e.bytes().len() <= PREPARE_BYTES)
            {
                size += item.0.bytes().len();
                chunk.push(item);
            }
            let prepared: Vec<Prepared> = chunk
                .par_iter()
                .map(|(e, _)| prepare(storage, &actor, &me, case, &ends, &keys, e))
                .collect();
            for ((e, row), prepared) in chunk.into_iter().zip(prepared) {
                let frozen_at = frozen.get(&e.header.author).copied();
                let ready = match readiness(conn, case_ref, &e, &frozen)? {
                    _ if frozen_at.is_some_and(|f| e.header.seq >= f) => Ready::Conflict(format!(
                        "its author's log in this case is frozen before seq {} (a proved equivocation)",
                        frozen_at.unwrap_or_default()
                    )),
                    // What cannot be applied whatever arrives is refused now.
                    Ready::Wait => match &prepared {
                        Err(reason) => Ready::Conflict(reason.clone()),
                        Ok(_) => Ready::Wait,
                    },
                    // A second entry at a used seq proves equivocation only if
                    // its author was allowed to write it (a member writer, a
                    // known epoch, within where its log ends): otherwise anyone
                    // holding a writer's key, a removed one included, could
                    // erase that writer's history and what others built on it.
                    // Up to a removal's cut the log is fixed by the removal.
                    Ready::Equivocation => match &prepared {
                        Err(reason) => Ready::Conflict(reason.clone()),
                        Ok(_) if fixed_by_cut(case, &ends, &e) => Ready::Conflict(
                            "its author was removed, and its log up to the removal's cut is fixed: a second entry at a seq it used is refused, not a proof".into(),
                        ),
                        Ok(_) => Ready::Equivocation,
                    },
                    r => r,
                };
                if !matches!(ready, Ready::Wait)
                    && let Some(row) = row
                {
                    store::delete_waiting(conn, row)?;
                }
                match ready {
                    Ready::Duplicate => {
                        report.duplicates += 1;
                        progressed = true;
                    }
                    Ready::Conflict(reason) => report
                        .rejected
                        .push(format!("entry {}: {reason}", name(&case_id, &e))),
                    Ready::Wait => waiting.push((e, row)),
                    Ready::Equivocation => {
                        // The freeze rebuilds records from their entries.
                        docs.flush(node, conn, case)?;
                        let at = freeze(node, conn, case, &e)?;
                        frozen.insert(e.header.author, at);
                        report.erased.push((
                            case_id,
                            format!(
                                "entries of {} from seq {at} on: its log is frozen (a proved equivocation)",
                                casesync_crypto::identity::peer_id_of(&e.header.author).unwrap_or_default()
                            ),
                        ));
                        report.rejected.push(format!(
                            "entry {}: equivocation: its author signed two different entries with this seq; both are kept as proof and its log in this case is frozen before seq {at}",
                            name(&case_id, &e)
                        ));
                    }
                    Ready::Yes => {
                        progressed = true;
                        let applied = store::savepoint(conn, || {
                            apply_entry(node, conn, case, &e, prepared, &frozen, &mut docs)
                        })?;
                        match &applied {
                            Ok(_) => docs.entry_done(),
                            Err(_) => docs.entry_failed(),
                        }
                        match applied {
                            Ok((created, updated, rids)) => {
                                report.entries += 1;
                                report.records_created += created;
                                report.records_updated += updated;
                                report
                                    .accepted
                                    .push((case_id, e.header.author, e.header.seq));
                                report
                                    .records
                                    .extend(rids.into_iter().map(|r| (case_id, r)));
                            }
                            Err(reason) => report
                                .rejected
                                .push(format!("entry {}: {reason}", name(&case_id, &e))),
                        }
                    }
                }
            }
        }
        pending = waiting;
        if !progressed || pending.is_empty() {
            break;
        }
    }
    docs.flush(node, conn, case)?;
    // What still waits is kept (within bounds per source) until the gap is filled.
    for (e, row) in pending {
        if row.is_some() {
            continue;
        }
        let from_source = store::waiting_from(conn, source)?;
        let total = store::waiting_total(conn)?;
        if let Err(whose) = may_wait(from_source, total, e.bytes().len() as u64) {
            let (count, bytes) = if whose == "its source" {
                from_source
            } else {
                total
            };
            report.rejected.push(format!(
                "entry {}: builds on entries this node does not hold, and {count} entries ({bytes} bytes) from {whose} already wait; not kept",
                name(&case_id, &e)
            ));
            continue;
        }
        if store::insert_waiting(conn, case_ref, &e.hash(), e.bytes(), source)? {
            report.waiting += 1;
        }
    }
    Ok(())
}

/// Where each removed writer's log ends in this case ([`control::log_ends`]),
/// counting the views of the entries held, waiting and arriving: an entry past
/// the cut is accepted after all if a remaining writer built on it. Views are
/// read only when some removed writer's log goes past its cut, here or
/// arriving; entries of frozen logs from their fork on vouch for nothing.
fn log_ends(
    conn: &Connection,
    case: &Case,
    arriving: &[(LogEntry, Option<i64>)],
    frozen: &HashMap<[u8; 32], u64>,
) -> Result<LogEnds> {
    let cuts = control::log_ends(&case.state, []);
    let mut past = arriving.iter().any(|(e, _)| {
        cuts.get(&e.header.author)
            .is_some_and(|ends| past_end(ends, e.header.seq))
    });
    for (author, ends) in &cuts {
        for (seq, _) in store::chain_heads(conn, case.case_ref, author)? {
            past |= past_end(ends, seq);
        }
    }
    if !past {
        return Ok(cuts);
    }
    let counts = |author: &[u8; 32], seq: u64| frozen.get(author).is_none_or(|f| seq < *f);
    let mut views: Vec<([u8; 32], Vec<ViewItem>)> = arriving
        .iter()
        .map(|(e, _)| &e.header)
        .filter(|h| counts(&h.author, h.seq))
        .map(|h| (h.author, h.view.clone()))
        .collect();
    // Stored entries were verified when they were accepted; one that no longer
    // decodes vouches for nothing (`log verify` names it).
    store::for_each_entry_of_case(conn, case.case_ref, |stored| {
        if let Ok(e) = LogEntry::decode_verified(&stored.bytes)
            && counts(&e.header.author, e.header.seq)
        {
            views.push((e.header.author, e.header.view));
        }
    })?;
    Ok(control::log_ends(
        &case.state,
        views.iter().map(|(a, v)| (a, v.as_slice())),
    ))
}

/// Where each removed writer's log ends, chain by chain.
type LogEnds = BTreeMap<[u8; 32], Vec<LogEnd>>;

/// Whether `seq` is past where its chain ends (a chain with no end keeps nothing).
fn past_end(ends: &[LogEnd], seq: u64) -> bool {
    control::end_of_chain(ends, seq).is_none_or(|end| seq > end.seq)
}

/// Takes out a removed member's entries past where its log ends that this node
/// accepted before it learned of the removal (docs/design.md: "every node accepts
/// that member's entries up to the cut and rejects the rest"), and rebuilds the
/// records they touched, so every node holds the same log whatever the order
/// in which entries and removal arrived.
fn enforce_cuts(
    node: &Node,
    conn: &Connection,
    case: &Case,
    ends: &LogEnds,
    report: &mut IngestReport,
) -> Result<()> {
    for (author, chain_ends) in ends {
        for (head, _) in store::chain_heads(conn, case.case_ref, author)? {
            let base = entry::chain_base(entry::chain_of(head));
            let from = match control::end_of_chain(chain_ends, head) {
                // Nothing of this chain is kept.
                None => base + 1,
                Some(end) => match store::entry_hash_at(conn, case.case_ref, author, end.seq)? {
                    // Another entry than the one the log ends with sits at its end.
                    Some(h) if !h.ct_eq(&end.hash) => end.seq,
                    _ if head > end.seq => end.seq + 1,
                    _ => continue,
                },
            };
            take_out(node, conn, case, author, from..=head, report)?;
        }
    }
    Ok(())
}

/// Takes out entries `seqs` of a removed member (one chain's tail), and says so.
fn take_out(
    node: &Node,
    conn: &Connection,
    case: &Case,
    author: &[u8; 32],
    seqs: std::ops::RangeInclusive<u64>,
    report: &mut IngestReport,
) -> Result<()> {
    let from = *seqs.start();
    let records = store::remove_entries_in(conn, case.case_ref, author, seqs)?;
    for r in &records {
        crate::records::rebuild(node, conn, case, *r)?;
    }
    let peer = casesync_crypto::identity::peer_id_of(author).unwrap_or_default();
    report.erased.push((
        case.id,
        format!(
            "entries of removed member {peer} from seq {from} on (past where its log ends); {} record(s) rebuilt",
            records.len()
        ),
    ));
    report.rejected.push(format!(
        "case {}: entries of removed member {peer} from seq {from} on were taken out (accepted before the removal was known); {} record(s) rebuilt",
        case.id,
        records.len()
    ));
    Ok(())
}

/// `e` forks its author's log: another entry with the same seq is held. Keeps
/// both as proof, and freezes the author's log in the case before the lowest
/// proved fork: its entries from there on are taken out (records rebuilt from
/// what remains) and never accepted again. Every node that holds a proof
/// freezes at the same point, whichever fork it saw first. Returns that seq.
fn freeze(node: &Node, conn: &Connection, case: &Case, e: &LogEntry) -> Result<u64> {
    let h = &e.header;
    let held = store::entries_after(conn, case.case_ref, &h.author, h.seq.saturating_sub(1), 1)?
        .into_iter()
        .find(|x| x.seq as u64 == h.seq)
        .ok_or_else(|| NodeError::Integrity("the forked entry vanished".into()))?;
    let at = store::insert_equivocation(
        conn,
        case.case_ref,
        &h.author,
        h.seq,
        &held.bytes,
        e.bytes(),
    )?;
    for record in store::remove_entries_from(conn, case.case_ref, &h.author, at)? {
        crate::records::rebuild(node, conn, case, record)?;
    }
    Ok(at)
}

/// An entry (author, seq) that built on the frozen log of `on`.
pub struct BuiltOnFrozen {
    pub author: [u8; 32],
    pub seq: u64,
    pub on: [u8; 32],
}

/// Entries held in `case` whose author built on an entry of a log frozen by a
/// proved equivocation (its view names a seq at or past the freeze): their
/// changes that depend on the frozen entries cannot apply. `status` shows them
/// (docs/design.md: changes that depended on frozen entries wait, and are shown).
pub fn built_on_frozen(conn: &Connection, case: &Case) -> Result<Vec<BuiltOnFrozen>> {
    let frozen: HashMap<[u8; 32], u64> = store::equivocations(conn, case.case_ref)?
        .into_iter()
        .map(|q| (q.author, q.seq))
        .collect();
    let mut out = Vec::new();
    if frozen.is_empty() {
        return Ok(out);
    }
    store::for_each_entry_of_case(conn, case.case_ref, |stored| {
        if let Ok(e) = LogEntry::decode_verified(&stored.bytes)
            && let Some(v) = e
                .header
                .view
                .iter()
                .find(|v| frozen.get(&v.author).is_some_and(|at| v.seq >= *at))
        {
            out.push(BuiltOnFrozen {
                author: e.header.author,
                seq: e.header.seq,
                on: v.author,
            });
        }
    })?;
    Ok(out)
}

/// Whether `e`'s author was removed and `e`'s seq is within where its log
/// ends: that part of the log is fixed, and no fork of it counts.
fn fixed_by_cut(case: &Case, ends: &LogEnds, e: &LogEntry) -> bool {
    case.state.removed.contains_key(&e.header.author)
        && ends
            .get(&e.header.author)
            .is_some_and(|ends| !past_end(ends, e.header.seq))
}

fn name(case: &CaseId, e: &LogEntry) -> String {
    log::entry_name(case, &e.header.author, e.header.seq as i64)
}

enum Ready {
    Yes,
    Wait,
    Duplicate,
    Conflict(String),
    /// Another entry with the same author and seq is held: a fork.
    Equivocation,
}

/// Whether `e` can be applied now. A view item in a log frozen by a proved
/// equivocation, at or past the freeze, is taken as met: that entry is never
/// held again, and requiring it would strand the honest writer's whole log
/// from there on (its changes that depended on it simply do not apply, and
/// `status` names the entry).
fn readiness(
    conn: &Connection,
    case_ref: i64,
    e: &LogEntry,
    frozen: &HashMap<[u8; 32], u64>,
) -> Result<Ready> {
    let h = &e.header;
    if let Some(stored) = store::entry_hash_at(conn, case_ref, &h.author, h.seq)? {
        return Ok(if stored.ct_eq(&e.hash()) {
            Ready::Duplicate
        } else {
            Ready::Equivocation
        });
    }
    // The entry before it in its chain; or, for a chain's first entry, the
    // earlier entry of its author it starts from (decoding checked the rest).
    if !entry::starts_chain(h.seq) {
        match store::entry_hash_at(conn, case_ref, &h.author, h.seq - 1)? {
            Some(hash) if h.prev.ct_eq(&hash) => {}
            Some(_) => {
                return Ok(Ready::Conflict(
                    "does not chain to the author's previous entry".into(),
                ));
            }
            None => return Ok(Ready::Wait),
        }
    } else if h.prev != Hash::ZERO {
        match store::seq_of_entry(conn, case_ref, &h.author, &h.prev)? {
            Some(seq) if entry::chain_of(seq) < entry::chain_of(h.seq) => {}
            Some(_) => {
                return Ok(Ready::Conflict(
                    "starts a chain from an entry that is not in an earlier chain".into(),
                ));
            }
            None => return Ok(Ready::Wait),
        }
    }
    for v in &h.view {
        if frozen.get(&v.author).is_some_and(|at| v.seq >= *at) {
            continue;
        }
        match store::entry_hash_at(conn, case_ref, &v.author, v.seq)? {
            Some(stored) if stored.ct_eq(&v.hash) => {}
            Some(_) => {
                return Ok(Ready::Conflict(
                    "its view names an entry this node holds with other content".into(),
                ));
            }
            None => return Ok(Ready::Wait),
        }
    }
    Ok(Ready::Yes)
}

/// The keys of the epochs `entries` name, read from the store once per batch so
/// that opening payloads needs no store. An epoch this node cannot open maps to
/// the reason, which every entry under it reports.
fn epoch_keys<'a>(
    node: &Node,
    conn: &Connection,
    case: &Case,
    entries: impl Iterator<Item = &'a LogEntry>,
) -> HashMap<Hash, std::result::Result<SymmetricKey, String>> {
    let mut keys = HashMap::new();
    for e in entries {
        let epoch = e.header.epoch;
        if case.state.epoch(&epoch).is_some() && !keys.contains_key(&epoch) {
            let k = cases::epoch_key(node, conn, case, &epoch).map_err(|e| e.to_string());
            keys.insert(epoch, k);
        }
    }
    keys
}

/// A record as one creating change makes it, ready to insert.
struct NewRecord {
    index: [u8; 32],
    /// The digest its view is sealed with: that of the entry that makes it.
    log_digest: Hash,
    type_index: [u8; 32],
    sealed_view: Vec<u8>,
    originator: String,
    /// Who it may be released to (empty: anyone in the case).
    releasable_to: Vec<String>,
}

/// An entry's changes, opened, each with the record it would create if the
/// record is not yet held (a change with no dependencies creates one).
type Prepared = std::result::Result<Vec<(RecordId, automerge::Change, Option<NewRecord>)>, String>;

/// Everything about applying `e` that needs no store: the author's authority,
/// the epoch, opening and parsing the payload, building new records. Pure, so
/// it runs on every core.
fn prepare(
    storage: &StorageKeys,
    actor: &ActorId,
    me: &cases::MemberLabels,
    case: &Case,
    ends: &LogEnds,
    keys: &HashMap<Hash, std::result::Result<SymmetricKey, String>>,
    e: &LogEntry,
) -> Prepared {
    let h = &e.header;
    match case.state.role_of(&h.author) {
        Some(r) if r.may_write() => {}
        Some(r) => {
            return Err(format!(
                "author is {} of the case and may not write",
                r.name()
            ));
        }
        None => match (
            case.state.removed.get(&h.author),
            ends.get(&h.author)
                .map(|ends| control::end_of_chain(ends, h.seq)),
        ) {
            // A removed writer's log is kept up to where it ends (its cut, or
            // the furthest entry a remaining writer built on), chain by chain,
            // and only as it was.
            (Some(_), Some(Some(end))) if h.seq < end.seq => {}
            (Some(_), Some(Some(end))) if h.seq == end.seq && e.hash().ct_eq(&end.hash) => {}
            (Some(_), Some(Some(end))) if h.seq == end.seq => {
                return Err("is not the entry its author's log in this case ends with".into());
            }
            (Some(_), Some(Some(end))) => {
                return Err(format!(
                    "author was removed from the case; its entries after seq {} are not accepted",
                    end.seq
                ));
            }
            (Some(_), Some(None)) => {
                return Err(
                    "author was removed from the case, and this chain of its log is not within its cut"
                        .into(),
                );
            }
            (Some(cut), None) => {
                return Err(format!(
                    "author was {} of the case and may not write",
                    cut.role.name()
                ));
            }
            (None, _) => return Err("author is not a member of the case".into()),
        },
    }
    let key = match keys.get(&h.epoch) {
        None => return Err("sealed under a key epoch the case does not have".into()),
        Some(Err(reason)) => return Err(reason.clone()),
        Some(Ok(k)) => k,
    };
    let changes: Vec<RecordChange> = e.open(key).map_err(|e| format!("payload: {e}"))?;
    // Every change is the entry author's own: its Automerge actor is the
    // author's, so no writer can pass its changes off as another's.
    let author_actor = doc::actor_for_chain(&h.author, entry::chain_of(h.seq));
    let originator = casesync_crypto::identity::peer_id_of(&h.author).unwrap_or_default();
    changes
        .iter()
        .map(|c| {
            let change = doc::parse_change(&c.change).map_err(|e| format!("payload: {e}"))?;
            if change.actor_id() != &author_actor {
                return Err(format!(
                    "record {}: a change made under another actor than the entry's author",
                    c.record
                ));
            }
            let expanded =
                doc::check_change(&change).map_err(|e| format!("record {}: {e}", c.record))?;
            let created = if change.deps().is_empty() {
                let r = new_record(
                    storage,
                    actor,
                    case,
                    &c.record,
                    &change,
                    &expanded,
                    &e.hash(),
                )
                .map_err(|e| format!("record {}: {e}", c.record))?;
                // The originator is the signed author of the first change.
                if r.originator != originator {
                    return Err(format!(
                        "record {}: names {} as originator, but {originator} wrote it",
                        c.record,
                        crate::short(&r.originator)
                    ));
                }
                // A record never rests on a node outside its releasable_to,
                // whoever sent it.
                let releasable = ReleasableTo(r.releasable_to.clone());
                if !releasable.permits(&me.org, &me.country) {
                    return Err(format!(
                        "record {}: releasable to {} only, not to this node ({}, {})",
                        c.record,
                        releasable.0.join(", "),
                        me.org,
                        me.country
                    ));
                }
                Some(r)
            } else {
                None
            };
            Ok((c.record, change, created))
        })
        .collect()
}

/// The record that `change`, its first, makes.
fn new_record(
    storage: &StorageKeys,
    actor: &ActorId,
    case: &Case,
    rid: &RecordId,
    change: &automerge::Change,
    expanded: &automerge::ExpandedChange,
    entry: &Hash,
) -> Result<NewRecord> {
    let view = match doc::view_of_first_change(expanded) {
        Some(v) => v,
        None => doc::view(&doc::from_changes(vec![change.clone()], actor.clone())?)?,
    };
    if view.id != rid.to_string() || view.case != case.id.to_string() {
        return Err(NodeError::Refused(format!(
            "record {rid}: its document names another record or case"
        )));
    }
    let index = storage.record_index(&rid.0);
    let json = serde_json::to_vec(&view).map_err(|e| NodeError::Io(e.to_string()))?;
    Ok(NewRecord {
        index,
        type_index: storage.type_index(&case.id.0, &view.record_type),
        log_digest: log::record_log_digest(std::slice::from_ref(entry)),
        sealed_view: storage.seal_view(
            &index,
            &log::record_log_digest(std::slice::from_ref(entry)).0,
            &json,
        )?,
        originator: view.originator,
        releasable_to: view.releasable_to,
    })
}

/// Stores one prepared entry and materializes its changes. Returns (created,
/// updated) record counts, or the reason it was refused (the caller runs it in a
/// savepoint, so nothing of a refused entry stays).
fn apply_entry(
    node: &Node,
    conn: &Connection,
    case: &Case,
    e: &LogEntry,
    prepared: Prepared,
    frozen: &HashMap<[u8; 32], u64>,
    docs: &mut DocCache,
) -> std::result::Result<(usize, usize, Vec<RecordId>), String> {
    let parsed = prepared?;
    let h = &e.header;
    // An entry that built on a frozen log may edit a record whose creation
    // was taken out with it: that change has nothing to apply to, and the
    // entry is kept all the same (its author's log goes on; `status` names it).
    let on_frozen = h
        .view
        .iter()
        .any(|v| frozen.get(&v.author).is_some_and(|at| v.seq >= *at));
    let row = store::insert_entry(conn, case.case_ref, &h.author, h.seq, &e.hash(), e.bytes())
        .map_err(|e| e.to_string())?;
    let mut counts = (0, 0);
    let mut rids = Vec::with_capacity(parsed.len());
    for (rid, change, created) in parsed {
        let orphan = created.is_none() && !change.deps().is_empty();
        if on_frozen
            && orphan
            && store::record_in_case(conn, case.case_ref, &node.storage.record_index(&rid.0))
                .map_err(|e| e.to_string())?
                .is_none()
        {
            continue;
        }
        materialize(
            node,
            conn,
            case,
            (row, &e.hash()),
            &rid,
            change,
            created,
            &mut counts,
            docs,
        )
        .map_err(|e| e.to_string())?;
        rids.push(rid);
    }
    Ok((counts.0, counts.1, rids))
}

/// Record documents that entries of this batch change. Their changes are
/// checked one by one as entries are accepted (the envelope from the change's
/// own ops), and applied together when the batch is done ([`DocCache::flush`]):
/// Automerge applies a batch of changes in one pass, but one change at a time
/// costs the whole document each, so a record with 5,000 edits delivered at
/// once would cost the square of its history. Entries are verified once, when
/// accepted; none is verified again here.
#[derive(Default)]
struct DocCache {
    docs: HashMap<i64, CachedDoc>,
}

struct CachedDoc {
    doc: automerge::AutoCommit,
    index: [u8; 32],
    rid: RecordId,
    /// The object of its `releasable_to` list (`doc::envelope_touched`).
    list: Option<(u64, automerge::ActorId)>,
    /// Changes of this batch's accepted entries, and of the entry being applied.
    applied: Vec<automerge::Change>,
    pending: Vec<automerge::Change>,
}

impl DocCache {
    /// The record's document as stored before this batch.
    fn load(
        node: &Node,
        conn: &Connection,
        case: &Case,
        row: &store::RecordRow,
        rid: &RecordId,
    ) -> Result<CachedDoc> {
        let entries = match row.snapshot {
            // A snapshot is sealed (and so authenticated) with the storage key.
            Some(_) => Vec::new(),
            // A record with one change: its one entry.
            None => log::verify_record_entries(conn, &case.id, row.row, rid)?,
        };
        let doc = crate::records::load_doc(node, conn, case, row, rid, &entries)?;
        let list = doc::releasable_list(&doc);
        Ok(CachedDoc {
            doc,
            index: row.rid_index,
            rid: *rid,
            list,
            applied: Vec::new(),
            pending: Vec::new(),
        })
    }

    fn get(
        &mut self,
        node: &Node,
        conn: &Connection,
        case: &Case,
        row: &store::RecordRow,
        rid: &RecordId,
    ) -> Result<&mut CachedDoc> {
        Ok(match self.docs.entry(row.row) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Self::load(node, conn, case, row, rid)?)
            }
        })
    }

    /// The entry whose changes were taken is accepted.
    fn entry_done(&mut self) {
        for d in self.docs.values_mut() {
            let pending = std::mem::take(&mut d.pending);
            d.applied.extend(pending);
        }
    }

    /// The entry was refused (its savepoint rolled back): its changes go.
    fn entry_failed(&mut self) {
        for d in self.docs.values_mut() {
            d.pending.clear();
        }
    }

    /// Applies each document's accepted changes in one pass, writes its
    /// snapshot and view, and forgets it. A change Automerge will not apply
    /// (it passed every check before) is left out, as one whose dependencies
    /// are missing is: its entry stays, as on every node.
    fn flush(&mut self, node: &Node, conn: &Connection, case: &Case) -> Result<()> {
        for (row, mut d) in self.docs.drain() {
            if d.applied.is_empty() {
                continue;
            }
            if doc::apply_changes(&mut d.doc, d.applied.clone()).is_err() {
                let Some(r) = store::record_by_row(conn, row)? else {
                    continue;
                };
                let mut fresh = Self::load(node, conn, case, &r, &d.rid)?;
                for c in &d.applied {
                    let _ = doc::apply_changes(&mut fresh.doc, vec![c.clone()]);
                }
                d.doc = fresh.doc;
            }
            let view = serde_json::to_vec(&doc::view(&d.doc)?)
                .map_err(|e| NodeError::Io(e.to_string()))?;
            let digest = log::stored_log_digest(conn, row)?;
            store::update_record(
                conn,
                row,
                &node
                    .storage
                    .seal_snapshot(&d.index, &digest.0, &d.doc.save())?,
                &node.storage.seal_view(&d.index, &digest.0, &view)?,
                &digest,
            )?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn materialize(
    node: &Node,
    conn: &Connection,
    case: &Case,
    (entry_row, entry_hash): (i64, &Hash),
    rid: &RecordId,
    change: automerge::Change,
    created: Option<NewRecord>,
    counts: &mut (usize, usize),
    docs: &mut DocCache,
) -> Result<()> {
    let idx = node.storage.record_index(&rid.0);
    // A record id is unique within its case only: the same id in another case
    // is another record (no member of one case can claim another's ids).
    match store::record_in_case(conn, case.case_ref, &idx)? {
        Some(row) => {
            let d = docs.get(node, conn, case, &row, rid)?;
            // The envelope is fixed when the record is made: no later change,
            // whoever signs it, rewrites what the record is, whose it is or
            // where it may go. Read from the change's ops (its own size).
            if let Some(key) = doc::envelope_touched(&change.decode(), d.list.as_ref()) {
                return Err(NodeError::Refused(format!(
                    "record {rid}: a change may not rewrite the record's `{key}`"
                )));
            }
            d.pending.push(change);
            store::link_record_entry(conn, row.row, entry_row)?;
            counts.1 += 1;
        }
        None => {
            let r = match created {
                Some(r) => r,
                None => new_record(
                    &node.storage,
                    &crate::records::actor(node),
                    case,
                    rid,
                    &change,
                    &change.decode(),
                    entry_hash,
                )?,
            };
            let row = store::insert_record(
                conn,
                case.case_ref,
                &r.index,
                &r.type_index,
                &r.sealed_view,
                !r.releasable_to.is_empty(),
                &r.log_digest,
            )?;
            store::link_record_entry(conn, row, entry_row)?;
            counts.0 += 1;
        }
    }
    Ok(())
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
