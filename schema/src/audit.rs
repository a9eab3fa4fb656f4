//! The audit chain: how audit entries are linked and signed, and how a chain
//! is checked. Pure; the node's `audit` module stores and seals the entries.
//!
//! Each entry is stored sealed (its content is as sensitive as the case: it
//! says who looked at which person). Its link is
//! `hash = SHA-256(context | seq | previous hash | sealed bytes)`, signed by the
//! node key, so the chain can be checked without opening anything: an edited,
//! deleted, inserted or reordered row breaks a hash, a gap in seq or a
//! signature, and a truncated tail no longer reaches the recorded head.

use casesync_crypto::NodeKeys;
use casesync_crypto::hash::{Hash, sha256_parts};
use casesync_crypto::identity::{SIGNATURE_LEN, verify};

const LINK_CONTEXT: &[u8] = b"casesync/audit/v1";
/// The head's own signature context: a link signature (of every entry) is
/// not a head signature, so someone who deletes the last entries cannot name
/// an earlier entry as the head without the node key.
const HEAD_CONTEXT: &[u8] = b"casesync/audit-head/v1";

/// The link of entry `seq` after `prev` (zero before the first entry).
pub fn link_hash(seq: u64, prev: &Hash, sealed: &[u8]) -> Hash {
    sha256_parts(&[LINK_CONTEXT, &seq.to_be_bytes(), prev.as_bytes(), sealed])
}

pub fn sign_link(keys: &NodeKeys, hash: &Hash) -> [u8; SIGNATURE_LEN] {
    keys.sign(LINK_CONTEXT, hash.as_bytes())
}

/// The head recorded with the last entry: its seq and link, signed by the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: Hash,
    pub signature: Vec<u8>,
}

fn head_message(seq: u64, hash: &Hash) -> Vec<u8> {
    let mut m = seq.to_be_bytes().to_vec();
    m.extend_from_slice(hash.as_bytes());
    m
}

/// Signs the head that names entry `seq` with link `hash`.
pub fn sign_head(keys: &NodeKeys, seq: u64, hash: &Hash) -> Head {
    Head {
        seq,
        hash: *hash,
        signature: keys.sign(HEAD_CONTEXT, &head_message(seq, hash)).to_vec(),
    }
}

/// How a peer's audit head compares with the one it showed before.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadChange {
    /// The first head seen, or a later one: the log grew.
    Forward,
    Same,
    /// An earlier head than before: entries after it were cut off (or the
    /// node was restored from an older copy).
    Rewound {
        from: u64,
        to: u64,
    },
    /// Another link at the same place: the log was rewritten from there.
    Rewritten {
        seq: u64,
    },
}

/// Compares a peer's head `now` with the one it showed before (pure). A head
/// only proves anything if it is signed by that peer: check it first.
pub fn compare_heads(before: Option<&Head>, now: &Head) -> HeadChange {
    match before {
        None => HeadChange::Forward,
        Some(b) if now.seq > b.seq => HeadChange::Forward,
        Some(b) if now.seq < b.seq => HeadChange::Rewound {
            from: b.seq,
            to: now.seq,
        },
        Some(b) if b.hash.ct_eq(&now.hash) => HeadChange::Same,
        Some(b) => HeadChange::Rewritten { seq: b.seq },
    }
}

impl Head {
    /// `seq | link | signature`, as stored and sent.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.seq.to_be_bytes().to_vec();
        v.extend_from_slice(self.hash.as_bytes());
        v.extend_from_slice(&self.signature);
        v
    }

    /// What [`Head::encode`] wrote; `None` for anything else.
    pub fn decode(b: &[u8]) -> Option<Head> {
        if b.len() != 8 + 32 + SIGNATURE_LEN {
            return None;
        }
        Some(Head {
            seq: u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            hash: Hash::from_slice(b.get(8..40)?)?,
            signature: b.get(40..)?.to_vec(),
        })
    }

    /// Whether `node` signed this head.
    pub fn is_signed_by(&self, node: &[u8; 32]) -> bool {
        let Ok(sig) = <[u8; SIGNATURE_LEN]>::try_from(self.signature.as_slice()) else {
            return false;
        };
        verify(
            node,
            HEAD_CONTEXT,
            &head_message(self.seq, &self.hash),
            &sig,
        )
        .is_ok()
    }
}

/// One stored row of the chain, as read back (possibly tampered with).
#[derive(Clone, Debug)]
pub struct ChainRow {
    pub seq: u64,
    pub sealed: Vec<u8>,
    pub hash: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The first place a chain fails, with what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainFault {
    /// The seq of the first bad entry (or the first missing one).
    pub seq: u64,
    pub reason: String,
}

/// Checks a chain in the order its rows are stored, against the node's public
/// key and the head recorded when the last entry was written. Returns how many
/// entries were checked, or the first fault.
pub struct ChainCheck<'a> {
    node: &'a [u8; 32],
    prev: Hash,
    next_seq: u64,
}

impl<'a> ChainCheck<'a> {
    pub fn new(node: &'a [u8; 32]) -> ChainCheck<'a> {
        ChainCheck {
            node,
            prev: Hash::ZERO,
            next_seq: 1,
        }
    }

    /// Checks the next row.
    pub fn row(&mut self, r: &ChainRow) -> Result<(), ChainFault> {
        let fault = |seq: u64, reason: String| Err(ChainFault { seq, reason });
        if r.seq != self.next_seq {
            return fault(
                self.next_seq,
                if r.seq > self.next_seq {
                    format!(
                        "entries {} to {} are missing (deleted)",
                        self.next_seq,
                        r.seq - 1
                    )
                } else {
                    format!("entry {} is out of order (reordered or inserted)", r.seq)
                },
            );
        }
        let expect = link_hash(r.seq, &self.prev, &r.sealed);
        let stored = Hash::from_slice(&r.hash).unwrap_or(Hash::ZERO);
        if !expect.ct_eq(&stored) {
            return fault(
                r.seq,
                "its content or position was changed (the hash chain breaks here)".into(),
            );
        }
        let sig: [u8; SIGNATURE_LEN] = match r.signature.as_slice().try_into() {
            Ok(s) => s,
            Err(_) => return fault(r.seq, "its signature is malformed".into()),
        };
        if verify(self.node, LINK_CONTEXT, expect.as_bytes(), &sig).is_err() {
            return fault(r.seq, "its signature is not this node's".into());
        }
        self.prev = expect;
        self.next_seq += 1;
        Ok(())
    }

    /// After the last row: the chain must end at the recorded head, and the
    /// head must carry the node's signature.
    pub fn finish(self, head: Option<Head>) -> Result<u64, ChainFault> {
        let last = self.next_seq - 1;
        match head {
            None if last == 0 => Ok(0),
            None => Err(ChainFault {
                seq: 1,
                reason: "the log has entries but no recorded head (the head was removed)".into(),
            }),
            Some(h) if !h.is_signed_by(self.node) => Err(ChainFault {
                seq: h.seq.min(last).max(1),
                reason: format!(
                    "the recorded head (entry {}) is not signed by this node: it was rewritten, and entries after it may have been removed",
                    h.seq
                ),
            }),
            Some(h) if h.seq == last && h.hash.ct_eq(&self.prev) => Ok(last),
            Some(h) if h.seq > last => Err(ChainFault {
                seq: last + 1,
                reason: format!(
                    "the log ends at entry {last} but its head names entry {}: entries {} to {} were removed (truncated)",
                    h.seq,
                    last + 1,
                    h.seq
                ),
            }),
            Some(h) => Err(ChainFault {
                seq: h.seq.min(last),
                reason: format!(
                    "the recorded head (entry {}) does not match the log's last entry ({last})",
                    h.seq
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(keys: &NodeKeys, n: u64) -> Vec<ChainRow> {
        let mut prev = Hash::ZERO;
        (1..=n)
            .map(|seq| {
                let sealed = format!("sealed {seq}").into_bytes();
                let hash = link_hash(seq, &prev, &sealed);
                prev = hash;
                ChainRow {
                    seq,
                    sealed,
                    hash: hash.0.to_vec(),
                    signature: sign_link(keys, &hash).to_vec(),
                }
            })
            .collect()
    }

    fn check(node: &[u8; 32], rows: &[ChainRow], head: Option<Head>) -> Result<u64, ChainFault> {
        let mut c = ChainCheck::new(node);
        for r in rows {
            c.row(r)?;
        }
        c.finish(head)
    }

    fn head(keys: &NodeKeys, rows: &[ChainRow]) -> Option<Head> {
        rows.last()
            .map(|r| sign_head(keys, r.seq, &Hash::from_slice(&r.hash).unwrap()))
    }

    #[test]
    fn an_untouched_chain_verifies_and_every_change_names_its_place() {
        let keys = NodeKeys::generate().unwrap();
        let me = keys.public().ed25519;
        let rows = chain(&keys, 5);
        let h = head(&keys, &rows);
        assert_eq!(check(&me, &rows, h.clone()), Ok(5));
        assert_eq!(check(&me, &[], None), Ok(0));

        let mut edited = rows.clone();
        edited[2].sealed[0] ^= 1;
        assert_eq!(check(&me, &edited, h.clone()).unwrap_err().seq, 3);

        let mut deleted = rows.clone();
        deleted.remove(1);
        let f = check(&me, &deleted, h.clone()).unwrap_err();
        assert_eq!(f.seq, 2);
        assert!(f.reason.contains("missing"), "{f:?}");

        // Rows swapped with their seq renumbered: the hashes no longer chain.
        let mut reordered = rows.clone();
        reordered.swap(1, 2);
        reordered[1].seq = 2;
        reordered[2].seq = 3;
        assert_eq!(check(&me, &reordered, h.clone()).unwrap_err().seq, 2);
        // Swapped without renumbering: out of order.
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert_eq!(check(&me, &swapped, h.clone()).unwrap_err().seq, 2);

        let f = check(&me, &rows[..3], h.clone()).unwrap_err();
        assert_eq!(f.seq, 4);
        assert!(f.reason.contains("truncated"), "{f:?}");
        assert!(
            check(&me, &rows, None).is_err(),
            "a removed head is noticed"
        );

        // Re-hashed by someone without the node key: the signature fails.
        let mut forged = rows.clone();
        forged[4].sealed = b"forged".to_vec();
        let prev = Hash::from_slice(&forged[3].hash).unwrap();
        forged[4].hash = link_hash(5, &prev, &forged[4].sealed).0.to_vec();
        let f = check(&me, &forged, h).unwrap_err();
        assert_eq!(f.seq, 5);
        assert!(f.reason.contains("signature"), "{f:?}");

        // The last two entries deleted and the head rewritten to entry 3,
        // whose link (and link signature) are on record: without the node
        // key there is no head signature for it.
        let rewound = Head {
            seq: 3,
            hash: Hash::from_slice(&rows[2].hash).unwrap(),
            signature: rows[2].signature.clone(),
        };
        let f = check(&me, &rows[..3], Some(rewound)).unwrap_err();
        assert!(f.reason.contains("not signed"), "{f:?}");
        // Signed by the node, it holds.
        assert_eq!(check(&me, &rows[..3], head(&keys, &rows[..3])), Ok(3));
    }

    #[test]
    fn a_peers_rewound_or_rewritten_head_is_told_apart_from_growth() {
        let keys = NodeKeys::generate().unwrap();
        let rows = chain(&keys, 5);
        let at = |n: usize| head(&keys, &rows[..n]).unwrap();
        assert_eq!(Head::decode(&at(3).encode()), Some(at(3)));
        assert_eq!(Head::decode(&[0; 10]), None);
        assert_eq!(compare_heads(None, &at(2)), HeadChange::Forward);
        assert_eq!(compare_heads(Some(&at(2)), &at(4)), HeadChange::Forward);
        assert_eq!(compare_heads(Some(&at(4)), &at(4)), HeadChange::Same);
        assert_eq!(
            compare_heads(Some(&at(4)), &at(2)),
            HeadChange::Rewound { from: 4, to: 2 }
        );
        let other = chain(&keys, 6);
        let mut forked = other[..4].to_vec();
        forked[3].sealed = b"other".to_vec();
        let prev = Hash::from_slice(&forked[2].hash).unwrap();
        forked[3].hash = link_hash(4, &prev, &forked[3].sealed).0.to_vec();
        assert_eq!(
            compare_heads(Some(&at(4)), &head(&keys, &forked).unwrap()),
            HeadChange::Rewritten { seq: 4 }
        );
    }
}
