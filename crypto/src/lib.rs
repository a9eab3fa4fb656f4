//! casesync-crypto: the node's keys and every cryptographic operation casesync uses.
//!
//! Layout:
//! - [`identity`]: the node's Ed25519 identity (its libp2p PeerId) and X25519 key.
//! - [`aead`]: symmetric sealing with associated data (ring ChaCha20-Poly1305).
//! - [`wrap`]: wrapping a case key to a node's X25519 key (HPKE, RFC 9180).
//! - [`keystore`]: the passphrase-sealed keystore (Argon2id + AEAD).
//! - [`hash`]: SHA-256, keyed blind indexes, constant-time comparison.
//! - [`stream`]: files sealed in segments (evidence), the STREAM construction over ChaCha20-Poly1305.
//! - [`oprf`]: the oblivious PRF (RFC 9497) behind private set intersection.
//!
//! Invariants: this crate does no I/O, never logs, and no secret type implements
//! a `Debug` that prints key material. Every primitive comes from a maintained crate
//! (ring, ed25519-dalek, x25519-dalek via hpke, argon2, voprf); this crate only composes them.

pub mod aead;
pub mod hash;
pub mod identity;
pub mod keystore;
pub mod oprf;
pub mod password;
pub mod stream;
pub mod wrap;

pub use aead::SymmetricKey;
pub use hash::Hash;
pub use identity::{NodeKeys, PublicIdentity, SIGNATURE_LEN};

/// Everything that can go wrong in this crate. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("decryption failed: the data was altered or the key is wrong")]
    Open,
    #[error("encryption failed")]
    Seal,
    #[error("signature is invalid")]
    BadSignature,
    #[error("public key is malformed")]
    BadPublicKey,
    #[error("wrong passphrase (or the keystore is damaged)")]
    WrongPassphrase,
    #[error("keystore is malformed: {0}")]
    MalformedKeystore(&'static str),
    /// A stored password hash this node did not write (or not whole).
    #[error("stored password hash is malformed: {0}")]
    MalformedPasswordHash(&'static str),
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// An oblivious-PRF step failed: a malformed or altered element or
    /// proof, or a batch of the wrong size.
    #[error(
        "private set intersection failed: a malformed element, a proof that does not hold, or a batch of the wrong size"
    )]
    Oprf,
    #[error("wrapped key could not be unwrapped: it was not wrapped to this node or was altered")]
    Unwrap,
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// A fresh random 32-byte array (keys, ids).
pub fn random_32() -> Result<[u8; 32], CryptoError> {
    let mut b = [0u8; 32];
    random_bytes(&mut b)?;
    Ok(b)
}
