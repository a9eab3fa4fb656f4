//! Records changed by a delivery, loaded once and saved once.

use super::*;

/// Record documents that entries of this batch change. Their changes are
/// checked one by one as entries are accepted (the envelope from the change's
/// own ops), and applied together when the batch is done ([`DocCache::flush`]):
/// Automerge applies a batch of changes in one pass, but one change at a time
/// costs the whole document each, so a record with 5,000 edits delivered at
/// once would cost the square of its history. Entries are verified once, when
/// accepted; none is verified again here.
#[derive(Default)]
pub(super) struct DocCache {
    docs: HashMap<i64, CachedDoc>,
    /// The case's members' keys by PeerId, once a new record needs them
    /// (`provenance::note_stored`).
    member_keys: Option<HashMap<String, [u8; 32]>>,
    /// The search terms of the records accepted entries made, filed after
    /// a chunk of entries ([`DocCache::file_new_records`]) or at
    /// [`DocCache::flush`]. FTS5 writes what it holds out as a new segment
    /// at every savepoint, and each entry is applied in one: filing as each
    /// record was made wrote a segment per entry, and merged them again (a
    /// sixth of a receiving node's writing thread).
    filing: Vec<(i64, Vec<[u8; 16]>)>,
    /// Those of the entry being applied.
    filing_pending: Vec<(i64, Vec<[u8; 16]>)>,
}

pub(super) struct CachedDoc {
    doc: automerge::AutoCommit,
    index: [u8; 32],
    rid: RecordId,
    /// The object of its `releasable_to` list (`doc::later_change_refusal`).
    pub(super) list: Option<(u64, automerge::ActorId)>,
    /// Its originator's PeerId: the one node that may regrade it.
    pub(super) originator: Option<String>,
    /// Changes of this batch's accepted entries, and of the entry being applied.
    applied: Vec<automerge::Change>,
    pub(super) pending: Vec<automerge::Change>,
}

impl DocCache {
    /// The record's document as stored before this batch.
    pub(super) fn load(
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
        let originator = doc::originator_of(&doc);
        Ok(CachedDoc {
            doc,
            originator,
            index: row.rid_index,
            rid: *rid,
            list,
            applied: Vec::new(),
            pending: Vec::new(),
        })
    }

    pub(super) fn get(
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

    /// The keys of `case`'s members by PeerId (built once per delivery).
    pub(super) fn member_keys(&mut self, case: &Case) -> &HashMap<String, [u8; 32]> {
        self.member_keys
            .get_or_insert_with(|| crate::receipts::member_keys(case))
    }

    /// A record the entry being applied made, to be filed under `terms`
    /// in the search index once the batch is done.
    pub(super) fn file_later(&mut self, row: i64, terms: Vec<[u8; 16]>) {
        self.filing_pending.push((row, terms));
    }

    /// The entry whose changes were taken is accepted.
    pub(super) fn entry_done(&mut self) {
        for d in self.docs.values_mut() {
            let pending = std::mem::take(&mut d.pending);
            d.applied.extend(pending);
        }
        self.filing.append(&mut self.filing_pending);
    }

    /// The entry was refused (its savepoint rolled back): its changes go.
    pub(super) fn entry_failed(&mut self) {
        for d in self.docs.values_mut() {
            d.pending.clear();
        }
        self.filing_pending.clear();
    }

    /// Files the records accepted entries made so far in the search index.
    pub(super) fn file_new_records(&mut self, conn: &Connection) -> Result<()> {
        for (row, terms) in self.filing.drain(..) {
            store::file_search_terms(conn, row, &terms)?;
        }
        Ok(())
    }

    /// Applies each document's accepted changes in one pass, writes its
    /// snapshot and view, and forgets it. A change Automerge will not apply
    /// (it passed every check before) is left out, as one whose dependencies
    /// are missing is: its entry stays, as on every node.
    pub(super) fn flush(&mut self, node: &Node, conn: &Connection, case: &Case) -> Result<()> {
        // New records first: a record edited in the batch it was made in is
        // taken out of the index under its first terms below.
        self.file_new_records(conn)?;
        for (row, mut d) in self.docs.drain() {
            if d.applied.is_empty() {
                continue;
            }
            let Some(old) = store::record_by_row(conn, row)? else {
                continue;
            };
            if doc::apply_changes(&mut d.doc, d.applied.clone()).is_err() {
                let mut fresh = Self::load(node, conn, case, &old, &d.rid)?;
                for c in &d.applied {
                    let _ = doc::apply_changes(&mut fresh.doc, vec![c.clone()]);
                }
                d.doc = fresh.doc;
            }
            let opened = doc::view(&d.doc)?;
            crate::search::refile(node, conn, &old, &opened)?;
            let digest = log::stored_log_digest(conn, row)?;
            store::update_record(
                conn,
                row,
                &node
                    .storage
                    .seal_snapshot(&d.index, &digest.0, &d.doc.save())?,
                &node.storage.seal_view(&d.index, &digest.0, &opened)?,
                &digest,
                opened.restricted(),
            )?;
        }
        Ok(())
    }
}
