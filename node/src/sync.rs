//! Sync planning over the store: what this node holds of each shared case, and
//! which items a peer lacks given its summary. Pure decisions over stored data;
//! the network (`net`) only carries the messages.

use casesync_crypto::Hash;
use casesync_crypto::hash::sha256;
use casesync_schema::CaseId;
use casesync_schema::authority;
use casesync_schema::bundle::{BundleBody, CaseItems};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};

use crate::audit::{self, Action};
use crate::ingest::MAX_CONTROL_OPS_PER_MESSAGE;
use crate::net::protocol::{
    CaseHave, LogHave, MAX_CASES, MAX_CASES_PER_MESSAGE, MAX_ENTRIES_PER_MESSAGE, MAX_HEADS,
    MAX_LOGS,
};
use crate::{Node, Result, cases, store};
use casesync_schema::entry::{LogEntry, RecordTag, chain_base, chain_of};

/// What this node holds of one case it shares with a peer.
struct Held {
    case: [u8; 16],
    /// Digest of the set of control operations held.
    control: Hash,
    control_heads: Vec<Hash>,
    /// Each chain's (author key, last seq, hash of that entry) of every
    /// author's log, ordered by author and seq.
    heads: Vec<([u8; 32], u64, Hash)>,
    /// Logs frozen after a proved equivocation: (author, frozen before seq).
    frozen: Vec<([u8; 32], u64)>,
}

/// What this node holds of every case (or only those `peer` is a member of).
fn held(node: &Node, conn: &Connection, peer: Option<&[u8; 32]>) -> Result<Vec<Held>> {
    held_of(node, conn, peer, cases::list(node)?)
}

/// [`held`] of `cases` only.
fn held_of(
    node: &Node,
    conn: &Connection,
    peer: Option<&[u8; 32]>,
    cases: Vec<cases::Case>,
) -> Result<Vec<Held>> {
    let mut out = Vec::new();
    let registry = match peer {
        Some(_) => crate::trust::load(conn)?,
        None => None,
    };
    for c in cases {
        if let Some(p) = peer
            && c.state.role_of(p).is_none()
        {
            continue;
        }
        let mut heads = store::log_heads(conn, c.case_ref)?;
        // For a peer: only what it may hold (handling), so that a log held
        // back from it does not make every round look out of sync.
        if let Some(p) = peer
            && let Some(l) = cases::labels_of(registry.as_ref(), &c, p)
        {
            let withheld = cases::withheld_for(node, conn, &c, &l)?;
            let mut limited = Vec::with_capacity(heads.len());
            for (author, seq, hash) in heads {
                match withheld.get(&author) {
                    // Held back from within this chain, or from an earlier
                    // one (then none of this chain goes).
                    Some(w) if *w <= seq => {
                        if chain_of(*w - 1) == chain_of(seq)
                            && let Some(h) = store::entry_hash_at(conn, c.case_ref, &author, w - 1)?
                        {
                            limited.push((author, w - 1, h));
                        }
                    }
                    _ => limited.push((author, seq, hash)),
                }
            }
            heads = limited;
        }
        out.push(Held {
            case: c.id.0,
            control: c.state.control_digest(),
            control_heads: c.state.graph_heads(),
            heads,
            frozen: store::equivocations(conn, c.case_ref)?
                .into_iter()
                .map(|q| (q.author, q.seq))
                .collect(),
        });
    }
    out.sort_by_key(|h| h.case);
    Ok(out)
}

/// This node's summary of every case it holds (or only those `peer` is a member of).
pub fn summary(node: &Node, conn: &Connection, peer: Option<&[u8; 32]>) -> Result<Vec<CaseHave>> {
    Ok(held(node, conn, peer)?
        .into_iter()
        .map(|h| CaseHave {
            case: h.case.to_vec(),
            control: h.control.0.to_vec(),
            control_heads: h
                .control_heads
                .iter()
                .map(|x| serde_bytes::ByteBuf::from(x.0.to_vec()))
                .collect(),
            logs: h
                .heads
                .into_iter()
                .map(|(author, seq, hash)| LogHave {
                    author: author.to_vec(),
                    seq,
                    head: hash.0.to_vec(),
                })
                .collect(),
            frozen: h
                .frozen
                .into_iter()
                .map(|(author, seq)| LogHave {
                    author: author.to_vec(),
                    seq,
                    head: Vec::new(),
                })
                .collect(),
        })
        .collect())
}

/// One hash of the set of registry statements this node holds: peers compare
/// it, never a count (two admins enrolling concurrently hold as many
/// statements, but not the same).
pub fn registry_digest(conn: &Connection) -> Result<Hash> {
    let hashes: Vec<Hash> = store::registry_ops(conn)?
        .into_iter()
        .map(|o| o.hash)
        .collect();
    Ok(authority::set_digest(b"casesync/registry-set/v1", &hashes))
}

/// One hash of the registry and of everything this node holds of the cases it
/// shares with `peer`, heads included. Two nodes that hold the same compute the
/// same digest (each lists the cases the other is a member of, and members are
/// part of what they hold), so an anti-entropy round between in-sync peers is
/// this one digest each way whatever the number of cases.
pub fn digest(node: &Node, conn: &Connection, peer: &[u8; 32]) -> Result<Hash> {
    // It depends on nothing but the store's rows (and who `peer` is), case by
    // case: the parts of the last one are kept with the store's mark, and
    // only the cases changed since are looked at again. A round while
    // nothing changed costs one look at the mark, and after an edit one
    // case, not every case the peer shares.
    let mark = store::change_mark(conn)?;
    let parts = match node.digests.take(peer) {
        Some(c) if c.mark == mark => {
            let d = c.digest;
            node.digests.put(peer, c);
            return Ok(d);
        }
        Some(mut c) if mark.cases_found_since(&c.mark) => {
            let changed = cases::changed_since(node, &c.mark)?;
            for x in &changed {
                c.parts.remove(&x.id.0);
            }
            for h in held_of(node, conn, Some(peer), changed)? {
                c.parts.insert(h.case, digest_part(&h));
            }
            c.parts
        }
        _ => held(node, conn, Some(peer))?
            .iter()
            .map(|h| (h.case, digest_part(h)))
            .collect(),
    };
    let mut w: Vec<u8> = b"casesync/sync-digest/v2".to_vec();
    w.extend_from_slice(&registry_digest(conn)?.0);
    // By case id, as `held` orders them.
    for part in parts.values() {
        w.extend_from_slice(part);
    }
    let digest = sha256(&w);
    node.digests.put(
        peer,
        crate::node::DigestParts {
            mark,
            parts,
            digest,
        },
    );
    Ok(digest)
}

/// What one case adds to a [`digest`].
fn digest_part(h: &Held) -> Vec<u8> {
    let mut w = Vec::with_capacity(64 + h.heads.len() * 72 + h.frozen.len() * 40);
    w.extend_from_slice(&h.case);
    w.extend_from_slice(&h.control.0);
    w.extend_from_slice(&(h.heads.len() as u64).to_be_bytes());
    for (author, seq, hash) in &h.heads {
        w.extend_from_slice(author);
        w.extend_from_slice(&seq.to_be_bytes());
        w.extend_from_slice(&hash.0);
    }
    w.extend_from_slice(&(h.frozen.len() as u64).to_be_bytes());
    for (author, seq) in &h.frozen {
        w.extend_from_slice(author);
        w.extend_from_slice(&seq.to_be_bytes());
    }
    w
}

/// The peer's last seq in `chain` of `author`'s log, and the hash it holds
/// there (the chain's base if it holds none of it).
fn their_head<'a>(have: Option<&'a CaseHave>, author: &[u8; 32], chain: u64) -> (u64, &'a [u8]) {
    have.and_then(|h| {
        h.logs
            .iter()
            .take(MAX_LOGS)
            .find(|l| l.author[..] == author[..] && chain_of(l.seq) == chain)
    })
    .map(|l| (l.seq, &l.head[..]))
    .unwrap_or((chain_base(chain), &[]))
}

/// An entry as it may go to a peer: without the parts of the records
/// `strip` names (under H2, which the peer may not hold). Its head,
/// signature and hash stay, so it verifies and chains as ever.
pub(crate) fn for_peer(bytes: Vec<u8>, strip: &[RecordTag]) -> Vec<u8> {
    if strip.is_empty() {
        return bytes;
    }
    match LogEntry::decode_verified(&bytes) {
        Ok(e) if strip.iter().any(|t| e.holds(t)) => e.without(strip).bytes().to_vec(),
        _ => bytes,
    }
}

/// Which cases a batch of items looks at.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// Every case the peer is a member of.
    Every,
    /// Only the cases changed since the mark (`cases::changed_since`): the
    /// peer is known to hold everything else it may hold, as it was at the
    /// mark (a push after a complete delivery). So a push costs the cases
    /// that changed, not every case the node holds. A new registry
    /// statement, or rows removed, widen it to every case
    /// ([`store::ChangeMark::cases_found_since`]).
    ChangedSince(store::ChangeMark),
}

/// One batch of items for a peer.
pub struct Items {
    pub body: BundleBody,
    /// Whether more remain after this batch.
    pub more: bool,
    /// The log entries in `body`, (case, author, seq), for the audit log.
    pub sent: Vec<(CaseId, [u8; 32], u64)>,
    /// Logs held back from the peer because an entry carries a record whose
    /// releasable_to leaves it out: (case, author, first seq withheld).
    pub withheld: Vec<(CaseId, [u8; 32], u64)>,
}

impl Items {
    /// Items sent to `peer` (a sync exchange): one disclosure per case, naming
    /// every entry sent; call it in the transaction that read them, before they
    /// leave.
    pub fn audit(
        &self,
        node: &Node,
        actor: &crate::audit::Actor,
        tx: &Connection,
        peer: &str,
    ) -> Result<()> {
        audit::disclosed(
            node,
            actor,
            tx,
            Action::SyncSend,
            Some(peer),
            &self.body,
            &self.sent,
        )?;
        audit::withheld(
            node,
            actor,
            tx,
            Action::SyncSend,
            Some(peer),
            &self.withheld,
        )
    }
}

/// Items `peer` lacks of the cases it is a member of (of those `scope`
/// names), given its summary `their`, and the registry statements if the
/// digest of its set (`their_registry`) differs from ours, within `budget`
/// bytes of entries. `their` and `their_registry` are advanced past what is
/// included, so calling again yields the next batch. With the batch, the
/// store's mark it was read at: once a batch comes back without `more`, the
/// peer holds everything up to it. Call it in a transaction, so the batch
/// and its mark are of one state of the store.
pub fn items_for(
    node: &Node,
    conn: &Connection,
    peer: &[u8; 32],
    their: &mut Vec<CaseHave>,
    their_registry: &mut Vec<u8>,
    budget: usize,
    scope: Scope,
) -> Result<(Items, store::ChangeMark)> {
    let mark = store::change_mark(conn)?;
    let mut body = BundleBody {
        registry_ops: Vec::new(),
        cases: Vec::new(),
    };
    let mut used = 0usize;
    // Entries from logs (proofs and fork answers are few and not counted).
    let mut count = 0usize;
    let mut more = false;
    let mut sent = Vec::new();
    let mut withheld_logs = Vec::new();
    let registry = crate::trust::load(conn)?;
    their.truncate(MAX_CASES);
    // Control operations in this message, all cases together
    // (`MESSAGE_LIMITS`).
    let mut control_sent = 0usize;
    let cases = match scope {
        Scope::ChangedSince(since) if mark.cases_found_since(&since) => {
            cases::changed_since(node, &since)?
        }
        _ => cases::list(node)?,
    };
    for c in cases {
        if c.state.role_of(peer).is_none() {
            continue;
        }
        if body.cases.len() >= MAX_CASES_PER_MESSAGE {
            more = true;
            break;
        }
        let idx = their.iter().position(|h| h.case[..] == c.id.0[..]);
        let control = c.state.control_digest();
        // Handling: what of each author's log may go to this peer at all,
        // and the parts of records under H2 it may not hold yet, taken out
        // of every entry (it asks for them again once their originator
        // consents).
        let cases::KeptBack {
            logs: withheld,
            parts: strip,
        } = cases::kept_back_from_peer(node, conn, registry.as_ref(), &c, peer)?;
        let within = |author: &[u8; 32], seq: u64| withheld.get(author).is_none_or(|w| seq < *w);
        let mut items = CaseItems {
            case: CaseId(c.id.0),
            control_ops: Vec::new(),
            entries: Vec::new(),
        };
        // By content: whatever of our control graph is not below the peer's
        // heads, whenever its set differs from ours (equal counts can hide
        // different operations, as when two leads act while apart).
        let same_control = idx.is_some_and(|i| their[i].control[..] == control.0[..]);
        let mut partial_control: Option<Vec<Hash>> = None;
        if !same_control {
            let their_heads: Vec<Hash> = match idx {
                Some(i) if their[i].control_heads.len() <= MAX_HEADS => their[i]
                    .control_heads
                    .iter()
                    .filter_map(|b| <[u8; 32]>::try_from(&b[..]).ok().map(Hash))
                    .collect(),
                _ => Vec::new(),
            };
            let lacking = authority::not_below(&c.state.graph, &their_heads);
            let mut bytes: HashMap<Hash, Vec<u8>> = store::control_ops(conn, c.case_ref)?
                .into_iter()
                .filter(|o| lacking.contains(&o.hash))
                .map(|o| (o.hash, o.bytes))
                .collect();
            // Parents first, and at most a message's worth: the receiver can
            // place every operation of a prefix.
            let order = authority::parents_first(&c.state.graph, &lacking);
            let sent: Vec<Hash> = order
                .into_iter()
                .take(MAX_CONTROL_OPS_PER_MESSAGE - control_sent)
                .collect();
            control_sent += sent.len();
            for h in &sent {
                if let Some(b) = bytes.remove(h) {
                    used += b.len();
                    items.control_ops.push(b);
                }
            }
            if sent.len() < lacking.len() {
                // The rest goes in the next batch: the peer now holds what it
                // held and what was sent.
                let sent: HashSet<Hash> = sent.into_iter().collect();
                let held: HashMap<Hash, Vec<Hash>> = c
                    .state
                    .graph
                    .iter()
                    .filter(|(h, _)| !lacking.contains(*h) || sent.contains(*h))
                    .map(|(h, p)| (*h, p.clone()))
                    .collect();
                partial_control = Some(authority::graph_heads(&held));
                more = true;
            }
        }
        // Proofs of equivocation go to every peer that has not frozen the log
        // yet: with both entries it detects the fork itself and freezes alike.
        // Entries wait until the whole control log has gone (their authority
        // rests on it).
        let control_done = partial_control.is_none();
        let mut proofs_sent = Vec::new();
        let proofs = match control_done {
            true => store::equivocations(conn, c.case_ref)?,
            false => Vec::new(),
        };
        for q in proofs.into_iter().filter(|q| within(&q.author, q.seq)) {
            let known = idx.is_some_and(|i| {
                their[i]
                    .frozen
                    .iter()
                    .take(MAX_LOGS)
                    .any(|f| f.author[..] == q.author[..] && f.seq <= q.seq)
            });
            if !known {
                used += q.entry_a.len() + q.entry_b.len();
                sent.push((c.id, q.author, q.seq));
                items.entries.push(for_peer(q.entry_a, &strip));
                items.entries.push(for_peer(q.entry_b, &strip));
                proofs_sent.push(LogHave {
                    author: q.author.to_vec(),
                    seq: q.seq,
                    head: Vec::new(),
                });
            }
        }
        let mut advanced: Vec<LogHave> = Vec::new();
        let heads = match control_done {
            true => store::log_heads(conn, c.case_ref)?,
            false => Vec::new(),
        };
        for (author, held_seq, _) in heads {
            // Never past the first entry the peer may not have.
            let seq = match withheld.get(&author) {
                Some(w) if *w <= held_seq => {
                    if !withheld_logs.contains(&(c.id, author, *w)) {
                        withheld_logs.push((c.id, author, *w));
                    }
                    w - 1
                }
                _ => held_seq,
            };
            let chain = chain_of(held_seq);
            let (from, their_hash) = their_head(idx.map(|i| &their[i]), &author, chain);
            if from > chain_base(chain)
                && within(&author, from)
                && their_hash.len() == 32
                && let Some(mine) = store::entry_hash_at(conn, c.case_ref, &author, from)?
                && !mine.ct_eq(&Hash::from_slice(their_hash).unwrap_or(Hash::ZERO))
            {
                // The peer holds another entry at `from`: a fork. Send ours;
                // with both in hand it proves the equivocation and freezes.
                if let Some(e) = store::entries_after(conn, c.case_ref, &author, from - 1, 1)?
                    .into_iter()
                    .next()
                {
                    used += e.bytes.len();
                    sent.push((c.id, author, e.seq as u64));
                    items.entries.push(for_peer(e.bytes, &strip));
                }
                continue;
            }
            if seq <= from {
                continue;
            }
            let mut last = from;
            let room = (
                MAX_ENTRIES_PER_MESSAGE.saturating_sub(count) + 1,
                budget.saturating_sub(used),
            );
            for e in store::entries_within(conn, c.case_ref, &author, from, room)? {
                if e.seq as u64 > seq {
                    break;
                }
                if (used + e.bytes.len() > budget && used > 0) || count >= MAX_ENTRIES_PER_MESSAGE {
                    more = true;
                    break;
                }
                used += e.bytes.len();
                count += 1;
                last = e.seq as u64;
                sent.push((c.id, author, last));
                items.entries.push(for_peer(e.bytes, &strip));
            }
            if last < seq {
                more = true;
            }
            advanced.push(LogHave {
                author: author.to_vec(),
                seq: last,
                head: Vec::new(),
            });
            if more {
                break;
            }
        }
        if !items.control_ops.is_empty() || !items.entries.is_empty() {
            body.cases.push(items);
        }
        // Record what the peer now has, for the next batch.
        let h = match idx {
            Some(i) => &mut their[i],
            None => {
                their.push(CaseHave {
                    case: c.id.0.to_vec(),
                    ..CaseHave::default()
                });
                let last = their.len() - 1;
                &mut their[last]
            }
        };
        // It now holds at least our control graph (or the part sent so far).
        let heads = match partial_control {
            Some(heads) => heads,
            None => {
                h.control = control.0.to_vec();
                c.state.graph_heads()
            }
        };
        h.control_heads = heads
            .iter()
            .map(|x| serde_bytes::ByteBuf::from(x.0.to_vec()))
            .collect();
        h.frozen.extend(proofs_sent);
        for a in advanced {
            match h
                .logs
                .iter_mut()
                .find(|l| l.author == a.author && chain_of(l.seq) == chain_of(a.seq))
            {
                // The head hash they sent was of their old last entry: keeping
                // it would look like a fork at the new seq on the next batch.
                Some(l) if a.seq > l.seq => *l = a,
                Some(_) => {}
                None => h.logs.push(a),
            }
        }
        if more {
            break;
        }
    }
    // The registry goes to a peer whose set differs (it reaches every enrolled
    // node, case or no case). Statements are few and small; all of them go,
    // and the peer keeps what it lacks.
    let registry = registry_digest(conn)?;
    if their_registry[..] != registry.0[..] {
        *their_registry = registry.0.to_vec();
        body.registry_ops = store::registry_ops(conn)?
            .into_iter()
            .map(|o| o.bytes)
            .collect();
    }
    Ok((
        Items {
            body,
            more,
            sent,
            withheld: withheld_logs,
        },
        mark,
    ))
}

/// Most entries one refill asks for.
pub const MAX_REFILL: usize = 1024;

/// The entries of `case` that `peer` (a member) asks for again, `wants`,
/// each as it may go to it now ([`for_peer`]): it held them without the
/// parts of records under H2 whose originator has since consented.
pub fn refill_for(
    node: &Node,
    conn: &Connection,
    peer: &[u8; 32],
    case: &[u8],
    wants: &[LogHave],
) -> Result<Items> {
    let mut body = BundleBody {
        registry_ops: Vec::new(),
        cases: Vec::new(),
    };
    let mut sent = Vec::new();
    let id = <[u8; 16]>::try_from(case)
        .map_err(|_| crate::NodeError::Protocol("a case id is 16 bytes".into()))?;
    // A case this node does not hold, or the peer is not a member of, is
    // answered empty alike.
    let Some(c) = cases::list(node)?
        .into_iter()
        .find(|c| c.id.0 == id && c.state.role_of(peer).is_some())
    else {
        return Ok(Items {
            body,
            more: false,
            sent,
            withheld: Vec::new(),
        });
    };
    let registry = crate::trust::load(conn)?;
    let cases::KeptBack {
        logs: withheld,
        parts: strip,
    } = cases::kept_back_from_peer(node, conn, registry.as_ref(), &c, peer)?;
    let mut entries = Vec::new();
    for w in wants.iter().take(MAX_REFILL) {
        let Ok(author) = <[u8; 32]>::try_from(w.author.as_slice()) else {
            continue;
        };
        if withheld.get(&author).is_some_and(|from| w.seq >= *from) {
            continue;
        }
        if let Some(e) = store::entry_at(conn, c.case_ref, &author, w.seq)? {
            sent.push((c.id, author, w.seq));
            entries.push(for_peer(e.bytes, &strip));
        }
    }
    if !entries.is_empty() {
        body.cases.push(CaseItems {
            case: c.id,
            control_ops: Vec::new(),
            entries,
        });
    }
    Ok(Items {
        body,
        more: false,
        sent,
        withheld: Vec::new(),
    })
}

/// What this node asks `peer` for again, per case it shares with it:
/// entries held here without parts withheld from this node that it may
/// now hold (their originator consented, or lifted H2).
pub fn refill_wants(
    node: &Node,
    conn: &Connection,
    peer: &[u8; 32],
) -> Result<Vec<(CaseId, Vec<LogHave>)>> {
    let registry = crate::trust::load(conn)?;
    let me = cases::own_labels(node, conn)?;
    // Now and then, parts still withheld by this node's reading are asked
    // for too: a node that does not hold a record cannot tell a false H2
    // declaration (a writer declaring another's record) from a true one,
    // and a peer that holds the record sends what that peer may send.
    let probe_key = format!("refill.probe.{}", casesync_crypto::hash::hex(peer));
    let (now, _) = crate::clock::now();
    let probe = now - store::meta_stamp(conn, &probe_key)? >= REFILL_PROBE_MS;
    let mut probed = false;
    let mut out = Vec::new();
    for c in cases::with_withheld_parts(node)? {
        if c.state.role_of(peer).is_none() {
            continue;
        }
        let held = store::withheld_in_case(conn, c.case_ref, MAX_REFILL * 4)?;
        if held.is_empty() {
            continue;
        }
        let handling = cases::Handling::checked(node, conn, registry.as_ref(), &c)?;
        // Still withheld from this node, or from the peer too (it has
        // nothing to give), or erased since.
        let mut still: HashSet<RecordTag> = if probe {
            HashSet::new()
        } else {
            handling.withheld_tags(&me).into_iter().collect()
        };
        if let Some(l) = cases::labels_of(registry.as_ref(), &c, peer) {
            still.extend(handling.withheld_tags(&l));
        }
        probed |= probe;
        let mut wants: Vec<LogHave> = Vec::new();
        for p in held {
            let tag = RecordTag(p.tag);
            if still.contains(&tag) || c.state.is_erased(&tag) {
                continue;
            }
            if wants
                .last()
                .is_some_and(|w| w.author[..] == p.author[..] && w.seq == p.seq)
            {
                continue;
            }
            wants.push(LogHave {
                author: p.author.to_vec(),
                seq: p.seq,
                head: Vec::new(),
            });
            if wants.len() >= MAX_REFILL {
                break;
            }
        }
        if !wants.is_empty() {
            out.push((c.id, wants));
        }
    }
    if probed {
        store::set_meta_stamp(conn, &probe_key, now)?;
    }
    Ok(out)
}

/// How often a node asks a peer for parts it reads as still withheld from
/// it ([`refill_wants`]).
const REFILL_PROBE_MS: i64 = 10 * 60 * 1000;
