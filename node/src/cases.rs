//! Cases: each case's control log (create, members, key epochs) and its keys.
//!
//! The control log is stored as the signed operations; the case's state (members,
//! roles, epochs) is always recomputed with the pure `control::resolve`, so what a
//! node believes about a case is a function of the operations it holds.

use casesync_crypto::{Hash, NodeKeys, SymmetricKey, wrap};
use casesync_schema::control::{
    self, CaseMeta, CaseState, ControlBody, ControlOp, FederationFacts, LogEnd, Role,
};
use casesync_schema::record::ReleasableTo;
use casesync_schema::{CaseId, NodeCard};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::audit::{self, Action, Event};
use crate::{Node, NodeError, Result, store};

pub const MAX_TITLE: usize = 200;

/// A case as this node sees it.
#[derive(Clone)]
pub struct Case {
    pub case_ref: i64,
    pub id: CaseId,
    pub meta: CaseMeta,
    pub state: CaseState,
}

impl Case {
    pub fn my_role(&self, node: &Node) -> Option<Role> {
        self.state.role_of(&node.keys.public().ed25519)
    }
}

fn check_title(title: &str) -> Result<String> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > MAX_TITLE || t.chars().any(char::is_control) {
        return Err(NodeError::Refused(format!(
            "the case title must be 1-{MAX_TITLE} printable characters"
        )));
    }
    Ok(t.to_string())
}

/// Creates a case led by this node, with its first key epoch.
pub fn create(node: &Node, title: &str, require_justification: bool) -> Result<CaseId> {
    let title = check_title(title)?;
    let mut nonce = [0u8; 16];
    casesync_crypto::random_bytes(&mut nonce)?;
    let me = node.keys.public().ed25519;
    let case = control::case_id_for(&me, &nonce);
    let key = SymmetricKey::generate()?;
    let salt = control::epoch_salt(&case, &key);
    let meta = CaseMeta {
        title,
        require_justification,
    };
    let sealed_meta = meta.seal(&case, &key)?;
    let (ms, _) = crate::clock::now();
    let op = ControlOp::create(
        &node.keys,
        case,
        vec![],
        ms,
        ControlBody::Create {
            nonce,
            creator: node.card.clone(),
            salt,
            wraps: control::wrap_to(&key, &case, &salt, &[&node.card])?,
            sealed_meta,
        },
    )?;
    let local_meta = encode_local_meta(&meta);
    let sealed_local = node.storage.seal_case_meta(&case.0, &local_meta)?;
    let sealed_key = node.storage.seal_epoch_key(&case.0, &op.hash().0, &key)?;
    node.store.write(|tx| -> Result<()> {
        let case_ref = store::insert_case(tx, &case.0, &sealed_local)?;
        store::insert_control_op(tx, case_ref, &op.hash(), op.bytes())?;
        store::put_epoch_key(tx, case_ref, &op.hash(), &sealed_key)?;
        let ev = Event::new(Action::CaseCreate)
            .case(case)
            .detail(if require_justification {
                "every action on this case requires a justification"
            } else {
                "no justification required"
            });
        audit::append(node, tx, ev)?;
        Ok(())
    })?;
    Ok(case)
}

pub(crate) fn encode_local_meta(m: &CaseMeta) -> Vec<u8> {
    let mut w = casesync_schema::codec::Writer::new();
    w.u8(1);
    w.str(&m.title);
    w.u8(m.require_justification as u8);
    w.buf
}

fn decode_local_meta(b: &[u8]) -> Result<CaseMeta> {
    let mut r = casesync_schema::codec::Reader::new(b, "case metadata");
    let _v = r.u8()?;
    let title = r.str(64 * 1024)?.to_string();
    let require_justification = r.u8()? != 0;
    Ok(CaseMeta {
        title,
        require_justification,
    })
}

/// Parses a case id given on the command line and loads the case.
pub fn load_by_text(node: &Node, conn: &Connection, text: &str) -> Result<Case> {
    let id: CaseId = text.trim().parse().map_err(|_| {
        NodeError::Refused(format!(
            "`{}` is not a case id (see `casesync case list`)",
            crate::short(text)
        ))
    })?;
    load(node, conn, &id)
}

pub fn load(node: &Node, conn: &Connection, id: &CaseId) -> Result<Case> {
    let row = store::case_by_id(conn, &id.0)?.ok_or_else(|| {
        NodeError::Refused(format!("unknown case {id} (see `casesync case list`)"))
    })?;
    load_row(node, conn, row)
}

/// Case states this process has resolved, by case id, with the fingerprint of
/// the control operations they were resolved from. Verifying and resolving a
/// control log costs signature checks, and a long-running `serve` loads every
/// shared case on every sync round: this does it once per change of the log.
/// `resolve` is a pure function of the operations, so the same operations (by
/// hash, checked against their bytes when first verified) give the same state.
#[derive(Clone, Default)]
pub struct CaseCache(Arc<Mutex<HashMap<[u8; 16], Resolved>>>);

/// A case state and the fingerprint of the operations it was resolved from.
type Resolved = (Hash, CaseState);

impl CaseCache {
    fn get(&self, id: &CaseId, fingerprint: &Hash) -> Option<CaseState> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id.0)
            .filter(|(f, _)| f == fingerprint)
            .map(|(_, s)| s.clone())
    }
    fn put(&self, id: &CaseId, fingerprint: Hash, state: &CaseState) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id.0, (fingerprint, state.clone()));
    }
}

/// What a case's resolution takes from the registry: its active admins and
/// its revoked nodes (an admin appoints a lead when every lead is revoked).
pub fn federation_facts(conn: &Connection) -> Result<FederationFacts> {
    Ok(match crate::trust::load(conn)? {
        None => FederationFacts::default(),
        Some(r) => FederationFacts {
            admins: r
                .nodes
                .iter()
                .filter(|(_, n)| n.admin && !n.revoked)
                .map(|(k, _)| *k)
                .collect(),
            revoked: r
                .nodes
                .iter()
                .filter(|(_, n)| n.revoked)
                .map(|(k, _)| *k)
                .collect(),
        },
    })
}

fn load_row(node: &Node, conn: &Connection, row: store::CaseRow) -> Result<Case> {
    let id = CaseId(row.case_id);
    let hashes = store::control_op_hashes(conn, row.case_ref)?;
    let facts = federation_facts(conn)?;
    let facts_digest = facts.digest();
    let mut parts: Vec<&[u8]> = vec![&row.case_id, &facts_digest.0];
    parts.extend(hashes.iter().map(|h| &h.0[..]));
    let fingerprint = casesync_crypto::hash::sha256_parts(&parts);
    let state = match node.cases.get(&id, &fingerprint) {
        Some(s) => s,
        None => {
            let s = resolve_stored(conn, row.case_ref, id, &facts)?;
            node.cases.put(&id, fingerprint, &s);
            s
        }
    };
    let meta = decode_local_meta(
        &node
            .storage
            .open_case_meta(&row.case_id, &row.sealed_meta)?,
    )?;
    Ok(Case {
        case_ref: row.case_ref,
        id,
        meta,
        state,
    })
}

/// Verifies every stored control operation of a case and resolves them.
fn resolve_stored(
    conn: &Connection,
    case_ref: i64,
    id: CaseId,
    facts: &FederationFacts,
) -> Result<CaseState> {
    let ops = store::control_ops(conn, case_ref)?
        .into_iter()
        .map(|o| {
            let op = ControlOp::decode_verified(&o.bytes).map_err(|e| {
                NodeError::Integrity(format!("control operation {} of case {id} failed verification: {e}; run `casesync log verify`", o.hash.short()))
            })?;
            if !op.hash().ct_eq(&o.hash) {
                return Err(NodeError::Integrity(format!("control operation {} of case {id} does not match its hash", o.hash.short())));
            }
            Ok(op)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(control::resolve_in(id, &ops, facts)?)
}

pub fn list(node: &Node) -> Result<Vec<Case>> {
    let conn = node.store.conn();
    store::list_cases(conn)?
        .into_iter()
        .map(|row| load_row(node, conn, row))
        .collect()
}

/// Why a member was removed, opened with the key of the epoch its removal
/// started; `None` where this node holds no such key.
pub fn removal_reason(
    node: &Node,
    conn: &Connection,
    case: &Case,
    removal: &control::Removal,
) -> Option<String> {
    let salt = case.state.epoch(&removal.by)?.salt;
    let key = epoch_key(node, conn, case, &removal.by).ok()?;
    control::open_reason(&case.id, &salt, &key, &removal.sealed_reason).ok()
}

/// The key of `epoch`, from the local cache or by unwrapping this node's share.
pub fn epoch_key(
    node: &Node,
    conn: &Connection,
    case: &Case,
    epoch: &Hash,
) -> Result<SymmetricKey> {
    for (e, sealed) in store::epoch_keys(conn, case.case_ref)? {
        if &e == epoch {
            return node.storage.open_epoch_key(&case.id.0, &e.0, &sealed);
        }
    }
    let info = case.state.epoch(epoch).ok_or_else(|| {
        NodeError::Refused(format!(
            "case {} has no key epoch {}",
            case.id,
            epoch.short()
        ))
    })?;
    unwrap_epoch(&node.keys, &case.id, info)
}

/// Unwraps this node's copy of an epoch key from the control log.
pub fn unwrap_epoch(
    keys: &NodeKeys,
    case: &CaseId,
    info: &control::EpochInfo,
) -> Result<SymmetricKey> {
    let me = keys.public().ed25519;
    let wrapped = info.wraps.get(&me).ok_or_else(|| {
        NodeError::Refused(format!(
            "this node holds no key for epoch {} of case {case}",
            info.id.short()
        ))
    })?;
    let key = wrap::unwrap_key(keys, wrapped, &control::wrap_context(case, &info.salt))?;
    if !control::key_matches_epoch(case, &info.salt, &key) {
        return Err(NodeError::Refused(format!(
            "the key of epoch {} of case {case} wrapped to this node is not the one its lead committed to (a lead gave members different keys): nothing is read or written under it; a lead must rotate the key",
            info.id.short()
        )));
    }
    Ok(key)
}

/// The newest epoch this node holds a key for and that only current members
/// can read: what new entries are sealed with. After two leads removed members
/// concurrently, every epoch may still be wrapped to a removed node until a
/// lead rotates; nothing is sealed until then.
pub fn current_epoch(node: &Node, conn: &Connection, case: &Case) -> Result<(Hash, SymmetricKey)> {
    let mut exposed = false;
    for e in case.state.epochs.iter().rev() {
        if !case.state.outside_readers(e).is_empty() {
            exposed = true;
            continue;
        }
        if let Ok(k) = epoch_key(node, conn, case, &e.id) {
            return Ok((e.id, k));
        }
    }
    if exposed {
        return Err(NodeError::Refused(format!(
            "case {}'s newest key can still be read by a removed member (two leads removed members at once); a lead replaces it when it next syncs or runs `casesync serve`: sync with a lead, then try again",
            case.id
        )));
    }
    Err(NodeError::Refused(format!(
        "this node holds no key for case {}",
        case.id
    )))
}

/// What a lead does after control operations from others arrive (a merge):
/// cuts revoked nodes from the cases it leads, rotates a newest key epoch that
/// a removed node can read (concurrent removals), and shares the newest epoch
/// with members that lack it (added concurrently with a rotation). Returns a
/// line per action, for the log.
pub fn after_merge(node: &Node) -> Result<Vec<String>> {
    let mut done: Vec<String> = cut_revoked(node)?
        .into_iter()
        .map(|(c, card)| {
            format!(
                "removed revoked node {} ({}) from case {c}",
                card.name,
                card.peer_id()
            )
        })
        .collect();
    let me = node.keys.public().ed25519;
    for case in list(node)? {
        if case.state.role_of(&me) != Some(Role::Lead) {
            continue;
        }
        if case.state.newest_epoch_exposed() || !case.state.lacking_epochs().is_empty() {
            match repair_keys(node, &case.id) {
                Ok(Some(line)) => done.push(line),
                Ok(None) => {}
                // Another process or lead may have repaired it meanwhile.
                Err(NodeError::Refused(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}

/// Rotates the case key if the newest epoch can be read outside the members
/// (or a member lacks it and this lead cannot share it), and wraps every
/// epoch this lead holds to the members that lack it. Re-checks inside its own
/// write transaction; the operations form a chain on the case's heads.
fn repair_keys(node: &Node, id: &CaseId) -> Result<Option<String>> {
    node.store.write(|tx| -> Result<Option<String>> {
        let case = load(node, tx, id)?;
        let cards: Vec<&NodeCard> = case
            .state
            .members
            .values()
            .filter(|m| m.role != Role::Relay)
            .map(|m| &m.card)
            .collect();
        let (ms, _) = crate::clock::now();
        let mut parents = case.state.heads.clone();
        let mut ops: Vec<(ControlOp, Option<SymmetricKey>)> = Vec::new();
        let mut lines = Vec::new();
        let lacking = case.state.lacking_epochs();
        let newest = case.state.epochs.last().map(|e| e.id);
        let mut shares = Vec::new();
        let mut newest_unshared = false;
        for (e, who) in &lacking {
            match epoch_key(node, tx, &case, &e.id) {
                Ok(key) => shares.push((*e, key, who.clone())),
                Err(_) => newest_unshared |= Some(e.id) == newest,
            }
        }
        if case.state.newest_epoch_exposed() || newest_unshared {
            let key = SymmetricKey::generate()?;
            let salt = control::epoch_salt(&case.id, &key);
            let op = ControlOp::create(
                &node.keys,
                case.id,
                parents,
                ms,
                ControlBody::KeyEpoch {
                    salt,
                    wraps: control::wrap_to(&key, &case.id, &salt, &cards)?,
                },
            )?;
            parents = vec![op.hash()];
            ops.push((op, Some(key)));
            lines.push(format!(
                "case {}: rotated the key, which a removed member could read or a member lacked (concurrent membership changes)",
                case.id
            ));
        }
        for (e, key, who) in shares {
            let to: Vec<&NodeCard> = cards
                .iter()
                .filter(|c| who.contains(&c.identity.ed25519))
                .copied()
                .collect();
            let op = ControlOp::create(
                &node.keys,
                case.id,
                parents,
                ms,
                ControlBody::KeyShare {
                    epoch: e.id,
                    wraps: control::wrap_to(&key, &case.id, &e.salt, &to)?,
                },
            )?;
            parents = vec![op.hash()];
            ops.push((op, None));
            lines.push(format!(
                "case {}: shared key epoch {} with {} member(s) that lacked it",
                case.id,
                e.id.short(),
                to.len()
            ));
        }
        if ops.is_empty() {
            return Ok(None);
        }
        for (op, key) in &ops {
            match key {
                Some(key) => insert_epoch_op(node, tx, &case, op, key)?,
                None => store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?,
            }
        }
        let line = lines.join("; ");
        let ev = Event::new(Action::KeyRotate).case(case.id).detail(&line);
        audit::append(node, tx, ev)?;
        Ok(Some(line))
    })
}

/// Stores an operation that starts a key epoch, with the epoch's key sealed
/// for this node (so it need not be unwrapped again).
fn insert_epoch_op(
    node: &Node,
    tx: &Connection,
    case: &Case,
    op: &ControlOp,
    key: &SymmetricKey,
) -> Result<()> {
    store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
    let sealed = node.storage.seal_epoch_key(&case.id.0, &op.hash().0, key)?;
    store::put_epoch_key(tx, case.case_ref, &op.hash(), &sealed)?;
    Ok(())
}

/// The refusal to add a node the registry says is revoked.
fn revoked_member(n: &casesync_schema::registry::Enrolled, federation: &str) -> NodeError {
    NodeError::Refused(format!(
        "{} ({}) was revoked from federation \"{federation}\": it cannot be added to a case (revocation is final)",
        n.card.name,
        n.card.peer_id()
    ))
}

/// Resolves a `PEER_ID|CARD` argument to a card. In a federation the node must be
/// enrolled and active (deny by default); a PeerId is looked up in the registry.
/// A node in no federation can add members by card only.
pub fn resolve_member(conn: &Connection, arg: &str) -> Result<NodeCard> {
    let arg = arg.trim();
    let registry = crate::trust::load(conn)?;
    if arg.starts_with("cscard1.") {
        let card = NodeCard::from_text(arg)
            .map_err(|e| NodeError::Refused(format!("invalid node card: {e}")))?;
        let Some(st) = &registry else {
            return Ok(card);
        };
        // The enrolled card, never the presented one: a node can re-sign its
        // card with another organisation or country.
        return match st.nodes.get(&card.identity.ed25519) {
            Some(n) if !n.revoked => Ok(n.card.clone()),
            Some(n) => Err(revoked_member(n, &st.name)),
            None => Err(NodeError::Refused(format!(
                "{} ({}) is not enrolled in federation \"{}\": an admin runs `casesync federation invite CARD` first",
                card.name,
                card.peer_id(),
                st.name
            ))),
        };
    }
    if arg.starts_with("12D3KooW") {
        let Some(st) = registry else {
            return Err(NodeError::Refused(
                "adding a member by PeerId needs a federation (see `casesync federation create`); or pass the node's card from `casesync id --card`".into(),
            ));
        };
        return match st.by_peer_id(arg) {
            Some(n) if !n.revoked => Ok(n.card.clone()),
            Some(n) => Err(revoked_member(n, &st.name)),
            None => Err(NodeError::Refused(format!(
                "{} is not enrolled in federation \"{}\" (see `casesync trust list`)",
                crate::short(arg),
                st.name
            ))),
        };
    }
    Err(NodeError::Refused(format!(
        "`{}` is neither a node card (from `casesync id --card`) nor a PeerId",
        crate::short(arg)
    )))
}

/// Adds `card` to the case with `role` and shares every epoch key this node holds,
/// so the new member can read the whole case history. The checks run inside the
/// write transaction, so no record can slip in between check and addition.
pub fn add_member(
    node: &Node,
    case_text: &str,
    member: &str,
    role: Role,
) -> Result<(CaseId, NodeCard)> {
    node.store.write(|tx| -> Result<(CaseId, NodeCard)> {
        let case = load_by_text(node, tx, case_text)?;
        let card = &resolve_member(tx, member)?;
        require_lead(node, &case, "add members")?;
        if case.state.members.contains_key(&card.identity.ed25519) {
            return Err(NodeError::Refused(format!(
                "{} ({}) is already a member of case {}",
                card.name,
                card.peer_id(),
                case.id
            )));
        }
        require_justification(node, &case)?;
        check_handling_for_member(node, tx, &case, card)?;
        let mut wraps = Vec::new();
        for e in &case.state.epochs {
            let key = epoch_key(node, tx, &case, &e.id)?;
            wraps.push((e.id, control::wrap_to(&key, &case.id, &e.salt, &[card])?));
        }
        let (ms, _) = crate::clock::now();
        let add = ControlOp::create(
            &node.keys,
            case.id,
            case.state.heads.clone(),
            ms,
            ControlBody::AddMember {
                card: card.clone(),
                role,
            },
        )?;
        let mut ops = vec![add];
        for (epoch, w) in wraps {
            let parent = ops.last().map(|o| o.hash()).into_iter().collect();
            ops.push(ControlOp::create(
                &node.keys,
                case.id,
                parent,
                ms,
                ControlBody::KeyShare { epoch, wraps: w },
            )?);
        }
        for op in &ops {
            store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
        }
        let ev = Event::new(Action::MemberAdd)
            .case(case.id)
            .peer(card.peer_id())
            .detail(format!(
                "added as {}; the keys of {} epoch(s) wrapped to it",
                role.name(),
                ops.len() - 1
            ));
        audit::append(node, tx, ev)?;
        Ok((case.id, card.clone()))
    })
}

/// Removes a member (lead only): one control operation that cuts the member's
/// log at the last of its entries this node holds and starts a new key epoch
/// wrapped to the remaining members only, so the removed node cannot read
/// anything written afterwards. Final: the node cannot be added again.
pub fn remove_member(
    node: &Node,
    case_text: &str,
    member: &str,
    reason: &str,
) -> Result<(CaseId, NodeCard, u64)> {
    remove(node, case_text, member, reason, true)
}

/// [`remove_member`]; `asked` is false when the node removes a revoked node on
/// its own, which needs no operator's justification (the revocation is the
/// reason, and it is in the audit entry).
fn remove(
    node: &Node,
    case_text: &str,
    member: &str,
    reason: &str,
    asked: bool,
) -> Result<(CaseId, NodeCard, u64)> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(NodeError::Refused(
            "give the reason for the removal with --reason TEXT".into(),
        ));
    }
    node.store.write(|tx| -> Result<(CaseId, NodeCard, u64)> {
        let case = load_by_text(node, tx, case_text)?;
        require_lead(node, &case, "remove members")?;
        if asked {
            require_justification(node, &case)?;
        }
        let removed = member_named(&case, member)?.card.clone();
        let id = removed.identity.ed25519;
        // The cut: the last entry of each chain of its log held here. A
        // member that started more chains than a cut names (only a hostile
        // one would) loses its latest ones: it cannot make itself unremovable.
        let cut: Vec<LogEnd> = store::chain_heads(tx, case.case_ref, &id)?
            .into_iter()
            .take(control::MAX_CUT_CHAINS)
            .map(|(seq, hash)| LogEnd { seq, hash })
            .collect();
        let cut_seq = cut.last().map_or(0, |e| e.seq);
        let key = SymmetricKey::generate()?;
        let salt = control::epoch_salt(&case.id, &key);
        let remaining: Vec<&NodeCard> = case
            .state
            .members
            .iter()
            .filter(|(k, _)| **k != id)
            .map(|(_, m)| &m.card)
            .collect();
        let wraps = control::wrap_to(&key, &case.id, &salt, &remaining)?;
        let op = lead_op(
            node,
            &case,
            ControlBody::RemoveMember {
                member: id,
                cut,
                sealed_reason: control::seal_reason(&case.id, &salt, &key, reason)?,
                salt,
                wraps,
            },
        )?;
        insert_epoch_op(node, tx, &case, &op, &key)?;
        let ev = Event::new(Action::MemberRemove)
            .case(case.id)
            .peer(removed.peer_id())
            .detail(format!(
                "{reason}; its log cut at seq {cut_seq}; a new key epoch for the remaining members"
            ));
        audit::append(node, tx, ev)?;
        Ok((case.id, removed, cut_seq))
    })
}

/// Refuses an action on `case` when the case asks every action for a
/// justification and none was given. The caller's error path logs the refusal.
pub fn require_justification(node: &Node, case: &Case) -> Result<()> {
    if case.meta.require_justification && node.actor.justification.is_none() {
        return Err(NodeError::Refused(format!(
            "case {} requires a justification for every action: pass --justification TEXT (it is recorded in the audit log)",
            case.id
        )));
    }
    Ok(())
}

/// Refuses unless this node leads `case`: `what` says what it would do.
fn require_lead(node: &Node, case: &Case, what: &str) -> Result<()> {
    if case.state.role_of(&node.keys.public().ed25519) != Some(Role::Lead) {
        return Err(NodeError::Refused(format!(
            "only a lead of case {} can {what}",
            case.id
        )));
    }
    Ok(())
}

/// This node's control operation on top of `case`'s heads, refused with the
/// reason unless it may write it (not an operation that folds to nothing).
fn lead_op(node: &Node, case: &Case, body: ControlBody) -> Result<ControlOp> {
    let (ms, _) = crate::clock::now();
    let op = ControlOp::create(&node.keys, case.id, case.state.heads.clone(), ms, body)?;
    control::authorize(&case.state, &op).map_err(NodeError::Refused)?;
    Ok(op)
}

/// The member of `case` that `arg` names (its PeerId or card).
fn member_named<'a>(case: &'a Case, arg: &str) -> Result<&'a control::Member> {
    let arg = arg.trim();
    case.state
        .members
        .values()
        .find(|m| m.card.peer_id() == arg || m.card.to_text() == arg)
        .ok_or_else(|| {
            NodeError::Refused(format!(
                "{} is not a member of case {} (see `casesync case show {}`)",
                crate::short(arg),
                case.id,
                case.id
            ))
        })
}

/// Gives a member another role (lead only): `case member role`. A lead hands a
/// case over by making another member lead and then itself a contributor.
/// Returns the member's card and its role before.
pub fn change_role(
    node: &Node,
    case_text: &str,
    member: &str,
    role: Role,
) -> Result<(CaseId, NodeCard, Role)> {
    node.store.write(|tx| -> Result<(CaseId, NodeCard, Role)> {
        let case = load_by_text(node, tx, case_text)?;
        require_lead(node, &case, "change roles")?;
        require_justification(node, &case)?;
        let m = member_named(&case, member)?;
        let (card, before) = (m.card.clone(), m.role);
        let op = lead_op(
            node,
            &case,
            ControlBody::ChangeRole {
                member: card.identity.ed25519,
                role,
            },
        )?;
        store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
        let ev = Event::new(Action::MemberRole)
            .case(case.id)
            .peer(card.peer_id())
            .detail(format!("{} -> {}", before.name(), role.name()));
        audit::append(node, tx, ev)?;
        Ok((case.id, card, before))
    })
}

/// A federation admin makes a current member lead of a case whose leads were
/// all revoked (`case appoint-lead`): a signed control operation, judged by
/// every node against its registry. The admin must hold the case (be a
/// member of it) to write on its control log. Returns the member's card.
pub fn appoint_lead(
    node: &Node,
    case_text: &str,
    member: &str,
    reason: &str,
) -> Result<(CaseId, NodeCard)> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(NodeError::Refused(
            "give the reason for the appointment with --reason TEXT".into(),
        ));
    }
    node.store.write(|tx| -> Result<(CaseId, NodeCard)> {
        let facts = federation_facts(tx)?;
        let me = node.keys.public().ed25519;
        if !facts.admins.contains(&me) {
            return Err(NodeError::Refused(
                "only an active admin of the federation appoints a lead (see `casesync trust list`)"
                    .into(),
            ));
        }
        let case = load_by_text(node, tx, case_text).map_err(|e| match e {
            NodeError::Refused(m) => NodeError::Refused(format!(
                "{m}; an admin appoints a lead only of a case it holds (a member of it)"
            )),
            e => e,
        })?;
        require_justification(node, &case)?;
        let card = member_named(&case, member)?.card.clone();
        let id = card.identity.ed25519;
        // Sealed under the newest epoch this node can read, when it can.
        let sealed_reason = match current_epoch(node, tx, &case) {
            Ok((epoch, key)) => match case.state.epoch(&epoch) {
                Some(e) => control::seal_reason(&case.id, &e.salt, &key, reason)?,
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        let (ms, _) = crate::clock::now();
        let op = ControlOp::create(
            &node.keys,
            case.id,
            case.state.heads.clone(),
            ms,
            ControlBody::AppointLead {
                member: id,
                sealed_reason,
            },
        )?;
        control::authorize_in(&case.state, &op, &facts).map_err(NodeError::Refused)?;
        store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
        let ev = Event::new(Action::LeadAppoint)
            .case(case.id)
            .peer(card.peer_id())
            .detail(format!("{reason}; every lead of the case is revoked"));
        audit::append(node, tx, ev)?;
        Ok((case.id, card))
    })
}

/// Removes every revoked node from the cases this node leads, each with a cut
/// at its last entry held here (docs/design.md: "a lead that sees the revocation
/// removes the node with a cut"). Returns what was removed.
pub fn cut_revoked(node: &Node) -> Result<Vec<(CaseId, NodeCard)>> {
    let Some(registry) = crate::trust::load(node.store.conn())? else {
        return Ok(vec![]);
    };
    let me = node.keys.public().ed25519;
    let mut done = Vec::new();
    for case in list(node)? {
        if case.state.role_of(&me) != Some(Role::Lead) {
            continue;
        }
        for (id, m) in &case.state.members {
            let Some(n) = registry.nodes.get(id).filter(|n| n.revoked) else {
                continue;
            };
            let why = n
                .revocation
                .as_ref()
                .map(|(r, _)| r.as_str())
                .unwrap_or("no reason given");
            let reason = format!("revoked from the federation: {why}");
            // Another process (or lead) may have removed it meanwhile: the
            // removal re-checks membership in its own transaction and refuses.
            match remove(
                node,
                &case.id.to_string(),
                &m.card.peer_id(),
                &reason,
                false,
            ) {
                Ok((cid, card, _)) => done.push((cid, card)),
                Err(NodeError::Refused(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}

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
fn check_handling_for_member(
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
