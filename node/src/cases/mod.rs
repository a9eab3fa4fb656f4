//! Cases: each case's control log (create, members, key epochs) and its keys.
//!
//! The control log is stored as the signed operations; the case's state (members,
//! roles, epochs) is always recomputed with the pure `control::resolve`, so what a
//! node believes about a case is a function of the operations it holds.

use casesync_crypto::{Hash, NodeKeys, SymmetricKey, wrap};
use casesync_schema::control::{
    self, CaseMeta, CaseState, ControlBody, ControlOp, FederationFacts, LogEnd, Role,
};
use casesync_schema::record::ReleasableTo;
use casesync_schema::{CaseId, NodeCard};
use rusqlite::Connection;

use crate::audit::{self, Action, Event};
use crate::{Node, NodeError, Result, store};

mod handling;
mod members;

pub use handling::*;
pub use members::*;

pub const MAX_TITLE: usize = 200;

/// A case as this node sees it.
#[derive(Clone)]
pub struct Case {
    pub case_ref: i64,
    pub id: CaseId,
    pub meta: CaseMeta,
    pub state: CaseState,
}

impl Case {
    pub fn my_role(&self, node: &Node) -> Option<Role> {
        self.state.role_of(&node.keys.public().ed25519)
    }
}

fn check_title(title: &str) -> Result<String> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > MAX_TITLE || t.chars().any(char::is_control) {
        return Err(NodeError::Refused(format!(
            "the case title must be 1-{MAX_TITLE} printable characters"
        )));
    }
    Ok(t.to_string())
}

/// Creates a case led by this node, with its first key epoch (audited, a
/// refusal too).
pub fn create(
    node: &Node,
    actor: &crate::audit::Actor,
    title: &str,
    require_justification: bool,
) -> Result<CaseId> {
    audit::audited(node, actor, Action::CaseCreate, None, None, || {
        actor.require(crate::access::Need::CreateCase)?;
        create_case(node, actor, title, require_justification)
    })
}

fn create_case(
    node: &Node,
    actor: &crate::audit::Actor,
    title: &str,
    require_justification: bool,
) -> Result<CaseId> {
    let title = check_title(title)?;
    let mut nonce = [0u8; 16];
    casesync_crypto::random_bytes(&mut nonce)?;
    let me = node.keys.public().ed25519;
    let case = control::case_id_for(&me, &nonce);
    let key = SymmetricKey::generate()?;
    let salt = control::epoch_salt(&case, &key);
    let meta = CaseMeta {
        title,
        require_justification,
    };
    let sealed_meta = meta.seal(&case, &key)?;
    let (ms, _) = crate::clock::now();
    let op = ControlOp::create(
        &node.keys,
        case,
        vec![],
        ms,
        ControlBody::Create {
            nonce,
            creator: node.card.clone(),
            salt,
            wraps: control::wrap_to(&key, &case, &salt, &[&node.card])?,
            sealed_meta,
        },
    )?;
    let local_meta = encode_local_meta(&meta);
    let sealed_local = node.storage.seal_case_meta(&case.0, &local_meta)?;
    let sealed_key = node.storage.seal_epoch_key(&case.0, &op.hash().0, &key)?;
    node.store.write(|tx| -> Result<()> {
        let case_ref = store::insert_case(tx, &case.0, &sealed_local)?;
        store::insert_control_op(tx, case_ref, &op.hash(), op.bytes())?;
        store::put_epoch_key(tx, case_ref, &op.hash(), &sealed_key)?;
        let ev = Event::new(Action::CaseCreate)
            .case(case)
            .detail(if require_justification {
                "every action on this case requires a justification"
            } else {
                "no justification required"
            });
        audit::append(node, actor, tx, ev)?;
        Ok(())
    })?;
    Ok(case)
}

pub(crate) fn encode_local_meta(m: &CaseMeta) -> Vec<u8> {
    let mut w = casesync_schema::codec::Writer::new();
    w.u8(1);
    w.str(&m.title);
    w.u8(m.require_justification as u8);
    w.buf
}

fn decode_local_meta(b: &[u8]) -> Result<CaseMeta> {
    let mut r = casesync_schema::codec::Reader::new(b, "case metadata");
    let _v = r.u8()?;
    let title = r.str(64 * 1024)?.to_string();
    let require_justification = r.u8()? != 0;
    Ok(CaseMeta {
        title,
        require_justification,
    })
}

/// Parses a case id given on the command line and loads the case.
pub fn load_by_text(node: &Node, conn: &Connection, text: &str) -> Result<Case> {
    let id: CaseId = text.trim().parse().map_err(|_| {
        NodeError::Refused(format!(
            "`{}` is not a case id (see `casesync case list`)",
            crate::short(text)
        ))
    })?;
    load(node, conn, &id)
}

pub fn load(node: &Node, conn: &Connection, id: &CaseId) -> Result<Case> {
    let row = store::case_by_id(conn, &id.0)?.ok_or_else(|| {
        NodeError::Refused(format!("unknown case {id} (see `casesync case list`)"))
    })?;
    load_row(node, conn, row)
}

/// What a case's resolution takes from the registry: its active admins and
/// its revoked nodes (an admin appoints a lead when every lead is revoked).
pub fn federation_facts(conn: &Connection) -> Result<FederationFacts> {
    Ok(match crate::trust::load(conn)? {
        None => FederationFacts::default(),
        Some(r) => FederationFacts {
            admins: r
                .nodes
                .iter()
                .filter(|(_, n)| n.admin && !n.revoked)
                .map(|(k, _)| *k)
                .collect(),
            revoked: r
                .nodes
                .iter()
                .filter(|(_, n)| n.revoked)
                .map(|(k, _)| *k)
                .collect(),
        },
    })
}

/// The case stored at `case_ref`.
pub(crate) fn load_ref(node: &Node, conn: &Connection, case_ref: i64) -> Result<Case> {
    let row = store::case_by_ref(conn, case_ref)?
        .ok_or_else(|| NodeError::Integrity(format!("no case at row {case_ref}")))?;
    load_row(node, conn, row)
}

fn load_row(node: &Node, conn: &Connection, row: store::CaseRow) -> Result<Case> {
    let id = CaseId(row.case_id);
    let hashes = store::control_op_hashes(conn, row.case_ref)?;
    let facts = federation_facts(conn)?;
    let facts_digest = facts.digest();
    let mut parts: Vec<&[u8]> = vec![&row.case_id, &facts_digest.0];
    parts.extend(hashes.iter().map(|h| &h.0[..]));
    let fingerprint = casesync_crypto::hash::sha256_parts(&parts);
    let state = match node.cases.get(&id, &fingerprint) {
        Some(s) => s,
        None => {
            let s = resolve_stored(conn, row.case_ref, id, &facts)?;
            node.cases.put(&id, fingerprint, &s);
            s
        }
    };
    let meta = decode_local_meta(
        &node
            .storage
            .open_case_meta(&row.case_id, &row.sealed_meta)?,
    )?;
    Ok(Case {
        case_ref: row.case_ref,
        id,
        meta,
        state,
    })
}

/// Verifies every stored control operation of a case and resolves them.
fn resolve_stored(
    conn: &Connection,
    case_ref: i64,
    id: CaseId,
    facts: &FederationFacts,
) -> Result<CaseState> {
    let ops = store::control_ops(conn, case_ref)?
        .into_iter()
        .map(|o| {
            let op = ControlOp::decode_verified(&o.bytes).map_err(|e| {
                NodeError::Integrity(format!("control operation {} of case {id} failed verification: {e}; run `casesync log verify`", o.hash.short()))
            })?;
            if !op.hash().ct_eq(&o.hash) {
                return Err(NodeError::Integrity(format!("control operation {} of case {id} does not match its hash", o.hash.short())));
            }
            Ok(op)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(control::resolve_in(id, &ops, facts)?)
}

/// The cases `actor` may read (`case list`): every case for the node's
/// operator and a supervisor, the assigned ones for an analyst, none for an
/// admin.
pub fn list_for(node: &Node, actor: &audit::Actor) -> Result<Vec<Case>> {
    let conn = node.store.conn();
    let mut out = Vec::new();
    for c in list(node)? {
        if actor.may_read(conn, c.case_ref)? {
            out.push(c);
        }
    }
    Ok(out)
}

/// Where this node notes that it archived `case` (a time, 0 when not).
pub(crate) fn archive_key(case: &Case) -> String {
    format!("archived.{}", case.id)
}

/// When this node archived `case`, if it did (`erasure::archive_case`).
pub fn archived_at(conn: &Connection, case: &Case) -> Result<Option<i64>> {
    Ok(Some(store::meta_stamp(conn, &archive_key(case))?).filter(|ms| *ms > 0))
}

/// The cases of a person's working list: [`list_for`] without the cases
/// this node archived, unless `all`.
pub fn working_list(node: &Node, actor: &audit::Actor, all: bool) -> Result<Vec<Case>> {
    let conn = node.store.conn();
    let mut out = Vec::new();
    for c in list_for(node, actor)? {
        if all || archived_at(conn, &c)?.is_none() {
            out.push(c);
        }
    }
    Ok(out)
}

/// Every case this node holds, for the node's own work (sync, a lead's
/// repairs); a person's list is [`list_for`].
pub fn list(node: &Node) -> Result<Vec<Case>> {
    let conn = node.store.conn();
    load_rows(node, conn, store::list_cases(conn)?)
}

/// The cases that changed after `mark` ([`store::cases_changed_since`]): what
/// a push to a peer known to hold everything up to `mark` looks at.
pub fn changed_since(node: &Node, mark: &store::ChangeMark) -> Result<Vec<Case>> {
    let conn = node.store.conn();
    load_rows(node, conn, store::cases_changed_since(conn, mark)?)
}

/// The cases holding entries with parts withheld from this node
/// ([`store::cases_with_withheld_parts`]).
pub fn with_withheld_parts(node: &Node) -> Result<Vec<Case>> {
    let conn = node.store.conn();
    load_rows(node, conn, store::cases_with_withheld_parts(conn)?)
}

fn load_rows(node: &Node, conn: &Connection, rows: Vec<store::CaseRow>) -> Result<Vec<Case>> {
    rows.into_iter()
        .map(|row| load_row(node, conn, row))
        .collect()
}

/// Why a member was removed, opened with the key of the epoch its removal
/// started; `None` where this node holds no such key.
pub fn removal_reason(
    node: &Node,
    conn: &Connection,
    case: &Case,
    removal: &control::Removal,
) -> Option<String> {
    let salt = case.state.epoch(&removal.by)?.salt;
    let key = epoch_key(node, conn, case, &removal.by).ok()?;
    control::open_reason(&case.id, &salt, &key, &removal.sealed_reason).ok()
}

/// The key of `epoch`, from the local cache or by unwrapping this node's share.
pub fn epoch_key(
    node: &Node,
    conn: &Connection,
    case: &Case,
    epoch: &Hash,
) -> Result<SymmetricKey> {
    for (e, sealed) in store::epoch_keys(conn, case.case_ref)? {
        if &e == epoch {
            return node.storage.open_epoch_key(&case.id.0, &e.0, &sealed);
        }
    }
    let info = case.state.epoch(epoch).ok_or_else(|| {
        NodeError::Refused(format!(
            "case {} has no key epoch {}",
            case.id,
            epoch.short()
        ))
    })?;
    unwrap_epoch(&node.keys, &case.id, info)
}

/// Unwraps this node's copy of an epoch key from the control log.
pub fn unwrap_epoch(
    keys: &NodeKeys,
    case: &CaseId,
    info: &control::EpochInfo,
) -> Result<SymmetricKey> {
    let me = keys.public().ed25519;
    let wrapped = info.wraps.get(&me).ok_or_else(|| {
        NodeError::Refused(format!(
            "this node holds no key for epoch {} of case {case}",
            info.id.short()
        ))
    })?;
    let key = wrap::unwrap_key(keys, wrapped, &control::wrap_context(case, &info.salt))?;
    if !control::key_matches_epoch(case, &info.salt, &key) {
        return Err(NodeError::Refused(format!(
            "the key of epoch {} of case {case} wrapped to this node is not the one its lead committed to (a lead gave members different keys): nothing is read or written under it; a lead must rotate the key",
            info.id.short()
        )));
    }
    Ok(key)
}

/// The newest epoch this node holds a key for and that only current members
/// can read: what new entries are sealed with. After two leads removed members
/// concurrently, every epoch may still be wrapped to a removed node until a
/// lead rotates; nothing is sealed until then.
pub fn current_epoch(node: &Node, conn: &Connection, case: &Case) -> Result<(Hash, SymmetricKey)> {
    let mut exposed = false;
    for e in case.state.epochs.iter().rev() {
        if !case.state.outside_readers(e).is_empty() {
            exposed = true;
            continue;
        }
        if let Ok(k) = epoch_key(node, conn, case, &e.id) {
            return Ok((e.id, k));
        }
    }
    if exposed {
        return Err(NodeError::Refused(format!(
            "case {}'s newest key can still be read by a removed member (two leads removed members at once); a lead replaces it when it next syncs or runs `casesync serve`: sync with a lead, then try again",
            case.id
        )));
    }
    Err(NodeError::Refused(format!(
        "this node holds no key for case {}",
        case.id
    )))
}

/// A case as `case show --json`, `case list --json` and the API show it.
#[derive(Debug, serde::Serialize)]
pub struct CaseSummary {
    pub id: String,
    pub title: String,
    pub require_justification: bool,
    /// This node's role in the case.
    pub role: Option<&'static str>,
    pub members: Vec<MemberSummary>,
    pub removed: Vec<RemovedSummary>,
    pub key_epoch: Option<String>,
    pub key_epochs: usize,
    /// Who can read what is sealed under the newest epoch: only current
    /// members once a lead has put a merge into effect.
    pub key_epoch_readers: Vec<String>,
    /// Who consented that their H2 records go to whom (originator, member).
    pub h2_consents: Vec<ConsentSummary>,
    /// When a lead closed the case (read-only), and when this node archived
    /// it, if so.
    pub closed: Option<String>,
    pub archived: Option<String>,
    /// The case's policy, binding every member node: what needs a second
    /// person there, and whether originators may ask for erasure.
    pub policy: PolicySummary,
    pub records: u64,
    pub entries: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct PolicySummary {
    pub four_eyes: Vec<String>,
    pub originator_erases: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct ConsentSummary {
    pub originator: String,
    pub member: String,
}

#[derive(Debug, serde::Serialize)]
pub struct MemberSummary {
    pub peer_id: String,
    pub name: String,
    pub org: String,
    pub country: String,
    pub role: &'static str,
    /// active, or revoked: a member whose node the federation revoked stays
    /// a member until a lead removes it (with a cut).
    pub status: &'static str,
}

#[derive(Debug, serde::Serialize)]
pub struct RemovedSummary {
    pub peer_id: String,
    pub cut_seq: u64,
    /// Sealed under the removal's epoch: a node without that key (a relay)
    /// sees that a reason exists, not what it says.
    pub reason: String,
}

/// The [`CaseSummary`] of `c`, as this node holds it.
pub fn summary(node: &Node, conn: &Connection, c: &Case) -> Result<CaseSummary> {
    let registry = crate::trust::load(conn)?;
    let revoked = |id: &[u8; 32]| {
        registry
            .as_ref()
            .and_then(|r| r.nodes.get(id))
            .is_some_and(|n| n.revoked)
    };
    let peer = |k: &[u8; 32]| casesync_crypto::identity::peer_id_of(k).unwrap_or_default();
    let (records, entries) = sizes(conn, c)?;
    let newest = c.state.epochs.last();
    Ok(CaseSummary {
        id: c.id.to_string(),
        title: c.meta.title.clone(),
        require_justification: c.meta.require_justification,
        role: c.my_role(node).map(|r| r.name()),
        members: c
            .state
            .members
            .iter()
            .map(|(id, m)| MemberSummary {
                peer_id: m.card.peer_id(),
                name: m.card.name.clone(),
                org: m.card.org.clone(),
                country: m.card.country.clone(),
                role: m.role.name(),
                status: if revoked(id) { "revoked" } else { "active" },
            })
            .collect(),
        removed: c
            .state
            .removed
            .iter()
            .map(|(k, r)| RemovedSummary {
                peer_id: peer(k),
                cut_seq: r.cut.last().map_or(0, |e| e.seq),
                reason: removal_reason(node, conn, c, r)
                    .unwrap_or_else(|| "(sealed: this node holds no key to read it)".into()),
            })
            .collect(),
        key_epoch: newest.map(|e| e.id.to_hex()),
        key_epochs: c.state.epochs.len(),
        key_epoch_readers: newest
            .map(|e| e.wraps.keys().map(peer).collect())
            .unwrap_or_default(),
        closed: c.state.closed.map(|(_, _, ms)| crate::clock::format_ms(ms)),
        archived: archived_at(conn, c)?.map(crate::clock::format_ms),
        policy: PolicySummary {
            four_eyes: c.state.policy.four_eyes.iter().cloned().collect(),
            originator_erases: c.state.policy.originator_erases,
        },
        h2_consents: c
            .state
            .consents
            .iter()
            .map(|(o, m)| ConsentSummary {
                originator: peer(o),
                member: peer(m),
            })
            .collect(),
        records,
        entries,
    })
}

/// How many records `case` holds here, and how many log entries.
pub fn sizes(conn: &Connection, case: &Case) -> Result<(u64, u64)> {
    Ok((
        store::record_count(conn, case.case_ref)?,
        store::entry_count(conn, case.case_ref)?,
    ))
}

/// Refuses what `actor` may not do on `case` (its role, an analyst's
/// assignment), then an action without the justification the case asks for.
/// Access first: one who may not see the case learns nothing of its policy.
pub fn require_access(
    actor: &audit::Actor,
    conn: &Connection,
    case: &Case,
    need: crate::access::Need,
) -> Result<()> {
    actor.require_on_case(conn, case.case_ref, need)?;
    require_justification(actor, case)
}

/// Refuses an action on `case` when the case asks every action for a
/// justification and none was given. The caller's error path logs the refusal.
pub fn require_justification(actor: &audit::Actor, case: &Case) -> Result<()> {
    if case.meta.require_justification && actor.justification.is_none() {
        return Err(NodeError::Refused(format!(
            "case {} requires a justification for every action: pass --justification TEXT (it is recorded in the audit log)",
            case.id
        )));
    }
    Ok(())
}

/// Where `audit export` writes.
pub enum ExportTo<'a> {
    File(&'a std::path::Path),
    /// Returned (the web UI's download).
    Memory,
}

/// `audit export --case`: the case's audit entries ([`audit::export`]), the
/// export itself audited (a refusal too). Returns the file's bytes for
/// [`ExportTo::Memory`].
pub fn export_audit(
    node: &Node,
    actor: &crate::audit::Actor,
    case_text: &str,
    to: ExportTo,
) -> Result<(audit::ExportReport, Vec<u8>)> {
    audit::audited(
        node,
        actor,
        Action::AuditExport,
        Some(case_text),
        None,
        || {
            let c = load_by_text(node, node.store.conn(), case_text)?;
            actor.require_on_case(node.store.conn(), c.case_ref, crate::access::Need::Manage)?;
            let (r, bytes, whereto) = match to {
                ExportTo::File(out) => {
                    let r = audit::export(node, actor, c.id, out)?;
                    (r, Vec::new(), format!("written to {}", out.display()))
                }
                ExportTo::Memory => {
                    let (bytes, r) = audit::export_bytes(node, actor, c.id)?;
                    (r, bytes, "downloaded".to_string())
                }
            };
            audit::append_alone(
                node,
                actor,
                Event::new(Action::AuditExport)
                    .case(c.id)
                    .detail(format!("{} entries {whereto}", r.entries)),
            )?;
            Ok((r, bytes))
        },
    )
}

/// `case show`: the case, with what `render` makes of it for the front end,
/// the consultation audited (naming the members shown) once it is rendered,
/// and a refusal audited too.
pub fn show<T>(
    node: &Node,
    actor: &crate::audit::Actor,
    case_text: &str,
    render: impl FnOnce(&Case) -> Result<T>,
) -> Result<(Case, T)> {
    audit::audited(node, actor, Action::CaseShow, Some(case_text), None, || {
        let c = load_by_text(node, node.store.conn(), case_text)?;
        actor.require_on_case(node.store.conn(), c.case_ref, crate::access::Need::Read)?;
        let shown = render(&c)?;
        let members: Vec<String> = c.state.members.values().map(|m| m.card.peer_id()).collect();
        audit::append_alone(
            node,
            actor,
            Event::new(Action::CaseShow).case(c.id).detail(format!(
                "title, {} member(s): {}",
                members.len(),
                members.join(", ")
            )),
        )?;
        Ok((c, shown))
    })
}

/// `case policy CASE`: a lead sets which operations need a second person
/// at every member node of the case (of [`control::CASE_FOUR_EYES`]) and
/// whether originators may ask for their records' erasure; signed into the
/// case's control log. `None` keeps a part as it is.
pub fn set_policy(
    node: &Node,
    actor: &audit::Actor,
    case_text: &str,
    four_eyes: Option<&str>,
    originator_erases: Option<bool>,
) -> Result<control::CasePolicy> {
    audit::audited(
        node,
        actor,
        Action::CasePolicy,
        Some(case_text),
        None,
        || {
            node.store.write(|tx| -> Result<control::CasePolicy> {
                let case = load_by_text(node, tx, case_text)?;
                require_access(actor, tx, &case, crate::access::Need::Manage)?;
                require_lead(node, &case, "set its policy")?;
                let mut p = case.state.policy.clone();
                if let Some(list) = four_eyes {
                    p.four_eyes = crate::approvals::operations(
                        std::iter::once(list),
                        &control::CASE_FOUR_EYES,
                        "a case's policy",
                    )?;
                }
                if let Some(o) = originator_erases {
                    p.originator_erases = o;
                }
                let op = lead_op(
                    node,
                    &case,
                    ControlBody::Policy {
                        four_eyes: p.four_eyes.iter().cloned().collect(),
                        originator_erases: p.originator_erases,
                    },
                )?;
                store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::CasePolicy)
                        .case(case.id)
                        .detail(describe_policy(&p)),
                )?;
                Ok(p)
            })
        },
    )
}

/// A case's policy in a line.
pub fn describe_policy(p: &control::CasePolicy) -> String {
    format!(
        "two people at every member node for: {}; originators {} ask for their records' erasure",
        crate::approvals::listed(&p.four_eyes),
        if p.originator_erases {
            "may"
        } else {
            "may not"
        }
    )
}
