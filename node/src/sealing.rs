//! Sealing rows at rest with the node storage key, and blind indexes.
//!
//! Each sealed column uses a subkey of the storage key for its table and binds
//! the row's identity as associated data, so a sealed value cannot be moved to
//! another row or table without failing to open.

use casesync_crypto::SymmetricKey;
use casesync_crypto::hash::BlindIndexKey;

use crate::error::{NodeError, Result};

#[derive(Clone)]
pub struct StorageKeys {
    views: SymmetricKey,
    snapshots: SymmetricKey,
    case_meta: SymmetricKey,
    epoch_keys: SymmetricKey,
    record_ids: BlindIndexKey,
    record_types: BlindIndexKey,
    audit: SymmetricKey,
    audit_cases: BlindIndexKey,
    search_terms: BlindIndexKey,
    /// The seed of this node's OPRF key for deconfliction (`casesync match`).
    match_seed: SymmetricKey,
    match_handles: BlindIndexKey,
    /// Partners' provenance reports, at rest.
    provenance: SymmetricKey,
    /// The pseudonyms of people here in read receipts to originators.
    readers: BlindIndexKey,
}

/// [`StorageKeys::search_terms`]: kept for one record's terms, then dropped.
pub struct SearchTerms(casesync_crypto::hash::BlindIndexer);

impl SearchTerms {
    pub fn term(&self, term: &[u8]) -> [u8; 16] {
        let full = self.0.index(term);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

fn aad(table: &str, row: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(table.len() + 1 + row.len());
    a.extend_from_slice(table.as_bytes());
    a.push(0);
    a.extend_from_slice(row);
    a
}

/// A record row's identity and the digest of the entries it was built from:
/// what its view and snapshot are sealed to.
fn bound_to_log(rid_index: &[u8; 32], log_digest: &[u8]) -> Vec<u8> {
    [&rid_index[..], log_digest].concat()
}

fn open_err(what: &str) -> NodeError {
    NodeError::Integrity(format!(
        "stored {what} failed its integrity check: the database was altered by hand or damaged; restore the data dir from a backup"
    ))
}

impl StorageKeys {
    pub fn new(storage: &SymmetricKey) -> StorageKeys {
        StorageKeys {
            views: storage.derive("records.view"),
            snapshots: storage.derive("records.snapshot"),
            case_meta: storage.derive("cases.sealed_meta"),
            epoch_keys: storage.derive("epoch_keys.sealed_key"),
            record_ids: BlindIndexKey::derive(storage.expose(), "records.rid_index"),
            record_types: BlindIndexKey::derive(storage.expose(), "records.type_index"),
            audit: storage.derive("audit_log.sealed"),
            audit_cases: BlindIndexKey::derive(storage.expose(), "audit_log.case_index"),
            search_terms: BlindIndexKey::derive(storage.expose(), "search_terms.term"),
            match_seed: storage.derive("match.oprf_key"),
            match_handles: BlindIndexKey::derive(storage.expose(), "match.case_handle"),
            provenance: storage.derive("provenance_reports.sealed"),
            readers: BlindIndexKey::derive(storage.expose(), "provenance.reader"),
        }
    }

    pub fn record_index(&self, record_id: &[u8; 16]) -> [u8; 32] {
        self.record_ids.index(record_id)
    }

    /// 16 bytes of a keyed hash of case and type: enough to tell apart the
    /// types of one case, and half the bytes in every row and its index.
    pub fn type_index(&self, case_id: &[u8; 16], record_type: &str) -> [u8; 16] {
        let mut v = case_id.to_vec();
        v.extend_from_slice(record_type.as_bytes());
        let full = self.record_types.index(&v);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A search term (a selector or a word) as the index files it: 16 bytes
    /// of a keyed hash, so the index holds no plaintext.
    pub fn search_term(&self, term: &[u8]) -> [u8; 16] {
        self.search_terms().term(term)
    }

    /// [`StorageKeys::search_term`] for the many terms of one record, the
    /// keyed hash made ready once.
    pub fn search_terms(&self) -> SearchTerms {
        SearchTerms(self.search_terms.indexer())
    }

    /// This node's OPRF key for answering partners' deconfliction requests:
    /// derived from the storage key, so the same after a restart or restore.
    pub fn match_key(&self) -> Result<casesync_crypto::oprf::MatchKey> {
        Ok(casesync_crypto::oprf::MatchKey::derive(&self.match_seed)?)
    }

    /// The opaque handle a partner is given for a case that holds one of
    /// its selectors: stable, meaningless outside this node, and not the
    /// case id (which would tell the partner which case it is).
    pub fn match_handle(&self, case_id: &[u8; 16]) -> [u8; 16] {
        let full = self.match_handles.index(case_id);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// How a person of this node is named to an originator in read
    /// receipts: the same pseudonym every time (so reads per person can be
    /// counted), keyed by this node alone (so no one else links it to the
    /// person).
    pub fn reader_pseudonym(&self, person: &str) -> String {
        casesync_crypto::hash::hex(&self.readers.index(person.as_bytes())[..8])
    }

    /// A partner's provenance report sealed at rest, bound to its row.
    pub fn seal_provenance(&self, id: i64, report: &[u8]) -> Result<Vec<u8>> {
        Ok(self
            .provenance
            .seal(&aad("provenance_reports", &id.to_be_bytes()), report)?)
    }

    /// The blind index an audit entry of `case_id` is filed under.
    pub fn audit_case_index(&self, case_id: &[u8; 16]) -> [u8; 32] {
        self.audit_cases.index(case_id)
    }

    /// An audit entry sealed at rest, bound to its seq.
    pub fn seal_audit(&self, seq: u64, entry: &[u8]) -> Result<Vec<u8>> {
        Ok(self
            .audit
            .seal(&aad("audit_log", &seq.to_be_bytes()), entry)?)
    }

    /// A four-eyes request (what it would do, with its reason) sealed at
    /// rest, bound to its row.
    pub fn seal_request(&self, id: i64, request: &[u8]) -> Result<Vec<u8>> {
        Ok(self
            .audit
            .seal(&aad("approvals", &id.to_be_bytes()), request)?)
    }

    pub fn open_request(&self, id: i64, sealed: &[u8]) -> Result<Vec<u8>> {
        self.audit
            .open(&aad("approvals", &id.to_be_bytes()), sealed)
            .map_err(|_| open_err(&format!("approval request {id}")))
    }

    pub fn open_audit(&self, seq: u64, sealed: &[u8]) -> Result<Vec<u8>> {
        self.audit
            .open(&aad("audit_log", &seq.to_be_bytes()), sealed)
            .map_err(|_| open_err(&format!("audit entry {seq}")))
    }

    /// Opens and decodes a record's stored view (`schema::stored_view`:
    /// compact, or JSON as kept before).
    pub fn record_view(
        &self,
        row: &crate::store::RecordRow,
    ) -> Result<casesync_schema::doc::RecordView> {
        let bytes = self
            .views
            .open(
                &aad(
                    "records.view",
                    &bound_to_log(&row.rid_index, &row.log_digest),
                ),
                &row.view,
            )
            .map_err(|_| open_err("record view"))?;
        casesync_schema::stored_view::decode(&bytes)
            .map_err(|e| NodeError::Integrity(format!("stored record view is malformed: {e}")))
    }

    /// A record's view, encoded for the store and sealed, bound to its row
    /// and to the log digest it was built from (`log::record_log_digest`;
    /// empty for rows from before it).
    pub fn seal_view(
        &self,
        rid_index: &[u8; 32],
        log_digest: &[u8],
        view: &casesync_schema::doc::RecordView,
    ) -> Result<Vec<u8>> {
        let bytes = casesync_schema::stored_view::encode(view)
            .map_err(|e| NodeError::Integrity(format!("record view cannot be stored: {e}")))?;
        Ok(self.views.seal(
            &aad("records.view", &bound_to_log(rid_index, log_digest)),
            &bytes,
        )?)
    }
    pub fn seal_snapshot(
        &self,
        rid_index: &[u8; 32],
        log_digest: &[u8],
        snap: &[u8],
    ) -> Result<Vec<u8>> {
        Ok(self.snapshots.seal(
            &aad("records.snapshot", &bound_to_log(rid_index, log_digest)),
            snap,
        )?)
    }
    pub fn open_snapshot(
        &self,
        rid_index: &[u8; 32],
        log_digest: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        self.snapshots
            .open(
                &aad("records.snapshot", &bound_to_log(rid_index, log_digest)),
                sealed,
            )
            .map_err(|_| open_err("record snapshot"))
    }
    pub fn seal_case_meta(&self, case_id: &[u8; 16], meta: &[u8]) -> Result<Vec<u8>> {
        Ok(self
            .case_meta
            .seal(&aad("cases.sealed_meta", case_id), meta)?)
    }
    pub fn open_case_meta(&self, case_id: &[u8; 16], sealed: &[u8]) -> Result<Vec<u8>> {
        self.case_meta
            .open(&aad("cases.sealed_meta", case_id), sealed)
            .map_err(|_| open_err("case metadata"))
    }
    pub fn seal_epoch_key(
        &self,
        case_id: &[u8; 16],
        epoch: &[u8; 32],
        key: &SymmetricKey,
    ) -> Result<Vec<u8>> {
        let mut row = case_id.to_vec();
        row.extend_from_slice(epoch);
        Ok(self
            .epoch_keys
            .seal(&aad("epoch_keys", &row), key.expose())?)
    }
    pub fn open_epoch_key(
        &self,
        case_id: &[u8; 16],
        epoch: &[u8; 32],
        sealed: &[u8],
    ) -> Result<SymmetricKey> {
        let mut row = case_id.to_vec();
        row.extend_from_slice(epoch);
        let plain = zeroize::Zeroizing::new(
            self.epoch_keys
                .open(&aad("epoch_keys", &row), sealed)
                .map_err(|_| open_err("case key"))?,
        );
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| open_err("case key"))?;
        Ok(SymmetricKey::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecordRow;
    use casesync_schema::doc::RecordView;
    use casesync_schema::grading::HandlingCode;
    use casesync_schema::record::FieldValue;

    fn view() -> RecordView {
        RecordView {
            id: "01a2526e-a289-7190-b0c6-496ef9f38f10".into(),
            case: "634c174a-24c8-4820-8dd6-bc9e81be7340".into(),
            record_type: "person".into(),
            fields: [("name".to_string(), FieldValue::Str("Marin Dobre".into()))].into(),
            originator: "12D3KooWBPGacUU4HzBqGdvTVA25xwFwjqAwXqvujcGacnHdih36".into(),
            created: "2026-12-07T21:35:11.966+00:00".into(),
            updated: "2026-12-07T21:40:00.000+00:00".into(),
            grading: Some("B2".into()),
            handling: HandlingCode::H1,
            releasable_to: vec!["GB".into()],
            extra: Default::default(),
        }
    }

    fn row(rid_index: [u8; 32], view: Vec<u8>) -> RecordRow {
        RecordRow {
            row: 1,
            case_ref: 1,
            rid_index,
            snapshot: None,
            view,
            log_digest: vec![7; 32],
        }
    }

    /// A view sealed by an earlier version (JSON) opens as it did; one
    /// sealed now is smaller and opens the same; either sealed for one row
    /// does not open as another's.
    #[test]
    fn views_kept_as_json_before_open_and_new_ones_are_smaller() {
        let keys = StorageKeys::new(&SymmetricKey::generate().unwrap());
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let v = view();
        let json = serde_json::to_vec(&v).unwrap();
        let old = keys
            .views
            .seal(&aad("records.view", &bound_to_log(&a, &[7; 32])), &json)
            .unwrap();
        let new = keys.seal_view(&a, &[7; 32], &v).unwrap();
        assert!(
            new.len() < old.len(),
            "{} vs {} bytes",
            new.len(),
            old.len()
        );
        for sealed in [old, new] {
            assert_eq!(keys.record_view(&row(a, sealed.clone())).unwrap(), v);
            assert!(keys.record_view(&row(b, sealed)).is_err());
        }
    }
}
