//! A record's history (`record history`, the record page): which node changed
//! which fields, and when, from the record's Automerge changes. Pure: the
//! changes and their entries' authors in, the steps out.
//!
//! Changes are applied one at a time in a causal order (a change after every
//! change it depends on; among those ready, the earliest by its own clock,
//! then by hash, so every node tells the same history), and each step is the
//! difference of the record's fields before and after it. Two changes made
//! apart that touched one field show as two steps; the second shows the value
//! the merge kept.

use std::collections::{BTreeMap, HashSet};

use automerge::{AutoCommit, Change, ChangeHash};
use serde::Serialize;

use crate::SchemaError;
use crate::doc::{self, RecordView};
use crate::record::FieldValue;

/// One change of a record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryStep {
    /// The Ed25519 key of the node whose signed log entry carried the change.
    #[serde(skip)]
    pub author: [u8; 32],
    /// The change's own time (its author's clock), ms since the epoch.
    pub time_ms: i64,
    /// True for the change that made the record.
    pub created: bool,
    /// Fields given a value (new or changed), with that value.
    pub set: BTreeMap<String, FieldValue>,
    /// Fields removed.
    pub unset: Vec<String>,
    /// Grading, handling code or releasable_to as they became, where this
    /// change set them (a handling code at creation only when not H0).
    pub grading: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handling: Option<String>,
    pub releasable_to: Option<Vec<String>>,
}

/// The history of a record from its changes, each with the author of the log
/// entry that carried it. At most `limit` steps, the most recent last.
pub fn history(
    changes: Vec<([u8; 32], Change)>,
    limit: usize,
) -> Result<Vec<HistoryStep>, SchemaError> {
    let ours: HashSet<ChangeHash> = changes.iter().map(|(_, c)| c.hash()).collect();
    let mut pending: Vec<([u8; 32], Change)> = changes;
    // Earliest first: the order among changes that are ready at once.
    pending.sort_by_key(|(_, c)| (c.timestamp(), c.hash()));
    let mut applied: HashSet<ChangeHash> = HashSet::new();
    let mut doc = AutoCommit::new();
    let mut before: Option<RecordView> = None;
    let mut steps = Vec::new();
    while !pending.is_empty() {
        // The first change whose dependencies (among this record's) are in.
        let next = pending.iter().position(|(_, c)| {
            c.deps()
                .iter()
                .all(|d| applied.contains(d) || !ours.contains(d))
        });
        // None: a cycle of hashes cannot be, so only a forged set; stop.
        let Some(i) = next else { break };
        let (author, change) = pending.remove(i);
        applied.insert(change.hash());
        let time_ms = change.timestamp();
        doc::apply_changes(&mut doc, vec![change])?;
        // A change that does not yet make a whole record (its creation was
        // taken out) shows nothing.
        let Ok(after) = doc::view(&doc) else {
            continue;
        };
        steps.push(step(author, time_ms, before.as_ref(), &after));
        before = Some(after);
    }
    if steps.len() > limit {
        steps.drain(..steps.len() - limit);
    }
    Ok(steps)
}

fn step(
    author: [u8; 32],
    time_ms: i64,
    before: Option<&RecordView>,
    after: &RecordView,
) -> HistoryStep {
    let empty = BTreeMap::new();
    let old = before.map_or(&empty, |b| &b.fields);
    let set = after
        .fields
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let unset = old
        .keys()
        .filter(|k| !after.fields.contains_key(*k))
        .cloned()
        .collect();
    HistoryStep {
        author,
        time_ms,
        created: before.is_none(),
        set,
        unset,
        grading: (before.map(|b| &b.grading) != Some(&after.grading))
            .then(|| after.grading.clone())
            .flatten(),
        handling: match before {
            None => (after.handling != Default::default()).then(|| after.handling.to_string()),
            Some(b) => (b.handling != after.handling).then(|| after.handling.to_string()),
        },
        // At creation only a restriction is news; after, any change is.
        releasable_to: match before {
            None => (!after.releasable_to.is_empty()).then(|| after.releasable_to.clone()),
            Some(b) => {
                (b.releasable_to != after.releasable_to).then(|| after.releasable_to.clone())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{Envelope, RecordEdit};
    use crate::record::{RecordInput, RecordType, ReleasableTo};
    use crate::{CaseId, RecordId};

    fn envelope() -> Envelope {
        Envelope {
            id: RecordId([7; 16]),
            case: CaseId([1; 16]),
            originator: "12D3KooWA".into(),
            created: "2026-12-06T10:00:00Z".into(),
        }
    }

    fn input() -> RecordInput {
        RecordInput {
            handling: Default::default(),
            record_type: RecordType::Person,
            fields: [("name".to_string(), FieldValue::Str("Marin Dobre".into()))].into(),
            grading: None,
            releasable_to: ReleasableTo::default(),
        }
    }

    fn edit(d: &mut AutoCommit, set: &[(&str, &str)], unset: &[&str], t: i64) -> Change {
        let e = RecordEdit {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), FieldValue::Str((*v).into())))
                .collect(),
            unset: unset.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        };
        let bytes = doc::apply_edit(d, &e, "2026-12-06T10:00:00Z", t)
            .unwrap()
            .unwrap();
        doc::parse_change(&bytes).unwrap()
    }

    #[test]
    fn creation_then_an_edit_then_two_made_apart() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let (mut d, first, _) =
            doc::new_record(doc::actor_for(&a), &envelope(), &input(), 1_000).unwrap();
        let first = doc::parse_change(&first).unwrap();
        let alias = edit(&mut d, &[("alias", "Marinel")], &[], 2_000);
        // b forks here and sets nationality; a sets status and drops alias.
        let mut db = d.fork().with_actor(doc::actor_for(&b));
        let nat = edit(&mut db, &[("nationality", "RO")], &[], 3_000);
        let status = edit(&mut d, &[("status", "arrested")], &["alias"], 3_500);
        // Given in any order: told causally, earliest first among the ready.
        let steps = history(
            vec![
                (b, nat.clone()),
                (a, status.clone()),
                (a, alias.clone()),
                (a, first.clone()),
            ],
            100,
        )
        .unwrap();
        assert_eq!(steps.len(), 4);
        assert!(steps[0].created && steps[0].author == a);
        assert_eq!(steps[0].set.keys().collect::<Vec<_>>(), ["name"]);
        assert_eq!(steps[1].set.keys().collect::<Vec<_>>(), ["alias"]);
        assert_eq!(steps[2].author, b);
        assert_eq!(steps[2].set.keys().collect::<Vec<_>>(), ["nationality"]);
        assert_eq!(steps[3].author, a);
        assert_eq!(steps[3].set.keys().collect::<Vec<_>>(), ["status"]);
        assert_eq!(steps[3].unset, ["alias"]);
        assert!(!steps[1].created && steps[1].grading.is_none());
        // The newest `limit` steps only.
        let last = history(vec![(a, first), (a, alias), (b, nat), (a, status)], 2).unwrap();
        assert_eq!(last.len(), 2);
        assert_eq!(last[1].unset, ["alias"]);
    }
}
