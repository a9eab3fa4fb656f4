//! Bundles: signed (and, for a named recipient, encrypted) files that carry
//! registry statements, case control operations and log entries between nodes
//! that cannot talk over the network. The receiver runs every item through the
//! same checks as items from a peer; the bundle's own signature and AEAD make any
//! change to the file reject it whole.
//!
//! Layout (version 2): `"CSBUNDLE" | version u8 | sender card (bytes) |
//! recipient ed25519 [32] (zero: not encrypted) | wrapped key (bytes, empty when
//! not encrypted) | body (bytes) | signature [64]`, signed by the sender over
//! everything before the signature. With a recipient, `body` is the payload sealed
//! with a fresh key that is HPKE-wrapped to the recipient; the wrap's context
//! and the body's associated data name the sender and the recipient, so the
//! sealed parts cannot be moved under another sender's signature.

use casesync_crypto::identity::{self, SIGNATURE_LEN};
use casesync_crypto::{NodeKeys, SymmetricKey, wrap};

use crate::card::{MAX_CARD_BYTES, NodeCard};
use crate::codec::{Reader, Writer};
use crate::{CaseId, SchemaError};

const MAGIC: &[u8; 8] = b"CSBUNDLE";
/// The file layout. Version 2 binds the wrapped key and the sealed body to
/// the sender and the recipient (version 1 did not: another node could
/// re-sign a bundle made for a third node as its own).
const FILE_VERSION: u8 = 2;
/// The body layout.
const VERSION: u8 = 1;
const SIGN_CONTEXT: &[u8] = b"casesync/bundle/v1";
const WRAP_CONTEXT: &[u8] = b"casesync/bundle-key/v1";
const BODY_AAD: &[u8] = b"casesync/bundle-body/v1";
/// Largest bundle file accepted. A node holds a bundle whole while it checks
/// it (the signature covers the whole file), about six times over (the file,
/// the opened body, its items, the entries decoded, the records built): at
/// 32 MiB an import stays within 256 MiB (`scripts/bench.sh`, memory rows).
/// Larger exports are split ([`split`]).
pub const MAX_BUNDLE_BYTES: usize = 32 << 20;
/// The item bytes an export puts in one bundle before starting the next
/// (entries are at most 1 MiB: a part stays under [`MAX_BUNDLE_BYTES`]).
pub const PART_TARGET_BYTES: usize = 24 << 20;
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

/// Splits a body into parts of about `target` item bytes each, in order,
/// every part importable by itself: each carries the registry statements, and
/// each case's control operations with its entries (a receiver judges entries
/// by the case's control log). Entries keep their order, so parts imported in
/// order never wait for each other. [`Splitter`] does the same for entries
/// that arrive one at a time.
pub fn split(body: BundleBody, target: usize) -> Vec<BundleBody> {
    let mut s = Splitter::new(body.registry_ops, target);
    let mut parts = Vec::new();
    for case in body.cases {
        s.start_case(case.case, case.control_ops);
        for e in case.entries {
            parts.extend(s.push(e));
        }
    }
    parts.push(s.finish());
    parts
}

/// [`split`] for entries that arrive one at a time (an export read from the
/// store): it holds at most one part, and hands each back as soon as the
/// next entry would take it past the target.
pub struct Splitter {
    target: usize,
    registry_ops: Vec<Vec<u8>>,
    registry_size: usize,
    part: BundleBody,
    /// The case whose entries are being added (not yet in `part`), and what
    /// its control operations cost in each part.
    case: Option<(CaseItems, usize)>,
    used: usize,
}

fn items_size(items: &[Vec<u8>]) -> usize {
    items.iter().map(|i| i.len() + 4).sum()
}

impl Splitter {
    pub fn new(registry_ops: Vec<Vec<u8>>, target: usize) -> Splitter {
        let registry_size = items_size(&registry_ops);
        Splitter {
            target,
            part: BundleBody {
                registry_ops: registry_ops.clone(),
                cases: Vec::new(),
            },
            registry_ops,
            registry_size,
            case: None,
            used: registry_size,
        }
    }

    /// The entries that follow are of `case`, judged by `control_ops` (which
    /// every part with any of them carries).
    pub fn start_case(&mut self, case: CaseId, control_ops: Vec<Vec<u8>>) {
        if let Some((items, _)) = self.case.take() {
            self.part.cases.push(items);
        }
        let control_size = 20 + items_size(&control_ops);
        self.used += control_size;
        self.case = Some((
            CaseItems {
                case,
                control_ops,
                entries: Vec::new(),
            },
            control_size,
        ));
    }

    /// Adds an entry of the current case; returns the part it did not fit
    /// in, now complete. An entry before any case is dropped.
    pub fn push(&mut self, entry: Vec<u8>) -> Option<BundleBody> {
        let (items, control_size) = self.case.as_mut()?;
        let mut done = None;
        if self.used + entry.len() + 4 > self.target && !items.entries.is_empty() {
            let fresh = CaseItems {
                case: items.case,
                control_ops: items.control_ops.clone(),
                entries: Vec::new(),
            };
            self.part.cases.push(std::mem::replace(items, fresh));
            let next = BundleBody {
                registry_ops: self.registry_ops.clone(),
                cases: Vec::new(),
            };
            done = Some(std::mem::replace(&mut self.part, next));
            self.used = self.registry_size + *control_size;
        }
        self.used += entry.len() + 4;
        items.entries.push(entry);
        done
    }

    /// The last part (the only one if nothing was handed back before).
    pub fn finish(mut self) -> BundleBody {
        if let Some((items, _)) = self.case.take() {
            self.part.cases.push(items);
        }
        self.part
    }
}

fn write_list(w: &mut Writer, items: &[Vec<u8>]) {
    w.u32(items.len() as u32);
    for i in items {
        w.bytes(i);
    }
}

/// How many items of each kind a body may carry: a file may carry a whole
/// case history; a network message far less ([`BundleBody::decode_within`]).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub registry_ops: usize,
    pub cases: usize,
    /// Control operations, all cases together.
    pub control_ops: usize,
    /// Log entries, all cases together.
    pub entries: usize,
}

impl Limits {
    /// A bundle file: bounded by its size only.
    pub const FILE: Limits = Limits {
        registry_ops: MAX_ITEMS,
        cases: MAX_ITEMS,
        control_ops: MAX_ITEMS,
        entries: MAX_ITEMS,
    };
}

/// Reads a list of at most `left` items (counted down), each at least
/// `min_item` bytes: a count over the limit refuses the body whole, before
/// anything is allocated for it.
fn read_list(
    r: &mut Reader<'_>,
    what: &str,
    left: &mut usize,
    limit: usize,
    min_item: usize,
) -> Result<Vec<Vec<u8>>, SchemaError> {
    let n = r.u32()? as usize;
    if n > *left {
        return Err(SchemaError::malformed(
            "bundle body",
            format!("more than {limit} {what} in one body"),
        ));
    }
    if n.saturating_mul(4 + min_item) > r.remaining() {
        return Err(SchemaError::malformed(
            "bundle body",
            format!("{n} {what} cannot fit in what is left of the body"),
        ));
    }
    *left -= n;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let item = r.bytes(MAX_BUNDLE_BYTES)?;
        if item.len() < min_item {
            return Err(SchemaError::malformed(
                "bundle body",
                format!(
                    "one of the {what} is {} bytes, too short to be one",
                    item.len()
                ),
            ));
        }
        v.push(item.to_vec());
    }
    Ok(v)
}

/// The shortest signed item of each kind (header, no parents, signature): an
/// empty or tiny item is refused with the body.
const MIN_REGISTRY_OP: usize = 100;
const MIN_CONTROL_OP: usize = 100;
const MIN_ENTRY: usize = 100;

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

    /// Decodes a body from a file ([`Limits::FILE`]).
    pub fn decode(b: &[u8]) -> Result<BundleBody, SchemaError> {
        BundleBody::decode_within(b, &Limits::FILE)
    }

    /// Decodes a body that carries at most `limits` of each kind of item; one
    /// over is refused whole, before its items are read.
    pub fn decode_within(b: &[u8], limits: &Limits) -> Result<BundleBody, SchemaError> {
        let mut r = Reader::new(b, "bundle body");
        if r.u8()? != VERSION {
            return Err(SchemaError::malformed("bundle body", "unsupported version"));
        }
        let mut left = limits.registry_ops;
        let registry_ops = read_list(
            &mut r,
            "registry statements",
            &mut left,
            limits.registry_ops,
            MIN_REGISTRY_OP,
        )?;
        let n = r.u32()? as usize;
        if n > limits.cases {
            return Err(SchemaError::malformed(
                "bundle body",
                format!("more than {} cases in one body", limits.cases),
            ));
        }
        if n.saturating_mul(24) > r.remaining() {
            return Err(SchemaError::malformed(
                "bundle body",
                format!("{n} cases cannot fit in what is left of the body"),
            ));
        }
        let (mut control_left, mut entries_left) = (limits.control_ops, limits.entries);
        let mut cases = Vec::with_capacity(n);
        for _ in 0..n {
            cases.push(CaseItems {
                case: CaseId(r.array()?),
                control_ops: read_list(
                    &mut r,
                    "control operations",
                    &mut control_left,
                    limits.control_ops,
                    MIN_CONTROL_OP,
                )?,
                entries: read_list(
                    &mut r,
                    "log entries",
                    &mut entries_left,
                    limits.entries,
                    MIN_ENTRY,
                )?,
            });
        }
        r.finish()?;
        Ok(BundleBody {
            registry_ops,
            cases,
        })
    }
}

/// `context` bound to a sender and a recipient (Ed25519 identities).
fn bound(context: &[u8], sender: &[u8; 32], recipient: &[u8; 32]) -> Vec<u8> {
    [context, sender, recipient].concat()
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
    w.u8(FILE_VERSION);
    w.bytes(sender.bytes());
    let plain = body.encode();
    match recipient {
        Some(r) => {
            let (from, to) = (&sender.identity.ed25519, &r.identity.ed25519);
            w.raw(to);
            let key = SymmetricKey::generate()?;
            w.bytes(&wrap::wrap_key(
                &key,
                &r.identity.x25519,
                &bound(WRAP_CONTEXT, from, to),
            )?);
            w.bytes(&key.seal(&bound(BODY_AAD, from, to), &plain)?);
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

/// The longest prefix [`peek_sender`] needs.
pub const SENDER_PREFIX_LEN: usize = 8 + 1 + 4 + MAX_CARD_BYTES;

/// The sender's card, read from the start of a bundle file before the rest is
/// read: a bundle from a node that is not enrolled is refused without reading
/// (or holding) its body. Not yet authenticated: [`open`] verifies the
/// signature over the whole file.
pub fn peek_sender(prefix: &[u8]) -> Result<NodeCard, SchemaError> {
    if prefix.len() < 9 || &prefix[..8] != MAGIC {
        return Err(SchemaError::malformed("bundle", "not a casesync bundle"));
    }
    if prefix[8] != FILE_VERSION {
        return Err(SchemaError::UnsupportedVersion {
            what: "bundle",
            version: prefix[8],
        });
    }
    let mut r = Reader::new(&prefix[9..], "bundle");
    NodeCard::decode(r.bytes(MAX_CARD_BYTES)?)
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
    if r.u8()? != FILE_VERSION {
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
        let from = &sender.identity.ed25519;
        let key = wrap::unwrap_key(keys, wrapped, &bound(WRAP_CONTEXT, from, &recipient))?;
        key.open(&bound(BODY_AAD, from, &recipient), body)?
    };
    Ok(OpenedBundle {
        sender,
        body: BundleBody::decode(&plain)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_body_splits_into_parts_that_each_carry_what_they_need() {
        let item = |b: u8, n: usize| vec![b; n];
        let body = BundleBody {
            registry_ops: vec![item(1, 300)],
            cases: vec![
                CaseItems {
                    case: CaseId([1; 16]),
                    control_ops: vec![item(2, 200)],
                    entries: (0..50u8).map(|i| item(i, 1000)).collect(),
                },
                CaseItems {
                    case: CaseId([2; 16]),
                    control_ops: vec![item(3, 200)],
                    entries: (50..60u8).map(|i| item(i, 1000)).collect(),
                },
            ],
        };
        let parts = split(body.clone(), 10_000);
        assert!(parts.len() > 5, "{} parts", parts.len());
        let mut seen: Vec<(CaseId, Vec<u8>)> = Vec::new();
        for p in &parts {
            assert_eq!(p.registry_ops, body.registry_ops);
            let size: usize = p
                .cases
                .iter()
                .map(|c| c.entries.iter().map(|e| e.len()).sum::<usize>())
                .sum();
            assert!(size <= 10_000, "a part of {size} bytes of entries");
            for c in &p.cases {
                let whole = body.cases.iter().find(|x| x.case == c.case).unwrap();
                assert_eq!(c.control_ops, whole.control_ops);
                seen.extend(c.entries.iter().map(|e| (c.case, e.clone())));
            }
        }
        let all: Vec<(CaseId, Vec<u8>)> = body
            .cases
            .iter()
            .flat_map(|c| c.entries.iter().map(|e| (c.case, e.clone())))
            .collect();
        assert_eq!(seen, all, "every entry once, in order");
        assert_eq!(split(body.clone(), usize::MAX), vec![body]);
    }

    /// Items as long as the shortest real ones (the body does not parse them).
    fn body() -> BundleBody {
        let item = |b: u8| vec![b; MIN_ENTRY];
        BundleBody {
            registry_ops: vec![item(1)],
            cases: vec![CaseItems {
                case: CaseId([3; 16]),
                control_ops: vec![item(2)],
                entries: vec![item(3), item(4)],
            }],
        }
    }

    /// C takes a bundle A made for B and signs it as its own: B refuses it.
    #[test]
    fn a_bundle_re_signed_by_another_sender_does_not_open() {
        let [a, b, c] = [0, 1, 2].map(|_| NodeKeys::generate().unwrap());
        let ac = NodeCard::issue(&a, "a", "A", "GB", 1).unwrap();
        let bc = NodeCard::issue(&b, "b", "B", "RO", 1).unwrap();
        let cc = NodeCard::issue(&c, "c", "C", "NL", 1).unwrap();
        let file = seal(&a, &ac, Some(&bc), &body()).unwrap();
        // Everything after A's card, under C's card and signature.
        let mut r = Reader::new(&file[..file.len() - SIGNATURE_LEN], "bundle");
        r.take(9).unwrap();
        r.bytes(MAX_CARD_BYTES).unwrap();
        let rest = &file[file.len() - SIGNATURE_LEN - r.remaining()..file.len() - SIGNATURE_LEN];
        let mut w = Writer::new();
        w.raw(MAGIC);
        w.u8(FILE_VERSION);
        w.bytes(cc.bytes());
        w.raw(rest);
        let sig = c.sign(SIGN_CONTEXT, &w.buf);
        w.raw(&sig);
        assert!(open(&b, &file).is_ok());
        assert!(open(&b, &w.buf).is_err(), "a re-signed bundle opened");
    }

    #[test]
    fn a_body_over_a_limit_is_refused_whole_and_short_items_too() {
        let b = body().encode();
        let one = Limits {
            registry_ops: 1,
            cases: 1,
            control_ops: 1,
            entries: 1,
        };
        let e = BundleBody::decode_within(&b, &one).unwrap_err().to_string();
        assert!(e.contains("more than 1 log entries"), "{e}");
        let two = Limits { entries: 2, ..one };
        assert_eq!(BundleBody::decode_within(&b, &two).unwrap(), body());
        let mut short = body();
        short.registry_ops[0].truncate(MIN_REGISTRY_OP - 1);
        let e = BundleBody::decode(&short.encode()).unwrap_err().to_string();
        assert!(e.contains("too short"), "{e}");
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
