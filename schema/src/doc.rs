//! The mapping between a record and its Automerge document.
//!
//! Each record is its own small document (docs/design.md, "Records and logs"):
//!
//! ```text
//! ROOT { id, type, case, originator, created, updated: str,
//!        grading?: str, handling?: str (H0 when absent),
//!        releasable_to: [str], fields: { name: scalar },
//!        ...keys this version does not know: kept untouched }
//! ```
//!
//! Edits touch only the keys they change, so concurrent edits of different fields
//! both survive a merge, and the same field converges to one value everywhere
//! (Automerge's deterministic conflict winner).
//!
//! Longer than most files here: about 740 lines of code (every Automerge mapping
//! of a record) and 250 of tests.

use std::collections::BTreeMap;

use automerge::{
    ActorId, AutoCommit, Change, ObjType, ROOT, ReadDoc, ScalarValue, Value,
    transaction::Transactable,
};
use serde::{Deserialize, Serialize};

use crate::grading::{Grading, HandlingCode};
use crate::record::{
    FieldValue, Fields, MAX_FIELD_NAME, MAX_VALUE_BYTES, RecordInput, RecordType, ReleasableTo,
};
use crate::{CaseId, RecordId, SchemaError};

const ENVELOPE_KEYS: [&str; 10] = [
    "id",
    "type",
    "case",
    "originator",
    "created",
    "updated",
    "grading",
    "handling",
    "releasable_to",
    "fields",
];

/// The envelope keys the record's originator may change later (a signed,
/// audited regrade); every other envelope key is fixed when the record is
/// made.
pub const REGRADABLE_KEYS: [&str; 2] = ["grading", "handling"];

/// What the node assigns to a new record.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub id: RecordId,
    pub case: CaseId,
    /// PeerId of the node that created the record.
    pub originator: String,
    /// RFC 3339 with offset.
    pub created: String,
}

/// A change to an existing record.
#[derive(Clone, Debug, Default)]
pub struct RecordEdit {
    pub set: Fields,
    pub unset: Vec<String>,
    pub grading: Option<Grading>,
    pub handling: Option<HandlingCode>,
    pub releasable_to: Option<ReleasableTo>,
}

/// The record as users and scripts see it (`record show --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    pub id: String,
    pub case: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub fields: BTreeMap<String, FieldValue>,
    pub originator: String,
    pub created: String,
    pub updated: String,
    pub grading: Option<String>,
    /// H0 for a record that names none.
    #[serde(default)]
    pub handling: HandlingCode,
    pub releasable_to: Vec<String>,
    /// Top-level keys written by a newer version: shown and kept, never dropped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl RecordView {
    /// What a person reads first of a record, at most 60 characters: its
    /// name, title, number, IBAN, address, registration, text, file or link
    /// type (the first it has).
    pub fn summary(&self) -> String {
        const KEYS: [&str; 9] = [
            "name",
            "title",
            "number",
            "iban",
            "address",
            "registration",
            "text",
            "file",
            "link_type",
        ];
        KEYS.iter()
            .find_map(|k| self.fields.get(*k))
            .map(|f| f.as_text())
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect()
    }

    /// The record's content as an input, to re-validate it after an edit.
    pub fn to_input(&self) -> Result<RecordInput, SchemaError> {
        Ok(RecordInput {
            record_type: self.record_type.parse()?,
            fields: self.fields.clone(),
            grading: match &self.grading {
                Some(g) => Some(crate::record::parse_grading(g)?),
                None => None,
            },
            releasable_to: ReleasableTo(self.releasable_to.clone()),
            handling: self.handling.clone(),
        })
    }

    pub fn record_type(&self) -> Result<RecordType, SchemaError> {
        self.record_type.parse()
    }

    /// Whether the record may be kept from a member of its case: it has a
    /// releasable_to list, or handling code H2 (whose originator decides
    /// who else gets it). What a store marks to check per recipient.
    pub fn restricted(&self) -> bool {
        !self.releasable_to.is_empty() || self.handling.is_h2()
    }
}

fn am(e: automerge::AutomergeError) -> SchemaError {
    SchemaError::Automerge(e.to_string())
}

/// The Automerge actor of a node: derived from its identity key so the same node
/// always writes as the same actor.
pub fn actor_for(node_ed25519: &[u8; 32]) -> ActorId {
    actor_for_chain(node_ed25519, 0)
}

/// The Automerge actor of a node's changes in one chain of its log
/// ([`crate::entry`]): a node restored from a backup writes a new chain, and
/// under a new actor, since Automerge refuses two changes with one actor and
/// sequence number, and the changes it made after the backup may still exist.
pub fn actor_for_chain(node_ed25519: &[u8; 32], chain: u64) -> ActorId {
    let h = match chain {
        0 => casesync_crypto::hash::sha256_parts(&[b"casesync/actor/v1", node_ed25519]),
        c => casesync_crypto::hash::sha256_parts(&[
            b"casesync/actor/v1",
            node_ed25519,
            &c.to_be_bytes(),
        ]),
    };
    ActorId::from(&h.0[..16])
}

fn scalar(v: &FieldValue) -> ScalarValue {
    match v {
        FieldValue::Str(s) => ScalarValue::Str(s.as_str().into()),
        FieldValue::Int(i) => ScalarValue::Int(*i),
        FieldValue::Float(f) => ScalarValue::F64(*f),
        FieldValue::Bool(b) => ScalarValue::Boolean(*b),
    }
}

fn put_releasable(tx: &mut AutoCommit, r: &ReleasableTo) -> Result<(), SchemaError> {
    let list = tx
        .put_object(ROOT, "releasable_to", ObjType::List)
        .map_err(am)?;
    for (i, item) in r.0.iter().enumerate() {
        tx.insert(&list, i, item.as_str()).map_err(am)?;
    }
    Ok(())
}

/// Creates a record's document and returns it with the bytes of its first change
/// and its view (the document is loaded from that change: [`first_change`]).
pub fn new_record(
    actor: ActorId,
    env: &Envelope,
    input: &RecordInput,
    time_ms: i64,
) -> Result<(AutoCommit, Vec<u8>, RecordView), SchemaError> {
    let (change, view) = first_change(actor.clone(), env, input, time_ms);
    let doc = from_changes(vec![parse_change(&change)?], actor)?;
    Ok((doc, change, view))
}

/// The bytes of a record's first change, and its view, without building the
/// document: what bulk import needs, since a one-change record keeps no
/// snapshot.
///
/// The change is written op by op (Automerge's expanded form, encoded by
/// Automerge itself): the root's scalars, then the `releasable_to` list and its
/// items, then the `fields` map and its values, with op ids counting from 1 in
/// that order. Going through a document (a batch `init_root_from_hydrate`,
/// then `get_last_local_change`, which re-collects the change from the op set)
/// cost ~3x as much and was two thirds of an import's time.
pub fn first_change(
    actor: ActorId,
    env: &Envelope,
    input: &RecordInput,
    time_ms: i64,
) -> (Vec<u8>, RecordView) {
    use automerge::legacy::{ElementId, Key, ObjectId, Op, OpId, OpType, SortedVec};
    let mut ops: Vec<Op> =
        Vec::with_capacity(12 + input.fields.len() + input.releasable_to.0.len());
    let op = |obj: ObjectId, key: Key, action: OpType, insert: bool| Op {
        action,
        obj,
        key,
        pred: SortedVec::new(),
        insert,
    };
    let put_root = |ops: &mut Vec<Op>, k: &str, v: &str| {
        ops.push(op(
            ObjectId::Root,
            Key::Map(k.into()),
            OpType::Put(ScalarValue::Str(v.into())),
            false,
        ))
    };
    let id = env.id.to_string();
    let case = env.case.to_string();
    let grading = input.grading.as_ref().map(|g| g.to_string());
    put_root(&mut ops, "id", &id);
    put_root(&mut ops, "type", input.record_type.name());
    put_root(&mut ops, "case", &case);
    put_root(&mut ops, "originator", &env.originator);
    put_root(&mut ops, "created", &env.created);
    put_root(&mut ops, "updated", &env.created);
    if let Some(g) = &grading {
        put_root(&mut ops, "grading", g);
    }
    // H0 is what a record without the key has: not written, to keep every
    // record's first change as small as before handling codes.
    let handling = input.handling.to_string();
    if input.handling != HandlingCode::H0 {
        put_root(&mut ops, "handling", &handling);
    }
    // An op's id is its position in the change, counting from 1.
    let next_id = |ops: &Vec<Op>| OpId(ops.len() as u64 + 1, actor.clone());
    let list = next_id(&ops);
    ops.push(op(
        ObjectId::Root,
        Key::Map("releasable_to".into()),
        OpType::Make(ObjType::List),
        false,
    ));
    let mut after = ElementId::Head;
    for item in &input.releasable_to.0 {
        let this = next_id(&ops);
        ops.push(op(
            ObjectId::Id(list.clone()),
            Key::Seq(after),
            OpType::Put(ScalarValue::Str(item.as_str().into())),
            true,
        ));
        after = ElementId::Id(this);
    }
    let fields = next_id(&ops);
    ops.push(op(
        ObjectId::Root,
        Key::Map("fields".into()),
        OpType::Make(ObjType::Map),
        false,
    ));
    for (k, v) in &input.fields {
        ops.push(op(
            ObjectId::Id(fields.clone()),
            Key::Map(k.as_str().into()),
            OpType::Put(scalar(v)),
            false,
        ));
    }
    let expanded = automerge::ExpandedChange {
        operations: ops,
        actor_id: actor,
        hash: None,
        seq: 1,
        start_op: std::num::NonZeroU64::MIN,
        time: time_ms,
        message: None,
        deps: Vec::new(),
        extra_bytes: Vec::new(),
        author: None,
    };
    let change = Change::from(expanded);
    let view = RecordView {
        id,
        case,
        record_type: input.record_type.name().to_string(),
        fields: input.fields.clone(),
        originator: env.originator.clone(),
        created: env.created.clone(),
        updated: env.created.clone(),
        grading,
        handling: input.handling.clone(),
        releasable_to: input.releasable_to.0.clone(),
        extra: BTreeMap::new(),
    };
    (change.raw_bytes().to_vec(), view)
}

/// Applies an edit; returns the bytes of the new change, or `None` if nothing changed.
pub fn apply_edit(
    doc: &mut AutoCommit,
    edit: &RecordEdit,
    updated: &str,
    time_ms: i64,
) -> Result<Option<Vec<u8>>, SchemaError> {
    let fields = match doc.get(ROOT, "fields").map_err(am)? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => doc.put_object(ROOT, "fields", ObjType::Map).map_err(am)?,
    };
    for (k, v) in &edit.set {
        doc.put(&fields, k.as_str(), scalar(v)).map_err(am)?;
    }
    for k in &edit.unset {
        doc.delete(&fields, k.as_str()).map_err(am)?;
    }
    if let Some(g) = &edit.grading {
        doc.put(ROOT, "grading", g.to_string()).map_err(am)?;
    }
    if let Some(h) = &edit.handling {
        doc.put(ROOT, "handling", h.to_string()).map_err(am)?;
    }
    if let Some(r) = &edit.releasable_to {
        put_releasable(doc, r)?;
    }
    doc.put(ROOT, "updated", updated).map_err(am)?;
    if doc
        .commit_with(automerge::transaction::CommitOptions::default().with_time(time_ms))
        .is_none()
    {
        return Ok(None);
    }
    Ok(doc.get_last_local_change().map(|c| c.raw_bytes().to_vec()))
}

/// Parses one Automerge change (as carried in a log entry payload).
pub fn parse_change(bytes: &[u8]) -> Result<Change, SchemaError> {
    let change = contained("change", || {
        Change::from_bytes(bytes.to_vec()).map_err(|e| SchemaError::Automerge(e.to_string()))
    })?;
    check_actor_indexes(change.raw_bytes())?;
    Ok(change)
}

/// Refuses a change that names an actor by an index past its actor table.
///
/// Automerge 0.12 parses such a change without complaint and then panics on it
/// (`Change::decode` and `apply_changes` unwrap the actor lookup), so a peer
/// could crash this node with one crafted change. Every actor-typed column of
/// the change's ops is read here (run-length encoded LEB128 indexes) and each
/// index checked against the change's actor and its other actors.
/// `raw_bytes` is always the uncompressed change chunk, already checked by
/// Automerge's parser, so anything that does not read here is refused too.
fn check_actor_indexes(raw: &[u8]) -> Result<(), SchemaError> {
    const ACTOR_COLUMN: u64 = 1;
    let bad = |reason: &str| SchemaError::Automerge(format!("malformed change: {reason}"));
    let mut r = Leb(raw);
    r.take(4 + 4 + 1).ok_or_else(|| bad("truncated header"))?;
    let len = r.uleb().ok_or_else(|| bad("truncated header"))?;
    let mut r = Leb(r.take_u64(len).ok_or_else(|| bad("truncated chunk"))?);
    let deps = r.uleb().ok_or_else(|| bad("truncated deps"))?;
    r.take_u64(deps.saturating_mul(32))
        .ok_or_else(|| bad("truncated deps"))?;
    r.bytes().ok_or_else(|| bad("truncated actor"))?;
    for _ in 0..2 {
        r.uleb().ok_or_else(|| bad("truncated seq"))?;
    }
    r.uleb().ok_or_else(|| bad("truncated time"))?;
    r.bytes().ok_or_else(|| bad("truncated message"))?;
    let others = r.uleb().ok_or_else(|| bad("truncated actors"))?;
    for _ in 0..others {
        r.bytes().ok_or_else(|| bad("truncated actors"))?;
    }
    let actors = others.saturating_add(1);
    let columns = r.uleb().ok_or_else(|| bad("truncated columns"))?;
    let mut specs = Vec::new();
    for _ in 0..columns {
        let spec = r.uleb().ok_or_else(|| bad("truncated columns"))?;
        let len = r.uleb().ok_or_else(|| bad("truncated columns"))?;
        specs.push((spec, len));
    }
    for (spec, len) in specs {
        let data = r.take_u64(len).ok_or_else(|| bad("truncated column"))?;
        if spec & 0b111 != ACTOR_COLUMN {
            continue;
        }
        // Run-length encoding: a signed count; n > 0 is one value repeated n
        // times, n < 0 is -n literal values, 0 is a run of nulls (its length).
        let mut c = Leb(data);
        while !c.0.is_empty() {
            let n = c.sleb().ok_or_else(|| bad("actor column"))?;
            let values = match n {
                0 => {
                    c.uleb().ok_or_else(|| bad("actor column"))?;
                    0
                }
                n if n > 0 => 1,
                n => n.unsigned_abs(),
            };
            for _ in 0..values {
                let actor = c.uleb().ok_or_else(|| bad("actor column"))?;
                if actor >= actors {
                    return Err(bad(&format!(
                        "actor index {actor} but the change names {actors} actors"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A cursor over LEB128-encoded data; `None` when the data runs out.
struct Leb<'a>(&'a [u8]);

impl<'a> Leb<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn take_u64(&mut self, n: u64) -> Option<&'a [u8]> {
        self.take(usize::try_from(n).ok()?)
    }
    fn uleb(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.take(1)?.first()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn sleb(&mut self) -> Option<i64> {
        let mut v: i64 = 0;
        let mut shift = 0u32;
        loop {
            let b = *self.take(1)?.first()?;
            v |= i64::from(b & 0x7f).checked_shl(shift)?;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Some(v);
            }
            if shift >= 64 {
                return None;
            }
        }
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.uleb()?;
        self.take_u64(n)
    }
}

/// Checks what one change writes against the record limits that do not depend
/// on other changes: no value longer than [`MAX_VALUE_BYTES`], no key longer
/// than [`MAX_FIELD_NAME`]. Ingest runs it on every change from a peer, so an
/// oversized field is refused whoever wrote it; limits on the whole record are
/// not checked there, since concurrent changes that each pass could merge over
/// them, and refusing the later one would depend on arrival order.
///
/// Returns the change's decoded (expanded) form, so a caller that reads its ops
/// too ([`view_of_first_change`]) does not decode it again.
pub fn check_change(change: &Change) -> Result<automerge::ExpandedChange, SchemaError> {
    use automerge::legacy::{Key, OpType};
    let expanded = contained("change", || Ok(change.decode()))?;
    for op in &expanded.operations {
        if let Key::Map(k) = &op.key
            && k.len() > MAX_FIELD_NAME
        {
            return Err(SchemaError::TooLarge {
                what: "field name",
                size: k.len(),
                limit: MAX_FIELD_NAME,
            });
        }
        let len = match &op.action {
            OpType::Put(ScalarValue::Str(v)) => v.len(),
            OpType::Put(ScalarValue::Bytes(v)) => v.len(),
            _ => 0,
        };
        if len > MAX_VALUE_BYTES {
            return Err(SchemaError::TooLarge {
                what: "field value",
                size: len,
                limit: MAX_VALUE_BYTES,
            });
        }
    }
    Ok(expanded)
}

/// The object of a record document that holds its `releasable_to` list, as
/// [`later_change_refusal`] needs it (None if the record has none).
pub fn releasable_list(doc: &AutoCommit) -> Option<(u64, ActorId)> {
    match doc.get(ROOT, "releasable_to") {
        Ok(Some((Value::Object(ObjType::List), automerge::ObjId::Id(counter, actor, _)))) => {
            Some((counter, actor))
        }
        _ => None,
    }
}

/// Why a later change of a record is refused, if it is: it alters an
/// envelope key other than `updated` (a put or delete at the document's
/// root, or any op inside the `releasable_to` list: `list`, from
/// [`releasable_list`]), except the [`REGRADABLE_KEYS`], which the record's
/// originator (`by_originator`: the change's signed author is it) may set to
/// a valid grading or handling code. Read from the change's ops alone, so
/// checking it costs the change's size, not the record's.
pub fn later_change_refusal(
    expanded: &automerge::ExpandedChange,
    list: Option<&(u64, ActorId)>,
    by_originator: bool,
) -> Option<String> {
    use automerge::legacy::{Key, ObjectId};
    for op in &expanded.operations {
        match (&op.obj, &op.key) {
            (ObjectId::Root, Key::Map(k)) => {
                let Some(key) = ENVELOPE_KEYS
                    .iter()
                    .find(|e| **e == k.as_str() && **e != "updated")
                else {
                    continue;
                };
                if !REGRADABLE_KEYS.contains(key) {
                    return Some(format!("a change may not rewrite the record's `{key}`"));
                }
                if !by_originator {
                    return Some(format!(
                        "only the record's originator changes its `{key}` (a regrade)"
                    ));
                }
                if let Err(e) = regrade_value(key, &op.action) {
                    return Some(format!("`{key}`: {e}"));
                }
            }
            (ObjectId::Id(id), _) if list.is_some_and(|(c, a)| id.0 == *c && id.1 == *a) => {
                return Some("a change may not rewrite the record's `releasable_to`".into());
            }
            _ => {}
        }
    }
    None
}

/// A regrade's new value: a valid grading or handling code, or removed
/// (no grading; handling H0).
fn regrade_value(key: &str, action: &automerge::legacy::OpType) -> Result<(), String> {
    use automerge::legacy::OpType;
    match action {
        OpType::Delete => Ok(()),
        OpType::Put(ScalarValue::Str(s)) if key == "grading" => crate::record::parse_grading(s)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        OpType::Put(ScalarValue::Str(s)) => s.parse::<HandlingCode>().map(|_| ()),
        _ => Err("must be text".into()),
    }
}

/// The record's originator (a PeerId) as its document names it.
pub fn originator_of(doc: &AutoCommit) -> Option<String> {
    get_str(doc, "originator").ok().flatten()
}

/// Rebuilds a document from a saved snapshot.
pub fn load_snapshot(bytes: &[u8], actor: ActorId) -> Result<AutoCommit, SchemaError> {
    Ok(AutoCommit::load(bytes).map_err(am)?.with_actor(actor))
}

/// Rebuilds a document from its changes (in any causal order Automerge accepts).
pub fn from_changes(changes: Vec<Change>, actor: ActorId) -> Result<AutoCommit, SchemaError> {
    let mut doc = AutoCommit::new().with_actor(actor);
    apply_changes(&mut doc, changes)?;
    Ok(doc)
}

/// Applies changes from outside to `doc`. On an error `doc` may hold part of
/// them (or, after a contained panic, be inconsistent): drop it.
pub fn apply_changes(doc: &mut AutoCommit, changes: Vec<Change>) -> Result<(), SchemaError> {
    contained("changes", || doc.apply_changes(changes).map_err(am))
}

/// Runs an Automerge call on a change from outside with its panics contained.
///
/// Automerge 0.12 panics on some malformed changes: `Change::from_bytes`
/// unwraps a column's op counter or actor index into a `u32`; it parses other
/// malformed changes without complaint and then `apply_changes` unwraps the
/// lookup of every actor a change names (a change with seq > 1 whose actor the
/// document never saw, or one naming another actor the document lacks), and
/// `Change::decode` unwraps actor indexes ([`parse_change`] refuses those up
/// front). Any writer of a
/// case could crash its peers with one such change, so a panic in here becomes
/// an error. Needs `panic = "unwind"` (the default; no profile here changes it).
fn contained<T>(what: &str, f: impl FnOnce() -> Result<T, SchemaError>) -> Result<T, SchemaError> {
    // Unwind safety: the callers drop whatever `f` was mutating on an error.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(SchemaError::Automerge(format!(
            "malformed {what}: Automerge could not read it"
        )))
    })
}

fn get_str(doc: &AutoCommit, key: &str) -> Result<Option<String>, SchemaError> {
    match doc.get(ROOT, key).map_err(am)? {
        Some((Value::Scalar(s), _)) => Ok(match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            other => Some(other.to_string()),
        }),
        _ => Ok(None),
    }
}

fn to_field(v: &ScalarValue) -> Option<FieldValue> {
    match v {
        ScalarValue::Str(s) => Some(FieldValue::Str(s.to_string())),
        ScalarValue::Int(i) => Some(FieldValue::Int(*i)),
        ScalarValue::Uint(u) => i64::try_from(*u).ok().map(FieldValue::Int),
        ScalarValue::F64(f) => Some(FieldValue::Float(*f)),
        ScalarValue::Boolean(b) => Some(FieldValue::Bool(*b)),
        _ => None,
    }
}

fn to_json(
    doc: &AutoCommit,
    v: Value<'_>,
    id: &automerge::ObjId,
    depth: usize,
) -> serde_json::Value {
    match v {
        Value::Scalar(s) => match to_field(&s) {
            Some(f) => serde_json::to_value(f).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::String(s.to_string()),
        },
        Value::Object(_) if depth > 8 => serde_json::Value::Null,
        Value::Object(ObjType::Map | ObjType::Table) => {
            let mut m = serde_json::Map::new();
            for k in doc.keys(id) {
                if let Ok(Some((v, child))) = doc.get(id, k.as_str()) {
                    m.insert(k.clone(), to_json(doc, v, &child, depth + 1));
                }
            }
            serde_json::Value::Object(m)
        }
        Value::Object(ObjType::List) => {
            let mut a = Vec::new();
            for i in 0..doc.length(id) {
                if let Ok(Some((v, child))) = doc.get(id, i) {
                    a.push(to_json(doc, v, &child, depth + 1));
                }
            }
            serde_json::Value::Array(a)
        }
        Value::Object(ObjType::Text) => serde_json::Value::String(doc.text(id).unwrap_or_default()),
    }
}

/// The view of a record whose whole document is `change` (its first change: no
/// dependencies), read straight from the change's operations. Building the
/// document and reading it back costs ~110 us a record on automerge 0.12; this
/// costs a tenth of that, and receiving a case is mostly new records.
///
/// Only the plain shape `new_record` writes is read this way: scalars at the
/// root, a `fields` map of scalars, a `releasable_to` list of strings, each key
/// written once. Anything else (a nested object under an unknown key, a key
/// written twice, deletes, counters, marks) returns `None`, and the caller builds
/// the document, so both ways always give the same view (a test holds them to it).
pub fn view_of_first_change(expanded: &automerge::ExpandedChange) -> Option<RecordView> {
    use automerge::legacy::{ElementId, Key, ObjectId, OpId, OpType};
    if !expanded.deps.is_empty() || expanded.seq != 1 {
        return None;
    }
    let actor = expanded.actor_id.clone();
    let id_of = |i: usize| OpId(expanded.start_op.get() + i as u64, actor.clone());
    let mut root: BTreeMap<String, ScalarValue> = BTreeMap::new();
    let (mut fields_obj, mut list_obj) = (None, None);
    for (i, op) in expanded.operations.iter().enumerate() {
        if !op.pred.is_empty() || op.insert || op.obj != ObjectId::Root {
            continue;
        }
        let Key::Map(k) = &op.key else { return None };
        match (&op.action, k.as_str()) {
            (OpType::Put(v), k) if !matches!(k, "fields" | "releasable_to") => {
                if root.insert(k.to_string(), v.clone()).is_some() {
                    return None;
                }
            }
            (OpType::Make(ObjType::Map), "fields") if fields_obj.is_none() => {
                fields_obj = Some(ObjectId::Id(id_of(i)))
            }
            (OpType::Make(ObjType::List), "releasable_to") if list_obj.is_none() => {
                list_obj = Some(ObjectId::Id(id_of(i)))
            }
            _ => return None,
        }
    }
    let mut fields = BTreeMap::new();
    let mut releasable_to = Vec::new();
    let mut last_element = ElementId::Head;
    for (i, op) in expanded.operations.iter().enumerate() {
        if !op.pred.is_empty() {
            return None;
        }
        if op.obj == ObjectId::Root {
            if op.insert {
                return None;
            }
            continue;
        }
        match (&op.action, &op.key) {
            (OpType::Put(v), Key::Map(k)) if Some(&op.obj) == fields_obj.as_ref() && !op.insert => {
                let f = to_field(v)?;
                if fields.insert(k.to_string(), f).is_some() {
                    return None;
                }
            }
            (OpType::Put(ScalarValue::Str(v)), Key::Seq(after))
                if Some(&op.obj) == list_obj.as_ref() && op.insert && *after == last_element =>
            {
                releasable_to.push(v.to_string());
                last_element = ElementId::Id(id_of(i));
            }
            _ => return None,
        }
    }
    let text = |v: &ScalarValue| match v {
        ScalarValue::Str(s) => s.to_string(),
        other => other.to_string(),
    };
    let need = |k: &str| root.get(k).map(text);
    let mut extra = BTreeMap::new();
    for (k, v) in &root {
        if !ENVELOPE_KEYS.contains(&k.as_str()) {
            let json = match to_field(v) {
                Some(f) => serde_json::to_value(f).ok()?,
                None => serde_json::Value::String(v.to_string()),
            };
            extra.insert(k.clone(), json);
        }
    }
    Some(RecordView {
        id: need("id")?,
        case: need("case")?,
        record_type: need("type")?,
        fields,
        originator: need("originator")?,
        created: need("created")?,
        updated: need("updated")?,
        grading: need("grading"),
        handling: match need("handling") {
            Some(h) => h.parse().ok()?,
            None => HandlingCode::H0,
        },
        releasable_to,
        extra,
    })
}

/// Reads the record's current view out of its document.
pub fn view(doc: &AutoCommit) -> Result<RecordView, SchemaError> {
    let need = |k: &'static str| -> Result<String, SchemaError> {
        get_str(doc, k)?
            .ok_or_else(|| SchemaError::malformed("record document", format!("missing `{k}`")))
    };
    let mut fields = BTreeMap::new();
    if let Some((Value::Object(ObjType::Map), fid)) = doc.get(ROOT, "fields").map_err(am)? {
        for k in doc.keys(&fid) {
            if let Some((Value::Scalar(s), _)) = doc.get(&fid, k.as_str()).map_err(am)?
                && let Some(f) = to_field(&s)
            {
                fields.insert(k, f);
            }
        }
    }
    let mut releasable_to = Vec::new();
    if let Some((Value::Object(ObjType::List), lid)) = doc.get(ROOT, "releasable_to").map_err(am)? {
        for i in 0..doc.length(&lid) {
            if let Some((Value::Scalar(s), _)) = doc.get(&lid, i).map_err(am)?
                && let ScalarValue::Str(s) = s.as_ref()
            {
                releasable_to.push(s.to_string());
            }
        }
    }
    let mut extra = BTreeMap::new();
    for k in doc.keys(ROOT) {
        if ENVELOPE_KEYS.contains(&k.as_str()) {
            continue;
        }
        if let Some((v, id)) = doc.get(ROOT, k.as_str()).map_err(am)? {
            extra.insert(k.clone(), to_json(doc, v, &id, 0));
        }
    }
    Ok(RecordView {
        id: need("id")?,
        case: need("case")?,
        record_type: need("type")?,
        fields,
        originator: need("originator")?,
        created: need("created")?,
        updated: need("updated")?,
        grading: get_str(doc, "grading")?,
        handling: match get_str(doc, "handling")? {
            Some(h) => h
                .parse()
                .map_err(|e: String| SchemaError::malformed("record document", e))?,
            None => HandlingCode::H0,
        },
        releasable_to,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope {
            id: RecordId::new_v7(),
            case: CaseId([1; 16]),
            originator: "12D3KooWtest".into(),
            created: "2026-11-26T10:00:00+00:00".into(),
        }
    }

    fn person(name: &str) -> RecordInput {
        RecordInput {
            handling: Default::default(),
            record_type: RecordType::Person,
            fields: [("name".to_string(), FieldValue::Str(name.into()))].into(),
            grading: Some("3x5x2:1AP".parse().unwrap()),
            releasable_to: ReleasableTo(vec!["GB".into(), "RO".into()]),
        }
    }

    #[test]
    fn a_change_with_an_oversized_value_or_key_is_refused_whoever_wrote_it() {
        // doc::new_record does not validate: it is what a hostile writer uses.
        let ok = |input: &RecordInput| {
            let (_, c, _) = new_record(actor_for(&[1; 32]), &env(), input, 1).unwrap();
            check_change(&parse_change(&c).unwrap())
        };
        assert!(ok(&person(&"x".repeat(MAX_VALUE_BYTES))).is_ok());
        let err = ok(&person(&"x".repeat(MAX_VALUE_BYTES + 1))).unwrap_err();
        assert!(
            err.to_string().contains("field value is too large"),
            "{err}"
        );
        let mut long_key = person("Ana");
        long_key
            .fields
            .insert("k".repeat(MAX_FIELD_NAME + 1), FieldValue::Str("v".into()));
        let err = ok(&long_key).unwrap_err();
        assert!(err.to_string().contains("field name is too large"), "{err}");
    }

    #[test]
    fn a_first_change_written_op_by_op_loads_as_the_record_it_describes() {
        let mut input = person("Ana Pop");
        input.grading = None;
        input.releasable_to = ReleasableTo(Vec::new());
        input.fields.insert("age".into(), FieldValue::Int(41));
        input.fields.insert("score".into(), FieldValue::Float(0.5));
        input.fields.insert("active".into(), FieldValue::Bool(true));
        for input in [input, person("Ion")] {
            let (bytes, built) = first_change(actor_for(&[3; 32]), &env(), &input, 7);
            let change = parse_change(&bytes).unwrap();
            check_change(&change).unwrap();
            assert_eq!(change.seq(), 1);
            assert!(change.deps().is_empty());
            assert_eq!(view_of_first_change(&change.decode()).unwrap(), built);
            let doc = from_changes(vec![change], actor_for(&[4; 32])).unwrap();
            assert_eq!(view(&doc).unwrap(), built);
        }
    }

    #[test]
    fn create_view_round_trip_with_diacritics() {
        let (doc, change, built) =
            new_record(actor_for(&[1; 32]), &env(), &person("Ștefan Țăranu"), 1).unwrap();
        let v = view(&doc).unwrap();
        assert_eq!(
            built, v,
            "the view built from the input is the document's view"
        );
        assert_eq!(v.fields["name"], FieldValue::Str("Ștefan Țăranu".into()));
        assert_eq!(v.grading.as_deref(), Some("3x5x2:1AP"));
        assert_eq!(v.releasable_to, vec!["GB", "RO"]);
        let rebuilt =
            from_changes(vec![parse_change(&change).unwrap()], actor_for(&[1; 32])).unwrap();
        assert_eq!(view(&rebuilt).unwrap(), v);
    }

    #[test]
    fn concurrent_edits_of_different_fields_both_survive() {
        let (mut a, first, _) =
            new_record(actor_for(&[1; 32]), &env(), &person("Victor Ilie"), 1).unwrap();
        let mut b = from_changes(vec![parse_change(&first).unwrap()], actor_for(&[2; 32])).unwrap();
        let edit = |k: &str, v: &str| RecordEdit {
            set: [(k.to_string(), FieldValue::Str(v.into()))].into(),
            ..Default::default()
        };
        let ca = apply_edit(
            &mut a,
            &edit("status", "arrested"),
            "2026-11-26T11:00:00+00:00",
            2,
        )
        .unwrap()
        .unwrap();
        let cb = apply_edit(
            &mut b,
            &edit("alias", "Vic"),
            "2026-11-26T11:00:01+00:00",
            2,
        )
        .unwrap()
        .unwrap();
        a.apply_changes(vec![parse_change(&cb).unwrap()]).unwrap();
        b.apply_changes(vec![parse_change(&ca).unwrap()]).unwrap();
        let (va, vb) = (view(&a).unwrap(), view(&b).unwrap());
        assert_eq!(va, vb);
        assert_eq!(va.fields["status"], FieldValue::Str("arrested".into()));
        assert_eq!(va.fields["alias"], FieldValue::Str("Vic".into()));
    }

    #[test]
    fn unknown_top_level_keys_are_kept_through_edits() {
        let (mut doc, _, _) = new_record(actor_for(&[1; 32]), &env(), &person("x"), 1).unwrap();
        doc.put(ROOT, "future_key", "from a newer node").unwrap();
        doc.commit();
        let edit = RecordEdit {
            unset: vec!["name".into()],
            ..Default::default()
        };
        apply_edit(&mut doc, &edit, "2026-11-26T12:00:00+00:00", 3).unwrap();
        let v = view(&doc).unwrap();
        assert_eq!(
            v.extra["future_key"],
            serde_json::json!("from a newer node")
        );
        assert!(!v.fields.contains_key("name"));
    }

    /// The fast view of a first change is the document's view, for every shape
    /// it accepts; for any other shape it declines.
    #[test]
    fn the_view_of_a_first_change_is_the_documents_view() {
        let actor = actor_for(&[3; 32]);
        let check = |change: &Change| {
            let slow = view(&from_changes(vec![change.clone()], actor.clone()).unwrap());
            let fast = view_of_first_change(&change.decode());
            if let Some(fast) = &fast {
                assert_eq!(Some(fast), slow.as_ref().ok(), "{slow:?}");
            }
            fast
        };
        let shapes: Vec<RecordInput> = vec![
            person("Ștefan Țăranu"),
            RecordInput {
                handling: Default::default(),
                record_type: RecordType::Note,
                fields: [
                    ("text".to_string(), FieldValue::Str(String::new())),
                    ("n".to_string(), FieldValue::Int(-7)),
                    ("f".to_string(), FieldValue::Float(1.5)),
                    ("b".to_string(), FieldValue::Bool(true)),
                ]
                .into(),
                grading: None,
                releasable_to: ReleasableTo(vec![]),
            },
            RecordInput {
                handling: Default::default(),
                releasable_to: ReleasableTo((0..30).map(|i| format!("C{i}")).collect()),
                ..person("many")
            },
        ];
        for input in &shapes {
            let (_, bytes, built) = new_record(actor.clone(), &env(), input, 5).unwrap();
            let fast = check(&parse_change(&bytes).unwrap()).expect("plain shape is read");
            assert_eq!(fast, built);
        }
        // An unknown scalar key is read into `extra`.
        let mut d = AutoCommit::new().with_actor(actor.clone());
        for k in ["id", "type", "case", "originator", "created", "updated"] {
            d.put(ROOT, k, format!("v-{k}")).unwrap();
        }
        d.put(ROOT, "future", 42).unwrap();
        d.commit();
        let c = d.get_last_local_change().unwrap().clone();
        assert_eq!(check(&c).unwrap().extra["future"], serde_json::json!(42));
        // Shapes it declines: a key written twice, a nested unknown object, a
        // later change.
        let mut d = AutoCommit::new().with_actor(actor.clone());
        d.put(ROOT, "id", "a").unwrap();
        d.put(ROOT, "id", "b").unwrap();
        d.commit();
        assert!(check(&d.get_last_local_change().unwrap().clone()).is_none());
        let mut d = AutoCommit::new().with_actor(actor.clone());
        let m = d.put_object(ROOT, "future", ObjType::Map).unwrap();
        d.put(&m, "x", 1).unwrap();
        d.commit();
        assert!(check(&d.get_last_local_change().unwrap().clone()).is_none());
        let (mut doc, _, _) = new_record(actor.clone(), &env(), &person("x"), 1).unwrap();
        doc.put(ROOT, "updated", "later").unwrap();
        doc.commit();
        assert!(view_of_first_change(&doc.get_last_local_change().unwrap().decode()).is_none());
    }

    #[test]
    fn a_later_change_may_edit_fields_but_not_the_envelope() {
        use automerge::transaction::Transactable;
        let actor = actor_for(&[7; 32]);
        let env = Envelope {
            id: RecordId::new_v7(),
            case: CaseId([1; 16]),
            originator: "someone".into(),
            created: "2026-11-26T10:00:00+00:00".into(),
        };
        let input = RecordInput {
            handling: Default::default(),
            record_type: RecordType::Person,
            fields: [("name".to_string(), FieldValue::Str("Victim A".into()))].into(),
            grading: None,
            releasable_to: ReleasableTo(vec!["GB".into(), "RO".into()]),
        };
        let (_, first, _) = new_record(actor.clone(), &env, &input, 0).unwrap();
        let base = from_changes(vec![parse_change(&first).unwrap()], actor.clone()).unwrap();
        let list = releasable_list(&base);
        assert!(list.is_some());
        let later = |f: &dyn Fn(&mut AutoCommit)| {
            let mut d = base.clone();
            f(&mut d);
            d.commit();
            let c = d.get_last_local_change().unwrap().clone();
            later_change_refusal(&c.decode(), list.as_ref(), false)
        };
        let by_originator = |f: &dyn Fn(&mut AutoCommit)| {
            let mut d = base.clone();
            f(&mut d);
            d.commit();
            let c = d.get_last_local_change().unwrap().clone();
            later_change_refusal(&c.decode(), list.as_ref(), true)
        };
        let edit = RecordEdit {
            set: [("status".to_string(), FieldValue::Str("arrested".into()))].into(),
            ..Default::default()
        };
        assert_eq!(
            later(&|d| {
                apply_edit(d, &edit, "2026-11-27T10:00:00+00:00", 1).unwrap();
            }),
            None
        );
        assert_eq!(
            later(&|d| d.put(ROOT, "type", "note").unwrap()).as_deref(),
            Some("a change may not rewrite the record's `type`")
        );
        assert_eq!(
            by_originator(&|d| d.put(ROOT, "originator", "me").unwrap()).as_deref(),
            Some("a change may not rewrite the record's `originator`")
        );
        // Grading and handling: the originator's, to valid values only.
        for (k, v) in [("grading", "3x5x2:1AC"), ("handling", "H2")] {
            assert_eq!(
                later(&|d| d.put(ROOT, k, v).unwrap()),
                Some(format!(
                    "only the record's originator changes its `{k}` (a regrade)"
                ))
            );
            assert_eq!(by_originator(&|d| d.put(ROOT, k, v).unwrap()), None);
        }
        for (k, v) in [("grading", "3x5x2:9ZZ"), ("handling", "H9")] {
            assert!(
                by_originator(&|d| d.put(ROOT, k, v).unwrap())
                    .is_some_and(|r| r.starts_with(&format!("`{k}`: "))),
                "{k}={v} accepted"
            );
        }
        assert!(by_originator(&|d| d.put(ROOT, "handling", 2).unwrap()).is_some());
        assert_eq!(
            later(&|d| {
                let (_, l) = d.get(ROOT, "releasable_to").unwrap().unwrap();
                d.insert(&l, 0, "NL").unwrap();
            })
            .as_deref(),
            Some("a change may not rewrite the record's `releasable_to`")
        );
        assert_eq!(
            by_originator(&|d| {
                d.put_object(ROOT, "releasable_to", ObjType::List).unwrap();
            })
            .as_deref(),
            Some("a change may not rewrite the record's `releasable_to`")
        );
    }
}
