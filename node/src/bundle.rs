//! Bundle export and import: everything a peer may need of the chosen cases, in
//! one signed file (encrypted to the recipient when one is named), for
//! air-gapped transfer. Import runs every item through [`crate::ingest`], the
//! same checks as the network.

use casesync_schema::bundle::{self, BundleBody};
use casesync_schema::{CaseId, NodeCard};

use crate::audit::Action;
use crate::ingest::{self, IngestReport};
use crate::{Node, NodeError, Result, cases, store};

pub struct ExportReport {
    /// Bundle files handed to the sink, in the order they are to be
    /// imported: one, unless the export is larger than a bundle may be
    /// (`bundle::Splitter`).
    pub parts: usize,
    /// Their bytes together.
    pub bytes: usize,
    pub cases: usize,
    pub control_ops: usize,
    pub entries: usize,
    pub skipped: Vec<String>,
}

/// One case of an export, as its first pass over the store found it.
struct Planned {
    case: CaseId,
    case_ref: i64,
    control_ops: Vec<Vec<u8>>,
    /// Parts of records under H2 the recipient may not hold yet.
    strip: Vec<casesync_schema::entry::RecordTag>,
    /// The entries recorded as disclosed, and how many.
    runs: crate::audit::EntryRuns,
    entries: usize,
}

/// Builds a bundle of `case_texts` (all cases if empty). With a recipient, only
/// cases it is a member of go in (a case's entries go to its members only).
///
/// Memory stays flat whatever the size: a first pass over the store notes
/// which entries go (their seqs, not their bytes), the disclosure is audited,
/// and a second pass reads the entries and hands each part to `sink` as soon
/// as it is sealed (the CLI writes OUT, OUT.2, ...). The second pass sends
/// only entries the audit names: one stored in between is left for the next
/// export, and one taken out in between (a frozen log) is recorded but not
/// sent, never the other way round. Nothing reaches `sink` when no case goes.
pub fn export(
    node: &Node,
    actor: &crate::audit::Actor,
    case_texts: &[String],
    recipient: Option<&str>,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<ExportReport> {
    crate::audit::audited(
        node,
        actor,
        Action::BundleExport,
        (case_texts.len() == 1).then(|| case_texts[0].as_str()),
        None,
        || {
            let touched = if case_texts.is_empty() {
                cases::list(node)?
            } else {
                case_texts
                    .iter()
                    .map(|c| cases::load_by_text(node, node.store.conn(), c))
                    .collect::<Result<Vec<_>>>()?
            };
            let policies: Vec<_> = touched.iter().map(|c| (c.id, &c.state.policy)).collect();
            crate::approvals::guard(
                node,
                actor,
                &crate::approvals::Request::BundleExport {
                    cases: case_texts.to_vec(),
                    recipient: recipient.map(String::from),
                },
                &policies,
            )?;
            let conn = node.store.conn();
            let to: Option<NodeCard> = recipient
                .map(|r| cases::resolve_member(conn, r))
                .transpose()?;
            let chosen: Vec<cases::Case> = if case_texts.is_empty() {
                cases::list(node)?
            } else {
                case_texts
                    .iter()
                    .map(|t| cases::load_by_text(node, conn, t))
                    .collect::<Result<_>>()?
            };
            let registry_ops: Vec<Vec<u8>> = store::registry_ops(conn)?
                .into_iter()
                .map(|o| o.bytes)
                .collect();
            let mut skipped = Vec::new();
            let mut planned = Vec::new();
            let mut withheld = Vec::new();
            for c in chosen {
                cases::require_access(actor, conn, &c, crate::access::Need::Manage)?;
                // Another agency's H2 records go only to the members their
                // originator consented to: a bundle for one of those is
                // held back per record like a sync; one for any holder is
                // refused.
                if to.is_none() {
                    cases::refuse_others_h2(
                        node,
                        conn,
                        &c,
                        "a bundle for any holder (--to names a member)",
                        None,
                    )?;
                }
                if let Some(to) = &to
                    && c.state.role_of(&to.identity.ed25519).is_none()
                {
                    skipped.push(format!("case {}: {} is not a member", c.id, to.name));
                    continue;
                }
                let control_ops: Vec<Vec<u8>> = store::control_ops(conn, c.case_ref)?
                    .into_iter()
                    .map(|o| o.bytes)
                    .collect();
                // Handling: a record goes only to a node within its releasable_to;
                // each author's log stops before the first entry that carries one
                // the recipient is outside of.
                let labels = to.as_ref().map(|to| cases::MemberLabels {
                    key: to.identity.ed25519,
                    name: to.name.clone(),
                    org: to.org.clone(),
                    country: to.country.clone(),
                });
                // Records under H2 the recipient may not hold go without
                // their parts, as in a sync.
                let registry = crate::trust::load(conn)?;
                let cases::KeptBack {
                    logs: held_back,
                    parts: strip,
                } = cases::kept_back(node, conn, registry.as_ref(), &c, labels.as_ref())?;
                let mut runs = crate::audit::EntryRuns::default();
                let mut count = 0usize;
                store::for_each_entry_key_of_case(conn, c.case_ref, |author, seq| {
                    let Ok(author) = <[u8; 32]>::try_from(author) else {
                        return;
                    };
                    let seq = seq as u64;
                    if held_back.get(&author).is_some_and(|w| seq >= *w) {
                        return;
                    }
                    runs.add(c.id, author, seq);
                    count += 1;
                })?;
                withheld.extend(held_back.into_iter().map(|(a, s)| (c.id, a, s)));
                planned.push(Planned {
                    case: c.id,
                    case_ref: c.case_ref,
                    control_ops,
                    strip,
                    runs,
                    entries: count,
                });
            }
            // Audited before any file exists: a disclosure may be recorded
            // that a failed write then did not make, never the other way round.
            let peer = to.as_ref().map(|t| t.peer_id());
            let disclosures: Vec<_> = planned
                .iter()
                .map(|p| crate::audit::CaseDisclosure {
                    case: p.case,
                    entries: p.runs.names(),
                    entry_count: p.entries,
                    control_ops: p.control_ops.len(),
                })
                .collect();
            node.store.write(|tx| {
                crate::audit::disclosed_cases(
                    node,
                    actor,
                    tx,
                    Action::BundleExport,
                    peer.as_deref(),
                    &disclosures,
                    registry_ops.len(),
                )?;
                crate::audit::withheld(
                    node,
                    actor,
                    tx,
                    Action::BundleExport,
                    peer.as_deref(),
                    &withheld,
                )
            })?;
            let mut report = ExportReport {
                parts: 0,
                bytes: 0,
                cases: planned.len(),
                control_ops: disclosures.iter().map(|d| d.control_ops).sum(),
                entries: disclosures.iter().map(|d| d.entry_count).sum(),
                skipped,
            };
            if planned.is_empty() {
                return Ok(report);
            }
            // Tests make parts small to exercise splitting without gigabytes.
            let target = std::env::var("CASESYNC_BUNDLE_PART_BYTES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(bundle::PART_TARGET_BYTES)
                .min(bundle::PART_TARGET_BYTES);
            let mut emit = |body: BundleBody| -> Result<()> {
                let sealed = bundle::seal(&node.keys, &node.card, to.as_ref(), &body)?;
                drop(body);
                sink(&sealed)?;
                report.parts += 1;
                report.bytes += sealed.len();
                Ok(())
            };
            let mut splitter = bundle::Splitter::new(registry_ops, target);
            for Planned {
                case,
                case_ref,
                control_ops,
                strip,
                runs,
                ..
            } in planned
            {
                splitter.start_case(case, control_ops);
                let mut failed = None;
                store::for_each_entry_of_case(conn, case_ref, |e| {
                    let Ok(author) = <[u8; 32]>::try_from(e.author.as_slice()) else {
                        return;
                    };
                    if failed.is_some() || !runs.holds(case, &author, e.seq as u64) {
                        return;
                    }
                    if let Some(done) = splitter.push(crate::sync::for_peer(e.bytes, &strip))
                        && let Err(x) = emit(done)
                    {
                        failed = Some(x);
                    }
                })?;
                if let Some(x) = failed {
                    return Err(x);
                }
            }
            emit(splitter.finish())?;
            Ok(report)
        },
    )
}

/// Where `bundle export` writes: OUT, then OUT.2, OUT.3, ... past the size
/// of one bundle, each readable by the owner only (an unencrypted bundle is
/// case data), each written and synced before the next is made.
pub struct PartFiles {
    out: std::path::PathBuf,
    pub written: Vec<std::path::PathBuf>,
}

impl PartFiles {
    pub fn new(out: &std::path::Path) -> PartFiles {
        PartFiles {
            out: out.to_path_buf(),
            written: Vec::new(),
        }
    }

    pub fn write(&mut self, part: &[u8]) -> Result<()> {
        let path = match self.written.len() {
            0 => self.out.clone(),
            n => std::path::PathBuf::from(format!("{}.{}", self.out.display(), n + 1)),
        };
        crate::files::write_private_file(&path, part)?;
        self.written.push(path);
        Ok(())
    }
}

/// Reads a bundle file for [`import`], judging it before reading it whole:
/// it must be a regular file within the size limit, and its sender (read from
/// the first bytes) must be enrolled and active, else nothing more is read.
pub fn read_file(node: &Node, path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let shown = path.display();
    let mut f = std::fs::File::open(path)
        .map_err(|e| NodeError::Refused(format!("cannot read {shown}: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| NodeError::Refused(format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(NodeError::Refused(format!(
            "bundle rejected: {shown} is not a regular file; nothing was imported"
        )));
    }
    if meta.len() > bundle::MAX_BUNDLE_BYTES as u64 {
        return Err(NodeError::Refused(format!(
            "bundle rejected: {shown} is {} bytes, over the {} MiB limit; nothing was imported",
            meta.len(),
            bundle::MAX_BUNDLE_BYTES >> 20
        )));
    }
    let mut prefix = Vec::new();
    (&mut f)
        .take(bundle::SENDER_PREFIX_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| NodeError::Refused(format!("cannot read {shown}: {e}")))?;
    let sender = bundle::peek_sender(&prefix)
        .map_err(|e| NodeError::Refused(format!("bundle rejected: {e}; nothing was imported")))?;
    // A revoked sender's file is read: its registry statements may show that
    // the revocation was itself void (see `import`).
    if let Some(st) = crate::trust::load(node.store.conn())?
        && !st.nodes.contains_key(&sender.identity.ed25519)
    {
        return Err(NodeError::Refused(format!(
            "bundle rejected: its sender {} ({}) is not enrolled in federation \"{}\"; nothing was imported (the file was not read past its header)",
            sender.name,
            sender.peer_id(),
            st.name
        )));
    }
    // The size is known and bounded: read it, and not a byte more if the
    // file grows meanwhile.
    let mut all = prefix;
    all.reserve(meta.len() as usize - all.len().min(meta.len() as usize));
    (&mut f)
        .take(meta.len().saturating_sub(all.len() as u64))
        .read_to_end(&mut all)
        .map_err(|e| NodeError::Refused(format!("cannot read {shown}: {e}")))?;
    Ok(all)
}

/// `bundle import FILE`: judges and reads the file ([`read_file`]), then
/// imports it ([`import`]); a refusal is audited.
pub fn import_file(
    node: &Node,
    actor: &crate::audit::Actor,
    path: &std::path::Path,
) -> Result<(NodeCard, IngestReport)> {
    crate::audit::audited(node, actor, Action::BundleImport, None, None, || {
        import(node, actor, read_file(node, path)?)
    })
}

/// Imports a bundle: the file's signature and encryption are checked first (any
/// change rejects it whole), then every item, all in one transaction.
pub fn import(
    node: &Node,
    actor: &crate::audit::Actor,
    file: Vec<u8>,
) -> Result<(NodeCard, IngestReport)> {
    let opened = bundle::open(&node.keys, &file)
        .map_err(|e| NodeError::Refused(format!("bundle rejected: {e}; nothing was imported")))?;
    // The file's bytes are not needed once its items are out: memory.
    drop(file);
    let sender = opened.sender;
    let id = sender.identity.ed25519;
    let source = format!("bundle from {}", sender.peer_id());
    let report = node.store.write(|tx| -> Result<IngestReport> {
        if let Some(st) = crate::trust::load(tx)?
            && !st.nodes.contains_key(&id)
        {
            return Err(NodeError::Refused(format!(
                "bundle rejected: its sender {} ({}) is not enrolled in federation \"{}\"; nothing was imported",
                sender.name,
                sender.peer_id(),
                st.name
            )));
        }
        // The registry statements first, from any sender the registry knows:
        // they are signed by their authors and judged by the same rules, and
        // from a sender this node sees as revoked they may show that the
        // revocation was void (this node took in a revoked key's statements
        // before it heard of the revocation, and has refused the true admins
        // since). The case items only from a sender active after them.
        let BundleBody {
            registry_ops,
            cases,
        } = opened.body;
        let (registry, cases) = (
            BundleBody {
                registry_ops,
                cases: vec![],
            },
            BundleBody {
                registry_ops: vec![],
                cases,
            },
        );
        let mut r = ingest::ingest(node, tx, &registry, &source, &id)?;
        if crate::trust::load(tx)?.is_none_or(|st| st.is_active(&id)) {
            r.absorb(ingest::ingest(node, tx, &cases, &source, &id)?);
        } else if !cases.cases.is_empty() {
            r.rejected.push(format!(
                "the case items: the sender {} is revoked; only its registry statements were taken",
                sender.peer_id()
            ));
        }
        r.audit(node, actor, tx, Action::BundleImport, &sender.peer_id())?;
        Ok(r)
    })?;
    Ok((sender, report))
}
