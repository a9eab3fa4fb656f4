//! A bounded binary reader and writer: the one place where bytes from outside are
//! turned into lengths. Every length is checked against the bytes actually left
//! and a caller-given cap before anything is allocated.

use casesync_crypto::identity::{self, SIGNATURE_LEN};

use crate::SchemaError;

pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { buf: Vec::new() }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// Length-prefixed (u32) bytes. Callers keep lengths under their caps, so the
    /// cast cannot truncate.
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.raw(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// An unsigned LEB128 integer: one byte below 128. For encodings kept
    /// many times over (a stored record view), where u32 lengths would be a
    /// tenth of the bytes.
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    /// Bytes prefixed with their length as [`Writer::var`].
    pub fn var_bytes(&mut self, b: &[u8]) {
        self.var(b.len() as u64);
        self.raw(b);
    }
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    fn err(&self, reason: &str) -> SchemaError {
        SchemaError::malformed(self.what, format!("{reason} at byte {}", self.pos))
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], SchemaError> {
        if n > self.remaining() {
            return Err(self.err("truncated"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], SchemaError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, SchemaError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, SchemaError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, SchemaError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, SchemaError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, SchemaError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Length-prefixed bytes, at most `cap` long.
    pub fn bytes(&mut self, cap: usize) -> Result<&'a [u8], SchemaError> {
        let n = self.u32()? as usize;
        if n > cap {
            return Err(self.err(&format!("field of {n} bytes exceeds limit {cap}")));
        }
        self.take(n)
    }

    pub fn str(&mut self, cap: usize) -> Result<&'a str, SchemaError> {
        let b = self.bytes(cap)?;
        std::str::from_utf8(b).map_err(|_| self.err("invalid UTF-8"))
    }

    /// An unsigned LEB128 integer ([`Writer::var`]); more than 64 bits is
    /// malformed.
    pub fn var(&mut self) -> Result<u64, SchemaError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let low = u64::from(b & 0x7f);
            if shift == 63 && low > 1 {
                return Err(self.err("integer over 64 bits"));
            }
            v |= low << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("integer over 64 bits"))
    }

    /// Bytes written by [`Writer::var_bytes`], at most `cap` long.
    pub fn var_bytes(&mut self, cap: usize) -> Result<&'a [u8], SchemaError> {
        let n = self.var()?;
        if n > cap as u64 {
            return Err(self.err(&format!("field of {n} bytes exceeds limit {cap}")));
        }
        self.take(n as usize)
    }

    pub fn var_str(&mut self, cap: usize) -> Result<&'a str, SchemaError> {
        let b = self.var_bytes(cap)?;
        std::str::from_utf8(b).map_err(|_| self.err("invalid UTF-8"))
    }

    /// A count as [`Reader::count`], written with [`Writer::var`].
    pub fn var_count(&mut self, cap: usize, min_item: usize) -> Result<usize, SchemaError> {
        let n = self.var()?;
        if n > cap as u64 || (n as usize).saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(self.err(&format!("count {n} exceeds limit or data")));
        }
        Ok(n as usize)
    }

    /// A count of items that each take at least `min_item` bytes, at most `cap`:
    /// the count is checked against the bytes left so a forged count cannot
    /// make the caller reserve memory for items that are not there.
    pub fn count(&mut self, cap: usize, min_item: usize) -> Result<usize, SchemaError> {
        let n = self.u32()? as usize;
        if n > cap || n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(self.err(&format!("count {n} exceeds limit or data")));
        }
        Ok(n)
    }

    pub fn finish(&self) -> Result<(), SchemaError> {
        if self.remaining() != 0 {
            return Err(self.err("trailing bytes"));
        }
        Ok(())
    }
}

/// How a signed encoding is laid out, for [`verify_signed`].
pub struct SignedLayout {
    pub what: &'static str,
    pub version: u8,
    /// Shortest valid encoding, signature included.
    pub min_len: usize,
    /// Longest accepted encoding: checked before anything else.
    pub max_len: usize,
    /// Offset of the signer's Ed25519 key in the signed part.
    pub key_at: usize,
    /// Domain-separation context of the signature.
    pub context: &'static [u8],
}

/// Checks size bounds and the version byte, then verifies the trailing Ed25519
/// signature over everything before it with the key at its fixed offset. Returns
/// the signed part; callers decode only that, and only after this succeeds.
pub fn verify_signed<'a>(bytes: &'a [u8], l: &SignedLayout) -> Result<&'a [u8], SchemaError> {
    if bytes.len() > l.max_len {
        return Err(SchemaError::TooLarge {
            what: l.what,
            size: bytes.len(),
            limit: l.max_len,
        });
    }
    if bytes.len() < l.min_len.max(l.key_at + 32 + SIGNATURE_LEN) {
        return Err(SchemaError::malformed(l.what, "too short"));
    }
    if bytes[0] != l.version {
        return Err(SchemaError::UnsupportedVersion {
            what: l.what,
            version: bytes[0],
        });
    }
    let (signed, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let mut key = [0u8; 32];
    key.copy_from_slice(&signed[l.key_at..l.key_at + 32]);
    let mut s = [0u8; SIGNATURE_LEN];
    s.copy_from_slice(sig);
    identity::verify(&key, l.context, signed, &s).map_err(|_| SchemaError::BadSignature(l.what))?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut w = Writer::new();
        w.u8(1);
        w.str("héllo");
        w.u64(7);
        let mut r = Reader::new(&w.buf, "test");
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.str(100).unwrap(), "héllo");
        assert_eq!(r.u64().unwrap(), 7);
        r.finish().unwrap();
        let mut r = Reader::new(&w.buf, "test");
        r.u8().unwrap();
        assert!(r.str(3).is_err(), "cap is enforced");
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff], "test");
        assert!(r.count(usize::MAX, 1).is_err(), "count larger than data");
        let mut r = Reader::new(&[0, 0, 0, 9, 1], "test");
        assert!(r.bytes(100).is_err(), "truncated");
    }

    #[test]
    fn var_integers_round_trip_and_refuse_overlong() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut w = Writer::new();
            w.var(v);
            let mut r = Reader::new(&w.buf, "test");
            assert_eq!(r.var().unwrap(), v);
            r.finish().unwrap();
        }
        let mut w = Writer::new();
        w.var(127);
        assert_eq!(w.buf.len(), 1, "below 128 takes one byte");
        let mut r = Reader::new(&[0xff; 11], "test");
        assert!(r.var().is_err(), "more than 64 bits");
        let mut r = Reader::new(
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            "test",
        );
        assert!(r.var().is_err(), "the tenth byte carries one bit at most");
        let mut r = Reader::new(&[0x80], "test");
        assert!(r.var().is_err(), "truncated");
        let mut r = Reader::new(&[0x05, b'a'], "test");
        assert!(r.var_bytes(100).is_err(), "length past the data");
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f], "test");
        assert!(
            r.var_count(usize::MAX, 1).is_err(),
            "count larger than data"
        );
    }
}
