//! Bundles: signed (and, for a named recipient, encrypted) files that carry
//! registry statements, case control operations and log entries between nodes
//! that cannot talk over the network. The receiver runs every item through the
//! same checks as items from a peer; the bundle's own signature and AEAD make any
//! change to the file reject it whole.
//!
//! Layout (version 1): `"CSBUNDLE" | version u8 | sender card (bytes) |
//! recipient ed25519 [32] (zero: not encrypted) | wrapped key (bytes, empty when
//! not encrypted) | body (bytes) | signature [64]`, signed by the sender over
//! everything before the signature. With a recipient, `body` is the payload sealed
//! with a fresh key that is HPKE-wrapped to the recipient.

use casesync_crypto::identity::{self, SIGNATURE_LEN};
use casesync_crypto::{NodeKeys, SymmetricKey, wrap};

use crate::card::{MAX_CARD_BYTES, NodeCard};
use crate::codec::{Reader, Writer};
use crate::{CaseId, SchemaError};

const MAGIC: &[u8; 8] = b"CSBUNDLE";
const VERSION: u8 = 1;
const SIGN_CONTEXT: &[u8] = b"casesync/bundle/v1";
const WRAP_CONTEXT: &[u8] = b"casesync/bundle-key/v1";
const BODY_AAD: &[u8] = b"casesync/bundle-body/v1";
/// Largest bundle file accepted.
pub const MAX_BUNDLE_BYTES: usize = 1 << 30;
const MAX_ITEMS: usize = 1 << 24;

/// What a bundle carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleBody {
    pub registry_ops: Vec<Vec<u8>>,
    pub cases: Vec<CaseItems>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseItems {
    pub case: CaseId,
    pub control_ops: Vec<Vec<u8>>,
    pub entries: Vec<Vec<u8>>,
}

fn write_list(w: &mut Writer, items: &[Vec<u8>]) {
    w.u32(items.len() as u32);
    for i in items {
        w.bytes(i);
    }
}

fn read_list(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, SchemaError> {
    let n = r.count(MAX_ITEMS, 4)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(r.bytes(MAX_BUNDLE_BYTES)?.to_vec());
    }
    Ok(v)
}

impl BundleBody {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        write_list(&mut w, &self.registry_ops);
        w.u32(self.cases.len() as u32);
        for c in &self.cases {
            w.raw(&c.case.0);
            write_list(&mut w, &c.control_ops);
            write_list(&mut w, &c.entries);
        }
        w.buf
    }

    pub fn decode(b: &[u8]) -> Result<BundleBody, SchemaError> {
        let mut r = Reader::new(b, "bundle body");
        if r.u8()? != VERSION {
            return Err(SchemaError::malformed("bundle body", "unsupported version"));
        }
        let registry_ops = read_list(&mut r)?;
        let n = r.count(MAX_ITEMS, 24)?;
        let mut cases = Vec::with_capacity(n);
        for _ in 0..n {
            cases.push(CaseItems {
                case: CaseId(r.array()?),
                control_ops: read_list(&mut r)?,
                entries: read_list(&mut r)?,
            });
        }
        r.finish()?;
        Ok(BundleBody {
            registry_ops,
            cases,
        })
    }
}

/// Writes a bundle signed by `keys` (whose card is `sender`), encrypted to
/// `recipient` when given.
pub fn seal(
    keys: &NodeKeys,
    sender: &NodeCard,
    recipient: Option<&NodeCard>,
    body: &BundleBody,
) -> Result<Vec<u8>, SchemaError> {
    let mut w = Writer::new();
    w.raw(MAGIC);
    w.u8(VERSION);
    w.bytes(sender.bytes());
    let plain = body.encode();
    match recipient {
        Some(r) => {
            w.raw(&r.identity.ed25519);
            let key = SymmetricKey::generate()?;
            w.bytes(&wrap::wrap_key(&key, &r.identity.x25519, WRAP_CONTEXT)?);
            w.bytes(&key.seal(BODY_AAD, &plain)?);
        }
        None => {
            w.raw(&[0u8; 32]);
            w.bytes(&[]);
            w.bytes(&plain);
        }
    }
    let sig = keys.sign(SIGN_CONTEXT, &w.buf);
    w.raw(&sig);
    if w.buf.len() > MAX_BUNDLE_BYTES {
        return Err(SchemaError::TooLarge {
            what: "bundle",
            size: w.buf.len(),
            limit: MAX_BUNDLE_BYTES,
        });
    }
    Ok(w.buf)
}

/// A bundle whose signature held, opened for `keys`.
pub struct OpenedBundle {
    pub sender: NodeCard,
    pub body: BundleBody,
}

/// Verifies the sender's signature over the whole file, then opens the body
/// (decrypting it if it was sealed to this node).
pub fn open(keys: &NodeKeys, bytes: &[u8]) -> Result<OpenedBundle, SchemaError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(SchemaError::TooLarge {
            what: "bundle",
            size: bytes.len(),
            limit: MAX_BUNDLE_BYTES,
        });
    }
    if bytes.len() < 8 + 1 + SIGNATURE_LEN || &bytes[..8] != MAGIC {
        return Err(SchemaError::malformed("bundle", "not a casesync bundle"));
    }
    let (signed, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let mut r = Reader::new(signed, "bundle");
    r.take(8)?;
    if r.u8()? != VERSION {
        return Err(SchemaError::UnsupportedVersion {
            what: "bundle",
            version: bytes[8],
        });
    }
    let sender = NodeCard::decode(r.bytes(MAX_CARD_BYTES)?)?;
    let mut s = [0u8; SIGNATURE_LEN];
    s.copy_from_slice(sig);
    identity::verify(&sender.identity.ed25519, SIGN_CONTEXT, signed, &s)
        .map_err(|_| SchemaError::BadSignature("bundle"))?;
    let recipient: [u8; 32] = r.array()?;
    let wrapped = r.bytes(wrap::WRAPPED_LEN)?;
    let body = r.bytes(MAX_BUNDLE_BYTES)?;
    r.finish()?;
    let plain = if recipient == [0u8; 32] {
        body.to_vec()
    } else {
        if recipient != keys.public().ed25519 {
            return Err(SchemaError::malformed(
                "bundle",
                "it was made for another node",
            ));
        }
        let key = wrap::unwrap_key(keys, wrapped, WRAP_CONTEXT)?;
        key.open(BODY_AAD, body)?
    };
    Ok(OpenedBundle {
        sender,
        body: BundleBody::decode(&plain)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> BundleBody {
        BundleBody {
            registry_ops: vec![b"r1".to_vec()],
            cases: vec![CaseItems {
                case: CaseId([3; 16]),
                control_ops: vec![b"c".to_vec()],
                entries: vec![b"e1".to_vec(), b"e2".to_vec()],
            }],
        }
    }

    #[test]
    fn sealed_to_a_recipient_opens_only_there_and_any_flip_fails() {
        let (a, b, c) = (
            NodeKeys::generate().unwrap(),
            NodeKeys::generate().unwrap(),
            NodeKeys::generate().unwrap(),
        );
        let ac = NodeCard::issue(&a, "a", "A", "GB", 1).unwrap();
        let bc = NodeCard::issue(&b, "b", "B", "RO", 1).unwrap();
        let file = seal(&a, &ac, Some(&bc), &body()).unwrap();
        let opened = open(&b, &file).unwrap();
        assert_eq!(opened.body, body());
        assert_eq!(opened.sender, ac);
        assert!(open(&c, &file).is_err());
        for i in (0..file.len()).step_by(7) {
            let mut t = file.clone();
            t[i] ^= 1;
            assert!(open(&b, &t).is_err(), "flip at {i} accepted");
        }
        let plain = seal(&a, &ac, None, &body()).unwrap();
        assert_eq!(open(&c, &plain).unwrap().body, body());
        assert!(open(&b, &plain[..plain.len() - 1]).is_err());
    }
}
