//! The audit log (docs/design.md, "Audit"): who collected, altered, consulted,
//! disclosed, combined or erased which case data, when (RFC 3339 with the
//! offset), from which node, with what outcome, and why.
//!
//! This module owns the chain. Every entry is appended by [`append`] inside
//! the transaction of the action it records, so no action commits without its
//! entry and no entry outlives a rolled-back action. Entries are sealed with
//! the storage key (the audit of a case says who looked at which person) and
//! linked and signed as `casesync_schema::audit` describes, so `audit verify`
//! checks the chain without opening anything. Nothing here edits or deletes an
//! entry; the store's triggers refuse it too.
//!
//! Longer than most files here (about 770 lines): the chain, the events and
//! their sealing, verification and export are one owner of the audit log.

use std::path::Path;

use casesync_crypto::Hash;
use casesync_crypto::hash::{hex, sha256};
use casesync_schema::CaseId;
use casesync_schema::audit::{ChainCheck, ChainFault, ChainRow, link_hash, sign_link};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use casesync_crypto::NodeKeys;
use casesync_schema::NodeCard;

use crate::sealing::StorageKeys;
use crate::store::Store;
use crate::{NodeError, Result, store};

/// What the audit log needs of an unlocked node: its keys (to sign links and
/// heads), its storage keys (to seal entries), its card (its name in each
/// entry) and its store. The node handle (`datadir::Node`) implements it, so
/// this module knows nothing above the store.
pub trait Keyholder {
    fn keys(&self) -> &NodeKeys;
    fn storage(&self) -> &StorageKeys;
    fn card(&self) -> &NodeCard;
    fn store(&self) -> &Store;
}

/// One table for the actions: the variant, its name in the log, its category.
macro_rules! actions {
    ($($variant:ident => $name:literal, $category:literal;)*) => {
        /// What happened, by its name in the log; each belongs to one category
        /// of the law's list (collection, alteration, consultation, disclosure,
        /// combination, erasure) or to the node's own housekeeping (trust,
        /// membership, access, rejection).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Action {
            $($variant,)*
        }

        impl Action {
            /// Every action, for listings and tests.
            pub const ALL: &[Action] = &[$(Action::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            pub fn category(self) -> &'static str {
                match self {
                    $(Action::$variant => $category,)*
                }
            }
        }
    };
}

actions! {
    RecordAdd => "record.add", "collection";
    RecordLink => "record.link", "combination";
    RecordImport => "record.import", "collection";
    RecordEdit => "record.edit", "alteration";
    RecordShow => "record.show", "consultation";
    RecordHistory => "record.history", "consultation";
    // A lead's erasure of a record (the operation), and each node's
    // destruction of its content (with the receipt it signs).
    RecordErase => "record.erase", "erasure";
    RecordErased => "record.erased", "erasure";
    RecordErasure => "record.erasure", "consultation";
    CaseErase => "case.erase", "erasure";
    CaseClose => "case.close", "alteration";
    // A closed case taken out of (or put back in) this node's working lists.
    CaseArchive => "case.archive", "alteration";
    // Handling: the originator's regrade of a record (grading or handling
    // code, with the reason), and its consent that its H2 records go to a
    // member.
    RecordRegrade => "record.regrade", "alteration";
    CaseConsent => "case.consent", "disclosure";
    // Provenance: storage and read receipts sent to an originator, filed
    // by it, and read back there (`record provenance`).
    ProvenanceSend => "provenance.send", "disclosure";
    ProvenanceReceive => "provenance.receive", "collection";
    RecordProvenance => "record.provenance", "consultation";
    // Retention review: what is due (a listing of records), a decision to
    // retain (the reason in the entry), and this node's periods and groups.
    ReviewDue => "review.due", "consultation";
    ReviewRetain => "review.retain", "alteration";
    ReviewPolicy => "review.policy", "trust";
    // Four-eyes: the policy, a request filed by the first person, the list
    // approvers read, and the second person's decision.
    ApprovalPolicy => "approval.policy", "trust";
    // A lead set the case's policy (four-eyes at every member, erasure by
    // originators).
    CasePolicy => "case.policy", "trust";
    ApprovalRequest => "approval.request", "access";
    ApprovalList => "approval.list", "access";
    ApprovalApprove => "approval.approve", "access";
    ApprovalDeny => "approval.deny", "access";
    // The link chart around a record, or a path between two.
    RecordChart => "record.chart", "consultation";
    // A search across the cases a person may see; the query is in the
    // (sealed) entry.
    Search => "search", "consultation";
    // Deconfliction: the asker's entry lists every selector asked and every
    // hit (sealed); the answerer's gives the count only, all it learns.
    Match => "match", "consultation";
    MatchAnswer => "match.answer", "disclosure";
    MatchPolicy => "match.policy", "trust";
    // A signed request to join or share a partner's case after a hit: on
    // the asker a disclosure, on the partner filed under the case it names.
    MatchRequest => "match.request", "disclosure";
    // The custody trail of an evidence file: added (its content stored),
    // received from a partner, opened, re-hashed, listed, exported.
    EvidenceAdd => "evidence.add", "collection";
    EvidenceReceive => "evidence.receive", "collection";
    EvidenceOpen => "evidence.open", "consultation";
    EvidenceVerify => "evidence.verify", "consultation";
    EvidenceCustody => "evidence.custody", "consultation";
    EvidenceExport => "evidence.export", "disclosure";
    // Selectors written for an outside body, each one listed (sealed).
    SelectorsExport => "selectors.export", "disclosure";
    RecordList => "record.list", "consultation";
    CaseShow => "case.show", "consultation";
    BundleExport => "bundle.export", "disclosure";
    BundleImport => "bundle.import", "collection";
    SyncSend => "sync.send", "disclosure";
    SyncReceive => "sync.receive", "collection";
    SyncReject => "sync.reject", "rejection";
    EntriesErased => "entries.erase", "erasure";
    CaseCreate => "case.create", "membership";
    // A member added is given the case keys: the case is disclosed to it.
    MemberAdd => "case.member.add", "disclosure";
    MemberRemove => "case.member.remove", "membership";
    MemberRole => "case.member.role", "membership";
    // A federation admin made a member lead of a case whose leads were revoked.
    LeadAppoint => "case.lead.appoint", "membership";
    // A lead replaced or shared a case key after a merge (concurrent removals).
    KeyRotate => "case.key.rotate", "membership";
    FederationCreate => "federation.create", "trust";
    FederationInvite => "federation.invite", "trust";
    FederationJoin => "federation.join", "trust";
    FederationLeave => "federation.leave", "trust";
    TrustRevoke => "trust.revoke", "trust";
    // A peer's audit log showed an earlier head than before, or another link
    // at the same place: it was cut off, rewritten or restored from a copy.
    PeerAuditRewound => "audit.peer_rewound", "trust";
    Unlock => "node.unlock", "access";
    PassphraseChange => "node.passphrase_change", "access";
    // A copy of the whole store (sealed) and keystore left the node's data dir.
    NodeBackup => "node.backup", "disclosure";
    NodeRestore => "node.restore", "access";
    // The store is not at the file it last wrote (a copy, a restore): this
    // node's next entries start new chains of its logs.
    NewChains => "node.new_chains", "access";
    // Accounts of the web front end and their sessions.
    UserAdd => "user.add", "access";
    UserDisable => "user.disable", "access";
    UserPassword => "user.passwd", "access";
    UserLogin => "user.login", "access";
    UserLogout => "user.logout", "access";
    // A supervisor gave (or took) an analyst need-to-know of a case.
    CaseAssign => "case.assign", "membership";
    CaseUnassign => "case.unassign", "membership";
    AuditList => "audit.list", "consultation";
    AuditExport => "audit.export", "disclosure";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Not done: not allowed, or refused by a check (the detail says which).
    Refused,
}

pub use crate::access::Actor;

/// One audit entry as stored (sealed) and shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339 with the node's UTC offset.
    pub time: String,
    /// The node's PeerId.
    pub node: String,
    pub operator: String,
    pub action: String,
    pub category: String,
    pub case: Option<String>,
    /// Record ids the action collected, altered, showed or disclosed.
    #[serde(default)]
    pub records: Vec<String>,
    /// Log entries moved, as `CASE/AUTHOR/FROM-TO` (seq ranges).
    #[serde(default)]
    pub entries: Vec<String>,
    /// The other node, for transfers and trust and membership operations.
    pub peer: Option<String>,
    pub outcome: Outcome,
    pub justification: Option<String>,
    pub detail: Option<String>,
    /// The second person of a four-eyes operation (`operator` asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// What an action reports to the log; [`append`] adds who, when and where.
#[derive(Clone, Debug)]
pub struct Event {
    action: Action,
    case: Option<CaseId>,
    records: Vec<String>,
    entries: Vec<String>,
    peer: Option<String>,
    outcome: Outcome,
    detail: Option<String>,
    time: Option<String>,
    operator: Option<String>,
}

impl Event {
    pub fn new(action: Action) -> Event {
        Event {
            action,
            case: None,
            records: Vec::new(),
            entries: Vec::new(),
            peer: None,
            outcome: Outcome::Ok,
            detail: None,
            time: None,
            operator: None,
        }
    }
    pub fn case(mut self, case: CaseId) -> Event {
        self.case = Some(case);
        self
    }
    pub fn records<S: ToString>(mut self, ids: impl IntoIterator<Item = S>) -> Event {
        self.records.extend(ids.into_iter().map(|i| i.to_string()));
        self
    }
    pub fn entries(mut self, ranges: Vec<String>) -> Event {
        self.entries = ranges;
        self
    }
    pub fn peer(mut self, peer: impl Into<String>) -> Event {
        self.peer = Some(peer.into());
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = Some(detail.into());
        self
    }
    pub fn refused(mut self, why: impl Into<String>) -> Event {
        self.outcome = Outcome::Refused;
        self.detail = Some(why.into());
        self
    }
}

/// Names log entries compactly: `CASE/AUTHOR/FROM-TO` for each run of seqs of
/// one author in one case.
pub fn entry_ranges(items: impl IntoIterator<Item = (CaseId, [u8; 32], u64)>) -> Vec<String> {
    let mut all: Vec<(CaseId, [u8; 32], u64)> = items.into_iter().collect();
    all.sort_unstable();
    let mut runs = EntryRuns::default();
    for (case, author, seq) in all {
        runs.add(case, author, seq);
    }
    runs.names()
}

/// [`entry_ranges`] of items that arrive sorted (by case, author, seq), one
/// at a time: holds the runs, not the items (an export of millions of
/// entries).
#[derive(Default)]
pub struct EntryRuns(Vec<(CaseId, [u8; 32], u64, u64)>);

impl EntryRuns {
    pub fn add(&mut self, case: CaseId, author: [u8; 32], seq: u64) {
        if let Some((c, a, _, to)) = self.0.last_mut()
            && *c == case
            && *a == author
            && seq <= to.saturating_add(1)
        {
            *to = seq.max(*to);
            return;
        }
        self.0.push((case, author, seq, seq));
    }

    /// Whether `seq` of `author` in `case` was added.
    pub fn holds(&self, case: CaseId, author: &[u8; 32], seq: u64) -> bool {
        let i = self
            .0
            .partition_point(|(c, a, _, to)| (*c, a, *to) < (case, author, seq));
        self.0
            .get(i)
            .is_some_and(|(c, a, from, _)| *c == case && a == author && *from <= seq)
    }

    pub fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(case, author, from, to)| {
                let who =
                    casesync_crypto::identity::peer_id_of(author).unwrap_or_else(|_| hex(author));
                format!("{case}/{who}/{from}-{to}")
            })
            .collect()
    }
}

/// Appends `ev` to the chain inside the caller's transaction `tx`: call it in
/// the same transaction as the action it records.
pub fn append(node: &impl Keyholder, actor: &Actor, tx: &Connection, ev: Event) -> Result<u64> {
    let (seq, prev) = match store::audit_head(tx)? {
        Some(h) => (h.seq + 1, h.hash),
        None => (1, Hash::ZERO),
    };
    let entry = AuditEntry {
        seq,
        time: ev.time.unwrap_or_else(|| crate::clock::now().1),
        node: node.card().peer_id(),
        operator: ev.operator.unwrap_or_else(|| actor.operator.clone()),
        action: ev.action.name().into(),
        category: ev.action.category().into(),
        case: ev.case.map(|c| c.to_string()),
        records: ev.records,
        entries: ev.entries,
        peer: ev.peer,
        outcome: ev.outcome,
        justification: actor.justification.clone(),
        detail: ev.detail,
        approved_by: actor.approved_by.clone(),
    };
    let json = serde_json::to_vec(&entry).map_err(|e| NodeError::Io(e.to_string()))?;
    let sealed = node.storage().seal_audit(seq, &json)?;
    let hash = link_hash(seq, &prev, &sealed);
    let signature = sign_link(node.keys(), &hash);
    let case_index = ev.case.map(|c| node.storage().audit_case_index(&c.0));
    let head = casesync_schema::audit::sign_head(node.keys(), seq, &hash);
    store::audit_append(
        tx,
        seq,
        case_index.as_ref(),
        &sealed,
        &hash,
        &signature,
        &head,
    )?;
    Ok(seq)
}

/// Appends `ev` in a transaction of its own: for what is not done (a refusal),
/// whose action left nothing else to commit.
pub fn append_alone(node: &impl Keyholder, actor: &Actor, ev: Event) -> Result<u64> {
    node.store().write(|tx| append(node, actor, tx, ev))
}

/// Runs an operation a person asked for and, if it fails, records the refusal
/// in the audit log in a transaction of its own (the failed operation rolled
/// back and left nothing else): "logged as refused". The engine's operations
/// run themselves through this, so no front end can forget a refusal.
pub fn audited<T>(
    node: &impl Keyholder,
    actor: &Actor,
    action: Action,
    case: Option<&str>,
    record: Option<&str>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let r = f();
    if let Err(e) = &r {
        let mut ev = Event::new(action).refused(e.to_string());
        if let Some(c) = case.and_then(|c| c.trim().parse::<CaseId>().ok()) {
            ev = ev.case(c);
        }
        if let Some(rec) = record {
            ev = ev.records([rec.trim()]);
        }
        if let Err(ae) = append_alone(node, actor, ev) {
            tracing::warn!(target: "casesync", "the refusal could not be recorded in the audit log: {ae}");
        }
    }
    r
}

/// This node's signed audit head, encoded for a peer (empty before any entry).
pub fn own_head(conn: &Connection) -> Result<Vec<u8>> {
    Ok(store::audit_head(conn)?
        .map(|h| h.encode())
        .unwrap_or_default())
}

/// What [`note_peer_head`] found: a line for the log, and the head the peer
/// showed before (encoded), to tell it its store went back.
#[derive(Default)]
pub struct PeerHeadNote {
    pub alarm: Option<String>,
    pub earlier: Vec<u8>,
}

/// Notes the signed audit head `peer` (its key) showed. A head that is not the
/// peer's, or malformed, is ignored. An earlier head than the last one seen,
/// or another link at the same place, is recorded in this node's audit log
/// and returned as a line for the log: the peer's audit log was cut off,
/// rewritten or restored from a copy. Writes only when something changed.
pub fn note_peer_head(
    node: &impl Keyholder,
    actor: &Actor,
    peer: &[u8; 32],
    bytes: &[u8],
) -> Result<PeerHeadNote> {
    use casesync_schema::audit::{Head, HeadChange, compare_heads};
    let Some(now) = Head::decode(bytes).filter(|h| h.is_signed_by(peer)) else {
        return Ok(PeerHeadNote::default());
    };
    let seen = |conn: &Connection| -> Result<(HeadChange, Vec<u8>)> {
        let stored = store::peer_audit_head(conn, peer)?.unwrap_or_default();
        let before = Head::decode(&stored);
        Ok((compare_heads(before.as_ref(), &now), stored))
    };
    // Read-only first: an unchanged head (every in-sync round) costs no write.
    if seen(node.store().conn())?.0 == HeadChange::Same {
        return Ok(PeerHeadNote::default());
    }
    let who = casesync_crypto::identity::peer_id_of(peer).unwrap_or_else(|_| hex(peer));
    // Compared again under the write lock: requests are answered concurrently,
    // and one rewind is one alarm.
    node.store().write(|tx| -> Result<PeerHeadNote> {
        let (change, earlier) = seen(tx)?;
        let alarm = match change {
            HeadChange::Same => return Ok(PeerHeadNote::default()),
            HeadChange::Forward => None,
            HeadChange::Rewound { from, to } => Some(format!(
                "the audit log of {who} went back from entry {from} to {to}: entries were cut off, or the node was restored from an older copy"
            )),
            HeadChange::Rewritten { seq } => Some(format!(
                "the audit log of {who} holds another entry {seq} than it showed before: it was rewritten"
            )),
        };
        store::put_peer_audit_head(tx, peer, now.seq, &now.encode())?;
        if let Some(a) = &alarm {
            append(
                node,
                actor,
                tx,
                Event::new(Action::PeerAuditRewound)
                    .peer(who.clone())
                    .refused(a.clone()),
            )?;
        }
        Ok(PeerHeadNote {
            earlier: if alarm.is_some() { earlier } else { Vec::new() },
            alarm,
        })
    })
}

/// Context of a pending event sealed to the node's own X25519 key.
const PENDING_CONTEXT: &[u8] = b"casesync/audit-pending/v1";
const PENDING_PREFIX: &str = "sealed1:";

/// A wrong passphrase: recorded before anything can be signed or sealed with
/// the storage key, so it waits in `audit_pending` and joins the chain at the
/// next unlock ([`fold_pending`]). It is sealed to the node's own public
/// X25519 key (from its stored card), so the operator name cannot be read
/// without the passphrase; anyone can seal to a public key, so it is folded as
/// unauthenticated.
pub fn note_failed_unlock(store: &store::Store, operator: &str, reason: &str) -> Result<()> {
    let card = crate::files::stored_card(store.conn())?;
    let pending = serde_json::json!({
        "time": crate::clock::now().1,
        "operator": operator,
        "detail": reason,
    });
    let key = casesync_crypto::SymmetricKey::generate()?;
    let mut sealed = casesync_crypto::wrap::wrap_key(&key, &card.identity.x25519, PENDING_CONTEXT)?;
    sealed.extend(key.seal(PENDING_CONTEXT, pending.to_string().as_bytes())?);
    let text = format!("{PENDING_PREFIX}{}", casesync_crypto::hash::hex(&sealed));
    store.write(|tx| store::insert_audit_pending(tx, &text))?;
    Ok(())
}

/// Opens a pending event written by [`note_failed_unlock`]; `None` if it was
/// not sealed to this node (a row someone inserted by hand).
fn open_pending(node: &impl Keyholder, text: &str) -> Option<serde_json::Value> {
    let bytes = casesync_crypto::hash::from_hex(text.strip_prefix(PENDING_PREFIX)?)?;
    let wrapped = bytes.get(..casesync_crypto::wrap::WRAPPED_LEN)?;
    let sealed = bytes.get(casesync_crypto::wrap::WRAPPED_LEN..)?;
    let key = casesync_crypto::wrap::unwrap_key(node.keys(), wrapped, PENDING_CONTEXT).ok()?;
    let plain = key.open(PENDING_CONTEXT, sealed).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// Moves the events recorded while the node was locked into the chain. Their
/// time and operator are what whoever ran the command claimed, and nothing
/// signed them: each is recorded at the time it is folded, marked
/// unauthenticated, with the claims in its detail.
pub fn fold_pending(node: &impl Keyholder, actor: &Actor) -> Result<()> {
    if store::audit_pending(node.store().conn())?.is_empty() {
        return Ok(());
    }
    node.store().write(|tx| -> Result<()> {
        for (row, text) in store::audit_pending(tx)? {
            let ev = match open_pending(node, &text) {
                Some(v) => {
                    let field = |k: &str| {
                        v.get(k)
                            .and_then(|x| x.as_str())
                            .map(|s| s.chars().take(200).collect::<String>())
                    };
                    let operator = field("operator").unwrap_or_default();
                    let mut ev = Event::new(Action::Unlock).refused(format!(
                        "{}; unauthenticated: recorded while the node was locked, claimed at {} by {operator:?}",
                        field("detail").unwrap_or_else(|| "wrong passphrase".into()),
                        field("time").unwrap_or_default(),
                    ));
                    ev.operator = Some(operator);
                    ev
                }
                None => Event::new(Action::Unlock).refused(
                    "unauthenticated: a pending event not sealed to this node was found in the store (written by hand?); its content is not trusted",
                ),
            };
            append(node, actor, tx, ev)?;
            store::delete_audit_pending(tx, row)?;
        }
        Ok(())
    })
}

/// Logs held back from `peer` by handling rules: one refused entry per case,
/// naming the author and the first entry withheld.
pub fn withheld(
    node: &impl Keyholder,
    actor: &Actor,
    tx: &Connection,
    action: Action,
    peer: Option<&str>,
    logs: &[(CaseId, [u8; 32], u64)],
) -> Result<()> {
    for (case, author, seq) in logs {
        let who = casesync_crypto::identity::peer_id_of(author).unwrap_or_else(|_| hex(author));
        let mut ev = Event::new(action).case(*case).refused(format!(
            "withheld {who}'s entries from seq {seq} on: a record they carry is not releasable to the receiver"
        ));
        if let Some(p) = peer {
            ev = ev.peer(p);
        }
        append(node, actor, tx, ev)?;
    }
    Ok(())
}

/// A disclosure of `body` to `peer` (or to whoever holds a bundle file):
/// one entry per case, naming the entries in `sent` and the control operations.
pub fn disclosed(
    node: &impl Keyholder,
    actor: &Actor,
    tx: &Connection,
    action: Action,
    peer: Option<&str>,
    body: &casesync_schema::bundle::BundleBody,
    sent: &[(CaseId, [u8; 32], u64)],
) -> Result<()> {
    let cases: Vec<CaseDisclosure> = body
        .cases
        .iter()
        .map(|c| CaseDisclosure {
            case: c.case,
            entries: entry_ranges(sent.iter().filter(|s| s.0 == c.case).copied()),
            entry_count: c.entries.len(),
            control_ops: c.control_ops.len(),
        })
        .collect();
    disclosed_cases(
        node,
        actor,
        tx,
        action,
        peer,
        &cases,
        body.registry_ops.len(),
    )
}

/// What one disclosure holds of one case: its entries (as
/// [`entry_ranges`] names them), how many, and how many control operations.
pub struct CaseDisclosure {
    pub case: CaseId,
    pub entries: Vec<String>,
    pub entry_count: usize,
    pub control_ops: usize,
}

/// [`disclosed`] from what each case holds, for a disclosure recorded
/// before its items are read (a bundle export, which writes each part as
/// it is made).
pub fn disclosed_cases(
    node: &impl Keyholder,
    actor: &Actor,
    tx: &Connection,
    action: Action,
    peer: Option<&str>,
    cases: &[CaseDisclosure],
    registry_ops: usize,
) -> Result<()> {
    for c in cases {
        let mut ev = Event::new(action)
            .case(c.case)
            .entries(c.entries.clone())
            .detail(format!(
                "{} entries, {} control operations",
                c.entry_count, c.control_ops
            ));
        if let Some(p) = peer {
            ev = ev.peer(p);
        }
        append(node, actor, tx, ev)?;
    }
    if cases.is_empty() && registry_ops > 0 {
        let mut ev =
            Event::new(action).detail(format!("{registry_ops} registry statements (no case data)"));
        if let Some(p) = peer {
            ev = ev.peer(p);
        }
        append(node, actor, tx, ev)?;
    }
    Ok(())
}

/// What `audit verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub fault: Option<ChainFault>,
}

/// Re-checks the whole chain: seq order, every link hash, every signature
/// against the node's key (from its stored card), and the recorded head.
/// Needs no passphrase: nothing is opened.
pub fn verify(conn: &Connection) -> Result<VerifyReport> {
    let key = crate::files::stored_card(conn)?.identity.ed25519;
    let mut check = ChainCheck::new(&key);
    let mut count = 0u64;
    let mut fault = None;
    store::for_each_audit_row(conn, None, |r| -> Result<()> {
        if fault.is_none() {
            let row = ChainRow {
                seq: r.seq,
                sealed: r.sealed,
                hash: r.hash,
                signature: r.signature,
            };
            match check.row(&row) {
                Ok(()) => count += 1,
                Err(f) => fault = Some(f),
            }
        }
        Ok(())
    })?;
    if fault.is_none()
        && let Err(f) = check.finish(store::audit_head(conn)?)
    {
        fault = Some(f);
    }
    Ok(VerifyReport {
        entries: count,
        fault,
    })
}

/// Which entries `audit list` shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub case: Option<CaseId>,
    pub since: Option<OffsetDateTime>,
    /// An action name (`record.show`) or a category (`consultation`).
    pub action: Option<String>,
    pub operator: Option<String>,
}

/// Parses `--since` (RFC 3339, with an offset or `Z`).
pub fn parse_since(text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        NodeError::Refused(format!(
            "--since {text:?} is not an RFC 3339 time ({e}); write e.g. 2026-11-27T09:00:00+00:00"
        ))
    })
}

/// `audit list`: the entries that pass `filter`, opened, in seq order; for
/// an analyst, only their own. Reading the audit log is itself recorded (a
/// consultation: who looked at whose actions), a refusal too.
pub fn list(node: &impl Keyholder, actor: &Actor, filter: &Filter) -> Result<Vec<AuditEntry>> {
    audited(node, actor, Action::AuditList, None, None, || {
        // A person who may not see the whole log (an analyst) sees their own
        // entries: what they did, and what was refused to them.
        let own;
        let filter = if actor.require(crate::access::Need::Node).is_err() {
            own = Filter {
                operator: Some(actor.operator.clone()),
                ..filter.clone()
            };
            &own
        } else {
            filter
        };
        let entries = read(node, filter)?;
        let mut ev =
            Event::new(Action::AuditList).detail(format!("{} entries shown", entries.len()));
        if let Some(c) = filter.case {
            ev = ev.case(c);
        }
        append_alone(node, actor, ev)?;
        Ok(entries)
    })
}

/// The entries that pass `filter`, opened, in seq order, without recording
/// the reading: for [`export`], which records itself, and for tests.
pub fn read(node: &impl Keyholder, filter: &Filter) -> Result<Vec<AuditEntry>> {
    let conn = node.store().conn();
    let index = filter.case.map(|c| node.storage().audit_case_index(&c.0));
    let mut out = Vec::new();
    store::for_each_audit_row(conn, index.as_ref(), |r| -> Result<()> {
        let json = node.storage().open_audit(r.seq, &r.sealed)?;
        let e: AuditEntry = serde_json::from_slice(&json).map_err(|e| {
            NodeError::Integrity(format!("audit entry {} does not parse: {e}", r.seq))
        })?;
        if matches(&e, filter) {
            out.push(e);
        }
        Ok(())
    })?;
    Ok(out)
}

fn matches(e: &AuditEntry, f: &Filter) -> bool {
    if let Some(a) = &f.action
        && a != &e.action
        && a != &e.category
    {
        return false;
    }
    if let Some(o) = &f.operator
        && o != &e.operator
    {
        return false;
    }
    if let Some(since) = f.since {
        match OffsetDateTime::parse(&e.time, &Rfc3339) {
            Ok(t) if t >= since => {}
            _ => return false,
        }
    }
    true
}

/// What `audit export` wrote.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub entries: usize,
    pub chain_entries: u64,
    pub chain_fault: Option<ChainFault>,
}

/// Writes one case's audit entries to `out` as JSON Lines for a data
/// protection officer: a header line (node, case, time, the result of checking
/// the whole chain, the SHA-256 of the lines that follow, and the node's
/// signature over the header), then one entry per line.
pub fn export(
    node: &impl Keyholder,
    actor: &Actor,
    case: CaseId,
    out: &Path,
) -> Result<ExportReport> {
    let (file, report) = export_bytes(node, actor, case)?;
    // Who consulted which person: readable by the owner only.
    crate::files::write_private_file(out, &file)?;
    Ok(report)
}

/// [`export`]'s file, in memory (the web UI's download).
pub fn export_bytes(
    node: &impl Keyholder,
    actor: &Actor,
    case: CaseId,
) -> Result<(Vec<u8>, ExportReport)> {
    let chain = verify(node.store().conn())?;
    let entries = read(
        node,
        &Filter {
            case: Some(case),
            ..Default::default()
        },
    )?;
    let mut body = Vec::new();
    for e in &entries {
        serde_json::to_writer(&mut body, e).map_err(|e| NodeError::Io(e.to_string()))?;
        body.push(b'\n');
    }
    let mut header = serde_json::json!({
        "format": "casesync-audit-export/1",
        "node": node.card().peer_id(),
        "node_name": node.card().name,
        "node_key": hex(&node.keys().public().ed25519),
        "case": case.to_string(),
        "exported_at": crate::clock::now().1,
        "operator": actor.operator,
        "entries": entries.len(),
        "chain": {
            "verified": chain.fault.is_none(),
            "entries": chain.entries,
            "first_fault": chain.fault,
        },
        "body_sha256": sha256(&body).to_hex(),
        "retention": "kept at least three years; casesync never deletes audit entries",
    });
    let signed = serde_json::to_vec(&header).map_err(|e| NodeError::Io(e.to_string()))?;
    header["signature"] = hex(&node.keys().sign(EXPORT_CONTEXT, &signed)).into();
    let mut file = serde_json::to_vec(&header).map_err(|e| NodeError::Io(e.to_string()))?;
    file.push(b'\n');
    file.extend_from_slice(&body);
    let report = ExportReport {
        entries: entries.len(),
        chain_entries: chain.entries,
        chain_fault: chain.fault,
    };
    Ok((file, report))
}

/// Context of the export header's signature: the node key signs the header
/// (without its `signature` field) as serialized.
pub const EXPORT_CONTEXT: &[u8] = b"casesync/audit-export/v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ranges_group_runs_per_author_and_case() {
        let (c1, c2) = (CaseId([1; 16]), CaseId([2; 16]));
        let a = casesync_crypto::NodeKeys::generate()
            .unwrap()
            .public()
            .ed25519;
        let r = entry_ranges([(c1, a, 3), (c1, a, 1), (c1, a, 2), (c1, a, 7), (c2, a, 1)]);
        let who = casesync_crypto::identity::peer_id_of(&a).unwrap();
        assert_eq!(
            r,
            vec![
                format!("{c1}/{who}/1-3"),
                format!("{c1}/{who}/7-7"),
                format!("{c2}/{who}/1-1"),
            ]
        );
    }

    /// An export sends exactly what its audit entry names (`bundle::export`):
    /// not an entry stored since in a gap or past the end.
    #[test]
    fn entry_runs_hold_exactly_what_was_added() {
        let (c1, c2) = (CaseId([1; 16]), CaseId([2; 16]));
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut runs = EntryRuns::default();
        for (case, author, seq) in [
            (c1, a, 1),
            (c1, a, 2),
            (c1, a, 3),
            (c1, a, 5),
            (c1, a, 6),
            (c1, a, 7),
            (c1, b, 2),
            (c2, a, 4),
        ] {
            runs.add(case, author, seq);
        }
        let held = |case, author: &[u8; 32]| -> Vec<u64> {
            (0..10).filter(|s| runs.holds(case, author, *s)).collect()
        };
        assert_eq!(held(c1, &a), vec![1, 2, 3, 5, 6, 7]);
        assert_eq!(held(c1, &b), vec![2]);
        assert_eq!(held(c2, &a), vec![4]);
        assert!(held(c2, &b).is_empty());
        assert_eq!(runs.names().len(), 4);
    }

    #[test]
    fn every_action_has_a_distinct_name_and_a_category() {
        let names: std::collections::BTreeSet<_> = Action::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names.len(), Action::ALL.len());
        for a in Action::ALL {
            assert!(!a.category().is_empty());
        }
    }
}
