//! The log entry: one signed, encrypted unit of a (case, author) log.
//!
//! Layout (version 1), integers big-endian:
//!
//! ```text
//! version u8 | case [16] | author ed25519 [32] | seq u64 | prev hash [32] |
//! epoch [32] | time_ms i64 | view count u32, (author [32], seq u64, hash [32])* |
//! sealed len u32, sealed | signature [64]
//! ```
//!
//! `sealed` is the payload sealed with the case key of `epoch`, with every header
//! byte before it as associated data (so case, author, seq and epoch are bound).
//! The signature covers every byte before it; the entry's hash is SHA-256 of the
//! whole encoding. Decoding verifies the signature over the received bytes first
//! and keeps those bytes, so verification never depends on re-encoding.
//!
//! The payload is a list of Automerge changes, each tagged with its record id,
//! compressed with LZ4 behind a declared size that is capped before decompressing.
//!
//! An author's log of a case is one or more *chains*: `seq` is `chain << 32 |
//! position`, positions start at 1, and each entry's `prev` is the hash of the
//! entry before it in its chain. A node that may be behind its own past (restored
//! from a backup, or a data directory copied) starts a new chain rather than
//! reuse a position it may already have signed: the first entry of chain `c > 0`
//! names as `prev` the author's entry it continues from (zero if none), and the
//! old chain stays whole. Chain 0 is the ordinary log.

use casesync_crypto::hash::{Hash, sha256};
use casesync_crypto::identity::SIGNATURE_LEN;
use casesync_crypto::{NodeKeys, SymmetricKey};

use crate::codec::{Reader, SignedLayout, Writer, verify_signed};
use crate::{CaseId, RecordId, SchemaError};

pub const ENTRY_VERSION: u8 = 1;
const SIGN_CONTEXT: &[u8] = b"casesync/entry/v1";
const AEAD_CONTEXT: &[u8] = b"casesync/entry-aead/v1";
/// Largest sealed payload in one entry.
pub const MAX_SEALED_BYTES: usize = 1024 * 1024;
/// Largest number of authors in an entry's view of the case.
pub const MAX_VIEW_ITEMS: usize = 4096;
const VIEW_ITEM_LEN: usize = 32 + 8 + 32;
const FIXED_HEADER: usize = 1 + 16 + 32 + 8 + 32 + 32 + 8;
/// Largest encoded entry; checked before anything else.
pub const MAX_ENTRY_BYTES: usize =
    FIXED_HEADER + 4 + MAX_VIEW_ITEMS * VIEW_ITEM_LEN + 4 + MAX_SEALED_BYTES + SIGNATURE_LEN;
/// Largest decompressed payload: bounds what a hostile entry can make us allocate.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// Payload bytes a writer puts in one entry before starting the next; leaves room
/// for LZ4's worst-case expansion and the AEAD tag under [`MAX_SEALED_BYTES`].
pub const TARGET_PAYLOAD_BYTES: usize = MAX_SEALED_BYTES - 16 * 1024;
const MAX_CHANGES: usize = 1 << 20;

/// Bits of `seq` below the chain number.
pub const CHAIN_SHIFT: u32 = 32;
/// Largest chain number: seqs stay within SQLite's signed 64-bit integers.
pub const MAX_CHAIN: u64 = (1 << 31) - 1;
const POSITION_MASK: u64 = (1 << CHAIN_SHIFT) - 1;

/// The chain a seq is in.
pub fn chain_of(seq: u64) -> u64 {
    seq >> CHAIN_SHIFT
}

/// The position of a seq within its chain (from 1).
pub fn position_of(seq: u64) -> u64 {
    seq & POSITION_MASK
}

/// The seq just before chain `chain`'s first entry: "nothing of this chain".
pub fn chain_base(chain: u64) -> u64 {
    chain << CHAIN_SHIFT
}

/// Whether `seq` is the first entry of its chain.
pub fn starts_chain(seq: u64) -> bool {
    position_of(seq) == 1
}

/// One author's position in a case log, as seen by the writer of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ViewItem {
    pub author: [u8; 32],
    pub seq: u64,
    pub hash: Hash,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    pub case: CaseId,
    pub author: [u8; 32],
    pub seq: u64,
    /// Hash of the author's previous entry in this case; zero for seq 1.
    pub prev: Hash,
    /// Id of the key epoch whose key sealed the payload.
    pub epoch: Hash,
    /// The author's wall clock, for people to read. Nothing decides on it.
    pub time_ms: i64,
    pub view: Vec<ViewItem>,
}

/// A verified log entry, with the exact bytes it was received or written as.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub header: EntryHeader,
    sealed_range: (usize, usize),
    bytes: Vec<u8>,
    hash: Hash,
}

/// One Automerge change to one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChange {
    pub record: RecordId,
    pub change: Vec<u8>,
}

fn encode_header(h: &EntryHeader, w: &mut Writer) {
    w.u8(ENTRY_VERSION);
    w.raw(&h.case.0);
    w.raw(&h.author);
    w.u64(h.seq);
    w.raw(h.prev.as_bytes());
    w.raw(h.epoch.as_bytes());
    w.i64(h.time_ms);
    w.u32(h.view.len() as u32);
    for v in &h.view {
        w.raw(&v.author);
        w.u64(v.seq);
        w.raw(v.hash.as_bytes());
    }
}

fn aad(header_bytes: &[u8]) -> Vec<u8> {
    let mut a = AEAD_CONTEXT.to_vec();
    a.extend_from_slice(header_bytes);
    a
}

impl LogEntry {
    /// Seals `payload` (from [`encode_payload`]) under `epoch_key` and signs the entry.
    pub fn create(
        keys: &NodeKeys,
        mut header: EntryHeader,
        epoch_key: &SymmetricKey,
        payload: &[u8],
    ) -> Result<LogEntry, SchemaError> {
        header.author = keys.public().ed25519;
        if header.view.len() > MAX_VIEW_ITEMS {
            return Err(SchemaError::TooLarge {
                what: "entry view",
                size: header.view.len(),
                limit: MAX_VIEW_ITEMS,
            });
        }
        header.view.sort();
        let mut w = Writer::new();
        encode_header(&header, &mut w);
        let sealed = epoch_key.seal(&aad(&w.buf), payload)?;
        if sealed.len() > MAX_SEALED_BYTES {
            return Err(SchemaError::TooLarge {
                what: "entry payload",
                size: sealed.len(),
                limit: MAX_SEALED_BYTES,
            });
        }
        w.u32(sealed.len() as u32);
        let start = w.buf.len();
        w.raw(&sealed);
        let end = w.buf.len();
        let sig = keys.sign(SIGN_CONTEXT, &w.buf);
        w.raw(&sig);
        let hash = sha256(&w.buf);
        Ok(LogEntry {
            header,
            sealed_range: (start, end),
            bytes: w.buf,
            hash,
        })
    }

    /// Verifies the signature over `bytes` (against the author key at its fixed
    /// offset), then decodes. Nothing past the fixed header is read before the
    /// signature holds.
    pub fn decode_verified(bytes: &[u8]) -> Result<LogEntry, SchemaError> {
        let signed = verify_signed(
            bytes,
            &SignedLayout {
                what: "log entry",
                version: ENTRY_VERSION,
                min_len: FIXED_HEADER + 8 + SIGNATURE_LEN,
                max_len: MAX_ENTRY_BYTES,
                key_at: 17,
                context: SIGN_CONTEXT,
            },
        )?;
        let mut r = Reader::new(signed, "log entry");
        r.u8()?;
        let case = CaseId(r.array()?);
        let author = r.array()?;
        let seq = r.u64()?;
        let prev = Hash(r.array()?);
        let epoch = Hash(r.array()?);
        let time_ms = r.i64()?;
        let n = r.count(MAX_VIEW_ITEMS, VIEW_ITEM_LEN)?;
        let mut view = Vec::with_capacity(n);
        for _ in 0..n {
            view.push(ViewItem {
                author: r.array()?,
                seq: r.u64()?,
                hash: Hash(r.array()?),
            });
        }
        let sealed_len = r.u32()? as usize;
        if sealed_len > MAX_SEALED_BYTES {
            return Err(SchemaError::TooLarge {
                what: "entry payload",
                size: sealed_len,
                limit: MAX_SEALED_BYTES,
            });
        }
        let start = r.position();
        r.take(sealed_len)?;
        r.finish()?;
        if position_of(seq) == 0 || chain_of(seq) > MAX_CHAIN {
            return Err(SchemaError::malformed(
                "log entry",
                "seq is not a position in a chain (positions start at 1)",
            ));
        }
        // The first entry of chain 0 has no predecessor; a later chain may
        // start from an earlier entry of its author or from nothing; any other
        // entry follows one.
        let prev_ok = match (chain_of(seq), starts_chain(seq)) {
            (0, true) => prev == Hash::ZERO,
            (_, true) => true,
            (_, false) => prev != Hash::ZERO,
        };
        if !prev_ok {
            return Err(SchemaError::malformed(
                "log entry",
                "prev must be zero exactly for a log's first entry",
            ));
        }
        Ok(LogEntry {
            header: EntryHeader {
                case,
                author,
                seq,
                prev,
                epoch,
                time_ms,
                view,
            },
            sealed_range: (start, start + sealed_len),
            bytes: bytes.to_vec(),
            hash: sha256(bytes),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Decrypts and decodes the payload with the key of the entry's epoch.
    pub fn open(&self, epoch_key: &SymmetricKey) -> Result<Vec<RecordChange>, SchemaError> {
        let (s, e) = self.sealed_range;
        let header_bytes = &self.bytes[..s - 4];
        let plain = epoch_key.open(&aad(header_bytes), &self.bytes[s..e])?;
        decode_payload(&plain)
    }
}

/// Checks that `entry` follows `prev` in the same author's log of the same case.
pub fn validate_backlink(prev: &LogEntry, entry: &LogEntry) -> Result<(), SchemaError> {
    let (p, h) = (&prev.header, &entry.header);
    if p.case != h.case || p.author != h.author {
        return Err(SchemaError::malformed(
            "log entry",
            "backlink to another log",
        ));
    }
    if h.seq != p.seq + 1 || starts_chain(h.seq) {
        return Err(SchemaError::malformed(
            "log entry",
            format!("seq {} does not follow {}", h.seq, p.seq),
        ));
    }
    if !h.prev.ct_eq(&prev.hash()) {
        return Err(SchemaError::malformed(
            "log entry",
            format!("prev hash does not match entry {}", p.seq),
        ));
    }
    Ok(())
}

const PAYLOAD_VERSION: u8 = 1;

/// Encodes and compresses a list of record changes.
pub fn encode_payload(changes: &[RecordChange]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PAYLOAD_VERSION);
    w.u32(changes.len() as u32);
    for c in changes {
        w.raw(&c.record.0);
        w.bytes(&c.change);
    }
    let mut out = Vec::with_capacity(w.buf.len() / 2 + 8);
    out.extend_from_slice(&(w.buf.len() as u32).to_be_bytes());
    out.extend_from_slice(&lz4_flex::block::compress(&w.buf));
    out
}

/// Size of a change once encoded in a payload (before compression).
pub fn payload_cost(change: &RecordChange) -> usize {
    16 + 4 + change.change.len()
}

/// Decompresses (within [`MAX_PAYLOAD_BYTES`]) and decodes a payload.
pub fn decode_payload(bytes: &[u8]) -> Result<Vec<RecordChange>, SchemaError> {
    if bytes.len() < 4 {
        return Err(SchemaError::malformed("entry payload", "too short"));
    }
    let mut n = [0u8; 4];
    n.copy_from_slice(&bytes[..4]);
    let size = u32::from_be_bytes(n) as usize;
    if size > MAX_PAYLOAD_BYTES {
        return Err(SchemaError::TooLarge {
            what: "entry payload",
            size,
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let mut plain = vec![0u8; size];
    let got = lz4_flex::block::decompress_into(&bytes[4..], &mut plain)
        .map_err(|e| SchemaError::malformed("entry payload", e.to_string()))?;
    if got != size {
        return Err(SchemaError::malformed(
            "entry payload",
            "declared size does not match",
        ));
    }
    let mut r = Reader::new(&plain, "entry payload");
    let v = r.u8()?;
    if v != PAYLOAD_VERSION {
        return Err(SchemaError::UnsupportedVersion {
            what: "entry payload",
            version: v,
        });
    }
    let count = r.count(MAX_CHANGES, 20)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let record = RecordId(r.array()?);
        let change = r.bytes(MAX_PAYLOAD_BYTES)?.to_vec();
        out.push(RecordChange { record, change });
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(keys: &NodeKeys, key: &SymmetricKey) -> LogEntry {
        let header = EntryHeader {
            case: CaseId([9; 16]),
            author: [0; 32],
            seq: 1,
            prev: Hash::ZERO,
            epoch: Hash([3; 32]),
            time_ms: 1_700_000_000_000,
            view: vec![ViewItem {
                author: [5; 32],
                seq: 2,
                hash: Hash([6; 32]),
            }],
        };
        let payload = encode_payload(&[RecordChange {
            record: RecordId([1; 16]),
            change: b"change-bytes".to_vec(),
        }]);
        LogEntry::create(keys, header, key, &payload).unwrap()
    }

    #[test]
    fn create_decode_open() {
        let keys = NodeKeys::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let e = sample(&keys, &key);
        let d = LogEntry::decode_verified(e.bytes()).unwrap();
        assert_eq!(d.header, e.header);
        assert_eq!(d.hash(), e.hash());
        let changes = d.open(&key).unwrap();
        assert_eq!(changes[0].change, b"change-bytes");
        assert!(d.open(&SymmetricKey::generate().unwrap()).is_err());
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let keys = NodeKeys::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let e = sample(&keys, &key);
        for i in 0..e.bytes().len() {
            let mut b = e.bytes().to_vec();
            b[i] ^= 0x80;
            assert!(
                LogEntry::decode_verified(&b).is_err(),
                "flip at {i} accepted"
            );
        }
        assert!(LogEntry::decode_verified(&e.bytes()[..e.bytes().len() - 1]).is_err());
        assert!(LogEntry::decode_verified(&[]).is_err());
    }

    #[test]
    fn backlinks_are_checked() {
        let keys = NodeKeys::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let first = sample(&keys, &key);
        let mut h = first.header.clone();
        h.seq = 2;
        h.prev = first.hash();
        let second = LogEntry::create(&keys, h.clone(), &key, &encode_payload(&[])).unwrap();
        validate_backlink(&first, &second).unwrap();
        h.prev = Hash([1; 32]);
        let bad = LogEntry::create(&keys, h, &key, &encode_payload(&[])).unwrap();
        assert!(validate_backlink(&first, &bad).is_err());
    }

    #[test]
    fn a_later_chain_may_start_from_an_earlier_entry_or_from_nothing() {
        let keys = NodeKeys::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let entry = |seq: u64, prev: Hash| {
            let mut h = sample(&keys, &key).header;
            h.seq = seq;
            h.prev = prev;
            let e = LogEntry::create(&keys, h, &key, &encode_payload(&[])).unwrap();
            LogEntry::decode_verified(e.bytes()).map(|e| e.header.seq)
        };
        let later = chain_base(7) + 1;
        assert_eq!(entry(later, Hash::ZERO).unwrap(), later);
        assert_eq!(entry(later, Hash([3; 32])).unwrap(), later);
        assert_eq!((chain_of(later), position_of(later)), (7, 1));
        // Chain 0 starts from nothing; every other position follows an entry.
        assert!(entry(1, Hash([3; 32])).is_err());
        assert!(entry(later + 1, Hash::ZERO).is_err());
        // Position 0 does not exist, nor a chain past the signed range.
        assert!(entry(chain_base(7), Hash([3; 32])).is_err());
        assert!(entry(chain_base(MAX_CHAIN + 1) + 1, Hash::ZERO).is_err());
    }

    #[test]
    fn payload_bombs_and_garbage_are_refused() {
        let mut bomb = (u32::MAX).to_be_bytes().to_vec();
        bomb.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode_payload(&bomb),
            Err(SchemaError::TooLarge { .. })
        ));
        assert!(decode_payload(&[0, 0, 0, 10, 1, 2, 3]).is_err());
        assert!(decode_payload(&[]).is_err());
        let ok = encode_payload(&[]);
        assert_eq!(decode_payload(&ok).unwrap(), vec![]);
    }
}
