//! The federation trust registry: admin-signed statements of which nodes a
//! federation trusts, folded with the same authority-graph rules as case control
//! logs ([`crate::authority`]).
//!
//! Layout (version 1): `version u8 | federation [32] (zero in the genesis) |
//! author [32] | parents count u32, [32]* | time_ms i64 | tag u8 | body |
//! signature [64]`. The federation id is the hash of its genesis statement.
//!
//! A join token carries the registry statements an invited node needs to
//! bootstrap (`csjoin1.` + base64url); every statement in it is verified.
//!
//! Longer than most files here: about 540 lines of code (statements, rules,
//! join tokens) and 420 of tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use casesync_crypto::NodeKeys;
use casesync_crypto::hash::{Hash, sha256};
use casesync_crypto::identity::SIGNATURE_LEN;

use crate::SchemaError;
use crate::authority::{self, AuthorityOp};
use crate::card::{MAX_CARD_BYTES, NodeCard};
use crate::codec::{Reader, SignedLayout, Writer, verify_signed};

const VERSION: u8 = 1;
const SIGN_CONTEXT: &[u8] = b"casesync/registry/v1";
const TOKEN_PREFIX: &str = "csjoin1.";
pub const MAX_OP_BYTES: usize = 16 * 1024;
pub const MAX_PARENTS: usize = 256;
pub const MAX_NAME: usize = 200;
/// Longest reason a revocation may give.
pub const MAX_REASON: usize = 1000;
/// Statements a join token may carry.
pub const MAX_TOKEN_OPS: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryBody {
    /// Starts a federation; the author is its first admin.
    Genesis {
        name: String,
        nonce: [u8; 16],
        admin: NodeCard,
    },
    /// An admin enrolls a node (or makes an enrolled node an admin).
    Enroll { card: NodeCard, admin: bool },
    /// An admin revokes a node: final; it may never be enrolled again.
    Revoke { node: [u8; 32], reason: String },
    /// Four-eyes for the federation (issue 19): while on, and while the
    /// federation has two admins or more, an enrollment or a revocation
    /// (and turning this off) takes two admins: one signs the statement,
    /// another [`RegistryBody::Seconded`] it. Turning it on needs two admins
    /// enrolled.
    Policy { two_admins: bool },
    /// A second admin's countersignature: carries the first admin's whole
    /// signed statement (an `Enroll`, `Revoke` or `Policy`, made within
    /// [`SECOND_WITHIN_MS`] of this one), which takes effect here, as if
    /// written at this place in the graph.
    Seconded { first: Box<RegistryOp> },
}

/// How long a first admin's statement waits for its second admin.
pub const SECOND_WITHIN_MS: i64 = 72 * 3600 * 1000;

#[derive(Clone, Debug)]
pub struct RegistryOp {
    pub federation: Hash,
    pub author: [u8; 32],
    pub parents: Vec<Hash>,
    pub time_ms: i64,
    pub body: RegistryBody,
    bytes: Vec<u8>,
    hash: Hash,
}

/// Statements are equal when their bytes are (the hash covers them all).
impl PartialEq for RegistryOp {
    fn eq(&self, other: &RegistryOp) -> bool {
        self.hash == other.hash
    }
}
impl Eq for RegistryOp {}

impl AuthorityOp for RegistryOp {
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
            RegistryBody::Revoke { node, .. } => Some(*node),
            RegistryBody::Seconded { first } => first.op_removes(),
            _ => None,
        }
    }
    fn op_grants(&self) -> Option<[u8; 32]> {
        match &self.body {
            RegistryBody::Enroll { card, admin: true } => Some(card.identity.ed25519),
            RegistryBody::Seconded { first } => first.op_grants(),
            _ => None,
        }
    }
}

impl RegistryOp {
    pub fn create(
        keys: &NodeKeys,
        federation: Hash,
        mut parents: Vec<Hash>,
        time_ms: i64,
        body: RegistryBody,
    ) -> Result<RegistryOp, SchemaError> {
        let author = keys.public().ed25519;
        let mut w = Writer::new();
        authority::write_header(
            &mut w,
            VERSION,
            federation.as_bytes(),
            &author,
            &mut parents,
            time_ms,
        );
        match &body {
            RegistryBody::Genesis { name, nonce, admin } => {
                if name.trim().is_empty()
                    || name.len() > MAX_NAME
                    || name.chars().any(char::is_control)
                {
                    return Err(SchemaError::InvalidField {
                        field: "name".into(),
                        reason: format!("must be 1-{MAX_NAME} printable characters"),
                    });
                }
                w.u8(1);
                w.str(name);
                w.raw(nonce);
                w.bytes(admin.bytes());
            }
            RegistryBody::Enroll { card, admin } => {
                w.u8(2);
                w.bytes(card.bytes());
                w.u8(*admin as u8);
            }
            RegistryBody::Revoke { node, reason } => {
                if reason.trim().is_empty() || reason.len() > MAX_REASON {
                    return Err(SchemaError::InvalidField {
                        field: "reason".into(),
                        reason: format!("must be 1-{MAX_REASON} bytes"),
                    });
                }
                w.u8(3);
                w.raw(node);
                w.str(reason);
            }
            RegistryBody::Policy { two_admins } => {
                w.u8(4);
                w.u8(*two_admins as u8);
            }
            RegistryBody::Seconded { first } => {
                if matches!(
                    first.body,
                    RegistryBody::Genesis { .. } | RegistryBody::Seconded { .. }
                ) {
                    return Err(SchemaError::InvalidField {
                        field: "first".into(),
                        reason: "only an enrollment, a revocation or a policy is seconded".into(),
                    });
                }
                w.u8(5);
                w.bytes(first.bytes());
            }
        }
        let sig = keys.sign(SIGN_CONTEXT, &w.buf);
        w.raw(&sig);
        let hash = sha256(&w.buf);
        Ok(RegistryOp {
            federation,
            author,
            parents,
            time_ms,
            body,
            bytes: w.buf,
            hash,
        })
    }

    /// Verifies the signature over `bytes`, then decodes.
    pub fn decode_verified(bytes: &[u8]) -> Result<RegistryOp, SchemaError> {
        let signed = verify_signed(
            bytes,
            &SignedLayout {
                what: "registry statement",
                version: VERSION,
                min_len: 1 + 32 + 32 + 4 + 8 + 1 + SIGNATURE_LEN,
                max_len: MAX_OP_BYTES,
                key_at: 33,
                context: SIGN_CONTEXT,
            },
        )?;
        let mut r = Reader::new(signed, "registry statement");
        let h = authority::read_header::<32>(&mut r, MAX_PARENTS)?;
        let (federation, author, parents, time_ms) =
            (Hash(h.scope), h.author, h.parents, h.time_ms);
        let body = match r.u8()? {
            1 => RegistryBody::Genesis {
                name: r.str(MAX_NAME)?.to_string(),
                nonce: r.array()?,
                admin: NodeCard::decode(r.bytes(MAX_CARD_BYTES)?)?,
            },
            2 => RegistryBody::Enroll {
                card: NodeCard::decode(r.bytes(MAX_CARD_BYTES)?)?,
                admin: r.u8()? != 0,
            },
            3 => RegistryBody::Revoke {
                node: r.array()?,
                reason: r.str(MAX_REASON)?.to_string(),
            },
            4 => RegistryBody::Policy {
                two_admins: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(SchemaError::malformed("registry statement", "bad policy")),
                },
            },
            5 => {
                // Verified like any statement; a countersignature is one level deep.
                let first = RegistryOp::decode_verified(r.bytes(MAX_OP_BYTES)?)?;
                if matches!(
                    first.body,
                    RegistryBody::Genesis { .. } | RegistryBody::Seconded { .. }
                ) {
                    return Err(SchemaError::malformed(
                        "registry statement",
                        "only an enrollment, a revocation or a policy is seconded",
                    ));
                }
                RegistryBody::Seconded {
                    first: Box::new(first),
                }
            }
            t => {
                return Err(SchemaError::malformed(
                    "registry statement",
                    format!("unknown statement tag {t}"),
                ));
            }
        };
        r.finish()?;
        Ok(RegistryOp {
            federation,
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

#[derive(Clone, Debug)]
pub struct Enrolled {
    pub card: NodeCard,
    pub admin: bool,
    pub revoked: bool,
    /// Why it was revoked, and by which statement.
    pub revocation: Option<(String, Hash)>,
}

#[derive(Clone, Debug)]
pub struct RegistryState {
    pub federation: Hash,
    pub name: String,
    pub nodes: BTreeMap<[u8; 32], Enrolled>,
    pub heads: Vec<Hash>,
    pub rejected: Vec<(Hash, String)>,
    /// Statements whose author held the authority in their causal past: the
    /// only ones a node keeps (`authority::Folded::folds`).
    pub folds: std::collections::BTreeSet<Hash>,
    /// The federation's four-eyes policy ([`RegistryBody::Policy`]).
    pub two_admins: bool,
}

impl RegistryState {
    pub fn is_active(&self, node: &[u8; 32]) -> bool {
        self.nodes.get(node).is_some_and(|n| !n.revoked)
    }
    pub fn is_admin(&self, node: &[u8; 32]) -> bool {
        self.nodes.get(node).is_some_and(|n| n.admin && !n.revoked)
    }
    pub fn by_peer_id(&self, peer_id: &str) -> Option<&Enrolled> {
        self.nodes.values().find(|n| n.card.peer_id() == peer_id)
    }
    /// Active admins.
    pub fn admins(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.admin && !n.revoked)
            .count()
    }
    /// Whether an enrollment, a revocation or turning the policy off needs
    /// a second admin now: the policy is on and there are two admins to ask
    /// (a federation left with one, by revocations, is not locked).
    pub fn needs_second_admin(&self) -> bool {
        self.two_admins && self.admins() >= 2
    }
}

/// Whether a statement of `body` needs a second admin in `state`.
pub fn second_admin_needed(state: &RegistryState, body: &RegistryBody) -> bool {
    state.needs_second_admin()
        && match body {
            RegistryBody::Enroll { .. } | RegistryBody::Revoke { .. } => true,
            RegistryBody::Policy { two_admins } => !two_admins,
            RegistryBody::Genesis { .. } | RegistryBody::Seconded { .. } => false,
        }
}

/// Resolves the statements of `federation` into its state (the authority-graph
/// rules of [`authority`]: authority from each statement's causal past,
/// revocation wins over concurrent statements of the revoked admin).
pub fn resolve(federation: Hash, ops: &[RegistryOp]) -> Result<RegistryState, SchemaError> {
    let mine: Vec<&RegistryOp> = ops
        .iter()
        .filter(|o| {
            o.federation == federation || (o.federation == Hash::ZERO && o.hash == federation)
        })
        .collect();
    let rules = RegistryRules {
        federation,
        void: BTreeSet::new(),
    };
    let (mut state, mut folded) = authority::resolve(&rules, &mine);
    // The two-admin policy wins over statements one admin signed beside it
    // (concurrently: an admin offline, or one writing on an older view of
    // the registry), as a revocation wins over the revoked admin's: they
    // are folded again without them. What is stored stays what the first
    // fold says, so a statement that builds on a voided one is kept (and
    // judged without it).
    let void = lone_beside_policy(&mine, &folded.applied);
    if !void.is_empty() {
        let stored = std::mem::take(&mut folded.folds);
        (state, folded) = authority::resolve(&RegistryRules { federation, void }, &mine);
        folded.folds = stored;
    }
    let mut state = state
        .ok_or_else(|| SchemaError::malformed("trust registry", "no valid genesis statement"))?;
    state.heads = folded.heads;
    state.rejected = folded.rejected;
    state.folds = folded.folds;
    Ok(state)
}

const POLICY_WINS: &str =
    "signed by one admin concurrently with the federation's two-admin policy (the policy wins)";

/// Statements one admin signed alone (an enrollment, a revocation, turning
/// the policy off) that applied, concurrent with (neither before nor after)
/// an applied statement turning the two-admin policy on.
fn lone_beside_policy(ops: &[&RegistryOp], applied: &[Hash]) -> BTreeSet<Hash> {
    let applied: BTreeSet<Hash> = applied.iter().copied().collect();
    let by_hash: HashMap<Hash, &RegistryOp> = ops.iter().map(|o| (o.hash, *o)).collect();
    let ancestors = |from: Hash| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Hash> = by_hash
            .get(&from)
            .map(|o| o.parents.clone())
            .unwrap_or_default();
        while let Some(h) = todo.pop() {
            if seen.insert(h)
                && let Some(o) = by_hash.get(&h)
            {
                todo.extend(o.parents.iter().copied());
            }
        }
        seen
    };
    let turns_on = |b: &RegistryBody| match b {
        RegistryBody::Policy { two_admins } => *two_admins,
        RegistryBody::Seconded { first } => {
            matches!(first.body, RegistryBody::Policy { two_admins: true })
        }
        _ => false,
    };
    let on: Vec<(Hash, BTreeSet<Hash>)> = ops
        .iter()
        .filter(|o| applied.contains(&o.hash) && turns_on(&o.body))
        .map(|o| (o.hash, ancestors(o.hash)))
        .collect();
    if on.is_empty() {
        return BTreeSet::new();
    }
    ops.iter()
        .filter(|o| {
            applied.contains(&o.hash)
                && matches!(
                    o.body,
                    RegistryBody::Enroll { .. }
                        | RegistryBody::Revoke { .. }
                        | RegistryBody::Policy { two_admins: false }
                )
        })
        .filter(|o| {
            let mine = ancestors(o.hash);
            on.iter()
                .any(|(p, before_p)| !before_p.contains(&o.hash) && !mine.contains(p))
        })
        .map(|o| o.hash)
        .collect()
}

/// Whether `op`, written on top of `state` (its heads as parents), is one its
/// author may write (see `control::authorize`).
pub fn authorize(state: &RegistryState, op: &RegistryOp) -> Result<(), String> {
    authority::Rules::authorize(
        &RegistryRules {
            federation: state.federation,
            void: BTreeSet::new(),
        },
        Some(state),
        op,
    )
}

struct RegistryRules {
    federation: Hash,
    /// Statements voided by the two-admin policy ([`lone_beside_policy`]).
    void: BTreeSet<Hash>,
}

impl authority::Rules for RegistryRules {
    type Op = RegistryOp;
    type State = RegistryState;

    fn authorize(&self, state: Option<&RegistryState>, op: &RegistryOp) -> Result<(), String> {
        let Some(st) = state else {
            let RegistryBody::Genesis { admin, .. } = &op.body else {
                return Err("statement before the federation's genesis".into());
            };
            if op.hash != self.federation || op.federation != Hash::ZERO || !op.parents.is_empty() {
                return Err("genesis does not match the federation id".into());
            }
            if admin.identity.ed25519 != op.author {
                return Err("genesis admin card is not the author's".into());
            }
            return Ok(());
        };
        if !st.is_admin(&op.author) {
            return Err("author is not an admin of the federation".into());
        }
        if self.void.contains(&op.hash) {
            return Err(POLICY_WINS.into());
        }
        if second_admin_needed(st, &op.body) {
            return Err(
                "the federation's policy needs a second admin for this: another admin seconds it"
                    .into(),
            );
        }
        authorize_body(st, op)
    }

    fn has_authority(&self, state: &RegistryState) -> bool {
        state.nodes.values().any(|n| n.admin && !n.revoked)
    }

    fn apply(&self, state: &mut Option<RegistryState>, op: &RegistryOp) {
        let Some(st) = state else {
            if let RegistryBody::Genesis { name, admin, .. } = &op.body {
                let mut nodes = BTreeMap::new();
                nodes.insert(
                    op.author,
                    Enrolled {
                        card: admin.clone(),
                        admin: true,
                        revoked: false,
                        revocation: None,
                    },
                );
                *state = Some(RegistryState {
                    federation: self.federation,
                    name: name.clone(),
                    nodes,
                    heads: vec![],
                    rejected: vec![],
                    folds: Default::default(),
                    two_admins: false,
                });
            }
            return;
        };
        apply_body(st, op.hash, &op.body);
    }
}

/// The effect of an authorized statement's body (`by`: the statement that
/// carries it, which a revocation names).
fn apply_body(st: &mut RegistryState, by: Hash, body: &RegistryBody) {
    {
        match body {
            RegistryBody::Genesis { .. } => {}
            RegistryBody::Policy { two_admins } => st.two_admins = *two_admins,
            RegistryBody::Seconded { first } => apply_body(st, by, &first.body),
            RegistryBody::Enroll { card, admin } => {
                let n = st
                    .nodes
                    .entry(card.identity.ed25519)
                    .or_insert_with(|| Enrolled {
                        card: card.clone(),
                        admin: false,
                        revoked: false,
                        revocation: None,
                    });
                // A concurrent revocation wins over any enrollment.
                n.admin |= *admin && !n.revoked;
            }
            RegistryBody::Revoke { node, reason } => {
                if let Some(n) = st.nodes.get_mut(node)
                    && !n.revoked
                {
                    n.revoked = true;
                    n.admin = false;
                    n.revocation = Some((reason.clone(), by));
                }
            }
        }
    }
}

/// Whether an admin may write `op`'s body in `st`, the four-eyes policy aside.
pub fn authorize_body(st: &RegistryState, op: &RegistryOp) -> Result<(), String> {
    match &op.body {
        RegistryBody::Genesis { .. } => Err("second genesis".into()),
        RegistryBody::Enroll { card, admin } => match st.nodes.get(&card.identity.ed25519) {
            Some(n) if n.revoked => Err("node was revoked; revocation is final".into()),
            Some(n) if *admin && !n.admin => Ok(()),
            Some(_) => Err("node is already enrolled".into()),
            None => Ok(()),
        },
        RegistryBody::Revoke { node, .. } => match st.nodes.get(node) {
            None => Err("node is not enrolled".into()),
            Some(n) if n.revoked => Err("node is already revoked".into()),
            Some(n) if n.admin && st.nodes.values().filter(|m| m.admin).count() == 1 => Err(
                "the federation would be left without an admin: enroll another admin first".into(),
            ),
            Some(_) => Ok(()),
        },
        RegistryBody::Policy { two_admins } => {
            if *two_admins == st.two_admins {
                Err(format!(
                    "the policy already {}",
                    if st.two_admins {
                        "needs two admins"
                    } else {
                        "lets one admin act"
                    }
                ))
            } else if *two_admins && st.admins() < 2 {
                Err("two admins need two admin nodes: enroll a second admin first".into())
            } else {
                Ok(())
            }
        }
        RegistryBody::Seconded { first } => {
            if first.federation != st.federation {
                return Err("the seconded statement is of another federation".into());
            }
            if first.author == op.author {
                return Err("an admin cannot second its own statement".into());
            }
            if !st.is_admin(&first.author) {
                return Err("the seconded statement's author is not an admin".into());
            }
            // Clocks disagree: only a second signed more than the window
            // after the first (by their own clocks) is too late.
            if op.time_ms.saturating_sub(first.time_ms) > SECOND_WITHIN_MS {
                return Err("the seconded statement has expired (72 hours)".into());
            }
            authorize_body(st, first)
        }
    }
}

/// A join token as made by `federation invite` (version 2): the registry
/// statements are sealed to the invitee (a fresh key HPKE-wrapped to its
/// card's X25519 key), and the whole is signed by the inviting admin, with an
/// expiry. Layout: `version 2 | invitee ed25519 [32] | inviter ed25519 [32] |
/// expires ms (i64) | wrapped key (bytes) | sealed statements (bytes) |
/// signature [64]`; the header is the AEAD's associated data and part of the
/// wrap's context. Only the invitee reads who is in the federation.
#[derive(Debug)]
pub struct JoinToken {
    pub invitee: [u8; 32],
    pub inviter: [u8; 32],
    pub expires_ms: i64,
    pub ops: Vec<RegistryOp>,
}

const SEALED_TOKEN_PREFIX: &str = "csjoin2.";
const SEALED_TOKEN_VERSION: u8 = 2;
const TOKEN_SIGN_CONTEXT: &[u8] = b"casesync/join-token/v2";
const TOKEN_WRAP_CONTEXT: &[u8] = b"casesync/join-token-key/v2";
/// How long a join token is valid after `federation invite`.
pub const TOKEN_VALID_MS: i64 = 7 * 24 * 3600 * 1000;

fn token_header(invitee: &[u8; 32], inviter: &[u8; 32], expires_ms: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(SEALED_TOKEN_VERSION);
    w.raw(invitee);
    w.raw(inviter);
    w.i64(expires_ms);
    w.buf
}

/// Seals `ops` into a join token for `invitee`, signed by `inviter`.
pub fn seal_token(
    inviter: &NodeKeys,
    invitee: &NodeCard,
    ops: &[RegistryOp],
    expires_ms: i64,
) -> Result<String, SchemaError> {
    let header = token_header(
        &invitee.identity.ed25519,
        &inviter.public().ed25519,
        expires_ms,
    );
    let inner = URL_SAFE_NO_PAD
        .decode(encode_token(ops).trim_start_matches(TOKEN_PREFIX))
        .map_err(|_| SchemaError::malformed("join token", "could not encode"))?;
    let key = casesync_crypto::SymmetricKey::generate()?;
    let wrapped = casesync_crypto::wrap::wrap_key(
        &key,
        &invitee.identity.x25519,
        &[TOKEN_WRAP_CONTEXT, &header].concat(),
    )?;
    let mut w = Writer::new();
    w.raw(&header);
    w.bytes(&wrapped);
    w.bytes(&key.seal(&header, &inner)?);
    let sig = inviter.sign(TOKEN_SIGN_CONTEXT, &w.buf);
    w.raw(&sig);
    Ok(format!(
        "{SEALED_TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(&w.buf)
    ))
}

/// Opens a join token made for `me`: the inviter's signature first, then the
/// sealed statements (each verified). Expiry and whether the inviter is an
/// admin are for the caller, which knows the time and resolves the registry.
pub fn open_token(me: &NodeKeys, token: &str) -> Result<JoinToken, SchemaError> {
    let token = token.trim();
    if token.starts_with(TOKEN_PREFIX) {
        return Err(SchemaError::malformed(
            "join token",
            "it is of an older kind (csjoin1), readable by anyone: ask the admin for a new one",
        ));
    }
    let bytes = token_bytes(token, SEALED_TOKEN_PREFIX)?;
    let limit = MAX_TOKEN_OPS * (MAX_OP_BYTES / 4);
    if bytes.len() < 1 + 32 + 32 + 8 + SIGNATURE_LEN {
        return Err(SchemaError::malformed("join token", "too short"));
    }
    let (signed, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let mut r = Reader::new(signed, "join token");
    if r.u8()? != SEALED_TOKEN_VERSION {
        return Err(SchemaError::malformed("join token", "unsupported version"));
    }
    let invitee: [u8; 32] = r.array()?;
    let inviter: [u8; 32] = r.array()?;
    let expires_ms = r.i64()?;
    let mut s = [0u8; SIGNATURE_LEN];
    s.copy_from_slice(sig);
    casesync_crypto::identity::verify(&inviter, TOKEN_SIGN_CONTEXT, signed, &s)
        .map_err(|_| SchemaError::BadSignature("join token"))?;
    if invitee != me.public().ed25519 {
        return Err(SchemaError::malformed(
            "join token",
            "it was made for another node: ask the admin to invite this node's card",
        ));
    }
    let header = token_header(&invitee, &inviter, expires_ms);
    let wrapped = r.bytes(casesync_crypto::wrap::WRAPPED_LEN)?;
    let sealed = r.bytes(limit)?;
    r.finish()?;
    let key =
        casesync_crypto::wrap::unwrap_key(me, wrapped, &[TOKEN_WRAP_CONTEXT, &header].concat())?;
    let inner = key.open(&header, sealed)?;
    let ops = decode_token(&format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&inner)))?;
    Ok(JoinToken {
        invitee,
        inviter,
        expires_ms,
        ops,
    })
}

/// Encodes registry statements as a one-line join token.
pub fn encode_token(ops: &[RegistryOp]) -> String {
    let mut w = Writer::new();
    w.u8(VERSION);
    w.u32(ops.len() as u32);
    for o in ops {
        w.bytes(o.bytes());
    }
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&w.buf))
}

/// The bytes of a one-line token that starts with `prefix`, bounded before
/// they are decoded.
fn token_bytes(token: &str, prefix: &str) -> Result<Vec<u8>, SchemaError> {
    let body = token.trim().strip_prefix(prefix).ok_or_else(|| {
        SchemaError::malformed(
            "join token",
            format!("expected text starting with `{prefix}` (from `casesync federation invite`)"),
        )
    })?;
    let limit = MAX_TOKEN_OPS * (MAX_OP_BYTES / 4);
    if body.len() > limit {
        return Err(SchemaError::TooLarge {
            what: "join token",
            size: body.len(),
            limit,
        });
    }
    URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SchemaError::malformed("join token", "not valid base64url"))
}

const REQUEST_PREFIX: &str = "csreq1.";

/// A first admin's signed statement as a line for a second admin (the
/// federation's two-admin policy): `csreq1.` + base64url of its bytes.
pub fn encode_request(op: &RegistryOp) -> String {
    format!("{REQUEST_PREFIX}{}", URL_SAFE_NO_PAD.encode(op.bytes()))
}

/// Whether `text` looks like a request token.
pub fn is_request(text: &str) -> bool {
    text.trim().starts_with(REQUEST_PREFIX)
}

/// Decodes a request token: bounded, then the statement verified.
pub fn decode_request(text: &str) -> Result<RegistryOp, SchemaError> {
    let body = text.trim().strip_prefix(REQUEST_PREFIX).ok_or_else(|| {
        SchemaError::malformed(
            "request token",
            format!("expected text starting with {REQUEST_PREFIX}"),
        )
    })?;
    if body.len() > MAX_OP_BYTES * 4 / 3 + 4 {
        return Err(SchemaError::TooLarge {
            what: "request token",
            size: body.len(),
            limit: MAX_OP_BYTES * 4 / 3 + 4,
        });
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SchemaError::malformed("request token", "not valid base64url"))?;
    RegistryOp::decode_verified(&bytes)
}

/// Decodes a join token, verifying every statement in it.
pub fn decode_token(token: &str) -> Result<Vec<RegistryOp>, SchemaError> {
    let bytes = token_bytes(token, TOKEN_PREFIX)?;
    let mut r = Reader::new(&bytes, "join token");
    if r.u8()? != VERSION {
        return Err(SchemaError::malformed("join token", "unsupported version"));
    }
    let n = r.count(MAX_TOKEN_OPS, 4)?;
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        ops.push(RegistryOp::decode_verified(r.bytes(MAX_OP_BYTES)?)?);
    }
    r.finish()?;
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::permute;

    /// A statement signed by `k`, at time `t`.
    fn statement(
        k: &NodeKeys,
        fed: Hash,
        parents: Vec<Hash>,
        t: i64,
        body: RegistryBody,
    ) -> RegistryOp {
        RegistryOp::create(k, fed, parents, t, body).unwrap()
    }

    /// The genesis of federation "JIT", `admin` (of `k`) its first admin.
    fn genesis(k: &NodeKeys, admin: NodeCard, nonce: u8) -> RegistryOp {
        statement(
            k,
            Hash::ZERO,
            vec![],
            1,
            RegistryBody::Genesis {
                name: "JIT".into(),
                nonce: [nonce; 16],
                admin,
            },
        )
    }

    fn node(name: &str, country: &str) -> (NodeKeys, NodeCard) {
        let k = NodeKeys::generate().unwrap();
        let c = NodeCard::issue(&k, name, name, country, 1).unwrap();
        (k, c)
    }

    #[test]
    fn genesis_enroll_token_round_trip() {
        let (ak, ac) = node("uk-east", "GB");
        let (bk, bc) = node("ro-police", "RO");
        let (_, cc) = node("europol", "NL");
        let g = RegistryOp::create(
            &ak,
            Hash::ZERO,
            vec![],
            1,
            RegistryBody::Genesis {
                name: "JIT".into(),
                nonce: [1; 16],
                admin: ac,
            },
        )
        .unwrap();
        let fed = g.hash();
        let e = RegistryOp::create(
            &ak,
            fed,
            vec![fed],
            2,
            RegistryBody::Enroll {
                card: bc.clone(),
                admin: false,
            },
        )
        .unwrap();
        // A non-admin cannot enroll.
        let x = RegistryOp::create(
            &bk,
            fed,
            vec![e.hash()],
            3,
            RegistryBody::Enroll {
                card: cc,
                admin: false,
            },
        )
        .unwrap();
        let ops = decode_token(&encode_token(&[x, e, g])).unwrap();
        let st = resolve(fed, &ops).unwrap();
        assert_eq!(st.name, "JIT");
        assert_eq!(st.nodes.len(), 2);
        assert!(st.is_admin(&ak.public().ed25519));
        assert!(st.is_active(&bk.public().ed25519) && !st.is_admin(&bk.public().ed25519));
        assert_eq!(st.rejected.len(), 1);
        assert!(st.by_peer_id(&bc.peer_id()).is_some());
    }

    #[test]
    fn garbled_tokens_and_statements_are_refused() {
        let (ak, ac) = node("uk-east", "GB");
        let g = RegistryOp::create(
            &ak,
            Hash::ZERO,
            vec![],
            1,
            RegistryBody::Genesis {
                name: "JIT".into(),
                nonce: [1; 16],
                admin: ac,
            },
        )
        .unwrap();
        for i in 0..g.bytes().len() {
            let mut b = g.bytes().to_vec();
            b[i] ^= 0x20;
            assert!(
                RegistryOp::decode_verified(&b).is_err(),
                "flip at {i} accepted"
            );
        }
        assert!(decode_token("csjoin1.%%%").is_err());
        assert!(decode_token("hello").is_err());
        assert!(resolve(Hash([7; 32]), &[g]).is_err(), "wrong federation id");
    }

    /// The two-admin policy: on only with two admins; then an enrollment,
    /// a revocation or turning it off takes a second admin's countersignature
    /// (not its own, not a non-admin's, within 72 hours); a federation
    /// revoked down to one admin is not locked.
    #[test]
    fn a_two_admin_policy_takes_a_second_admin_for_enroll_revoke_and_turning_it_off() {
        let (ak, ac) = node("uk-east", "GB");
        let (bk, bc) = node("ro-police", "RO");
        let (ck, cc) = node("europol", "NL");
        let (_, dc) = node("nl-police", "NL");
        let op = statement;
        let g = genesis(&ak, ac, 7);
        let fed = g.hash();
        let enroll = |card: &NodeCard, admin: bool| RegistryBody::Enroll {
            card: card.clone(),
            admin,
        };
        let mut ops = vec![g.clone()];
        let state = |ops: &[RegistryOp]| resolve(fed, ops).unwrap();
        // With one admin the policy cannot go on.
        let early = op(
            &ak,
            fed,
            vec![fed],
            2,
            RegistryBody::Policy { two_admins: true },
        );
        assert!(
            authorize(&state(&ops), &early)
                .unwrap_err()
                .contains("second admin first")
        );
        let b = op(&ak, fed, vec![fed], 2, enroll(&bc, true));
        let c = op(&ak, fed, vec![b.hash()], 3, enroll(&cc, false));
        ops.extend([b.clone(), c.clone()]);
        let on = op(
            &ak,
            fed,
            state(&ops).heads,
            4,
            RegistryBody::Policy { two_admins: true },
        );
        authorize(&state(&ops), &on).unwrap();
        ops.push(on.clone());
        assert!(state(&ops).needs_second_admin());
        // One admin alone: refused, whatever it enrolls or revokes.
        let heads = state(&ops).heads;
        let d_alone = op(&ak, fed, heads.clone(), 5, enroll(&dc, false));
        let st = state(&ops);
        assert!(
            authorize(&st, &d_alone)
                .unwrap_err()
                .contains("second admin")
        );
        let revoke_c = RegistryBody::Revoke {
            node: ck.public().ed25519,
            reason: "left the team".into(),
        };
        let c_alone = op(&bk, fed, heads.clone(), 5, revoke_c.clone());
        assert!(authorize(&st, &c_alone).is_err());
        // Seconded: by itself, by a non-admin, too late: refused.
        let second = |k: &NodeKeys, first: &RegistryOp, t: i64| {
            op(
                k,
                fed,
                heads.clone(),
                t,
                RegistryBody::Seconded {
                    first: Box::new(first.clone()),
                },
            )
        };
        assert!(
            authorize(&st, &second(&ak, &d_alone, 6))
                .unwrap_err()
                .contains("its own")
        );
        assert!(authorize(&st, &second(&ck, &d_alone, 6)).is_err());
        let late = second(&bk, &d_alone, 5 + SECOND_WITHIN_MS + 1);
        assert!(authorize(&st, &late).unwrap_err().contains("expired"));
        // A second admin's countersignature carries it, and survives a round trip.
        let d_seconded = second(&bk, &d_alone, 6);
        authorize(&st, &d_seconded).unwrap();
        let d_seconded = RegistryOp::decode_verified(d_seconded.bytes()).unwrap();
        // The first statement alone, published anyway, is rejected by everyone.
        ops.extend([d_alone.clone(), d_seconded.clone()]);
        let st = state(&ops);
        assert!(st.is_active(&dc.identity.ed25519));
        assert_eq!(st.rejected.len(), 1);
        assert_eq!(st.rejected[0].0, d_alone.hash());
        // The same in any order.
        let mut reversed = ops.clone();
        reversed.reverse();
        let other = state(&reversed);
        assert_eq!(other.heads, st.heads);
        assert!(other.is_active(&dc.identity.ed25519) && other.two_admins);
        // Turning the policy off takes two admins as well.
        let off = op(
            &bk,
            fed,
            st.heads.clone(),
            7,
            RegistryBody::Policy { two_admins: false },
        );
        assert!(authorize(&st, &off).is_err());
        let off2 = op(
            &ak,
            fed,
            st.heads.clone(),
            8,
            RegistryBody::Seconded {
                first: Box::new(off.clone()),
            },
        );
        authorize(&st, &off2).unwrap();
        ops.push(off2);
        let st = state(&ops);
        assert!(!st.two_admins);
        // A statement of a seconded kind cannot itself be seconded or be a genesis.
        assert!(
            RegistryOp::create(
                &bk,
                fed,
                vec![],
                9,
                RegistryBody::Seconded {
                    first: Box::new(g.clone())
                }
            )
            .is_err()
        );
        // Revoking down to one admin leaves that admin able to act alone.
        let mut ops2 = ops[..4].to_vec(); // genesis, b, c, policy on
        let st2 = state(&ops2);
        let revoke_b = op(
            &ak,
            fed,
            st2.heads.clone(),
            10,
            RegistryBody::Revoke {
                node: bk.public().ed25519,
                reason: "key lost".into(),
            },
        );
        let seconded = op(
            &bk,
            fed,
            st2.heads.clone(),
            11,
            RegistryBody::Seconded {
                first: Box::new(revoke_b),
            },
        );
        ops2.push(seconded);
        let st2 = state(&ops2);
        assert!(!st2.is_active(&bk.public().ed25519));
        assert!(st2.two_admins && !st2.needs_second_admin());
        let d = op(&ak, fed, st2.heads.clone(), 12, enroll(&dc, false));
        authorize(&st2, &d).unwrap();
    }

    /// Two admins seconding each other's statements while apart, a lone
    /// statement slipped in beside them, and the policy turned off by a
    /// pair: one state in every one of the 24 orders.
    #[test]
    fn seconded_statements_resolve_alike_in_every_order() {
        let (ak, ac) = node("uk-east", "GB");
        let (bk, bc) = node("ro-police", "RO");
        let (ck, cc) = node("europol", "NL");
        let (_, dc) = node("nl-police", "NL");
        let (_, ec) = node("de-bka", "DE");
        let op = statement;
        let g = genesis(&ak, ac, 9);
        let fed = g.hash();
        let enroll = |card: &NodeCard| RegistryBody::Enroll {
            card: card.clone(),
            admin: false,
        };
        let b = op(
            &ak,
            fed,
            vec![fed],
            2,
            RegistryBody::Enroll {
                card: bc,
                admin: true,
            },
        );
        let c = op(&ak, fed, vec![b.hash()], 3, enroll(&cc));
        let on = op(
            &ak,
            fed,
            vec![c.hash()],
            4,
            RegistryBody::Policy { two_admins: true },
        );
        let base = vec![g, b, c, on.clone()];
        let at = vec![on.hash()];
        let seconded = |k: &NodeKeys, first: RegistryOp, t: i64| {
            op(
                k,
                fed,
                at.clone(),
                t,
                RegistryBody::Seconded {
                    first: Box::new(first),
                },
            )
        };
        let d = seconded(&bk, op(&ak, fed, at.clone(), 5, enroll(&dc)), 6);
        let revoke_c = RegistryBody::Revoke {
            node: ck.public().ed25519,
            reason: "left".into(),
        };
        let rc = seconded(&ak, op(&bk, fed, at.clone(), 5, revoke_c), 7);
        let lone = op(&ak, fed, at.clone(), 5, enroll(&ec));
        let off = seconded(
            &ak,
            op(
                &bk,
                fed,
                at.clone(),
                5,
                RegistryBody::Policy { two_admins: false },
            ),
            8,
        );
        let tail = [d, rc, lone.clone(), off];
        type Seen = (Vec<([u8; 32], bool, bool)>, bool, Vec<Hash>);
        let mut seen: Option<Seen> = None;
        let mut order: Vec<usize> = (0..tail.len()).collect();
        permute(&mut order, 0, &mut |idx| {
            let mut ops = base.clone();
            for &i in idx {
                ops.insert(0, tail[i].clone());
            }
            let st = resolve(fed, &ops).unwrap();
            let got = (
                st.nodes
                    .iter()
                    .map(|(k, n)| (*k, n.admin, n.revoked))
                    .collect(),
                st.two_admins,
                st.heads.clone(),
            );
            assert!(st.rejected.iter().any(|(h, _)| *h == lone.hash()));
            assert!(!st.is_active(&ec.identity.ed25519));
            assert!(st.is_active(&dc.identity.ed25519));
            assert!(!st.is_active(&ck.public().ed25519));
            assert!(!st.two_admins);
            match &seen {
                None => seen = Some(got),
                Some(s) => assert_eq!(s, &got),
            }
        });
    }

    /// An admin that signs alone beside the policy (offline when another
    /// admin turned it on) changes nothing once the two meet, in any order;
    /// what its lone statement granted is void too; what it signed before
    /// the policy, and a pair's statement beside it, stand.
    #[test]
    fn the_two_admin_policy_wins_over_a_lone_statement_signed_beside_it() {
        let (ak, ac) = node("uk-east", "GB");
        let (bk, bc) = node("ro-police", "RO");
        let (xk, xc) = node("rogue-admin", "XX");
        let (_, yc) = node("ghost", "XX");
        let (_, dc) = node("nl-police", "NL");
        let (_, ec) = node("de-bka", "DE");
        let op = statement;
        let g = genesis(&ak, ac, 3);
        let fed = g.hash();
        let b = op(
            &ak,
            fed,
            vec![fed],
            2,
            RegistryBody::Enroll {
                card: bc,
                admin: true,
            },
        );
        // Before the policy, in its past: stands.
        let d = op(
            &bk,
            fed,
            vec![b.hash()],
            3,
            RegistryBody::Enroll {
                card: dc.clone(),
                admin: false,
            },
        );
        let on = op(
            &ak,
            fed,
            vec![d.hash()],
            4,
            RegistryBody::Policy { two_admins: true },
        );
        // B, not having seen the policy, enrolls X as an admin alone; X
        // then enrolls Y. A pair (A seconding B) enrolls E beside it too.
        let x = op(
            &bk,
            fed,
            vec![d.hash()],
            5,
            RegistryBody::Enroll {
                card: xc.clone(),
                admin: true,
            },
        );
        let y = op(
            &xk,
            fed,
            vec![x.hash()],
            6,
            RegistryBody::Enroll {
                card: yc.clone(),
                admin: false,
            },
        );
        let first_e = op(
            &bk,
            fed,
            vec![d.hash()],
            5,
            RegistryBody::Enroll {
                card: ec.clone(),
                admin: false,
            },
        );
        let e = op(
            &ak,
            fed,
            vec![d.hash()],
            6,
            RegistryBody::Seconded {
                first: Box::new(first_e),
            },
        );
        // Alone, before meeting the policy, all of it holds.
        let before = resolve(
            fed,
            &[g.clone(), b.clone(), d.clone(), x.clone(), y.clone()],
        )
        .unwrap();
        assert!(before.is_admin(&xc.identity.ed25519) && before.is_active(&yc.identity.ed25519));
        let all = [g, b, d, on, x.clone(), y.clone(), e];
        let mut order: Vec<usize> = (0..all.len()).collect();
        let mut seen: Option<Vec<Hash>> = None;
        permute(&mut order, 0, &mut |idx| {
            let ops: Vec<RegistryOp> = idx.iter().map(|&i| all[i].clone()).collect();
            let st = resolve(fed, &ops).unwrap();
            assert!(st.two_admins);
            assert!(
                st.is_active(&dc.identity.ed25519),
                "before the policy: stands"
            );
            assert!(
                st.is_active(&ec.identity.ed25519),
                "a pair beside it: stands"
            );
            assert!(!st.is_active(&xc.identity.ed25519), "alone beside it: void");
            assert!(
                !st.is_active(&yc.identity.ed25519),
                "granted by the void: void"
            );
            let x_why = st
                .rejected
                .iter()
                .find(|(h, _)| *h == x.hash())
                .map(|(_, w)| w.clone());
            assert!(x_why.unwrap_or_default().contains("the policy wins"));
            // Still stored: what builds on it is judged without it.
            assert!(st.folds.contains(&x.hash()) && st.folds.contains(&y.hash()));
            match &seen {
                None => seen = Some(st.heads.clone()),
                Some(h) => assert_eq!(h, &st.heads),
            }
        });
    }

    /// Revocation: final, wins over what the revoked admin did concurrently, and
    /// of two admins that revoke each other the senior stays, in any order.
    #[test]
    fn revocation_is_final_and_wins_over_concurrent_statements() {
        let (ak, ac) = node("uk-east", "GB");
        let (bk, bc) = node("ro-police", "RO");
        let (_, cc) = node("europol", "NL");
        let op = |k: &NodeKeys, fed: Hash, parents: Vec<Hash>, body: RegistryBody| {
            RegistryOp::create(k, fed, parents, 1, body).unwrap()
        };
        let g = op(
            &ak,
            Hash::ZERO,
            vec![],
            RegistryBody::Genesis {
                name: "JIT".into(),
                nonce: [2; 16],
                admin: ac,
            },
        );
        let fed = g.hash();
        let b_admin = op(
            &ak,
            fed,
            vec![fed],
            RegistryBody::Enroll {
                card: bc.clone(),
                admin: true,
            },
        );
        let revoke = |by: &NodeKeys, who: [u8; 32]| {
            op(
                by,
                fed,
                vec![b_admin.hash()],
                RegistryBody::Revoke {
                    node: who,
                    reason: "compromised".into(),
                },
            )
        };
        let (a_id, b_id) = (ak.public().ed25519, bk.public().ed25519);
        // B enrolls C while A revokes B, concurrently: B's statement is discarded.
        let b_enrolls_c = op(
            &bk,
            fed,
            vec![b_admin.hash()],
            RegistryBody::Enroll {
                card: cc.clone(),
                admin: false,
            },
        );
        let a_revokes_b = revoke(&ak, b_id);
        for ops in [
            vec![
                g.clone(),
                b_admin.clone(),
                b_enrolls_c.clone(),
                a_revokes_b.clone(),
            ],
            vec![
                a_revokes_b.clone(),
                b_enrolls_c.clone(),
                b_admin.clone(),
                g.clone(),
            ],
        ] {
            let st = resolve(fed, &ops).unwrap();
            assert!(!st.is_active(&b_id));
            assert!(!st.is_active(&cc.identity.ed25519), "discarded enrollment");
            assert_eq!(
                st.nodes[&b_id].revocation.as_ref().map(|r| r.0.as_str()),
                Some("compromised")
            );
        }
        // Mutual revocation: the senior admin (the genesis's author) stays.
        let st = resolve(
            fed,
            &[
                g.clone(),
                b_admin.clone(),
                revoke(&bk, a_id),
                a_revokes_b.clone(),
            ],
        )
        .unwrap();
        assert!(st.is_admin(&a_id) && !st.is_active(&b_id));
        // Final: enrolling a revoked node again is refused.
        let again = op(
            &ak,
            fed,
            vec![a_revokes_b.hash()],
            RegistryBody::Enroll {
                card: bc,
                admin: false,
            },
        );
        let st = resolve(fed, &[g, b_admin, a_revokes_b, again]).unwrap();
        assert!(!st.is_active(&b_id));
        assert!(
            st.rejected
                .iter()
                .any(|(_, why)| why.contains("revocation is final"))
        );
    }

    /// The registry's side of the authority-graph property: admins working
    /// apart enroll, promote and revoke (each other included), syncing now and
    /// then; every arrival order of the statements resolves to one state.
    #[test]
    fn any_order_of_concurrent_statements_resolves_to_one_state() {
        use crate::testing::Rng;
        let people: Vec<(NodeKeys, NodeCard)> =
            (0..5).map(|i| node(&format!("n{i}"), "GB")).collect();
        let summary = |st: &RegistryState| -> String {
            let nodes: Vec<String> = st
                .nodes
                .iter()
                .map(|(k, n)| format!("{}:{}:{}", k[0], n.admin, n.revoked))
                .collect();
            format!("{nodes:?} heads {:?}", st.heads)
        };
        let mut revocations_lost = 0;
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let g = RegistryOp::create(
                &people[0].0,
                Hash::ZERO,
                vec![],
                1,
                RegistryBody::Genesis {
                    name: "JIT".into(),
                    nonce: [seed as u8; 16],
                    admin: people[0].1.clone(),
                },
            )
            .unwrap();
            let fed = g.hash();
            let mut all = vec![g];
            for who in [1, 2] {
                let heads = resolve(fed, &all).unwrap().heads;
                all.push(
                    RegistryOp::create(
                        &people[0].0,
                        fed,
                        heads,
                        2,
                        RegistryBody::Enroll {
                            card: people[who].1.clone(),
                            admin: true,
                        },
                    )
                    .unwrap(),
                );
            }
            let mut known = vec![all.clone(); 3];
            for step in 0..8 {
                let who = rng.below(3);
                if rng.below(4) == 0 {
                    known[who] = all.clone();
                    continue;
                }
                let view = resolve(fed, &known[who]).unwrap();
                let target = rng.below(5);
                let body = if rng.below(2) == 0 {
                    RegistryBody::Revoke {
                        node: people[target].0.public().ed25519,
                        reason: format!("step {step}"),
                    }
                } else {
                    RegistryBody::Enroll {
                        card: people[target].1.clone(),
                        admin: rng.below(2) == 0,
                    }
                };
                let op =
                    RegistryOp::create(&people[who].0, fed, view.heads.clone(), 3 + step, body)
                        .unwrap();
                known[who].push(op.clone());
                all.push(op);
            }
            let reference = resolve(fed, &all).unwrap();
            if reference
                .rejected
                .iter()
                .any(|(_, why)| why.contains("removal wins"))
            {
                revocations_lost += 1;
            }
            for _ in 0..12 {
                let mut shuffled = all.clone();
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, rng.below(i + 1));
                }
                let st = resolve(fed, &shuffled).unwrap();
                assert_eq!(summary(&st), summary(&reference), "seed {seed}");
            }
        }
        assert!(
            revocations_lost > 0,
            "the generator never produced a statement concurrent with its author's revocation"
        );
    }

    /// Issue 21's property on real statements: a key revoked by a more senior
    /// admin, signing anything (revocations of anyone, enrollments, new
    /// admins that act in turn) with any parents that leave its revocation
    /// out, changes no node's state, in any arrival order. Every seed forces
    /// the tie: the stale statements are concurrent with the revocation.
    #[test]
    fn a_key_revoked_by_a_senior_admin_changes_nothing_whatever_it_signs() {
        use crate::testing::Rng;
        let nodes: Vec<(NodeKeys, NodeCard)> = ["a", "b", "c", "d", "e", "m"]
            .iter()
            .map(|n| node(n, "GB"))
            .collect();
        let id = |i: usize| nodes[i].0.public().ed25519;
        let summary = |st: &RegistryState| -> Vec<(u8, bool, bool)> {
            st.nodes
                .iter()
                .map(|(k, n)| (k[0], n.admin, n.revoked))
                .collect()
        };
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let op = |k: usize, fed: Hash, parents: Vec<Hash>, body: RegistryBody| {
                RegistryOp::create(&nodes[k].0, fed, parents, 1, body).unwrap()
            };
            let g = op(
                0,
                Hash::ZERO,
                vec![],
                RegistryBody::Genesis {
                    name: "JIT".into(),
                    nonce: [seed as u8; 16],
                    admin: nodes[0].1.clone(),
                },
            );
            let fed = g.hash();
            // a enrolls b and c as admins, d and e not; then honest
            // statements on branches.
            let mut honest = vec![g.clone()];
            for (i, admin) in [(1, true), (2, true), (3, false), (4, false)] {
                let parent = honest.last().unwrap().hash();
                honest.push(op(
                    0,
                    fed,
                    vec![parent],
                    RegistryBody::Enroll {
                        card: nodes[i].1.clone(),
                        admin,
                    },
                ));
            }
            let base = honest.last().unwrap().hash();
            // x (b or c) is revoked by a, the most senior; the other admin
            // promotes d meanwhile, on another branch.
            let x = 1 + rng.below(2);
            let other = 3 - x;
            let revoke = op(
                0,
                fed,
                vec![base],
                RegistryBody::Revoke {
                    node: id(x),
                    reason: "laptop stolen".into(),
                },
            );
            honest.push(revoke.clone());
            honest.push(op(
                other,
                fed,
                vec![base],
                RegistryBody::Enroll {
                    card: nodes[3].1.clone(),
                    admin: true,
                },
            ));
            // x's stale statements: parents anywhere before the revocation.
            let before: Vec<Hash> = honest[..5].iter().map(|o| o.hash()).collect();
            let mut stale: Vec<RegistryOp> = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let mut parents = vec![before[rng.below(before.len())]];
                if let Some(p) = stale.last().filter(|_| rng.below(2) == 0) {
                    parents.push(p.hash());
                }
                let body = match rng.below(3) {
                    0 => RegistryBody::Revoke {
                        node: id([0, other, 3, 4][rng.below(4)]),
                        reason: "coup".into(),
                    },
                    1 => RegistryBody::Enroll {
                        card: nodes[5].1.clone(),
                        admin: true,
                    },
                    _ => RegistryBody::Enroll {
                        card: nodes[4].1.clone(),
                        admin: true,
                    },
                };
                stale.push(op(x, fed, parents, body));
            }
            // An accomplice x made an admin acts on what x signed.
            if let Some(made) = stale.iter().find(|o| {
                matches!(&o.body, RegistryBody::Enroll { card, .. } if card.identity.ed25519 == id(5))
            }) {
                stale.push(op(
                    5,
                    fed,
                    vec![made.hash()],
                    RegistryBody::Revoke {
                        node: id(0),
                        reason: "coup".into(),
                    },
                ));
            }
            let reference = resolve(fed, &honest).unwrap();
            let mut all: Vec<RegistryOp> = honest.iter().chain(&stale).cloned().collect();
            for _ in 0..6 {
                let st = resolve(fed, &all).unwrap();
                assert_eq!(summary(&st), summary(&reference), "seed {seed}");
                assert!(st.is_admin(&id(0)), "seed {seed}");
                for i in (1..all.len()).rev() {
                    all.swap(i, rng.below(i + 1));
                }
            }
        }
    }
}
