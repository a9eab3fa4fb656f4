//! `status`: what a node holds and how its logs stand, as data for any front
//! end (the CLI prints it as text or JSON; the shape of the JSON is the
//! field order here).

use casesync_crypto::identity::peer_id_of;
use serde::Serialize;

use crate::{Node, Result, cases, store, trust};

#[derive(Debug, Serialize)]
pub struct Status {
    pub peer_id: String,
    /// The node's own name (shown as text; not in the JSON, whose shape
    /// scripts rely on).
    #[serde(skip)]
    pub name: String,
    pub federation: Option<FederationStatus>,
    pub peers: Vec<PeerStatus>,
    pub cases: Vec<CaseStatus>,
}

#[derive(Debug, Serialize)]
pub struct FederationStatus {
    pub id: String,
    pub name: String,
    pub nodes: usize,
}

#[derive(Debug, Serialize)]
pub struct PeerStatus {
    pub addr: String,
    pub last_sync: Option<String>,
    /// When `serve` tries an unreachable peer next.
    pub next_attempt: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CaseStatus {
    pub id: String,
    pub title: String,
    pub members: usize,
    pub logs: Vec<LogStatus>,
    pub frozen: Vec<FrozenLog>,
    pub built_on_frozen: Vec<BuiltOnFrozen>,
    /// Entries that wait for entries they build on.
    pub waiting: u64,
    /// Parts of entries held here without their bytes: records under H2
    /// whose originator has not consented that this node hold them.
    pub withheld_parts: u64,
}

/// One author's log in a case: its last entry.
#[derive(Debug, Serialize)]
pub struct LogStatus {
    pub author: String,
    /// The author's name if it is a member ("" otherwise).
    pub name: String,
    pub seq: u64,
    pub head: String,
}

/// A log frozen by a proved equivocation.
#[derive(Debug, Serialize)]
pub struct FrozenLog {
    pub author: String,
    pub frozen_before_seq: u64,
}

/// An entry that built on a frozen log: its dependent changes do not apply.
#[derive(Debug, Serialize)]
pub struct BuiltOnFrozen {
    pub author: String,
    pub seq: u64,
    pub built_on: String,
}

/// The node's status, for the node's operator, a supervisor or an admin.
/// Reads only; names no record, so it is not a consultation of case data and
/// is not audited.
pub fn status(node: &Node, actor: &crate::access::Actor) -> Result<Status> {
    actor.require(crate::access::Need::Node)?;
    let conn = node.store.conn();
    let peer = |k: &[u8; 32]| peer_id_of(k).unwrap_or_default();
    let mut cases_out = Vec::new();
    for c in cases::list(node)? {
        let logs = store::log_heads(conn, c.case_ref)?
            .into_iter()
            .map(|(author, seq, hash)| LogStatus {
                author: peer(&author),
                name: c
                    .state
                    .members
                    .get(&author)
                    .map(|m| m.card.name.clone())
                    .unwrap_or_default(),
                seq,
                head: hash.to_hex(),
            })
            .collect();
        let frozen = store::equivocations(conn, c.case_ref)?
            .into_iter()
            .map(|q| FrozenLog {
                author: peer(&q.author),
                frozen_before_seq: q.seq,
            })
            .collect();
        let built_on_frozen = crate::ingest::built_on_frozen(conn, &c)?
            .into_iter()
            .map(|b| BuiltOnFrozen {
                author: peer(&b.author),
                seq: b.seq,
                built_on: peer(&b.on),
            })
            .collect();
        cases_out.push(CaseStatus {
            id: c.id.to_string(),
            title: c.meta.title.clone(),
            members: c.state.members.len(),
            logs,
            frozen,
            built_on_frozen,
            waiting: store::waiting_count(conn, c.case_ref)?,
            withheld_parts: store::withheld_count(conn, c.case_ref)?,
        });
    }
    Ok(Status {
        peer_id: node.card.peer_id(),
        name: node.card.name.clone(),
        federation: trust::load(conn)?.map(|f| FederationStatus {
            id: f.federation.to_hex(),
            name: f.name.clone(),
            nodes: f.nodes.len(),
        }),
        peers: store::peers(conn)?
            .into_iter()
            .map(|p| PeerStatus {
                addr: p.addr,
                last_sync: p.last_sync,
                next_attempt: p.next_dial,
            })
            .collect(),
        cases: cases_out,
    })
}

/// A value that changes whenever an entry, control operation or registry
/// statement is stored, by any process on this data dir: front ends poll it
/// to refresh what they show (the web UI's live updates). It says only that
/// something changed, nothing of what.
pub fn change_marker(node: &Node) -> Result<(i64, i64, i64)> {
    Ok(store::change_marker(node.store.conn())?)
}
