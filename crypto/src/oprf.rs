//! Private set intersection by an oblivious pseudorandom function (RFC 9497,
//! the `voprf` crate, ristretto255-SHA512 in verifiable mode).
//!
//! The answering node holds a [`MatchKey`] `k`. The asking node blinds each of
//! its selectors `x` ([`blind`]): the answerer sees only random group
//! elements, so it learns how many were asked and nothing of what. The
//! answerer evaluates them under `k` with one proof that it used the key it
//! publishes (so it cannot evaluate each element under its own key to tell
//! them apart); the asker unblinds and gets `F(k, x)` ([`Blinding::finalize`]).
//! The answerer's own set is sent as [`MatchSecret::tag`]s of `F(k, y)`, so
//! the asker learns which of its `x` are in it and nothing of the rest: it
//! cannot compute `F(k, ·)` without the answerer, which counts every
//! evaluation. Neither side can test selectors offline.

use std::fmt;

use rand_core::OsRng;
use voprf::{BlindedElement, EvaluationElement, Proof, Ristretto255, VoprfClient, VoprfServer};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{CryptoError, SymmetricKey};

/// Bytes of a blinded or evaluated element (a compressed ristretto255 point).
pub const ELEMENT_LEN: usize = 32;
/// Bytes of the batch proof (a DLEQ proof: two scalars).
pub const PROOF_LEN: usize = 64;
/// Bytes of a public key (a compressed ristretto255 point).
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes of a tag the answerer lists for each value it holds.
pub const TAG_LEN: usize = 16;
/// Most elements one batch may carry (the RFC's batch proofs count in u16).
pub const MAX_BATCH: usize = u16::MAX as usize;

/// The answering node's OPRF key. Derived from a node secret, so it is the
/// same across restarts (tags cached at rest stay valid) and never stored
/// apart from it.
pub struct MatchKey(VoprfServer<Ristretto255>);

impl fmt::Debug for MatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MatchKey(<redacted>)")
    }
}

fn oprf_err(_: voprf::Error) -> CryptoError {
    CryptoError::Oprf
}

impl MatchKey {
    /// RFC 9497 DeriveKeyPair from `seed` (32 secret bytes).
    pub fn derive(seed: &SymmetricKey) -> Result<MatchKey, CryptoError> {
        VoprfServer::new_from_seed(seed.expose(), b"casesync/match/v1")
            .map(MatchKey)
            .map_err(oprf_err)
    }

    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(&<Ristretto255 as voprf::Group>::serialize_elem(
            self.0.get_public_key(),
        ));
        out
    }

    /// `F(k, input)` computed directly: what the answerer files for each
    /// value it holds.
    pub fn output(&self, input: &[u8]) -> Result<MatchSecret, CryptoError> {
        let out = self.0.evaluate(input).map_err(oprf_err)?;
        MatchSecret::from_output(&out)
    }

    /// Evaluates an asker's blinded elements, with one proof for the batch.
    /// A malformed element (not a canonical point, or the identity) fails
    /// the whole batch.
    pub fn evaluate_blinded(
        &self,
        blinded: &[Vec<u8>],
    ) -> Result<(Vec<[u8; ELEMENT_LEN]>, [u8; PROOF_LEN]), CryptoError> {
        if blinded.is_empty() || blinded.len() > MAX_BATCH {
            return Err(CryptoError::Oprf);
        }
        let elements = blinded
            .iter()
            .map(|b| BlindedElement::<Ristretto255>::deserialize(b).map_err(oprf_err))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .0
            .batch_blind_evaluate(&mut OsRng, &elements)
            .map_err(oprf_err)?;
        let messages = result
            .messages
            .iter()
            .map(|m| {
                let mut out = [0u8; ELEMENT_LEN];
                out.copy_from_slice(&m.serialize());
                out
            })
            .collect();
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(&result.proof.serialize());
        Ok((messages, proof))
    }
}

/// Whether each of `blinded` is a valid element (canonical, not the
/// identity): checked before a request is counted against a quota.
pub fn well_formed(blinded: &[Vec<u8>]) -> bool {
    blinded
        .iter()
        .all(|b| BlindedElement::<Ristretto255>::deserialize(b).is_ok())
}

/// `F(k, x)` for one value: secret to whoever does not hold `x`. Gives the
/// tag the answerer lists and the key that seals what it says of a hit.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct MatchSecret([u8; 32]);

impl fmt::Debug for MatchSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MatchSecret(<redacted>)")
    }
}

impl MatchSecret {
    fn from_output(out: &[u8]) -> Result<MatchSecret, CryptoError> {
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"casesync/match-secret/v1")
            .extract(out);
        let mut secret = [0u8; 32];
        prk.expand(&[b"secret"], ring::hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut secret))
            .map_err(|_| CryptoError::Oprf)?;
        Ok(MatchSecret(secret))
    }

    /// Rebuilds a secret stored at rest (sealed by the caller).
    pub fn from_bytes(bytes: [u8; 32]) -> MatchSecret {
        MatchSecret(bytes)
    }

    /// The raw secret, for sealing it at rest. Never log it.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// What the answerer lists for this value: public, and useless without
    /// the secret it came from.
    pub fn tag(&self) -> [u8; TAG_LEN] {
        let full = SymmetricKey::from_bytes(self.0).derive("match.tag");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full.expose()[..TAG_LEN]);
        out
    }

    /// The key that seals what the answerer says of a hit on this value.
    pub fn hit_key(&self) -> SymmetricKey {
        SymmetricKey::from_bytes(self.0).derive("match.hit")
    }
}

/// An asker's blinded selectors, and the state to unblind the answers.
pub struct Blinding {
    clients: Vec<VoprfClient<Ristretto255>>,
    /// What is sent to the answerer: one random-looking element per input.
    pub messages: Vec<[u8; ELEMENT_LEN]>,
}

impl fmt::Debug for Blinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blinding({} elements)", self.messages.len())
    }
}

/// Blinds each input with a fresh random scalar.
pub fn blind(inputs: &[Vec<u8>]) -> Result<Blinding, CryptoError> {
    if inputs.is_empty() || inputs.len() > MAX_BATCH {
        return Err(CryptoError::Oprf);
    }
    let mut clients = Vec::with_capacity(inputs.len());
    let mut messages = Vec::with_capacity(inputs.len());
    for x in inputs {
        let r = VoprfClient::<Ristretto255>::blind(x, &mut OsRng).map_err(oprf_err)?;
        let mut m = [0u8; ELEMENT_LEN];
        m.copy_from_slice(&r.message.serialize());
        clients.push(r.state);
        messages.push(m);
    }
    Ok(Blinding { clients, messages })
}

impl Blinding {
    /// Checks the answerer's proof against `public_key` and unblinds:
    /// `F(k, input)` for each input, in order. Fails whole if the proof does
    /// not hold or the answer is not one element per input.
    pub fn finalize(
        &self,
        inputs: &[Vec<u8>],
        evaluated: &[Vec<u8>],
        proof: &[u8],
        public_key: &[u8],
    ) -> Result<Vec<MatchSecret>, CryptoError> {
        if inputs.len() != self.clients.len() || evaluated.len() != self.clients.len() {
            return Err(CryptoError::Oprf);
        }
        let messages = evaluated
            .iter()
            .map(|e| EvaluationElement::<Ristretto255>::deserialize(e).map_err(oprf_err))
            .collect::<Result<Vec<_>, _>>()?;
        let proof = Proof::<Ristretto255>::deserialize(proof).map_err(oprf_err)?;
        let pk = <Ristretto255 as voprf::Group>::deserialize_elem(public_key).map_err(oprf_err)?;
        let inputs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let outputs = VoprfClient::batch_finalize(&inputs, &self.clients, &messages, &proof, pk)
            .map_err(oprf_err)?;
        outputs
            .map(|o| {
                o.map_err(oprf_err)
                    .and_then(|o| MatchSecret::from_output(o.as_slice()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MatchKey {
        MatchKey::derive(&SymmetricKey::from_bytes([b; 32])).unwrap()
    }

    fn inputs(xs: &[&str]) -> Vec<Vec<u8>> {
        xs.iter().map(|x| x.as_bytes().to_vec()).collect()
    }

    fn run(k: &MatchKey, xs: &[Vec<u8>]) -> Vec<MatchSecret> {
        let b = blind(xs).unwrap();
        let sent: Vec<Vec<u8>> = b.messages.iter().map(|m| m.to_vec()).collect();
        let (evaluated, proof) = k.evaluate_blinded(&sent).unwrap();
        let evaluated: Vec<Vec<u8>> = evaluated.iter().map(|e| e.to_vec()).collect();
        b.finalize(xs, &evaluated, &proof, &k.public_key()).unwrap()
    }

    #[test]
    fn the_asker_gets_what_the_answerer_files_and_only_for_its_inputs() {
        let k = key(1);
        let xs = inputs(&["phone:+40722123456", "iban:GB82WEST12345698765432"]);
        let got = run(&k, &xs);
        assert_eq!(got[0], k.output(&xs[0]).unwrap());
        assert_eq!(got[1], k.output(&xs[1]).unwrap());
        assert_ne!(got[0].tag(), got[1].tag());
        // Another key gives other values: tags mean nothing across nodes.
        assert_ne!(key(2).output(&xs[0]).unwrap(), got[0]);
    }

    #[test]
    fn the_answerer_sees_only_fresh_random_elements() {
        // The same selector blinded twice gives unrelated elements, neither
        // of which is its unblinded hash to the group (the blinding factor
        // r = 1 would give exactly that), nor contains it.
        let xs = inputs(&["phone:+40722123456"]);
        let a = blind(&xs).unwrap();
        let b = blind(&xs).unwrap();
        assert_ne!(a.messages[0], b.messages[0]);
        let unblinded = VoprfClient::<Ristretto255>::deterministic_blind_unchecked(
            &xs[0],
            <Ristretto255 as voprf::Group>::deserialize_scalar(&{
                let mut one = [0u8; 32];
                one[0] = 1;
                one
            })
            .unwrap(),
        )
        .unwrap()
        .message
        .serialize();
        assert_ne!(a.messages[0][..], unblinded[..]);
        assert_ne!(b.messages[0][..], unblinded[..]);
        let wire = a.messages[0];
        assert!(!wire.windows(8).any(|w| xs[0].windows(8).any(|x| x == w)));
    }

    #[test]
    fn an_answer_under_another_key_or_altered_fails_the_proof() {
        let xs = inputs(&["a", "b"]);
        let b = blind(&xs).unwrap();
        let sent: Vec<Vec<u8>> = b.messages.iter().map(|m| m.to_vec()).collect();
        let (evaluated, proof) = key(1).evaluate_blinded(&sent).unwrap();
        let ev: Vec<Vec<u8>> = evaluated.iter().map(|e| e.to_vec()).collect();
        // Claimed under another public key.
        assert!(b.finalize(&xs, &ev, &proof, &key(2).public_key()).is_err());
        // One element swapped for another key's evaluation of it.
        let (other, _) = key(2).evaluate_blinded(&sent).unwrap();
        let mixed = vec![ev[0].clone(), other[1].to_vec()];
        assert!(
            b.finalize(&xs, &mixed, &proof, &key(1).public_key())
                .is_err()
        );
        // Fewer answers than questions.
        assert!(
            b.finalize(&xs, &ev[..1], &proof, &key(1).public_key())
                .is_err()
        );
    }

    #[test]
    fn malformed_elements_are_refused_not_evaluated() {
        let k = key(1);
        assert!(k.evaluate_blinded(&[vec![0xff; 32]]).is_err());
        assert!(k.evaluate_blinded(&[vec![0u8; 31]]).is_err());
        // The identity point (all zero) is refused.
        assert!(k.evaluate_blinded(&[vec![0u8; 32]]).is_err());
        assert!(k.evaluate_blinded(&[]).is_err());
        assert!(!well_formed(&[vec![0u8; 32]]));
        let ok = blind(&[b"x".to_vec()]).unwrap().messages[0].to_vec();
        assert!(well_formed(std::slice::from_ref(&ok)));
        assert!(!well_formed(&[ok, vec![0xff; 32]]));
        assert!(blind(&[]).is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = key(1).output(b"x").unwrap();
        assert_eq!(format!("{s:?}"), "MatchSecret(<redacted>)");
        assert_eq!(format!("{:?}", key(1)), "MatchKey(<redacted>)");
    }
}
