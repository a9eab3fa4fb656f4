//! SHA-256 hashes, keyed blind indexes (HMAC-SHA256), and constant-time equality.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A SHA-256 digest: the id of log entries, control operations and key epochs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0u8; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// A short prefix for humans (log lines, error messages).
    pub fn short(&self) -> String {
        hex(&self.0[..6])
    }

    pub fn from_slice(b: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(b).ok().map(Hash)
    }

    /// Constant-time comparison, for checking a computed hash against a stored one.
    pub fn ct_eq(&self, other: &Hash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Hash(out)
}

/// SHA-256 over a stream of bytes (files too large to hold in memory).
pub struct Sha256Stream(ring::digest::Context);

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256Stream {
    pub fn new() -> Sha256Stream {
        Sha256Stream(ring::digest::Context::new(&ring::digest::SHA256))
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> Hash {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        Hash(out)
    }
}

/// SHA-256 over several parts, each prefixed with its length so part boundaries
/// cannot be shifted to forge the same digest from different parts.
pub fn sha256_parts(parts: &[&[u8]]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Hash(out)
}

/// Constant-time equality of two byte strings (MACs, hashes).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        s.push(DIGITS[(byte >> 4) as usize] as char);
        s.push(DIGITS[(byte & 0xf) as usize] as char);
    }
    s
}

/// Parses lower- or upper-case hex; `None` on any other character or odd length.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let val = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(val(p[0])? << 4 | val(p[1])?))
        .collect()
}

/// Keyed hashing for lookup columns ("blind indexes"): a stored column holds
/// HMAC-SHA256(per-table key, value), so equality lookups work while the value
/// itself never reaches disk. Per-table keys stop correlation across tables.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BlindIndexKey([u8; 32]);

impl BlindIndexKey {
    /// Derives the key for `table` from the node's storage key material.
    pub fn derive(storage_key: &[u8; 32], table: &str) -> BlindIndexKey {
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"casesync/blind-index/v1")
            .extract(storage_key);
        let info = [table.as_bytes()];
        let mut out = [0u8; 32];
        // infallible: 32 bytes is far below HKDF-SHA256's 255*32 output limit.
        if let Ok(okm) = prk.expand(&info, ring::hkdf::HKDF_SHA256) {
            let _ = okm.fill(&mut out);
        }
        BlindIndexKey(out)
    }

    pub fn index(&self, value: &[u8]) -> [u8; 32] {
        self.indexer().index(value)
    }

    /// The key made ready for many values in a row: HMAC's inner and outer
    /// states are computed once, not per value. A record is filed under
    /// thirty-odd search terms, and making the key for each was half the
    /// cost of filing it (a tenth of a receiving node's CPU).
    pub fn indexer(&self) -> BlindIndexer {
        BlindIndexer(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0))
    }
}

/// [`BlindIndexKey::indexer`]: for one batch of values, then dropped. ring
/// does not zeroize its HMAC states, so it is never kept beyond the batch,
/// as the key made inside each [`BlindIndexKey::index`] call was not.
pub struct BlindIndexer(ring::hmac::Key);

impl BlindIndexer {
    pub fn index(&self, value: &[u8]) -> [u8; 32] {
        let tag = ring::hmac::sign(&self.0, value);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

impl fmt::Debug for BlindIndexer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndexer(<redacted>)")
    }
}

impl fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndexKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(sha256_parts(&[b"ab", b"c"]), sha256_parts(&[b"a", b"bc"]));
    }

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        assert_eq!(
            from_hex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn blind_index_depends_on_table_and_key() {
        let k = [7u8; 32];
        let a = BlindIndexKey::derive(&k, "records").index(b"x");
        let b = BlindIndexKey::derive(&k, "cases").index(b"x");
        let c = BlindIndexKey::derive(&[8u8; 32], "records").index(b"x");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, BlindIndexKey::derive(&k, "records").index(b"x"));
        assert!(!format!("{:?}", BlindIndexKey::derive(&k, "t")).contains('7'));
        // Made once for many values, the same indexes as one at a time.
        let key = BlindIndexKey::derive(&k, "records");
        let many = key.indexer();
        assert_eq!(many.index(b"x"), a);
        assert_eq!(many.index(b"y"), key.index(b"y"));
        assert_ne!(many.index(b"y"), a);
        assert_eq!(format!("{many:?}"), "BlindIndexer(<redacted>)");
    }
}
