//! A node's identity: an Ed25519 signing key (its libp2p PeerId derives from it, so
//! the transport identity and the signing identity are one key) and an X25519 key
//! to which case keys are wrapped.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::CryptoError;

pub const SIGNATURE_LEN: usize = 64;
pub const PUBLIC_KEY_LEN: usize = 32;

/// The secret half of a node's identity. Held only in memory of an unlocked node.
pub struct NodeKeys {
    signing: SigningKey,
    x25519_secret: Zeroizing<[u8; 32]>,
    /// Derived once: an X25519 public key is a scalar multiplication, and
    /// ingest asks for it per record received.
    public: PublicIdentity,
}

impl NodeKeys {
    /// Fresh random keys for a new node.
    pub fn generate() -> Result<NodeKeys, CryptoError> {
        let seed = Zeroizing::new(crate::random_32()?);
        let x = Zeroizing::new(crate::random_32()?);
        Ok(NodeKeys::from_secret_bytes(&seed, &x))
    }

    pub fn from_secret_bytes(ed25519_seed: &[u8; 32], x25519_secret: &[u8; 32]) -> NodeKeys {
        let signing = SigningKey::from_bytes(ed25519_seed);
        let secret = x25519_dalek::StaticSecret::from(*x25519_secret);
        let public = PublicIdentity {
            ed25519: signing.verifying_key().to_bytes(),
            x25519: x25519_dalek::PublicKey::from(&secret).to_bytes(),
        };
        NodeKeys {
            signing,
            x25519_secret: Zeroizing::new(*x25519_secret),
            public,
        }
    }

    /// The secret bytes, for sealing into the keystore only.
    pub fn secret_bytes(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        (
            Zeroizing::new(self.signing.to_bytes()),
            self.x25519_secret.clone(),
        )
    }

    pub fn public(&self) -> PublicIdentity {
        self.public
    }

    /// Signs `message` under a domain-separation `context`, so a signature made
    /// for one kind of object can never be replayed as another.
    pub fn sign(&self, context: &[u8], message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut m = Vec::with_capacity(context.len() + 1 + message.len());
        m.extend_from_slice(context);
        m.push(0);
        m.extend_from_slice(message);
        self.signing.sign(&m).to_bytes()
    }

    /// The same Ed25519 key as a libp2p keypair, so the Noise handshake
    /// authenticates the node with the key that signs its entries.
    pub fn libp2p_keypair(&self) -> Result<libp2p_identity::Keypair, CryptoError> {
        let mut seed = Zeroizing::new(self.signing.to_bytes());
        libp2p_identity::Keypair::ed25519_from_bytes(seed.as_mut())
            .map_err(|_| CryptoError::BadPublicKey)
    }

    pub(crate) fn x25519_secret(&self) -> &[u8; 32] {
        &self.x25519_secret
    }
}

impl Clone for NodeKeys {
    fn clone(&self) -> NodeKeys {
        NodeKeys {
            signing: self.signing.clone(),
            x25519_secret: self.x25519_secret.clone(),
            public: self.public,
        }
    }
}

impl fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKeys")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// The public half: what a node card carries and what other nodes verify against.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicIdentity {
    pub ed25519: [u8; PUBLIC_KEY_LEN],
    pub x25519: [u8; PUBLIC_KEY_LEN],
}

impl PublicIdentity {
    /// The libp2p PeerId (base58) of this node.
    pub fn peer_id(&self) -> Result<String, CryptoError> {
        peer_id_of(&self.ed25519)
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer_id() {
            Ok(p) => write!(f, "PublicIdentity({p})"),
            Err(_) => write!(f, "PublicIdentity(<invalid>)"),
        }
    }
}

/// The libp2p PeerId (base58 string) for an Ed25519 public key.
pub fn peer_id_of(ed25519_public: &[u8; 32]) -> Result<String, CryptoError> {
    let pk = libp2p_identity::ed25519::PublicKey::try_from_bytes(ed25519_public)
        .map_err(|_| CryptoError::BadPublicKey)?;
    Ok(libp2p_identity::PublicKey::from(pk)
        .to_peer_id()
        .to_base58())
}

/// An Ed25519 public key as PEM (SubjectPublicKeyInfo, RFC 8410), for
/// standard tools (`openssl pkeyutl -verify -pubin -inkey KEY.pem`).
pub fn public_key_pem(ed25519_public: &[u8; 32]) -> String {
    use base64::Engine as _;
    // SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(ed25519_public);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// Verifies an Ed25519 signature made by [`NodeKeys::sign`] with the same `context`.
/// Uses strict verification (rejects small-order keys and malleable signatures).
pub fn verify(
    ed25519_public: &[u8; 32],
    context: &[u8],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), CryptoError> {
    let key = VerifyingKey::from_bytes(ed25519_public).map_err(|_| CryptoError::BadPublicKey)?;
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    let mut m = Vec::with_capacity(context.len() + 1 + message.len());
    m.extend_from_slice(context);
    m.push(0);
    m.extend_from_slice(message);
    key.verify_strict(&m, &sig)
        .map_err(|_| CryptoError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_context_separation() {
        let k = NodeKeys::generate().unwrap();
        let p = k.public();
        let s = k.sign(b"ctx", b"msg");
        assert!(verify(&p.ed25519, b"ctx", b"msg", &s).is_ok());
        assert!(verify(&p.ed25519, b"other", b"msg", &s).is_err());
        assert!(verify(&p.ed25519, b"ctx", b"msh", &s).is_err());
        let other = NodeKeys::generate().unwrap().public();
        assert!(verify(&other.ed25519, b"ctx", b"msg", &s).is_err());
    }

    #[test]
    fn peer_id_is_stable_and_libp2p_shaped() {
        let k = NodeKeys::generate().unwrap();
        let (seed, x) = k.secret_bytes();
        let again = NodeKeys::from_secret_bytes(&seed, &x);
        let id = k.public().peer_id().unwrap();
        assert_eq!(id, again.public().peer_id().unwrap());
        // Ed25519 PeerIds are identity multihashes: base58 "12D3KooW...".
        assert!(id.starts_with("12D3KooW"), "{id}");
        assert_eq!(
            k.libp2p_keypair()
                .unwrap()
                .public()
                .to_peer_id()
                .to_base58(),
            id
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let k = NodeKeys::from_secret_bytes(&[1u8; 32], &[2u8; 32]);
        let d = format!("{k:?}");
        assert!(d.contains("12D3KooW"));
        assert!(!d.contains("[1, 1"));
    }
}
