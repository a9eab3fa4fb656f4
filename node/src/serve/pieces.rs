//! Evidence pieces over the network, beside sync and never in its way: a
//! protocol of their own (`/casesync/pieces/1`), answers on their own
//! blocking threads (at most [`PIECE_ANSWERS_AT_ONCE`]), and one fetch
//! round at a time, asking each member for at most 8 pieces per request.

use std::cell::Cell;
use std::rc::Rc;

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

/// One fetch round: what this node lacks, asked of connected members, until
/// nothing more can be had now. `running` is cleared when it ends.
pub(super) async fn fetch(
    node: Node,
    actor: std::sync::Arc<Actor>,
    client: Client,
    connected: Vec<PeerId>,
    policy: FetchPolicy,
    running: Rc<Cell<bool>>,
) {
    let node = std::sync::Arc::new(std::sync::Mutex::new(node));
    let federation = {
        let n = node.lock().unwrap_or_else(|p| p.into_inner());
        match trust::load(n.store.conn()) {
            Ok(Some(st)) => st.federation.0.to_vec(),
            _ => {
                running.set(false);
                return;
            }
        }
    };
    // Bounded: each pass asks each peer once; a pass that stores nothing ends it.
    for _ in 0..10_000 {
        let n = node.clone();
        let peers = connected.clone();
        let planned = tokio::task::spawn_blocking(move || {
            let n = n.lock().unwrap_or_else(|p| p.into_inner());
            evidence::plan(&n, &peers, policy == FetchPolicy::Eager)
        })
        .await;
        let plan = match planned {
            Ok(Ok(p)) if !p.is_empty() => p,
            Ok(Err(e)) => {
                warn(format!("evidence: cannot plan what to fetch: {e}"));
                break;
            }
            _ => break,
        };
        // Every request of the pass at once (one per member: more in flight
        // raised the sender's memory without speeding the fetch, see
        // BENCHMARKS.md), then stored in turn.
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
                    federation: federation.clone(),
                    hashes: hashes
                        .iter()
                        .map(|h| serde_bytes::ByteBuf::from(h.0.to_vec()))
                        .collect(),
                },
            )
        }))
        .await;
        let mut progress = 0;
        for ((peer, hashes), answer) in requests.into_iter().zip(answers) {
            let got = match answer {
                Ok(PieceResponse::Pieces { pieces }) if pieces.len() == hashes.len() => pieces,
                Ok(PieceResponse::Pieces { .. }) => {
                    warn(format!(
                        "evidence: {peer} answered with the wrong number of pieces"
                    ));
                    continue;
                }
                Ok(PieceResponse::Refused { reason }) => {
                    warn(format!("evidence: {peer} refused pieces: {reason}"));
                    continue;
                }
                Err(e) => {
                    warn(format!("evidence: {peer} did not send pieces: {e}"));
                    continue;
                }
            };
            let n = node.clone();
            let actor = actor.clone();
            let stored = tokio::task::spawn_blocking(move || {
                let n = n.lock().unwrap_or_else(|p| p.into_inner());
                evidence::store_fetched(&n, &actor, &peer, &hashes, &got)
            })
            .await;
            match stored {
                Ok(Ok((ok, bad))) => {
                    progress += ok;
                    if bad > 0 {
                        warn(format!(
                            "evidence: refused {bad} piece(s) from {peer}: their bytes do not match their hashes"
                        ));
                    }
                }
                Ok(Err(e)) => warn(format!("evidence: cannot store pieces from {peer}: {e}")),
                Err(_) => {}
            }
        }
        if progress == 0 {
            break;
        }
    }
    running.set(false);
}
