//! Membership: adding, removing and changing members, appointing a lead,
//! and what a lead does when others' operations arrive (cuts, key repairs).

use super::*;

/// What a lead does after control operations from others arrive (a merge):
/// cuts revoked nodes from the cases it leads, rotates a newest key epoch that
/// a removed node can read (concurrent removals), and shares the newest epoch
/// with members that lack it (added concurrently with a rotation). Returns a
/// line per action, for the log.
pub fn after_merge(node: &Node, actor: &crate::audit::Actor) -> Result<Vec<String>> {
    let mut done: Vec<String> = cut_revoked(node, actor)?
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
            match repair_keys(node, actor, &case.id) {
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
pub(crate) fn repair_keys(
    node: &Node,
    actor: &crate::audit::Actor,
    id: &CaseId,
) -> Result<Option<String>> {
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
        audit::append(node, actor, tx, ev)?;
        Ok(Some(line))
    })
}

/// Stores an operation that starts a key epoch, with the epoch's key sealed
/// for this node (so it need not be unwrapped again).
pub(crate) fn insert_epoch_op(
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
pub(crate) fn revoked_member(
    n: &casesync_schema::registry::Enrolled,
    federation: &str,
) -> NodeError {
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
    actor: &crate::audit::Actor,
    case_text: &str,
    member: &str,
    role: Role,
) -> Result<(CaseId, NodeCard)> {
    audit::audited(
        node,
        actor,
        Action::MemberAdd,
        Some(case_text),
        None,
        || {
            let held = load_by_text(node, node.store.conn(), case_text)?;
            crate::approvals::guard(
                node,
                actor,
                &crate::approvals::Request::MemberAdd {
                    case: case_text.to_string(),
                    member: member.to_string(),
                    role: role.name().to_string(),
                },
                &[(held.id, &held.state.policy)],
            )?;
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
                require_access(actor, tx, &case, crate::access::Need::Manage)?;
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
                audit::append(node, actor, tx, ev)?;
                Ok((case.id, card.clone()))
            })
        },
    )
}

/// Removes a member (lead only): one control operation that cuts the member's
/// log at the last of its entries this node holds and starts a new key epoch
/// wrapped to the remaining members only, so the removed node cannot read
/// anything written afterwards. Final: the node cannot be added again.
pub fn remove_member(
    node: &Node,
    actor: &crate::audit::Actor,
    case_text: &str,
    member: &str,
    reason: &str,
) -> Result<(CaseId, NodeCard, u64)> {
    audit::audited(
        node,
        actor,
        Action::MemberRemove,
        Some(case_text),
        None,
        || remove(node, actor, case_text, member, reason, true),
    )
}

/// [`remove_member`]; `asked` is false when the node removes a revoked node on
/// its own, which needs no operator's justification (the revocation is the
/// reason, and it is in the audit entry).
pub(crate) fn remove(
    node: &Node,
    actor: &crate::audit::Actor,
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
            require_access(actor, tx, &case, crate::access::Need::Manage)?;
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
        audit::append(node, actor, tx, ev)?;
        Ok((case.id, removed, cut_seq))
    })
}

/// Refuses unless this node leads `case`: `what` says what it would do.
pub(crate) fn require_lead(node: &Node, case: &Case, what: &str) -> Result<()> {
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
pub(crate) fn lead_op(node: &Node, case: &Case, body: ControlBody) -> Result<ControlOp> {
    let (ms, _) = crate::clock::now();
    let op = ControlOp::create(&node.keys, case.id, case.state.heads.clone(), ms, body)?;
    control::authorize(&case.state, &op).map_err(NodeError::Refused)?;
    Ok(op)
}

/// The member of `case` that `arg` names (its PeerId or card).
pub(crate) fn member_named<'a>(case: &'a Case, arg: &str) -> Result<&'a control::Member> {
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
    actor: &crate::audit::Actor,
    case_text: &str,
    member: &str,
    role: Role,
) -> Result<(CaseId, NodeCard, Role)> {
    audit::audited(
        node,
        actor,
        Action::MemberRole,
        Some(case_text),
        None,
        || {
            node.store.write(|tx| -> Result<(CaseId, NodeCard, Role)> {
                let case = load_by_text(node, tx, case_text)?;
                require_lead(node, &case, "change roles")?;
                require_access(actor, tx, &case, crate::access::Need::Manage)?;
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
                audit::append(node, actor, tx, ev)?;
                Ok((case.id, card, before))
            })
        },
    )
}

/// A federation admin makes a current member lead of a case whose leads were
/// all revoked (`case appoint-lead`): a signed control operation, judged by
/// every node against its registry. The admin must hold the case (be a
/// member of it) to write on its control log. Returns the member's card.
pub fn appoint_lead(
    node: &Node,
    actor: &crate::audit::Actor,
    case_text: &str,
    member: &str,
    reason: &str,
) -> Result<(CaseId, NodeCard)> {
    audit::audited(
        node,
        actor,
        Action::LeadAppoint,
        Some(case_text),
        None,
        || {
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
            require_access(actor, tx, &case, crate::access::Need::Manage)?;
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
            audit::append(node, actor, tx, ev)?;
            Ok((case.id, card))
        })
        },
    )
}

/// Removes every revoked node from the cases this node leads, each with a cut
/// at its last entry held here (docs/design.md: "a lead that sees the revocation
/// removes the node with a cut"). Returns what was removed.
pub fn cut_revoked(node: &Node, actor: &crate::audit::Actor) -> Result<Vec<(CaseId, NodeCard)>> {
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
                actor,
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
