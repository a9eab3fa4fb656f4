//! Handling: who may hold which record (releasable_to against the cards
//! enrolled in the registry), and how far each author's log may go to a node.

use super::*;
use std::collections::HashMap;

/// Every record of a case (optionally of one type), from the sealed views.
pub fn views_in_case(
    node: &Node,
    conn: &Connection,
    case: &Case,
    record_type: Option<casesync_schema::record::RecordType>,
) -> Result<Vec<casesync_schema::doc::RecordView>> {
    let type_index = record_type.map(|t| node.storage.type_index(&case.id.0, t.name()));
    let rows = store::records_in_case(conn, case.case_ref, type_index.as_ref())?;
    // Opening (AEAD) and parsing each view is most of a listing: on every core.
    let storage = &node.storage;
    use rayon::prelude::*;
    rows.par_iter().map(|r| storage.record_view(r)).collect()
}

/// A member outside a record's releasable_to cannot be added while the record is in the case.
pub(crate) fn check_handling_for_member(
    node: &Node,
    conn: &Connection,
    case: &Case,
    card: &NodeCard,
) -> Result<()> {
    for v in views_in_case(node, conn, case, None)? {
        let r = ReleasableTo(v.releasable_to.clone());
        if !r.permits(&card.org, &card.country) {
            return Err(NodeError::Refused(format!(
                "cannot add {} ({}, {}): record {} is releasable to {} only",
                card.name,
                card.org,
                card.country,
                v.id,
                r.0.join(", ")
            )));
        }
    }
    Ok(())
}

/// What handling rules are checked against for one member: the labels of the
/// card enrolled in the registry, never of a card the node presented (a node
/// can sign a card with any organisation or country it likes).
pub struct MemberLabels {
    pub name: String,
    pub org: String,
    pub country: String,
}

/// The enrolled labels of every current member of `case` (a node outside any
/// federation has only the cards in the control log to go by).
pub fn member_labels(conn: &Connection, case: &Case) -> Result<Vec<MemberLabels>> {
    let registry = crate::trust::load(conn)?;
    Ok(case
        .state
        .members
        .iter()
        .map(|(k, m)| {
            let card = registry
                .as_ref()
                .and_then(|r| r.nodes.get(k))
                .map(|n| &n.card)
                .unwrap_or(&m.card);
            MemberLabels {
                name: card.name.clone(),
                org: card.org.clone(),
                country: card.country.clone(),
            }
        })
        .collect())
}

/// This node's labels as enrolled in the registry (its own card outside a
/// federation).
pub fn own_labels(node: &Node, conn: &Connection) -> Result<MemberLabels> {
    let registry = crate::trust::load(conn)?;
    let card = registry
        .as_ref()
        .and_then(|r| r.nodes.get(&node.keys.public().ed25519))
        .map(|n| &n.card)
        .unwrap_or(&node.card);
    Ok(MemberLabels {
        name: card.name.clone(),
        org: card.org.clone(),
        country: card.country.clone(),
    })
}

/// The labels `peer` is known by: its enrolled card, else its card in the
/// case's control log; `None` if neither knows it.
pub fn labels_of(
    registry: Option<&casesync_schema::registry::RegistryState>,
    case: &Case,
    peer: &[u8; 32],
) -> Option<MemberLabels> {
    let card = registry
        .and_then(|r| r.nodes.get(peer))
        .map(|n| &n.card)
        .or_else(|| case.state.members.get(peer).map(|m| &m.card))?;
    Some(MemberLabels {
        name: card.name.clone(),
        org: card.org.clone(),
        country: card.country.clone(),
    })
}

/// Where each author's log must stop for `to` in `case`: the first entry that
/// carries a change of a record whose releasable_to leaves `to` out. Those
/// entries, and every later one of the same author (which build on them), are
/// withheld from `to`: a record never reaches a node outside its
/// releasable_to, whatever the order in which records and members arrived.
/// Returns (author -> first withheld seq).
pub fn withheld_for(
    node: &Node,
    conn: &Connection,
    case: &Case,
    to: &MemberLabels,
) -> Result<HashMap<[u8; 32], u64>> {
    let mut out: HashMap<[u8; 32], u64> = HashMap::new();
    for row in store::restricted_records(conn, case.case_ref)? {
        let bytes = node
            .storage
            .open_view(&row.rid_index, &row.log_digest, &row.view)?;
        let view: casesync_schema::doc::RecordView = serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Integrity(format!("stored record view is malformed: {e}")))?;
        if ReleasableTo(view.releasable_to).permits(&to.org, &to.country) {
            continue;
        }
        for e in store::entries_of_record(conn, row.row)?
            .into_iter()
            .flatten()
        {
            let Ok(author) = <[u8; 32]>::try_from(e.author.as_slice()) else {
                continue;
            };
            let seq = e.seq as u64;
            out.entry(author)
                .and_modify(|s| *s = (*s).min(seq))
                .or_insert(seq);
        }
    }
    Ok(out)
}

/// A record whose releasable_to excludes a current member cannot enter the case.
pub fn check_handling_for_record(
    members: &[MemberLabels],
    releasable: &ReleasableTo,
) -> Result<()> {
    for m in members {
        if !releasable.permits(&m.org, &m.country) {
            return Err(NodeError::Refused(format!(
                "record is releasable to {} only, but case member {} ({}, {}) is outside that",
                releasable.0.join(", "),
                m.name,
                m.org,
                m.country
            )));
        }
    }
    Ok(())
}
