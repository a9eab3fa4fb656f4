//! The federation trust registry on this node: create a federation, invite
//! (enroll) nodes, join with a token, and answer "is this node enrolled?".
//!
//! The registry's state is always `registry::resolve` of the stored statements;
//! the federation id this node belongs to is kept in `meta`.

use casesync_crypto::Hash;
use casesync_schema::NodeCard;
use casesync_schema::registry::{self, Enrolled, RegistryBody, RegistryOp, RegistryState};
use rusqlite::Connection;

use crate::audit::{self, Action, Event};
use crate::{Node, NodeError, Result, store};

const META_FEDERATION: &str = "federation";

/// The last registry this process resolved, keyed by a fingerprint of the
/// federation id and the stored statements' hashes. A `serve` consults the
/// registry on every request; verifying every statement's signature each time
/// was a millisecond a request in a federation of five.
static RESOLVED: std::sync::Mutex<Option<(Hash, RegistryState)>> = std::sync::Mutex::new(None);

/// `trust list`: the federation's nodes as resolved, and those proved to have
/// equivocated. Needs no keys: statements are signed, and nothing is sealed.
#[derive(Debug)]
pub struct Roster {
    pub registry: RegistryState,
    /// (node key, number of cases in which its log is frozen).
    pub equivocated: Vec<([u8; 32], u64)>,
}

/// One node of the roster as `trust list --json` and the API show it.
#[derive(Debug, serde::Serialize)]
pub struct RosterNode {
    pub peer_id: String,
    pub name: String,
    pub org: String,
    pub country: String,
    pub admin: bool,
    /// active or revoked
    pub status: &'static str,
    pub revocation_reason: Option<String>,
    /// Cases in which its log is frozen by a proved equivocation.
    pub equivocated_in_cases: u64,
}

impl Roster {
    /// The nodes, in the registry's order, as front ends list them.
    pub fn nodes(&self) -> Vec<RosterNode> {
        let forks = |id: &[u8; 32]| {
            self.equivocated
                .iter()
                .find(|(a, _)| a == id)
                .map_or(0, |(_, n)| *n)
        };
        self.registry
            .nodes
            .iter()
            .map(|(id, n)| RosterNode {
                peer_id: n.card.peer_id(),
                name: n.card.name.clone(),
                org: n.card.org.clone(),
                country: n.card.country.clone(),
                admin: n.admin,
                status: if n.revoked { "revoked" } else { "active" },
                revocation_reason: n.revocation.as_ref().map(|(r, _)| r.clone()),
                equivocated_in_cases: forks(id),
            })
            .collect()
    }
}

/// `trust list` for a person: the node's operator, a supervisor or an admin
/// (who enrolled which agencies is the node's state, not case data).
pub fn roster_for(node: &Node, actor: &crate::access::Actor) -> Result<Roster> {
    actor.require(crate::access::Need::Node)?;
    roster(node.store.conn())
}

/// The [`Roster`]; refused when this node belongs to no federation.
pub fn roster(conn: &Connection) -> Result<Roster> {
    let Some(registry) = load(conn)? else {
        return Err(NodeError::Refused(
            "this node belongs to no federation: run `casesync federation create --name NAME`, or join one with a token".into(),
        ));
    };
    Ok(Roster {
        registry,
        equivocated: store::equivocators(conn)?,
    })
}

/// The federation this node belongs to, if any, resolved from stored statements.
/// Statements are verified and resolved once per set of statements per process
/// (a statement's hash is checked against its verified bytes when first read).
pub fn load(conn: &Connection) -> Result<Option<RegistryState>> {
    let Some(id) = store::meta_get(conn, META_FEDERATION)? else {
        return Ok(None);
    };
    let fed = Hash::from_slice(&id)
        .ok_or_else(|| NodeError::Integrity("stored federation id is malformed".into()))?;
    let hashes = store::registry_op_hashes(conn)?;
    let mut parts: Vec<&[u8]> = vec![&fed.0];
    parts.extend(hashes.iter().map(|h| &h.0[..]));
    let fingerprint = casesync_crypto::hash::sha256_parts(&parts);
    {
        let cached = RESOLVED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((f, st)) = cached.as_ref()
            && f.ct_eq(&fingerprint)
        {
            return Ok(Some(st.clone()));
        }
    }
    let st = resolve_stored(conn, fed)?;
    *RESOLVED.lock().unwrap_or_else(|p| p.into_inner()) = Some((fingerprint, st.clone()));
    Ok(Some(st))
}

fn resolve_stored(conn: &Connection, fed: Hash) -> Result<RegistryState> {
    Ok(registry::resolve(fed, &stored_ops(conn)?)?)
}

/// Every stored statement, each verified against its signature and hash.
pub(crate) fn stored_ops(conn: &Connection) -> Result<Vec<RegistryOp>> {
    store::registry_ops(conn)?
        .iter()
        .map(|o| {
            let op = RegistryOp::decode_verified(&o.bytes).map_err(|e| {
                NodeError::Integrity(format!(
                    "registry statement {} failed verification: {e}",
                    o.hash.short()
                ))
            })?;
            if !op.hash().ct_eq(&o.hash) {
                return Err(NodeError::Integrity(format!(
                    "registry statement {} does not match its hash",
                    o.hash.short()
                )));
            }
            Ok(op)
        })
        .collect::<Result<Vec<_>>>()
}

fn require_none(conn: &Connection) -> Result<()> {
    if let Some(st) = load(conn)? {
        return Err(NodeError::Refused(format!(
            "this node already belongs to federation \"{}\" ({})",
            st.name,
            st.federation.to_hex()
        )));
    }
    Ok(())
}

/// Starts a federation with this node as its first admin; returns its state.
pub fn create(node: &Node, actor: &crate::audit::Actor, name: &str) -> Result<RegistryState> {
    audit::audited(node, actor, Action::FederationCreate, None, None, || {
        actor.require(crate::access::Need::Trust)?;
        create_federation(node, actor, name)
    })
}

fn create_federation(
    node: &Node,
    actor: &crate::audit::Actor,
    name: &str,
) -> Result<RegistryState> {
    node.store.write(|tx| -> Result<RegistryState> {
        require_none(tx)?;
        let mut nonce = [0u8; 16];
        casesync_crypto::random_bytes(&mut nonce)?;
        let (ms, _) = crate::clock::now();
        let genesis = RegistryOp::create(
            &node.keys,
            Hash::ZERO,
            vec![],
            ms,
            RegistryBody::Genesis {
                name: name.trim().to_string(),
                nonce,
                admin: node.card.clone(),
            },
        )?;
        store::insert_registry_op(tx, &genesis.hash(), genesis.bytes())?;
        store::meta_put(tx, META_FEDERATION, genesis.hash().as_bytes())?;
        let ev = Event::new(Action::FederationCreate).detail(format!(
            "federation \"{}\" ({})",
            name.trim(),
            genesis.hash().to_hex()
        ));
        audit::append(node, actor, tx, ev)?;
        load(tx)?.ok_or_else(|| NodeError::Integrity("the new federation did not resolve".into()))
    })
}

/// The registry, if this node is an admin of its federation; `action` names
/// what was refused otherwise.
fn as_admin(node: &Node, conn: &Connection, action: &str) -> Result<RegistryState> {
    let st = load(conn)?.ok_or_else(|| {
        NodeError::Refused(
            "this node belongs to no federation: run `casesync federation create --name NAME` first"
                .into(),
        )
    })?;
    if !st.is_admin(&node.keys.public().ed25519) {
        return Err(NodeError::Refused(format!(
            "only a federation admin can {action} nodes"
        )));
    }
    Ok(st)
}

/// Signs `body` on the registry's current heads and stores it. Under the
/// federation's two-admin policy it stores nothing: the signed statement
/// goes back, as a request token, in the refusal, for another admin to
/// second (`approvals approve TOKEN`).
fn append(node: &Node, conn: &Connection, st: &RegistryState, body: RegistryBody) -> Result<()> {
    let (ms, _) = crate::clock::now();
    let op = RegistryOp::create(&node.keys, st.federation, st.heads.clone(), ms, body)?;
    if registry::second_admin_needed(st, &op.body) {
        // Said now if a second admin could not make it valid either.
        registry::authorize_body(st, &op).map_err(NodeError::Refused)?;
        return Err(NodeError::Refused(format!(
            "federation \"{}\" needs two admins for this: send this request to an admin of another admin node, who approves it with `casesync approvals approve TOKEN` within 72 hours (nothing changes until then): {}",
            st.name,
            registry::encode_request(&op)
        )));
    }
    registry::authorize(st, &op).map_err(NodeError::Refused)?;
    store::insert_registry_op(conn, &op.hash(), op.bytes())?;
    Ok(())
}

/// Whether `text` is a request token (`approvals approve` takes both kinds).
pub fn is_request_token(text: &str) -> bool {
    registry::is_request(text)
}

/// What a second admin's approval did.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "done", rename_all = "kebab-case")]
pub enum Seconded {
    Enrolled { peer: String, token: String },
    Revoked { peer: String },
    Policy { two_admins: bool },
}

/// `approvals approve TOKEN` on another admin node: verifies the first
/// admin's statement, countersigns it and stores the pair; it takes effect
/// at every node as sync brings it. An enrollment's join token is made here.
pub fn second(node: &Node, actor: &crate::audit::Actor, token: &str) -> Result<Seconded> {
    crate::audit::audited(node, actor, Action::ApprovalApprove, None, None, || {
        actor.require(crate::access::Need::Trust)?;
        let first = registry::decode_request(token)
            .map_err(|e| NodeError::Refused(format!("the request token does not verify: {e}")))?;
        node.store.write(|tx| -> Result<Seconded> {
            let st = as_admin(node, tx, "approve enrollments and revocations of")?;
            if first.federation != st.federation {
                return Err(NodeError::Refused(
                    "the request is for another federation".into(),
                ));
            }
            let requester = st
                .nodes
                .get(&first.author)
                .map(|n| format!("{} ({}, {})", n.card.name, n.card.org, n.card.peer_id()))
                .unwrap_or_else(|| "an unknown node".into());
            let (ms, _) = crate::clock::now();
            let op = RegistryOp::create(
                &node.keys,
                st.federation,
                st.heads.clone(),
                ms,
                RegistryBody::Seconded {
                    first: Box::new(first.clone()),
                },
            )
            .map_err(|e| NodeError::Refused(e.to_string()))?;
            registry::authorize(&st, &op).map_err(|e| {
                NodeError::Refused(format!("cannot approve the request of {requester}: {e}"))
            })?;
            store::insert_registry_op(tx, &op.hash(), op.bytes())?;
            let (done, what) = match &first.body {
                RegistryBody::Enroll { card, admin } => {
                    let token = join_token(node, tx, card)?;
                    (
                        Seconded::Enrolled {
                            peer: card.peer_id(),
                            token,
                        },
                        format!(
                            "enroll {} ({}, {}){}",
                            card.name,
                            card.org,
                            card.peer_id(),
                            if *admin { " as an admin" } else { "" }
                        ),
                    )
                }
                RegistryBody::Revoke { node: id, reason } => {
                    let peer = st
                        .nodes
                        .get(id)
                        .map(|n| n.card.peer_id())
                        .unwrap_or_default();
                    (
                        Seconded::Revoked { peer: peer.clone() },
                        format!("revoke {peer}: {reason}"),
                    )
                }
                RegistryBody::Policy { two_admins } => (
                    Seconded::Policy {
                        two_admins: *two_admins,
                    },
                    format!(
                        "set the federation's two-admin policy {}",
                        on_off(*two_admins)
                    ),
                ),
                RegistryBody::Genesis { .. } | RegistryBody::Seconded { .. } => {
                    return Err(NodeError::Refused(
                        "nothing to approve in this request".into(),
                    ));
                }
            };
            let ev = Event::new(Action::ApprovalApprove).detail(format!(
                "seconded the request of admin node {requester}: {what} (statement {})",
                op.hash().short()
            ));
            audit::append(node, actor, tx, ev)?;
            Ok(done)
        })
    })
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// `federation policy [--two-admins on|off]`: the federation's four-eyes
/// policy; setting it is a registry statement (turning it off takes two admins).
pub fn set_policy(node: &Node, actor: &crate::audit::Actor, two_admins: bool) -> Result<bool> {
    crate::audit::audited(node, actor, Action::ApprovalPolicy, None, None, || {
        actor.require(crate::access::Need::Trust)?;
        node.store.write(|tx| -> Result<bool> {
            let st = as_admin(node, tx, "set the policy for")?;
            append(node, tx, &st, RegistryBody::Policy { two_admins })?;
            let ev = Event::new(Action::ApprovalPolicy).detail(format!(
                "federation \"{}\": two admins for enroll and revoke {}",
                st.name,
                on_off(two_admins)
            ));
            audit::append(node, actor, tx, ev)?;
            Ok(two_admins)
        })
    })
}

/// Enrolls the node of `card` (admin only); returns the join token to send it.
pub fn invite(
    node: &Node,
    actor: &crate::audit::Actor,
    card: &NodeCard,
    admin: bool,
) -> Result<String> {
    crate::audit::audited(node, actor, Action::FederationInvite, None, None, || {
        actor.require(crate::access::Need::Trust)?;
        crate::approvals::guard(
            node,
            actor,
            &crate::approvals::Request::Enroll {
                card: card.to_text(),
                admin,
            },
            &[],
        )?;
        node.store.write(|tx| -> Result<String> {
            let st = as_admin(node, tx, "invite")?;
            let already = st.nodes.get(&card.identity.ed25519);
            if already.is_some_and(|n| n.revoked) {
                return Err(NodeError::Refused(format!(
                    "{} ({}) was revoked; revocation is final",
                    card.name,
                    card.peer_id()
                )));
            }
            if already.is_some_and(|n| n.card != *card) {
                return Err(NodeError::Refused(format!(
                    "{} is enrolled with another card (see `casesync trust list`)",
                    card.peer_id()
                )));
            }
            // Enrolled already with (at least) this role: a new token only (the
            // last one expired or was lost), no new statement.
            let reissue = already.is_some_and(|n| n.admin || !admin);
            if !reissue {
                append(
                    node,
                    tx,
                    &st,
                    RegistryBody::Enroll {
                        card: card.clone(),
                        admin,
                    },
                )?;
            }
            let ev = Event::new(Action::FederationInvite)
                .peer(card.peer_id())
                .detail(format!(
                    "{} {} ({}, {}){}",
                    if reissue {
                        "a new join token for"
                    } else {
                        "enrolled"
                    },
                    card.name,
                    card.org,
                    card.country,
                    if admin { " as an admin" } else { "" }
                ));
            audit::append(node, actor, tx, ev)?;
            join_token(node, tx, card)
        })
    })
}

/// Revokes an enrolled node (admin only, final). Every node that learns the
/// statement closes and refuses connections from it and sends it nothing more.
pub fn revoke(
    node: &Node,
    actor: &crate::audit::Actor,
    peer_id: &str,
    reason: &str,
) -> Result<Enrolled> {
    crate::audit::audited(node, actor, Action::TrustRevoke, None, None, || {
        actor.require(crate::access::Need::Trust)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(NodeError::Refused(
                "give the reason for the revocation with --reason TEXT".into(),
            ));
        }
        crate::approvals::guard(
            node,
            actor,
            &crate::approvals::Request::Revoke {
                peer: peer_id.trim().to_string(),
                reason: reason.to_string(),
            },
            &[],
        )?;
        node.store.write(|tx| -> Result<Enrolled> {
            let st = as_admin(node, tx, "revoke")?;
            let target = st.by_peer_id(peer_id.trim()).ok_or_else(|| {
                NodeError::Refused(format!(
                    "{} is not enrolled in federation \"{}\" (see `casesync trust list`)",
                    crate::short(peer_id),
                    st.name
                ))
            })?;
            if target.revoked {
                return Err(NodeError::Refused(format!(
                    "{} ({}) is already revoked",
                    target.card.name,
                    target.card.peer_id()
                )));
            }
            let id = target.card.identity.ed25519;
            append(
                node,
                tx,
                &st,
                RegistryBody::Revoke {
                    node: id,
                    reason: reason.to_string(),
                },
            )?;
            let ev = Event::new(Action::TrustRevoke)
                .peer(target.card.peer_id())
                .detail(reason);
            audit::append(node, actor, tx, ev)?;
            let st = load(tx)?
                .ok_or_else(|| NodeError::Integrity("the registry did not resolve".into()))?;
            st.nodes
                .get(&id)
                .filter(|n| n.revoked)
                .cloned()
                .ok_or_else(|| NodeError::Integrity("the revocation did not take effect".into()))
        })
    })
}

/// A join token for the node of `card`: every stored statement (each
/// verified), sealed to it and signed by this node, valid 7 days.
fn join_token(node: &Node, conn: &Connection, card: &NodeCard) -> Result<String> {
    let (now, _) = crate::clock::now();
    Ok(registry::seal_token(
        &node.keys,
        card,
        &stored_ops(conn)?,
        now.saturating_add(registry::TOKEN_VALID_MS),
    )?)
}

/// Who invites this node where: what `federation join` shows before joining.
pub struct Invitation {
    pub federation: Hash,
    pub name: String,
    pub inviter: NodeCard,
    pub expires: String,
}

/// Joins the federation a token describes, if it was made for this node by
/// one of that federation's admins and has not expired. `confirm` sees who
/// invites first, and may refuse (a prompt, `--expect-federation`).
pub fn join(
    node: &Node,
    actor: &crate::audit::Actor,
    token: &str,
    confirm: impl FnOnce(&Invitation) -> Result<()>,
) -> Result<RegistryState> {
    audit::audited(node, actor, Action::FederationJoin, None, None, || {
        actor.require(crate::access::Need::Trust)?;
        join_with(node, actor, token, confirm)
    })
}

fn join_with(
    node: &Node,
    actor: &crate::audit::Actor,
    token: &str,
    confirm: impl FnOnce(&Invitation) -> Result<()>,
) -> Result<RegistryState> {
    let opened = registry::open_token(&node.keys, token)
        .map_err(|e| NodeError::Refused(format!("invalid join token: {e}")))?;
    let ops = opened.ops;
    let (now, _) = crate::clock::now();
    let expires = crate::clock::format_ms(opened.expires_ms);
    if now > opened.expires_ms {
        return Err(NodeError::Refused(format!(
            "this join token expired ({expires}): ask the admin for a new one"
        )));
    }
    let genesis = ops
        .iter()
        .find(|o| matches!(o.body, RegistryBody::Genesis { .. }))
        .ok_or_else(|| {
            NodeError::Refused("invalid join token: it holds no federation genesis".into())
        })?;
    let st = registry::resolve(genesis.hash(), &ops)?;
    let me = node.keys.public().ed25519;
    if !st.is_active(&me) {
        return Err(NodeError::Refused(format!(
            "this join token does not enroll this node ({}); ask the admin to invite this node's card",
            node.card.peer_id()
        )));
    }
    let inviter = st
        .nodes
        .get(&opened.inviter)
        .filter(|n| n.admin && !n.revoked)
        .map(|n| n.card.clone())
        .ok_or_else(|| {
            NodeError::Refused(
                "invalid join token: it is not signed by an admin of the federation it names"
                    .into(),
            )
        })?;
    confirm(&Invitation {
        federation: st.federation,
        name: st.name.clone(),
        inviter,
        expires,
    })?;
    node.store.write(|tx| -> Result<RegistryState> {
        if let Some(cur) = load(tx)?
            && cur.federation != st.federation
        {
            return Err(NodeError::Refused(format!(
                "this node already belongs to another federation (\"{}\")",
                cur.name
            )));
        }
        for op in &ops {
            store::insert_registry_op(tx, &op.hash(), op.bytes())?;
        }
        store::meta_put(tx, META_FEDERATION, st.federation.as_bytes())?;
        let ev = Event::new(Action::FederationJoin).detail(format!(
            "joined federation \"{}\" ({})",
            st.name,
            st.federation.to_hex()
        ));
        audit::append(node, actor, tx, ev)?;
        load(tx)?
            .ok_or_else(|| NodeError::Integrity("the joined federation did not resolve".into()))
    })
}

/// Leaves the federation (`federation leave`): only while this node holds no
/// case, so nothing shared is orphaned; a node that joined the wrong
/// federation can then join the right one. Returns the federation's name.
pub fn leave(node: &Node, actor: &crate::audit::Actor) -> Result<String> {
    crate::audit::audited(node, actor, Action::FederationLeave, None, None, || {
        actor.require(crate::access::Need::Trust)?;
        node.store.write(|tx| -> Result<String> {
            let st = load(tx)?.ok_or_else(|| {
                NodeError::Refused("this node belongs to no federation".into())
            })?;
            let cases = store::list_cases(tx)?.len();
            if cases > 0 {
                return Err(NodeError::Refused(format!(
                    "this node holds case data ({cases} case(s)): it can leave federation \"{}\" only before it holds any case",
                    st.name
                )));
            }
            store::forget_federation(tx)?;
            let ev = Event::new(Action::FederationLeave).detail(format!(
                "left federation \"{}\" ({})",
                st.name,
                st.federation.to_hex()
            ));
            audit::append(node, actor, tx, ev)?;
            Ok(st.name)
        })
    })
}
