//! The link chart of a case: records as nodes; `link` records, and fields of
//! any record whose value is another record's id, as edges. Pure: views in,
//! a neighbourhood or a path out, both capped so a large case never makes a
//! large answer.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::Serialize;

use crate::doc::RecordView;
use crate::record::FieldValue;

/// A record on the chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChartNode {
    pub id: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub label: String,
}

/// An edge: a `link` record (its id, type and status), or a field that names
/// another record (`via` is the field).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChartEdge {
    pub from: String,
    pub to: String,
    pub label: String,
    /// The `link` record that makes this edge, if one does.
    pub link: Option<String>,
    pub status: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Chart {
    pub nodes: Vec<ChartNode>,
    pub edges: Vec<ChartEdge>,
    /// True when the cap cut the neighbourhood short: the page offers to
    /// expand from a node instead of drawing everything.
    pub truncated: bool,
}

/// What a person reads on a chart node: the record's summary, else its type.
pub fn label(v: &RecordView) -> String {
    let s = v.summary();
    if s.is_empty() {
        v.record_type.clone()
    } else {
        s
    }
}

/// The case's graph, built once per request from its views.
pub struct CaseGraph<'a> {
    views: BTreeMap<&'a str, &'a RecordView>,
    /// Neighbours of each record id, with the edge to each, in a stable order.
    adjacent: HashMap<&'a str, Vec<(&'a str, usize)>>,
    edges: Vec<ChartEdge>,
}

impl<'a> CaseGraph<'a> {
    pub fn new(all: impl IntoIterator<Item = &'a RecordView>) -> CaseGraph<'a> {
        let all: Vec<&'a RecordView> = all.into_iter().collect();
        let views: BTreeMap<&str, &RecordView> = all.iter().map(|v| (v.id.as_str(), *v)).collect();
        let mut edges = Vec::new();
        let mut ends: Vec<(&str, &str)> = Vec::new();
        for v in all {
            if v.record_type == "link" {
                let end = |k: &str| match v.fields.get(k) {
                    Some(FieldValue::Str(s)) => views.get_key_value(s.as_str()).map(|(k, _)| *k),
                    _ => None,
                };
                if let (Some(a), Some(b)) = (end("from"), end("to")) {
                    let text = |k: &str| v.fields.get(k).map(|f| f.as_text());
                    edges.push(ChartEdge {
                        from: a.to_string(),
                        to: b.to_string(),
                        label: text("link_type").unwrap_or_default(),
                        link: Some(v.id.clone()),
                        status: text("status"),
                    });
                    ends.push((a, b));
                }
                continue;
            }
            // Any other field whose value is the id of a record of the case.
            for (k, f) in &v.fields {
                if let FieldValue::Str(s) = f
                    && let Some((other, _)) = views.get_key_value(s.as_str())
                    && *other != v.id.as_str()
                {
                    edges.push(ChartEdge {
                        from: v.id.clone(),
                        to: other.to_string(),
                        label: k.clone(),
                        link: None,
                        status: None,
                    });
                    ends.push((v.id.as_str(), other));
                }
            }
        }
        let mut adjacent: HashMap<&str, Vec<(&str, usize)>> = HashMap::new();
        for (i, (a, b)) in ends.iter().enumerate() {
            adjacent.entry(a).or_default().push((b, i));
            adjacent.entry(b).or_default().push((a, i));
        }
        CaseGraph {
            views,
            adjacent,
            edges,
        }
    }

    fn node(&self, id: &str) -> Option<ChartNode> {
        self.views.get(id).map(|v| ChartNode {
            id: v.id.clone(),
            record_type: v.record_type.clone(),
            label: label(v),
        })
    }

    /// The records within `depth` edges of `from`, nearest first, at most
    /// `cap` of them, with the edges among them.
    pub fn neighbourhood(&self, from: &str, depth: usize, cap: usize) -> Chart {
        let Some((start, _)) = self.views.get_key_value(from) else {
            return Chart::default();
        };
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::new();
        let mut queue = VecDeque::from([(*start, 0usize)]);
        let mut truncated = false;
        seen.insert(start);
        while let Some((id, d)) = queue.pop_front() {
            order.push(id);
            if d == depth {
                continue;
            }
            for (next, _) in self.adjacent.get(id).into_iter().flatten() {
                if seen.contains(next) {
                    continue;
                }
                if seen.len() >= cap {
                    truncated = true;
                    break;
                }
                seen.insert(next);
                queue.push_back((next, d + 1));
            }
        }
        let edges = self
            .edges
            .iter()
            .filter(|e| seen.contains(e.from.as_str()) && seen.contains(e.to.as_str()))
            .cloned()
            .collect();
        Chart {
            nodes: order.iter().filter_map(|id| self.node(id)).collect(),
            edges,
            truncated,
        }
    }

    /// A shortest path from `from` to `to` (breadth first, visiting at most
    /// `cap` records): its records and edges in order, or `None`.
    pub fn path(&self, from: &str, to: &str, cap: usize) -> Option<Chart> {
        let (start, _) = self.views.get_key_value(from)?;
        let (goal, _) = self.views.get_key_value(to)?;
        let mut came: HashMap<&str, (&str, usize)> = HashMap::new();
        let mut queue = VecDeque::from([*start]);
        let mut seen = BTreeSet::from([*start]);
        while let Some(id) = queue.pop_front() {
            if id == *goal {
                let (mut nodes, mut edges) = (vec![id], Vec::new());
                let mut at = id;
                while let Some((prev, e)) = came.get(at) {
                    edges.push(self.edges[*e].clone());
                    nodes.push(prev);
                    at = prev;
                }
                nodes.reverse();
                edges.reverse();
                return Some(Chart {
                    nodes: nodes.iter().filter_map(|n| self.node(n)).collect(),
                    edges,
                    truncated: false,
                });
            }
            for (next, e) in self.adjacent.get(id).into_iter().flatten() {
                if seen.len() >= cap {
                    return None;
                }
                if seen.insert(next) {
                    came.insert(next, (id, *e));
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, t: &str, fields: &[(&str, &str)]) -> RecordView {
        RecordView {
            id: id.into(),
            case: "c".into(),
            record_type: t.into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), FieldValue::Str(v.to_string())))
                .collect(),
            originator: "o".into(),
            created: "t".into(),
            updated: "t".into(),
            grading: None,
            handling: Default::default(),
            releasable_to: vec![],
            extra: Default::default(),
        }
    }

    /// marin -link- victor -link- sparkle; phone names marin by a field;
    /// lonely has no edge; a link to a record not in the case draws nothing.
    fn case() -> Vec<RecordView> {
        vec![
            rec("marin", "person", &[("name", "Marin Dobre")]),
            rec("victor", "person", &[("name", "Victor Ilie")]),
            rec("sparkle", "organisation", &[("name", "Sparkle SRL")]),
            rec(
                "phone",
                "phone",
                &[("number", "+40722123456"), ("owner", "marin")],
            ),
            rec("lonely", "note", &[("text", "nothing links here")]),
            rec(
                "l1",
                "link",
                &[
                    ("from", "marin"),
                    ("to", "victor"),
                    ("link_type", "associate"),
                    ("status", "unconfirmed"),
                ],
            ),
            rec(
                "l2",
                "link",
                &[
                    ("from", "victor"),
                    ("to", "sparkle"),
                    ("link_type", "director"),
                ],
            ),
            rec(
                "l3",
                "link",
                &[("from", "victor"), ("to", "elsewhere"), ("link_type", "x")],
            ),
        ]
    }

    #[test]
    fn a_neighbourhood_grows_by_depth_and_stops_at_its_cap() {
        let all = case();
        let g = CaseGraph::new(&all);
        let one = g.neighbourhood("marin", 1, 100);
        let ids: BTreeSet<_> = one.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, BTreeSet::from(["marin", "victor", "phone"]));
        assert_eq!(one.edges.len(), 2);
        assert!(
            one.edges
                .iter()
                .any(|e| e.link.as_deref() == Some("l1")
                    && e.status.as_deref() == Some("unconfirmed"))
        );
        assert!(
            one.edges
                .iter()
                .any(|e| e.label == "owner" && e.link.is_none())
        );
        assert!(!one.truncated);
        let two = g.neighbourhood("marin", 2, 100);
        assert_eq!(two.nodes.len(), 4);
        assert_eq!(two.nodes[0].label, "Marin Dobre");
        let capped = g.neighbourhood("marin", 5, 2);
        assert_eq!(capped.nodes.len(), 2);
        assert!(capped.truncated);
        assert!(g.neighbourhood("nope", 1, 10).nodes.is_empty());
        assert_eq!(g.neighbourhood("lonely", 3, 10).nodes.len(), 1);
    }

    #[test]
    fn a_shortest_path_between_two_records() {
        let all = case();
        let g = CaseGraph::new(&all);
        let p = g.path("phone", "sparkle", 100).unwrap();
        let ids: Vec<_> = p.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["phone", "marin", "victor", "sparkle"]);
        assert_eq!(p.edges.len(), 3);
        assert!(g.path("phone", "lonely", 100).is_none());
        assert!(
            g.path("phone", "sparkle", 2).is_none(),
            "the cap bounds the search"
        );
        assert_eq!(g.path("marin", "marin", 10).unwrap().nodes.len(), 1);
    }
}
