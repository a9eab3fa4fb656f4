//! Wrapping a 256-bit case key to a node's X25519 public key with HPKE
//! (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305).
//!
//! The HPKE `info` binds the wrap to its context (case and epoch), and the recipient's
//! public key is the associated data, so a wrapped key cannot be replayed into another
//! case, epoch or recipient slot.

use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::{CryptoError, NodeKeys, SymmetricKey};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// Encapsulated key (32) + sealed case key (32) + tag (16).
pub const WRAPPED_LEN: usize = 32 + 32 + 16;

const INFO_PREFIX: &[u8] = b"casesync/case-key-wrap/v1";

fn info(context: &[u8]) -> Vec<u8> {
    let mut i = INFO_PREFIX.to_vec();
    i.extend_from_slice(context);
    i
}

/// Wraps `key` to `recipient_x25519` for `context` (e.g. case id || epoch id).
pub fn wrap_key(
    key: &SymmetricKey,
    recipient_x25519: &[u8; 32],
    context: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient_x25519)
        .map_err(|_| CryptoError::BadPublicKey)?;
    let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk,
        &info(context),
        key.expose(),
        recipient_x25519,
    )
    .map_err(|_| CryptoError::Seal)?;
    let mut out = enc.to_bytes().to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Unwraps a key wrapped to this node by [`wrap_key`] with the same `context`.
pub fn unwrap_key(
    keys: &NodeKeys,
    wrapped: &[u8],
    context: &[u8],
) -> Result<SymmetricKey, CryptoError> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(CryptoError::Unwrap);
    }
    let (enc, ct) = wrapped.split_at(32);
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| CryptoError::Unwrap)?;
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(keys.x25519_secret())
        .map_err(|_| CryptoError::Unwrap)?;
    let own_public = keys.public().x25519;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            &info(context),
            ct,
            &own_public,
        )
        .map_err(|_| CryptoError::Unwrap)?,
    );
    let bytes: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::Unwrap)?;
    Ok(SymmetricKey::from_bytes(bytes))
}

/// The HPKE public key derived from the node's X25519 secret must equal the one
/// x25519-dalek derives; checked in tests so the card and the KEM never disagree.
#[cfg(test)]
fn hpke_public(keys: &NodeKeys) -> [u8; 32] {
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(keys.x25519_secret()).unwrap();
    let pk = <Kem as hpke::Kem>::sk_to_pk(&sk);
    let mut out = [0u8; 32];
    out.copy_from_slice(&pk.to_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_to_the_right_node_only() {
        let alice = NodeKeys::generate().unwrap();
        let bob = NodeKeys::generate().unwrap();
        assert_eq!(hpke_public(&bob), bob.public().x25519);
        let k = SymmetricKey::generate().unwrap();
        let w = wrap_key(&k, &bob.public().x25519, b"case1epoch1").unwrap();
        assert_eq!(w.len(), WRAPPED_LEN);
        assert_eq!(unwrap_key(&bob, &w, b"case1epoch1").unwrap(), k);
        assert!(unwrap_key(&alice, &w, b"case1epoch1").is_err());
        assert!(unwrap_key(&bob, &w, b"case1epoch2").is_err());
        let mut t = w.clone();
        t[40] ^= 1;
        assert!(unwrap_key(&bob, &t, b"case1epoch1").is_err());
        assert!(unwrap_key(&bob, &w[..10], b"case1epoch1").is_err());
    }
}
