//! Answering a peer's requests (on a blocking thread, with a store
//! connection of its own), and logging what it sent that was refused.

use super::*;

/// How often a peer's refused items are logged in full: after that, within
/// the interval, they are counted, and the count is logged with the next
/// refusal after it (every refusal is in the audit log all the same).
pub(super) const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Reasons logged for one delivery; the rest as a count.
pub(super) const REASONS_LOGGED: usize = 3;

/// One peer's interval: its start (None: none running) and the count in it.
pub(super) type Window = (Option<Instant>, usize);

/// A count per peer over an interval. Bounded: past 4,096 peers, ended
/// intervals go.
pub(super) struct PeerWindows {
    interval: Duration,
    map: std::sync::Mutex<Option<HashMap<String, Window>>>,
}

impl PeerWindows {
    const fn new(interval: Duration) -> PeerWindows {
        PeerWindows {
            interval,
            map: std::sync::Mutex::new(None),
        }
    }

    /// `f` gets `peer`'s window, whether its interval has ended (or never
    /// began), and now.
    fn with<T>(&self, peer: &PeerId, f: impl FnOnce(&mut Window, bool, Instant) -> T) -> T {
        let now = Instant::now();
        let running =
            |at: &Option<Instant>| at.is_some_and(|t| now.duration_since(t) < self.interval);
        let mut guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let map = guard.get_or_insert_with(HashMap::new);
        if map.len() > 4096 {
            map.retain(|_, (at, _)| running(at));
        }
        let entry = map.entry(peer.to_base58()).or_insert((None, 0));
        let ended = !running(&entry.0);
        f(entry, ended, now)
    }
}

/// Per peer: when its refusals were last logged, and how many went unlogged.
pub(super) static REJECTIONS: PeerWindows = PeerWindows::new(REJECTION_LOG_INTERVAL);

/// Logs what was refused from `peer`, bounded: a hostile peer that sends
/// thousands of bad items costs a few lines per interval, not one each.
pub(super) fn log_rejections(peer: &PeerId, rejected: &[String]) {
    if rejected.is_empty() {
        return;
    }
    let unlogged = REJECTIONS.with(peer, |w, ended, now| {
        if !ended {
            w.1 += rejected.len();
            return None;
        }
        Some(std::mem::replace(w, (Some(now), 0)).1)
    });
    let Some(unlogged) = unlogged else { return };
    if unlogged > 0 {
        warn(format!(
            "rejected {unlogged} more item(s) from {peer} in the last {} s (see `casesync audit list --action sync.reject`)",
            REJECTION_LOG_INTERVAL.as_secs()
        ));
    }
    for x in rejected.iter().take(REASONS_LOGGED) {
        warn(format!("rejected from {peer}: {x}"));
    }
    if rejected.len() > REASONS_LOGGED {
        warn(format!(
            "rejected from {peer}: {} more in the same delivery",
            rejected.len() - REASONS_LOGGED
        ));
    }
}

/// Refused items one peer may send in an interval; past it, the delivery that
/// crossed the line is answered as a protocol violation and the peer is
/// disconnected (an honest peer sends few items its partners refuse: entries
/// past a removal's cut, what it received before a revocation).
pub(super) const MAX_REFUSED_PER_INTERVAL: usize = 20_000;
pub(super) const REFUSAL_INTERVAL: Duration = Duration::from_secs(60);

/// Per peer: the start of its current interval and the items refused in it.
pub(super) static REFUSED: PeerWindows = PeerWindows::new(REFUSAL_INTERVAL);

/// Counts `n` refused items from `peer`; the total in the current interval if
/// it is past [`MAX_REFUSED_PER_INTERVAL`] (a fresh interval then begins).
pub(super) fn too_many_refused(peer: &PeerId, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    REFUSED.with(peer, |w, ended, now| {
        if ended {
            *w = (Some(now), 0);
        }
        w.1 += n;
        (w.1 > MAX_REFUSED_PER_INTERVAL).then(|| std::mem::replace(w, (Some(now), 0)).1)
    })
}

/// Answers one request from `peer` (already connected, so enrolled), and says
/// whether the request broke the protocol (the peer is then disconnected).
pub fn answer(
    node: &Node,
    actor: &Actor,
    peer: &PeerId,
    request: SyncRequest,
) -> (SyncResponse, Option<String>) {
    match answer_inner(node, actor, peer, request) {
        Ok(r) => (r, None),
        Err(NodeError::Protocol(why)) => (
            SyncResponse::Refused {
                reason: format!("protocol violation: {why}"),
            },
            Some(why),
        ),
        Err(e) => (
            SyncResponse::Refused {
                reason: e.to_string(),
            },
            None,
        ),
    }
}

pub(super) fn same_federation(theirs: &[u8], ours: &[u8]) -> Result<()> {
    if theirs == ours {
        Ok(())
    } else {
        Err(NodeError::Protocol(
            "the request names another federation".into(),
        ))
    }
}

pub(super) fn answer_inner(
    node: &Node,
    actor: &Actor,
    peer: &PeerId,
    request: SyncRequest,
) -> Result<SyncResponse> {
    let (fed, key) = federation_and_peer(node, peer)?;
    let Some(key) = key else {
        warn(format!(
            "refused a request from {peer}: not an enrolled node"
        ));
        return Ok(SyncResponse::Refused {
            reason: "not an enrolled node".into(),
        });
    };
    let conn = node.store.conn();
    match request {
        SyncRequest::Digest {
            federation,
            digest,
            audit_head,
        } => {
            same_federation(&federation, &fed)?;
            let note = audit::note_peer_head(node, actor, &key, &audit_head)?;
            if let Some(alarm) = note.alarm {
                warn(alarm);
            }
            let mine = sync::digest(node, conn, &key)?;
            Ok(SyncResponse::Digest {
                same: casesync_crypto::hash::ct_eq(&mine.0, &digest),
                your_earlier_head: note.earlier,
            })
        }
        SyncRequest::Pull {
            federation,
            mut registry,
            mut have,
        } => {
            same_federation(&federation, &fed)?;
            let (items, _) = items_to_send(
                node,
                actor,
                peer,
                &key,
                &mut have,
                &mut registry,
                sync::Scope::Every,
            )?;
            let mine = sync::summary(node, conn, Some(&key))?;
            Ok(SyncResponse::Items {
                body: items.body.encode(),
                more: items.more,
                registry: sync::registry_digest(conn)?.0.to_vec(),
                have: mine,
            })
        }
        SyncRequest::Deliver { federation, body } => {
            same_federation(&federation, &fed)?;
            let body = BundleBody::decode_within(&body, &MESSAGE_LIMITS)
                .map_err(|e| NodeError::Protocol(format!("undecodable delivery: {e}")))?;
            // A push the peer can send again: visible now, durable with the
            // next synced commit (`Store::write_unsynced`).
            let r = node
                .store
                .write_unsynced(|tx| receive(node, actor, tx, &body, peer, &key))?;
            log_rejections(peer, &r.rejected);
            if let Some(total) = too_many_refused(peer, r.rejected.len()) {
                return Err(NodeError::Protocol(format!(
                    "{total} refused items in under {} s (at most {MAX_REFUSED_PER_INTERVAL})",
                    REFUSAL_INTERVAL.as_secs()
                )));
            }
            Ok(SyncResponse::Accepted {
                entries: r.entries as u64,
                rejected: r.rejected.len() as u64,
            })
        }
        SyncRequest::MatchEvaluate {
            federation,
            blinded,
        } => {
            same_federation(&federation, &fed)?;
            crate::deconfliction::answer_evaluate(node, actor, peer, &blinded)
        }
        SyncRequest::MatchFollowUp {
            federation,
            request,
            signature,
        } => {
            same_federation(&federation, &fed)?;
            crate::deconfliction::answer_follow_up(node, actor, peer, &key, &request, &signature)
        }
        SyncRequest::MatchSet { federation, after } => {
            same_federation(&federation, &fed)?;
            crate::deconfliction::answer_set(node, peer, &after)
        }
        SyncRequest::Refill {
            federation,
            case,
            wants,
        } => {
            same_federation(&federation, &fed)?;
            if wants.len() > sync::MAX_REFILL {
                return Err(NodeError::Protocol(format!(
                    "a refill asks for at most {} entries",
                    sync::MAX_REFILL
                )));
            }
            let items = node.store.write(|tx| {
                let items = sync::refill_for(node, tx, &key, &case, &wants)?;
                items.audit(node, actor, tx, &peer.to_base58())?;
                Ok::<_, NodeError>(items)
            })?;
            Ok(SyncResponse::Refilled {
                body: items.body.encode(),
            })
        }
        SyncRequest::Provenance {
            federation,
            report,
            signature,
        } => {
            same_federation(&federation, &fed)?;
            Ok(
                match crate::provenance::answer_report(
                    node,
                    actor,
                    &peer.to_base58(),
                    &key,
                    &report,
                    &signature,
                )? {
                    Ok(items) => SyncResponse::ProvenanceFiled { items },
                    Err(reason) => SyncResponse::Refused { reason },
                },
            )
        }
    }
}

/// The next batch of items `peer` lacks ([`sync::items_for`]). What is sent is
/// a disclosure: it is audited in the transaction that reads it, before it
/// leaves (an empty batch leaves no entry).
pub(super) fn items_to_send(
    node: &Node,
    actor: &Actor,
    peer: &PeerId,
    key: &[u8; 32],
    theirs: &mut Vec<CaseHave>,
    their_registry: &mut Vec<u8>,
    scope: sync::Scope,
) -> Result<(sync::Items, store::ChangeMark)> {
    node.store.write(|tx| {
        let (items, mark) = sync::items_for(
            node,
            tx,
            key,
            theirs,
            their_registry,
            RESPONSE_BUDGET,
            scope,
        )?;
        items.audit(node, actor, tx, &peer.to_base58())?;
        Ok((items, mark))
    })
}

/// Ingests what `peer` sent and audits it, in the caller's transaction.
pub(super) fn receive(
    node: &Node,
    actor: &Actor,
    tx: &rusqlite::Connection,
    body: &BundleBody,
    peer: &PeerId,
    key: &[u8; 32],
) -> Result<ingest::IngestReport> {
    let who = peer.to_base58();
    let r = ingest::ingest(node, tx, body, &who, key)?;
    r.audit(node, actor, tx, Action::SyncReceive, &who)?;
    Ok(r)
}
