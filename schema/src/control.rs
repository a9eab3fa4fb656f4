//! Case control operations and their resolution into a case's state.
//!
//! A case's control log is an authority graph (docs/design.md, "Authority graphs"):
//! each operation is signed by its author and names the hashes of the operations
//! its author had seen (its parents). [`resolve`] folds the valid operations in a
//! deterministic topological order (parents first, ties broken by hash), so the same
//! set of operations gives the same state on every node in any arrival order.
//!
//! Layout (version 1): `version u8 | case [16] | author [32] | parents count u32,
//! [32]* | time_ms i64 | tag u8 | body | signature [64]`.
//!
//! The case id is derived from the creator's key and a nonce in the create
//! operation, so no one but the creator can write a genesis for a case id.
//!
//! Longer than most files here (about 1,050 lines of code, 770 of tests): the operation
//! encoding, the authorization rules and their effects match over the same
//! `ControlBody`, and a new operation is added in one place, with its tests below.

use std::collections::{BTreeMap, BTreeSet};

use casesync_crypto::hash::{Hash, sha256, sha256_parts};
use casesync_crypto::identity::SIGNATURE_LEN;
use casesync_crypto::{NodeKeys, SymmetricKey, wrap};

use crate::authority;
use crate::card::{MAX_CARD_BYTES, NodeCard};
use crate::codec::{Reader, SignedLayout, Writer, verify_signed};
use crate::entry::{RecordTag, ViewItem, chain_of, position_of, record_tag};
use crate::{CaseId, RecordId, SchemaError};

const VERSION: u8 = 1;
const SIGN_CONTEXT: &[u8] = b"casesync/control/v1";
const META_CONTEXT: &[u8] = b"casesync/case-meta/v1";
pub const MAX_PARENTS: usize = 256;
pub const MAX_WRAPS: usize = 4096;
pub const MAX_META_BYTES: usize = 64 * 1024;
pub const MAX_OP_BYTES: usize = 1024 * 1024;
/// Longest reason a removal may give.
pub const MAX_REASON: usize = 1000;
/// The longest reason once sealed (AEAD nonce and tag, a version byte).
const MAX_SEALED_REASON: usize = MAX_REASON + 64;
const REASON_CONTEXT: &[u8] = b"casesync/removal-reason/v1";

/// A member's role, most powerful first: the order is what concurrent grants
/// of one node resolve by (the smallest wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Lead = 1,
    Contributor = 2,
    Observer = 3,
    Relay = 4,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Lead => "lead",
            Role::Contributor => "contributor",
            Role::Observer => "observer",
            Role::Relay => "relay",
        }
    }
    fn from_u8(v: u8) -> Option<Role> {
        [Role::Lead, Role::Contributor, Role::Observer, Role::Relay]
            .into_iter()
            .find(|r| *r as u8 == v)
    }
    /// Whether entries written by a member with this role are accepted.
    pub fn may_write(self) -> bool {
        matches!(self, Role::Lead | Role::Contributor)
    }
}

impl std::str::FromStr for Role {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Role, SchemaError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lead" => Ok(Role::Lead),
            "contributor" => Ok(Role::Contributor),
            "observer" => Ok(Role::Observer),
            _ => Err(SchemaError::InvalidField {
                field: "role".into(),
                reason: "must be lead, contributor or observer".into(),
            }),
        }
    }
}

/// A case key wrapped to one member (by its Ed25519 identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyWrap {
    pub recipient: [u8; 32],
    pub wrapped: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlBody {
    /// Genesis: the creator becomes the first lead; carries the first key epoch and
    /// the case metadata sealed under it.
    Create {
        nonce: [u8; 16],
        creator: NodeCard,
        salt: [u8; 32],
        wraps: Vec<KeyWrap>,
        sealed_meta: Vec<u8>,
    },
    AddMember {
        card: NodeCard,
        role: Role,
    },
    /// Gives existing epoch keys to members (e.g. a new member gets the history).
    KeyShare {
        epoch: Hash,
        wraps: Vec<KeyWrap>,
    },
    /// A new key epoch (rotation).
    KeyEpoch {
        salt: [u8; 32],
        wraps: Vec<KeyWrap>,
    },
    /// Removes a member: its content log is cut at `cut` (per chain of its log
    /// the remover holds, the last entry it accepts, by seq and hash; a chain
    /// not listed keeps none of its entries), and a new key epoch starts,
    /// wrapped to the remaining members only.
    /// The reason is sealed under that new epoch's key ([`seal_reason`]): the
    /// remaining members read it; a relay, the removed node and a disk thief do not.
    RemoveMember {
        member: [u8; 32],
        cut: Vec<LogEnd>,
        sealed_reason: Vec<u8>,
        salt: [u8; 32],
        wraps: Vec<KeyWrap>,
    },
    /// Gives a member another role (a lead hands the case over, or makes a
    /// reader a writer). A writer never becomes a reader this way: that
    /// needs a removal, whose cut fixes which of its entries count. It is
    /// not a removal: what a lead that is made a contributor signed
    /// concurrently stands (a removal is what cuts a key's authority).
    ChangeRole {
        member: [u8; 32],
        role: Role,
    },
    /// A federation admin makes a current member lead of a case whose leads
    /// were all revoked from the federation (no one else could). Valid only
    /// against the registry ([`FederationFacts`]); the reason is sealed under
    /// the newest epoch's key when the admin holds it, else empty.
    AppointLead {
        member: [u8; 32],
        sealed_reason: Vec<u8>,
    },
    /// A lead erases a record (issue 19): every member destroys its content
    /// and answers with an [`ControlBody::ErasureReceipt`]. The record is
    /// named by its tag in entries (so a relay, without keys, strips it
    /// too); its id and the reason are sealed under `epoch`'s key
    /// ([`seal_erasure`]), for members only.
    EraseRecord {
        tag: RecordTag,
        epoch: Hash,
        sealed: Vec<u8>,
    },
    /// A member's signed word that it destroyed what erasure `erasure` named:
    /// any current member writes one, once per erasure, after the content
    /// is gone from its store.
    ErasureReceipt {
        erasure: Hash,
    },
    /// A lead closes the case: read-only from then on (erasures and
    /// receipts still fold). Final.
    CloseCase,
    /// A lead erases the whole case: every member destroys all its records'
    /// content, as for an erasure of each, and answers with a receipt; the
    /// case is closed. The reason is sealed under `epoch`'s key.
    EraseCase {
        epoch: Hash,
        sealed_reason: Vec<u8>,
    },
    /// Handling code H2, by a writer as originator: `records` (by tag) are
    /// its records under H2, `lifted` its records no longer under H2, and
    /// `consents` the current members it lets hold its H2 records. A member
    /// of another agency without the originator's consent gets every entry,
    /// but without those records' parts (a relay strips them too: the tags
    /// are all it needs). Written when a writer makes H2 records (with
    /// consents for the members then), by `case consent` for a member added
    /// later, and by a regrade. A consent covers the author's H2 records of
    /// the case, earlier and later; it is not withdrawn (what was sent
    /// stays sent).
    H2 {
        records: Vec<RecordTag>,
        lifted: Vec<RecordTag>,
        consents: Vec<[u8; 32]>,
    },
    /// A lead sets the case's policy (issue 19), binding every member node:
    /// which operations need a second person there (`four_eyes`, names in
    /// [`CASE_FOUR_EYES`]), and whether a writer may ask for the erasure of
    /// a record it originated ([`ControlBody::EraseRequest`]). The latest
    /// in fold order stands.
    Policy {
        four_eyes: Vec<String>,
        originator_erases: bool,
    },
    /// A writer asks for the erasure of a record it says it originated,
    /// where the case's policy lets originators erase: a lead's node checks
    /// the record's originator against its content and, if it is the
    /// asker, signs the [`ControlBody::EraseRecord`]. Sealed like an
    /// erasure ([`seal_erasure`]). The control log cannot tell an
    /// originator from a tag, so the request itself erases nothing.
    EraseRequest {
        tag: RecordTag,
        epoch: Hash,
        sealed: Vec<u8>,
    },
}

/// What a case's policy may ask a second person for, at every member node.
pub const CASE_FOUR_EYES: [&str; 3] = ["member-add", "bundle-export", "erase"];

/// Most records, or members, one H2 operation names.
pub const MAX_H2_ITEMS: usize = 4096;

/// What a case's resolution takes from the federation registry: who is an
/// active admin and who is revoked. Only [`ControlBody::AppointLead`] asks;
/// without them (`FederationFacts::default()`) no appointment is valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FederationFacts {
    pub admins: BTreeSet<[u8; 32]>,
    pub revoked: BTreeSet<[u8; 32]>,
}

impl FederationFacts {
    /// A fingerprint, for caches of resolved states.
    pub fn digest(&self) -> Hash {
        let mut parts: Vec<&[u8]> = vec![b"admins"];
        parts.extend(self.admins.iter().map(|a| &a[..]));
        parts.push(b"revoked");
        parts.extend(self.revoked.iter().map(|a| &a[..]));
        sha256_parts(&parts)
    }
}

#[derive(Clone, Debug)]
pub struct ControlOp {
    pub case: CaseId,
    pub author: [u8; 32],
    pub parents: Vec<Hash>,
    pub time_ms: i64,
    pub body: ControlBody,
    bytes: Vec<u8>,
    hash: Hash,
}

/// The node an operation may give a role in the case (the creator, or an added
/// member): only such nodes can ever author an operation that folds.
pub fn may_grant(op: &ControlOp) -> Option<[u8; 32]> {
    match &op.body {
        ControlBody::Create { creator, .. } => Some(creator.identity.ed25519),
        ControlBody::AddMember { card, .. } => Some(card.identity.ed25519),
        _ => None,
    }
}

/// The case id a creator with key `author` gets for `nonce`.
pub fn case_id_for(author: &[u8; 32], nonce: &[u8; 16]) -> CaseId {
    let h = sha256_parts(&[b"casesync/case-id/v1", author, nonce]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.0[..16]);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    CaseId(id)
}

/// The salt of a new key epoch: a commitment to its key,
/// `SHA-256("casesync/epoch-key-commitment/v1" | case | key)`. It is in the
/// signed operation and in every wrap's context, so a lead cannot give
/// members different keys for one epoch unnoticed: a member checks the key it
/// unwraps against it ([`key_matches_epoch`]). The key is random (256 bits),
/// so its hash tells nothing of it.
pub fn epoch_salt(case: &CaseId, key: &SymmetricKey) -> [u8; 32] {
    sha256_parts(&[b"casesync/epoch-key-commitment/v1", &case.0, key.expose()]).0
}

/// Whether `key` is the one the epoch with `salt` committed to (constant time).
pub fn key_matches_epoch(case: &CaseId, salt: &[u8; 32], key: &SymmetricKey) -> bool {
    casesync_crypto::hash::ct_eq(&epoch_salt(case, key), salt)
}

/// The HPKE context of a wrapped epoch key: binds case and epoch salt.
pub fn wrap_context(case: &CaseId, salt: &[u8; 32]) -> Vec<u8> {
    let mut c = case.0.to_vec();
    c.extend_from_slice(salt);
    c
}

/// Wraps `key` to each card's X25519 key.
pub fn wrap_to(
    key: &SymmetricKey,
    case: &CaseId,
    salt: &[u8; 32],
    cards: &[&NodeCard],
) -> Result<Vec<KeyWrap>, SchemaError> {
    cards
        .iter()
        .map(|c| {
            Ok(KeyWrap {
                recipient: c.identity.ed25519,
                wrapped: wrap::wrap_key(key, &c.identity.x25519, &wrap_context(case, salt))?,
            })
        })
        .collect()
}

fn write_wraps(w: &mut Writer, wraps: &[KeyWrap]) {
    w.u32(wraps.len() as u32);
    for k in wraps {
        w.raw(&k.recipient);
        w.bytes(&k.wrapped);
    }
}

fn read_wraps(r: &mut Reader<'_>) -> Result<Vec<KeyWrap>, SchemaError> {
    let n = r.count(MAX_WRAPS, 36)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(KeyWrap {
            recipient: r.array()?,
            wrapped: r.bytes(wrap::WRAPPED_LEN)?.to_vec(),
        });
    }
    Ok(v)
}

impl ControlOp {
    pub fn create(
        keys: &NodeKeys,
        case: CaseId,
        mut parents: Vec<Hash>,
        time_ms: i64,
        body: ControlBody,
    ) -> Result<ControlOp, SchemaError> {
        let author = keys.public().ed25519;
        let mut w = Writer::new();
        authority::write_header(&mut w, VERSION, &case.0, &author, &mut parents, time_ms);
        match &body {
            ControlBody::Create {
                nonce,
                creator,
                salt,
                wraps,
                sealed_meta,
            } => {
                w.u8(1);
                w.raw(nonce);
                w.bytes(creator.bytes());
                w.raw(salt);
                write_wraps(&mut w, wraps);
                w.bytes(sealed_meta);
            }
            ControlBody::AddMember { card, role } => {
                w.u8(2);
                w.bytes(card.bytes());
                w.u8(*role as u8);
            }
            ControlBody::KeyShare { epoch, wraps } => {
                w.u8(3);
                w.raw(epoch.as_bytes());
                write_wraps(&mut w, wraps);
            }
            ControlBody::KeyEpoch { salt, wraps } => {
                w.u8(4);
                w.raw(salt);
                write_wraps(&mut w, wraps);
            }
            ControlBody::RemoveMember {
                member,
                cut,
                sealed_reason,
                salt,
                wraps,
            } => {
                check_cut(cut)?;
                if sealed_reason.len() > MAX_SEALED_REASON {
                    return Err(SchemaError::InvalidField {
                        field: "reason".into(),
                        reason: format!("at most {MAX_REASON} bytes"),
                    });
                }
                w.u8(5);
                w.raw(member);
                w.u32(cut.len() as u32);
                for end in cut {
                    w.u64(end.seq);
                    w.raw(end.hash.as_bytes());
                }
                w.bytes(sealed_reason);
                w.raw(salt);
                write_wraps(&mut w, wraps);
            }
            ControlBody::ChangeRole { member, role } => {
                w.u8(6);
                w.raw(member);
                w.u8(*role as u8);
            }
            ControlBody::AppointLead {
                member,
                sealed_reason,
            } => {
                if sealed_reason.len() > MAX_SEALED_REASON {
                    return Err(SchemaError::InvalidField {
                        field: "reason".into(),
                        reason: format!("at most {MAX_REASON} bytes"),
                    });
                }
                w.u8(7);
                w.raw(member);
                w.bytes(sealed_reason);
            }
            ControlBody::EraseRecord { tag, epoch, sealed } => {
                if sealed.len() > MAX_SEALED_ERASURE {
                    return Err(SchemaError::InvalidField {
                        field: "reason".into(),
                        reason: format!("at most {MAX_REASON} bytes"),
                    });
                }
                w.u8(8);
                w.raw(&tag.0);
                w.raw(epoch.as_bytes());
                w.bytes(sealed);
            }
            ControlBody::ErasureReceipt { erasure } => {
                w.u8(9);
                w.raw(erasure.as_bytes());
            }
            ControlBody::CloseCase => w.u8(10),
            ControlBody::EraseCase {
                epoch,
                sealed_reason,
            } => {
                if sealed_reason.len() > MAX_SEALED_REASON {
                    return Err(SchemaError::InvalidField {
                        field: "reason".into(),
                        reason: format!("at most {MAX_REASON} bytes"),
                    });
                }
                w.u8(11);
                w.raw(epoch.as_bytes());
                w.bytes(sealed_reason);
            }
            ControlBody::Policy {
                four_eyes,
                originator_erases,
            } => {
                let mut seen = BTreeSet::new();
                if four_eyes
                    .iter()
                    .any(|n| !CASE_FOUR_EYES.contains(&n.as_str()) || !seen.insert(n))
                {
                    return Err(SchemaError::InvalidField {
                        field: "four_eyes".into(),
                        reason: format!("each of {} at most once", CASE_FOUR_EYES.join(", ")),
                    });
                }
                w.u8(13);
                w.u8(four_eyes.len() as u8);
                for n in four_eyes {
                    w.str(n);
                }
                w.u8(*originator_erases as u8);
            }
            ControlBody::EraseRequest { tag, epoch, sealed } => {
                if sealed.len() > MAX_SEALED_ERASURE {
                    return Err(SchemaError::InvalidField {
                        field: "reason".into(),
                        reason: format!("at most {MAX_REASON} bytes"),
                    });
                }
                w.u8(14);
                w.raw(&tag.0);
                w.raw(epoch.as_bytes());
                w.bytes(sealed);
            }
            ControlBody::H2 {
                records,
                lifted,
                consents,
            } => {
                if records.is_empty() && lifted.is_empty() && consents.is_empty()
                    || [records.len(), lifted.len(), consents.len()]
                        .iter()
                        .any(|n| *n > MAX_H2_ITEMS)
                {
                    return Err(SchemaError::InvalidField {
                        field: "h2".into(),
                        reason: format!(
                            "an H2 operation names something, and at most {MAX_H2_ITEMS} records or members of each kind"
                        ),
                    });
                }
                w.u8(12);
                for tags in [records, lifted] {
                    w.u32(tags.len() as u32);
                    for t in tags {
                        w.raw(&t.0);
                    }
                }
                w.u32(consents.len() as u32);
                for m in consents {
                    w.raw(m);
                }
            }
        }
        let sig = keys.sign(SIGN_CONTEXT, &w.buf);
        w.raw(&sig);
        if w.buf.len() > MAX_OP_BYTES {
            return Err(SchemaError::TooLarge {
                what: "control operation",
                size: w.buf.len(),
                limit: MAX_OP_BYTES,
            });
        }
        let hash = sha256(&w.buf);
        Ok(ControlOp {
            case,
            author,
            parents,
            time_ms,
            body,
            bytes: w.buf,
            hash,
        })
    }

    /// Verifies the signature over `bytes`, then decodes.
    pub fn decode_verified(bytes: &[u8]) -> Result<ControlOp, SchemaError> {
        let signed = verify_signed(
            bytes,
            &SignedLayout {
                what: "control operation",
                version: VERSION,
                min_len: 1 + 16 + 32 + 4 + 8 + 1 + SIGNATURE_LEN,
                max_len: MAX_OP_BYTES,
                key_at: 17,
                context: SIGN_CONTEXT,
            },
        )?;
        let mut r = Reader::new(signed, "control operation");
        let h = authority::read_header::<16>(&mut r, MAX_PARENTS)?;
        let (case, author, parents, time_ms) = (CaseId(h.scope), h.author, h.parents, h.time_ms);
        let body = match r.u8()? {
            1 => ControlBody::Create {
                nonce: r.array()?,
                creator: NodeCard::decode(r.bytes(MAX_CARD_BYTES)?)?,
                salt: r.array()?,
                wraps: read_wraps(&mut r)?,
                sealed_meta: r.bytes(MAX_META_BYTES)?.to_vec(),
            },
            2 => {
                let card = NodeCard::decode(r.bytes(MAX_CARD_BYTES)?)?;
                let role = Role::from_u8(r.u8()?)
                    .ok_or_else(|| SchemaError::malformed("control operation", "unknown role"))?;
                ControlBody::AddMember { card, role }
            }
            3 => ControlBody::KeyShare {
                epoch: Hash(r.array()?),
                wraps: read_wraps(&mut r)?,
            },
            4 => ControlBody::KeyEpoch {
                salt: r.array()?,
                wraps: read_wraps(&mut r)?,
            },
            5 => {
                let member = r.array()?;
                let n = r.count(MAX_CUT_CHAINS, 40)?;
                let mut cut = Vec::with_capacity(n);
                for _ in 0..n {
                    cut.push(LogEnd {
                        seq: r.u64()?,
                        hash: Hash(r.array()?),
                    });
                }
                check_cut(&cut)?;
                ControlBody::RemoveMember {
                    member,
                    cut,
                    sealed_reason: r.bytes(MAX_SEALED_REASON)?.to_vec(),
                    salt: r.array()?,
                    wraps: read_wraps(&mut r)?,
                }
            }
            6 => {
                let member = r.array()?;
                let role = Role::from_u8(r.u8()?)
                    .ok_or_else(|| SchemaError::malformed("control operation", "unknown role"))?;
                ControlBody::ChangeRole { member, role }
            }
            7 => ControlBody::AppointLead {
                member: r.array()?,
                sealed_reason: r.bytes(MAX_SEALED_REASON)?.to_vec(),
            },
            8 => ControlBody::EraseRecord {
                tag: RecordTag(r.array()?),
                epoch: Hash(r.array()?),
                sealed: r.bytes(MAX_SEALED_ERASURE)?.to_vec(),
            },
            9 => ControlBody::ErasureReceipt {
                erasure: Hash(r.array()?),
            },
            10 => ControlBody::CloseCase,
            11 => ControlBody::EraseCase {
                epoch: Hash(r.array()?),
                sealed_reason: r.bytes(MAX_SEALED_REASON)?.to_vec(),
            },
            12 => {
                let tags = |r: &mut Reader<'_>| -> Result<Vec<RecordTag>, SchemaError> {
                    let n = r.count(MAX_H2_ITEMS, 16)?;
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(RecordTag(r.array()?));
                    }
                    Ok(v)
                };
                let records = tags(&mut r)?;
                let lifted = tags(&mut r)?;
                let n = r.count(MAX_H2_ITEMS, 32)?;
                let mut consents = Vec::with_capacity(n);
                for _ in 0..n {
                    consents.push(r.array()?);
                }
                ControlBody::H2 {
                    records,
                    lifted,
                    consents,
                }
            }
            13 => {
                let n = r.u8()? as usize;
                if n > CASE_FOUR_EYES.len() {
                    return Err(SchemaError::malformed("control operation", "bad policy"));
                }
                let mut four_eyes: Vec<String> = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = r.str(32)?;
                    if !CASE_FOUR_EYES.contains(&name) || four_eyes.iter().any(|x| x == name) {
                        return Err(SchemaError::malformed("control operation", "bad policy"));
                    }
                    four_eyes.push(name.to_string());
                }
                let originator_erases = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(SchemaError::malformed("control operation", "bad policy")),
                };
                ControlBody::Policy {
                    four_eyes,
                    originator_erases,
                }
            }
            14 => ControlBody::EraseRequest {
                tag: RecordTag(r.array()?),
                epoch: Hash(r.array()?),
                sealed: r.bytes(MAX_SEALED_ERASURE)?.to_vec(),
            },
            t => {
                return Err(SchemaError::malformed(
                    "control operation",
                    format!("unknown operation tag {t}"),
                ));
            }
        };
        r.finish()?;
        Ok(ControlOp {
            case,
            author,
            parents,
            time_ms,
            body,
            bytes: bytes.to_vec(),
            hash: sha256(bytes),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }
}

fn reason_aad(case: &CaseId, salt: &[u8; 32]) -> Vec<u8> {
    let mut a = REASON_CONTEXT.to_vec();
    a.extend_from_slice(&case.0);
    a.extend_from_slice(salt);
    a
}

/// Seals a removal's reason under the key of the epoch the removal starts
/// (`salt` is that epoch's salt).
pub fn seal_reason(
    case: &CaseId,
    salt: &[u8; 32],
    key: &SymmetricKey,
    reason: &str,
) -> Result<Vec<u8>, SchemaError> {
    if reason.len() > MAX_REASON {
        return Err(SchemaError::InvalidField {
            field: "reason".into(),
            reason: format!("at most {MAX_REASON} bytes"),
        });
    }
    Ok(key.seal(&reason_aad(case, salt), reason.as_bytes())?)
}

/// Opens what [`seal_reason`] sealed.
pub fn open_reason(
    case: &CaseId,
    salt: &[u8; 32],
    key: &SymmetricKey,
    sealed: &[u8],
) -> Result<String, SchemaError> {
    let plain = key.open(&reason_aad(case, salt), sealed)?;
    String::from_utf8(plain).map_err(|_| SchemaError::malformed("removal reason", "not UTF-8"))
}

/// The longest sealed erasure (record id, reason, nonce, tag).
const MAX_SEALED_ERASURE: usize = MAX_SEALED_REASON + 16;
const ERASURE_CONTEXT: &[u8] = b"casesync/erasure/v1";

fn erasure_aad(case: &CaseId, tag: &RecordTag) -> Vec<u8> {
    let mut a = ERASURE_CONTEXT.to_vec();
    a.extend_from_slice(&case.0);
    a.extend_from_slice(&tag.0);
    a
}

/// Seals what an erasure names for members: the record id and the reason.
pub fn seal_erasure(
    case: &CaseId,
    record: &RecordId,
    key: &SymmetricKey,
    reason: &str,
) -> Result<(RecordTag, Vec<u8>), SchemaError> {
    if reason.len() > MAX_REASON {
        return Err(SchemaError::InvalidField {
            field: "reason".into(),
            reason: format!("at most {MAX_REASON} bytes"),
        });
    }
    let tag = record_tag(case, record);
    let mut plain = record.0.to_vec();
    plain.extend_from_slice(reason.as_bytes());
    Ok((tag, key.seal(&erasure_aad(case, &tag), &plain)?))
}

/// Opens what [`seal_erasure`] sealed: the record id (checked against the
/// tag) and the reason.
pub fn open_erasure(
    case: &CaseId,
    tag: &RecordTag,
    key: &SymmetricKey,
    sealed: &[u8],
) -> Result<(RecordId, String), SchemaError> {
    let plain = key.open(&erasure_aad(case, tag), sealed)?;
    let bad = || SchemaError::malformed("erasure", "not a record id and a reason");
    let (id, reason) = plain.split_at_checked(16).ok_or_else(bad)?;
    let mut rid = [0u8; 16];
    rid.copy_from_slice(id);
    let record = RecordId(rid);
    if &record_tag(case, &record) != tag {
        return Err(SchemaError::malformed(
            "erasure",
            "the record is not the one tagged",
        ));
    }
    let reason = String::from_utf8(reason.to_vec()).map_err(|_| bad())?;
    Ok((record, reason))
}

/// Case metadata, sealed in the create operation under the first epoch key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseMeta {
    pub title: String,
    pub require_justification: bool,
}

fn meta_aad(case: &CaseId) -> Vec<u8> {
    let mut a = META_CONTEXT.to_vec();
    a.extend_from_slice(&case.0);
    a
}

impl CaseMeta {
    pub fn seal(&self, case: &CaseId, key: &SymmetricKey) -> Result<Vec<u8>, SchemaError> {
        let mut w = Writer::new();
        w.u8(1);
        w.str(&self.title);
        w.u8(self.require_justification as u8);
        Ok(key.seal(&meta_aad(case), &w.buf)?)
    }

    pub fn open(sealed: &[u8], case: &CaseId, key: &SymmetricKey) -> Result<CaseMeta, SchemaError> {
        let plain = key.open(&meta_aad(case), sealed)?;
        let mut r = Reader::new(&plain, "case metadata");
        if r.u8()? != 1 {
            return Err(SchemaError::malformed("case metadata", "unknown version"));
        }
        let title = r.str(MAX_META_BYTES)?.to_string();
        let require_justification = r.u8()? != 0;
        Ok(CaseMeta {
            title,
            require_justification,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub card: NodeCard,
    pub role: Role,
}

#[derive(Clone, Debug)]
pub struct EpochInfo {
    /// Hash of the operation that started the epoch.
    pub id: Hash,
    pub salt: [u8; 32],
    /// Wrapped keys by recipient identity.
    pub wraps: BTreeMap<[u8; 32], Vec<u8>>,
}

/// Where a removed member's content log ends for this case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// The role the member had when removed: whether its entries up to the cut
    /// were writes it was allowed to make.
    pub role: Role,
    /// Per chain of its log, the last entry kept (see [`ControlBody::RemoveMember`]).
    pub cut: Vec<LogEnd>,
    /// Sealed under the key of the epoch the removal started (its id is `by`).
    pub sealed_reason: Vec<u8>,
    /// The removing operation.
    pub by: Hash,
}

/// A case as its control log defines it.
#[derive(Clone, Debug)]
pub struct CaseState {
    pub case: CaseId,
    pub sealed_meta: Vec<u8>,
    pub members: BTreeMap<[u8; 32], Member>,
    /// Removed members and where their logs are cut (the smallest cut of
    /// concurrent removals).
    pub removed: BTreeMap<[u8; 32], Removal>,
    /// Key epochs in resolved order; the last is the newest.
    pub epochs: Vec<EpochInfo>,
    /// Operations with no successor: the parents of the next operation.
    pub heads: Vec<Hash>,
    /// Operations that were well-formed but not authorized, with the reason.
    pub rejected: Vec<(Hash, String)>,
    /// Every operation resolved from (applied or not), with its parents: what
    /// sync compares and sends by content, never by count.
    pub graph: std::collections::HashMap<Hash, Vec<Hash>>,
    /// Operations whose author held the authority in their causal past: the
    /// only ones a node keeps (`authority::Folded::folds`).
    pub folds: BTreeSet<Hash>,
    /// Records erased, in fold order.
    pub erasures: Vec<Erasure>,
    /// Per erasure (its operation's hash), the members that answered it
    /// with a receipt: the receipt operation and its time.
    pub receipts: BTreeMap<Hash, BTreeMap<[u8; 32], (Hash, i64)>>,
    /// When the case was closed (read-only): the operation, by whom, when.
    pub closed: Option<(Hash, [u8; 32], i64)>,
    /// Records under handling code H2, by tag, with their originator
    /// ([`ControlBody::H2`]; the first declaration in fold order stands).
    pub h2: BTreeMap<RecordTag, [u8; 32]>,
    /// (originator, member): the originator consented that its H2 records
    /// go to the member ([`ControlBody::H2`]).
    pub consents: BTreeSet<([u8; 32], [u8; 32])>,
    /// The case's policy ([`ControlBody::Policy`]).
    pub policy: CasePolicy,
    /// Erasures asked for by originators ([`ControlBody::EraseRequest`]),
    /// by tag: the first in fold order stands.
    pub erase_requests: BTreeMap<RecordTag, EraseRequest>,
}

/// A case's policy: what needs a second person at every member node, and
/// whether originators may ask for their records' erasure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CasePolicy {
    pub four_eyes: BTreeSet<String>,
    pub originator_erases: bool,
}

/// An originator's request for the erasure of its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EraseRequest {
    pub op: Hash,
    pub author: [u8; 32],
    pub time_ms: i64,
    pub epoch: Hash,
    pub sealed: Vec<u8>,
}

/// An erasure that took effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Erasure {
    pub op: Hash,
    pub author: [u8; 32],
    pub time_ms: i64,
    pub tag: RecordTag,
    pub epoch: Hash,
    pub sealed: Vec<u8>,
    /// The members when it took effect: who owes a receipt.
    pub members: Vec<[u8; 32]>,
    /// The whole case (`EraseCase`: `tag` is [`WHOLE_CASE`], `sealed` the reason).
    pub whole_case: bool,
}

/// The tag an erasure of a whole case is filed under.
pub const WHOLE_CASE: RecordTag = RecordTag([0xff; 16]);

impl CaseState {
    pub fn epoch(&self, id: &Hash) -> Option<&EpochInfo> {
        self.epochs.iter().find(|e| &e.id == id)
    }
    pub fn role_of(&self, node: &[u8; 32]) -> Option<Role> {
        self.members.get(node).map(|m| m.role)
    }
    /// What an H2 operation by `author` does to the state (anything else
    /// does nothing here): its records are under H2 as the first
    /// declaration in fold order has them, its lifts end its own
    /// declarations, its consents stand. Also what a node writing several
    /// such operations at once judges the next against.
    pub fn fold_h2(&mut self, author: &[u8; 32], body: &ControlBody) {
        let ControlBody::H2 {
            records,
            lifted,
            consents,
        } = body
        else {
            return;
        };
        for t in records {
            self.h2.entry(*t).or_insert(*author);
        }
        for t in lifted {
            if self.h2.get(t) == Some(author) {
                self.h2.remove(t);
            }
        }
        for m in consents {
            self.consents.insert((*author, *m));
        }
    }
    /// Whether the record tagged `tag` is erased (by itself, or with the
    /// whole case): none of its content may be kept.
    pub fn is_erased(&self, tag: &RecordTag) -> bool {
        self.erasures.iter().any(|e| e.whole_case || &e.tag == tag)
    }
    /// One hash of the set of control operations held (by content: two logs
    /// of equal length but other operations differ).
    pub fn control_digest(&self) -> Hash {
        let hashes: Vec<Hash> = self.graph.keys().copied().collect();
        authority::set_digest(b"casesync/control-set/v1", &hashes)
    }
    /// The held operations that no held operation names as parent.
    pub fn graph_heads(&self) -> Vec<Hash> {
        authority::graph_heads(&self.graph)
    }
    /// Nodes that hold `epoch`'s key but are not current members: a node that
    /// another lead removed concurrently with the rotation. Nothing new may be
    /// sealed under such an epoch.
    pub fn outside_readers(&self, epoch: &EpochInfo) -> Vec<[u8; 32]> {
        epoch
            .wraps
            .keys()
            .filter(|k| !self.members.contains_key(*k))
            .copied()
            .collect()
    }
    /// Whether the newest epoch can be read by a node that is not a member:
    /// a lead that sees it rotates at once.
    pub fn newest_epoch_exposed(&self) -> bool {
        self.epochs
            .last()
            .is_some_and(|e| !self.outside_readers(e).is_empty())
    }
    /// For each epoch, the current members (relays aside, which hold no key)
    /// without a wrap of it: a member added concurrently with a rotation. A
    /// lead shares those epochs with them (every member holds the whole case).
    pub fn lacking_epochs(&self) -> Vec<(&EpochInfo, Vec<[u8; 32]>)> {
        self.epochs
            .iter()
            .filter_map(|e| {
                let lacking: Vec<[u8; 32]> = self
                    .members
                    .iter()
                    .filter(|(k, m)| m.role != Role::Relay && !e.wraps.contains_key(*k))
                    .map(|(k, _)| *k)
                    .collect();
                (!lacking.is_empty()).then_some((e, lacking))
            })
            .collect()
    }
}

/// Where one chain of a removed member's content log ends: its last accepted
/// seq and that entry's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogEnd {
    pub seq: u64,
    pub hash: Hash,
}

/// Most chains a removal's cut names (a node starts a chain only when restored
/// from a backup).
pub const MAX_CUT_CHAINS: usize = 256;

/// A cut names each chain at most once, in order, at a real position.
fn check_cut(cut: &[LogEnd]) -> Result<(), SchemaError> {
    let ordered = cut
        .windows(2)
        .all(|w| chain_of(w[0].seq) < chain_of(w[1].seq));
    if cut.len() > MAX_CUT_CHAINS
        || !ordered
        || cut
            .iter()
            .any(|e| position_of(e.seq) == 0 || chain_of(e.seq) > crate::entry::MAX_CHAIN)
    {
        return Err(SchemaError::malformed(
            "control operation",
            "a removal's cut names each chain of the log once, in order",
        ));
    }
    Ok(())
}

/// Where `seq`'s chain ends in `ends` (the ends of one removed member's log).
pub fn end_of_chain(ends: &[LogEnd], seq: u64) -> Option<&LogEnd> {
    ends.iter().find(|e| chain_of(e.seq) == chain_of(seq))
}

/// The cut two removals of one member leave: per chain, the smaller of the
/// two; a chain only one of them names keeps nothing.
fn meet(a: &[LogEnd], b: &[LogEnd]) -> Vec<LogEnd> {
    a.iter()
        .filter_map(|x| end_of_chain(b, x.seq).map(|y| *x.min(y)))
        .collect()
}

/// Where each removed writer's log ends once vouching is counted (docs/design.md,
/// "Cases and keys"): at the removal's cut, or further where an entry of a
/// remaining writer names a later entry of that member in its view, since that
/// writer built on it and its changes may depend on it. `views` are the views of
/// the entries that may vouch (the caller leaves out what it does not accept,
/// such as frozen logs); only current writers vouch. Pure: the same state and
/// views give the same ends on every node.
pub fn log_ends<'a>(
    state: &CaseState,
    views: impl IntoIterator<Item = (&'a [u8; 32], &'a [ViewItem])>,
) -> BTreeMap<[u8; 32], Vec<LogEnd>> {
    let mut ends: BTreeMap<[u8; 32], Vec<LogEnd>> = state
        .removed
        .iter()
        .filter(|(_, r)| r.role.may_write())
        .map(|(a, r)| (*a, r.cut.clone()))
        .collect();
    if ends.is_empty() {
        return ends;
    }
    for (writer, view) in views {
        if !state.role_of(writer).is_some_and(Role::may_write) {
            continue;
        }
        for v in view {
            let Some(chains) = ends.get_mut(&v.author) else {
                continue;
            };
            let seen = LogEnd {
                seq: v.seq,
                hash: v.hash,
            };
            match chains
                .iter_mut()
                .find(|e| chain_of(e.seq) == chain_of(v.seq))
            {
                Some(end) if v.seq > end.seq => *end = seen,
                Some(_) => {}
                None => {
                    chains.push(seen);
                    chains.sort();
                }
            }
        }
    }
    ends
}

/// Resolves a case's control operations into its state (the authority-graph
/// rules of [`authority`]): pure and deterministic, the same operations give
/// the same state in any order. Operations that took no effect are listed in
/// `rejected` with the reason.
pub fn resolve(case: CaseId, ops: &[ControlOp]) -> Result<CaseState, SchemaError> {
    resolve_in(case, ops, &FederationFacts::default())
}

/// [`resolve`] against what the federation registry says (`facts`), which
/// an appointment of a lead by an admin needs.
pub fn resolve_in(
    case: CaseId,
    ops: &[ControlOp],
    facts: &FederationFacts,
) -> Result<CaseState, SchemaError> {
    let mine: Vec<&ControlOp> = ops.iter().filter(|o| o.case == case).collect();
    let (state, folded) = authority::resolve(&CaseRules { case, facts }, &mine);
    let mut state = state
        .ok_or_else(|| SchemaError::malformed("case control log", "no valid create operation"))?;
    state.heads = folded.heads;
    state.rejected = folded.rejected;
    state.graph = mine.iter().map(|o| (o.hash, o.parents.clone())).collect();
    state.folds = folded.folds;
    Ok(state)
}

/// Whether `op`, written on top of `state` (its heads as parents), is one its
/// author may write: what a node checks before it stores its own operation,
/// so a refusal is an error with the reason, not an operation that folds to
/// nothing.
pub fn authorize(state: &CaseState, op: &ControlOp) -> Result<(), String> {
    authorize_in(state, op, &FederationFacts::default())
}

/// [`authorize`] against what the federation registry says.
pub fn authorize_in(
    state: &CaseState,
    op: &ControlOp,
    facts: &FederationFacts,
) -> Result<(), String> {
    authority::Rules::authorize(
        &CaseRules {
            case: state.case,
            facts,
        },
        Some(state),
        op,
    )
}

impl authority::AuthorityOp for ControlOp {
    fn op_hash(&self) -> Hash {
        self.hash
    }
    fn op_parents(&self) -> &[Hash] {
        &self.parents
    }
    fn op_author(&self) -> [u8; 32] {
        self.author
    }
    fn op_removes(&self) -> Option<[u8; 32]> {
        match &self.body {
            // A role change is not a removal: what a lead that is made a
            // contributor signed concurrently stands (its key epochs may
            // already seal entries). To cut a key's authority, remove it.
            ControlBody::RemoveMember { member, .. } => Some(*member),
            _ => None,
        }
    }
    fn op_grants(&self) -> Option<[u8; 32]> {
        match &self.body {
            ControlBody::AddMember {
                card,
                role: Role::Lead,
            } => Some(card.identity.ed25519),
            ControlBody::ChangeRole {
                member,
                role: Role::Lead,
            } => Some(*member),
            ControlBody::AppointLead { member, .. } => Some(*member),
            _ => None,
        }
    }
}

struct CaseRules<'a> {
    case: CaseId,
    facts: &'a FederationFacts,
}

/// Whether `author` may make `member` lead in `st`: an active admin of the
/// federation, every lead of the case revoked from it, and the member a
/// current, not revoked member that holds the case keys (not a relay).
fn appointment(
    st: &CaseState,
    facts: &FederationFacts,
    author: &[u8; 32],
    member: &[u8; 32],
) -> Result<(), String> {
    if !facts.admins.contains(author) || facts.revoked.contains(author) {
        return Err("only an active admin of the federation appoints a lead".into());
    }
    if st
        .members
        .iter()
        .any(|(k, m)| m.role == Role::Lead && !facts.revoked.contains(k))
    {
        return Err("the case has a lead that is not revoked: that lead changes roles".into());
    }
    match st.role_of(member) {
        None => Err("node is not a member".into()),
        Some(_) if facts.revoked.contains(member) => Err("node is revoked".into()),
        Some(Role::Relay) => Err("a relay holds no case keys and cannot lead".into()),
        Some(_) => Ok(()),
    }
}

/// An H2 operation is valid from a writer (only writers originate
/// records): its records not under H2 by another node, its lifted records
/// under H2 by itself, its consents for current members other than itself,
/// nothing named twice, and something new.
fn h2(
    st: &CaseState,
    author: &[u8; 32],
    records: &[RecordTag],
    lifted: &[RecordTag],
    consents: &[[u8; 32]],
) -> Result<(), String> {
    if !st.role_of(author).is_some_and(Role::may_write) {
        return Err("an H2 operation by a node that writes no records in the case".into());
    }
    let mut tags = BTreeSet::new();
    for t in records.iter().chain(lifted) {
        if !tags.insert(*t) {
            return Err("an H2 operation naming a record twice".into());
        }
    }
    if records
        .iter()
        .any(|t| st.h2.get(t).is_some_and(|o| o != author))
    {
        return Err("a record another node put under H2".into());
    }
    if lifted.iter().any(|t| st.h2.get(t) != Some(author)) {
        return Err("lifting H2 from a record its author did not put under it".into());
    }
    let mut seen = BTreeSet::new();
    for m in consents {
        if m == author {
            return Err("a consent naming its own author".into());
        }
        if st.role_of(m).is_none() {
            return Err("a consent naming a node that is not a member".into());
        }
        if !seen.insert(*m) {
            return Err("a consent naming a member twice".into());
        }
    }
    let new = records.iter().any(|t| !st.h2.contains_key(t))
        || !lifted.is_empty()
        || consents
            .iter()
            .any(|m| !st.consents.contains(&(*author, *m)));
    if !new {
        return Err("an H2 operation that changes nothing".into());
    }
    Ok(())
}

fn epoch_of(id: Hash, salt: &[u8; 32], wraps: &[KeyWrap]) -> EpochInfo {
    EpochInfo {
        id,
        salt: *salt,
        wraps: wraps
            .iter()
            .map(|w| (w.recipient, w.wrapped.clone()))
            .collect(),
    }
}

impl authority::Rules for CaseRules<'_> {
    type Op = ControlOp;
    type State = CaseState;

    fn authorize(&self, state: Option<&CaseState>, op: &ControlOp) -> Result<(), String> {
        let Some(st) = state else {
            let ControlBody::Create { nonce, creator, .. } = &op.body else {
                return Err("operation before the case's create".into());
            };
            if !op.parents.is_empty() || case_id_for(&op.author, nonce) != self.case {
                return Err("create operation does not match the case id".into());
            }
            if creator.identity.ed25519 != op.author {
                return Err("creator card is not the author's".into());
            }
            return Ok(());
        };
        if let ControlBody::AppointLead { member, .. } = &op.body {
            return appointment(st, self.facts, &op.author, member);
        }
        if let ControlBody::ErasureReceipt { erasure } = &op.body {
            return if st.role_of(&op.author).is_none() {
                Err("a receipt by a node that is not a member".into())
            } else if !st.erasures.iter().any(|e| &e.op == erasure) {
                Err("a receipt for no erasure of the case".into())
            } else if st
                .receipts
                .get(erasure)
                .is_some_and(|r| r.contains_key(&op.author))
            {
                Err("a second receipt for one erasure".into())
            } else {
                Ok(())
            };
        }
        if let ControlBody::H2 {
            records,
            lifted,
            consents,
        } = &op.body
        {
            return h2(st, &op.author, records, lifted, consents);
        }
        if let ControlBody::EraseRequest { tag, epoch, .. } = &op.body {
            return if !st.role_of(&op.author).is_some_and(Role::may_write) {
                Err("an erasure request by a node that writes no records in the case".into())
            } else if !st.policy.originator_erases {
                Err("the case's policy does not let originators ask for erasure".into())
            } else if st.epoch(epoch).is_none() {
                Err("erasure request sealed under an epoch the case does not have".into())
            } else if st.is_erased(tag) {
                Err("the record is erased already".into())
            } else if st.erase_requests.contains_key(tag) {
                Err("the record's erasure is asked for already".into())
            } else {
                Ok(())
            };
        }
        if st.role_of(&op.author) != Some(Role::Lead) {
            return Err("author is not a lead of the case".into());
        }
        match &op.body {
            ControlBody::Create { .. } => Err("second create operation".into()),
            ControlBody::AppointLead { .. } => Err("an appointment is judged above".into()),
            ControlBody::ErasureReceipt { .. } => Err("a receipt is judged above".into()),
            ControlBody::H2 { .. } => Err("an H2 operation is judged above".into()),
            ControlBody::EraseRequest { .. } => Err("an erasure request is judged above".into()),
            ControlBody::Policy {
                four_eyes,
                originator_erases,
            } => {
                let p = CasePolicy {
                    four_eyes: four_eyes.iter().cloned().collect(),
                    originator_erases: *originator_erases,
                };
                if p == st.policy {
                    Err("the case has this policy already".into())
                } else {
                    Ok(())
                }
            }
            ControlBody::CloseCase => match st.closed {
                Some(_) => Err("the case is closed already".into()),
                None => Ok(()),
            },
            ControlBody::EraseCase { epoch, .. } => {
                if st.epoch(epoch).is_none() {
                    Err("erasure sealed under an epoch the case does not have".into())
                } else if st.erasures.iter().any(|e| e.whole_case) {
                    Err("the case is erased already".into())
                } else {
                    Ok(())
                }
            }
            ControlBody::EraseRecord { tag, epoch, .. } => {
                if st.epoch(epoch).is_none() {
                    Err("erasure sealed under an epoch the case does not have".into())
                } else if st.erasures.iter().any(|e| &e.tag == tag) {
                    Err("the record is erased already".into())
                } else {
                    Ok(())
                }
            }
            ControlBody::AddMember { card, .. } => {
                if st.members.contains_key(&card.identity.ed25519) {
                    Err("node is already a member".into())
                } else if st.removed.contains_key(&card.identity.ed25519) {
                    Err("node was removed from the case; removal is final".into())
                } else {
                    Ok(())
                }
            }
            ControlBody::KeyShare { epoch, .. } => match st.epoch(epoch) {
                Some(_) => Ok(()),
                None => Err("key share for an unknown epoch".into()),
            },
            ControlBody::KeyEpoch { .. } => Ok(()),
            ControlBody::ChangeRole { member, role } => match st.role_of(member) {
                None => Err("node is not a member".into()),
                Some(now) if now == *role => Err(format!("the member is already {}", role.name())),
                Some(now) if now.may_write() && !role.may_write() => Err(format!(
                    "a member that writes cannot be made {}: remove it instead (the removal cuts its log)",
                    role.name()
                )),
                Some(Role::Lead)
                    if st.members.values().filter(|m| m.role == Role::Lead).count() == 1 =>
                {
                    Err(
                        "the case would be left without a lead: make another member lead first"
                            .into(),
                    )
                }
                Some(_) => Ok(()),
            },
            ControlBody::RemoveMember { member, wraps, .. } => {
                let leads = st.members.values().filter(|m| m.role == Role::Lead).count();
                if !st.members.contains_key(member) {
                    Err("node is not a member".into())
                } else if st.role_of(member) == Some(Role::Lead) && leads == 1 {
                    Err(
                        "the case would be left without a lead: make another member lead first"
                            .into(),
                    )
                } else if wraps.iter().any(|w| &w.recipient == member) {
                    Err("the new epoch key is wrapped to the removed member".into())
                } else {
                    Ok(())
                }
            }
        }
    }

    fn has_authority(&self, state: &CaseState) -> bool {
        state.members.values().any(|m| m.role == Role::Lead)
    }

    fn apply(&self, state: &mut Option<CaseState>, op: &ControlOp) {
        let Some(st) = state else {
            if let ControlBody::Create {
                creator,
                salt,
                wraps,
                sealed_meta,
                ..
            } = &op.body
            {
                let mut members = BTreeMap::new();
                members.insert(
                    op.author,
                    Member {
                        card: creator.clone(),
                        role: Role::Lead,
                    },
                );
                *state = Some(CaseState {
                    case: self.case,
                    sealed_meta: sealed_meta.clone(),
                    members,
                    removed: BTreeMap::new(),
                    epochs: vec![epoch_of(op.hash(), salt, wraps)],
                    heads: Vec::new(),
                    rejected: Vec::new(),
                    graph: Default::default(),
                    folds: Default::default(),
                    erasures: Vec::new(),
                    receipts: BTreeMap::new(),
                    closed: None,
                    h2: BTreeMap::new(),
                    consents: BTreeSet::new(),
                    policy: CasePolicy::default(),
                    erase_requests: BTreeMap::new(),
                });
            }
            return;
        };
        match &op.body {
            ControlBody::Create { .. } => {}
            ControlBody::AddMember { card, role } => {
                let id = card.identity.ed25519;
                // Concurrent adds of one node: the most powerful role granted
                // stands (lead, then contributor, observer, relay), so a role
                // only grows as a node learns more grants, and entries it wrote
                // under the grant it saw first stay valid everywhere; a
                // concurrent removal wins over any add.
                if !st.removed.contains_key(&id) {
                    let m = st.members.entry(id).or_insert_with(|| Member {
                        card: card.clone(),
                        role: *role,
                    });
                    m.role = m.role.min(*role);
                }
            }
            ControlBody::KeyShare { epoch, wraps } => {
                let members: BTreeSet<[u8; 32]> = st.members.keys().copied().collect();
                if let Some(e) = st.epochs.iter_mut().find(|e| &e.id == epoch) {
                    for w in wraps.iter().filter(|w| members.contains(&w.recipient)) {
                        e.wraps
                            .entry(w.recipient)
                            .or_insert_with(|| w.wrapped.clone());
                    }
                }
            }
            ControlBody::KeyEpoch { salt, wraps } => {
                st.epochs.push(epoch_of(op.hash(), salt, wraps));
            }
            ControlBody::AppointLead { member, .. } => {
                if let Some(m) = st.members.get_mut(member) {
                    m.role = Role::Lead;
                }
            }
            ControlBody::EraseRecord { tag, epoch, sealed } => {
                // Concurrent erasures of one record: the first in fold order
                // stands (receipts name it).
                if !st.erasures.iter().any(|e| &e.tag == tag) {
                    st.erasures.push(Erasure {
                        op: op.hash(),
                        author: op.author,
                        time_ms: op.time_ms,
                        tag: *tag,
                        epoch: *epoch,
                        sealed: sealed.clone(),
                        members: st.members.keys().copied().collect(),
                        whole_case: false,
                    });
                }
            }
            ControlBody::CloseCase => {
                st.closed.get_or_insert((op.hash(), op.author, op.time_ms));
            }
            ControlBody::EraseCase {
                epoch,
                sealed_reason,
            } => {
                if !st.erasures.iter().any(|e| e.whole_case) {
                    st.erasures.push(Erasure {
                        op: op.hash(),
                        author: op.author,
                        time_ms: op.time_ms,
                        tag: WHOLE_CASE,
                        epoch: *epoch,
                        sealed: sealed_reason.clone(),
                        members: st.members.keys().copied().collect(),
                        whole_case: true,
                    });
                }
                st.closed.get_or_insert((op.hash(), op.author, op.time_ms));
            }
            ControlBody::H2 { .. } => st.fold_h2(&op.author, &op.body),
            ControlBody::Policy {
                four_eyes,
                originator_erases,
            } => {
                st.policy = CasePolicy {
                    four_eyes: four_eyes.iter().cloned().collect(),
                    originator_erases: *originator_erases,
                };
            }
            ControlBody::EraseRequest { tag, epoch, sealed } => {
                st.erase_requests.entry(*tag).or_insert(EraseRequest {
                    op: op.hash(),
                    author: op.author,
                    time_ms: op.time_ms,
                    epoch: *epoch,
                    sealed: sealed.clone(),
                });
            }
            ControlBody::ErasureReceipt { erasure } => {
                st.receipts
                    .entry(*erasure)
                    .or_default()
                    .entry(op.author)
                    .or_insert((op.hash(), op.time_ms));
            }
            ControlBody::ChangeRole { member, role } => {
                // A member removed concurrently stays removed; of two leads
                // that made each other contributors while apart, the one
                // whose change comes later in fold order stays lead (a case
                // never loses its last lead).
                let leads = st.members.values().filter(|m| m.role == Role::Lead).count();
                if let Some(m) = st.members.get_mut(member)
                    && !(m.role == Role::Lead && *role != Role::Lead && leads == 1)
                {
                    m.role = *role;
                }
            }
            ControlBody::RemoveMember {
                member,
                cut,
                sealed_reason,
                salt,
                wraps,
            } => {
                let role = st.members.remove(member).map(|m| m.role);
                let role = role
                    .or_else(|| st.removed.get(member).map(|r| r.role))
                    .unwrap_or(Role::Observer);
                // With several removals of one node, the smallest cut
                // applies, chain by chain; the first in fold order names the
                // reason.
                match st.removed.get_mut(member) {
                    Some(r) => r.cut = meet(&r.cut, cut),
                    None => {
                        st.removed.insert(
                            *member,
                            Removal {
                                role,
                                cut: cut.clone(),
                                sealed_reason: sealed_reason.clone(),
                                by: op.hash(),
                            },
                        );
                    }
                }
                st.epochs.push(epoch_of(op.hash(), salt, wraps));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::permute;

    struct Fixture {
        lead: NodeKeys,
        lead_card: NodeCard,
        other: NodeKeys,
        other_card: NodeCard,
        case: CaseId,
        key: SymmetricKey,
        create: ControlOp,
    }

    impl Fixture {
        /// The lead adds the other node as `role`, right after the genesis.
        fn add_other(&self, role: Role) -> ControlOp {
            ControlOp::create(
                &self.lead,
                self.case,
                vec![self.create.hash()],
                2,
                ControlBody::AddMember {
                    card: self.other_card.clone(),
                    role,
                },
            )
            .unwrap()
        }
    }

    fn fixture() -> Fixture {
        let lead = NodeKeys::generate().unwrap();
        let lead_card = NodeCard::issue(&lead, "uk-east", "ROCU", "GB", 1).unwrap();
        let other = NodeKeys::generate().unwrap();
        let other_card = NodeCard::issue(&other, "ro-police", "IGPR", "RO", 1).unwrap();
        let nonce = [4u8; 16];
        let case = case_id_for(&lead.public().ed25519, &nonce);
        let key = SymmetricKey::generate().unwrap();
        let salt = [7u8; 32];
        let meta = CaseMeta {
            title: "Op Lantern".into(),
            require_justification: false,
        }
        .seal(&case, &key)
        .unwrap();
        let create = ControlOp::create(
            &lead,
            case,
            vec![],
            1,
            ControlBody::Create {
                nonce,
                creator: lead_card.clone(),
                salt,
                wraps: wrap_to(&key, &case, &salt, &[&lead_card]).unwrap(),
                sealed_meta: meta,
            },
        )
        .unwrap();
        Fixture {
            lead,
            lead_card,
            other,
            other_card,
            case,
            key,
            create,
        }
    }

    /// Erasure is a lead's; a receipt any member's, once per erasure, for
    /// an erasure that took effect; concurrent erasures of one record fold
    /// to one (the first in fold order), on every node alike.
    #[test]
    fn erasures_and_receipts_fold_by_their_rules() {
        let f = fixture();
        let add = f.add_other(Role::Contributor);
        let epoch = f.create.hash();
        let record = RecordId([5; 16]);
        let erase_by = |keys: &NodeKeys, parents: Vec<Hash>, reason: &str| {
            let (tag, sealed) = seal_erasure(&f.case, &record, &f.key, reason).unwrap();
            ControlOp::create(
                keys,
                f.case,
                parents,
                3,
                ControlBody::EraseRecord { tag, epoch, sealed },
            )
            .unwrap()
        };
        let receipt = |keys: &NodeKeys, parents: Vec<Hash>, erasure: Hash| {
            ControlOp::create(
                keys,
                f.case,
                parents,
                4,
                ControlBody::ErasureReceipt { erasure },
            )
            .unwrap()
        };
        let base = vec![f.create.clone(), add.clone()];
        let st = resolve(f.case, &base).unwrap();
        // A contributor's erasure does not fold.
        let by_other = erase_by(&f.other, vec![add.hash()], "mine");
        assert!(authorize(&st, &by_other).is_err());
        // Two leads' worth of erasures while apart: here one lead twice,
        // concurrently; one stands whatever the order.
        let one = erase_by(&f.lead, vec![add.hash()], "first");
        let two = erase_by(&f.lead, vec![add.hash()], "second");
        let mut ops = base.clone();
        ops.extend([one.clone(), two.clone()]);
        let a = resolve(f.case, &ops).unwrap();
        ops.swap(2, 3);
        let b = resolve(f.case, &ops).unwrap();
        assert_eq!(a.erasures, b.erasures);
        assert_eq!(a.erasures.len(), 1);
        let e = a.erasures[0].clone();
        assert_eq!(e.members.len(), 2, "both members owe a receipt");
        let (rid, _) = open_erasure(&f.case, &e.tag, &f.key, &e.sealed).unwrap();
        assert_eq!(rid, record);
        assert!(open_erasure(&f.case, &RecordTag([0; 16]), &f.key, &e.sealed).is_err());
        // Receipts: by a member, once, for an erasure that took effect.
        let heads = a.heads.clone();
        let r1 = receipt(&f.other, heads.clone(), e.op);
        assert!(authorize(&a, &r1).is_ok());
        assert!(authorize(&a, &receipt(&f.other, heads.clone(), Hash([9; 32]))).is_err());
        let stranger = NodeKeys::generate().unwrap();
        assert!(authorize(&a, &receipt(&stranger, heads.clone(), e.op)).is_err());
        ops.push(r1.clone());
        let c = resolve(f.case, &ops).unwrap();
        assert!(c.receipts[&e.op].contains_key(&f.other.public().ed25519));
        assert!(authorize(&c, &receipt(&f.other, c.heads.clone(), e.op)).is_err());
        // Erasing it again does not fold.
        assert!(authorize(&c, &erase_by(&f.lead, c.heads.clone(), "again")).is_err());
    }

    /// A case's policy is a lead's; an erasure request a writer's, only
    /// under a policy that lets originators ask, once per record, never
    /// for an erased one; concurrent policies and requests resolve alike
    /// in every order.
    #[test]
    fn a_case_policy_is_a_leads_and_lets_originators_ask_for_erasure() {
        let f = fixture();
        let add = f.add_other(Role::Contributor);
        let epoch = f.create.hash();
        let record = RecordId([6; 16]);
        let op = |keys: &NodeKeys, parents: Vec<Hash>, body: ControlBody| {
            ControlOp::create(keys, f.case, parents, 3, body).unwrap()
        };
        let policy = |four_eyes: &[&str], originator_erases: bool| ControlBody::Policy {
            four_eyes: four_eyes.iter().map(|s| s.to_string()).collect(),
            originator_erases,
        };
        let (tag, sealed) = seal_erasure(&f.case, &record, &f.key, "my source withdrew").unwrap();
        let request = ControlBody::EraseRequest {
            tag,
            epoch,
            sealed: sealed.clone(),
        };
        // Names outside the list, or twice, are not a policy.
        for bad in [&["erase", "erase"][..], &["enroll"][..]] {
            assert!(ControlOp::create(&f.lead, f.case, vec![], 3, policy(bad, false)).is_err());
        }
        let base = vec![f.create.clone(), add.clone()];
        let st = resolve(f.case, &base).unwrap();
        assert_eq!(st.policy, CasePolicy::default());
        let ask = op(&f.other, vec![add.hash()], request.clone());
        assert!(
            authorize(&st, &ask)
                .unwrap_err()
                .contains("does not let originators")
        );
        let by_other = op(&f.other, vec![add.hash()], policy(&["erase"], true));
        assert!(authorize(&st, &by_other).is_err());
        let set = op(
            &f.lead,
            vec![add.hash()],
            policy(&["erase", "member-add"], true),
        );
        authorize(&st, &set).unwrap();
        let set = ControlOp::decode_verified(set.bytes()).unwrap();
        let mut ops = base.clone();
        ops.push(set.clone());
        let st = resolve(f.case, &ops).unwrap();
        assert!(st.policy.originator_erases && st.policy.four_eyes.contains("member-add"));
        assert!(
            authorize(
                &st,
                &op(
                    &f.lead,
                    st.heads.clone(),
                    policy(&["member-add", "erase"], true)
                )
            )
            .is_err()
        );
        // The request: a writer's, once per record.
        let ask = op(&f.other, st.heads.clone(), request.clone());
        authorize(&st, &ask).unwrap();
        let stranger = NodeKeys::generate().unwrap();
        assert!(authorize(&st, &op(&stranger, st.heads.clone(), request.clone())).is_err());
        ops.push(ask.clone());
        let st = resolve(f.case, &ops).unwrap();
        assert_eq!(st.erase_requests[&tag].author, f.other.public().ed25519);
        let (rid, reason) =
            open_erasure(&f.case, &tag, &f.key, &st.erase_requests[&tag].sealed).unwrap();
        assert_eq!((rid, reason.as_str()), (record, "my source withdrew"));
        assert!(authorize(&st, &op(&f.lead, st.heads.clone(), request.clone())).is_err());
        // The request erases nothing; a lead's erasure does, and ends requests.
        assert!(!st.is_erased(&tag));
        let erase = op(
            &f.lead,
            st.heads.clone(),
            ControlBody::EraseRecord { tag, epoch, sealed },
        );
        ops.push(erase.clone());
        let st = resolve(f.case, &ops).unwrap();
        assert!(st.is_erased(&tag));
        assert!(authorize(&st, &op(&f.other, st.heads.clone(), request.clone())).is_err());
        // A concurrent second policy, in every order of the last four: one state.
        let other_policy = op(&f.lead, vec![add.hash()], policy(&["bundle-export"], true));
        let tail = [set, ask, erase, other_policy];
        let mut order: Vec<usize> = (0..tail.len()).collect();
        let mut seen: Option<(CasePolicy, Vec<RecordTag>, Vec<Hash>)> = None;
        permute(&mut order, 0, &mut |idx| {
            let mut ops = base.clone();
            ops.extend(idx.iter().map(|&i| tail[i].clone()));
            let st = resolve(f.case, &ops).unwrap();
            let got = (
                st.policy.clone(),
                st.erase_requests.keys().copied().collect(),
                st.erasures.iter().map(|e| e.op).collect(),
            );
            match &seen {
                None => seen = Some(got),
                Some(s) => assert_eq!(s, &got),
            }
        });
    }

    /// Every member converges on the same erasures and receipts whatever
    /// order it learnt the operations in: two leads erasing one record at
    /// once (a tie), another record erased, a case closed and receipts, in
    /// every one of the 720 orders.
    #[test]
    fn erasures_and_receipts_resolve_alike_in_every_order() {
        let f = fixture();
        let add = f.add_other(Role::Lead);
        let epoch = f.create.hash();
        let erase = |keys: &NodeKeys, record: u8, reason: &str| {
            let (tag, sealed) =
                seal_erasure(&f.case, &RecordId([record; 16]), &f.key, reason).unwrap();
            ControlOp::create(
                keys,
                f.case,
                vec![add.hash()],
                3,
                ControlBody::EraseRecord { tag, epoch, sealed },
            )
            .unwrap()
        };
        // Two leads erase record 1 at once; the first lead erases record 2.
        let tie_a = erase(&f.lead, 1, "by the first lead");
        let tie_b = erase(&f.other, 1, "by the second lead");
        let other = erase(&f.lead, 2, "another");
        let close = ControlOp::create(&f.lead, f.case, vec![add.hash()], 4, ControlBody::CloseCase)
            .unwrap();
        let receipt = |keys: &NodeKeys, of: &ControlOp| {
            ControlOp::create(
                keys,
                f.case,
                vec![of.hash()],
                5,
                ControlBody::ErasureReceipt { erasure: of.hash() },
            )
            .unwrap()
        };
        let r1 = receipt(&f.other, &other);
        let r2 = receipt(&f.lead, &other);
        let later = [tie_a, tie_b, other, close, r1, r2];
        let reference = {
            let mut ops = vec![f.create.clone(), add.clone()];
            ops.extend(later.iter().cloned());
            resolve(f.case, &ops).unwrap()
        };
        assert_eq!(reference.erasures.len(), 2, "one erasure per record");
        assert_eq!(
            reference.receipts.values().map(|r| r.len()).sum::<usize>(),
            2
        );
        assert!(reference.closed.is_some());
        let mut order: Vec<usize> = (0..later.len()).collect();
        let mut n = 0;
        permute(&mut order, 0, &mut |idx| {
            let mut ops = vec![f.create.clone(), add.clone()];
            ops.extend(idx.iter().map(|&i| later[i].clone()));
            let st = resolve(f.case, &ops).unwrap();
            assert_eq!(st.erasures, reference.erasures);
            assert_eq!(st.receipts, reference.receipts);
            assert_eq!(st.closed, reference.closed);
            n += 1;
        });
        assert_eq!(n, 720);
    }

    /// H2 operations: from a writer, for current members other than
    /// itself; a record put under H2 by one node cannot be claimed or lifted
    /// by another. Two leads declaring the same record apart (a tie, each
    /// valid in its causal past): the first in fold order stays its
    /// originator, in every delivery order; so do consents and lifts.
    #[test]
    fn h2_operations_are_a_writers_and_resolve_alike_in_every_order() {
        let f = fixture();
        let add = f.add_other(Role::Lead);
        let lead = f.lead.public().ed25519;
        let other = f.other.public().ed25519;
        let tag = |n: u8| RecordTag([n; 16]);
        let op = |keys: &NodeKeys,
                  parents: Vec<Hash>,
                  t: i64,
                  records: Vec<RecordTag>,
                  lifted: Vec<RecordTag>,
                  consents: Vec<[u8; 32]>| {
            ControlOp::create(
                keys,
                f.case,
                parents,
                t,
                ControlBody::H2 {
                    records,
                    lifted,
                    consents,
                },
            )
            .unwrap()
        };
        let st = resolve(f.case, &[f.create.clone(), add.clone()]).unwrap();
        let heads = st.heads.clone();
        // Refused: its own author, a non-member, a member twice, a record
        // twice, lifting what it did not declare, nothing at all.
        let h = heads.clone();
        assert!(authorize(&st, &op(&f.lead, h.clone(), 3, vec![], vec![], vec![lead])).is_err());
        assert!(
            authorize(
                &st,
                &op(&f.lead, h.clone(), 3, vec![], vec![], vec![[9; 32]])
            )
            .is_err()
        );
        assert!(
            authorize(
                &st,
                &op(&f.lead, h.clone(), 3, vec![], vec![], vec![other, other])
            )
            .is_err()
        );
        assert!(
            authorize(
                &st,
                &op(&f.lead, h.clone(), 3, vec![tag(1), tag(1)], vec![], vec![])
            )
            .is_err()
        );
        assert!(
            authorize(
                &st,
                &op(&f.lead, h.clone(), 3, vec![], vec![tag(1)], vec![])
            )
            .is_err()
        );
        assert!(
            ControlOp::create(
                &f.lead,
                f.case,
                h.clone(),
                3,
                ControlBody::H2 {
                    records: vec![],
                    lifted: vec![],
                    consents: vec![]
                }
            )
            .is_err()
        );
        let outsider = NodeKeys::generate().unwrap();
        assert!(
            authorize(
                &st,
                &op(&outsider, h.clone(), 3, vec![tag(1)], vec![], vec![])
            )
            .is_err()
        );
        // Once the lead's, a record is not the other's to claim or lift.
        let mine = op(&f.lead, h.clone(), 3, vec![tag(1)], vec![], vec![other]);
        let st1 = resolve(f.case, &[f.create.clone(), add.clone(), mine.clone()]).unwrap();
        let h1 = st1.heads.clone();
        assert!(
            authorize(
                &st1,
                &op(&f.other, h1.clone(), 4, vec![tag(1)], vec![], vec![])
            )
            .is_err()
        );
        assert!(
            authorize(
                &st1,
                &op(&f.other, h1.clone(), 4, vec![], vec![tag(1)], vec![])
            )
            .is_err()
        );
        assert!(
            authorize(
                &st1,
                &op(&f.lead, h1.clone(), 4, vec![tag(1)], vec![], vec![other])
            )
            .is_err(),
            "changes nothing"
        );
        // The tie: both declare record 2 apart; the lead declares record 3
        // and lifts it after; the other consents for the lead.
        let a = op(
            &f.lead,
            h.clone(),
            3,
            vec![tag(2), tag(3)],
            vec![],
            vec![other],
        );
        let b = op(&f.other, h.clone(), 4, vec![tag(2)], vec![], vec![lead]);
        let lift = op(&f.lead, vec![a.hash()], 5, vec![], vec![tag(3)], vec![]);
        let later = [a, b, lift];
        let reference = {
            let mut ops = vec![f.create.clone(), add.clone()];
            ops.extend(later.iter().cloned());
            resolve(f.case, &ops).unwrap()
        };
        assert_eq!(reference.h2.len(), 1, "{:?}", reference.h2);
        assert!(reference.h2.contains_key(&tag(2)));
        assert!(!reference.h2.contains_key(&tag(3)), "lifted");
        let want: BTreeSet<([u8; 32], [u8; 32])> = [(lead, other), (other, lead)].into();
        assert_eq!(reference.consents, want);
        let mut order: Vec<usize> = (0..later.len()).collect();
        let mut n = 0;
        permute(&mut order, 0, &mut |idx| {
            let mut ops = vec![f.create.clone(), add.clone()];
            ops.extend(idx.iter().map(|&i| later[i].clone()));
            let st = resolve(f.case, &ops).unwrap();
            assert_eq!(st.h2, reference.h2);
            assert_eq!(st.consents, reference.consents);
            n += 1;
        });
        assert_eq!(n, 6);
        // Bytes round trip.
        let op = &later[1];
        assert_eq!(
            ControlOp::decode_verified(op.bytes()).unwrap().body,
            ControlBody::H2 {
                records: vec![tag(2)],
                lifted: vec![],
                consents: vec![lead]
            }
        );
    }

    #[test]
    fn a_removed_writers_log_ends_at_its_cut_unless_a_remaining_writer_built_further() {
        let f = fixture();
        let (lead, removed, observer) =
            (f.lead.public().ed25519, f.other.public().ed25519, [9u8; 32]);
        let h = |n: u8| Hash([n; 32]);
        let mut st = CaseState {
            case: f.case,
            sealed_meta: vec![],
            members: BTreeMap::new(),
            removed: BTreeMap::new(),
            epochs: vec![],
            heads: vec![],
            rejected: vec![],
            graph: Default::default(),
            folds: Default::default(),
            erasures: vec![],
            receipts: BTreeMap::new(),
            closed: None,
            h2: BTreeMap::new(),
            consents: BTreeSet::new(),
            policy: CasePolicy::default(),
            erase_requests: BTreeMap::new(),
        };
        st.members.insert(
            lead,
            Member {
                card: f.lead_card.clone(),
                role: Role::Lead,
            },
        );
        st.members.insert(
            observer,
            Member {
                card: f.other_card.clone(),
                role: Role::Observer,
            },
        );
        st.removed.insert(
            removed,
            Removal {
                role: Role::Contributor,
                cut: vec![LogEnd { seq: 2, hash: h(2) }],
                sealed_reason: b"left".to_vec(),
                by: h(0),
            },
        );
        let item = |seq: u64| ViewItem {
            author: removed,
            seq,
            hash: h(seq as u8),
        };
        let cut = vec![LogEnd { seq: 2, hash: h(2) }];
        assert_eq!(log_ends(&st, []).get(&removed), Some(&cut));
        // An observer's view, the removed member's own, and a view below the
        // cut move nothing.
        let own = [item(5)];
        let low = [item(1)];
        let ends = log_ends(
            &st,
            [
                (&observer, &own[..]),
                (&removed, &own[..]),
                (&lead, &low[..]),
            ],
        );
        assert_eq!(ends.get(&removed), Some(&cut));
        // A remaining writer that built on entry 4 keeps entries 3 and 4; the
        // furthest view wins whatever the order.
        let four = [item(4)];
        let three = [item(3)];
        for views in [
            [(&lead, &four[..]), (&lead, &three[..])],
            [(&lead, &three[..]), (&lead, &four[..])],
        ] {
            assert_eq!(
                log_ends(&st, views).get(&removed),
                Some(&vec![LogEnd { seq: 4, hash: h(4) }])
            );
        }
        // A chain the cut does not name keeps nothing, unless a remaining
        // writer built on it: then up to what it built on. The view of one
        // chain moves no other chain's end.
        let later = crate::entry::chain_base(9) + 2;
        let other_chain = [ViewItem {
            author: removed,
            seq: later,
            hash: h(7),
        }];
        let ends = log_ends(&st, [(&lead, &other_chain[..])]);
        assert_eq!(
            ends.get(&removed),
            Some(&vec![
                LogEnd { seq: 2, hash: h(2) },
                LogEnd {
                    seq: later,
                    hash: h(7)
                }
            ])
        );
        assert_eq!(end_of_chain(&cut, later), None);
    }

    #[test]
    fn two_removals_of_one_member_keep_per_chain_the_smaller_cut() {
        let (x, y) = (Hash([1; 32]), Hash([2; 32]));
        let base = crate::entry::chain_base(5);
        let a = [
            LogEnd { seq: 4, hash: x },
            LogEnd {
                seq: base + 3,
                hash: x,
            },
        ];
        let b = [LogEnd { seq: 2, hash: y }];
        assert_eq!(meet(&a, &b), vec![LogEnd { seq: 2, hash: y }]);
        assert_eq!(meet(&b, &a), meet(&a, &b));
        // A cut naming a chain twice, out of order or at position 0 is malformed.
        assert!(check_cut(&[a[1], a[0]]).is_err());
        assert!(check_cut(&[LogEnd { seq: base, hash: x }]).is_err());
        assert!(check_cut(&a).is_ok());
    }

    #[test]
    fn an_admin_appoints_a_lead_only_when_every_lead_is_revoked() {
        let f = fixture();
        let admin = NodeKeys::generate().unwrap();
        let admin_card = NodeCard::issue(&admin, "europol", "Europol", "NL", 1).unwrap();
        let relay = NodeKeys::generate().unwrap();
        let relay_card = NodeCard::issue(&relay, "relay", "Relay", "NL", 1).unwrap();
        let mut t = 1;
        let mut op = |keys: &NodeKeys, parents: Vec<Hash>, body: ControlBody| {
            t += 1;
            ControlOp::create(keys, f.case, parents, t, body).unwrap()
        };
        let add_other = op(
            &f.lead,
            vec![f.create.hash()],
            ControlBody::AddMember {
                card: f.other_card.clone(),
                role: Role::Contributor,
            },
        );
        let add_admin = op(
            &f.lead,
            vec![add_other.hash()],
            ControlBody::AddMember {
                card: admin_card.clone(),
                role: Role::Observer,
            },
        );
        let add_relay = op(
            &f.lead,
            vec![add_admin.hash()],
            ControlBody::AddMember {
                card: relay_card.clone(),
                role: Role::Relay,
            },
        );
        let other = f.other.public().ed25519;
        let appoint = |member: [u8; 32], by: &NodeKeys| {
            ControlOp::create(
                by,
                f.case,
                vec![add_relay.hash()],
                99,
                ControlBody::AppointLead {
                    member,
                    sealed_reason: vec![],
                },
            )
            .unwrap()
        };
        let base = vec![
            f.create.clone(),
            add_other.clone(),
            add_admin.clone(),
            add_relay.clone(),
        ];
        let with = |extra: ControlOp| {
            let mut ops = base.clone();
            ops.push(extra);
            ops
        };
        let lead_revoked = FederationFacts {
            admins: [admin.public().ed25519].into(),
            revoked: [f.lead.public().ed25519].into(),
        };
        // The registry says the only lead is revoked: the admin's
        // appointment makes the member lead, and the new lead acts.
        let st = resolve_in(f.case, &with(appoint(other, &admin)), &lead_revoked).unwrap();
        assert_eq!(st.role_of(&other), Some(Role::Lead));
        let next = ControlOp::create(
            &f.other,
            f.case,
            st.heads.clone(),
            100,
            ControlBody::KeyEpoch {
                salt: [1; 32],
                wraps: vec![],
            },
        )
        .unwrap();
        assert_eq!(authorize_in(&st, &next, &lead_revoked), Ok(()));
        // Without the registry, or with the lead still active, or by a node
        // that is not an admin, or of a relay: no effect.
        for (ops, facts, why) in [
            (
                with(appoint(other, &admin)),
                FederationFacts::default(),
                "no registry",
            ),
            (
                with(appoint(other, &admin)),
                FederationFacts {
                    admins: [admin.public().ed25519].into(),
                    revoked: Default::default(),
                },
                "the lead is active",
            ),
            (
                with(appoint(other, &f.other)),
                lead_revoked.clone(),
                "not an admin",
            ),
            (
                with(appoint(relay.public().ed25519, &admin)),
                lead_revoked.clone(),
                "a relay",
            ),
        ] {
            let st = resolve_in(f.case, &ops, &facts).unwrap();
            assert_eq!(st.role_of(&other), Some(Role::Contributor), "{why}");
            assert_eq!(st.rejected.len(), 1, "{why}");
        }
    }

    #[test]
    fn create_add_share_and_unwrap_by_the_new_member() {
        let f = fixture();
        let add = f.add_other(Role::Contributor);
        let share = ControlOp::create(
            &f.lead,
            f.case,
            vec![add.hash()],
            3,
            ControlBody::KeyShare {
                epoch: f.create.hash(),
                wraps: wrap_to(&f.key, &f.case, &[7u8; 32], &[&f.other_card]).unwrap(),
            },
        )
        .unwrap();
        let ops: Vec<ControlOp> = [&share, &f.create, &add]
            .iter()
            .map(|o| ControlOp::decode_verified(o.bytes()).unwrap())
            .collect();
        let st = resolve(f.case, &ops).unwrap();
        assert_eq!(
            st.role_of(&f.other.public().ed25519),
            Some(Role::Contributor)
        );
        assert_eq!(st.heads, vec![share.hash()]);
        let e = &st.epochs[0];
        let k = wrap::unwrap_key(
            &f.other,
            &e.wraps[&f.other.public().ed25519],
            &wrap_context(&f.case, &e.salt),
        )
        .unwrap();
        assert_eq!(k, f.key);
        assert_eq!(
            CaseMeta::open(&st.sealed_meta, &f.case, &k).unwrap().title,
            "Op Lantern"
        );
        let _ = &f.lead_card;
    }

    #[test]
    fn non_leads_cannot_add_members_and_forged_geneses_fail() {
        let f = fixture();
        let add = ControlOp::create(
            &f.other,
            f.case,
            vec![f.create.hash()],
            2,
            ControlBody::AddMember {
                card: f.other_card.clone(),
                role: Role::Lead,
            },
        )
        .unwrap();
        let st = resolve(f.case, &[f.create.clone(), add.clone()]).unwrap();
        assert_eq!(st.rejected.len(), 1);
        assert!(st.role_of(&f.other.public().ed25519).is_none());
        // Someone else's create for this case id is not a genesis.
        let forged = ControlOp::create(
            &f.other,
            f.case,
            vec![],
            1,
            ControlBody::Create {
                nonce: [4u8; 16],
                creator: f.other_card.clone(),
                salt: [0; 32],
                wraps: vec![],
                sealed_meta: vec![],
            },
        )
        .unwrap();
        assert!(resolve(f.case, &[forged]).is_err());
    }

    #[test]
    fn decode_rejects_every_flipped_byte() {
        let f = fixture();
        for i in 0..f.create.bytes().len() {
            let mut b = f.create.bytes().to_vec();
            b[i] ^= 0x10;
            assert!(
                ControlOp::decode_verified(&b).is_err(),
                "flip at {i} accepted"
            );
        }
    }

    use crate::testing::Rng;

    /// `n` nodes' keys and cards.
    fn nodes(n: usize) -> (Vec<NodeKeys>, Vec<NodeCard>) {
        let keys: Vec<NodeKeys> = (0..n).map(|_| NodeKeys::generate().unwrap()).collect();
        let cards = keys
            .iter()
            .enumerate()
            .map(|(i, k)| NodeCard::issue(k, &format!("n{i}"), "Org", "GB", 1).unwrap())
            .collect();
        (keys, cards)
    }

    /// What a resolved state says, comparable across resolutions.
    fn summary(st: &CaseState) -> String {
        let members: Vec<String> = st
            .members
            .iter()
            .map(|(k, m)| format!("{}:{}", k[0], m.role.name()))
            .collect();
        let removed: Vec<String> = st
            .removed
            .iter()
            .map(|(k, r)| {
                format!(
                    "{}@{:?}",
                    k[0],
                    r.cut.iter().map(|e| e.seq).collect::<Vec<_>>()
                )
            })
            .collect();
        let epochs: Vec<String> = st
            .epochs
            .iter()
            .map(|e| format!("{}:{}", e.id.short(), e.wraps.len()))
            .collect();
        format!(
            "members {members:?} removed {removed:?} epochs {epochs:?} heads {:?} rejected {}",
            st.heads,
            st.rejected.len()
        )
    }

    /// The property of docs/design.md's authority graphs: leads working apart (each
    /// sees only the operations it has synced) write adds, removals, rotations
    /// and key shares, including mutual removals, adds during rotations and
    /// actions concurrent with the actor's removal; every arrival order of the
    /// resulting operations resolves to one state.
    #[test]
    fn any_order_of_concurrent_operations_resolves_to_one_state() {
        let f = fixture();
        let (keys, cards) = nodes(4);
        let mut concurrent_conflicts = 0;
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // Replica 0 is the creator; replicas 1 and 2 are made leads up front,
            // then everyone works apart, syncing now and then.
            let mut all: Vec<ControlOp> = vec![f.create.clone()];
            let mut parents = vec![f.create.hash()];
            for c in &cards[..2] {
                let op = ControlOp::create(
                    &f.lead,
                    f.case,
                    parents.clone(),
                    2,
                    ControlBody::AddMember {
                        card: c.clone(),
                        role: Role::Lead,
                    },
                )
                .unwrap();
                parents = vec![op.hash()];
                all.push(op);
            }
            let authors = [&f.lead, &keys[0], &keys[1]];
            let mut known: Vec<Vec<ControlOp>> = vec![all.clone(); 3];
            for step in 0..8 {
                let who = rng.below(3);
                if rng.below(4) == 0 {
                    // Sync: `who` learns everything written so far.
                    known[who] = all.clone();
                    continue;
                }
                let Ok(view) = resolve(f.case, &known[who]) else {
                    continue;
                };
                let target = rng.below(4);
                let card = &cards[target];
                let id = card.identity.ed25519;
                let body = match rng.below(5) {
                    0 => ControlBody::AddMember {
                        card: card.clone(),
                        role: [Role::Lead, Role::Contributor, Role::Observer][rng.below(3)],
                    },
                    1 => ControlBody::RemoveMember {
                        member: if rng.below(2) == 0 {
                            id
                        } else {
                            f.lead.public().ed25519
                        },
                        cut: match rng.below(5) as u64 {
                            0 => vec![],
                            seq => vec![LogEnd {
                                seq,
                                hash: Hash::ZERO,
                            }],
                        },
                        sealed_reason: b"left the team".to_vec(),
                        salt: [step as u8; 32],
                        wraps: vec![],
                    },
                    2 => ControlBody::KeyEpoch {
                        salt: [step as u8 + 100; 32],
                        wraps: vec![],
                    },
                    3 => ControlBody::ChangeRole {
                        member: id,
                        role: [Role::Lead, Role::Contributor][rng.below(2)],
                    },
                    _ => ControlBody::KeyShare {
                        epoch: view.epochs.last().unwrap().id,
                        wraps: vec![],
                    },
                };
                let op =
                    ControlOp::create(authors[who], f.case, view.heads.clone(), 3 + step, body)
                        .unwrap();
                known[who].push(op.clone());
                all.push(op);
            }
            let reference = resolve(f.case, &all).unwrap();
            if reference
                .rejected
                .iter()
                .any(|(_, why)| why.contains("removal wins"))
            {
                concurrent_conflicts += 1;
            }
            for _ in 0..12 {
                let mut shuffled = all.clone();
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, rng.below(i + 1));
                }
                let st = resolve(f.case, &shuffled).unwrap();
                assert_eq!(summary(&st), summary(&reference), "seed {seed}");
            }
        }
        assert!(
            concurrent_conflicts > 0,
            "the generator never produced an action concurrent with its author's removal"
        );
    }

    /// Two leads that add one node concurrently with different roles: the
    /// node holds the most powerful, in any order, so what it wrote under the
    /// grant it saw first stays valid once it sees the other.
    #[test]
    fn concurrent_adds_of_one_node_keep_the_most_powerful_role() {
        let f = fixture();
        let second = NodeKeys::generate().unwrap();
        let second_card = NodeCard::issue(&second, "europol", "Europol", "NL", 1).unwrap();
        let add = |by: &NodeKeys, parents: Vec<Hash>, card: &NodeCard, role: Role| {
            ControlOp::create(
                by,
                f.case,
                parents,
                2,
                ControlBody::AddMember {
                    card: card.clone(),
                    role,
                },
            )
            .unwrap()
        };
        let lead2 = add(&f.lead, vec![f.create.hash()], &second_card, Role::Lead);
        for (a, b) in [
            (Role::Observer, Role::Contributor),
            (Role::Contributor, Role::Observer),
            (Role::Lead, Role::Observer),
            (Role::Relay, Role::Contributor),
        ] {
            let one = add(&f.lead, vec![lead2.hash()], &f.other_card, a);
            let two = add(&second, vec![lead2.hash()], &f.other_card, b);
            for ops in [
                [f.create.clone(), lead2.clone(), one.clone(), two.clone()],
                [two.clone(), one.clone(), lead2.clone(), f.create.clone()],
            ] {
                let st = resolve(f.case, &ops).unwrap();
                assert_eq!(
                    st.role_of(&f.other.public().ed25519),
                    Some(a.min(b)),
                    "{a:?} and {b:?}"
                );
                assert!(st.rejected.is_empty(), "{:?}", st.rejected);
            }
        }
    }

    #[test]
    fn of_two_leads_that_remove_each_other_concurrently_the_senior_stays() {
        let f = fixture();
        let add = f.add_other(Role::Lead);
        let remove = |by: &NodeKeys, who: [u8; 32]| {
            ControlOp::create(
                by,
                f.case,
                vec![add.hash()],
                3,
                ControlBody::RemoveMember {
                    member: who,
                    cut: vec![],
                    sealed_reason: b"dispute".to_vec(),
                    salt: [9; 32],
                    wraps: vec![],
                },
            )
            .unwrap()
        };
        let a = remove(&f.lead, f.other.public().ed25519);
        let b = remove(&f.other, f.lead.public().ed25519);
        for ops in [
            [b.clone(), f.create.clone(), a.clone(), add.clone()],
            [f.create.clone(), add.clone(), a.clone(), b.clone()],
        ] {
            let st = resolve(f.case, &ops).unwrap();
            // The creator is senior: its removal stands, the other's is void.
            assert_eq!(st.role_of(&f.lead.public().ed25519), Some(Role::Lead));
            assert_eq!(st.removed.len(), 1);
            assert!(st.removed.contains_key(&f.other.public().ed25519));
            assert!(
                st.rejected
                    .iter()
                    .any(|(h, why)| *h == b.hash() && why.contains("removal wins"))
            );
        }
        // Removal is final: a lead cannot add a removed node back.
        let again = ControlOp::create(
            &f.lead,
            f.case,
            vec![a.hash()],
            4,
            ControlBody::AddMember {
                card: f.other_card.clone(),
                role: Role::Contributor,
            },
        )
        .unwrap();
        let st = resolve(f.case, &[f.create.clone(), add.clone(), a.clone(), again]).unwrap();
        assert!(st.role_of(&f.other.public().ed25519).is_none());
        assert!(
            st.rejected
                .iter()
                .any(|(_, why)| why.contains("removal is final"))
        );
    }

    /// Issue 21's property for a case: a lead removed by a more senior lead
    /// (a backup of it, a stolen key) signing anything with any parents that
    /// leave its removal out (removing members, starting key epochs, adding
    /// an accomplice lead that acts in turn) changes nothing, in any order.
    #[test]
    fn a_lead_removed_by_a_senior_lead_changes_nothing_whatever_it_signs() {
        let f = fixture();
        let (keys, cards) = nodes(4);
        // keys[0], keys[1]: leads added by the creator; keys[2]: contributor;
        // keys[3]: the accomplice.
        let mut rng = Rng(0x51ED_2701);
        for seed in 0..30 {
            let add = |by: &NodeKeys, parent: Hash, card: &NodeCard, role: Role| {
                ControlOp::create(
                    by,
                    f.case,
                    vec![parent],
                    2,
                    ControlBody::AddMember {
                        card: card.clone(),
                        role,
                    },
                )
                .unwrap()
            };
            let remove = |by: &NodeKeys, parents: Vec<Hash>, who: [u8; 32], salt: u8| {
                ControlOp::create(
                    by,
                    f.case,
                    parents,
                    3,
                    ControlBody::RemoveMember {
                        member: who,
                        cut: vec![],
                        sealed_reason: b"x".to_vec(),
                        salt: [salt; 32],
                        wraps: vec![],
                    },
                )
                .unwrap()
            };
            let mut honest = vec![f.create.clone()];
            for (i, role) in [(0, Role::Lead), (1, Role::Lead), (2, Role::Contributor)] {
                let p = honest.last().unwrap().hash();
                honest.push(add(&f.lead, p, &cards[i], role));
            }
            let base = honest.last().unwrap().hash();
            let x = rng.below(2);
            let r = remove(&f.lead, vec![base], keys[x].public().ed25519, 1);
            honest.push(r.clone());
            // The other lead rotates meanwhile, on another branch.
            honest.push(
                ControlOp::create(
                    &keys[1 - x],
                    f.case,
                    vec![base],
                    3,
                    ControlBody::KeyEpoch {
                        salt: [2; 32],
                        wraps: vec![],
                    },
                )
                .unwrap(),
            );
            let before: Vec<Hash> = honest[..5].iter().map(|o| o.hash()).collect();
            let mut stale: Vec<ControlOp> = Vec::new();
            for k in 0..1 + rng.below(4) {
                let mut parents = vec![before[rng.below(before.len())]];
                if let Some(p) = stale.last().filter(|_| rng.below(2) == 0) {
                    parents.push(p.hash());
                }
                let body = match rng.below(4) {
                    0 => ControlBody::RemoveMember {
                        member: [
                            f.lead.public().ed25519,
                            keys[1 - x].public().ed25519,
                            keys[2].public().ed25519,
                        ][rng.below(3)],
                        cut: vec![],
                        sealed_reason: b"coup".to_vec(),
                        salt: [10 + k as u8; 32],
                        wraps: vec![],
                    },
                    1 => ControlBody::KeyEpoch {
                        salt: [20 + k as u8; 32],
                        wraps: vec![],
                    },
                    2 => ControlBody::AddMember {
                        card: cards[3].clone(),
                        role: Role::Lead,
                    },
                    _ => ControlBody::ChangeRole {
                        member: keys[2].public().ed25519,
                        role: Role::Lead,
                    },
                };
                stale.push(ControlOp::create(&keys[x], f.case, parents, 4, body).unwrap());
            }
            if let Some(made) = stale.iter().find(|o| {
                matches!(&o.body, ControlBody::AddMember { card, .. } if card.identity.ed25519 == keys[3].public().ed25519)
            }) {
                stale.push(remove(&keys[3], vec![made.hash()], f.lead.public().ed25519, 30));
            }
            let reference = resolve(f.case, &honest).unwrap();
            let mut all: Vec<ControlOp> = honest.iter().chain(&stale).cloned().collect();
            for _ in 0..6 {
                let st = resolve(f.case, &all).unwrap();
                let strip = |s: String| s.split(" heads").next().unwrap_or_default().to_string();
                assert_eq!(
                    strip(summary(&st)),
                    strip(summary(&reference)),
                    "seed {seed}"
                );
                for i in (1..all.len()).rev() {
                    all.swap(i, rng.below(i + 1));
                }
            }
        }
    }
}
