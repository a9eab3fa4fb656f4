//! casesync-fuzz: one pure function per decoder of outside data, for cargo-fuzz
//! (`fuzz/libfuzzer`, nightly), the stable driver (`casesync-fuzz-stable`) and
//! the regression tests (`tests/regressions.rs`, stable, in CI).
//!
//! Every target takes arbitrary bytes and must return: an error from the code
//! under test is success, a panic (or an abort, or a hang) is a bug. Targets
//! also assert what must hold of what they decode (a round trip gives the same
//! bytes, the fast view of a record equals the view of its document), so a
//! decoder that accepts something it should not is found too.
//!
//! Signed encodings are fuzzed two ways, picked by the first byte of the input:
//! as received (the signature check refuses nearly every mutation, so this
//! covers the length and version checks before it), and "re-signed": the rest
//! of the input is taken as the unsigned part, the fixed test key is written at
//! the signer-key offset and the fixed key signs it, so mutations reach the
//! decoding after the signature check. See each target for its modes.
//!
//! Longer than most files here: one short function per decoder of outside data,
//! each with the oracle it checks.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use casesync_crypto::hash::{Hash, sha256};
use casesync_crypto::{NodeKeys, SymmetricKey, wrap};
use casesync_node::net::codec::{Frame, decode_frame};
use casesync_node::net::protocol::{SyncRequest, SyncResponse};
use casesync_schema::bundle::{self, BundleBody};
use casesync_schema::card::NodeCard;
use casesync_schema::control::{self, CaseMeta, ControlBody, ControlOp};
use casesync_schema::entry::{self, EntryHeader, LogEntry, ViewItem};
use casesync_schema::registry::{self, RegistryOp};
use casesync_schema::{CaseId, doc};

pub mod driver;
pub mod mutate;
pub mod seeds;

/// Signature contexts of the signed encodings (private in casesync-schema; the
/// regression tests fail if these drift, since re-signed seeds stop decoding).
pub const ENTRY_CONTEXT: &[u8] = b"casesync/entry/v2";
pub const CONTROL_CONTEXT: &[u8] = b"casesync/control/v1";
pub const REGISTRY_CONTEXT: &[u8] = b"casesync/registry/v1";
pub const CARD_CONTEXT: &[u8] = b"casesync/card/v1";
pub const BUNDLE_CONTEXT: &[u8] = b"casesync/bundle/v1";
/// Offsets of the signer's key (`SignedLayout::key_at`).
pub const ENTRY_KEY_AT: usize = 21;
pub const CONTROL_KEY_AT: usize = 17;
pub const REGISTRY_KEY_AT: usize = 33;
pub const CARD_KEY_AT: usize = 1;
const BUNDLE_MAGIC: &[u8; 8] = b"CSBUNDLE";
const TOKEN_PREFIX: &str = "csjoin1.";
const SEALED_TOKEN_PREFIX: &str = "csjoin2.";

/// The fixed node keys every target signs and opens with.
pub fn fixed_keys() -> &'static NodeKeys {
    static K: OnceLock<NodeKeys> = OnceLock::new();
    K.get_or_init(|| NodeKeys::from_secret_bytes(&[7; 32], &[9; 32]))
}

fn fixed_ed25519() -> &'static [u8; 32] {
    static K: OnceLock<[u8; 32]> = OnceLock::new();
    K.get_or_init(|| fixed_keys().public().ed25519)
}

/// The fixed case (epoch) key entries and case metadata are sealed with.
pub fn fixed_key() -> &'static SymmetricKey {
    static K: OnceLock<SymmetricKey> = OnceLock::new();
    K.get_or_init(|| SymmetricKey::from_bytes([5; 32]))
}

/// The card of [`fixed_keys`].
pub fn fixed_card() -> &'static NodeCard {
    static C: OnceLock<NodeCard> = OnceLock::new();
    C.get_or_init(|| {
        NodeCard::issue(fixed_keys(), "fuzz-node", "Fuzz Org", "GB", 1).expect("a valid card")
    })
}

/// Splits the mode byte off an input.
fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((m, rest)) => (*m, rest),
        None => (0, &[]),
    }
}

/// Takes `body` as the signed part of an encoding: writes the fixed key at
/// `key_at` (padding with zeros if too short), signs with the fixed key and
/// appends the signature.
pub fn resign(body: &[u8], key_at: usize, context: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    if b.len() < key_at + 32 {
        b.resize(key_at + 32, 0);
    }
    b[key_at..key_at + 32].copy_from_slice(fixed_ed25519());
    let sig = fixed_keys().sign(context, &b);
    b.extend_from_slice(&sig);
    b
}

/// A log entry whose head (up to its declared length, less the signature)
/// is re-signed with the fixed key: its signature goes at the head's end,
/// before the tail of parts. Input: the entry without its signature.
pub fn resign_entry(unsigned: &[u8]) -> Vec<u8> {
    let declared = unsigned
        .get(1..5)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .unwrap_or(0);
    let signed_len = declared
        .saturating_sub(casesync_crypto::identity::SIGNATURE_LEN)
        .clamp(ENTRY_KEY_AT + 32, unsigned.len().max(ENTRY_KEY_AT + 32));
    let (head, tail) = unsigned.split_at(signed_len.min(unsigned.len()));
    let mut b = resign(head, ENTRY_KEY_AT, ENTRY_CONTEXT);
    b.extend_from_slice(tail);
    b
}

/// Reads fixed-size fields off fuzz input, zero-padded past its end.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let n = N.min(self.0.len());
        a[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        a
    }
    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }
    fn rest(self) -> &'a [u8] {
        self.0
    }
}

fn actor() -> automerge::ActorId {
    doc::actor_for(fixed_ed25519())
}

// ---------------------------------------------------------------- log entries

/// Modes: 0 as received; 1 re-signed; 2 written by `LogEntry::create` from
/// fields read off the input (case 16, seq 8, prev 32, epoch 32, time 8, view
/// count 1 (mod 4), view items 72 each, then the payload), then decoded and
/// opened: the round trip must give back the header and the payload.
fn log_entry_impl(data: &[u8]) -> bool {
    let (mode, rest) = split(data);
    match mode % 3 {
        0 => entry_checked(rest),
        1 => entry_checked(&resign_entry(rest)),
        _ => entry_round_trip(rest),
    }
}

fn entry_checked(bytes: &[u8]) -> bool {
    let _ = entry::decode_payload(bytes);
    let Ok(e) = LogEntry::decode_verified(bytes) else {
        return false;
    };
    assert_eq!(e.bytes(), bytes, "an entry keeps the bytes it verified");
    // Erasing every part keeps the entry's hash and signature.
    let tags: Vec<_> = e.parts().iter().map(|p| p.tag).collect();
    let erased = e.without(&tags);
    let again = LogEntry::decode_verified(erased.bytes()).expect("an erased entry verifies");
    assert_eq!(again.hash(), e.hash());
    if let Ok(changes) = e.open(fixed_key()) {
        for c in &changes {
            change_pipeline(&c.change);
        }
    }
    true
}

fn entry_round_trip(data: &[u8]) -> bool {
    let mut f = Fields(data);
    let case = CaseId(f.array());
    let seq = f.u64();
    let prev = Hash(f.array());
    let epoch = Hash(f.array());
    let time_ms = i64::from_be_bytes(f.array());
    let n = f.u8() % 4;
    let view = (0..n)
        .map(|_| ViewItem {
            author: f.array(),
            seq: f.u64(),
            hash: Hash(f.array()),
        })
        .collect();
    let Ok(changes) = entry::decode_payload(f.rest()) else {
        return false;
    };
    let header = EntryHeader {
        case,
        author: [0; 32],
        seq,
        prev,
        epoch,
        time_ms,
        view,
    };
    let Ok(created) = LogEntry::create(fixed_keys(), header, fixed_key(), &changes) else {
        return false;
    };
    let prev_ok = match (entry::chain_of(seq), entry::starts_chain(seq)) {
        (0, true) => prev == Hash::ZERO,
        (_, true) => true,
        (_, false) => prev != Hash::ZERO,
    };
    let valid = entry::position_of(seq) != 0 && entry::chain_of(seq) <= entry::MAX_CHAIN && prev_ok;
    let decoded = LogEntry::decode_verified(created.bytes());
    assert_eq!(decoded.is_ok(), valid, "{decoded:?}");
    let Ok(decoded) = decoded else { return false };
    assert_eq!(decoded.header, created.header);
    assert_eq!(decoded.hash(), created.hash());
    let opened = decoded.open(fixed_key()).ok();
    // A part per record, in the order each record first appears.
    let mut grouped: Vec<entry::RecordChange> = Vec::new();
    let mut order: Vec<casesync_schema::RecordId> = Vec::new();
    for c in &changes {
        if !order.contains(&c.record) {
            order.push(c.record);
        }
    }
    for r in &order {
        grouped.extend(changes.iter().filter(|c| &c.record == r).cloned());
    }
    assert_eq!(opened.as_ref(), Some(&grouped));
    for c in &changes {
        change_pipeline(&c.change);
    }
    true
}

// ------------------------------------------------------ payloads and changes

/// Modes: 0 an entry payload (LZ4, list of changes), each change then through
/// [`change_pipeline`]; 1 one Automerge change whose chunk checksum is fixed up
/// first (else nearly every mutation fails the checksum); 2 one change as is.
fn entry_payload_impl(data: &[u8]) -> bool {
    let (mode, rest) = split(data);
    match mode % 3 {
        0 => payload_pipeline(rest),
        1 => change_pipeline(&fix_change_checksum(rest)),
        _ => change_pipeline(rest),
    }
}

fn payload_pipeline(bytes: &[u8]) -> bool {
    let Ok(changes) = entry::decode_payload(bytes) else {
        return false;
    };
    let again = entry::decode_payload(&entry::encode_payload(&changes)).ok();
    assert_eq!(again.as_ref(), Some(&changes), "payload round trip");
    changes.iter().all(|c| change_pipeline(&c.change))
}

/// What ingest does with a change from a peer: parse, check, read the view of
/// a first change straight from its ops, else build the document. When the
/// fast view is read, it must equal the view of the document (ingest trusts it
/// in place of building the document).
pub fn change_pipeline(bytes: &[u8]) -> bool {
    let Ok(change) = doc::parse_change(bytes) else {
        return false;
    };
    let Ok(expanded) = doc::check_change(&change) else {
        return false;
    };
    let quick = doc::view_of_first_change(&expanded);
    let built = doc::from_changes(vec![change], actor()).map(|d| doc::view(&d));
    if let Some(q) = quick {
        match built {
            Ok(Ok(v)) => assert_eq!(
                format!("{q:?}"),
                format!("{v:?}"),
                "the view read from a first change differs from its document's"
            ),
            other => panic!("a first change gives a view ({q:?}) but its document gives {other:?}"),
        }
    }
    true
}

/// Rewrites the checksum of an Automerge chunk (magic 4, checksum 4, type 1,
/// LEB128 length, data) to the one its type, length and data give.
pub fn fix_change_checksum(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if bytes.len() < 9 {
        return out;
    }
    let mut len: u64 = 0;
    let mut pos = 9;
    let mut shift = 0;
    loop {
        let Some(b) = bytes.get(pos) else {
            return out;
        };
        pos += 1;
        if shift < 64 {
            len |= u64::from(b & 0x7f) << shift;
        }
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let data = &bytes[pos..end];
    let mut h = vec![bytes[8]];
    let mut n = data.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            h.push(b);
            break;
        }
        h.push(b | 0x80);
    }
    h.extend_from_slice(data);
    out[4..8].copy_from_slice(&sha256(&h).0[..4]);
    out
}

// --------------------------------------------------------- control operations

/// Modes: 0 as received; 1 re-signed. A decoded operation is resolved alone,
/// and its key wraps and sealed metadata are opened with the fixed keys.
fn control_op_impl(data: &[u8]) -> bool {
    let (mode, rest) = split(data);
    match mode % 2 {
        0 => control_checked(rest),
        _ => control_checked(&resign(rest, CONTROL_KEY_AT, CONTROL_CONTEXT)),
    }
}

fn control_checked(bytes: &[u8]) -> bool {
    let Ok(op) = ControlOp::decode_verified(bytes) else {
        return false;
    };
    assert_eq!(op.bytes(), bytes);
    let (salt, wraps, meta) = match &op.body {
        ControlBody::Create {
            salt,
            wraps,
            sealed_meta,
            ..
        } => (*salt, wraps, Some(sealed_meta)),
        ControlBody::KeyShare { epoch, wraps } => (epoch.0, wraps, None),
        ControlBody::KeyEpoch { salt, wraps } | ControlBody::RemoveMember { salt, wraps, .. } => {
            (*salt, wraps, None)
        }
        ControlBody::EraseRecord { tag, sealed, .. }
        | ControlBody::EraseRequest { tag, sealed, .. } => {
            let _ = control::open_erasure(&op.case, tag, fixed_key(), sealed);
            ([0; 32], &Vec::new(), None)
        }
        ControlBody::AddMember { .. }
        | ControlBody::ChangeRole { .. }
        | ControlBody::AppointLead { .. }
        | ControlBody::ErasureReceipt { .. }
        | ControlBody::CloseCase
        | ControlBody::EraseCase { .. }
        | ControlBody::H2 { .. }
        | ControlBody::Policy { .. } => ([0; 32], &Vec::new(), None),
    };
    let context = control::wrap_context(&op.case, &salt);
    for w in wraps.iter().filter(|w| &w.recipient == fixed_ed25519()) {
        if let Ok(key) = wrap::unwrap_key(fixed_keys(), &w.wrapped, &context)
            && let Some(sealed) = meta
        {
            let _ = CaseMeta::open(sealed, &op.case, &key);
        }
    }
    if let Some(sealed) = meta {
        let _ = CaseMeta::open(sealed, &op.case, fixed_key());
    }
    let _ = control::resolve(op.case, std::slice::from_ref(&op));
    true
}

// --------------------------------------------------------- registry statements

/// Modes: 0 as received; 1 re-signed. A decoded statement is resolved alone
/// and must survive a join token round trip.
fn registry_op_impl(data: &[u8]) -> bool {
    let (mode, rest) = split(data);
    match mode % 2 {
        0 => registry_checked(rest),
        _ => registry_checked(&resign(rest, REGISTRY_KEY_AT, REGISTRY_CONTEXT)),
    }
}

fn registry_checked(bytes: &[u8]) -> bool {
    let Ok(op) = RegistryOp::decode_verified(bytes) else {
        return false;
    };
    assert_eq!(op.bytes(), bytes);
    let ops = std::slice::from_ref(&op);
    let _ = registry::resolve(op.federation, ops);
    let _ = registry::resolve(op.hash(), ops);
    let again = registry::decode_token(&registry::encode_token(ops)).ok();
    assert_eq!(
        again
            .as_ref()
            .map(|o| o.iter().map(|o| o.bytes()).collect::<Vec<_>>()),
        Some(vec![bytes]),
        "join token round trip"
    );
    true
}

/// Text starting with `csjoin1.` or `csjoin2.` is decoded as a token (the
/// sealed kind opened with the fixed keys); anything else is a token's binary
/// body after a mode byte (0: the inner statements, 1: a sealed token),
/// base64url-encoded and prefixed here, so mutations reach the framing.
fn join_token_impl(data: &[u8]) -> bool {
    if data.starts_with(TOKEN_PREFIX.as_bytes()) {
        return registry::decode_token(&String::from_utf8_lossy(data)).is_ok();
    }
    if data.starts_with(SEALED_TOKEN_PREFIX.as_bytes()) {
        return registry::open_token(fixed_keys(), &String::from_utf8_lossy(data)).is_ok();
    }
    let (mode, rest) = split(data);
    match mode % 2 {
        0 => {
            let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(rest));
            registry::decode_token(&token).is_ok()
        }
        _ => {
            let token = format!("{SEALED_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(rest));
            registry::open_token(fixed_keys(), &token).is_ok()
        }
    }
}

// ------------------------------------------------------------------ node cards

/// Modes: 0 as received; 1 re-signed; 2 the text form (`cscard1.`), lossy UTF-8.
fn node_card_impl(data: &[u8]) -> bool {
    let (mode, rest) = split(data);
    let card = match mode % 3 {
        0 => NodeCard::decode(rest),
        1 => NodeCard::decode(&resign(rest, CARD_KEY_AT, CARD_CONTEXT)),
        _ => NodeCard::from_text(&String::from_utf8_lossy(rest)),
    };
    let Ok(card) = card else { return false };
    let again = NodeCard::from_text(&card.to_text()).ok();
    assert_eq!(again.as_ref(), Some(&card), "card text round trip");
    let _ = card.peer_id();
    let _ = format!("{card:?}");
    true
}

// --------------------------------------------------------------------- bundles

/// Modes: 0 a bundle body; 1 a bundle file, opened with the fixed keys; 2 a
/// bundle file re-signed: `CSBUNDLE`, version, the fixed card, then the input
/// (recipient 32, wrapped key, body), signed by the fixed key.
fn bundle_impl(data: &[u8]) -> bool {
    let (mode, rest) = split(data);
    match mode % 3 {
        0 => body_checked(rest),
        1 => bundle_checked(rest),
        _ => {
            let mut b = BUNDLE_MAGIC.to_vec();
            // The file version (2: sealed parts bound to sender and recipient).
            b.push(2);
            let card = fixed_card().bytes();
            b.extend_from_slice(&(card.len() as u32).to_be_bytes());
            b.extend_from_slice(card);
            b.extend_from_slice(rest);
            let sig = fixed_keys().sign(BUNDLE_CONTEXT, &b);
            b.extend_from_slice(&sig);
            bundle_checked(&b)
        }
    }
}

fn body_checked(bytes: &[u8]) -> bool {
    let Ok(body) = BundleBody::decode(bytes) else {
        return false;
    };
    assert_eq!(body.encode(), bytes, "a bundle body has one encoding");
    items_of(&body);
    true
}

fn bundle_checked(bytes: &[u8]) -> bool {
    let Ok(opened) = bundle::open(fixed_keys(), bytes) else {
        return false;
    };
    items_of(&opened.body);
    true
}

/// What ingest does first with a body's items: verify and decode each.
fn items_of(body: &BundleBody) {
    for r in &body.registry_ops {
        let _ = RegistryOp::decode_verified(r);
    }
    for c in &body.cases {
        for o in &c.control_ops {
            let _ = ControlOp::decode_verified(o);
        }
        for e in &c.entries {
            let _ = LogEntry::decode_verified(e);
        }
    }
}

// --------------------------------------------------------------- sync messages

/// Modes: 0 a request; 1 a response (CBOR). A decoded message must encode and
/// decode to the same message; a delivery's body is decoded as a bundle body.
fn net_message_impl(data: &[u8]) -> bool {
    let (mode, rest) = split(data);
    match mode % 2 {
        0 => match decode_frame::<SyncRequest>(rest) {
            Frame::Message(m) => {
                if let SyncRequest::Deliver { body, .. } = &m {
                    let _ = body_checked(body);
                }
                assert_reencodes::<SyncRequest>(&m);
                true
            }
            Frame::Broken(_) | Frame::Busy => false,
        },
        _ => match decode_frame::<SyncResponse>(rest) {
            Frame::Message(m) => {
                if let SyncResponse::Items { body, .. } = &m {
                    let _ = body_checked(body);
                }
                assert_reencodes::<SyncResponse>(&m);
                true
            }
            Frame::Broken(_) | Frame::Busy => false,
        },
    }
}

fn assert_reencodes<M>(m: &M)
where
    M: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let bytes = cbor4ii::serde::to_vec(Vec::new(), m).expect("a decoded message encodes");
    match decode_frame::<M>(&bytes) {
        Frame::Message(again) => assert_eq!(format!("{again:?}"), format!("{m:?}")),
        Frame::Broken(why) => panic!("a re-encoded message does not decode: {why}"),
        Frame::Busy => panic!("decoding is never busy"),
    }
}

// --------------------------------------------------------------------- imports

/// JSON Lines as an import file: every line parsed, every record validated;
/// also the whole input as one line. Accepted when every line is a record.
fn import_jsonl_impl(data: &[u8]) -> bool {
    let _ = casesync_node::import::parse_json_line(1, &String::from_utf8_lossy(data));
    let mut ok = 0usize;
    let mut failed = false;
    for r in casesync_node::import::json_lines(data) {
        match r {
            Ok((_, input)) => {
                ok += 1;
                let _ = input.validate();
            }
            Err(_) => failed = true,
        }
    }
    ok > 0 && !failed
}

/// CSV as an import file: header, every row parsed, every record validated.
fn import_csv_impl(data: &[u8]) -> bool {
    let Ok(rows) = casesync_node::import::csv_rows(data) else {
        return false;
    };
    let mut ok = 0usize;
    let mut failed = false;
    for r in rows {
        match r {
            Ok((_, input)) => {
                ok += 1;
                let _ = input.validate();
            }
            Err(_) => failed = true,
        }
    }
    ok > 0 && !failed
}

/// `audit list --since`, lossy UTF-8.
fn audit_since_impl(data: &[u8]) -> bool {
    casesync_node::audit::parse_since(&String::from_utf8_lossy(data)).is_ok()
}

// --------------------------------------------------------------------- targets

macro_rules! targets {
    ($($(#[$doc:meta])* $name:ident => $imp:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(data: &[u8]) {
                let _ = $imp(data);
            }
        )*
        /// Every target by name.
        pub const TARGETS: &[(&str, fn(&[u8]))] = &[$((stringify!($name), $name as fn(&[u8]))),*];
        /// Every target by name, returning whether the input was accepted (decoded
        /// and, where the target goes further, checked): valid seeds must be.
        pub const ACCEPTS: &[(&str, fn(&[u8]) -> bool)] =
            &[$((stringify!($name), $imp as fn(&[u8]) -> bool)),*];
    };
}

targets! {
    /// `LogEntry::decode_verified` (as received, re-signed, created), `open`, `decode_payload`.
    log_entry => log_entry_impl,
    /// `entry::decode_payload`, then `doc::parse_change`, `check_change`,
    /// `view_of_first_change`, `from_changes`, `view` on each change.
    entry_payload => entry_payload_impl,
    /// `ControlOp::decode_verified` (as received, re-signed), wraps, metadata, `resolve`.
    control_op => control_op_impl,
    /// `RegistryOp::decode_verified` (as received, re-signed), `resolve`, token round trip.
    registry_op => registry_op_impl,
    /// `registry::decode_token`.
    join_token => join_token_impl,
    /// `NodeCard::decode` (as received, re-signed), `NodeCard::from_text`.
    node_card => node_card_impl,
    /// `BundleBody::decode`, `bundle::open` (as received, re-signed).
    bundle => bundle_impl,
    /// `net::codec::decode_frame` of `SyncRequest` and `SyncResponse`.
    net_message => net_message_impl,
    /// `import::json_lines`, `parse_json_line`, `RecordInput::validate`.
    import_jsonl => import_jsonl_impl,
    /// `import::csv_rows`, `RecordInput::validate`.
    import_csv => import_csv_impl,
    /// `audit::parse_since`.
    audit_since => audit_since_impl,
}

/// The target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Whether target `name` accepts `data` (`None` for an unknown target).
pub fn accepts(name: &str, data: &[u8]) -> Option<bool> {
    ACCEPTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f(data))
}
