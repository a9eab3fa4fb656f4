//! Retention review (issue 19): each record is due for review at a date
//! from this node's policy (`casesync_schema::retention`), by its case's
//! MoPI group, its type and a person's category; `review due` lists what is
//! due, and a review retains a record (with a reason and the next date) or
//! erases it (`record erase`). Each agency is the controller of its own
//! data: policy, groups and decisions are this node's, and audited.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use casesync_schema::retention::{self, Group, Policy};

use crate::access::Need;
use crate::audit::{self, Action, Actor, Event};
use crate::cases::{self, Case};
use crate::{Node, NodeError, Result, erasure, records, store};

const POLICY_KEY: &str = "retention_policy";

/// This node's review periods (the MoPI defaults until set).
pub fn policy(node: &Node) -> Result<Policy> {
    crate::settings::load(node, POLICY_KEY, "retention policy")
}

/// What `review policy` changes: per group, type or category, years.
#[derive(Clone, Debug, Default)]
pub struct PolicyChange {
    pub groups: Vec<(u8, u32)>,
    pub types: Vec<(String, u32)>,
    pub categories: Vec<(String, u32)>,
}

/// `review policy`: changes this node's review periods (a trust operation:
/// an admin or the node's operator), audited; returns the policy in force.
pub fn set_policy(node: &Node, actor: &Actor, change: &PolicyChange) -> Result<Policy> {
    audit::audited(node, actor, Action::ReviewPolicy, None, None, || {
        actor.require(Need::Trust)?;
        let mut p = policy(node)?;
        let check = |years: u32| {
            if years == 0 || years > retention::MAX_YEARS {
                Err(NodeError::Refused(format!(
                    "a review period is 1 to {} years, not {years}",
                    retention::MAX_YEARS
                )))
            } else {
                Ok(years)
            }
        };
        for (g, years) in &change.groups {
            let group = Group::new(*g).ok_or_else(|| {
                NodeError::Refused(format!("MoPI groups are 1, 2 and 3, not {g}"))
            })?;
            p.group_years[usize::from(group.number() - 1)] = check(*years)?;
        }
        for (t, years) in &change.types {
            let t = t
                .parse::<casesync_schema::record::RecordType>()
                .map_err(|e| NodeError::Refused(e.to_string()))?;
            p.type_years.insert(t.name().to_string(), check(*years)?);
        }
        for (c, years) in &change.categories {
            let c = c.to_ascii_lowercase();
            if !casesync_schema::record::PERSON_CATEGORIES.contains(&c.as_str()) {
                return Err(NodeError::Refused(format!(
                    "unknown person category {c:?}: one of {}",
                    casesync_schema::record::PERSON_CATEGORIES.join(", ")
                )));
            }
            p.category_years.insert(c, check(*years)?);
        }
        let ev = Event::new(Action::ReviewPolicy).detail(describe(&p));
        crate::settings::save(node, actor, POLICY_KEY, &p, ev)?;
        Ok(p)
    })
}

/// The policy in one line.
pub fn describe(p: &Policy) -> String {
    let mut parts = vec![format!(
        "group 1: {} years, group 2: {}, group 3: {}",
        p.group_years[0], p.group_years[1], p.group_years[2]
    )];
    parts.extend(p.type_years.iter().map(|(t, y)| format!("{t}: {y} years")));
    parts.extend(
        p.category_years
            .iter()
            .map(|(c, y)| format!("person ({c}): {y} years")),
    );
    parts.join("; ")
}

/// `review group CASE N`: the case's MoPI group on this node (Manage).
pub fn set_group(node: &Node, actor: &Actor, case_text: &str, group: u8) -> Result<Group> {
    audit::audited(
        node,
        actor,
        Action::ReviewPolicy,
        Some(case_text),
        None,
        || {
            let group = Group::new(group).ok_or_else(|| {
                NodeError::Refused(format!("MoPI groups are 1, 2 and 3, not {group}"))
            })?;
            node.store.write(|tx| -> Result<Group> {
                let case = cases::load_by_text(node, tx, case_text)?;
                cases::require_access(actor, tx, &case, Need::Manage)?;
                store::set_case_group(tx, case.case_ref, group.number())?;
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::ReviewPolicy)
                        .case(case.id)
                        .detail(format!("MoPI group {}", group.number())),
                )?;
                Ok(group)
            })
        },
    )
}

/// A record due for review.
#[derive(Clone, Debug, Serialize)]
pub struct Due {
    pub record: String,
    pub case: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub summary: String,
    pub created: String,
    pub due: String,
    pub group: u8,
    /// Whether a review retained it before (and this is the next one).
    pub reviewed_before: bool,
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

fn ms_of(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn time_of(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// When each record of `case` is due, with its view.
fn due_dates(
    node: &Node,
    policy: &Policy,
    case: &Case,
) -> Result<Vec<(casesync_schema::doc::RecordView, OffsetDateTime, bool, u8)>> {
    let conn = node.store.conn();
    let group = store::case_group(conn, case.case_ref)?
        .and_then(Group::new)
        .unwrap_or(Group::DEFAULT);
    let reviews = store::reviews_in_case(conn, case.case_ref)?;
    let mut out = Vec::new();
    for row in store::records_in_case(conn, case.case_ref)? {
        let view = node.storage.record_view(&row)?;
        let Some(created) = parse_time(&view.created) else {
            continue;
        };
        let category = view.fields.get("category").map(|c| c.as_text());
        let reviewed = reviews.get(&row.row).map(|ms| time_of(*ms));
        let due = retention::due(
            policy,
            group,
            &view.record_type,
            category.as_deref(),
            created,
            reviewed,
        );
        out.push((view, due, reviewed.is_some(), group.number()));
    }
    Ok(out)
}

/// `review due [--case CASE]`: the records due for review now, oldest due
/// first, of the cases `actor` may read.
pub fn due(node: &Node, actor: &Actor, case_text: Option<&str>) -> Result<Vec<Due>> {
    audit::audited(node, actor, Action::ReviewDue, case_text, None, || {
        let policy = policy(node)?;
        let conn = node.store.conn();
        let cases = match case_text {
            Some(c) => {
                let case = cases::load_by_text(node, conn, c)?;
                cases::require_access(actor, conn, &case, Need::Read)?;
                vec![case]
            }
            None => cases::list_for(node, actor)?,
        };
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        for case in &cases {
            for (view, due, before, group) in due_dates(node, &policy, case)? {
                if due <= now {
                    out.push((
                        due,
                        Due {
                            record: view.id.clone(),
                            case: case.id.to_string(),
                            record_type: view.record_type.clone(),
                            summary: view.summary(),
                            created: view.created.clone(),
                            due: crate::clock::format_ms(ms_of(due)),
                            group,
                            reviewed_before: before,
                        },
                    ));
                }
            }
        }
        out.sort_by_key(|(d, _)| *d);
        let out: Vec<Due> = out.into_iter().map(|(_, d)| d).collect();
        let mut ev = Event::new(Action::ReviewDue)
            .records(out.iter().map(|d| d.record.clone()))
            .detail(format!("{} records due for review", out.len()));
        if let [case] = cases.as_slice() {
            ev = ev.case(case.id);
        }
        audit::append_alone(node, actor, ev)?;
        Ok(out)
    })
}

/// What a review decided.
#[derive(Clone, Debug, Serialize)]
pub struct Reviewed {
    pub record: String,
    pub case: String,
    /// `retain` or `erase`.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_review: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure: Option<String>,
}

/// `review retain RECORD --reason TEXT [--until DATE]`: the record is kept,
/// and next due at `until` (a date, `YYYY-MM-DD`) or after another period.
pub fn retain(
    node: &Node,
    actor: &Actor,
    record_text: &str,
    reason: &str,
    until: Option<&str>,
) -> Result<Reviewed> {
    audit::audited(
        node,
        actor,
        Action::ReviewRetain,
        None,
        Some(record_text),
        || {
            if reason.trim().is_empty() {
                return Err(NodeError::Refused(
                    "a review needs --reason: why the record is still necessary".into(),
                ));
            }
            let policy = policy(node)?;
            node.store.write(|tx| -> Result<Reviewed> {
                let (case, rid, view) =
                    records::open_for(node, actor, tx, record_text, Need::Manage)?;
                let now = OffsetDateTime::now_utc();
                let next = match until {
                    Some(d) => {
                        let date = time::Date::parse(
                            d,
                            time::macros::format_description!("[year]-[month]-[day]"),
                        )
                        .map_err(|e| {
                            NodeError::Refused(format!(
                                "--until {d:?} is not a date YYYY-MM-DD ({e})"
                            ))
                        })?;
                        let t = date.midnight().assume_utc();
                        if t <= now || t > retention::add_years(now, retention::MAX_YEARS) {
                            return Err(NodeError::Refused(format!(
                                "--until {d} must be after today and within {} years",
                                retention::MAX_YEARS
                            )));
                        }
                        t
                    }
                    None => {
                        let group = store::case_group(tx, case.case_ref)?
                            .and_then(Group::new)
                            .unwrap_or(Group::DEFAULT);
                        let category = view.fields.get("category").map(|c| c.as_text());
                        retention::add_years(
                            now,
                            policy.years(group, &view.record_type, category.as_deref()),
                        )
                    }
                };
                let row =
                    store::record_in_case(tx, case.case_ref, &node.storage.record_index(&rid.0))?
                        .ok_or_else(|| NodeError::Refused(format!("unknown record {rid}")))?;
                store::set_review(tx, row.row, ms_of(next), ms_of(now))?;
                let next_text = crate::clock::format_ms(ms_of(next));
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::ReviewRetain)
                        .case(case.id)
                        .records([rid.to_string()])
                        .detail(format!("retained until {next_text}: {reason}")),
                )?;
                Ok(Reviewed {
                    record: rid.to_string(),
                    case: case.id.to_string(),
                    decision: "retain",
                    next_review: Some(next_text),
                    erasure: None,
                })
            })
        },
    )
}

/// `review erase RECORD --reason TEXT`: the review decided the record goes;
/// it is erased from every member (`record erase`: a lead's).
pub fn erase(node: &Node, actor: &Actor, record_text: &str, reason: &str) -> Result<Reviewed> {
    let started = erasure::erase(
        node,
        actor,
        record_text,
        &format!("retention review: {reason}"),
    )?;
    Ok(Reviewed {
        record: started.record,
        case: started.case,
        decision: "erase",
        next_review: None,
        erasure: Some(started.erasure),
    })
}
