//! `review`: retention review.

use super::*;
use casesync_node::review::{self, PolicyChange};

/// `KEY=YEARS` pairs.
fn years_of(pairs: &[String], what: &str) -> Result<Vec<(String, u32)>> {
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--{what} {p:?}: write {}=YEARS", what.to_uppercase())
            })?;
            let years = v
                .trim()
                .parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--{what} {p:?}: {v:?} is not a number of years"))?;
            Ok((k.trim().to_string(), years))
        })
        .collect()
}

pub(crate) fn review_command(cli: &Cli, cmd: &ReviewCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    match cmd {
        ReviewCommand::Due { case } => {
            let due = review::due(&node, &actor, case.as_deref())?;
            if cli.json {
                print_json(&due)?;
            } else if due.is_empty() {
                outln!("nothing is due for review");
            } else {
                for d in &due {
                    outln!(
                        "{}  {}  {} {:?}  due {} (group {}{})",
                        d.record,
                        d.case,
                        d.record_type,
                        d.summary,
                        d.due,
                        d.group,
                        if d.reviewed_before {
                            ", reviewed before"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        ReviewCommand::Retain {
            record,
            reason,
            until,
        } => {
            let r = review::retain(&node, &actor, record, reason, until.as_deref())?;
            if cli.json {
                print_json(&r)?;
            } else {
                outln!(
                    "retained record {}; next review {}",
                    r.record,
                    r.next_review.as_deref().unwrap_or_default()
                );
            }
        }
        ReviewCommand::Erase { record, reason } => {
            let r = review::erase(&node, &actor, record, reason)?;
            if cli.json {
                print_json(&r)?;
            } else {
                outln!(
                    "erased record {} of case {} here; see `casesync record erasure {}` for every member",
                    r.record,
                    r.case,
                    r.record
                );
            }
        }
        ReviewCommand::Policy {
            groups,
            types,
            categories,
        } => {
            let p = if groups.is_empty() && types.is_empty() && categories.is_empty() {
                review::policy(&node)?
            } else {
                let groups = years_of(groups, "group")?
                    .into_iter()
                    .map(|(g, y)| {
                        g.parse::<u8>()
                            .map(|g| (g, y))
                            .map_err(|_| anyhow::anyhow!("--group {g}: groups are 1, 2 and 3"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                review::set_policy(
                    &node,
                    &actor,
                    &PolicyChange {
                        groups,
                        types: years_of(types, "type")?,
                        categories: years_of(categories, "category")?,
                    },
                )?
            };
            if cli.json {
                print_json(&p)?;
            } else {
                outln!("{}", review::describe(&p));
            }
        }
        ReviewCommand::Group { case, group } => {
            let g = review::set_group(&node, &actor, case, *group)?;
            if cli.json {
                print_json(&serde_json::json!({"case": case, "group": g.number()}))?;
            } else {
                outln!("case {case}: MoPI group {}", g.number());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
