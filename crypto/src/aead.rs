//! Symmetric sealing with associated data: ChaCha20-Poly1305 from ring.
//!
//! Nonces are 96 random bits drawn per message. Every key here (a case epoch key,
//! the node storage key, a keystore key) seals far fewer than 2^32 messages, which
//! keeps the chance of a repeated (key, nonce) pair negligible.

use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// A 256-bit symmetric key, wiped from memory when dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SymmetricKey([u8; 32]);

impl SymmetricKey {
    pub fn generate() -> Result<SymmetricKey, CryptoError> {
        Ok(SymmetricKey(crate::random_32()?))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> SymmetricKey {
        SymmetricKey(bytes)
    }

    /// The raw key, for wrapping it to another key. Callers must not log or store it
    /// unsealed.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives an independent subkey for `purpose`, so one master key can serve
    /// several uses without any two sharing a (key, nonce) space.
    pub fn derive(&self, purpose: &str) -> SymmetricKey {
        let prk =
            ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"casesync/subkey/v1").extract(&self.0);
        let info = [purpose.as_bytes()];
        let mut out = [0u8; 32];
        // infallible: 32 bytes is within HKDF-SHA256's output limit.
        if let Ok(okm) = prk.expand(&info, ring::hkdf::HKDF_SHA256) {
            let _ = okm.fill(&mut out);
        }
        SymmetricKey(out)
    }

    fn ring_key(&self) -> Result<LessSafeKey, CryptoError> {
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, &self.0).map_err(|_| CryptoError::Seal)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Seals `plaintext` bound to `aad`. Output: nonce || ciphertext || tag.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::random_bytes(&mut nonce)?;
        let key = self.ring_key()?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Seal)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens the output of [`SymmetricKey::seal`]; fails if the key, `aad` or any byte differs.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let key = self.ring_key()?;
        let mut buf = body.to_vec();
        let plain_len = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Open)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let k = SymmetricKey::generate().unwrap();
        let s = k.seal(b"ad", b"hello").unwrap();
        assert_eq!(k.open(b"ad", &s).unwrap(), b"hello");
    }

    #[test]
    fn wrong_aad_key_or_flipped_byte_fails() {
        let k = SymmetricKey::generate().unwrap();
        let s = k.seal(b"ad", b"hello").unwrap();
        assert!(k.open(b"other", &s).is_err());
        assert!(SymmetricKey::generate().unwrap().open(b"ad", &s).is_err());
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(k.open(b"ad", &t).is_err(), "flip at {i} accepted");
        }
        assert!(k.open(b"ad", &s[..10]).is_err());
    }

    #[test]
    fn nonces_differ_between_seals() {
        let k = SymmetricKey::generate().unwrap();
        assert_ne!(
            k.seal(b"", b"x").unwrap()[..NONCE_LEN],
            k.seal(b"", b"x").unwrap()[..NONCE_LEN]
        );
    }

    #[test]
    fn debug_redacts_and_subkeys_differ() {
        let k = SymmetricKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{k:?}"), "SymmetricKey(<redacted>)");
        assert_ne!(k.derive("a").expose(), k.derive("b").expose());
    }
}
