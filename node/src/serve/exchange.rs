//! One exchange with a peer: a digest, then pulls and deliveries.

use super::*;

pub(super) fn out_of_turn(peer: &PeerId) -> NodeError {
    NodeError::Io(format!("{peer} answered out of turn"))
}

pub(super) async fn ask(
    client: &Client,
    peer: PeerId,
    request: SyncRequest,
) -> Result<SyncResponse> {
    client
        .request(peer, request)
        .await
        .map_err(|e| NodeError::Io(format!("sync with {peer}: {e}")))
}

/// Pulls, batch by batch, what `peer` has that this node lacks. Returns how many
/// entries were new and what the peer holds (its summary and registry count).
pub(super) async fn pull(
    node: &Node,
    actor: &Actor,
    client: &Client,
    peer: PeerId,
    fed: &[u8],
    key: &[u8; 32],
    progress: &Progress,
) -> Result<(u64, Known)> {
    let mut received = 0u64;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let conn = node.store.conn();
        let resp = ask(
            client,
            peer,
            SyncRequest::Pull {
                federation: fed.to_vec(),
                registry: sync::registry_digest(conn)?.0.to_vec(),
                have: sync::summary(node, conn, Some(key))?,
            },
        )
        .await?;
        match resp {
            SyncResponse::Items {
                body,
                more,
                registry,
                have,
            } => {
                let body = BundleBody::decode_within(&body, &MESSAGE_LIMITS)?;
                let r = node
                    .store
                    .write(|tx| receive(node, actor, tx, &body, &peer, key))?;
                log_rejections(&peer, &r.rejected);
                received += r.entries as u64;
                progress.moved(peer, r.entries as u64, 0);
                // A peer that keeps saying "more" without sending anything new is
                // not making progress: stop rather than loop.
                let progress = r.entries + r.control_ops + r.registry_ops > 0;
                if !more || (!progress && rounds > 1) || rounds > 10_000 {
                    return Ok((
                        received,
                        Known {
                            theirs: have,
                            registry,
                            complete_at: None,
                        },
                    ));
                }
            }
            SyncResponse::Refused { reason } => {
                return Err(NodeError::Refused(format!("{peer} refused: {reason}")));
            }
            _ => return Err(out_of_turn(&peer)),
        }
    }
}

/// A request answered off the network task: who asked, where the answer goes,
/// and (unless the blocking task failed) the store handle back, the answer and
/// whether the request broke the protocol.
pub(super) type Answered = (
    PeerId,
    libp2p::request_response::ResponseChannel<crate::net::codec::Frame<SyncResponse>>,
    Option<(Node, SyncResponse, Option<String>)>,
);

/// What this node knows a peer holds: the summary and registry digest it sent
/// in the last pull, advanced past everything delivered to it since.
pub struct Known {
    pub theirs: Vec<CaseHave>,
    pub registry: Vec<u8>,
    /// The store's mark when a delivery last left the peer holding all it
    /// may hold of this node's store (none before one did): the next push
    /// looks only at cases changed since ([`sync::Scope::ChangedSince`]).
    pub complete_at: Option<store::ChangeMark>,
}

/// How an exchange starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Anti-entropy: compares digests first and stops there if they match,
    /// and only pulls.
    Probe,
    /// After a local write: skips the digest, since something changed, and
    /// delivers; given what the peer is `known` to hold, it skips the pull
    /// too and delivers at once (one round trip: the peer pushes its own
    /// writes, and anti-entropy repairs whatever the knowledge missed).
    Push,
    /// `sync --once`: compares digests first as a probe does, and stops
    /// there if they match; otherwise pulls and delivers.
    DigestFirst,
}

/// Pulls what `peer` has that this node lacks, then delivers what it lacks,
/// as `start` says; what moves is counted in `progress` as it goes.
/// Returns what the peer is known to hold afterwards.
pub async fn exchange(
    node: &Node,
    actor: &Actor,
    client: &Client,
    peer: PeerId,
    start: Start,
    known: Option<Known>,
    progress: &Progress,
) -> Result<(Exchange, Option<Known>)> {
    let probe = start == Start::Probe;
    let (fed, key) = federation_and_peer(node, &peer)?;
    let key = key.ok_or_else(|| NodeError::Refused(format!("{peer} is not an enrolled node")))?;
    let in_sync = || Exchange {
        peer: peer.to_base58(),
        received: 0,
        sent: 0,
        error: None,
        answered: true,
    };
    if start != Start::Push {
        let digest = sync::digest(node, node.store.conn(), &key)?;
        match ask(
            client,
            peer,
            SyncRequest::Digest {
                federation: fed.clone(),
                digest: digest.0.to_vec(),
                audit_head: audit::own_head(node.store.conn())?,
            },
        )
        .await?
        {
            SyncResponse::Digest {
                same,
                your_earlier_head,
            } => {
                progress.moved(peer, 0, 0);
                // A partner saw this node's audit log further than it is: the
                // store went back (a copy put back in place, a disk snapshot
                // rolled back). New chains, before anything more is written.
                if !your_earlier_head.is_empty()
                    && let Some(line) =
                        crate::log::notice_rollback(node, actor, &your_earlier_head, &peer)?
                {
                    warn(line);
                }
                // Once per anti-entropy round (and `sync --once`), after the
                // digests crossed (so a partner's rollback notice comes
                // first): receipts of the peer's records held here when due,
                // and parts withheld from this node that it may now hold.
                // Never in the way of the exchange itself: a failure is
                // logged, and the next round retries.
                if let Err(e) = report_provenance(node, actor, client, peer, &key, &fed).await {
                    warn(format!("provenance report to {peer}: {e}"));
                }
                if let Err(e) = refill(node, actor, client, peer, &key, &fed).await {
                    warn(format!("asking {peer} for withheld parts: {e}"));
                }
                if same {
                    return Ok((in_sync(), known));
                }
            }
            SyncResponse::Refused { reason } => {
                return Err(NodeError::Refused(format!("{peer} refused: {reason}")));
            }
            _ => return Err(out_of_turn(&peer)),
        }
    }
    let push_to_known = if probe { None } else { known };
    let (received, mut known) = match push_to_known {
        Some(k) => (0, k),
        None => pull(node, actor, client, peer, &fed, &key, progress).await?,
    };
    let mut sent = 0u64;
    // An anti-entropy round only pulls: the peer runs its own rounds and pulls
    // what it lacks, and delivering too would send the same entries twice while
    // it does. A push (after a local write) and `sync --once` also deliver.
    loop {
        if probe {
            break;
        }
        let scope = match known.complete_at {
            Some(mark) => sync::Scope::ChangedSince(mark),
            None => sync::Scope::Every,
        };
        let (sync::Items { body, more, .. }, mark) = items_to_send(
            node,
            actor,
            &peer,
            &key,
            &mut known.theirs,
            &mut known.registry,
            scope,
        )?;
        if body.cases.is_empty() && body.registry_ops.is_empty() {
            known.complete_at = Some(mark);
            break;
        }
        let n: usize = body.cases.iter().map(|c| c.entries.len()).sum();
        match ask(
            client,
            peer,
            SyncRequest::Deliver {
                federation: fed.clone(),
                body: body.encode(),
            },
        )
        .await?
        {
            SyncResponse::Accepted { entries, .. } => {
                sent += entries.min(n as u64);
                progress.moved(peer, 0, entries.min(n as u64));
            }
            SyncResponse::Refused { reason } => {
                return Err(NodeError::Refused(format!("{peer} refused: {reason}")));
            }
            _ => return Err(out_of_turn(&peer)),
        }
        if !more {
            // The peer now holds all it may of what the store held at `mark`.
            known.complete_at = Some(mark);
            break;
        }
    }
    let (_, now) = crate::clock::now();
    let _ = store::peer_synced(node.store.conn(), &peer.to_base58(), &now);
    Ok((
        Exchange {
            peer: peer.to_base58(),
            received,
            sent,
            error: None,
            answered: true,
        },
        Some(known),
    ))
}

/// Sends `peer` the storage and read receipts due to it as originator
/// (`provenance::due_report`), if any.
async fn report_provenance(
    node: &Node,
    actor: &Actor,
    client: &Client,
    peer: PeerId,
    key: &[u8; 32],
    federation: &[u8],
) -> Result<()> {
    let Some(out) = crate::provenance::due_report(node, &peer.to_base58(), key)? else {
        return Ok(());
    };
    match ask(
        client,
        peer,
        SyncRequest::Provenance {
            federation: federation.to_vec(),
            report: out.report.clone(),
            signature: out.signature.clone(),
        },
    )
    .await?
    {
        SyncResponse::ProvenanceFiled { items } => {
            crate::provenance::reported(node, actor, &peer.to_base58(), &out, items)
        }
        SyncResponse::Refused { reason } => Err(NodeError::Refused(format!(
            "{peer} refused the report: {reason}"
        ))),
        _ => Err(out_of_turn(&peer)),
    }
}

/// Asks `peer` again for the entries held here without parts this node may
/// now hold (`sync::refill_wants`), and takes in what it sends.
async fn refill(
    node: &Node,
    actor: &Actor,
    client: &Client,
    peer: PeerId,
    key: &[u8; 32],
    federation: &[u8],
) -> Result<()> {
    let wants = sync::refill_wants(node, node.store.conn(), key)?;
    for (case, wants) in wants {
        let resp = ask(
            client,
            peer,
            SyncRequest::Refill {
                federation: federation.to_vec(),
                case: case.0.to_vec(),
                wants,
            },
        )
        .await?;
        match resp {
            SyncResponse::Refilled { body } => {
                let body = BundleBody::decode_within(&body, &MESSAGE_LIMITS)?;
                let r = node
                    .store
                    .write(|tx| receive(node, actor, tx, &body, &peer, key))?;
                log_rejections(&peer, &r.rejected);
            }
            SyncResponse::Refused { reason } => {
                return Err(NodeError::Refused(format!("{peer} refused: {reason}")));
            }
            _ => return Err(out_of_turn(&peer)),
        }
    }
    Ok(())
}
