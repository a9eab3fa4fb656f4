//! Handling: who may hold which record (releasable_to against the cards
//! enrolled in the registry; handling code H2 against its originator's
//! consents), and how far each author's log may go to a node.

use super::*;
use std::collections::HashMap;

use casesync_schema::entry::RecordTag;

/// Every record of a case, from the sealed views.
pub fn views_in_case(
    node: &Node,
    conn: &Connection,
    case: &Case,
) -> Result<Vec<casesync_schema::doc::RecordView>> {
    let rows = store::records_in_case(conn, case.case_ref)?;
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
    for v in views_in_case(node, conn, case)? {
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
    /// The node's identity key.
    pub key: [u8; 32],
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
                key: *k,
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
        key: node.keys.public().ed25519,
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
        key: *peer,
        name: card.name.clone(),
        org: card.org.clone(),
        country: card.country.clone(),
    })
}

/// Which node may hold which record of one case: releasable_to against the
/// node's enrolled labels, and for a record under handling code H2 of
/// another agency, its originator's consent ([`ControlBody::Consent`]).
/// Built once per case and recipient set (it maps the originators' PeerIds
/// to their keys and agencies).
///
/// [`ControlBody::Consent`]: casesync_schema::control::ControlBody::Consent
pub struct Handling<'a> {
    case: &'a Case,
    /// PeerId -> (key, organisation as enrolled, else as in the case).
    originators: HashMap<String, ([u8; 32], String)>,
    /// Key -> organisation, of the same nodes.
    orgs: HashMap<[u8; 32], String>,
    /// The case's H2 declarations this node stands by (tag -> originator):
    /// all of them, or ([`Handling::checked`]) those no record held here
    /// contradicts.
    h2: std::collections::BTreeMap<RecordTag, [u8; 32]>,
}

impl<'a> Handling<'a> {
    pub fn new(
        registry: Option<&casesync_schema::registry::RegistryState>,
        case: &'a Case,
    ) -> Handling<'a> {
        let mut originators = HashMap::new();
        let mut orgs = HashMap::new();
        let cards = case.state.members.iter().map(|(k, m)| (k, &m.card)).chain(
            registry
                .into_iter()
                .flat_map(|r| r.nodes.iter().map(|(k, n)| (k, &n.card))),
        );
        for (key, card) in cards {
            if let Ok(p) = casesync_crypto::identity::peer_id_of(key) {
                let org = registry
                    .and_then(|r| r.nodes.get(key))
                    .map_or(&card.org, |n| &n.card.org);
                originators.entry(p).or_insert((*key, org.clone()));
                orgs.entry(*key).or_insert(org.clone());
            }
        }
        Handling {
            case,
            originators,
            orgs,
            h2: case.state.h2.clone(),
        }
    }

    /// [`Handling::new`], less the H2 declarations of records this node
    /// holds that the declaring node did not make: a writer cannot keep
    /// another agency's record from members by declaring it H2 first.
    /// (A node that does not hold the record goes by the declaration.)
    pub fn checked(
        node: &Node,
        conn: &Connection,
        registry: Option<&casesync_schema::registry::RegistryState>,
        case: &'a Case,
    ) -> Result<Handling<'a>> {
        let mut h = Handling::new(registry, case);
        let mut keep = std::collections::BTreeMap::new();
        for (tag, declarer) in &case.state.h2 {
            let made_by = match store::record_by_tag(conn, case.case_ref, &tag.0)? {
                Some(row) => {
                    let view = node.storage.record_view(&row)?;
                    Some(h.originators.get(&view.originator).map(|(k, _)| *k))
                }
                None => None,
            };
            // Held, and made by another node (or one this node cannot
            // place): the declaration does not stand here.
            if made_by.is_some_and(|m| m != Some(*declarer)) {
                continue;
            }
            keep.insert(*tag, *declarer);
        }
        h.h2 = keep;
        Ok(h)
    }

    /// Whether `view` may go to (and rest on) the node `to`: within its
    /// releasable_to, and not an H2 record withheld from `to` (the one H2
    /// rule, [`Handling::withholds`]). A view naming no valid id goes
    /// nowhere.
    pub fn permits(&self, view: &casesync_schema::doc::RecordView, to: &MemberLabels) -> bool {
        ReleasableTo(view.releasable_to.clone()).permits(&to.org, &to.country)
            && view
                .id
                .parse::<casesync_schema::RecordId>()
                .is_ok_and(|rid| {
                    !self.withholds(&casesync_schema::entry::record_tag(&self.case.id, &rid), to)
                })
    }

    /// Whether the record tagged `tag` is under H2 (as this node stands by
    /// the declarations) and `to` may not hold it.
    fn withholds(&self, tag: &RecordTag, to: &MemberLabels) -> bool {
        self.h2
            .get(tag)
            .is_some_and(|o| !self.may_hold_h2_of(o, to))
    }

    /// Whether `to` may hold the H2 records of the node `originator`: it is
    /// that node, of its agency, or has its consent.
    fn may_hold_h2_of(&self, originator: &[u8; 32], to: &MemberLabels) -> bool {
        *originator == to.key
            || self
                .orgs
                .get(originator)
                .is_some_and(|o| o.eq_ignore_ascii_case(&to.org))
            || self.case.state.consents.contains(&(*originator, to.key))
    }

    /// The records under H2 (by the tags the case's control log declares)
    /// whose parts are taken out of every entry sent to `to`: what a relay,
    /// which reads no record, decides as well as a member.
    pub fn withheld_tags(&self, to: &MemberLabels) -> Vec<RecordTag> {
        self.h2
            .keys()
            .filter(|t| self.withholds(t, to))
            .copied()
            .collect()
    }

    /// Whether `view` is under H2 and another agency's than `own_org`'s
    /// (one this node cannot place counts as another's): only its
    /// originator lets it go further than the case's members it consented
    /// to, so no bundle, selector export or match answer carries it except
    /// back to the originator's own agency.
    pub fn others_h2(&self, view: &casesync_schema::doc::RecordView, own_org: &str) -> bool {
        view.handling.is_h2()
            && !self
                .originator_org(&view.originator)
                .is_some_and(|o| o.eq_ignore_ascii_case(own_org))
    }

    /// The originator's organisation, if this node can place it.
    pub fn originator_org(&self, originator: &str) -> Option<&str> {
        self.originators.get(originator).map(|(_, o)| o.as_str())
    }
}

/// Where each author's log must stop for `to` in `case`: the first entry that
/// carries a change of a record outside whose releasable_to `to` is. Those
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
        let view = node.storage.record_view(&row)?;
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

/// Refuses `what` (an export that leaves the case) when `case` holds
/// another agency's records under handling code H2 ([`Handling::others_h2`]),
/// but those of `to_org`'s own.
pub fn refuse_others_h2(
    node: &Node,
    conn: &Connection,
    case: &Case,
    what: &str,
    to_org: Option<&str>,
) -> Result<()> {
    let registry = crate::trust::load(conn)?;
    let handling = Handling::new(registry.as_ref(), case);
    let own_org = own_labels(node, conn)?.org;
    let mut found: Vec<(String, String)> = Vec::new();
    for row in store::restricted_records(conn, case.case_ref)? {
        let view = node.storage.record_view(&row)?;
        if !handling.others_h2(&view, &own_org) {
            continue;
        }
        let org = handling
            .originator_org(&view.originator)
            .unwrap_or("an agency this node does not know")
            .to_string();
        if to_org.is_some_and(|t| t.eq_ignore_ascii_case(&org)) {
            continue;
        }
        found.push((view.id, org));
    }
    let Some((first, org)) = found.first() else {
        return Ok(());
    };
    Err(NodeError::Refused(format!(
        "case {} holds {} record(s) under handling code H2 from another agency (first: {first}, from {org}): they go no further without their originator's permission, so {what} cannot carry them",
        case.id,
        found.len()
    )))
}

/// What handling keeps from a node in a case, for a sync, a refill or a
/// bundle: whole logs from an entry on (releasable_to, [`withheld_for`]:
/// author -> first seq held back), and the parts of records under H2 it
/// may not hold ([`Handling::withheld_tags`]). Nothing for a node this one
/// cannot place (`to` is `None`).
pub struct KeptBack {
    pub logs: HashMap<[u8; 32], u64>,
    pub parts: Vec<RecordTag>,
}

pub fn kept_back(
    node: &Node,
    conn: &Connection,
    registry: Option<&casesync_schema::registry::RegistryState>,
    case: &Case,
    to: Option<&MemberLabels>,
) -> Result<KeptBack> {
    Ok(match to {
        Some(l) => KeptBack {
            logs: withheld_for(node, conn, case, l)?,
            parts: Handling::checked(node, conn, registry, case)?.withheld_tags(l),
        },
        None => KeptBack {
            logs: HashMap::new(),
            parts: Vec::new(),
        },
    })
}

/// [`kept_back`] from the enrolled node `peer` (its labels from the
/// registry): what a sync and a refill hold back.
pub fn kept_back_from_peer(
    node: &Node,
    conn: &Connection,
    registry: Option<&casesync_schema::registry::RegistryState>,
    case: &Case,
    peer: &[u8; 32],
) -> Result<KeptBack> {
    kept_back(
        node,
        conn,
        registry,
        case,
        labels_of(registry, case, peer).as_ref(),
    )
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

/// Signs, in the caller's transaction, that `records` (this node's) are
/// under H2 and `lifted` no longer are; with records put under H2, this
/// node's consent for every current member that lacks it (the members it
/// shares them with). Nothing when it would change nothing.
pub(crate) fn declare_h2(
    node: &Node,
    tx: &Connection,
    case: &Case,
    records: Vec<RecordTag>,
    lifted: Vec<RecordTag>,
) -> Result<()> {
    use casesync_schema::control::MAX_H2_ITEMS;
    let me = node.keys.public().ed25519;
    let records: Vec<RecordTag> = records
        .into_iter()
        .filter(|t| !case.state.h2.contains_key(t))
        .collect();
    let consents: Vec<[u8; 32]> = if records.is_empty() {
        Vec::new()
    } else {
        case.state
            .members
            .keys()
            .filter(|k| **k != me && !case.state.consents.contains(&(me, **k)))
            .take(MAX_H2_ITEMS)
            .copied()
            .collect()
    };
    let lifted: Vec<RecordTag> = lifted
        .into_iter()
        .filter(|t| case.state.h2.get(t) == Some(&me))
        .collect();
    let mut state = case.state.clone();
    let mut parents = case.state.heads.clone();
    // An import may put more records under H2 than one operation names;
    // the first carries the consents.
    let mut bodies: Vec<ControlBody> = records
        .chunks(MAX_H2_ITEMS)
        .enumerate()
        .map(|(i, c)| ControlBody::H2 {
            records: c.to_vec(),
            lifted: Vec::new(),
            consents: if i == 0 { consents.clone() } else { Vec::new() },
        })
        .collect();
    if !lifted.is_empty() {
        bodies.push(ControlBody::H2 {
            records: Vec::new(),
            lifted,
            consents: Vec::new(),
        });
    }
    for body in bodies {
        let (ms, _) = crate::clock::now();
        let op = ControlOp::create(&node.keys, case.id, parents, ms, body)?;
        control::authorize(&state, &op).map_err(NodeError::Refused)?;
        store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
        // What the next one is judged against.
        state.fold_h2(&me, &op.body);
        parents = vec![op.hash()];
    }
    Ok(())
}

/// What `case consent` did.
#[derive(Debug, serde::Serialize)]
pub struct Consented {
    pub case: String,
    pub peer_id: String,
    pub name: String,
    pub org: String,
    /// This node's records under H2 in the case: what may now go to it.
    pub h2_records: usize,
}

/// `case consent CASE MEMBER --reason TEXT`: this node, as originator,
/// consents that its records under handling code H2 in `case` go to
/// `member` (one added after they were shared). Signed into the control
/// log, so every member holding them sends them on; audited with the reason.
pub fn consent(
    node: &Node,
    actor: &crate::audit::Actor,
    case_text: &str,
    member: &str,
    reason: &str,
) -> Result<Consented> {
    audit::audited(
        node,
        actor,
        Action::CaseConsent,
        Some(case_text),
        None,
        || {
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(NodeError::Refused(
                    "a consent needs --reason: the audit log keeps it".into(),
                ));
            }
            node.store.write(|tx| -> Result<Consented> {
                let case = load_by_text(node, tx, case_text)?;
                require_access(actor, tx, &case, crate::access::Need::Manage)?;
                let m = member_named(&case, member)?;
                let key = m.card.identity.ed25519;
                let me = node.keys.public().ed25519;
                if case.state.consents.contains(&(me, key)) {
                    return Err(NodeError::Refused(format!(
                        "{} ({}) has this node's consent for case {} already",
                        m.card.name,
                        m.card.peer_id(),
                        case.id
                    )));
                }
                let op = lead_op(
                    node,
                    &case,
                    ControlBody::H2 {
                        records: Vec::new(),
                        lifted: Vec::new(),
                        consents: vec![key],
                    },
                )?;
                store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
                let h2_records = case.state.h2.values().filter(|o| **o == me).count();
                let out = Consented {
                    case: case.id.to_string(),
                    peer_id: m.card.peer_id(),
                    name: m.card.name.clone(),
                    org: m.card.org.clone(),
                    h2_records,
                };
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::CaseConsent)
                        .case(case.id)
                        .peer(&out.peer_id)
                        .detail(format!(
                            "this node's {h2_records} record(s) under H2 may go to {} ({}); reason: {reason}",
                            out.name, out.org
                        )),
                )?;
                Ok(out)
            })
        },
    )
}

/// The records under H2 of other agencies in `case` that `member` may not
/// hold yet (no consent from their originator), counted by originator
/// organisation: what `case member add` tells the lead stays away from the
/// new member.
pub fn h2_held_back(
    node: &Node,
    conn: &Connection,
    case: &Case,
    member: &[u8; 32],
) -> Result<Vec<(String, usize)>> {
    let registry = crate::trust::load(conn)?;
    let handling = Handling::checked(node, conn, registry.as_ref(), case)?;
    let Some(to) = labels_of(registry.as_ref(), case, member) else {
        return Ok(Vec::new());
    };
    let mut by_org: std::collections::BTreeMap<String, usize> = Default::default();
    for t in handling.withheld_tags(&to) {
        let org = case
            .state
            .h2
            .get(&t)
            .and_then(|o| handling.orgs.get(o))
            .map_or("an agency this node does not know", |o| o.as_str());
        *by_org.entry(org.to_string()).or_default() += 1;
    }
    Ok(by_org.into_iter().collect())
}
