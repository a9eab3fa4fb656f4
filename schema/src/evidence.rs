//! Evidence files: how a file is cut, sealed and described (pure; the node
//! reads, writes and moves the pieces).
//!
//! A file is cut into segments of [`SEGMENT`] bytes. Each is sealed under the
//! file's own random key (`casesync_crypto::stream`: its index and whether
//! it is the last in the nonce, the record and the segment count in the
//! associated data). A sealed segment is a *piece*, named by SHA-256 of its
//! bytes, so any node can store, resume and verify pieces it cannot read.
//! The [`Manifest`] lists the pieces in order and carries the file key
//! sealed under a key epoch of the case; it is stored as a piece too, and
//! the record's `content` field names it by its hash (the file's root). The
//! record also carries SHA-256 of the plaintext (what forensic tools and
//! courts compare), the size and the media type.
//!
//! Why these choices: 1 MiB segments keep a piece in flight small (memory
//! bounded by pieces, not files) while a 1 GiB file needs only 1,024 of them
//! and a 32 KiB manifest; SHA-256 per piece in the manifest (rather than a
//! BLAKE3 tree) lets a piece be checked on its own with the hash the rest of
//! casesync and `sha256sum` use, and the manifest's own hash commits to all
//! of them. Destroying the manifest destroys the only sealed copy of the file
//! key: the pieces left anywhere are unreadable.

use casesync_crypto::Hash;

use crate::codec::{Reader, Writer};
use crate::{RecordId, SchemaError};

/// Plaintext bytes per segment.
pub const SEGMENT: u32 = 1 << 20;
/// Largest file: 1 TiB.
pub const MAX_FILE: u64 = 1 << 40;
/// Most pieces one manifest lists.
pub const MAX_PIECES: u64 = MAX_FILE / SEGMENT as u64;
/// Largest piece on disk or on the wire: a segment and its tag.
pub const MAX_PIECE: usize = SEGMENT as usize + casesync_crypto::stream::OVERHEAD;
/// Largest manifest.
pub const MAX_MANIFEST: usize = 64 + 32 * MAX_PIECES as usize + 256;

const MAGIC: &[u8; 8] = b"csevid01";

/// How many pieces a file of `size` bytes is cut into (an empty file is one
/// empty piece, so even it has a last segment).
pub fn piece_count(size: u64, segment: u32) -> u64 {
    size.div_ceil(u64::from(segment.max(1))).max(1)
}

/// What each segment of the file is sealed with as associated data.
pub fn segment_aad(record: &RecordId, count: u64) -> Vec<u8> {
    let mut a = b"casesync/evidence-segment/v1".to_vec();
    a.extend_from_slice(&record.0);
    a.extend_from_slice(&count.to_be_bytes());
    a
}

/// What the file key is sealed with under the case's epoch key.
pub fn key_aad(record: &RecordId, size: u64) -> Vec<u8> {
    let mut a = b"casesync/evidence-key/v1".to_vec();
    a.extend_from_slice(&record.0);
    a.extend_from_slice(&size.to_be_bytes());
    a
}

/// The list of a file's pieces and its sealed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The evidence record the file belongs to.
    pub record: RecordId,
    /// Plaintext bytes.
    pub size: u64,
    pub segment: u32,
    /// SHA-256 of each piece, in order.
    pub pieces: Vec<Hash>,
    /// The case key epoch the file key is sealed under.
    pub epoch: Hash,
    /// The file key, sealed under that epoch's key (`key_aad`).
    pub sealed_key: Vec<u8>,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(MAGIC);
        w.raw(&self.record.0);
        w.u64(self.size);
        w.u32(self.segment);
        w.raw(&self.epoch.0);
        w.bytes(&self.sealed_key);
        w.u64(self.pieces.len() as u64);
        for p in &self.pieces {
            w.raw(&p.0);
        }
        w.buf
    }

    /// Decodes a manifest whose hash the caller has checked against the
    /// record's root; refuses one whose piece count does not fit its size.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, SchemaError> {
        if bytes.len() > MAX_MANIFEST {
            return Err(SchemaError::TooLarge {
                what: "evidence manifest",
                size: bytes.len(),
                limit: MAX_MANIFEST,
            });
        }
        let mut r = Reader::new(bytes, "evidence manifest");
        if r.take(8)? != MAGIC {
            return Err(SchemaError::malformed(
                "evidence manifest",
                "not a casesync evidence manifest",
            ));
        }
        let record = RecordId(r.array::<16>()?);
        let size = r.u64()?;
        let segment = r.u32()?;
        let epoch = Hash(r.array::<32>()?);
        let sealed_key = r.bytes(128)?.to_vec();
        if size > MAX_FILE || !(4096..=16 << 20).contains(&segment) {
            return Err(SchemaError::malformed(
                "evidence manifest",
                format!("size {size} or segment {segment} out of range"),
            ));
        }
        let n = r.u64()?;
        if n != piece_count(size, segment) || n > (r.remaining() / 32) as u64 {
            return Err(SchemaError::malformed(
                "evidence manifest",
                format!("{n} pieces do not make a file of {size} bytes"),
            ));
        }
        let mut pieces = Vec::with_capacity(n as usize);
        for _ in 0..n {
            pieces.push(Hash(r.array::<32>()?));
        }
        r.finish()?;
        Ok(Manifest {
            record,
            size,
            segment,
            pieces,
            epoch,
            sealed_key,
        })
    }

    /// Plaintext bytes of piece `index`.
    pub fn plain_len(&self, index: u64) -> u64 {
        let start = index * u64::from(self.segment);
        self.size.saturating_sub(start).min(u64::from(self.segment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(size: u64) -> Manifest {
        let n = piece_count(size, SEGMENT);
        Manifest {
            record: RecordId([7; 16]),
            size,
            segment: SEGMENT,
            pieces: (0..n).map(|i| Hash([i as u8; 32])).collect(),
            epoch: Hash([1; 32]),
            sealed_key: vec![9; 60],
        }
    }

    #[test]
    fn manifests_round_trip_and_count_their_pieces() {
        for size in [0, 1, SEGMENT as u64, SEGMENT as u64 + 1, 5 * SEGMENT as u64] {
            let m = manifest(size);
            assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        }
        assert_eq!(piece_count(0, SEGMENT), 1);
        assert_eq!(piece_count(SEGMENT as u64, SEGMENT), 1);
        assert_eq!(piece_count(SEGMENT as u64 + 1, SEGMENT), 2);
        let m = manifest(SEGMENT as u64 + 10);
        assert_eq!(m.plain_len(0), SEGMENT as u64);
        assert_eq!(m.plain_len(1), 10);
    }

    #[test]
    fn a_manifest_that_lies_is_refused_without_allocating_for_it() {
        let good = manifest(3 * SEGMENT as u64).encode();
        // A count that does not fit the size.
        let mut m = manifest(3 * SEGMENT as u64);
        m.pieces.pop();
        assert!(Manifest::decode(&m.encode()).is_err());
        // A huge count with few bytes behind it: refused before allocating.
        let mut lie = good.clone();
        let at = lie.len() - 3 * 32 - 8;
        lie[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(Manifest::decode(&lie).is_err());
        // Truncated, trailing bytes, another format.
        assert!(Manifest::decode(&good[..good.len() - 1]).is_err());
        assert!(Manifest::decode(&[good.clone(), vec![0]].concat()).is_err());
        assert!(Manifest::decode(b"csbundle").is_err());
        for i in 0..good.len() {
            let _ = Manifest::decode(&good[..i]);
        }
    }
}
