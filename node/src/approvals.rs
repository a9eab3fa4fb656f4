//! Four-eyes (issue 19): this node's policy names operations one person
//! alone may not do (adding a member, exporting a bundle, erasing a record,
//! enrolling or revoking a node). The first person's attempt files a
//! request, sealed at rest, that expires; a second person approves it (and
//! `four_eyes::approve` carries it out, both names in its audit entry) or
//! denies it. The same person cannot approve their own request.
//!
//! The engine's operations call [`guard`] first, so no front end can skip it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::access::Need;
use crate::audit::{self, Action, Actor, Event};
use casesync_schema::CaseId;
use casesync_schema::control::CasePolicy;

use crate::{Node, NodeError, Result, store};

/// What may need two people, by the names the policy uses.
pub const GUARDED: [&str; 5] = ["member-add", "bundle-export", "erase", "enroll", "revoke"];

const POLICY_KEY: &str = "approval_policy";

/// This node's four-eyes policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Operations that need a second person (names in [`GUARDED`]).
    pub require: BTreeSet<String>,
    /// How long a request waits for its second person.
    pub expires_hours: u32,
}

impl Policy {
    /// The policy in a line.
    pub fn describe(&self) -> String {
        format!(
            "two people for: {}; requests wait {} hours",
            listed(&self.require),
            self.expires_hours
        )
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            require: BTreeSet::new(),
            expires_hours: 24,
        }
    }
}

/// The operations named in comma-separated `lists` (`none` or nothing:
/// none), each one of `allowed`; `whose` says what guards them, for the
/// refusal.
pub fn operations<'s>(
    lists: impl Iterator<Item = &'s str>,
    allowed: &[&str],
    whose: &str,
) -> Result<BTreeSet<String>> {
    let mut set = BTreeSet::new();
    for r in lists.flat_map(|l| l.split(',')).map(str::trim) {
        if r.is_empty() || r == "none" {
            continue;
        }
        if !allowed.contains(&r) {
            return Err(NodeError::Refused(format!(
                "{r:?} is not an operation {whose} can guard: one of {}",
                allowed.join(", ")
            )));
        }
        set.insert(r.to_string());
    }
    Ok(set)
}

/// Operations in a line: "nothing", or their names.
pub fn listed(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "nothing".to_string()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// An operation asked for, as the second person will carry it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Request {
    MemberAdd {
        case: String,
        member: String,
        role: String,
    },
    /// The approver writes the bundle (`approvals approve ID --out FILE`).
    BundleExport {
        cases: Vec<String>,
        recipient: Option<String>,
    },
    Erase {
        record: String,
        reason: String,
    },
    EraseCase {
        case: String,
        reason: String,
    },
    Enroll {
        card: String,
        admin: bool,
    },
    Revoke {
        peer: String,
        reason: String,
    },
}

impl Request {
    pub fn action(&self) -> &'static str {
        match self {
            Request::MemberAdd { .. } => "member-add",
            Request::BundleExport { .. } => "bundle-export",
            Request::Erase { .. } | Request::EraseCase { .. } => "erase",
            Request::Enroll { .. } => "enroll",
            Request::Revoke { .. } => "revoke",
        }
    }

    /// What a person (the requester's rights, and the approver's) needs.
    pub fn need(&self) -> Need {
        match self {
            Request::Enroll { .. } | Request::Revoke { .. } => Need::Trust,
            _ => Need::Manage,
        }
    }

    /// The request in a line, for approvers.
    pub fn describe(&self) -> String {
        match self {
            Request::MemberAdd { case, member, role } => {
                format!("add {} to case {case} as {role}", crate::short(member))
            }
            Request::BundleExport { cases, recipient } => format!(
                "export a bundle of {} for {}",
                if cases.is_empty() {
                    "every case".to_string()
                } else {
                    cases.join(", ")
                },
                recipient
                    .as_deref()
                    .map(crate::short)
                    .unwrap_or_else(|| "anyone (unencrypted)".into())
            ),
            Request::Erase { record, reason } => format!("erase record {record}: {reason}"),
            Request::EraseCase { case, reason } => format!("erase the whole case {case}: {reason}"),
            Request::Enroll { card, admin } => format!(
                "enroll {}{}",
                crate::short(card),
                if *admin { " as an admin" } else { "" }
            ),
            Request::Revoke { peer, reason } => format!("revoke {}: {reason}", crate::short(peer)),
        }
    }
}

/// What is sealed in a request's row: the request and the requester's
/// justification (the approver's run carries it).
#[derive(Serialize, Deserialize)]
pub(crate) struct Filed {
    pub request: Request,
    pub justification: Option<String>,
}

pub fn policy(node: &Node) -> Result<Policy> {
    crate::settings::load(node, POLICY_KEY, "four-eyes policy")
}

/// `approvals policy`: which operations need two people, and how long a
/// request waits (a trust operation), audited.
pub fn set_policy(
    node: &Node,
    actor: &Actor,
    require: &[String],
    expires_hours: Option<u32>,
) -> Result<Policy> {
    audit::audited(node, actor, Action::ApprovalPolicy, None, None, || {
        actor.require(Need::Trust)?;
        let mut p = policy(node)?;
        p.require = operations(require.iter().map(String::as_str), &GUARDED, "four-eyes")?;
        if let Some(h) = expires_hours {
            if !(1..=24 * 30).contains(&h) {
                return Err(NodeError::Refused(
                    "a request waits 1 hour to 30 days (720 hours)".into(),
                ));
            }
            p.expires_hours = h;
        }
        let ev = Event::new(Action::ApprovalPolicy).detail(p.describe());
        crate::settings::save(node, actor, POLICY_KEY, &p, ev)?;
        Ok(p)
    })
}

/// Called first by every guarded operation: passes when the policy does not
/// ask for two people, or when this is the second person's run; otherwise
/// files a request (committed on its own) and refuses, naming it.
///
/// `cases` are the cases the operation touches, with their policies (signed
/// by a lead into each control log, binding every member node): the caller
/// loads them, this module being below `cases`.
pub fn guard(
    node: &Node,
    actor: &Actor,
    request: &Request,
    cases: &[(CaseId, &CasePolicy)],
) -> Result<()> {
    if actor.approved_by.is_some() {
        return Ok(());
    }
    let p = policy(node)?;
    let by_case = if p.require.contains(request.action()) {
        None
    } else {
        match cases
            .iter()
            .find(|(_, cp)| cp.four_eyes.contains(request.action()))
        {
            Some((case, _)) => Some(case.to_string()),
            None => return Ok(()),
        }
    };
    actor.require(request.need())?;
    let filed = serde_json::to_vec(&Filed {
        request: request.clone(),
        justification: actor.justification.clone(),
    })
    .map_err(|e| NodeError::Integrity(format!("cannot encode the request: {e}")))?;
    let (now, _) = crate::clock::now();
    let expires = now + i64::from(p.expires_hours) * 3_600_000;
    let id = node.store.write(|tx| -> Result<i64> {
        let id = store::insert_approval(tx, request.action(), &actor.operator, now, expires)?;
        store::set_approval_body(tx, id, &node.storage.seal_request(id, &filed)?)?;
        audit::append(
            node,
            actor,
            tx,
            Event::new(Action::ApprovalRequest).detail(format!(
                "request {id}: {}; waits until {}",
                request.describe(),
                crate::clock::format_ms(expires)
            )),
        )?;
        Ok(id)
    })?;
    Err(NodeError::Refused(format!(
        "{} needs a second person for {}: request {id} is filed and waits {} hours; another person approves it with `casesync approvals approve {id}` (or denies it)",
        by_case
            .map(|c| format!("the policy of case {c}"))
            .unwrap_or_else(|| "this node's policy".into()),
        request.action(),
        p.expires_hours
    )))
}

/// A request, for `approvals list`.
#[derive(Clone, Debug, Serialize)]
pub struct Pending {
    pub id: i64,
    pub action: String,
    pub what: String,
    pub requester: String,
    pub created: String,
    pub expires: String,
    /// pending, approved, denied or expired.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

/// Which operation request `id` asks for (its name only), if there is one:
/// for a front end that must gather something first (where a bundle goes).
pub fn action_of(node: &Node, id: i64) -> Result<Option<String>> {
    Ok(store::approval(node.store.conn(), id)?.map(|r| r.action))
}

/// A filed request, opened, and whether it is still open.
pub(crate) fn load(node: &Node, id: i64) -> Result<(store::ApprovalRow, Filed)> {
    let row = store::approval(node.store.conn(), id)?
        .ok_or_else(|| NodeError::Refused(format!("no approval request {id}")))?;
    let filed: Filed = serde_json::from_slice(&node.storage.open_request(id, &row.sealed)?)
        .map_err(|e| NodeError::Integrity(format!("approval request {id} is malformed: {e}")))?;
    Ok((row, filed))
}

fn state_of(row: &store::ApprovalRow, now: i64) -> String {
    if row.state == "pending" && row.expires_ms <= now {
        "expired".into()
    } else {
        row.state.clone()
    }
}

/// `approvals list`: requests of the last 30 days, newest first, for a
/// person who could approve them (a lead's or supervisor's rights).
pub fn list(node: &Node, actor: &Actor) -> Result<Vec<Pending>> {
    audit::audited(node, actor, Action::ApprovalList, None, None, || {
        actor.require(Need::Manage)?;
        let (now, _) = crate::clock::now();
        let mut out = Vec::new();
        for row in store::approvals_since(node.store.conn(), now - 30 * 86_400_000)? {
            let (_, filed) = load(node, row.id)?;
            out.push(Pending {
                id: row.id,
                action: row.action.clone(),
                what: filed.request.describe(),
                requester: row.requester.clone(),
                created: crate::clock::format_ms(row.created_ms),
                expires: crate::clock::format_ms(row.expires_ms),
                state: state_of(&row, now),
                decided_by: row.decided_by.clone(),
            });
        }
        audit::append_alone(
            node,
            actor,
            Event::new(Action::ApprovalList).detail(format!("{} requests", out.len())),
        )?;
        Ok(out)
    })
}

/// Checks `actor` may decide request `id` now: it is pending and not
/// expired, `actor` is not who asked, and has the rights it needs. Returns
/// the request.
pub(crate) fn decidable(
    node: &Node,
    actor: &Actor,
    id: i64,
) -> Result<(store::ApprovalRow, Filed)> {
    let (row, filed) = load(node, id)?;
    let (now, _) = crate::clock::now();
    match state_of(&row, now).as_str() {
        "pending" => {}
        "expired" => {
            return Err(NodeError::Refused(format!(
                "request {id} expired at {}: ask again",
                crate::clock::format_ms(row.expires_ms)
            )));
        }
        s => {
            return Err(NodeError::Refused(format!(
                "request {id} is {s} already (by {})",
                row.decided_by.as_deref().unwrap_or("?")
            )));
        }
    }
    if actor.operator == row.requester {
        return Err(NodeError::Refused(format!(
            "request {id} was filed by {}: a second person must decide it",
            row.requester
        )));
    }
    actor.require(filed.request.need())?;
    Ok((row, filed))
}

/// Marks request `id` decided (`state`) by `actor`, with its audit entry;
/// refused if another person decided it meanwhile.
pub(crate) fn decide(node: &Node, actor: &Actor, id: i64, state: &str, ev: Event) -> Result<()> {
    let (now, _) = crate::clock::now();
    node.store.write(|tx| -> Result<()> {
        if !store::decide_approval(tx, id, state, &actor.operator, now)? {
            return Err(NodeError::Refused(format!(
                "request {id} was decided meanwhile"
            )));
        }
        audit::append(node, actor, tx, ev)?;
        Ok(())
    })
}

/// `approvals deny ID --reason TEXT`.
pub fn deny(node: &Node, actor: &Actor, id: i64, reason: &str) -> Result<()> {
    audit::audited(node, actor, Action::ApprovalDeny, None, None, || {
        if reason.trim().is_empty() {
            return Err(NodeError::Refused("a denial needs --reason".into()));
        }
        let (row, filed) = decidable(node, actor, id)?;
        decide(
            node,
            actor,
            id,
            "denied",
            Event::new(Action::ApprovalDeny).detail(format!(
                "request {id} of {}: {}; denied: {reason}",
                row.requester,
                filed.request.describe()
            )),
        )
    })
}
