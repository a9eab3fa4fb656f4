//! Entries: the pass over a delivery's entries in log order (readiness,
//! authority, opening, applying), and materializing their changes.

use super::*;

/// The entries of a case this node holds and is a member of.
pub(super) fn ingest_entries(
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
            Ok(e) => match without_erased(e, &case.state) {
                Ok(e) => verified.push((e, None)),
                Err(reason) => report
                    .rejected
                    .push(format!("case {case_id}: entry: {reason}")),
            },
        }
    }
    // Entries that arrived earlier than what they build on get another chance.
    for (row, bytes) in store::waiting_in_case(conn, case_ref)? {
        match LogEntry::decode_verified(&bytes)
            .map(|e| (e.header.case, without_erased(e, &case.state)))
        {
            Ok((case, Ok(e))) if case == case_id => verified.push((e, Some(row))),
            _ => store::delete_waiting(conn, row)?,
        }
    }
    // Then, chunk by chunk (bounded memory), the work that needs no store, also
    // on every core: authority, opening the payload, building the record each
    // creating change makes. Then, in log order, the checks against the store and
    // the writes. Entries whose predecessor or view is not here yet wait for the
    // next pass; passes go on while they make progress.
    let keys = epoch_keys(node, conn, case, verified.iter().map(|(e, _)| e));
    let builder = Builder::of(node);
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
        let prepare_all = |chunk: &[(LogEntry, Option<i64>)]| -> Vec<Prepared> {
            chunk
                .par_iter()
                .map(|(e, _)| prepare(&builder, &me, case, &ends, &keys, e))
                .collect()
        };
        let mut chunk = next_chunk(&mut rest);
        let mut prepared = prepare_all(&chunk);
        while !chunk.is_empty() {
            // The next chunk is prepared on the pool while this thread writes
            // this one: writing is one thread's (one connection, in log
            // order), preparing needs no store, and one after the other left
            // a core idle half the time (an initial sync used 1.05 cores).
            let next = next_chunk(&mut rest);
            let mut next_prepared = Vec::new();
            let written: Result<()> = rayon::in_place_scope(|s| {
                s.spawn(|_| next_prepared = prepare_all(&next));
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
                            let filled = store::savepoint(conn, || {
                                fill_withheld(node, conn, case, &e, &mut docs, |partial| {
                                    prepare(&builder, &me, case, &ends, &keys, partial)
                                })
                                .unwrap_or_else(|e| Err(e.to_string()))
                            })?;
                            match filled {
                                Ok((n, rids)) => {
                                    docs.entry_done();
                                    report.parts_filled += n;
                                    report
                                        .records
                                        .extend(rids.into_iter().map(|r| (case_id, r)));
                                }
                                Err(reason) => {
                                    docs.entry_failed();
                                    report
                                        .rejected
                                        .push(format!("entry {}: {reason}", name(&case_id, &e)))
                                }
                            }
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
                // After the chunk's last savepoint: one segment per chunk.
                docs.file_new_records(conn)
            });
            written?;
            chunk = next;
            prepared = next_prepared;
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

/// The next entries to prepare together: up to [`PREPARE_BYTES`] of them,
/// at least one while any are left.
fn next_chunk(
    rest: &mut std::iter::Peekable<std::vec::IntoIter<(LogEntry, Option<i64>)>>,
) -> Vec<(LogEntry, Option<i64>)> {
    let mut chunk = Vec::new();
    let mut size = 0;
    while let Some(item) =
        rest.next_if(|(e, _)| chunk.is_empty() || size + e.bytes().len() <= PREPARE_BYTES)
    {
        size += item.0.bytes().len();
        chunk.push(item);
    }
    chunk
}

/// `e` with the parts of erased records taken out (an erased record never
/// comes back, from a peer or a bundle); refused if a part is missing that
/// no erasure known here accounts for, nor handling code H2 (withheld from
/// this node until the originator consents: noted, and asked for again).
pub(super) fn without_erased(
    e: LogEntry,
    state: &control::CaseState,
) -> std::result::Result<LogEntry, String> {
    if e.parts()
        .iter()
        .any(|p| !p.is_here() && !state.is_erased(&p.tag) && !state.h2.contains_key(&p.tag))
    {
        return Err(format!(
            "{}/{}: a record's content is missing from it, and this node knows no erasure of that record nor that it is under H2",
            e.header.seq,
            e.hash().short()
        ));
    }
    Ok(e.erasing(|t| state.is_erased(t)).unwrap_or(e))
}

/// A copy of an entry held here arrived: the parts it carries that were
/// withheld from this node (H2, before the originator consented) are
/// filled in, their changes checked as any entry's (`prepare`, on the
/// entry with those parts alone) and materialized. Returns how many parts,
/// and the records they changed.
fn fill_withheld(
    node: &Node,
    conn: &Connection,
    case: &Case,
    e: &LogEntry,
    docs: &mut DocCache,
    prepare: impl FnOnce(&LogEntry) -> Prepared,
) -> Result<std::result::Result<(usize, Vec<RecordId>), String>> {
    let h = &e.header;
    let Some(stored) = store::entry_at(conn, case.case_ref, &h.author, h.seq)? else {
        return Ok(Ok((0, Vec::new())));
    };
    let withheld = store::withheld_parts_of_entry(conn, stored.row)?;
    let newly: Vec<RecordTag> = withheld
        .iter()
        .map(|t| RecordTag(*t))
        .filter(|t| e.holds(t))
        .collect();
    if newly.is_empty() {
        return Ok(Ok((0, Vec::new())));
    }
    let held = LogEntry::decode_verified(&stored.bytes)?;
    let Some(merged) = held.filled_from(e) else {
        return Ok(Err("is not the entry held here at its seq".into()));
    };
    let others: Vec<RecordTag> = merged
        .parts()
        .iter()
        .map(|p| p.tag)
        .filter(|t| !newly.contains(t))
        .collect();
    let parsed = match prepare(&merged.without(&others)) {
        Ok(p) => p,
        Err(reason) => return Ok(Err(reason)),
    };
    crate::store::rewrite_entry(conn, stored.row, merged.bytes())?;
    for t in &newly {
        store::delete_withheld_part(conn, stored.row, &t.0)?;
    }
    let mut counts = (0, 0);
    let mut rids = Vec::new();
    for (rid, change, created) in parsed {
        rids.push(rid);
        if let Err(e) = materialize(
            node,
            conn,
            case,
            (stored.row, &e.hash(), &h.author),
            &rid,
            change,
            created,
            &mut counts,
            docs,
        ) {
            return Ok(Err(e.to_string()));
        }
    }
    Ok(Ok((newly.len(), rids)))
}

/// Whether `e`'s author was removed and `e`'s seq is within where its log
/// ends: that part of the log is fixed, and no fork of it counts.
pub(super) fn fixed_by_cut(case: &Case, ends: &LogEnds, e: &LogEntry) -> bool {
    case.state.removed.contains_key(&e.header.author)
        && ends
            .get(&e.header.author)
            .is_some_and(|ends| !past_end(ends, e.header.seq))
}

pub(super) fn name(case: &CaseId, e: &LogEntry) -> String {
    log::entry_name(case, &e.header.author, e.header.seq as i64)
}

pub(super) enum Ready {
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
pub(super) fn readiness(
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
pub(super) fn epoch_keys<'a>(
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
pub(super) struct NewRecord {
    index: [u8; 32],
    /// The digest its view is sealed with: that of the entry that makes it.
    log_digest: Hash,
    type_index: [u8; 16],
    sealed_view: Vec<u8>,
    /// The view itself (`receipts::note_stored` reads it).
    view: casesync_schema::doc::RecordView,
    /// Its search terms (`search::terms`), to file it.
    terms: Vec<[u8; 16]>,
    originator: String,
    /// Who it may be released to (empty: anyone in the case).
    releasable_to: Vec<String>,
    /// `RecordView::restricted`.
    restricted: bool,
}

/// An entry's changes, opened, each with the record it would create if the
/// record is not yet held (a change with no dependencies creates one).
pub(super) type Prepared =
    std::result::Result<Vec<(RecordId, automerge::Change, Option<NewRecord>)>, String>;

/// Everything about applying `e` that needs no store: the author's authority,
/// the epoch, opening and parsing the payload, building new records. Pure, so
/// it runs on every core.
pub(super) fn prepare(
    builder: &Builder<'_>,
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
                let r = new_record(builder, case, &c.record, &change, &expanded, &e.hash())
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

/// What building a new record needs of the node, without the store: its
/// storage keys, its Automerge actor and its country (for the search terms,
/// computed here, on every core, rather than in the writing transaction).
pub(super) struct Builder<'a> {
    storage: &'a StorageKeys,
    actor: ActorId,
    region: &'a str,
}

impl<'a> Builder<'a> {
    pub(super) fn of(node: &'a Node) -> Builder<'a> {
        Builder {
            storage: &node.storage,
            actor: crate::records::automerge_actor(node),
            region: &node.card.country,
        }
    }
}

/// The record that `change`, its first, makes.
pub(super) fn new_record(
    builder: &Builder<'_>,
    case: &Case,
    rid: &RecordId,
    change: &automerge::Change,
    expanded: &automerge::ExpandedChange,
    entry: &Hash,
) -> Result<NewRecord> {
    let view = match doc::view_of_first_change(expanded) {
        Some(v) => v,
        None => doc::view(&doc::from_changes(
            vec![change.clone()],
            builder.actor.clone(),
        )?)?,
    };
    let storage = builder.storage;
    if view.id != rid.to_string() || view.case != case.id.to_string() {
        return Err(NodeError::Refused(format!(
            "record {rid}: its document names another record or case"
        )));
    }
    let index = storage.record_index(&rid.0);
    Ok(NewRecord {
        index,
        type_index: storage.type_index(&case.id.0, &view.record_type),
        log_digest: log::record_log_digest(std::slice::from_ref(entry)),
        sealed_view: storage.seal_view(
            &index,
            &log::record_log_digest(std::slice::from_ref(entry)).0,
            &view,
        )?,
        originator: view.originator.clone(),
        releasable_to: view.releasable_to.clone(),
        restricted: view.restricted(),
        terms: crate::search::terms(storage, Some(builder.region), &view),
        view,
    })
}

/// Stores one prepared entry and materializes its changes. Returns (created,
/// updated) record counts, or the reason it was refused (the caller runs it in a
/// savepoint, so nothing of a refused entry stays).
pub(super) fn apply_entry(
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
    for p in e.parts().iter().filter(|p| !p.is_here()) {
        if !case.state.is_erased(&p.tag) {
            store::insert_withheld_part(conn, row, &p.tag.0).map_err(|e| e.to_string())?;
        }
    }
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
            (row, &e.hash(), &h.author),
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

#[allow(clippy::too_many_arguments)]
pub(super) fn materialize(
    node: &Node,
    conn: &Connection,
    case: &Case,
    (entry_row, entry_hash, author): (i64, &Hash, &[u8; 32]),
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
            // where it may go; only its originator regrades it (grading and
            // handling code). Read from the change's ops (its own size).
            let by_originator = d.originator.as_deref().is_some_and(|o| {
                casesync_crypto::identity::peer_id_of(author).is_ok_and(|p| p == o)
            });
            if let Some(why) =
                doc::later_change_refusal(&change.decode(), d.list.as_ref(), by_originator)
            {
                return Err(NodeError::Refused(format!("record {rid}: {why}")));
            }
            d.pending.push(change);
            store::link_record_entry(conn, row.row, entry_row)?;
            counts.1 += 1;
        }
        None => {
            let r = match created {
                Some(r) => r,
                None => new_record(
                    &Builder::of(node),
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
                (&r.index, &entry::record_tag(&case.id, rid).0),
                &r.type_index,
                &r.sealed_view,
                r.restricted,
                &r.log_digest,
            )?;
            store::link_record_entry(conn, row, entry_row)?;
            docs.file_later(row, r.terms);
            crate::receipts::note_stored(node, conn, docs.member_keys(case), row, &r.view)?;
            counts.0 += 1;
        }
    }
    Ok(())
}
