//! Erasure that is provable (issue 19): a lead's signed `EraseRecord`
//! operation in the case's control log reaches every member; each node
//! destroys the record's content (its parts in every entry, its row, view
//! and snapshot, its search and match rows, its evidence file), keeps what
//! lets the logs verify (entry heads: hashes and signatures), empties the
//! WAL, and signs an `ErasureReceipt` back into the control log. An erased
//! record's parts are stripped from whatever arrives later (a peer, a
//! bundle): it never comes back.
//!
//! Carrying out is idempotent and runs wherever control operations arrive
//! and at every `serve` round: a node killed half-way finishes at the next
//! look, and writes its receipt only once the content is gone.

use serde::Serialize;

use casesync_crypto::Hash;
use casesync_schema::control::{self, ControlBody, ControlOp, Erasure};
use casesync_schema::entry::{LogEntry, RecordTag, record_tag};
use casesync_schema::{CaseId, RecordId};

use crate::access::Need;
use crate::audit::{self, Action, Actor, AuditEntry, Event};
use crate::cases::{self, Case};
use crate::{Node, NodeError, Result, approvals, evidence, records, store};

/// What `record erase` started.
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    pub record: String,
    pub case: String,
    /// The erasure operation's hash: receipts name it. For an
    /// originator's request, the request's.
    pub erasure: String,
    /// An originator's request, for a lead's node to carry out
    /// ([`grant_requests`]), not yet an erasure.
    pub requested: bool,
}

fn require_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(NodeError::Refused(
            "an erasure needs --reason: the audit log and every member's receipt keep it".into(),
        ));
    }
    Ok(())
}

/// `record erase RECORD --reason TEXT`: a lead of the record's case signs
/// the erasure, then this node carries it out (and signs its receipt). On a
/// node that does not lead the case, the record's originator signs a
/// request instead, where the case's policy lets originators erase; a
/// lead's node carries it out when the request reaches it.
pub fn erase(node: &Node, actor: &Actor, record_text: &str, reason: &str) -> Result<Started> {
    require_reason(reason)?;
    let started = audit::audited(
        node,
        actor,
        Action::RecordErase,
        None,
        Some(record_text),
        || {
            let held = records::case_of(node, actor, node.store.conn(), record_text, Need::Manage)?;
            approvals::guard(
                node,
                actor,
                &approvals::Request::Erase {
                    record: record_text.to_string(),
                    reason: reason.to_string(),
                },
                &[(held.id, &held.state.policy)],
            )?;
            node.store.write(|tx| -> Result<Started> {
                let (case, rid, view) =
                    records::open_for(node, actor, tx, record_text, Need::Manage)?;
                let me = node.keys.public().ed25519;
                if case.state.role_of(&me) != Some(control::Role::Lead) {
                    return request(node, actor, tx, &case, &rid, &view, reason);
                }
                let op = sign_erasure(node, actor, tx, &case, &rid, reason, false, |op| {
                    format!(
                        "erasure {} signed, reason: {reason}; every member destroys the record and answers with a receipt",
                        op.short()
                    )
                })?;
                Ok(Started {
                    record: rid.to_string(),
                    case: case.id.to_string(),
                    erasure: op.to_hex(),
                    requested: false,
                })
            })
        },
    )?;
    carry_out(node, actor)?;
    Ok(started)
}

/// The originator's side of `record erase` on a node that does not lead
/// the case: a signed request, where the case's policy allows it.
fn request(
    node: &Node,
    actor: &Actor,
    tx: &rusqlite::Connection,
    case: &Case,
    rid: &RecordId,
    view: &casesync_schema::doc::RecordView,
    reason: &str,
) -> Result<Started> {
    let me = node.card.peer_id();
    if view.originator != me || !case.state.policy.originator_erases {
        return Err(NodeError::Refused(format!(
            "only a lead of case {} can erase records{}",
            case.id,
            if view.originator != me {
                String::new()
            } else {
                " (the case's policy does not let originators ask for erasure: a lead sets it with `casesync case policy CASE --originator-erases on`)".to_string()
            }
        )));
    }
    let op = sign_erasure(node, actor, tx, case, rid, reason, true, |op| {
        format!(
            "erasure requested as originator (request {}), reason: {reason}; a lead's node erases it when the request reaches it",
            op.short()
        )
    })?;
    Ok(Started {
        record: rid.to_string(),
        case: case.id.to_string(),
        erasure: op.to_hex(),
        requested: true,
    })
}

/// Seals the erasure of `rid` (its id and `reason`) under the case's
/// current epoch and signs it into the control log: an `EraseRecord` (a
/// lead's) or an originator's `EraseRequest`; audited with `detail` of the
/// operation's hash. Returns that hash.
#[allow(clippy::too_many_arguments)]
fn sign_erasure(
    node: &Node,
    actor: &Actor,
    tx: &rusqlite::Connection,
    case: &Case,
    rid: &RecordId,
    reason: &str,
    as_request: bool,
    detail: impl FnOnce(&Hash) -> String,
) -> Result<Hash> {
    let (epoch, key) = cases::current_epoch(node, tx, case)?;
    let (tag, sealed) = control::seal_erasure(&case.id, rid, &key, reason)?;
    let body = if as_request {
        ControlBody::EraseRequest { tag, epoch, sealed }
    } else {
        ControlBody::EraseRecord { tag, epoch, sealed }
    };
    let op = cases::lead_op(node, case, body)?;
    store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
    let ev = Event::new(Action::RecordErase)
        .case(case.id)
        .records([rid.to_string()])
        .detail(detail(&op.hash()));
    audit::append(node, actor, tx, ev)?;
    Ok(op.hash())
}

/// On a lead's node: carries out the erasure requests of originators
/// (`ControlBody::EraseRequest`) whose record this node holds and whose
/// originator is the asker, by signing the erasure. A request for a record
/// the asker did not originate is refused here once, in the log and the
/// audit log; one for a record this node does not hold (withheld, or not
/// yet arrived) waits.
fn grant_requests(node: &Node, actor: &Actor) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let me = node.keys.public().ed25519;
    for case in cases::list(node)? {
        if case.state.role_of(&me) != Some(control::Role::Lead) {
            continue;
        }
        for (tag, req) in &case.state.erase_requests {
            if case.state.is_erased(tag) {
                continue;
            }
            let seen = format!("erase_request.refused.{}", req.op.to_hex());
            if store::meta_get(node.store.conn(), &seen)?.is_some() {
                continue;
            }
            let Ok(key) = cases::epoch_key(node, node.store.conn(), &case, &req.epoch) else {
                continue;
            };
            let Ok((rid, reason)) = control::open_erasure(&case.id, tag, &key, &req.sealed) else {
                continue;
            };
            let asker = casesync_crypto::identity::peer_id_of(&req.author).unwrap_or_default();
            let named = format!("{rid}@{}", case.id);
            let Ok(view) = records::view_of(node, node.store.conn(), &named) else {
                continue;
            };
            let line = node.store.write(|tx| -> Result<String> {
                if view.originator != asker {
                    store::meta_put(tx, &seen, b"1")?;
                    let ev = Event::new(Action::RecordErase)
                        .case(case.id)
                        .records([rid.to_string()])
                        .refused(format!(
                            "erasure request {} refused: {} asked, but the record's originator is {}",
                            req.op.short(),
                            crate::short(&asker),
                            crate::short(&view.originator)
                        ));
                    audit::append(node, actor, tx, ev)?;
                    return Ok(format!(
                        "case {}: refused erasure request {} by {} for record {rid}, which it did not originate",
                        case.id,
                        req.op.short(),
                        crate::short(&asker)
                    ));
                }
                let reason = format!("at the request of its originator {asker}: {reason}");
                let op = sign_erasure(node, actor, tx, &case, &rid, &reason, false, |op| {
                    format!(
                        "erasure {} signed {reason} (request {})",
                        op.short(),
                        req.op.short()
                    )
                })?;
                Ok(format!(
                    "case {}: erasure {} of record {rid} signed at its originator's request",
                    case.id,
                    op.short()
                ))
            })?;
            done.push(line);
        }
    }
    Ok(done)
}

/// Carries out every erasure in the control logs of this node's cases that
/// it has not yet: destroys, then signs a receipt. Returns a line per erasure
/// carried out, for the log.
pub fn carry_out(node: &Node, actor: &Actor) -> Result<Vec<String>> {
    let mut done = grant_requests(node, actor)?;
    let me = node.keys.public().ed25519;
    for case in cases::list(node)? {
        for e in &case.state.erasures {
            if !store::erasure_done(node.store.conn(), case.case_ref, &e.tag.0)? {
                done.push(carry_out_one(node, actor, &case, e)?);
            } else if case.state.role_of(&me).is_some()
                && !case
                    .state
                    .receipts
                    .get(&e.op)
                    .is_some_and(|r| r.contains_key(&me))
            {
                // Carried out, and killed before the receipt was signed.
                if let Some(r) = sign_receipt(node, &case.id, &e.op)? {
                    done.push(format!(
                        "case {}: receipt {} signed for erasure {}, carried out before",
                        case.id,
                        r.short(),
                        e.op.short()
                    ));
                }
            }
        }
    }
    Ok(done)
}

/// The record an erasure names, for a member holding the epoch key (a relay
/// knows its tag only), and the reason.
fn named(node: &Node, case: &Case, e: &Erasure) -> Option<(RecordId, String)> {
    if e.whole_case {
        return None;
    }
    let key = cases::epoch_key(node, node.store.conn(), case, &e.epoch).ok()?;
    control::open_erasure(&case.id, &e.tag, &key, &e.sealed).ok()
}

/// The reason an erasure gives, for a member holding the epoch key.
fn reason_of(node: &Node, case: &Case, e: &Erasure) -> Option<String> {
    if !e.whole_case {
        return named(node, case, e).map(|(_, r)| r);
    }
    let salt = case.state.epoch(&e.epoch)?.salt;
    let key = cases::epoch_key(node, node.store.conn(), case, &e.epoch).ok()?;
    control::open_reason(&case.id, &salt, &key, &e.sealed).ok()
}

/// `case erase CASE --reason TEXT`: a lead erases the whole case from every
/// member (each destroys the content of all its records and signs a
/// receipt; the case is closed).
pub fn erase_case(node: &Node, actor: &Actor, case_text: &str, reason: &str) -> Result<Started> {
    require_reason(reason)?;
    let started = audit::audited(
        node,
        actor,
        Action::CaseErase,
        Some(case_text),
        None,
        || {
            let held = cases::load_by_text(node, node.store.conn(), case_text)?;
            approvals::guard(
                node,
                actor,
                &approvals::Request::EraseCase {
                    case: case_text.to_string(),
                    reason: reason.to_string(),
                },
                &[(held.id, &held.state.policy)],
            )?;
            node.store.write(|tx| -> Result<Started> {
            let case = cases::load_by_text(node, tx, case_text)?;
            cases::require_access(actor, tx, &case, Need::Manage)?;
            cases::require_lead(node, &case, "erase the case")?;
            let (epoch, key) = cases::current_epoch(node, tx, &case)?;
            let salt = case
                .state
                .epoch(&epoch)
                .map(|e| e.salt)
                .ok_or_else(|| NodeError::Integrity("the current epoch is not the case's".into()))?;
            let sealed_reason = control::seal_reason(&case.id, &salt, &key, reason)?;
            let op = cases::lead_op(
                node,
                &case,
                ControlBody::EraseCase {
                    epoch,
                    sealed_reason,
                },
            )?;
            store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
            audit::append(
                node,
                actor,
                tx,
                Event::new(Action::CaseErase).case(case.id).detail(format!(
                    "erasure {} of the whole case signed, reason: {reason}; every member destroys its records and answers with a receipt",
                    op.hash().short()
                )),
            )?;
            Ok(Started {
                requested: false,
                record: String::new(),
                case: case.id.to_string(),
                erasure: op.hash().to_hex(),
            })
        })
        },
    )?;
    carry_out(node, actor)?;
    Ok(started)
}

/// `case close CASE`: a lead makes the case read-only for every member.
pub fn close_case(node: &Node, actor: &Actor, case_text: &str) -> Result<String> {
    audit::audited(
        node,
        actor,
        Action::CaseClose,
        Some(case_text),
        None,
        || {
            node.store.write(|tx| -> Result<String> {
                let case = cases::load_by_text(node, tx, case_text)?;
                cases::require_access(actor, tx, &case, Need::Manage)?;
                cases::require_lead(node, &case, "close the case")?;
                let op = cases::lead_op(node, &case, ControlBody::CloseCase)?;
                store::insert_control_op(tx, case.case_ref, &op.hash(), op.bytes())?;
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::CaseClose)
                        .case(case.id)
                        .detail("closed: read-only for every member".to_string()),
                )?;
                Ok(case.id.to_string())
            })
        },
    )
}

/// `case archive CASE [--undo]`: takes a closed case out of this node's
/// working lists (`case list`, the web UI's cases), or puts it back. Only
/// this node's view: the case is held, synced, reviewed and erased as
/// before, and `case list --all` shows it. Returns whether it is archived.
pub fn archive_case(node: &Node, actor: &Actor, case_text: &str, archive: bool) -> Result<bool> {
    audit::audited(
        node,
        actor,
        Action::CaseArchive,
        Some(case_text),
        None,
        || {
            node.store.write(|tx| -> Result<bool> {
                let case = cases::load_by_text(node, tx, case_text)?;
                cases::require_access(actor, tx, &case, Need::Manage)?;
                if archive && case.state.closed.is_none() {
                    return Err(NodeError::Refused(format!(
                        "case {} is open: a lead closes it first (`casesync case close {}`), then it can be archived",
                        case.id, case.id
                    )));
                }
                let (ms, _) = crate::clock::now();
                store::set_meta_stamp(tx, &cases::archive_key(&case), if archive { ms } else { 0 })?;
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::CaseArchive).case(case.id).detail(if archive {
                        "archived: out of this node's working lists"
                    } else {
                        "back in this node's working lists"
                    }),
                )?;
                Ok(archive)
            })
        },
    )
}

/// Carries out erasure `e` here: the content of the record it names (or
/// of every record of the case) goes, then this node signs its receipt.
fn carry_out_one(node: &Node, actor: &Actor, case: &Case, e: &Erasure) -> Result<String> {
    let erased = |t: &RecordTag| e.whole_case || t == &e.tag;
    let rid = named(node, case, e).map(|(r, _)| r);
    let rows = match (e.whole_case, rid) {
        (true, _) => store::records_in_case(node.store.conn(), case.case_ref)?,
        (false, Some(r)) => store::record_in_case(
            node.store.conn(),
            case.case_ref,
            &node.storage.record_index(&r.0),
        )?
        .into_iter()
        .collect(),
        (false, None) => Vec::new(),
    };
    // Evidence files first: their keys are in their manifests.
    for row in &rows {
        if let Ok(view) = node.storage.record_view(row)
            && view.record_type == "evidence"
        {
            match evidence::destroy_file(node, &format!("{}@{}", view.id, case.id)) {
                Ok(_) | Err(NodeError::Refused(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let rewritten = node.store.write(|tx| -> Result<i64> {
        // The entries that may hold its parts: those linked to the one
        // record's row, else every entry of the case (the whole case, or a
        // record this node holds no row for: a relay, or one refused here).
        let stored = match rows.as_slice() {
            [one] if !e.whole_case => store::entries_of_record(tx, one.row)?
                .into_iter()
                .flatten()
                .map(|s| (s.row, s.bytes))
                .collect(),
            _ => store::entry_bytes_of_case(tx, case.case_ref)?,
        };
        let mut n = 0;
        for (entry_row, bytes) in stored {
            if let Some(stripped) = strip(&bytes, erased) {
                store::rewrite_entry(tx, entry_row, &stripped)?;
                n += 1;
            }
        }
        for (wait_row, bytes) in store::waiting_bytes_of_case(tx, case.case_ref)? {
            if let Some(stripped) = strip(&bytes, erased) {
                store::rewrite_waiting(tx, wait_row, &stripped)?;
            }
        }
        // The rows (views, snapshots), their search terms, their links to
        // entries, and by cascade their match set rows and evidence file
        // rows.
        for row in &rows {
            crate::search::unfile(node, tx, row)?;
            store::delete_record(tx, row.row)?;
        }
        // Parts withheld from this node (H2) are not asked for again.
        store::forget_withheld_parts(tx, case.case_ref, (!e.whole_case).then_some(&e.tag.0))?;
        let (ms, _) = crate::clock::now();
        store::note_erasure_done(tx, case.case_ref, &e.tag.0, &e.op, ms, n)?;
        Ok(n)
    })?;
    // Old page images leave the WAL; freed pages were zeroed (secure_delete).
    node.store.checkpoint()?;
    let receipt = sign_receipt(node, &case.id, &e.op)?;
    let what = match (e.whole_case, rid) {
        (true, _) => format!("the whole case ({} records)", rows.len()),
        (false, Some(r)) => format!("record {r}"),
        (false, None) => format!("the record tagged {}", casesync_crypto::hash::hex(&e.tag.0)),
    };
    let detail = format!(
        "{what}: content destroyed ({rewritten} entries rewritten, views, snapshots, index rows and evidence pieces deleted); erasure {}, receipt {}",
        e.op.short(),
        receipt
            .map(|h| h.short())
            .unwrap_or_else(|| "not owed".into())
    );
    let mut ev = Event::new(Action::RecordErased)
        .case(case.id)
        .detail(detail.clone());
    if let (false, Some(r)) = (e.whole_case, rid) {
        ev = ev.records([r.to_string()]);
    }
    audit::append_alone(node, actor, ev)?;
    Ok(format!("case {}: {detail}", case.id))
}

/// The entry without the parts of the records `erased` says, if it held any.
fn strip(bytes: &[u8], erased: impl Fn(&RecordTag) -> bool) -> Option<Vec<u8>> {
    let e = LogEntry::decode_verified(bytes).ok()?;
    e.erasing(erased).map(|e| e.bytes().to_vec())
}

/// Signs this node's receipt for erasure `op` into the case's control log,
/// unless it owes none (not a member) or gave one already.
fn sign_receipt(node: &Node, case: &CaseId, op: &Hash) -> Result<Option<Hash>> {
    node.store.write(|tx| -> Result<Option<Hash>> {
        let case = cases::load(node, tx, case)?;
        let (ms, _) = crate::clock::now();
        let receipt = ControlOp::create(
            &node.keys,
            case.id,
            case.state.heads.clone(),
            ms,
            ControlBody::ErasureReceipt { erasure: *op },
        )?;
        if let Err(why) = control::authorize(&case.state, &receipt) {
            tracing::debug!(target: "casesync", "no receipt owed for erasure {}: {why}", op.short());
            return Ok(None);
        }
        store::insert_control_op(tx, case.case_ref, &receipt.hash(), receipt.bytes())?;
        Ok(Some(receipt.hash()))
    })
}

/// One member's answer to an erasure.
#[derive(Clone, Debug, Serialize)]
pub struct MemberErasure {
    pub node: String,
    pub name: String,
    pub org: String,
    /// `erased` (with its receipt) or `pending`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// A member's signed receipt: its control operation and when it signed it.
#[derive(Clone, Debug, Serialize)]
pub struct Receipt {
    pub operation: String,
    pub signed_ms: i64,
}

/// `record erasure RECORD`: where an erasure stands.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub record: String,
    pub case: String,
    pub erasure: String,
    pub erased_by: String,
    pub erased_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub members: Vec<MemberErasure>,
    /// Copies made before the erasure (exports, bundles) from this node's
    /// audit log: out of the erasure's reach.
    pub copies_before: Vec<AuditEntry>,
}

/// `record erasure RECORD` (`ID` or `ID@CASE`): per member node of the case
/// when it was erased, pending or erased with its receipt; and the copies
/// this node's audit log says were made of the record before.
pub fn status(node: &Node, actor: &Actor, record_text: &str) -> Result<Status> {
    audit::audited(
        node,
        actor,
        Action::RecordErasure,
        None,
        Some(record_text),
        || {
            carry_out(node, actor)?;
            let (rid_text, case_text) = match record_text.split_once('@') {
                Some((r, c)) => (r, Some(c)),
                None => (record_text, None),
            };
            let rid = records::parse_record_id(rid_text)?;
            let conn = node.store.conn();
            let mut found = Vec::new();
            for case in cases::list(node)? {
                if case_text.is_some_and(|c| c != case.id.to_string()) {
                    continue;
                }
                let tag = record_tag(&case.id, &rid);
                if let Some(e) = case.state.erasures.iter().find(|e| e.tag == tag) {
                    found.push((case.clone(), e.clone()));
                }
            }
            let (case, e) = match found.len() {
                0 => {
                    let asked = cases::list(node)?.into_iter().find_map(|c| {
                        c.state
                            .erase_requests
                            .get(&record_tag(&c.id, &rid))
                            .map(|r| (r.op, r.time_ms))
                    });
                    return Err(NodeError::Refused(match asked {
                        Some((op, ms)) => format!(
                            "record {rid} is not erased yet: its originator asked for it at {} (request {}); a lead's node erases it when the request reaches it",
                            crate::clock::format_ms(ms),
                            op.short()
                        ),
                        None => {
                            format!("record {rid} has not been erased in any case this node holds")
                        }
                    }));
                }
                1 => found.remove(0),
                n => {
                    return Err(NodeError::Refused(format!(
                        "record id {rid} was erased in {n} cases; name the one you mean as {rid}@CASE"
                    )));
                }
            };
            cases::require_access(actor, conn, &case, Need::Read)?;
            let id = rid.to_string();
            let out = status_of(node, &case, &e, Some(&id))?;
            audit::append_alone(
                node,
                actor,
                Event::new(Action::RecordErasure)
                    .case(case.id)
                    .records([id]),
            )?;
            Ok(out)
        },
    )
}

/// Where erasure `e` of `case` stands on each member, and the copies this
/// node's audit log shows were made before (of `record`, or of the case).
fn status_of(node: &Node, case: &Case, e: &Erasure, record: Option<&str>) -> Result<Status> {
    let receipts = case.state.receipts.get(&e.op);
    // A member removed since keeps its place in the list, unnamed here.
    let card_of = |k: &[u8; 32]| case.state.members.get(k).map(|m| m.card.clone());
    let members = e
        .members
        .iter()
        .map(|k| {
            let card = card_of(k);
            let receipt = receipts.and_then(|r| r.get(k)).map(|(op, ms)| Receipt {
                operation: op.to_hex(),
                signed_ms: *ms,
            });
            MemberErasure {
                node: casesync_crypto::identity::peer_id_of(k).unwrap_or_default(),
                name: card.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
                org: card.as_ref().map(|c| c.org.clone()).unwrap_or_default(),
                state: if receipt.is_some() {
                    "erased"
                } else {
                    "pending"
                },
                receipt,
            }
        })
        .collect();
    let filter = audit::Filter {
        case: Some(case.id),
        since: None,
        action: None,
        operator: None,
    };
    let copies_before = audit::read(node, &filter)?
        .into_iter()
        .filter(|a| {
            a.action == "bundle.export"
                || (a.category == "disclosure"
                    && record.is_none_or(|r| a.records.iter().any(|x| x == r)))
        })
        .collect();
    Ok(Status {
        record: record.unwrap_or_default().to_string(),
        case: case.id.to_string(),
        erasure: e.op.to_hex(),
        erased_by: casesync_crypto::identity::peer_id_of(&e.author).unwrap_or_default(),
        erased_ms: e.time_ms,
        reason: reason_of(node, case, e),
        members,
        copies_before,
    })
}

/// `case erasure CASE`: where the erasure of a whole case stands.
pub fn case_status(node: &Node, actor: &Actor, case_text: &str) -> Result<Status> {
    audit::audited(
        node,
        actor,
        Action::RecordErasure,
        Some(case_text),
        None,
        || {
            carry_out(node, actor)?;
            let conn = node.store.conn();
            let case = cases::load_by_text(node, conn, case_text)?;
            cases::require_access(actor, conn, &case, Need::Read)?;
            let e = case
                .state
                .erasures
                .iter()
                .find(|e| e.whole_case)
                .cloned()
                .ok_or_else(|| {
                    NodeError::Refused(format!("case {} has not been erased", case.id))
                })?;
            let out = status_of(node, &case, &e, None)?;
            audit::append_alone(node, actor, Event::new(Action::RecordErasure).case(case.id))?;
            Ok(out)
        },
    )
}
