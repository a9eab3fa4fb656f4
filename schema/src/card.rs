//! Node cards: a node's signed statement of who it is and which keys it holds.
//! A card is what an admin or a case lead pastes to add a node; its text form is
//! one line: `cscard1.` followed by base64url of the signed bytes.
//!
//! Layout (version 1): `version u8 | ed25519 [32] | x25519 [32] | name str |
//! org str | country [2] | created_ms i64 | signature [64]`, signed by the ed25519
//! key itself under the context `casesync/card/v1`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use casesync_crypto::identity::SIGNATURE_LEN;
use casesync_crypto::{NodeKeys, PublicIdentity};

use crate::codec::{Reader, SignedLayout, Writer, verify_signed};
use crate::{SchemaError, validate};

const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"casesync/card/v1";
const TEXT_PREFIX: &str = "cscard1.";
const MAX_NAME: usize = 200;
/// Largest encoded card; checked before decoding anything.
pub const MAX_CARD_BYTES: usize = 1 + 64 + 2 * (4 + MAX_NAME) + 2 + 8 + SIGNATURE_LEN;

#[derive(Clone, PartialEq, Eq)]
pub struct NodeCard {
    pub identity: PublicIdentity,
    pub name: String,
    pub org: String,
    pub country: String,
    pub created_ms: i64,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for NodeCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NodeCard({} {:?} {:?} {})",
            self.peer_id(),
            self.name,
            self.org,
            self.country
        )
    }
}

fn check_label(what: &str, s: &str) -> Result<String, SchemaError> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_NAME || t.chars().any(char::is_control) {
        return Err(SchemaError::InvalidField {
            field: what.to_string(),
            reason: format!("must be 1-{MAX_NAME} printable characters"),
        });
    }
    Ok(t.to_string())
}

impl NodeCard {
    /// Issues and signs the card of the node holding `keys`.
    pub fn issue(
        keys: &NodeKeys,
        name: &str,
        org: &str,
        country: &str,
        created_ms: i64,
    ) -> Result<NodeCard, SchemaError> {
        let name = check_label("name", name)?;
        let org = check_label("org", org)?;
        let country =
            validate::country_code(country).map_err(|reason| SchemaError::InvalidField {
                field: "country".into(),
                reason,
            })?;
        let identity = keys.public();
        let mut w = Writer::new();
        w.u8(VERSION);
        w.raw(&identity.ed25519);
        w.raw(&identity.x25519);
        w.str(&name);
        w.str(&org);
        w.raw(country.as_bytes());
        w.i64(created_ms);
        let sig = keys.sign(CONTEXT, &w.buf);
        w.raw(&sig);
        Ok(NodeCard {
            identity,
            name,
            org,
            country,
            created_ms,
            bytes: w.buf,
        })
    }

    /// Decodes a card, verifying its self-signature before reading its fields.
    pub fn decode(bytes: &[u8]) -> Result<NodeCard, SchemaError> {
        let signed = verify_signed(
            bytes,
            &SignedLayout {
                what: "node card",
                version: VERSION,
                min_len: 1 + 64 + SIGNATURE_LEN,
                max_len: MAX_CARD_BYTES,
                key_at: 1,
                context: CONTEXT,
            },
        )?;
        let mut r = Reader::new(signed, "node card");
        r.u8()?;
        let ed25519 = r.array::<32>()?;
        let x25519 = r.array::<32>()?;
        let name = r.str(MAX_NAME)?.to_string();
        let org = r.str(MAX_NAME)?.to_string();
        let country = std::str::from_utf8(r.take(2)?)
            .map_err(|_| SchemaError::malformed("node card", "country is not text"))?
            .to_string();
        let created_ms = r.i64()?;
        r.finish()?;
        Ok(NodeCard {
            identity: PublicIdentity { ed25519, x25519 },
            name,
            org,
            country,
            created_ms,
            bytes: bytes.to_vec(),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn to_text(&self) -> String {
        format!("{TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(&self.bytes))
    }

    pub fn from_text(s: &str) -> Result<NodeCard, SchemaError> {
        let s = s.trim();
        let body = s.strip_prefix(TEXT_PREFIX).ok_or_else(|| {
            SchemaError::malformed(
                "node card",
                "expected text starting with `cscard1.` (from `casesync id --card`)",
            )
        })?;
        if body.len() > MAX_CARD_BYTES * 2 {
            return Err(SchemaError::TooLarge {
                what: "node card",
                size: body.len(),
                limit: MAX_CARD_BYTES * 2,
            });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SchemaError::malformed("node card", "not valid base64url"))?;
        NodeCard::decode(&bytes)
    }

    /// The node's libp2p PeerId. A card only exists for a valid key, so this
    /// cannot fail; an unexpected failure is shown as `<invalid>`.
    pub fn peer_id(&self) -> String {
        self.identity
            .peer_id()
            .unwrap_or_else(|_| "<invalid>".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_encode_decode() {
        let keys = NodeKeys::generate().unwrap();
        let card = NodeCard::issue(&keys, "ro-police", "Poliția Română", "ro", 5).unwrap();
        assert_eq!(card.country, "RO");
        let back = NodeCard::from_text(&card.to_text()).unwrap();
        assert_eq!(back, card);
        assert_eq!(back.org, "Poliția Română");
        assert!(!card.to_text().contains(char::is_whitespace));
    }

    #[test]
    fn forged_or_garbled_cards_are_refused() {
        let keys = NodeKeys::generate().unwrap();
        let card = NodeCard::issue(&keys, "uk-east", "ROCU East", "GB", 5).unwrap();
        for i in 0..card.bytes().len() {
            let mut b = card.bytes().to_vec();
            b[i] ^= 0x01;
            assert!(NodeCard::decode(&b).is_err(), "flip at {i} accepted");
        }
        assert!(NodeCard::from_text("cscard1.!!!").is_err());
        assert!(NodeCard::from_text("hello").is_err());
        assert!(NodeCard::decode(&[]).is_err());
        assert!(NodeCard::issue(&keys, "", "x", "GB", 0).is_err());
        assert!(NodeCard::issue(&keys, "a", "x", "GBR", 0).is_err());
    }
}
