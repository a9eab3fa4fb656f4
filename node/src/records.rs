//! Records on top of the log engine: add, edit, show, list, import.
//!
//! Every write builds Automerge changes, appends them as entries to this node's
//! log and updates the materialized state (sealed view, sealed snapshot once a
//! record has more than one change) in one transaction. Every `show` re-verifies
//! the entries that carry the record before returning it.
//!
//! Longer than most files here (about 780 lines): the record commands share
//! loading, verification and sealing helpers that would otherwise cross files.

use automerge::ActorId;
use casesync_schema::RecordId;
use casesync_schema::doc::{self, Envelope, RecordEdit, RecordView};
use casesync_schema::entry::{LogEntry, RecordChange, RecordTag, record_tag};
use casesync_schema::record::{FieldValue, RecordInput, RecordType};
use rayon::prelude::*;
use rusqlite::Connection;

use crate::access::Need;
use crate::audit::{self, Action, Actor, Event};
use crate::cases::{self, Case};
use crate::sealing::StorageKeys;
use crate::store::{self, RecordRow};
use crate::{Node, NodeError, Result, log};

/// Records built in parallel per batch during bulk writes.
const BATCH: usize = 2048;
/// Text bytes in one batch of a bulk import, at most: records may be up to
/// 512 KiB each, and two batches (read, and being built) are held at once.
const BATCH_BYTES: usize = 1024 * 1024;
/// Most records one audit entry of an import lists (about 2 MiB of ids).
const AUDIT_PART: usize = 50_000;

pub(crate) fn automerge_actor(node: &Node) -> ActorId {
    doc::actor_for(&node.keys.public().ed25519)
}

fn require_writer(node: &Node, case: &Case) -> Result<()> {
    if let Some((_, by, ms)) = &case.state.closed {
        return Err(NodeError::Refused(format!(
            "case {} was closed by {} at {}: it is read-only",
            case.id,
            casesync_crypto::identity::peer_id_of(by).unwrap_or_default(),
            crate::clock::format_ms(*ms)
        )));
    }
    match case.my_role(node) {
        Some(r) if r.may_write() => Ok(()),
        Some(r) => Err(NodeError::Refused(format!(
            "this node's role in case {1} is {0}: it cannot write records",
            r.name(),
            case.id
        ))),
        None => Err(NodeError::Refused(format!(
            "this node is not a member of case {}",
            case.id
        ))),
    }
}

pub(crate) fn parse_record_id(text: &str) -> Result<RecordId> {
    text.trim().parse().map_err(|_| {
        NodeError::Refused(format!(
            "`{}` is not a record id (see `casesync record list CASE`)",
            crate::short(text)
        ))
    })
}

/// Finds a record by id: its case, its row. A record id is unique within its
/// case; should two cases hold one id, the record is named with its case.
/// [`find`], for `actor`: refused when `actor` may not do what `need` says
/// on the record's case, or the case asks every action for a justification
/// and `actor` gave none.
fn find_for(
    node: &Node,
    actor: &Actor,
    conn: &Connection,
    text: &str,
    need: Need,
) -> Result<(Case, RecordRow, RecordId)> {
    let found = find(node, conn, text)?;
    cases::require_access(actor, conn, &found.0, need)?;
    Ok(found)
}

fn find(node: &Node, conn: &Connection, text: &str) -> Result<(Case, RecordRow, RecordId)> {
    let (rid_text, case_text) = match text.split_once('@') {
        Some((r, c)) => (r, Some(c)),
        None => (text, None),
    };
    let rid = parse_record_id(rid_text)?;
    let idx = node.storage.record_index(&rid.0);
    let row = match case_text {
        Some(c) => {
            let case = cases::load_by_text(node, conn, c)?;
            store::record_in_case(conn, case.case_ref, &idx)?
        }
        None => {
            let mut rows = store::records_by_index(conn, &idx)?;
            if rows.len() > 1 {
                let mut names = Vec::new();
                for r in &rows {
                    if let Some(c) = store::case_by_ref(conn, r.case_ref)? {
                        names.push(format!("{rid}@{}", casesync_schema::CaseId(c.case_id)));
                    }
                }
                return Err(NodeError::Refused(format!(
                    "record id {rid} is in {} cases; name the one you mean: {}",
                    rows.len(),
                    names.join(" or ")
                )));
            }
            rows.pop()
        }
    }
    .ok_or_else(|| NodeError::Refused(format!("unknown record {rid}")))?;
    let case_row = store::case_by_ref(conn, row.case_ref)?
        .ok_or_else(|| NodeError::Integrity(format!("record {rid} belongs to no case")))?;
    let case = cases::load(node, conn, &casesync_schema::CaseId(case_row.case_id))?;
    Ok((case, row, rid))
}

/// Link endpoints must be records of the same case.
fn check_link_targets(
    node: &Node,
    conn: &Connection,
    case: &Case,
    input: &RecordInput,
) -> Result<()> {
    if input.record_type != RecordType::Link {
        return Ok(());
    }
    for end in ["from", "to"] {
        let Some(v) = input.fields.get(end) else {
            continue;
        };
        let rid = parse_record_id(&v.as_text())?;
        match store::record_in_case(conn, case.case_ref, &node.storage.record_index(&rid.0))? {
            Some(_) => {}
            None => {
                return Err(NodeError::Refused(format!(
                    "link `{end}`: unknown record {rid} in case {}",
                    case.id
                )));
            }
        }
    }
    Ok(())
}

struct Built {
    id: RecordId,
    rid_index: [u8; 32],
    type_index: [u8; 16],
    /// Sealed once the entry that carries it exists (the seal binds its hash).
    view: RecordView,
    change: Vec<u8>,
    restricted: bool,
    /// What the search index files it under.
    terms: Vec<[u8; 16]>,
}

fn build(
    storage: &StorageKeys,
    region: &str,
    actor: &ActorId,
    env: Envelope,
    input: &RecordInput,
    ms: i64,
) -> std::result::Result<Built, NodeError> {
    let (change, view) = doc::first_change(actor.clone(), &env, input, ms);
    let terms = crate::search::terms(storage, Some(region), &view);
    let rid_index = storage.record_index(&env.id.0);
    Ok(Built {
        id: env.id,
        rid_index,
        type_index: storage.type_index(&env.case.0, input.record_type.name()),
        restricted: view.restricted(),
        view,
        change,
        terms,
    })
}

/// Creates records from validated inputs inside a write transaction.
/// `id`: the one record's id when the caller chose it (evidence seals its
/// file to the record before the record exists); else new ones.
fn create_records(
    conn: &Connection,
    node: &Node,
    case: &Case,
    inputs: &[RecordInput],
    id: Option<RecordId>,
) -> Result<Vec<RecordId>> {
    let (epoch, key) = cases::current_epoch(node, conn, case)?;
    let actor = log::actor_for_next(conn, node, case.case_ref)?;
    let builder = RecordBuilder::new(node, case, actor);
    let built = match (id, inputs) {
        (Some(id), [one]) => vec![builder.build_one(id, one)?],
        _ => builder.build(inputs)?,
    };
    store_records(conn, node, case, &epoch, &key, built)
}

/// What building records needs of the node (the node itself, holding a store
/// connection, stays on the thread that owns the transaction).
struct RecordBuilder<'a> {
    storage: &'a StorageKeys,
    region: String,
    actor: ActorId,
    originator: String,
    case: casesync_schema::CaseId,
}

impl<'a> RecordBuilder<'a> {
    /// `actor`: this node's in the chain its next entry goes in
    /// ([`log::actor_for_next`]).
    fn new(node: &'a Node, case: &Case, actor: ActorId) -> Self {
        RecordBuilder {
            storage: &node.storage,
            region: node.card.country.clone(),
            actor,
            originator: node.card.peer_id(),
            case: case.id,
        }
    }

    /// The store-free half of creating records: each record's first change,
    /// sealed view and blind indexes, built on every core.
    fn build_one(&self, id: RecordId, input: &RecordInput) -> Result<Built> {
        let (ms, created) = crate::clock::now();
        let env = Envelope {
            id,
            case: self.case,
            originator: self.originator.clone(),
            created,
        };
        build(self.storage, &self.region, &self.actor, env, input, ms)
    }

    fn build(&self, inputs: &[RecordInput]) -> Result<Vec<Built>> {
        let (ms, created) = crate::clock::now();
        inputs
            .par_iter()
            .map(|input| {
                let env = Envelope {
                    id: RecordId::new_v7(),
                    case: self.case,
                    originator: self.originator.clone(),
                    created: created.clone(),
                };
                build(self.storage, &self.region, &self.actor, env, input, ms)
            })
            .collect()
    }
}

/// The store half: appends built records' changes to this node's log, then
/// inserts the records, each view sealed with the digest of the entry that
/// carries it, in the caller's transaction.
fn store_records(
    conn: &Connection,
    node: &Node,
    case: &Case,
    epoch: &casesync_crypto::Hash,
    key: &casesync_crypto::aead::SymmetricKey,
    mut built: Vec<Built>,
) -> Result<Vec<RecordId>> {
    let changes: Vec<RecordChange> = built
        .iter_mut()
        .map(|b| RecordChange {
            record: b.id,
            change: std::mem::take(&mut b.change),
        })
        .collect();
    let appended = log::append(conn, node, (case.case_ref, case.id), epoch, key, &changes)?;
    drop(changes);
    // Which entry carries each record (each new record is in exactly one).
    let mut carried_by = vec![(0i64, casesync_crypto::Hash::ZERO); built.len()];
    for a in &appended {
        for i in a.changes.clone() {
            carried_by[i] = (a.row, a.hash);
        }
    }
    let storage = &node.storage;
    let sealed: Vec<(casesync_crypto::Hash, Vec<u8>)> = built
        .par_iter()
        .zip(carried_by.par_iter())
        .map(|(b, (_, entry))| {
            let digest = log::record_log_digest(std::slice::from_ref(entry));
            Ok((digest, storage.seal_view(&b.rid_index, &digest.0, &b.view)?))
        })
        .collect::<Result<_>>()?;
    let mut ids = Vec::with_capacity(built.len());
    for ((b, (digest, view)), (entry_row, _)) in built.iter().zip(sealed).zip(carried_by) {
        let row = store::insert_record(
            conn,
            case.case_ref,
            (&b.rid_index, &record_tag(&case.id, &b.id).0),
            &b.type_index,
            &view,
            b.restricted,
            &digest,
        )?;
        store::link_record_entry(conn, row, entry_row)?;
        store::file_search_terms(conn, row, &b.terms)?;
        ids.push(b.id);
    }
    Ok(ids)
}

/// Adds one record to a case.
pub fn add(node: &Node, actor: &Actor, case_text: &str, input: RecordInput) -> Result<RecordView> {
    add_record(node, actor, case_text, input, None)
}

/// How a record made by another operation (evidence) is audited, and the
/// id it was made for.
pub(crate) struct Made {
    pub id: RecordId,
    pub action: Action,
    pub detail: String,
}

/// `add`, or, with `made`, the record another operation prepared: its id
/// and audit entry are the caller's.
pub(crate) fn add_record(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    input: RecordInput,
    made: Option<Made>,
) -> Result<RecordView> {
    let action = made.as_ref().map_or(Action::RecordAdd, |m| m.action);
    audit::audited(node, actor, action, Some(case_text), None, || {
        let input = input.validate()?;
        node.store.write(|tx| -> Result<RecordView> {
            let case = cases::load_by_text(node, tx, case_text)?;
            cases::require_access(actor, tx, &case, Need::Write)?;
            require_writer(node, &case)?;
            check_link_targets(node, tx, &case, &input)?;
            cases::check_handling_for_record(
                &cases::member_labels(tx, &case)?,
                &input.releasable_to,
            )?;
            let ids = create_records(
                tx,
                node,
                &case,
                std::slice::from_ref(&input),
                made.as_ref().map(|m| m.id),
            )?;
            let id = ids
                .into_iter()
                .next()
                .ok_or_else(|| NodeError::Integrity("no record was created".into()))?;
            if input.handling.is_h2() {
                cases::declare_h2(node, tx, &case, vec![record_tag(&case.id, &id)], vec![])?;
            }
            // A link combines records: it is audited as such, naming both ends.
            let ev = match (&made, input.record_type) {
                (Some(m), _) => Event::new(m.action).records([id]).detail(m.detail.clone()),
                (None, RecordType::Link) => Event::new(Action::RecordLink).records(
                    std::iter::once(id.to_string()).chain(
                        ["from", "to"]
                            .iter()
                            .filter_map(|k| input.fields.get(*k).map(|v| v.as_text())),
                    ),
                ),
                (None, _) => Event::new(Action::RecordAdd).records([id]),
            };
            audit::append(node, actor, tx, ev.case(case.id))?;
            view_of(node, tx, &id.to_string())
        })
    })
}

/// What an import did.
#[derive(Debug, serde::Serialize)]
pub struct ImportReport {
    pub records: usize,
}

/// Imports records all-or-nothing. Records are read, checked and written in
/// batches inside one transaction, so memory stays bounded whatever the file size
/// and any bad line (or a crash) leaves the store exactly as it was.
pub fn import(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    source: &mut dyn Iterator<Item = Result<(usize, RecordInput)>>,
    progress: &mut dyn FnMut(usize),
) -> Result<ImportReport> {
    audit::audited(
        node,
        actor,
        Action::RecordImport,
        Some(case_text),
        None,
        || import_with(node, actor, case_text, source, progress, true),
    )
}

/// [`import`], with or without its audit entry: without only for measuring
/// what auditing costs ([`crate::bench`]); no command imports unaudited.
pub(crate) fn import_with(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    source: &mut dyn Iterator<Item = Result<(usize, RecordInput)>>,
    progress: &mut dyn FnMut(usize),
    audited: bool,
) -> Result<ImportReport> {
    let at = |line: usize, e: NodeError| {
        NodeError::Refused(format!("line {line}: {e}; nothing was imported"))
    };
    let count = node.store.write(|tx| -> Result<usize> {
        let case = cases::load_by_text(node, tx, case_text)?;
        cases::require_access(actor, tx, &case, Need::Write)?;
        require_writer(node, &case)?;
        let (epoch, key) = cases::current_epoch(node, tx, &case)?;
        let members = cases::member_labels(tx, &case)?;
        // A pipeline: this thread reads, checks and stores; a builder thread
        // builds the batch read before (on every core) meanwhile. At most two
        // batches are in flight, so memory stays bounded.
        // The records stored since the last audit entry: a large import is
        // audited in parts, in its one transaction (all or nothing still),
        // so what it holds does not grow with the file.
        let mut created: Vec<RecordId> = Vec::new();
        let mut parts = 0usize;
        // Whether each record read and not yet stored is under H2, in order;
        // the tags of those stored that are.
        let h2 = std::cell::RefCell::new(std::collections::VecDeque::<bool>::new());
        let mut h2_tags: Vec<RecordTag> = Vec::new();
        let done = std::thread::scope(|s| -> Result<usize> {
            let (to_build, inputs) = std::sync::mpsc::sync_channel::<Vec<RecordInput>>(1);
            let (built_tx, built) = std::sync::mpsc::sync_channel::<Result<Vec<Built>>>(1);
            let builder =
                RecordBuilder::new(node, &case, log::actor_for_next(tx, node, case.case_ref)?);
            s.spawn(move || {
                for batch in inputs {
                    if built_tx.send(builder.build(&batch)).is_err() {
                        break;
                    }
                }
            });
            let mut in_flight = 0usize;
            let mut done = 0usize;
            let mut store_next = |done: &mut usize| -> Result<()> {
                let b = built
                    .recv()
                    .map_err(|_| NodeError::Io("the record builder stopped".into()))??;
                *done += b.len();
                for id in store_records(tx, node, &case, &epoch, &key, b)? {
                    if h2.borrow_mut().pop_front().unwrap_or(false) {
                        h2_tags.push(record_tag(&case.id, &id));
                    }
                    created.push(id);
                }
                if audited && created.len() >= AUDIT_PART {
                    parts += 1;
                    let ev = Event::new(Action::RecordImport)
                        .case(case.id)
                        .records(std::mem::take(&mut created))
                        .detail(format!(
                            "part {parts} of an import: {AUDIT_PART} record(s); more follow"
                        ));
                    audit::append(node, actor, tx, ev)?;
                }
                progress(*done);
                Ok(())
            };
            let mut send = |batch: Vec<RecordInput>, in_flight: &mut usize, done: &mut usize| {
                to_build
                    .send(batch)
                    .map_err(|_| NodeError::Io("the record builder stopped".into()))?;
                *in_flight += 1;
                while *in_flight >= 2 {
                    store_next(done)?;
                    *in_flight -= 1;
                }
                Ok::<(), NodeError>(())
            };
            let mut batch = Vec::with_capacity(BATCH);
            let mut batch_bytes = 0usize;
            for item in source {
                let (line, input) = item?;
                let input = input.validate().map_err(|e| at(line, e.into()))?;
                check_link_targets(node, tx, &case, &input).map_err(|e| at(line, e))?;
                cases::check_handling_for_record(&members, &input.releasable_to)
                    .map_err(|e| at(line, e))?;
                h2.borrow_mut().push_back(input.handling.is_h2());
                batch_bytes += input.content_bytes();
                batch.push(input);
                if batch.len() == BATCH || batch_bytes >= BATCH_BYTES {
                    send(std::mem::take(&mut batch), &mut in_flight, &mut done)?;
                    batch_bytes = 0;
                }
            }
            if !batch.is_empty() {
                send(batch, &mut in_flight, &mut done)?;
            }
            for _ in 0..in_flight {
                store_next(&mut done)?;
            }
            Ok(done)
        })?;
        cases::declare_h2(node, tx, &case, h2_tags, vec![])?;
        if audited {
            let ev = Event::new(Action::RecordImport)
                .case(case.id)
                .records(created)
                .detail(if parts == 0 {
                    format!("{done} record(s) imported")
                } else {
                    format!(
                        "{done} record(s) imported, listed in {} parts: this and the {parts} before",
                        parts + 1
                    )
                });
            audit::append(node, actor, tx, ev)?;
        }
        Ok(done)
    })?;
    let _ = node.store.checkpoint();
    Ok(ImportReport { records: count })
}

/// Rebuilds a record's Automerge document: from its snapshot, or (for a record
/// with a single change) from the verified entry that carries it.
pub(crate) fn load_doc(
    node: &Node,
    conn: &Connection,
    case: &Case,
    row: &RecordRow,
    rid: &RecordId,
    entries: &[LogEntry],
) -> Result<automerge::AutoCommit> {
    let idx = node.storage.record_index(&rid.0);
    if let Some(sealed) = &row.snapshot {
        let snap = node.storage.open_snapshot(&idx, &row.log_digest, sealed)?;
        return Ok(doc::load_snapshot(&snap, automerge_actor(node))?);
    }
    let mut changes = Vec::new();
    for e in entries {
        let key = cases::epoch_key(node, conn, case, &e.header.epoch)?;
        for c in e.open(&key)?.into_iter().filter(|c| &c.record == rid) {
            changes.push(doc::parse_change(&c.change)?);
        }
    }
    if changes.is_empty() {
        return Err(NodeError::Integrity(format!(
            "record {rid} has no changes in its log entries"
        )));
    }
    Ok(doc::from_changes(changes, automerge_actor(node))?)
}

/// Rebuilds a record's materialized state from the entries still linked to it
/// (after entries were taken out of a frozen log); a record none of whose
/// entries remain is deleted.
pub(crate) fn rebuild(node: &Node, conn: &Connection, case: &Case, record_row: i64) -> Result<()> {
    let Some(row) = store::record_by_row(conn, record_row)? else {
        return Ok(());
    };
    let view = node.storage.record_view(&row)?;
    let rid = parse_record_id(&view.id)?;
    let mut changes = Vec::new();
    for se in store::entries_of_record(conn, row.row)?
        .into_iter()
        .flatten()
    {
        let e = LogEntry::decode_verified(&se.bytes)?;
        let key = cases::epoch_key(node, conn, case, &e.header.epoch)?;
        for c in e.open(&key)?.into_iter().filter(|c| c.record == rid) {
            changes.push(doc::parse_change(&c.change)?);
        }
    }
    if changes.is_empty() {
        crate::search::unfile(node, conn, &row)?;
        return store::delete_record(conn, row.row).map_err(Into::into);
    }
    let single = changes.len() == 1;
    let mut d = doc::from_changes(changes, automerge_actor(node))?;
    let Ok(view) = doc::view(&d) else {
        // What remains cannot make a record: its creation was taken out with
        // a frozen log, and only others' changes built on it are left. The
        // record goes; those entries stay in their authors' logs, and
        // `status` names them (`ingest::built_on_frozen`).
        crate::search::unfile(node, conn, &row)?;
        return store::delete_record(conn, row.row).map_err(Into::into);
    };
    crate::search::refile(node, conn, &row, &view)?;
    let digest = log::stored_log_digest(conn, row.row)?;
    let snapshot = if single {
        None
    } else {
        Some(
            node.storage
                .seal_snapshot(&row.rid_index, &digest.0, &d.save())?,
        )
    };
    store::set_record(
        conn,
        row.row,
        snapshot.as_deref(),
        &node.storage.seal_view(&row.rid_index, &digest.0, &view)?,
        &digest,
        view.restricted(),
    )?;
    Ok(())
}

/// Edits a record: sets and unsets fields. The result must still be a valid record.
pub fn edit(
    node: &Node,
    actor: &Actor,
    record_text: &str,
    set: Vec<(String, FieldValue)>,
    unset: Vec<String>,
) -> Result<RecordView> {
    audit::audited(
        node,
        actor,
        Action::RecordEdit,
        None,
        Some(record_text),
        || {
            node.store.write(|tx| -> Result<RecordView> {
                let (case, row, rid) = find_for(node, actor, tx, record_text, Need::Write)?;
                require_writer(node, &case)?;
                let mut d = doc_for_change(node, tx, &case, &row, &rid)?;
                let current = doc::view(&d)?;
                let mut input = current.to_input()?;
                for (k, v) in &set {
                    input.fields.insert(k.clone(), v.clone());
                }
                for k in &unset {
                    if input.fields.remove(k).is_none() {
                        return Err(NodeError::Refused(format!(
                            "record {rid} has no field `{k}` to unset"
                        )));
                    }
                }
                let valid = input.validate()?;
                check_link_targets(node, tx, &case, &valid)?;
                let normalized = set
                    .iter()
                    .filter_map(|(k, _)| valid.fields.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                let edit = RecordEdit {
                    set: normalized,
                    unset,
                    ..Default::default()
                };
                let fields: Vec<String> = edit
                    .set
                    .keys()
                    .cloned()
                    .chain(edit.unset.iter().map(|k| format!("-{k}")))
                    .collect();
                let ev = Event::new(Action::RecordEdit)
                    .case(case.id)
                    .records([rid])
                    .detail(format!("fields: {}", fields.join(", ")));
                if commit_edit(node, tx, &case, &row, rid, &mut d, &edit)?.is_none() {
                    audit::append(
                        node,
                        actor,
                        tx,
                        ev.detail("no change: the fields already held these values"),
                    )?;
                    return view_of(node, tx, &rid.to_string());
                }
                audit::append(node, actor, tx, ev)?;
                view_of(node, tx, &rid.to_string())
            })
        },
    )
}

/// Appends `edit` of record `rid` as this node's change and brings its
/// stored state along (snapshot, view, search terms, restricted mark), in
/// the caller's transaction. The new view, or `None` when the edit changed
/// nothing.
fn commit_edit(
    node: &Node,
    tx: &Connection,
    case: &Case,
    row: &RecordRow,
    rid: RecordId,
    d: &mut automerge::AutoCommit,
    edit: &RecordEdit,
) -> Result<Option<RecordView>> {
    let (ms, now) = crate::clock::now();
    let Some(change) = doc::apply_edit(d, edit, &now, ms)? else {
        return Ok(None);
    };
    let (epoch, key) = cases::current_epoch(node, tx, case)?;
    for a in log::append(
        tx,
        node,
        (case.case_ref, case.id),
        &epoch,
        &key,
        &[RecordChange {
            record: rid,
            change,
        }],
    )? {
        store::link_record_entry(tx, row.row, a.row)?;
    }
    let idx = node.storage.record_index(&rid.0);
    let opened = doc::view(d)?;
    crate::search::refile(node, tx, row, &opened)?;
    let snapshot = d.save();
    let digest = log::stored_log_digest(tx, row.row)?;
    store::update_record(
        tx,
        row.row,
        &node.storage.seal_snapshot(&idx, &digest.0, &snapshot)?,
        &node.storage.seal_view(&idx, &digest.0, &opened)?,
        &digest,
        opened.restricted(),
    )?;
    Ok(Some(opened))
}

/// A record's document, loaded for this node's next change of it.
fn doc_for_change(
    node: &Node,
    tx: &Connection,
    case: &Case,
    row: &RecordRow,
    rid: &RecordId,
) -> Result<automerge::AutoCommit> {
    let entries = log::verify_record_entries(tx, &case.id, row.row, rid)?;
    let mut d = load_doc(node, tx, case, row, rid, &entries)?;
    d.set_actor(log::actor_for_next(tx, node, case.case_ref)?);
    Ok(d)
}

/// What `record regrade` changes: a new grading (or none), a new handling
/// code; at least one.
#[derive(Clone, Debug, Default)]
pub struct Regrade {
    pub grading: Option<casesync_schema::grading::Grading>,
    pub handling: Option<casesync_schema::grading::HandlingCode>,
}

/// `record regrade`: the originator changes a record's grading or handling
/// code, a signed change every member checks came from the originator
/// (`doc::later_change_refusal`), audited with the reason. A record put
/// under H2 goes on to the members of the case then (this node's consent
/// is signed for them); a member added later needs `case consent`.
pub fn regrade(
    node: &Node,
    actor: &Actor,
    record_text: &str,
    change: &Regrade,
    reason: &str,
) -> Result<RecordView> {
    audit::audited(
        node,
        actor,
        Action::RecordRegrade,
        None,
        Some(record_text),
        || {
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(NodeError::Refused(
                    "a regrade needs --reason: the audit log keeps it".into(),
                ));
            }
            if change.grading.is_none() && change.handling.is_none() {
                return Err(NodeError::Refused(
                    "nothing to change: give --grading SYSTEM:CODE or --handling CODE".into(),
                ));
            }
            node.store.write(|tx| -> Result<RecordView> {
                let (case, row, rid) = find_for(node, actor, tx, record_text, Need::Write)?;
                require_writer(node, &case)?;
                let mut d = doc_for_change(node, tx, &case, &row, &rid)?;
                let before = doc::view(&d)?;
                let me = node.card.peer_id();
                if before.originator != me {
                    let registry = crate::trust::load(tx)?;
                    let h = cases::Handling::new(registry.as_ref(), &case);
                    return Err(NodeError::Refused(format!(
                        "record {rid} was shared by {} ({}): only its originator changes its grading or handling code; ask them",
                        before.originator,
                        h.originator_org(&before.originator)
                            .unwrap_or("an agency this node does not know")
                    )));
                }
                let mut steps = Vec::new();
                let mut edit = RecordEdit::default();
                if let Some(g) = &change.grading
                    && Some(g.to_string()) != before.grading
                {
                    steps.push(format!(
                        "grading {} -> {g}",
                        before.grading.as_deref().unwrap_or("none"),
                    ));
                    edit.grading = Some(g.clone());
                }
                if let Some(h) = &change.handling
                    && h != &before.handling
                {
                    steps.push(format!("handling {} -> {h}", before.handling));
                    edit.handling = Some(h.clone());
                }
                let ev = Event::new(Action::RecordRegrade)
                    .case(case.id)
                    .records([rid]);
                if steps.is_empty() {
                    audit::append(
                        node,
                        actor,
                        tx,
                        ev.detail(format!("no change: the record already had these; reason: {reason}")),
                    )?;
                    return view_of(node, tx, &rid.to_string());
                }
                let after = commit_edit(node, tx, &case, &row, rid, &mut d, &edit)?
                    .ok_or_else(|| NodeError::Integrity("a regrade changed nothing".into()))?;
                let tag = record_tag(&case.id, &rid);
                match (before.handling.is_h2(), after.handling.is_h2()) {
                    (false, true) => cases::declare_h2(node, tx, &case, vec![tag], vec![])?,
                    (true, false) => cases::declare_h2(node, tx, &case, vec![], vec![tag])?,
                    _ => {}
                }
                audit::append(
                    node,
                    actor,
                    tx,
                    ev.detail(format!("{}; reason: {reason}", steps.join("; "))),
                )?;
                view_of(node, tx, &rid.to_string())
            })
        },
    )
}

/// Shows a record after re-verifying every entry that carries it; the
/// consultation is audited in the same transaction.
pub fn show(node: &Node, actor: &Actor, record_text: &str) -> Result<RecordView> {
    audit::audited(
        node,
        actor,
        Action::RecordShow,
        None,
        Some(record_text),
        || {
            node.store.write(|tx| -> Result<RecordView> {
                let (case, row, rid) = find_for(node, actor, tx, record_text, Need::Read)?;
                let v = view_of_row(node, tx, &case, &row, &rid)?;
                crate::receipts::note_read(node, tx, actor, row.row)?;
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::RecordShow).case(case.id).records([rid]),
                )?;
                Ok(v)
            })
        },
    )
}

/// A record's case, id and verified view, after checking `actor` may do
/// `need` on it: for operations on a record that audit themselves (evidence).
/// The case of the record `record_text` names, for a person with `need`.
pub(crate) fn case_of(
    node: &Node,
    actor: &Actor,
    conn: &Connection,
    record_text: &str,
    need: Need,
) -> Result<Case> {
    Ok(find_for(node, actor, conn, record_text, need)?.0)
}

pub(crate) fn open_for(
    node: &Node,
    actor: &Actor,
    conn: &Connection,
    record_text: &str,
    need: Need,
) -> Result<(Case, RecordId, RecordView)> {
    let (case, row, rid) = find_for(node, actor, conn, record_text, need)?;
    let v = view_of_row(node, conn, &case, &row, &rid)?;
    Ok((case, rid, v))
}

/// A record's current view, after re-verifying every entry that carries it.
/// Not audited: for the commands that audit what they do and then show it.
pub(crate) fn view_of(node: &Node, conn: &Connection, record_text: &str) -> Result<RecordView> {
    let (case, row, rid) = find(node, conn, record_text)?;
    view_of_row(node, conn, &case, &row, &rid)
}

fn view_of_row(
    node: &Node,
    conn: &Connection,
    case: &Case,
    row: &RecordRow,
    rid: &RecordId,
) -> Result<RecordView> {
    let entries = log::verify_record_entries(conn, &case.id, row.row, rid)?;
    // The stored view must have been built from exactly these entries.
    let hashes: Vec<casesync_crypto::Hash> = entries.iter().map(|e| e.hash()).collect();
    if !casesync_crypto::hash::ct_eq(&log::record_log_digest(&hashes).0, &row.log_digest) {
        return Err(NodeError::Integrity(format!(
            "record {rid}: its stored view was built from other log entries than those that carry it (an older copy put back?); the store was altered, run `casesync log verify`"
        )));
    }
    let v = node.storage.record_view(row)?;
    if v.id != rid.to_string() {
        return Err(NodeError::Integrity(format!(
            "stored view of record {rid} names another record"
        )));
    }
    Ok(v)
}

/// One change of a record as `record history` shows it: when, which node of
/// which agency, what it set and removed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HistoryItem {
    /// The change's time by its author's clock (RFC 3339).
    pub time: String,
    /// The node whose signed log entry carried the change.
    pub node: String,
    /// Its name and organisation as enrolled (empty if no longer known here).
    pub name: String,
    pub org: String,
    #[serde(flatten)]
    pub step: casesync_schema::history::HistoryStep,
}

/// Most steps `record history` shows (the newest).
pub const MAX_HISTORY: usize = 1000;

/// `record history`: who changed which field of a record, when, from which
/// node, after re-verifying every entry that carries it; a consultation,
/// audited like `record show`.
pub fn history(node: &Node, actor: &Actor, record_text: &str) -> Result<Vec<HistoryItem>> {
    audit::audited(
        node,
        actor,
        Action::RecordHistory,
        None,
        Some(record_text),
        || {
            node.store.write(|tx| -> Result<Vec<HistoryItem>> {
                let (case, row, rid) = find_for(node, actor, tx, record_text, Need::Read)?;
                let entries = log::verify_record_entries(tx, &case.id, row.row, &rid)?;
                let mut changes = Vec::new();
                for e in &entries {
                    let key = cases::epoch_key(node, tx, &case, &e.header.epoch)?;
                    for c in e.open(&key)?.into_iter().filter(|c| c.record == rid) {
                        changes.push((e.header.author, doc::parse_change(&c.change)?));
                    }
                }
                let steps = casesync_schema::history::history(changes, MAX_HISTORY)?;
                crate::receipts::note_read(node, tx, actor, row.row)?;
                let registry = crate::trust::load(tx)?;
                let items = steps
                    .into_iter()
                    .map(|step| {
                        let card = case
                            .state
                            .members
                            .get(&step.author)
                            .map(|m| m.card.clone())
                            .or_else(|| {
                                registry
                                    .as_ref()
                                    .and_then(|r| r.nodes.get(&step.author))
                                    .map(|n| n.card.clone())
                            });
                        HistoryItem {
                            time: crate::clock::format_ms(step.time_ms),
                            node: casesync_crypto::identity::peer_id_of(&step.author)
                                .unwrap_or_default(),
                            name: card.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
                            org: card.map(|c| c.org).unwrap_or_default(),
                            step,
                        }
                    })
                    .collect();
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::RecordHistory)
                        .case(case.id)
                        .records([rid.to_string()]),
                )?;
                Ok(items)
            })
        },
    )
}

/// Most records one page of `record list --limit` holds.
pub const MAX_LIST_PAGE: usize = 10_000;

/// A page of a case's records in a stable order, the same on every node
/// (by entry tag): `limit` (1 to [`MAX_LIST_PAGE`]) after the record
/// `after` names (from the start without it; it need not be held any
/// more): `record list --limit N --after RECORD`. Fewer when the records
/// are large (16 MiB of views a page); an empty page is the end. Reads
/// only the sealed views; audited with the records shown.
pub fn list_page(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    record_type: Option<RecordType>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<RecordView>> {
    let limit = limit.clamp(1, MAX_LIST_PAGE);
    listing(node, actor, case_text, |conn, case| {
        let from = match after {
            Some(text) => record_tag(&case.id, &parse_record_id(text.trim())?)
                .0
                .to_vec(),
            None => Vec::new(),
        };
        let (page, _) = page_after(node, conn, case, record_type, &from, limit)?;
        audit_listing(node, actor, case, record_type, &page)?;
        Ok(page)
    })
}

/// Every record of a case, in [`list_page`]'s order, a page at a time:
/// each page is audited before `each` sees its records, so a case of any
/// size is listed in flat memory (`record list` without --limit). Returns
/// how many records were listed.
pub fn list_each(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    record_type: Option<RecordType>,
    each: &mut dyn FnMut(&RecordView) -> Result<()>,
) -> Result<usize> {
    listing(node, actor, case_text, |conn, case| {
        let (mut from, mut listed) = (Vec::new(), 0usize);
        loop {
            let (page, last) = page_after(node, conn, case, record_type, &from, MAX_LIST_PAGE)?;
            // An empty case is still a listing, audited as one.
            if page.is_empty() && listed > 0 {
                return Ok(listed);
            }
            audit_listing(node, actor, case, record_type, &page)?;
            for v in &page {
                each(v)?;
            }
            listed += page.len();
            // A page may stop short on bytes: only an empty one is the end.
            match last {
                Some(tag) => from = tag,
                None => return Ok(listed),
            }
        }
    })
}

/// A listing of `case_text` for `actor`: audited (a refusal too), the case
/// loaded, the person's right to read it checked and every row tagged
/// before `f` reads.
fn listing<T>(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    f: impl FnOnce(&Connection, &Case) -> Result<T>,
) -> Result<T> {
    audit::audited(
        node,
        actor,
        Action::RecordList,
        Some(case_text),
        None,
        || {
            let conn = node.store.conn();
            let case = cases::load_by_text(node, conn, case_text)?;
            cases::require_access(actor, conn, &case, Need::Read)?;
            tag_untagged(node, &case)?;
            f(conn, &case)
        },
    )
}

/// Every record of a case, in [`list_page`]'s order, collected: for a
/// front end that wants a whole case at once ([`list_each`] streams one of
/// any size).
pub fn list(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    record_type: Option<RecordType>,
) -> Result<Vec<RecordView>> {
    let mut all = Vec::new();
    list_each(node, actor, case_text, record_type, &mut |v| {
        all.push(v.clone());
        Ok(())
    })?;
    Ok(all)
}

/// Sealed view bytes a page of a listing holds, at most (after its first
/// record): a page may then hold fewer than asked, never more memory.
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Up to `limit` views whose tag sorts after `from` (fewer once they come
/// to [`MAX_PAGE_BYTES`]), and the last tag read.
fn page_after(
    node: &Node,
    conn: &Connection,
    case: &Case,
    record_type: Option<RecordType>,
    from: &[u8],
    limit: usize,
) -> Result<(Vec<RecordView>, Option<Vec<u8>>)> {
    let type_index = record_type.map(|t| node.storage.type_index(&case.id.0, t.name()));
    let rows = store::records_page(
        conn,
        case.case_ref,
        type_index.as_ref(),
        from,
        (limit, MAX_PAGE_BYTES),
    )?;
    // Opening (AEAD) and parsing each view is most of a listing: on every core.
    let storage = &node.storage;
    let views = rows
        .par_iter()
        .map(|(r, _)| storage.record_view(r))
        .collect::<Result<Vec<_>>>()?;
    Ok((views, rows.last().map(|(_, tag)| tag.clone())))
}

/// Gives rows stored before records kept their tag (migration 024) their
/// tag, from their sealed view, so a listing in tag order has them all.
/// Nothing to do (one index probe) once done.
fn tag_untagged(node: &Node, case: &Case) -> Result<()> {
    loop {
        let rows = store::records_without_tag(node.store.conn(), case.case_ref, 10_000)?;
        if rows.is_empty() {
            return Ok(());
        }
        let tags = rows
            .iter()
            .map(|r| {
                let v = node.storage.record_view(r)?;
                Ok((r.row, record_tag(&case.id, &parse_record_id(&v.id)?)))
            })
            .collect::<Result<Vec<_>>>()?;
        node.store.write(|tx| -> Result<()> {
            for (row, tag) in &tags {
                store::set_record_tag(tx, *row, &tag.0)?;
            }
            Ok(())
        })?;
    }
}

/// One audit entry for a page of a listing, with every record it shows.
fn audit_listing(
    node: &Node,
    actor: &Actor,
    case: &Case,
    record_type: Option<RecordType>,
    page: &[RecordView],
) -> Result<()> {
    let mut ev = Event::new(Action::RecordList)
        .case(case.id)
        .records(page.iter().map(|r| r.id.clone()));
    if let Some(t) = record_type {
        ev = ev.detail(format!("type {}", t.name()));
    }
    audit::append_alone(node, actor, ev)?;
    Ok(())
}
