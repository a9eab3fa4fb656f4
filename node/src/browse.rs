//! Reading a case the way an analyst browses it in the web UI: a page of its
//! records (filtered, sorted), the link chart around a record, a path between
//! two records. Each is a consultation, audited with the records it showed;
//! each checks the person's access first. The chart and the path are pure
//! (`casesync_schema::graph`) over the case's views.

use casesync_schema::doc::RecordView;
use casesync_schema::graph::{CaseGraph, Chart};
use casesync_schema::record::RecordType;

use crate::access::{Actor, Need};
use crate::audit::{self, Action, Event};
use crate::{Node, NodeError, Result, cases};

/// Most records one page holds.
pub const MAX_PAGE: usize = 500;
/// Most records one chart answer holds (the page asks for 150 and expands
/// from a node for more).
pub const MAX_CHART: usize = 1000;
/// Most links a chart follows from its record.
pub const MAX_DEPTH: usize = 3;
/// Most records a path search visits.
const PATH_VISITS: usize = 100_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    #[default]
    Updated,
    Created,
    Type,
    Summary,
    Id,
}

/// Which page of which records.
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    pub record_type: Option<RecordType>,
    /// Case-insensitive text any field must contain.
    pub text: Option<String>,
    pub sort: Sort,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Page {
    /// Records that pass the filter, in all.
    pub total: usize,
    pub offset: usize,
    pub records: Vec<RecordView>,
}

fn sort_key(v: &RecordView, s: Sort) -> String {
    match s {
        Sort::Updated => v.updated.clone(),
        Sort::Created => v.created.clone(),
        Sort::Type => format!("{}\u{0}{}", v.record_type, v.summary().to_lowercase()),
        Sort::Summary => v.summary().to_lowercase(),
        Sort::Id => v.id.clone(),
    }
}

fn matches(v: &RecordView, text: &str) -> bool {
    v.fields
        .values()
        .any(|f| f.as_text().to_lowercase().contains(text))
}

/// The views of `case_text` that `actor` may read (from the node's view
/// cache while the case's records are unchanged), in one write transaction
/// that also records the consultation `f` makes of them.
fn consult<T>(
    node: &Node,
    actor: &Actor,
    action: Action,
    case_text: &str,
    f: impl FnOnce(&[RecordView]) -> Result<(T, Vec<String>, String)>,
) -> Result<T> {
    audit::audited(node, actor, action, Some(case_text), None, || {
        node.store.write(|tx| -> Result<T> {
            let case = cases::load_by_text(node, tx, case_text)?;
            cases::require_access(actor, tx, &case, Need::Read)?;
            let stamp = crate::store::records_stamp(tx, case.case_ref)?;
            let views = match node.views.get(case.case_ref, &stamp) {
                Some(v) => v,
                None => {
                    let v = std::sync::Arc::new(cases::views_in_case(node, tx, &case, None)?);
                    node.views.put(case.case_ref, stamp, v.clone());
                    v
                }
            };
            let (out, shown, detail) = f(&views)?;
            let ev = Event::new(action)
                .case(case.id)
                .records(shown)
                .detail(detail);
            audit::append(node, actor, tx, ev)?;
            Ok(out)
        })
    })
}

/// A page of a case's records (the records table).
pub fn page(node: &Node, actor: &Actor, case_text: &str, q: &PageQuery) -> Result<Page> {
    let limit = q.limit.clamp(1, MAX_PAGE);
    let text = q
        .text
        .as_deref()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty());
    let type_name = q.record_type.map(|t| t.name());
    consult(node, actor, Action::RecordList, case_text, |views| {
        let mut keyed: Vec<(String, &RecordView)> = views
            .iter()
            .filter(|v| type_name.is_none_or(|t| v.record_type == t))
            .filter(|v| text.as_deref().is_none_or(|t| matches(v, t)))
            .map(|v| (sort_key(v, q.sort), v))
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        if q.descending {
            keyed.reverse();
        }
        let total = keyed.len();
        let records: Vec<RecordView> = keyed
            .into_iter()
            .skip(q.offset)
            .take(limit)
            .map(|(_, v)| v.clone())
            .collect();
        let shown = records.iter().map(|r| r.id.clone()).collect();
        let detail = format!(
            "page of {} from {} of {total}{}",
            records.len(),
            q.offset,
            q.record_type
                .map(|t| format!(", type {}", t.name()))
                .unwrap_or_default()
        );
        Ok((
            Page {
                total,
                offset: q.offset,
                records,
            },
            shown,
            detail,
        ))
    })
}

/// The link chart around record `from`: records within `depth` links (at
/// most 3), at most `cap` of them (at most 1,000).
pub fn chart(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    from: &str,
    depth: usize,
    cap: usize,
) -> Result<Chart> {
    let (depth, cap) = (depth.clamp(1, MAX_DEPTH), cap.clamp(1, MAX_CHART));
    consult(node, actor, Action::RecordChart, case_text, |views| {
        if !views.iter().any(|v| v.id == from.trim()) {
            return Err(NodeError::Refused(format!(
                "unknown record {} in this case",
                crate::short(from)
            )));
        }
        let chart = CaseGraph::new(views).neighbourhood(from.trim(), depth, cap);
        let shown = chart.nodes.iter().map(|n| n.id.clone()).collect();
        let detail = format!("chart from {} ({} records)", from.trim(), chart.nodes.len());
        Ok((chart, shown, detail))
    })
}

/// A shortest path of links between two records of a case, if there is one.
pub fn path(
    node: &Node,
    actor: &Actor,
    case_text: &str,
    from: &str,
    to: &str,
) -> Result<Option<Chart>> {
    consult(node, actor, Action::RecordChart, case_text, |views| {
        let p = CaseGraph::new(views).path(from.trim(), to.trim(), PATH_VISITS);
        let shown = p
            .iter()
            .flat_map(|c| c.nodes.iter().map(|n| n.id.clone()))
            .collect();
        let detail = format!(
            "path from {} to {}: {}",
            from.trim(),
            to.trim(),
            p.as_ref()
                .map_or("none".to_string(), |c| format!("{} records", c.nodes.len()))
        );
        Ok((p, shown, detail))
    })
}
