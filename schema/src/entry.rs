//! The log entry: one signed, encrypted unit of a (case, author) log.
//!
//! Layout (version 2), integers big-endian:
//!
//! ```text
//! head: version u8 | head len u32 | case [16] | author ed25519 [32] | seq u64 |
//!       prev hash [32] | epoch [32] | time_ms i64 |
//!       view count u32, (author [32], seq u64, hash [32])* |
//!       part count u32, (record tag [16], sealed len u32, sealed hash [32])* |
//!       signature [64]
//! tail: per part, 1 and its sealed bytes, or 0 (erased)
//! ```
//!
//! The payload is in parts, one per record: each part holds that record's
//! changes, sealed on its own with the case key of `epoch` (the header and
//! the part's record tag as associated data). The head lists every part by
//! its record tag, length and hash, and the signature covers the head; the
//! entry's hash is SHA-256 of the head. So a record's content can be removed
//! from an entry (erasure: the part's bytes replaced by a 0 in the tail)
//! while the signature still holds and every chain through the entry stays
//! whole. A part that is here must hash to what the head says. Decoding
//! verifies the signature over the received head first and keeps the bytes,
//! so verification never depends on re-encoding.
//!
//! A record's tag is a hash of the case and record ids ([`record_tag`]):
//! whoever holds the entry (a relay, without the case key, included) can
//! strip a record's parts and see which entries touch the same record, not
//! which record.
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

use casesync_crypto::hash::{Hash, sha256, sha256_parts};
use casesync_crypto::identity::SIGNATURE_LEN;
use casesync_crypto::{NodeKeys, SymmetricKey};

use crate::codec::{Reader, SignedLayout, Writer, verify_signed};
use crate::{CaseId, RecordId, SchemaError};

pub const ENTRY_VERSION: u8 = 2;
const SIGN_CONTEXT: &[u8] = b"casesync/entry/v2";
const AEAD_CONTEXT: &[u8] = b"casesync/entry-part/v2";
const TAG_CONTEXT: &[u8] = b"casesync/record-tag/v1";
/// Largest sealed payload in one entry (all its parts together).
pub const MAX_SEALED_BYTES: usize = 1024 * 1024;
/// Largest number of authors in an entry's view of the case.
pub const MAX_VIEW_ITEMS: usize = 4096;
/// Largest number of parts (records) in one entry.
pub const MAX_PARTS: usize = 8192;
const VIEW_ITEM_LEN: usize = 32 + 8 + 32;
const PART_ITEM_LEN: usize = 16 + 4 + 32;
/// Version, head length, case, author, seq, prev, epoch, time.
const FIXED_HEADER: usize = 1 + 4 + 16 + 32 + 8 + 32 + 32 + 8;
/// Where the author's key is in the head.
const AUTHOR_AT: usize = 1 + 4 + 16;
/// Largest head; checked before its signature.
const MAX_HEAD_BYTES: usize = FIXED_HEADER
    + 4
    + MAX_VIEW_ITEMS * VIEW_ITEM_LEN
    + 4
    + MAX_PARTS * PART_ITEM_LEN
    + SIGNATURE_LEN;
/// Largest encoded entry; checked before anything else.
pub const MAX_ENTRY_BYTES: usize = MAX_HEAD_BYTES + MAX_PARTS + MAX_SEALED_BYTES;
/// Largest decompressed payload: bounds what a hostile entry can make us allocate.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// Payload bytes a writer puts in one entry before starting the next; leaves room
/// for LZ4's worst-case expansion under [`MAX_SEALED_BYTES`] (each change's
/// share of its part's overhead is in [`payload_cost`]).
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

/// A record's tag in entries: which parts are its changes, without the
/// record id (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordTag(pub [u8; 16]);

/// The tag of record `record` of case `case`.
pub fn record_tag(case: &CaseId, record: &RecordId) -> RecordTag {
    let h = sha256_parts(&[TAG_CONTEXT, &case.0, &record.0]);
    let mut t = [0u8; 16];
    t.copy_from_slice(&h.0[..16]);
    RecordTag(t)
}

/// One part of an entry as its head lists it, and where its bytes are
/// (none once erased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub tag: RecordTag,
    pub hash: Hash,
    len: u32,
    range: Option<(usize, usize)>,
}

impl Part {
    /// Whether the part's content is here (not erased).
    pub fn is_here(&self) -> bool {
        self.range.is_some()
    }
}

/// A verified log entry, with the exact bytes it was received or written as.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub header: EntryHeader,
    parts: Vec<Part>,
    /// The head's length: its bytes, signature included, are what the hash covers.
    head_len: usize,
    bytes: Vec<u8>,
    hash: Hash,
}

/// One Automerge change to one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChange {
    pub record: RecordId,
    pub change: Vec<u8>,
}

/// The header's fields after the version and head length: the associated
/// data of every part, and what the head carries.
fn encode_header(h: &EntryHeader, w: &mut Writer) {
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

fn aad(header_fields: &[u8], tag: &RecordTag) -> Vec<u8> {
    let mut a = AEAD_CONTEXT.to_vec();
    a.extend_from_slice(header_fields);
    a.extend_from_slice(&tag.0);
    a
}

impl LogEntry {
    /// Seals `changes` under `epoch_key`, a part per record (in the order
    /// each record first appears), and signs the entry.
    pub fn create(
        keys: &NodeKeys,
        mut header: EntryHeader,
        epoch_key: &SymmetricKey,
        changes: &[RecordChange],
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
        let mut fields = Writer::new();
        encode_header(&header, &mut fields);
        let mut groups: Vec<(RecordTag, Vec<RecordChange>)> = Vec::new();
        let mut at: std::collections::HashMap<RecordTag, usize> = Default::default();
        for c in changes {
            let tag = record_tag(&header.case, &c.record);
            let i = *at.entry(tag).or_insert_with(|| {
                groups.push((tag, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(c.clone());
        }
        if groups.len() > MAX_PARTS {
            return Err(SchemaError::TooLarge {
                what: "entry parts",
                size: groups.len(),
                limit: MAX_PARTS,
            });
        }
        let dict = dictionary(&header);
        let mut sealed = Vec::with_capacity(groups.len());
        for (tag, group) in &groups {
            sealed.push((
                *tag,
                epoch_key.seal(&aad(&fields.buf, tag), &encode_with(group, &dict))?,
            ));
        }
        let total: usize = sealed.iter().map(|(_, s)| s.len()).sum();
        if total > MAX_SEALED_BYTES {
            return Err(SchemaError::TooLarge {
                what: "entry payload",
                size: total,
                limit: MAX_SEALED_BYTES,
            });
        }
        let head_len = 5 + fields.buf.len() + 4 + sealed.len() * PART_ITEM_LEN + SIGNATURE_LEN;
        let mut w = Writer::new();
        w.u8(ENTRY_VERSION);
        w.u32(head_len as u32);
        w.raw(&fields.buf);
        w.u32(sealed.len() as u32);
        for (tag, bytes) in &sealed {
            w.raw(&tag.0);
            w.u32(bytes.len() as u32);
            w.raw(sha256(bytes).as_bytes());
        }
        let sig = keys.sign(SIGN_CONTEXT, &w.buf);
        w.raw(&sig);
        debug_assert_eq!(w.buf.len(), head_len);
        let hash = sha256(&w.buf);
        let mut parts = Vec::with_capacity(sealed.len());
        for (tag, bytes) in &sealed {
            w.u8(1);
            let start = w.buf.len();
            w.raw(bytes);
            parts.push(Part {
                tag: *tag,
                hash: sha256(bytes),
                len: bytes.len() as u32,
                range: Some((start, w.buf.len())),
            });
        }
        Ok(LogEntry {
            header,
            parts,
            head_len,
            bytes: w.buf,
            hash,
        })
    }

    /// Verifies the signature over the head (against the author key at its
    /// fixed offset), then decodes it, then checks each part that is here
    /// against the hash the head gives it. Nothing past the head's length
    /// is read before the signature holds.
    pub fn decode_verified(bytes: &[u8]) -> Result<LogEntry, SchemaError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(SchemaError::TooLarge {
                what: "log entry",
                size: bytes.len(),
                limit: MAX_ENTRY_BYTES,
            });
        }
        if bytes.len() < 5 {
            return Err(SchemaError::malformed("log entry", "too short"));
        }
        let mut n = [0u8; 4];
        n.copy_from_slice(&bytes[1..5]);
        let head_len = u32::from_be_bytes(n) as usize;
        if head_len > bytes.len() {
            return Err(SchemaError::malformed(
                "log entry",
                "head longer than the entry",
            ));
        }
        let signed = verify_signed(
            &bytes[..head_len],
            &SignedLayout {
                what: "log entry",
                version: ENTRY_VERSION,
                min_len: FIXED_HEADER + 8 + SIGNATURE_LEN,
                max_len: MAX_HEAD_BYTES,
                key_at: AUTHOR_AT,
                context: SIGN_CONTEXT,
            },
        )?;
        let mut r = Reader::new(signed, "log entry");
        r.take(5)?;
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
        let n = r.count(MAX_PARTS, PART_ITEM_LEN)?;
        let mut listed = Vec::with_capacity(n);
        let mut total = 0usize;
        for _ in 0..n {
            let tag = RecordTag(r.array()?);
            let len = r.u32()?;
            let hash = Hash(r.array()?);
            total = total.saturating_add(len as usize);
            listed.push((tag, len, hash));
        }
        r.finish()?;
        if total > MAX_SEALED_BYTES {
            return Err(SchemaError::TooLarge {
                what: "entry payload",
                size: total,
                limit: MAX_SEALED_BYTES,
            });
        }
        // The tail: each part's bytes, or a 0 where it was erased.
        let mut t = Reader::new(&bytes[head_len..], "log entry");
        let mut parts = Vec::with_capacity(listed.len());
        for (i, (tag, len, hash)) in listed.into_iter().enumerate() {
            let range = match t.u8()? {
                0 => None,
                1 => {
                    let start = head_len + t.position();
                    let body = t.take(len as usize)?;
                    if !sha256(body).ct_eq(&hash) {
                        return Err(SchemaError::malformed(
                            "log entry",
                            format!("part {} does not match its hash", i + 1),
                        ));
                    }
                    Some((start, start + len as usize))
                }
                _ => {
                    return Err(SchemaError::malformed(
                        "log entry",
                        "a part is neither here nor erased",
                    ));
                }
            };
            parts.push(Part {
                tag,
                hash,
                len,
                range,
            });
        }
        t.finish()?;
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
            parts,
            head_len,
            bytes: bytes.to_vec(),
            hash: sha256(&bytes[..head_len]),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The entry's parts, as its head lists them.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The sealed bytes of part `i`, if it is here.
    pub fn part_bytes(&self, i: usize) -> Option<&[u8]> {
        let (s, e) = self.parts.get(i)?.range?;
        Some(&self.bytes[s..e])
    }

    /// Whether any part of record `tag` is here.
    pub fn holds(&self, tag: &RecordTag) -> bool {
        self.parts.iter().any(|p| &p.tag == tag && p.is_here())
    }

    /// The same entry with the parts of the records `tags` erased: the
    /// head, the signature and the hash are unchanged.
    pub fn without(&self, tags: &[RecordTag]) -> LogEntry {
        self.without_where(|t| tags.contains(t))
    }

    /// The same entry with the parts of every record `erased` says erased
    /// (see [`LogEntry::without`]); `None` if none of those is here.
    pub fn erasing(&self, erased: impl Fn(&RecordTag) -> bool) -> Option<LogEntry> {
        self.parts
            .iter()
            .any(|p| p.is_here() && erased(&p.tag))
            .then(|| self.without_where(erased))
    }

    /// This entry with each part from whichever copy holds it: `other` is
    /// another copy of it (the same hash, so the same parts, each checked
    /// against the head when decoded), which may hold parts this one lacks
    /// (withheld from this node before). `None` if it is another entry.
    pub fn filled_from(&self, other: &LogEntry) -> Option<LogEntry> {
        if !self.hash.ct_eq(&other.hash) || self.parts.len() != other.parts.len() {
            return None;
        }
        let mut w = Writer::new();
        w.raw(&self.bytes[..self.head_len]);
        let mut parts = Vec::with_capacity(self.parts.len());
        for (p, q) in self.parts.iter().zip(&other.parts) {
            let from = match (p.range, q.range) {
                (Some((s, e)), _) => Some(&self.bytes[s..e]),
                (None, Some((s, e))) => Some(&other.bytes[s..e]),
                (None, None) => None,
            };
            let range = match from {
                Some(b) => {
                    w.u8(1);
                    let start = w.buf.len();
                    w.raw(b);
                    Some((start, w.buf.len()))
                }
                None => {
                    w.u8(0);
                    None
                }
            };
            parts.push(Part { range, ..p.clone() });
        }
        Some(LogEntry {
            header: self.header.clone(),
            parts,
            head_len: self.head_len,
            bytes: w.buf,
            hash: self.hash,
        })
    }

    fn without_where(&self, erased: impl Fn(&RecordTag) -> bool) -> LogEntry {
        let mut w = Writer::new();
        w.raw(&self.bytes[..self.head_len]);
        let mut parts = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            let range = match p.range {
                Some((s, e)) if !erased(&p.tag) => {
                    w.u8(1);
                    let start = w.buf.len();
                    w.raw(&self.bytes[s..e]);
                    Some((start, w.buf.len()))
                }
                _ => {
                    w.u8(0);
                    None
                }
            };
            parts.push(Part { range, ..p.clone() });
        }
        LogEntry {
            header: self.header.clone(),
            parts,
            head_len: self.head_len,
            bytes: w.buf,
            hash: self.hash,
        }
    }

    /// Decrypts and decodes the parts that are here with the key of the
    /// entry's epoch. A part holding a change of a record other than its
    /// tag's is refused: erasing a record by its tag must take all of it.
    pub fn open(&self, epoch_key: &SymmetricKey) -> Result<Vec<RecordChange>, SchemaError> {
        let fields = &self.bytes[5..self.fields_end()];
        let dict = dictionary(&self.header);
        let mut out = Vec::new();
        for p in &self.parts {
            let Some((s, e)) = p.range else { continue };
            let plain = epoch_key.open(&aad(fields, &p.tag), &self.bytes[s..e])?;
            let changes = decode_with(&plain, &dict)?;
            if changes
                .iter()
                .any(|c| record_tag(&self.header.case, &c.record) != p.tag)
            {
                return Err(SchemaError::malformed(
                    "log entry",
                    "a part holds a change of another record than its tag's",
                ));
            }
            out.extend(changes);
        }
        Ok(out)
    }

    /// Where the header's fields end in the head (the part list follows).
    fn fields_end(&self) -> usize {
        self.head_len - SIGNATURE_LEN - 4 - self.parts.len() * PART_ITEM_LEN
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

/// The frozen part of the dictionary parts are compressed with: a template
/// change of each record type, field names and empty values (what every
/// record's first change repeats). Part of the format: changing it would
/// make older entries unreadable, so a new one needs a new entry version.
pub(crate) const DICTIONARY_BASE: &[u8] = include_bytes!("entry_dictionary.bin");

/// The dictionary the parts of an entry with header `h` are compressed
/// with: the frozen base, then what every change its author writes in this
/// chain carries (its Automerge actor, its PeerId as a record's originator)
/// and the case id. Derived from the header alone, never from a record, so
/// erasing any part leaves every other part readable; without it each
/// record, compressed alone, would keep nearly all its bytes.
fn dictionary(h: &EntryHeader) -> Vec<u8> {
    let mut d = DICTIONARY_BASE.to_vec();
    d.extend_from_slice(crate::doc::actor_for_chain(&h.author, chain_of(h.seq)).to_bytes());
    if let Ok(p) = casesync_crypto::identity::peer_id_of(&h.author) {
        d.extend_from_slice(p.as_bytes());
    }
    d.extend_from_slice(h.case.to_string().as_bytes());
    d
}

/// Encodes and compresses a list of record changes.
pub fn encode_payload(changes: &[RecordChange]) -> Vec<u8> {
    encode_with(changes, &[])
}

/// [`encode_payload`], compressed with dictionary `dict` (none if empty).
fn encode_with(changes: &[RecordChange], dict: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PAYLOAD_VERSION);
    w.u32(changes.len() as u32);
    for c in changes {
        w.raw(&c.record.0);
        w.bytes(&c.change);
    }
    let mut out = Vec::with_capacity(w.buf.len() / 2 + 8);
    out.extend_from_slice(&(w.buf.len() as u32).to_be_bytes());
    out.extend_from_slice(&if dict.is_empty() {
        lz4_flex::block::compress(&w.buf)
    } else {
        lz4_flex::block::compress_with_dict(&w.buf, dict)
    });
    out
}

/// What a change may take of an entry's sealed bytes, at most: its encoding
/// in a payload, and as if it were alone in its part, that part's framing,
/// seal and LZ4's worst-case growth. A writer that keeps the sum under
/// [`TARGET_PAYLOAD_BYTES`] and the count under [`MAX_PARTS`] makes entries
/// that fit.
pub fn payload_cost(change: &RecordChange) -> usize {
    let encoded = 16 + 4 + change.change.len();
    encoded + encoded / 255 + 64
}

/// Decompresses (within [`MAX_PAYLOAD_BYTES`]) and decodes a payload.
pub fn decode_payload(bytes: &[u8]) -> Result<Vec<RecordChange>, SchemaError> {
    decode_with(bytes, &[])
}

/// [`decode_payload`] of a payload compressed with dictionary `dict`.
fn decode_with(bytes: &[u8], dict: &[u8]) -> Result<Vec<RecordChange>, SchemaError> {
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
    let got = if dict.is_empty() {
        lz4_flex::block::decompress_into(&bytes[4..], &mut plain)
    } else {
        lz4_flex::block::decompress_into_with_dict(&bytes[4..], &mut plain, dict)
    }
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
        let changes = [
            RecordChange {
                record: RecordId([1; 16]),
                change: b"change-bytes".to_vec(),
            },
            RecordChange {
                record: RecordId([2; 16]),
                change: b"other-record".to_vec(),
            },
            RecordChange {
                record: RecordId([1; 16]),
                change: b"second-change".to_vec(),
            },
        ];
        LogEntry::create(keys, header, key, &changes).unwrap()
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
        let got: Vec<&[u8]> = changes.iter().map(|c| c.change.as_slice()).collect();
        assert_eq!(
            got,
            [&b"change-bytes"[..], b"second-change", b"other-record"],
            "a part per record, in the order each first appears"
        );
        assert_eq!(d.parts().len(), 2);
        assert!(d.open(&SymmetricKey::generate().unwrap()).is_err());
    }

    /// Two copies of one entry, each missing another record's part (held
    /// back from two nodes), fill each other back to the whole entry; a
    /// copy of another entry fills nothing.
    #[test]
    fn copies_of_an_entry_fill_each_others_withheld_parts() {
        let keys = NodeKeys::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let e = sample(&keys, &key);
        let one = record_tag(&e.header.case, &RecordId([1; 16]));
        let two = record_tag(&e.header.case, &RecordId([2; 16]));
        let a = LogEntry::decode_verified(e.without(&[one]).bytes()).unwrap();
        let b = LogEntry::decode_verified(e.without(&[two]).bytes()).unwrap();
        let filled = a.filled_from(&b).unwrap();
        assert_eq!(filled.bytes(), e.bytes());
        assert_eq!(b.filled_from(&a).unwrap().bytes(), e.bytes());
        let again = LogEntry::decode_verified(filled.bytes()).unwrap();
        assert_eq!(again.open(&key).unwrap().len(), 3);
        let nothing = e.without(&[one, two]);
        assert_eq!(nothing.filled_from(&a).unwrap().bytes(), a.bytes());
        let other = sample(&keys, &key);
        assert!(
            a.filled_from(&other).is_none(),
            "another entry (another signature)"
        );
    }

    #[test]
    fn a_record_erased_from_an_entry_leaves_its_signature_hash_and_the_rest() {
        let keys = NodeKeys::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let e = sample(&keys, &key);
        let one = record_tag(&e.header.case, &RecordId([1; 16]));
        let two = record_tag(&e.header.case, &RecordId([2; 16]));
        let sealed_one: Vec<u8> = {
            let p = &e.parts()[0];
            let (s, end) = p.range.unwrap();
            e.bytes()[s..end].to_vec()
        };
        let stripped = e.without(&[one]);
        assert!(stripped.bytes().len() < e.bytes().len());
        assert!(
            !stripped
                .bytes()
                .windows(sealed_one.len())
                .any(|w| w == sealed_one.as_slice()),
            "the erased part's bytes are gone"
        );
        let d = LogEntry::decode_verified(stripped.bytes()).unwrap();
        assert_eq!(d.hash(), e.hash(), "chains through the entry stay whole");
        assert!(!d.holds(&one) && d.holds(&two));
        let left = d.open(&key).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].change, b"other-record");
        // Erased twice, or everything: still the same entry.
        let none = d.without(&[one, two]);
        let n = LogEntry::decode_verified(none.bytes()).unwrap();
        assert_eq!(n.hash(), e.hash());
        assert!(n.open(&key).unwrap().is_empty());
        // A part put back must be the one signed: another's bytes are
        // refused (the node's record of erasures keeps the signed one out).
        let sealed_two: Vec<u8> = {
            let (s, end) = e.parts()[1].range.unwrap();
            e.bytes()[s..end].to_vec()
        };
        let put_back = |bytes: &[u8]| {
            let mut b = n.bytes().to_vec();
            let tail = b.len() - 2;
            b[tail] = 1;
            b.splice(tail + 1..tail + 1, bytes.iter().copied());
            LogEntry::decode_verified(&b)
        };
        assert!(put_back(&sealed_two).is_err());
        assert!(put_back(&sealed_one).unwrap().holds(&one));
    }

    /// Erasure's invariant on entries, exhaustively in a small scope: an
    /// entry of three records' parts, erased by every sequence of record
    /// sets (repeats, ties and every order included), ends byte for byte as
    /// erasing their union at once, with the same hash, and opens to exactly
    /// the records not erased.
    #[test]
    fn every_order_of_erasures_ends_in_the_same_entry() {
        let keys = NodeKeys::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let e = sample(&keys, &key);
        let header = e.header.clone();
        let three = LogEntry::create(
            &keys,
            header,
            &key,
            &[
                RecordChange {
                    record: RecordId([1; 16]),
                    change: b"one".to_vec(),
                },
                RecordChange {
                    record: RecordId([2; 16]),
                    change: b"two".to_vec(),
                },
                RecordChange {
                    record: RecordId([3; 16]),
                    change: b"three".to_vec(),
                },
            ],
        )
        .unwrap();
        let tags: Vec<RecordTag> = (1..=3u8)
            .map(|i| record_tag(&three.header.case, &RecordId([i; 16])))
            .collect();
        // Every non-empty subset of the three records, as a bit mask.
        let sets: Vec<Vec<RecordTag>> = (1..8u8)
            .map(|m| {
                (0..3)
                    .filter(|i| m & (1 << i) != 0)
                    .map(|i| tags[i])
                    .collect()
            })
            .collect();
        let mut checked = 0;
        for a in &sets {
            for b in &sets {
                for c in &sets {
                    let mut step = three.clone();
                    for set in [a, b, c] {
                        step = LogEntry::decode_verified(step.without(set).bytes()).unwrap();
                    }
                    let union: Vec<RecordTag> = tags
                        .iter()
                        .filter(|t| a.contains(t) || b.contains(t) || c.contains(t))
                        .copied()
                        .collect();
                    let once = three.without(&union);
                    assert_eq!(step.bytes(), once.bytes());
                    assert_eq!(step.hash(), three.hash());
                    let left: Vec<RecordId> =
                        step.open(&key).unwrap().iter().map(|c| c.record).collect();
                    let want: Vec<RecordId> = (1..=3u8)
                        .map(|i| RecordId([i; 16]))
                        .filter(|r| !union.contains(&record_tag(&three.header.case, r)))
                        .collect();
                    assert_eq!(left, want);
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 343);
    }

    #[test]
    fn a_part_must_hold_only_its_own_records_changes() {
        // A writer that puts record 2's change in record 1's part (so that
        // erasing 2 by its tag would miss it) is refused when opened.
        let keys = NodeKeys::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let e = sample(&keys, &key);
        let mut header = e.header.clone();
        header.author = keys.public().ed25519;
        let mut fields = Writer::new();
        encode_header(&header, &mut fields);
        let tag = record_tag(&header.case, &RecordId([1; 16]));
        let smuggled = encode_payload(&[RecordChange {
            record: RecordId([2; 16]),
            change: b"hidden".to_vec(),
        }]);
        let sealed = key.seal(&aad(&fields.buf, &tag), &smuggled).unwrap();
        let head_len = 5 + fields.buf.len() + 4 + PART_ITEM_LEN + SIGNATURE_LEN;
        let mut w = Writer::new();
        w.u8(ENTRY_VERSION);
        w.u32(head_len as u32);
        w.raw(&fields.buf);
        w.u32(1);
        w.raw(&tag.0);
        w.u32(sealed.len() as u32);
        w.raw(sha256(&sealed).as_bytes());
        let sig = keys.sign(SIGN_CONTEXT, &w.buf);
        w.raw(&sig);
        w.u8(1);
        w.raw(&sealed);
        let d = LogEntry::decode_verified(&w.buf).unwrap();
        let err = d.open(&key).unwrap_err().to_string();
        assert!(err.contains("another record"), "{err}");
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
        let second = LogEntry::create(&keys, h.clone(), &key, &[]).unwrap();
        validate_backlink(&first, &second).unwrap();
        h.prev = Hash([1; 32]);
        let bad = LogEntry::create(&keys, h, &key, &[]).unwrap();
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
            let e = LogEntry::create(&keys, h, &key, &[]).unwrap();
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

    /// The frozen dictionary base must never change (older entries would
    /// not open): its hash is pinned.
    const DICTIONARY_BASE_SHA256: &str =
        "1deab8ba4aaa921c13c080bd6eedf49ea76ca62f7091f84329ac5938a25d4148";

    #[test]
    fn the_dictionary_base_is_frozen() {
        assert_eq!(
            casesync_crypto::hash::sha256(DICTIONARY_BASE).to_hex(),
            DICTIONARY_BASE_SHA256
        );
    }
}
