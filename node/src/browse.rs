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
use std::sync::Arc;

use crate::node::CaseViews;
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
/// cache while the case's records are unchanged), read in one snapshot, and
/// the consultation `f` makes of them recorded in the audit log before the
/// answer leaves. The reading takes no write lock (paging a large case is
/// work; many analysts page at once); only the audit entry does.
fn consult<T>(
    node: &Node,
    actor: &Actor,
    action: Action,
    case_text: &str,
    f: impl FnOnce(&CaseViews) -> Result<(T, Vec<String>, String)>,
) -> Result<T> {
    audit::audited(node, actor, action, Some(case_text), None, || {
        let (case, out, shown, detail) = node.store.read(|tx| -> Result<_> {
            let case = cases::load_by_text(node, tx, case_text)?;
            cases::require_access(actor, tx, &case, Need::Read)?;
            let views = case_views(node, tx, &case)?;
            let (out, shown, detail) = f(&views)?;
            Ok((case, out, shown, detail))
        })?;
        node.store.write(|tx| -> Result<()> {
            let ev = Event::new(action)
                .case(case.id)
                .records(shown)
                .detail(detail);
            audit::append(node, actor, tx, ev)?;
            Ok(())
        })?;
        Ok(out)
    })
}

/// The case's views from the node's cache: reopened whole when the stamp
/// says entries may have gone (a control operation, a proved fork), else
/// patched with the records that newer entries changed.
pub(crate) fn case_views(
    node: &Node,
    tx: &rusqlite::Connection,
    case: &cases::Case,
) -> Result<Arc<CaseViews>> {
    let stamp = crate::store::records_stamp(tx, case.case_ref)?;
    let cached = node.views.get(case.case_ref);
    if let Some(c) = &cached
        && c.stamp == stamp
    {
        return Ok(c.clone());
    }
    let patched = match cached {
        Some(c) if c.stamp[1] == stamp[1] && c.stamp[2] == stamp[2] && c.stamp[0] <= stamp[0] => {
            let changed = crate::store::records_changed_since(tx, case.case_ref, c.stamp[0])?;
            let (mut rows, mut views) = (c.rows.clone(), c.views.clone());
            for (row, view) in changed.iter().zip(open_views(node, &changed)?) {
                match rows.binary_search(&row.row) {
                    Ok(i) => views[i] = view,
                    Err(i) => {
                        rows.insert(i, row.row);
                        views.insert(i, view);
                    }
                }
            }
            // A record that went without a control operation or a fork
            // cannot be, but if the count disagrees, read it all again.
            (rows.len() as i64 == stamp[3]).then_some((rows, views))
        }
        _ => None,
    };
    let (rows, views) = match patched {
        Some(p) => p,
        None => {
            let all = crate::store::records_in_case(tx, case.case_ref)?;
            (all.iter().map(|r| r.row).collect(), open_views(node, &all)?)
        }
    };
    let fresh = Arc::new(CaseViews {
        case_ref: case.case_ref,
        stamp,
        rows,
        views,
        orders: Default::default(),
    });
    node.views.put(fresh.clone());
    Ok(fresh)
}

/// Opens (AEAD) and parses the views of `rows`, on every core.
fn open_views(node: &Node, rows: &[crate::store::RecordRow]) -> Result<Vec<Arc<RecordView>>> {
    use rayon::prelude::*;
    let storage = &node.storage;
    rows.par_iter()
        .map(|r| storage.record_view(r).map(Arc::new))
        .collect()
}

/// The order of `views` by `sort` (ascending; ties by id), computed once
/// per version of the case's views.
fn order(views: &CaseViews, sort: Sort) -> Arc<Vec<u32>> {
    let name = match sort {
        Sort::Updated => "updated",
        Sort::Created => "created",
        Sort::Type => "type",
        Sort::Summary => "summary",
        Sort::Id => "id",
    };
    // Computed under the lock: requests that arrive meanwhile wait for this
    // one instead of sorting the same case again on the same two cores.
    let mut orders = views.orders.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(o) = orders.get(name) {
        return o.clone();
    }
    let keys: Vec<String> = views.views.iter().map(|v| sort_key(v, sort)).collect();
    let mut idx: Vec<u32> = (0..views.views.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        keys[a]
            .cmp(&keys[b])
            .then_with(|| views.views[a].id.cmp(&views.views[b].id))
    });
    let idx = Arc::new(idx);
    orders.insert(name, idx.clone());
    idx
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
        let order = order(views, q.sort);
        let passes = |v: &RecordView| {
            type_name.is_none_or(|t| v.record_type == t)
                && text.as_deref().is_none_or(|t| matches(v, t))
        };
        let ordered: Box<dyn Iterator<Item = &u32>> = if q.descending {
            Box::new(order.iter().rev())
        } else {
            Box::new(order.iter())
        };
        let (mut total, mut records) = (0usize, Vec::new());
        for &i in ordered {
            let v = &views.views[i as usize];
            if !passes(v) {
                continue;
            }
            if total >= q.offset && records.len() < limit {
                records.push(v.as_ref().clone());
            }
            total += 1;
        }
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
        if !views.views.iter().any(|v| v.id == from.trim()) {
            return Err(NodeError::Refused(format!(
                "unknown record {} in this case",
                crate::short(from)
            )));
        }
        let chart = CaseGraph::new(views.views.iter().map(|v| v.as_ref())).neighbourhood(
            from.trim(),
            depth,
            cap,
        );
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
        let p = CaseGraph::new(views.views.iter().map(|v| v.as_ref())).path(
            from.trim(),
            to.trim(),
            PATH_VISITS,
        );
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
