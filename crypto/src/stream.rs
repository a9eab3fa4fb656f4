//! Files sealed in segments (evidence files): a random key per file, and
//! ChaCha20-Poly1305 over each segment with a nonce made of the segment's
//! index and a last-segment flag (the STREAM construction of Hoang,
//! Reyhanitabar, Rogaway and Vizár, "Online Authenticated-Encryption and its
//! Nonce-Reuse Misuse-Resistance", 2015). A segment moved to another index,
//! a file cut after any segment, or a segment of another file (another key,
//! and the file's identity in the associated data) fails to open. Each key
//! seals one file once, so no (key, nonce) pair is ever used twice.

use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;
use crate::aead::{NONCE_LEN, TAG_LEN};

/// The key of one file. Never printed; wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct FileKey([u8; 32]);

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

/// Bytes a segment grows by when sealed.
pub const OVERHEAD: usize = TAG_LEN;

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[8] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

impl FileKey {
    /// A fresh random key: one per file, never derived from its content
    /// (convergent encryption would tell agencies they hold the same file).
    pub fn generate() -> Result<FileKey, CryptoError> {
        Ok(FileKey(crate::random_32()?))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> FileKey {
        FileKey(bytes)
    }

    /// The raw key, for wrapping it to the case. Never log or store it unsealed.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn ring_key(&self) -> Result<LessSafeKey, CryptoError> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| CryptoError::Seal)
    }

    /// Seals segment `index` (`last` for the file's final one) bound to
    /// `aad` (the file's identity and segment count). Output: ciphertext || tag.
    pub fn seal_segment(
        &self,
        index: u64,
        last: bool,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut buf = Vec::with_capacity(plaintext.len() + OVERHEAD);
        buf.extend_from_slice(plaintext);
        self.ring_key()?
            .seal_in_place_append_tag(nonce(index, last), Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Seal)?;
        Ok(buf)
    }

    /// Opens what [`FileKey::seal_segment`] sealed with the same index, flag
    /// and `aad`; anything else fails.
    pub fn open_segment(
        &self,
        index: u64,
        last: bool,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::Open);
        }
        let mut buf = sealed.to_vec();
        let n = self
            .ring_key()?
            .open_in_place(nonce(index, last), Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Open)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_open_only_in_place_in_their_file() {
        let k = FileKey::generate().unwrap();
        let a = k.seal_segment(0, false, b"file-a", b"first").unwrap();
        let b = k.seal_segment(1, true, b"file-a", b"last").unwrap();
        assert_eq!(k.open_segment(0, false, b"file-a", &a).unwrap(), b"first");
        assert_eq!(k.open_segment(1, true, b"file-a", &b).unwrap(), b"last");
        // Reordered, or a middle segment taken for the last (a cut file).
        assert!(k.open_segment(1, true, b"file-a", &a).is_err());
        assert!(k.open_segment(0, true, b"file-a", &a).is_err());
        assert!(k.open_segment(1, false, b"file-a", &b).is_err());
        // Another file's identity, or another file's key.
        assert!(k.open_segment(0, false, b"file-b", &a).is_err());
        let other = FileKey::generate().unwrap();
        assert!(other.open_segment(0, false, b"file-a", &a).is_err());
        // A flipped bit, a truncation.
        let mut bad = a.clone();
        bad[0] ^= 1;
        assert!(k.open_segment(0, false, b"file-a", &bad).is_err());
        assert!(k.open_segment(0, false, b"file-a", &a[..4]).is_err());
    }

    #[test]
    fn two_keys_seal_the_same_file_differently() {
        let (k1, k2) = (FileKey::generate().unwrap(), FileKey::generate().unwrap());
        assert_ne!(
            k1.seal_segment(0, true, b"f", b"same").unwrap(),
            k2.seal_segment(0, true, b"f", b"same").unwrap()
        );
        assert_eq!(format!("{k1:?}"), "FileKey(<redacted>)");
    }
}
