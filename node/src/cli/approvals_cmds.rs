//! `approvals`: four-eyes requests and policy.

use super::*;
use casesync_node::approvals;
use casesync_node::four_eyes::{self, Done};
use casesync_node::trust::Seconded;

pub(crate) fn approvals_command(cli: &Cli, cmd: &ApprovalsCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    match cmd {
        ApprovalsCommand::List => {
            let list = approvals::list(&node, &actor)?;
            if cli.json {
                print_json(&list)?;
            } else if list.is_empty() {
                outln!("no requests in the last 30 days");
            } else {
                for p in &list {
                    outln!(
                        "{:>4}  {:<8}  {}  by {} at {} (until {}){}",
                        p.id,
                        p.state,
                        p.what,
                        p.requester,
                        p.created,
                        p.expires,
                        p.decided_by
                            .as_deref()
                            .map(|d| format!(", decided by {d}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        ApprovalsCommand::Approve { id, .. } if casesync_node::trust::is_request_token(id) => {
            let done = casesync_node::trust::second(&node, &actor, id)?;
            if cli.json {
                print_json(&done)?;
            } else {
                match &done {
                    Seconded::Enrolled { peer, token } => outln!(
                        "approved: {peer} is enrolled once sync brings the statement; the join token for it:\n{token}"
                    ),
                    Seconded::Revoked { peer } => outln!("approved: {peer} revoked"),
                    Seconded::Policy { two_admins } => outln!(
                        "approved: the two-admin policy is {}",
                        if *two_admins { "on" } else { "off" }
                    ),
                }
            }
        }
        ApprovalsCommand::Approve { id, out } => {
            let id: i64 = id.trim().parse().map_err(|_| {
                anyhow!("{id:?} is neither a request number (see `casesync approvals list`) nor a request token (csreq1.)")
            })?;
            let id = &id;
            // A bundle export needs somewhere to go before anything is decided.
            if approvals::action_of(&node, *id)?.as_deref() == Some("bundle-export")
                && out.is_none()
            {
                bail!("request {id} exports a bundle: say where with --out FILE");
            }
            let mut files = out.as_deref().map(casesync_node::bundle::PartFiles::new);
            let done = four_eyes::approve(&node, &actor, *id, &mut |part| match &mut files {
                Some(f) => f.write(part),
                None => Err(casesync_node::NodeError::Refused(
                    "a bundle export needs --out FILE".into(),
                )),
            })?;
            if cli.json {
                print_json(&done)?;
            } else {
                match &done {
                    Done::MemberAdded { case, member } => {
                        outln!("approved request {id}: {member} added to case {case}")
                    }
                    Done::Exported { cases, entries, .. } => outln!(
                        "approved request {id}: a bundle of {cases} cases ({entries} entries) written to {}",
                        out.as_ref()
                            .map(|o| o.display().to_string())
                            .unwrap_or_default()
                    ),
                    Done::Erased(s) => outln!(
                        "approved request {id}: record {} erased here; see `casesync record erasure {}`",
                        s.record,
                        s.record
                    ),
                    Done::Enrolled { token } => {
                        outln!("approved request {id}; the join token for the new node:\n{token}")
                    }
                    Done::Revoked { peer } => outln!("approved request {id}: {peer} revoked"),
                }
            }
        }
        ApprovalsCommand::Deny { id, reason } => {
            approvals::deny(&node, &actor, *id, reason)?;
            if cli.json {
                print_json(&serde_json::json!({"id": id, "state": "denied"}))?;
            } else {
                outln!("denied request {id}");
            }
        }
        ApprovalsCommand::Policy {
            require,
            expires_hours,
        } => {
            let p = if require.is_none() && expires_hours.is_none() {
                approvals::policy(&node)?
            } else {
                let current = approvals::policy(&node)?;
                let list: Vec<String> = match require {
                    Some(r) => vec![r.clone()],
                    None => current.require.iter().cloned().collect(),
                };
                approvals::set_policy(&node, &actor, &list, *expires_hours)?
            };
            if cli.json {
                print_json(&p)?;
            } else {
                outln!("{}", p.describe());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
