//! `casesync selectors export`: a case's selectors, canonical, in a plain
//! CSV or JSON file for an outside body (an exchange's investigations team,
//! a bank) that has no casesync node. A disclosure: it needs a
//! justification, and the audit entry lists every selector that left
//! (sealed at rest). Records whose releasable_to leaves the recipient out
//! are withheld, and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use casesync_schema::record::RecordType;
use casesync_schema::record::ReleasableTo;
use casesync_schema::selectors::{self, Selector, SelectorKind};
use serde::Serialize;

use crate::access::Need;
use crate::audit::{self, Action, Actor, Event};
use crate::{Node, NodeError, Result, cases, files};

/// The file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `type,selector` with a header line.
    Csv,
    /// `{"for", "from", "exported", "selectors": [{"type", "selector"}]}`.
    Json,
}

impl Format {
    /// JSON for a `.json` file, CSV otherwise.
    pub fn for_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Csv,
        }
    }
}

pub struct ExportRequest {
    pub case: String,
    /// Who receives the file (an organisation's name).
    pub recipient: String,
    /// Only these kinds; empty: every kind.
    pub kinds: Vec<SelectorKind>,
    pub out: PathBuf,
    pub format: Format,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    pub out: String,
    pub recipient: String,
    pub selectors: usize,
    /// Selectors per type.
    pub by_type: BTreeMap<&'static str, usize>,
    /// Records left out because their releasable_to does not name the recipient.
    pub withheld_records: usize,
}

#[derive(Serialize)]
struct Row<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    selector: &'a str,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    #[serde(rename = "for")]
    recipient: &'a str,
    from: String,
    exported: String,
    selectors: Vec<Row<'a>>,
}

fn encode(node: &Node, req: &ExportRequest, sels: &BTreeSet<Selector>) -> Result<Vec<u8>> {
    let rows = sels.iter().map(|s| Row {
        kind: s.kind.name(),
        selector: &s.value,
    });
    let bad = |e: String| NodeError::Io(format!("cannot encode the selectors: {e}"));
    match req.format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            for r in rows {
                w.serialize(r).map_err(|e| bad(e.to_string()))?;
            }
            w.into_inner().map_err(|e| bad(e.to_string()))
        }
        Format::Json => {
            let f = JsonFile {
                recipient: &req.recipient,
                from: node.card.org.clone(),
                exported: crate::clock::now().1,
                selectors: rows.collect(),
            };
            let mut out = serde_json::to_vec_pretty(&f).map_err(|e| bad(e.to_string()))?;
            out.push(b'\n');
            Ok(out)
        }
    }
}

/// Writes the case's selectors for `req.recipient`; audited as a
/// disclosure naming every selector, refused without a justification.
pub fn export(node: &Node, actor: &Actor, req: &ExportRequest) -> Result<ExportReport> {
    audit::audited(
        node,
        actor,
        Action::SelectorsExport,
        Some(&req.case),
        None,
        || {
            let recipient = req.recipient.trim();
            if recipient.is_empty() || recipient.len() > 128 {
                return Err(NodeError::Refused(
                    "--for names the recipient organisation (1 to 128 characters)".into(),
                ));
            }
            if actor.justification.is_none() {
                return Err(NodeError::Refused(format!(
                    "selectors export is a disclosure: say why with --justification (e.g. --justification \"request 2026/118 to {}\")",
                    crate::short(recipient)
                )));
            }
            if req.out.exists() {
                return Err(NodeError::Refused(format!(
                    "{} exists: choose another --out (an export never overwrites a file)",
                    req.out.display()
                )));
            }
            let conn = node.store.conn();
            let case = cases::load_by_text(node, conn, &req.case)?;
            cases::require_access(actor, conn, &case, Need::Manage)?;
            cases::refuse_others_h2(node, conn, &case, "a selectors export", Some(recipient))?;
            let views = node
                .store
                .read(|tx| crate::browse::case_views(node, tx, &case))?;
            let region = Some(node.card.country.as_str());
            let mut sels = BTreeSet::new();
            let (mut records, mut withheld) = (Vec::new(), 0usize);
            for v in views.views.iter() {
                let Ok(t) = v.record_type.parse::<RecordType>() else {
                    continue;
                };
                let found: Vec<Selector> = selectors::of_record(t, &v.fields, region)
                    .into_iter()
                    .filter(|s| req.kinds.is_empty() || req.kinds.contains(&s.kind))
                    .collect();
                if found.is_empty() {
                    continue;
                }
                if !ReleasableTo(v.releasable_to.clone()).permits(recipient, "") {
                    withheld += 1;
                    continue;
                }
                records.push(v.id.clone());
                sels.extend(found);
            }
            if sels.is_empty() {
                return Err(NodeError::Refused(format!(
                    "case {} holds no selectors of the chosen types that may go to {}{}",
                    case.id,
                    crate::short(recipient),
                    if withheld > 0 {
                        format!(" ({withheld} record(s) withheld by their releasable_to)")
                    } else {
                        String::new()
                    }
                )));
            }
            let bytes = encode(node, req, &sels)?;
            let mut by_type: BTreeMap<&'static str, usize> = BTreeMap::new();
            for s in &sels {
                *by_type.entry(s.kind.name()).or_default() += 1;
            }
            let listed: Vec<String> = sels
                .iter()
                .map(|s| format!("{}:{}", s.kind.name(), s.value))
                .collect();
            let written = node.store.write(|tx| -> Result<()> {
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::SelectorsExport)
                        .case(case.id)
                        .records(records.iter())
                        .peer(recipient)
                        .detail(format!(
                            "{} selector(s) for {} to {}{}: {}",
                            sels.len(),
                            recipient,
                            req.out.display(),
                            if withheld > 0 {
                                format!(", {withheld} record(s) withheld by their releasable_to")
                            } else {
                                String::new()
                            },
                            listed.join(", ")
                        )),
                )?;
                // Written inside the transaction: if it fails, the entry
                // that says it left is rolled back with it.
                files::write_private_file(&req.out, &bytes)
            });
            if written.is_err() {
                let _ = std::fs::remove_file(&req.out);
            }
            written?;
            Ok(ExportReport {
                out: req.out.display().to_string(),
                recipient: recipient.to_string(),
                selectors: sels.len(),
                by_type,
                withheld_records: withheld,
            })
        },
    )
}
