//! Sync planning over the store: what this node holds of each shared case, and
//! which items a peer lacks given its summary. Pure decisions over stored data;
//! the network (`net`) only carries the messages.

use casesync_crypto::Hash;
use casesync_crypto::hash::sha256;
use casesync_schema::CaseId;
use casesync_schema::bundle::{BundleBody, CaseItems};
use rusqlite::Connection;

use crate::net::protocol::{CaseHave, LogHave, MAX_CASES, MAX_ENTRIES_PER_MESSAGE, MAX_LOGS};
use crate::{Node, Result, cases, store};

/// What this node holds of one case it shares with a peer.
struct Held {
    case: [u8; 16],
    control_ops: u32,
    /// Each author's (key, last seq, hash of that entry), ordered by author.
    heads: Vec<([u8; 32], u64, Hash)>,
    /// Logs frozen after a proved equivocation: (author, frozen before seq).
    frozen: Vec<([u8; 32], u64)>,
}

/// What this node holds of every case (or only those `peer` is a member of).
fn held(node: &Node, conn: &Connection, peer: Option<&[u8; 32]>) -> Result<Vec<Held>> {
    let mut out = Vec::new();
    for c in cases::list(node)? {
        if let Some(p) = peer
            && c.state.role_of(p).is_none()
        {
            continue;
        }
        out.push(Held {
            case: c.id.0,
            control_ops: store::control_op_hashes(conn, c.case_ref)?.len() as u32,
            heads: store::log_heads(conn, c.case_ref)?,
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
            control_ops: h.control_ops,
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

/// How many registry statements this node holds.
pub fn registry_count(conn: &Connection) -> Result<u32> {
    store::registry_op_count(conn).map_err(Into::into)
}

/// One hash of the registry and of everything this node holds of the cases it
/// shares with `peer`, heads included. Two nodes that hold the same compute the
/// same digest (each lists the cases the other is a member of, and members are
/// part of what they hold), so an anti-entropy round between in-sync peers is
/// this one digest each way whatever the number of cases.
pub fn digest(node: &Node, conn: &Connection, peer: &[u8; 32]) -> Result<Hash> {
    let mut registry: Vec<Hash> = store::registry_ops(conn)?
        .into_iter()
        .map(|o| o.hash)
        .collect();
    registry.sort_by_key(|h| h.0);
    let mut w: Vec<u8> = b"casesync/sync-digest/v1".to_vec();
    w.extend_from_slice(&(registry.len() as u64).to_be_bytes());
    for h in &registry {
        w.extend_from_slice(&h.0);
    }
    for h in held(node, conn, Some(peer))? {
        w.extend_from_slice(&h.case);
        w.extend_from_slice(&h.control_ops.to_be_bytes());
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
    }
    Ok(sha256(&w))
}

/// The peer's last seq of `author`'s log, and the hash it holds there.
fn their_head<'a>(have: Option<&'a CaseHave>, author: &[u8; 32]) -> (u64, &'a [u8]) {
    have.and_then(|h| {
        h.logs
            .iter()
            .take(MAX_LOGS)
            .find(|l| l.author[..] == author[..])
    })
    .map(|l| (l.seq, &l.head[..]))
    .unwrap_or((0, &[]))
}

/// One batch of items for a peer.
pub struct Items {
    pub body: BundleBody,
    /// Whether more remain after this batch.
    pub more: bool,
    /// The log entries in `body`, (case, author, seq), for the audit log.
    pub sent: Vec<(CaseId, [u8; 32], u64)>,
}

/// Which registry statements go with a batch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RegistryWith {
    /// All of them with any case items (their authority rests on them), and on
    /// their own to a peer that holds fewer: answers to a pull, whose count may
    /// hide a different set (two admins enrolling nodes concurrently).
    CaseItems,
    /// Only to a peer known to hold fewer: a push to a peer whose holdings are
    /// known from the last exchange. (If its set differs all the same, what it
    /// cannot place waits or is refused, and the next anti-entropy pull, which
    /// brings every statement, repairs it.)
    Fewer,
}

/// Items `peer` lacks of the cases it is a member of, given its summary `their`,
/// and the registry statements it lacks given how many it holds (`their_registry`),
/// within `budget` bytes of entries. `their` is advanced past what is included,
/// so calling again yields the next batch.
pub fn items_for(
    node: &Node,
    conn: &Connection,
    peer: &[u8; 32],
    their: &mut Vec<CaseHave>,
    their_registry: &mut u32,
    budget: usize,
    registry_with: RegistryWith,
) -> Result<Items> {
    let mut body = BundleBody {
        registry_ops: Vec::new(),
        cases: Vec::new(),
    };
    let mut used = 0usize;
    // Entries from logs (proofs and fork answers are few and not counted).
    let mut count = 0usize;
    let mut more = false;
    let mut sent = Vec::new();
    their.truncate(MAX_CASES);
    for c in cases::list(node)? {
        if c.state.role_of(peer).is_none() {
            continue;
        }
        let idx = their.iter().position(|h| h.case[..] == c.id.0[..]);
        let ops = store::control_ops(conn, c.case_ref)?;
        let their_ops = idx.map(|i| their[i].control_ops as usize).unwrap_or(0);
        let mut items = CaseItems {
            case: CaseId(c.id.0),
            control_ops: Vec::new(),
            entries: Vec::new(),
        };
        if their_ops < ops.len() {
            used += ops.iter().map(|o| o.bytes.len()).sum::<usize>();
            items.control_ops = ops.into_iter().map(|o| o.bytes).collect();
        }
        // Proofs of equivocation go to every peer that has not frozen the log
        // yet: with both entries it detects the fork itself and freezes alike.
        let mut proofs_sent = Vec::new();
        for q in store::equivocations(conn, c.case_ref)? {
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
                items.entries.push(q.entry_a);
                items.entries.push(q.entry_b);
                proofs_sent.push(LogHave {
                    author: q.author.to_vec(),
                    seq: q.seq,
                    head: Vec::new(),
                });
            }
        }
        let mut advanced: Vec<LogHave> = Vec::new();
        for (author, seq, _) in store::log_heads(conn, c.case_ref)? {
            let (from, their_hash) = their_head(idx.map(|i| &their[i]), &author);
            if from > 0
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
                    items.entries.push(e.bytes);
                }
                continue;
            }
            if seq <= from {
                continue;
            }
            let mut last = from;
            for e in store::entries_after(conn, c.case_ref, &author, from, 4096)? {
                if (used + e.bytes.len() > budget && used > 0) || count >= MAX_ENTRIES_PER_MESSAGE {
                    more = true;
                    break;
                }
                used += e.bytes.len();
                count += 1;
                last = e.seq as u64;
                sent.push((c.id, author, last));
                items.entries.push(e.bytes);
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
        let n_ops = items.control_ops.len();
        if !items.control_ops.is_empty() || !items.entries.is_empty() {
            body.cases.push(items);
        }
        // Record what the peer now has, for the next batch.
        let h = match idx {
            Some(i) => &mut their[i],
            None => {
                their.push(CaseHave {
                    case: c.id.0.to_vec(),
                    control_ops: 0,
                    logs: Vec::new(),
                    frozen: Vec::new(),
                });
                let last = their.len() - 1;
                &mut their[last]
            }
        };
        h.control_ops = h.control_ops.max(n_ops as u32);
        h.frozen.extend(proofs_sent);
        for a in advanced {
            match h.logs.iter_mut().find(|l| l.author == a.author) {
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
    // The registry travels with case items (their authority rests on it) and on
    // its own to a peer that holds fewer statements: it reaches every enrolled
    // node, case or no case. Statements are few and small; all of them go.
    let registry = store::registry_ops(conn)?;
    let with_cases = registry_with == RegistryWith::CaseItems && !body.cases.is_empty();
    if with_cases || (*their_registry as usize) < registry.len() {
        *their_registry = (*their_registry).max(registry.len() as u32);
        body.registry_ops = registry.into_iter().map(|o| o.bytes).collect();
    }
    Ok(Items { body, more, sent })
}
