//! Evidence pieces over the network, beside sync and never in its way: a
//! protocol of their own (`/casesync/pieces/1`), answers on their own
//! blocking threads (at most [`PIECE_ANSWERS_AT_ONCE`]), and one fetch
//! round at a time, asking each member for at most 8 pieces per request
//! while the last pieces are stored.

use std::cell::Cell;
use std::rc::Rc;

use casesync_crypto::Hash;
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;

use super::*;
use crate::evidence;
use crate::net::codec::Frame;
use crate::net::protocol::{PieceRequest, PieceResponse};

/// Piece requests answered at once (each reads up to 8 MiB).
pub(super) const PIECE_ANSWERS_AT_ONCE: usize = 2;

/// Whether `serve` fetches every file's pieces, or only those someone tried
/// to open (`evidence get`, a download): manifests are always fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchPolicy {
    Eager,
    OnOpen,
}

/// Answers a peer's request for pieces on a blocking thread.
pub(super) fn answer(
    node: &Node,
    client: &Client,
    slots: &Rc<tokio::sync::Semaphore>,
    peer: PeerId,
    request: PieceRequest,
    channel: ResponseChannel<Frame<PieceResponse>>,
) -> Result<()> {
    let handle = node.try_clone()?;
    let client = client.clone();
    let slots = slots.clone();
    tokio::task::spawn_local(async move {
        let _permit = slots.acquire().await;
        let done =
            tokio::task::spawn_blocking(move || evidence::answer_pieces(&handle, &peer, request))
                .await;
        let (response, violation) = match done {
            Ok(Ok(r)) => (r, None),
            Ok(Err(NodeError::Protocol(why))) => (
                PieceResponse::Refused {
                    reason: format!("protocol violation: {why}"),
                },
                Some(why),
            ),
            Ok(Err(e)) => (
                PieceResponse::Refused {
                    reason: e.to_string(),
                },
                None,
            ),
            Err(_) => (
                PieceResponse::Refused {
                    reason: "the node could not answer; try again".into(),
                },
                None,
            ),
        };
        client.respond_pieces(channel, response).await;
        if let Some(why) = violation {
            warn(format!(
                "disconnected {peer}: it broke the pieces protocol ({why})"
            ));
            client.disconnect(peer).await;
        }
    });
    Ok(())
}

/// Pieces answered by one member, to be stored.
type Answered = (PeerId, Vec<Hash>, Vec<serde_bytes::ByteBuf>);

/// One fetch round: what this node lacks, asked of connected members, until
/// nothing more can be had now. `running` is cleared when it ends.
///
/// Two stages overlap: while the pieces of one pass are hashed, written and
/// noted (on a blocking thread, with a store handle of its own), the next
/// pass is planned (leaving those pieces out) and asked for.
pub(super) async fn fetch(
    node: Node,
    actor: std::sync::Arc<Actor>,
    client: Client,
    connected: Vec<PeerId>,
    policy: FetchPolicy,
    running: Rc<Cell<bool>>,
) -> Vec<Node> {
    let federation = match trust::load(node.store.conn()) {
        Ok(Some(st)) => st.federation.0.to_vec(),
        _ => {
            running.set(false);
            return vec![node];
        }
    };
    let planner = std::sync::Arc::new(std::sync::Mutex::new(node));
    let mut storer: Option<std::sync::Arc<std::sync::Mutex<Node>>> = None;
    let mut storing: Option<(Vec<Hash>, tokio::task::JoinHandle<usize>)> = None;
    // Bounded: a pass asks each peer once; a pass that gets nothing, or
    // stores nothing of what it got, ends the round.
    for _ in 0..100_000 {
        let n = planner.clone();
        let peers = connected.clone();
        let in_flight = storing.as_ref().map(|s| s.0.clone()).unwrap_or_default();
        let planned = tokio::task::spawn_blocking(move || {
            let n = n.lock().unwrap_or_else(|p| p.into_inner());
            evidence::plan(&n, &peers, policy == FetchPolicy::Eager, &in_flight)
        })
        .await;
        let plan = match planned {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                warn(format!("evidence: cannot plan what to fetch: {e}"));
                break;
            }
            Err(_) => break,
        };
        if plan.is_empty() {
            // Nothing new to ask while the last pass is stored: once it is,
            // plan again (what it stored may have brought manifests).
            let stored = match storing.take() {
                Some((_, stored)) => stored.await.unwrap_or(0),
                None => 0,
            };
            if stored > 0 {
                continue;
            }
            break;
        }
        let answered = ask(&client, &federation, plan).await;
        let last_stored = match storing.take() {
            Some((_, stored)) => stored.await.unwrap_or(0),
            None => usize::MAX,
        };
        if answered
            .iter()
            .all(|(_, _, got)| got.iter().all(|p| p.is_empty()))
        {
            break;
        }
        let handle = match &storer {
            Some(h) => h.clone(),
            None => {
                let cloned = planner
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .try_clone();
                match cloned {
                    Ok(h) => storer
                        .insert(std::sync::Arc::new(std::sync::Mutex::new(h)))
                        .clone(),
                    Err(e) => {
                        warn(format!("evidence: cannot open the store to fetch: {e}"));
                        break;
                    }
                }
            }
        };
        let hashes: Vec<Hash> = answered.iter().flat_map(|(_, h, _)| h.clone()).collect();
        let actor = actor.clone();
        storing = Some((
            hashes,
            tokio::task::spawn_blocking(move || {
                let n = handle.lock().unwrap_or_else(|p| p.into_inner());
                store(&n, &actor, answered)
            }),
        ));
        if last_stored == 0 {
            break;
        }
    }
    if let Some((_, stored)) = storing.take() {
        let _ = stored.await;
    }
    running.set(false);
    // The store handles back to the caller's spares: every blocking task
    // that held one has been awaited, so each is here alone.
    [Some(planner), storer]
        .into_iter()
        .flatten()
        .filter_map(|h| std::sync::Arc::try_unwrap(h).ok())
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

/// Asks each member of the plan for its pieces at once (one request per
/// member: more in flight raised the sender's memory without speeding the
/// fetch, see BENCHMARKS.md); what each answered in full.
async fn ask(client: &Client, federation: &[u8], plan: Vec<(PeerId, Vec<Hash>)>) -> Vec<Answered> {
    let mut requests = Vec::new();
    for (peer, hashes) in plan {
        for chunk in hashes.chunks(crate::net::protocol::MAX_PIECES_PER_REQUEST) {
            requests.push((peer, chunk.to_vec()));
        }
    }
    let answers = futures::future::join_all(requests.iter().map(|(peer, hashes)| {
        client.request_pieces(
            *peer,
            PieceRequest::Get {
                federation: federation.to_vec(),
                hashes: hashes
                    .iter()
                    .map(|h| serde_bytes::ByteBuf::from(h.0.to_vec()))
                    .collect(),
            },
        )
    }))
    .await;
    let mut out = Vec::new();
    for ((peer, hashes), answer) in requests.into_iter().zip(answers) {
        match answer {
            Ok(PieceResponse::Pieces { pieces }) if pieces.len() == hashes.len() => {
                out.push((peer, hashes, pieces))
            }
            Ok(PieceResponse::Pieces { .. }) => warn(format!(
                "evidence: {peer} answered with the wrong number of pieces"
            )),
            Ok(PieceResponse::Refused { reason }) => {
                warn(format!("evidence: {peer} refused pieces: {reason}"))
            }
            Err(e) => warn(format!("evidence: {peer} did not send pieces: {e}")),
        }
    }
    out
}

/// Stores what members sent (on a blocking thread); how many pieces.
fn store(node: &Node, actor: &Actor, answered: Vec<Answered>) -> usize {
    let mut stored = 0;
    for (peer, hashes, got) in answered {
        match evidence::store_fetched(node, actor, &peer, &hashes, &got) {
            Ok((ok, bad)) => {
                stored += ok;
                if bad > 0 {
                    warn(format!(
                        "evidence: refused {bad} piece(s) from {peer}: their bytes do not match their hashes"
                    ));
                }
            }
            Err(e) => warn(format!("evidence: cannot store pieces from {peer}: {e}")),
        }
    }
    stored
}
