//! Evidence files (`casesync evidence add|get|verify|custody|export`): the
//! file itself as part of the case. `add` cuts it into segments, seals each
//! under a random key of its own (`casesync_schema::evidence`,
//! `casesync_crypto::stream`), stores the pieces (`pieces`), and makes an
//! `evidence` record naming the file's manifest (`content`), its SHA-256,
//! size and media type. `get` and `verify` check every piece's hash and seal
//! and the whole file's SHA-256, and name the piece that fails. Each step is
//! in the audit log, which is the file's custody trail: added, opened,
//! verified, exported, each with the person and the justification.
//!
//! The file key is sealed under a key epoch of the case inside the manifest;
//! destroying the manifest everywhere leaves every piece unreadable.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use casesync_crypto::Hash;
use casesync_crypto::hash::{Sha256Stream, hex, sha256};
use casesync_crypto::stream::FileKey;
use casesync_schema::RecordId;
use casesync_schema::doc::RecordView;
use casesync_schema::evidence::{
    MAX_FILE, MAX_MANIFEST, MAX_PIECE, Manifest, SEGMENT, key_aad, piece_count, segment_aad,
};
use casesync_schema::record::{FieldValue, RecordInput, RecordType};
use serde::Serialize;

use crate::access::Need;
use crate::audit::{self, Action, Actor, AuditEntry, Event};
use crate::cases::{self, Case};
use crate::net::protocol::{MAX_PIECES_PER_REQUEST, PieceRequest, PieceResponse};
use crate::pieces::{Piece, PieceStore};
use crate::records::{self, Made};
use crate::store::Checked;
use crate::{Node, NodeError, Result, store};
use libp2p::PeerId;
use std::collections::HashMap;

/// Fields a person may not set on an evidence record: `add` computes them.
const COMPUTED: [&str; 4] = ["content", "sha256", "size", "media_type"];

/// What `evidence add` is given.
pub struct AddRequest {
    pub case: String,
    pub path: PathBuf,
    pub title: Option<String>,
    /// Other fields (`--field K=V`); `media_type` may be given to override
    /// the guess from the file's extension.
    pub fields: Vec<(String, String)>,
}

/// The media type for a file name, from its extension; a guess, which
/// `--field media_type=...` overrides.
pub fn guess_media_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("tif" | "tiff") => "image/tiff",
        Some("txt" | "log") => "text/plain",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("html" | "htm") => "text/html",
        Some("zip") => "application/zip",
        Some("mp4") => "video/mp4",
        Some("mov") => "video/quicktime",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("doc") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xls") => "application/vnd.ms-excel",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

fn io(path: &Path, what: &str, e: std::io::Error) -> NodeError {
    NodeError::Io(format!("cannot {what} {}: {e}", path.display()))
}

/// What sealing a file produced: its pieces (stored), manifest and hashes.
struct Sealed {
    pieces: Vec<Hash>,
    root: Hash,
    sha256: Hash,
    size: u64,
}

/// Reads `path` in segments, seals each and stores it; then the manifest.
fn seal_file(
    store: &PieceStore,
    path: &Path,
    id: &RecordId,
    epoch: (Hash, &casesync_crypto::SymmetricKey),
) -> Result<Sealed> {
    let mut f = File::open(path).map_err(|e| io(path, "open", e))?;
    let meta = f.metadata().map_err(|e| io(path, "read", e))?;
    if !meta.is_file() {
        return Err(NodeError::Refused(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let size = meta.len();
    if size > MAX_FILE {
        return Err(NodeError::Refused(format!(
            "{} is larger than the 1 TiB an evidence file may be",
            path.display()
        )));
    }
    let key = FileKey::generate()?;
    let n = piece_count(size, SEGMENT);
    let aad = segment_aad(id, n);
    let mut plain = Sha256Stream::new();
    let mut buf = vec![0u8; SEGMENT as usize];
    let mut pieces = Vec::with_capacity(n as usize);
    let changed = || {
        NodeError::Refused(format!(
            "{} changed while it was read: add it again once nothing writes to it",
            path.display()
        ))
    };
    // Two stages on two cores: this thread reads, hashes and seals; a
    // writer stores the sealed pieces 8 at a time (one flush per batch's
    // directory), at most one batch waiting: bounded memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(Hash, Vec<u8>)>>(1);
    std::thread::scope(|scope| -> Result<()> {
        let writer = scope.spawn(move || -> Result<()> {
            for batch in rx {
                let refs: Vec<(Hash, &[u8])> =
                    batch.iter().map(|(h, b)| (*h, b.as_slice())).collect();
                store.put_all(&refs, true)?;
            }
            Ok(())
        });
        let read = (|| -> Result<()> {
            let mut batch: Vec<(Hash, Vec<u8>)> = Vec::with_capacity(8);
            for i in 0..n {
                let len = size
                    .saturating_sub(i * u64::from(SEGMENT))
                    .min(u64::from(SEGMENT)) as usize;
                f.read_exact(&mut buf[..len]).map_err(|_| changed())?;
                plain.update(&buf[..len]);
                let sealed = key.seal_segment(i, i + 1 == n, &aad, &buf[..len])?;
                let h = sha256(&sealed);
                batch.push((h, sealed));
                pieces.push(h);
                if batch.len() == 8 || i + 1 == n {
                    // A writer gone has failed: its error is the one told.
                    if tx.send(std::mem::take(&mut batch)).is_err() {
                        break;
                    }
                }
            }
            Ok(())
        })();
        drop(tx);
        let written = writer
            .join()
            .map_err(|_| NodeError::Io("the thread writing the pieces failed".into()))?;
        written.and(read)
    })?;
    if f.read(&mut [0u8; 1]).map_err(|e| io(path, "read", e))? != 0 {
        return Err(changed());
    }
    let manifest = Manifest {
        record: *id,
        size,
        segment: SEGMENT,
        pieces: pieces.clone(),
        epoch: epoch.0,
        sealed_key: epoch.1.seal(&key_aad(id, size), key.expose())?,
    };
    let bytes = manifest.encode();
    let root = sha256(&bytes);
    store.put(&root, &bytes)?;
    pieces.push(root);
    Ok(Sealed {
        pieces,
        root,
        sha256: plain.finish(),
        size,
    })
}

/// `evidence add`: stores the file's pieces, then makes its record (both
/// audited as `evidence.add`). If the record cannot be made, the pieces go.
pub fn add(node: &Node, actor: &Actor, req: &AddRequest) -> Result<RecordView> {
    let id = RecordId::new_v7();
    let store = PieceStore::new(&node.dir);
    let (input, sealed, name) = audit::audited(
        node,
        actor,
        Action::EvidenceAdd,
        Some(&req.case),
        None,
        || {
            for (k, _) in &req.fields {
                if COMPUTED.contains(&k.as_str()) && k != "media_type" {
                    return Err(NodeError::Refused(format!(
                        "`{k}` of an evidence file is computed from the file; do not set it"
                    )));
                }
            }
            let conn = node.store.conn();
            let case = cases::load_by_text(node, conn, &req.case)?;
            cases::require_access(actor, conn, &case, Need::Write)?;
            let name = req
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    NodeError::Refused(format!("{} names no file", req.path.display()))
                })?;
            let (epoch, key) = cases::current_epoch(node, conn, &case)?;
            let sealed = seal_file(&store, &req.path, &id, (epoch, &key))?;
            let mut fields: Vec<(String, FieldValue)> = vec![
                ("file".into(), FieldValue::Str(name.clone())),
                ("size".into(), FieldValue::Int(sealed.size as i64)),
                ("sha256".into(), FieldValue::Str(sealed.sha256.to_hex())),
                ("content".into(), FieldValue::Str(sealed.root.to_hex())),
                (
                    "media_type".into(),
                    FieldValue::Str(guess_media_type(&name).into()),
                ),
            ];
            if let Some(t) = &req.title {
                fields.push(("title".into(), FieldValue::Str(t.clone())));
            }
            for (k, v) in &req.fields {
                fields.retain(|(f, _)| f != k);
                fields.push((k.clone(), FieldValue::Str(v.clone())));
            }
            let input = RecordInput {
                handling: Default::default(),
                record_type: RecordType::Evidence,
                fields: fields.into_iter().collect(),
                grading: None,
                releasable_to: Default::default(),
            };
            Ok((input, sealed, name))
        },
    )?;
    let detail = format!(
        "file {name:?}, {} bytes, sha256 {}, stored as {} sealed pieces under root {}",
        sealed.size,
        sealed.sha256.to_hex(),
        sealed.pieces.len() - 1,
        sealed.root.to_hex()
    );
    let made = Made {
        id,
        action: Action::EvidenceAdd,
        detail,
    };
    match records::add_record(node, actor, &req.case, input, Some(made)) {
        Ok(v) => {
            // What members may fetch from this node (and what it holds).
            discover(node)?;
            Ok(v)
        }
        Err(e) => {
            for h in &sealed.pieces {
                let _ = store.remove(h);
            }
            Err(e)
        }
    }
}

/// Asks `serve` to fetch a file someone tried to open (under `--fetch
/// on-open`, only such files are fetched). Best effort: the open fails anyway.
fn want(node: &Node, root: &Hash) {
    let _ = node.store.write(|tx| store::want_evidence_file(tx, root));
}

const STAMP_KEY: &str = "evidence_stamp";

/// Notes the files of evidence records written since the last look (made
/// here, or received from peers), and the pieces of those whose manifest is
/// here: what this node serves to members and what it still lacks.
pub fn discover(node: &Node) -> Result<u64> {
    let conn = node.store.conn();
    let stamp = store::meta_stamp(conn, STAMP_KEY)?;
    let upto = store::last_entry_id(conn)?;
    if upto <= stamp {
        return Ok(0);
    }
    // The evidence type's index of each case a changed record is in, found
    // as they come (a look at every case the node holds cost a serving node
    // tens of ms a second after every edit, with hundreds of cases).
    let mut evidence_type: HashMap<i64, Option<[u8; 16]>> = HashMap::new();
    let (mut cursor, mut found) = ((stamp, i64::MAX), 0u64);
    // An evidence record changed by several entries comes once per entry.
    let mut seen = std::collections::HashSet::new();
    loop {
        // Only the links: most changed records are not evidence, and their
        // views are never read.
        let links = store::records_changed_between(conn, cursor, upto, 2_000)?;
        let Some(last) = links.last() else { break };
        cursor = (last.entry, last.row);
        for l in &links {
            let wanted = match evidence_type.get(&l.case_ref) {
                Some(t) => *t,
                None => {
                    let t = store::case_by_ref(conn, l.case_ref)?
                        .map(|c| node.storage.type_index(&c.case_id, "evidence"));
                    evidence_type.insert(l.case_ref, t);
                    t
                }
            };
            if wanted.is_none_or(|w| l.type_index.as_slice() != w) || !seen.insert(l.row) {
                continue;
            }
            let Some(r) = store::record_by_row(conn, l.row)? else {
                continue;
            };
            let view = node.storage.record_view(&r)?;
            let Some(root) = content_root(&view) else {
                continue;
            };
            node.store
                .write(|tx| store::note_evidence_file(tx, &root, r.row, r.case_ref))?;
            load_manifest(node, &root)?;
            found += 1;
        }
    }
    node.store
        .write(|tx| store::set_meta_stamp(tx, STAMP_KEY, upto))?;
    Ok(found)
}

/// Once a file's manifest is here: checks it against each record naming
/// the file, and records its pieces (which are here) for the one it belongs
/// to. A record naming another's file (a member of one case naming the root
/// of another case's file, or a record id claimed in another case) is
/// logged and marked, and never fetched or served for; the node goes on.
fn load_manifest(node: &Node, root: &Hash) -> Result<()> {
    let conn = node.store.conn();
    let naming = store::evidence_files_naming(conn, root)?;
    if naming.iter().all(|f| f.checked != Checked::NotYet) {
        return Ok(());
    }
    let pieces_store = PieceStore::new(&node.dir);
    let Piece::Here(bytes) = pieces_store.get(root, MAX_MANIFEST)? else {
        return Ok(());
    };
    let manifest = Manifest::decode(&bytes).ok();
    let mut belongs = naming.iter().any(|f| f.checked == Checked::Belongs);
    let mut undecided = false;
    for f in naming.iter().filter(|f| f.checked == Checked::NotYet) {
        let Some(row) = store::record_by_row(conn, f.record_ref)? else {
            undecided = true;
            continue;
        };
        let view = node.storage.record_view(&row)?;
        let case = cases::load_ref(node, conn, f.case_ref)?;
        let checked = match &manifest {
            Some(m) if manifest_belongs(node, &case, &view, m) => Checked::Belongs,
            _ => {
                tracing::warn!(target: "casesync",
                    "evidence record {} of case {} names file {}, whose manifest is another record's: it is neither fetched nor served for it",
                    view.id, case.id, root.short());
                audit::append_alone(
                    node,
                    &Actor::new(Some("serve"), None),
                    Event::new(Action::SyncReject)
                        .case(case.id)
                        .records([view.id.clone()])
                        .detail(format!(
                            "evidence record {} names file {}, whose manifest belongs to another record: not fetched or served for it",
                            view.id,
                            root.short()
                        )),
                )?;
                Checked::Foreign
            }
        };
        belongs |= checked == Checked::Belongs;
        node.store
            .write(|tx| store::check_evidence_file(tx, root, f.record_ref, checked))?;
    }
    match (belongs, manifest) {
        (true, Some(m)) => {
            let listed: Vec<(Hash, bool)> =
                m.pieces.iter().map(|h| (*h, pieces_store.has(h))).collect();
            node.store
                .write(|tx| store::set_evidence_pieces(tx, root, &listed))?;
        }
        // Of no record here (a hostile member sent it): not kept.
        _ if !undecided => pieces_store.remove(root)?,
        _ => {}
    }
    Ok(())
}

/// Whether manifest `m` is the one of evidence record `view` of `case`: it
/// names the record, and its file key opens under one of the case's epoch
/// keys with the record bound in (so a record id claimed in another case
/// does not pass).
fn manifest_belongs(node: &Node, case: &Case, view: &RecordView, m: &Manifest) -> bool {
    m.record.to_string() == view.id
        && cases::epoch_key(node, node.store.conn(), case, &m.epoch)
            .ok()
            .and_then(|k| k.open(&key_aad(&m.record, m.size), &m.sealed_key).ok())
            .is_some()
}

/// Answers a member's request for pieces: each one this node holds, of a
/// case the asker is a current member of, of a record releasable to it.
/// Anything else is answered empty, never refused piece by piece (which
/// would tell a non-member what exists).
pub fn answer_pieces(node: &Node, peer: &PeerId, request: PieceRequest) -> Result<PieceResponse> {
    let PieceRequest::Get { federation, hashes } = request;
    let st = crate::trust::load(node.store.conn())?
        .ok_or_else(|| NodeError::Refused("this node belongs to no federation".into()))?;
    if federation != st.federation.0 {
        return Err(NodeError::Protocol(
            "the request names another federation".into(),
        ));
    }
    let Some(key) = st
        .by_peer_id(&peer.to_base58())
        .filter(|n| !n.revoked)
        .map(|n| n.card.identity.ed25519)
    else {
        return Ok(PieceResponse::Refused {
            reason: "not an enrolled node".into(),
        });
    };
    if hashes.len() > MAX_PIECES_PER_REQUEST {
        return Err(NodeError::Protocol(format!(
            "at most {MAX_PIECES_PER_REQUEST} pieces per request"
        )));
    }
    let conn = node.store.conn();
    let store = PieceStore::new(&node.dir);
    let mut may: HashMap<i64, bool> = HashMap::new();
    let mut out = Vec::with_capacity(hashes.len());
    for h in &hashes {
        let Some(hash) = Hash::from_slice(h) else {
            return Err(NodeError::Protocol("a piece is named by 32 bytes".into()));
        };
        let mut allowed = false;
        for (case_ref, record_ref) in store::cases_of_piece(conn, &hash)? {
            let ok = match may.get(&record_ref) {
                Some(ok) => *ok,
                None => {
                    let case = cases::load_ref(node, conn, case_ref)?;
                    let ok = case.state.role_of(&key).is_some()
                        && match (
                            cases::labels_of(Some(&st), &case, &key),
                            store::record_by_row(conn, record_ref)?,
                        ) {
                            (Some(l), Some(row)) => cases::Handling::new(Some(&st), &case)
                                .permits(&node.storage.record_view(&row)?, &l),
                            _ => false,
                        };
                    may.insert(record_ref, ok);
                    ok
                }
            };
            allowed |= ok;
        }
        let bytes = match (allowed, store.get(&hash, MAX_MANIFEST.max(MAX_PIECE))?) {
            (true, Piece::Here(b)) => {
                tracing::debug!(target: "casesync", "sent evidence piece {} to {peer}", hash.to_hex());
                b
            }
            _ => Vec::new(),
        };
        out.push(serde_bytes::ByteBuf::from(bytes));
    }
    Ok(PieceResponse::Pieces { pieces: out })
}

/// What to ask whom: for each connected peer that is a member of a case
/// with pieces this node lacks, up to a request's worth of them.
/// `in_flight`: pieces asked for and not stored yet, left out.
pub fn plan(
    node: &Node,
    connected: &[PeerId],
    eager: bool,
    in_flight: &[Hash],
) -> Result<Vec<(PeerId, Vec<Hash>)>> {
    // Checked each round even with no one to ask: records naming files
    // are checked as they arrive, whoever sent them.
    discover(node)?;
    if connected.is_empty() {
        return Ok(Vec::new());
    }
    let conn = node.store.conn();
    let wanted = store::evidence_wanted(conn, !eager, 256)?;
    let store = PieceStore::new(&node.dir);
    let mut members: HashMap<i64, Vec<PeerId>> = HashMap::new();
    let mut plan: HashMap<PeerId, Vec<Hash>> = HashMap::new();
    let mut seen: Vec<Hash> = Vec::new();
    for (hash, case_ref) in wanted {
        // A root several records name is asked for once.
        if seen.contains(&hash) || in_flight.contains(&hash) {
            continue;
        }
        seen.push(hash);
        // Here already (a kill between the write and its note): noted, not fetched.
        if store.has(&hash) {
            stored(node, &hash)?;
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = members.entry(case_ref) {
            let case = cases::load_ref(node, conn, case_ref)?;
            e.insert(
                case.state
                    .members
                    .keys()
                    .filter_map(|k| casesync_crypto::identity::peer_id_of(k).ok())
                    .filter_map(|p| p.parse().ok())
                    .filter(|p| connected.contains(p))
                    .collect(),
            );
        }
        // Spread over the members holding it: the first with room.
        let Some(peer) = members.get(&case_ref).and_then(|m| {
            m.iter()
                .find(|p| {
                    plan.get(*p)
                        .is_none_or(|v| v.len() < MAX_PIECES_PER_REQUEST)
                })
                .copied()
        }) else {
            continue;
        };
        plan.entry(peer).or_default().push(hash);
    }
    Ok(plan.into_iter().collect())
}

/// Notes a piece now on disk; a manifest brings its file's piece list; a
/// file made whole is audited as received.
fn stored(node: &Node, hash: &Hash) -> Result<Vec<Hash>> {
    load_manifest(node, hash)?;
    Ok(node
        .store
        .write(|tx| store::have_evidence_piece(tx, hash))?)
}

/// Stores pieces `from` sent (each checked against the hash asked for) and
/// audits each file they complete. Returns (stored, refused).
pub fn store_fetched(
    node: &Node,
    actor: &Actor,
    from: &PeerId,
    asked: &[Hash],
    got: &[serde_bytes::ByteBuf],
) -> Result<(usize, usize)> {
    let store = PieceStore::new(&node.dir);
    let mut good: Vec<(Hash, &[u8])> = Vec::new();
    let mut bad = 0;
    for (hash, bytes) in asked.iter().zip(got) {
        if bytes.is_empty() {
            continue;
        }
        if !sha256(bytes).ct_eq(hash) {
            bad += 1;
            tracing::warn!(target: "casesync", "refused piece {} from {from}: its bytes do not match its hash", hash.short());
            audit::append_alone(
                node,
                actor,
                Event::new(Action::SyncReject)
                    .peer(from.to_base58())
                    .detail(format!(
                        "evidence piece {}: its bytes do not match its hash",
                        hash.short()
                    )),
            )?;
            continue;
        }
        good.push((*hash, bytes));
    }
    // On disk (durably) first, then noted, all in one go: a kill between
    // leaves pieces that the next round finds on disk and notes unasked.
    store.put_all(&good, true)?;
    for (h, _) in &good {
        load_manifest(node, h)?;
    }
    let hashes: Vec<Hash> = good.iter().map(|(h, _)| *h).collect();
    let completed = node.store.write(|tx| -> Result<Vec<Hash>> {
        let mut done = Vec::new();
        for h in &hashes {
            done.extend(store::have_evidence_piece(tx, h)?);
        }
        Ok(done)
    })?;
    for root in completed {
        let conn = node.store.conn();
        let naming = store::evidence_files_naming(conn, &root)?;
        for file in naming.iter().filter(|f| f.checked == Checked::Belongs) {
            let Some(row) = store::record_by_row(conn, file.record_ref)? else {
                continue;
            };
            let view = node.storage.record_view(&row)?;
            let case = cases::load_ref(node, conn, file.case_ref)?;
            audit::append_alone(
                node,
                actor,
                Event::new(Action::EvidenceReceive)
                    .case(case.id)
                    .records([view.id.clone()])
                    .peer(from.to_base58())
                    .detail(format!(
                        "all {} pieces of {} received and checked; the last from {from}",
                        file.pieces.unwrap_or_default(),
                        field(&view, "file").unwrap_or_default()
                    )),
            )?;
        }
    }
    Ok((good.len(), bad))
}

/// What destroying a file's content freed.
#[derive(Clone, Debug, Serialize)]
pub struct Destroyed {
    pub pieces: usize,
    pub bytes: u64,
}

/// Destroys a file's content on this node: its manifest (the only sealed
/// copy of the file key) and its pieces, whose disk is freed at once; the
/// node then neither fetches nor serves them again. For erasure (the
/// governance operations call it, audited, on every member); not a command
/// of its own. The record stays, naming a file that is gone.
pub fn destroy_file(node: &Node, record: &str) -> Result<Destroyed> {
    let conn = node.store.conn();
    let (_, _, view) =
        records::open_for(node, &Actor::new(None, None), conn, record, Need::Manage)?;
    let root = content_root(&view)
        .ok_or_else(|| NodeError::Refused(format!("record {record} names no stored file")))?;
    let store = PieceStore::new(&node.dir);
    let mut hashes = Vec::new();
    if let Piece::Here(bytes) = store.get(&root, MAX_MANIFEST)?
        && let Ok(m) = Manifest::decode(&bytes)
    {
        hashes.extend(m.pieces);
    }
    hashes.extend(store::evidence_piece_hashes(conn, &root)?);
    hashes.sort();
    hashes.dedup();
    // The key first: once the manifest is gone, nothing left opens.
    let mut freed = store.size(&root);
    store.remove(&root)?;
    let mut n = 0;
    for h in &hashes {
        freed += store.size(h);
        store.remove(h)?;
        n += 1;
    }
    node.store
        .write(|tx| store::forget_evidence_pieces(tx, &root))?;
    Ok(Destroyed {
        pieces: n,
        bytes: freed,
    })
}

/// An evidence record's file, opened: its manifest and key.
struct Opened {
    manifest: Manifest,
    key: FileKey,
    aad: Vec<u8>,
    sha256: String,
    name: String,
    media_type: String,
    root: Hash,
}

fn field(view: &RecordView, name: &str) -> Option<String> {
    view.fields.get(name).map(FieldValue::as_text)
}

/// The root (manifest hash) of the file an evidence record names.
fn content_root(view: &RecordView) -> Option<Hash> {
    field(view, "content")
        .and_then(|h| casesync_crypto::hash::from_hex(&h))
        .and_then(|b| Hash::from_slice(&b))
}

/// The evidence record `record` (after checking `actor` may do `need` on
/// it) and its file, opened.
fn open_record(
    node: &Node,
    actor: &Actor,
    record: &str,
    need: Need,
) -> Result<(Case, RecordId, Opened)> {
    let (case, id, view) = records::open_for(node, actor, node.store.conn(), record, need)?;
    let f = open_file(node, &case, &id, &view)?;
    Ok((case, id, f))
}

/// Audits a file opened, and notes the consultation for the record's
/// originator (`receipts`).
fn opened(node: &Node, actor: &Actor, case: &Case, id: &RecordId, ev: Event) -> Result<()> {
    node.store.write(|tx| -> Result<()> {
        let idx = node.storage.record_index(&id.0);
        if let Some(row) = store::record_in_case(tx, case.case_ref, &idx)? {
            crate::receipts::note_read(node, tx, actor, row.row)?;
        }
        audit::append(node, actor, tx, ev)?;
        Ok(())
    })
}

/// Reads and checks the manifest the record names, and unseals its key.
fn open_file(node: &Node, case: &Case, id: &RecordId, view: &RecordView) -> Result<Opened> {
    if view.record_type != "evidence" {
        return Err(NodeError::Refused(format!(
            "record {id} is a {}, not evidence",
            view.record_type
        )));
    }
    let root = content_root(view).ok_or_else(|| {
        NodeError::Refused(format!(
            "evidence record {id} names no stored file (it was made without one, by `record add`)"
        ))
    })?;
    let bytes = match PieceStore::new(&node.dir).get(&root, MAX_MANIFEST)? {
        Piece::Here(b) => b,
        Piece::Missing => {
            want(node, &root);
            return Err(NodeError::Refused(format!(
                "the file of evidence {id} ({}) is not on this node yet: `serve` fetches it from a member that holds it; try again shortly",
                root.short()
            )));
        }
        Piece::Damaged => {
            return Err(NodeError::Integrity(format!(
                "the manifest of evidence {id} ({}) is damaged: its bytes do not match its hash",
                root.short()
            )));
        }
    };
    let manifest = Manifest::decode(&bytes)?;
    if manifest.record != *id {
        return Err(NodeError::Integrity(format!(
            "the manifest named by evidence {id} belongs to another record"
        )));
    }
    let epoch_key = cases::epoch_key(node, node.store.conn(), case, &manifest.epoch)?;
    let key_bytes = epoch_key
        .open(&key_aad(id, manifest.size), &manifest.sealed_key)
        .map_err(|_| {
            NodeError::Integrity(format!(
                "the key of evidence {id} does not open: its manifest was altered"
            ))
        })?;
    let key = FileKey::from_bytes(
        <[u8; 32]>::try_from(key_bytes.as_slice())
            .map_err(|_| NodeError::Integrity(format!("the key of evidence {id} is malformed")))?,
    );
    Ok(Opened {
        aad: segment_aad(id, manifest.pieces.len() as u64),
        manifest,
        key,
        sha256: field(view, "sha256").unwrap_or_default(),
        name: field(view, "file").unwrap_or_default(),
        media_type: field(view, "media_type").unwrap_or_default(),
        root,
    })
}

/// Streams the file's plaintext to `out`, piece by piece, each checked (hash,
/// then seal); then the whole file's SHA-256 against the record. An error
/// names the piece. Returns the SHA-256 (hex) and the byte count.
fn stream_file(
    node: &Node,
    id: &RecordId,
    f: &Opened,
    mut out: impl Write,
) -> Result<(String, u64)> {
    let store = PieceStore::new(&node.dir);
    let n = f.manifest.pieces.len();
    let mut sha = Sha256Stream::new();
    let mut written = 0u64;
    // Two stages on two cores: a reader reads and opens the pieces in turn,
    // at most two ahead; this thread hashes and writes them.
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::result::Result<Vec<u8>, Unread>>(2);
    let reader = |tx: std::sync::mpsc::SyncSender<_>| {
        for (i, h) in f.manifest.pieces.iter().enumerate() {
            let piece = open_piece(&store, f, i, h);
            let failed = piece.is_err();
            if tx.send(piece).is_err() || failed {
                return;
            }
        }
    };
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || reader(tx));
        for (i, piece) in rx.into_iter().enumerate() {
            let which = || {
                let h = f
                    .manifest
                    .pieces
                    .get(i)
                    .map(Hash::short)
                    .unwrap_or_default();
                format!("piece {} of {n} ({h}) of evidence {id}", i + 1)
            };
            let plain = match piece {
                Ok(p) => p,
                Err(Unread::Missing) => {
                    want(node, &f.root);
                    return Err(NodeError::Refused(format!(
                        "{} is not on this node (yet: `serve` fetches it from a member that holds it)",
                        which()
                    )));
                }
                Err(Unread::Failed(e)) => return Err(e),
                Err(why) => {
                    let what = match why {
                        Unread::Damaged => "is damaged: its bytes do not match its hash",
                        Unread::Foreign => {
                            "does not open: it belongs to another file or another place in this one"
                        }
                        _ => "has the wrong length",
                    };
                    return Err(NodeError::Integrity(format!("{} {what}", which())));
                }
            };
            sha.update(&plain);
            out.write_all(&plain)
                .map_err(|e| NodeError::Io(format!("cannot write the file: {e}")))?;
            written += plain.len() as u64;
        }
        Ok(())
    })?;
    let got = sha.finish().to_hex();
    if got != f.sha256 || written != f.manifest.size {
        return Err(NodeError::Integrity(format!(
            "evidence {id}: the file's SHA-256 is {got}, the record says {} ({written} bytes)",
            f.sha256
        )));
    }
    Ok((got, written))
}

/// Why a piece of a file could not be given back.
enum Unread {
    Missing,
    Damaged,
    Foreign,
    WrongLength,
    Failed(NodeError),
}

/// Reads piece `i` (hash `h`) of an opened file and opens it. The seal
/// authenticates the piece; its hash is checked only to say what is wrong
/// with one that does not open.
fn open_piece(
    store: &PieceStore,
    f: &Opened,
    i: usize,
    h: &Hash,
) -> std::result::Result<Vec<u8>, Unread> {
    let n = f.manifest.pieces.len();
    let bytes = match store.get_unchecked(h, MAX_PIECE) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(Unread::Missing),
        Err(e) => return Err(Unread::Failed(e)),
    };
    let plain = match f.key.open_segment(i as u64, i + 1 == n, &f.aad, &bytes) {
        Ok(p) => p,
        Err(_) if !sha256(&bytes).ct_eq(h) => return Err(Unread::Damaged),
        Err(_) => return Err(Unread::Foreign),
    };
    if plain.len() as u64 != f.manifest.plain_len(i as u64) {
        return Err(Unread::WrongLength);
    }
    Ok(plain)
}

/// What `get` and `verify` report.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    pub record: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub pieces: usize,
    /// Where the file was written (`get`, `export`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
}

/// Writes `data` through a temporary file beside `out`, renamed into place
/// only once whole and checked; never over an existing file.
fn write_new(out: &Path, f: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    if out.exists() {
        return Err(NodeError::Refused(format!(
            "{} exists: choose another --out (evidence is never written over a file)",
            out.display()
        )));
    }
    let tmp = out.with_extension("casesync-part");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp).map_err(|e| io(&tmp, "create", e))?;
    let r = f(&mut file).and_then(|_| file.sync_all().map_err(|e| io(&tmp, "write", e)));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(|e| io(out, "write", e))
}

/// Writes the file's verified plaintext to a new file at `out` (through a
/// temporary file renamed into place once whole and checked).
fn write_verified(node: &Node, id: &RecordId, f: &Opened, out: &Path) -> Result<(String, u64)> {
    let mut done = (String::new(), 0);
    write_new(out, |file| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        done = stream_file(node, id, f, &mut w)?;
        w.flush()
            .map_err(|e| NodeError::Io(format!("cannot write {}: {e}", out.display())))
    })?;
    Ok(done)
}

/// `evidence get`: writes the verified plaintext to `out`; audited as the
/// file being opened.
pub fn get(node: &Node, actor: &Actor, record: &str, out: &Path) -> Result<FileReport> {
    audit::audited(
        node,
        actor,
        Action::EvidenceOpen,
        None,
        Some(record),
        || {
            let (case, id, f) = open_record(node, actor, record, Need::Read)?;
            let done = write_verified(node, &id, &f, out)?;
            opened(
                node,
                actor,
                &case,
                &id,
                Event::new(Action::EvidenceOpen)
                    .case(case.id)
                    .records([id])
                    .detail(format!(
                        "wrote {} ({} bytes, sha256 {}) to {}",
                        f.name,
                        done.1,
                        done.0,
                        out.display()
                    )),
            )?;
            Ok(FileReport {
                record: id.to_string(),
                file: f.name.clone(),
                size: done.1,
                sha256: done.0,
                pieces: f.manifest.pieces.len(),
                out: Some(out.display().to_string()),
            })
        },
    )
}

/// What a reader learns of a file before its bytes (a download's headers).
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub record: String,
    pub file: String,
    pub size: u64,
    pub media_type: String,
    pub sha256: String,
}

/// Streams the verified plaintext into the writer `start` gives once the
/// file is opened (access checked, manifest and key read): for a download
/// that cannot wait for the whole file. Each piece is checked before its
/// bytes are written; a failure stops the stream (the receiver must treat
/// an unfinished stream as failed). Audited as opened, `to` saying where.
pub fn stream_to<W: Write>(
    node: &Node,
    actor: &Actor,
    record: &str,
    to: &str,
    start: impl FnOnce(&FileInfo) -> W,
) -> Result<FileReport> {
    audit::audited(
        node,
        actor,
        Action::EvidenceOpen,
        None,
        Some(record),
        || {
            let (case, id, f) = open_record(node, actor, record, Need::Read)?;
            let info = FileInfo {
                record: id.to_string(),
                file: f.name.clone(),
                size: f.manifest.size,
                media_type: f.media_type.clone(),
                sha256: f.sha256.clone(),
            };
            let mut w = start(&info);
            let (sha, size) = stream_file(node, &id, &f, &mut w)?;
            opened(
                node,
                actor,
                &case,
                &id,
                Event::new(Action::EvidenceOpen)
                    .case(case.id)
                    .records([id])
                    .detail(format!(
                        "sent {} ({size} bytes, sha256 {sha}) to {to}",
                        f.name
                    )),
            )?;
            Ok(FileReport {
                record: id.to_string(),
                file: f.name.clone(),
                size,
                sha256: sha,
                pieces: f.manifest.pieces.len(),
                out: None,
            })
        },
    )
}

/// An ASCII file name for a `Content-Disposition` header.
pub fn header_file_name(name: &str) -> String {
    let s: String = safe_name(name)
        .chars()
        .map(|c| if c.is_ascii() && c != '"' { c } else { '_' })
        .collect();
    s
}

/// `evidence verify`: re-reads every piece and re-hashes the file.
pub fn verify(node: &Node, actor: &Actor, record: &str) -> Result<FileReport> {
    audit::audited(
        node,
        actor,
        Action::EvidenceVerify,
        None,
        Some(record),
        || {
            let (case, id, f) = open_record(node, actor, record, Need::Read)?;
            let (sha, size) = stream_file(node, &id, &f, std::io::sink())?;
            audit::append_alone(
                node,
                actor,
                Event::new(Action::EvidenceVerify)
                    .case(case.id)
                    .records([id])
                    .detail(format!(
                        "{} pieces and the whole file's sha256 {sha} hold",
                        f.manifest.pieces.len()
                    )),
            )?;
            Ok(FileReport {
                record: id.to_string(),
                file: f.name,
                size,
                sha256: sha,
                pieces: f.manifest.pieces.len(),
                out: None,
            })
        },
    )
}

/// The actions that make up a file's custody trail.
const CUSTODY: [&str; 7] = [
    "evidence.add",
    "evidence.receive",
    "evidence.open",
    "evidence.verify",
    "evidence.export",
    "record.edit",
    "bundle.export",
];

/// The file's trail: every entry naming the record with a custody action.
/// The whole log is read, not the case's entries only: a refusal is
/// recorded before the record's case is known, so without it.
fn custody_of(node: &Node, id: &RecordId) -> Result<Vec<AuditEntry>> {
    let filter = audit::Filter {
        case: None,
        since: None,
        action: None,
        operator: None,
    };
    let id = id.to_string();
    Ok(audit::read(node, &filter)?
        .into_iter()
        .filter(|e| CUSTODY.contains(&e.action.as_str()) && e.records.contains(&id))
        .collect())
}

/// `evidence custody`: the file's trail in this node's audit log.
pub fn custody(node: &Node, actor: &Actor, record: &str) -> Result<Vec<AuditEntry>> {
    audit::audited(
        node,
        actor,
        Action::EvidenceCustody,
        None,
        Some(record),
        || {
            let conn = node.store.conn();
            let (case, id, _) = records::open_for(node, actor, conn, record, Need::Read)?;
            let trail = custody_of(node, &id)?;
            audit::append_alone(
                node,
                actor,
                Event::new(Action::EvidenceCustody)
                    .case(case.id)
                    .records([id])
                    .detail(format!("{} custody events shown", trail.len())),
            )?;
            Ok(trail)
        },
    )
}

/// Domain of the verification sheet's signature.
pub const SHEET_CONTEXT: &str = "casesync/evidence-sheet/v1";

/// One custody event as the verification sheet lists it.
#[derive(Serialize)]
struct SheetEvent<'a> {
    time: &'a str,
    node: &'a str,
    operator: &'a str,
    action: &'a str,
    outcome: &'a str,
    justification: Option<&'a str>,
    peer: Option<&'a str>,
}

#[derive(Serialize)]
struct Sheet<'a> {
    format: &'static str,
    record: String,
    case: String,
    file: &'a str,
    size: u64,
    sha256: &'a str,
    media_type: &'a str,
    content_root: String,
    segment_bytes: u32,
    pieces_sha256: Vec<String>,
    custody: Vec<SheetEvent<'a>>,
    exported_by: serde_json::Value,
    signature: serde_json::Value,
}

/// A file name safe to write in the export directory.
fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').trim().to_string();
    if s.is_empty() { "evidence".into() } else { s }
}

/// `evidence export`: the file, `SHA256SUMS`, a verification sheet (hashes,
/// custody events) signed by this node, its public key as PEM and a
/// README saying how to check them with standard tools. A disclosure: it
/// needs a justification.
pub fn export(node: &Node, actor: &Actor, record: &str, dir: &Path) -> Result<FileReport> {
    audit::audited(
        node,
        actor,
        Action::EvidenceExport,
        None,
        Some(record),
        || {
            if actor.justification.is_none() {
                return Err(NodeError::Refused(
                    "evidence export is a disclosure: say why with --justification".into(),
                ));
            }
            let (case, id, f) = open_record(node, actor, record, Need::Manage)?;
            if dir.exists()
                && std::fs::read_dir(dir)
                    .map_err(|e| io(dir, "read", e))?
                    .next()
                    .is_some()
            {
                return Err(NodeError::Refused(format!(
                    "{} is not empty: export into a new directory",
                    dir.display()
                )));
            }
            crate::files::create_private_dir(dir)?;
            let name = safe_name(&f.name);
            let file_path = dir.join(&name);
            let done = write_verified(node, &id, &f, &file_path)?;
            let trail = custody_of(node, &id)?;
            let (_, now) = crate::clock::now();
            let public = node.keys.public().ed25519;
            let sheet = Sheet {
                format: "casesync evidence verification sheet v1",
                record: id.to_string(),
                case: case.id.to_string(),
                file: &f.name,
                size: done.1,
                sha256: &done.0,
                media_type: &f.media_type,
                content_root: f.root.to_hex(),
                segment_bytes: f.manifest.segment,
                pieces_sha256: f.manifest.pieces.iter().map(|h| h.to_hex()).collect(),
                custody: trail
                    .iter()
                    .map(|e| SheetEvent {
                        time: &e.time,
                        node: &e.node,
                        operator: &e.operator,
                        action: &e.action,
                        outcome: match e.outcome {
                            audit::Outcome::Ok => "ok",
                            audit::Outcome::Refused => "refused",
                        },
                        justification: e.justification.as_deref(),
                        peer: e.peer.as_deref(),
                    })
                    .collect(),
                exported_by: serde_json::json!({
                    "node": node.card.peer_id(),
                    "name": node.card.name,
                    "org": node.card.org,
                    "operator": actor.operator,
                    "justification": actor.justification,
                    "time": now,
                }),
                signature: serde_json::json!({
                    "algorithm": "Ed25519",
                    "signed": format!("the bytes {SHEET_CONTEXT:?}, one zero byte, then this file"),
                    "file": "sheet.json.sig",
                    "public_key": "node-key.pem",
                    "public_key_hex": hex(&public),
                }),
            };
            let mut json = serde_json::to_vec_pretty(&sheet)
                .map_err(|e| NodeError::Io(format!("cannot encode the sheet: {e}")))?;
            json.push(b'\n');
            let sig = node.keys.sign(SHEET_CONTEXT.as_bytes(), &json);
            let write =
                |file: &str, data: &[u8]| crate::files::write_private_file(&dir.join(file), data);
            write("SHA256SUMS", format!("{}  {name}\n", done.0).as_bytes())?;
            write("sheet.json", &json)?;
            write("sheet.json.sig", &sig)?;
            write(
                "node-key.pem",
                casesync_crypto::identity::public_key_pem(&public).as_bytes(),
            )?;
            write(
            "README.txt",
            format!(
                "Evidence {id} exported by {} ({}), node {}, at {now}.\n\n\
                 Check the file:\n  sha256sum -c SHA256SUMS\n\n\
                 Check the sheet's signature (OpenSSL 3):\n  \
                 (printf '{SHEET_CONTEXT}\\0'; cat sheet.json) > sheet.signed\n  \
                 openssl pkeyutl -verify -pubin -inkey node-key.pem -rawin -in sheet.signed -sigfile sheet.json.sig\n\n\
                 sheet.json lists the file's SHA-256, each sealed piece's SHA-256 and the custody events \
                 recorded on the exporting node.\n",
                node.card.name,
                node.card.org,
                node.card.peer_id()
            )
            .as_bytes(),
        )?;
            audit::append_alone(
                node,
                actor,
                Event::new(Action::EvidenceExport)
                    .case(case.id)
                    .records([id])
                    .detail(format!(
                        "exported {} ({} bytes, sha256 {}) with a signed verification sheet to {}",
                        f.name,
                        done.1,
                        done.0,
                        dir.display()
                    )),
            )?;
            Ok(FileReport {
                record: id.to_string(),
                file: f.name.clone(),
                size: done.1,
                sha256: done.0.clone(),
                pieces: f.manifest.pieces.len(),
                out: Some(file_path.display().to_string()),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_guessed_from_extensions_and_names_made_safe() {
        assert_eq!(guess_media_type("scan.PDF"), "application/pdf");
        assert_eq!(guess_media_type("cctv.mp4"), "video/mp4");
        assert_eq!(
            guess_media_type("extraction.ufdr"),
            "application/octet-stream"
        );
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("..."), "evidence");
        assert_eq!(safe_name("Statement 12.pdf"), "Statement 12.pdf");
    }
}
