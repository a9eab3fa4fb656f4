//! The second person's approval of a four-eyes request (`approvals`):
//! carries the operation out as the engine would for the first person,
//! with the second named beside it in every audit entry it writes.

use serde::Serialize;

use crate::approvals::{self, Request};
use crate::audit::{self, Action, Actor, Event};
use crate::{Node, NodeError, Result, bundle, cases, erasure, trust};

/// What an approved request did.
#[derive(Debug, Serialize)]
#[serde(tag = "done", rename_all = "kebab-case")]
pub enum Done {
    MemberAdded {
        case: String,
        member: String,
    },
    /// A bundle, its parts handed to the approver's sink as they were made.
    Exported {
        parts: usize,
        bytes: usize,
        cases: usize,
        entries: usize,
    },
    Erased(erasure::Started),
    Enrolled {
        token: String,
    },
    Revoked {
        peer: String,
    },
}

/// `approvals approve ID`: `actor` (not who asked, with the rights the
/// operation needs) approves request `id`, which is carried out now. A
/// bundle export hands its parts to `sink` (`bundle::export`).
pub fn approve(
    node: &Node,
    actor: &Actor,
    id: i64,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<Done> {
    audit::audited(node, actor, Action::ApprovalApprove, None, None, || {
        let (row, filed) = approvals::decidable(node, actor, id)?;
        // Decided first (one approval, one run), then carried out.
        approvals::decide(
            node,
            actor,
            id,
            "approved",
            Event::new(Action::ApprovalApprove).detail(format!(
                "request {id} of {}: {}",
                row.requester,
                filed.request.describe()
            )),
        )?;
        let second = Actor {
            operator: row.requester.clone(),
            justification: filed.justification.clone(),
            account: actor.account.clone(),
            approved_by: Some(actor.operator.clone()),
        };
        run(node, &second, &filed.request, sink)
    })
}

fn run(
    node: &Node,
    actor: &Actor,
    request: &Request,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<Done> {
    Ok(match request {
        Request::MemberAdd { case, member, role } => {
            let role = role
                .parse()
                .map_err(|e: casesync_schema::SchemaError| NodeError::Refused(e.to_string()))?;
            let (case, card) = cases::add_member(node, actor, case, member, role)?;
            Done::MemberAdded {
                case: case.to_string(),
                member: card.peer_id(),
            }
        }
        Request::BundleExport { cases, recipient } => {
            let r = bundle::export(node, actor, cases, recipient.as_deref(), sink)?;
            Done::Exported {
                parts: r.parts,
                bytes: r.bytes,
                cases: r.cases,
                entries: r.entries,
            }
        }
        Request::Erase { record, reason } => {
            Done::Erased(erasure::erase(node, actor, record, reason)?)
        }
        Request::EraseCase { case, reason } => {
            Done::Erased(erasure::erase_case(node, actor, case, reason)?)
        }
        Request::Enroll { card, admin } => {
            let card = casesync_schema::NodeCard::from_text(card)
                .map_err(|e| NodeError::Refused(format!("the card in the request: {e}")))?;
            Done::Enrolled {
                token: trust::invite(node, actor, &card, *admin)?,
            }
        }
        Request::Revoke { peer, reason } => {
            trust::revoke(node, actor, peer, reason)?;
            Done::Revoked { peer: peer.clone() }
        }
    })
}
