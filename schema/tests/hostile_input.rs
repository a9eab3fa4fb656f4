//! Decoders of outside data never panic: random bytes, mutated valid encodings,
//! and (the harder case) random bodies that carry a *valid* signature, so the
//! decoder runs past the signature check on garbage a malicious member could sign.

use casesync_crypto::NodeKeys;
use casesync_schema::NodeCard;
use casesync_schema::control::ControlOp;
use casesync_schema::entry::{LogEntry, decode_payload};

/// A small deterministic generator (xorshift) so failures replay exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn signed(
    keys: &NodeKeys,
    context: &[u8],
    version: u8,
    key_at: usize,
    body_len: usize,
    rng: &mut Rng,
) -> Vec<u8> {
    let mut b = rng.bytes(body_len.max(key_at + 32));
    b[0] = version;
    b[key_at..key_at + 32].copy_from_slice(&keys.public().ed25519);
    let sig = keys.sign(context, &b);
    b.extend_from_slice(&sig);
    b
}

#[test]
fn random_and_signed_garbage_is_rejected_without_panicking() {
    let keys = NodeKeys::generate().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let n = rng.below(600);
        let junk = rng.bytes(n);
        assert!(LogEntry::decode_verified(&junk).is_err());
        assert!(ControlOp::decode_verified(&junk).is_err());
        assert!(NodeCard::decode(&junk).is_err());
        let _ = decode_payload(&junk);
        let _ = NodeCard::from_text(&String::from_utf8_lossy(&junk));

        // Validly signed, structurally random: exercises every length check.
        let len = 60 + rng.below(400);
        let e = signed(&keys, b"casesync/entry/v1", 1, 17, len, &mut rng);
        assert!(
            LogEntry::decode_verified(&e).is_err(),
            "random signed entry accepted"
        );
        let c = signed(&keys, b"casesync/control/v1", 1, 17, len, &mut rng);
        assert!(
            ControlOp::decode_verified(&c).is_err(),
            "random signed operation accepted"
        );
        let k = signed(
            &keys,
            b"casesync/card/v1",
            1,
            1,
            70 + rng.below(100),
            &mut rng,
        );
        let _ = NodeCard::decode(&k);
        // Lengths that claim more than is there, in a signed body.
        let mut big = e.clone();
        if big.len() > 140 {
            big[137..141].copy_from_slice(&u32::MAX.to_be_bytes());
        }
        let _ = LogEntry::decode_verified(&big);
    }
}

#[test]
fn lz4_payload_with_lying_sizes_is_bounded() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let mut p = Vec::new();
        p.extend_from_slice(&(rng.below(64 * 1024 * 1024) as u32).to_be_bytes());
        let n = rng.below(300);
        p.extend(rng.bytes(n));
        // Must return (Ok or Err) without allocating past MAX_PAYLOAD_BYTES or panicking.
        let _ = decode_payload(&p);
    }
}
