//! `case`: create, list, show, members, roles, appoint a lead.

use super::*;

pub(crate) fn case_json(node: &Node, c: &cases::Case) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(cases::summary(
        node,
        node.store.conn(),
        c,
    )?)?)
}

pub(crate) fn case_command(cli: &Cli, cmd: &CaseCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    match cmd {
        CaseCommand::Create {
            title,
            require_justification,
        } => {
            let id = cases::create(&node, &actor, title, *require_justification)?;
            if cli.json {
                print_json(&json!({"id": id.to_string(), "title": title.trim()}))?;
            } else {
                outln!("{id}");
            }
        }
        CaseCommand::List { all } => {
            let all = cases::working_list(&node, &actor, *all)?;
            if cli.json {
                let v = all
                    .iter()
                    .map(|c| case_json(&node, c))
                    .collect::<Result<Vec<_>>>()?;
                print_json(&v)?;
            } else if all.is_empty() {
                outln!("no cases yet: create one with `casesync case create --title TITLE`");
            } else {
                outln!("{:<36}  {:<12}  {:>8}  TITLE", "ID", "ROLE", "RECORDS");
                for c in &all {
                    let (n, _) = cases::sizes(node.store.conn(), c)?;
                    outln!(
                        "{:<36}  {:<12}  {:>8}  {}",
                        c.id,
                        c.my_role(&node).map(|r| r.name()).unwrap_or("-"),
                        n,
                        c.meta.title
                    );
                }
            }
        }
        CaseCommand::Archive { case, undo } => {
            let archived = casesync_node::erasure::archive_case(&node, &actor, case, !undo)?;
            if cli.json {
                print_json(&serde_json::json!({"case": case, "archived": archived}))?;
            } else if archived {
                outln!(
                    "archived case {case}: out of this node's working lists (`casesync case list --all` shows it)"
                );
            } else {
                outln!("case {case} is back in this node's working lists");
            }
        }
        CaseCommand::Policy {
            case,
            four_eyes,
            originator_erases,
        } => {
            let erases = match originator_erases.as_deref() {
                None => None,
                Some("on") => Some(true),
                Some("off") => Some(false),
                Some(other) => bail!("--originator-erases takes on or off, not {other:?}"),
            };
            let p = if four_eyes.is_none() && erases.is_none() {
                let (c, _) = cases::show(&node, &actor, case, |_| Ok(()))?;
                c.state.policy
            } else {
                cases::set_policy(&node, &actor, case, four_eyes.as_deref(), erases)?
            };
            if cli.json {
                print_json(&json!({
                    "four_eyes": p.four_eyes,
                    "originator_erases": p.originator_erases,
                }))?;
            } else {
                outln!("{}", cases::describe_policy(&p));
            }
        }
        CaseCommand::Close { case } => {
            let id = casesync_node::erasure::close_case(&node, &actor, case)?;
            if cli.json {
                print_json(&serde_json::json!({"case": id, "closed": true}))?;
            } else {
                outln!("closed case {id}: read-only for every member as the closing reaches it");
            }
        }
        CaseCommand::Consent {
            case,
            member,
            reason,
        } => {
            let c = cases::consent(&node, &actor, case, member, reason)?;
            if cli.json {
                print_json(&c)?;
            } else {
                outln!(
                    "consented: this node's {} record(s) under H2 in case {} may go to {} ({}, {})",
                    c.h2_records,
                    c.case,
                    c.name,
                    c.org,
                    c.peer_id
                );
            }
        }
        CaseCommand::Erase { case, reason } => {
            let s = casesync_node::erasure::erase_case(&node, &actor, case, reason)?;
            if cli.json {
                print_json(&s)?;
            } else {
                outln!(
                    "erased case {} here (erasure {}); each member erases it as the erasure reaches it and signs a receipt: see `casesync case erasure {}`",
                    s.case,
                    &s.erasure[..12],
                    s.case
                );
            }
        }
        CaseCommand::Erasure { case } => {
            let st = casesync_node::erasure::case_status(&node, &actor, case)?;
            if cli.json {
                print_json(&st)?;
            } else {
                outln!(
                    "case {}: erased by {} at {} (erasure {})",
                    st.case,
                    st.erased_by,
                    casesync_node::clock::format_ms(st.erased_ms),
                    &st.erasure[..12]
                );
                for m in &st.members {
                    outln!("  {} {} ({}): {}", m.node, m.name, m.org, m.state);
                }
            }
        }
        CaseCommand::Show { case } => {
            let (c, v) = cases::show(&node, &actor, case, |c| {
                case_json(&node, c).map_err(|e| casesync_node::NodeError::Refused(format!("{e:#}")))
            })?;
            if cli.json {
                print_json(&v)?;
            } else {
                outln!("case:      {}\ntitle:     {}", c.id, c.meta.title);
                outln!("records:   {}\nentries:   {}", v["records"], v["entries"]);
                outln!(
                    "key epoch: {} ({} in all)",
                    c.state
                        .epochs
                        .last()
                        .map(|e| e.id.short())
                        .unwrap_or_default(),
                    c.state.epochs.len()
                );
                if c.meta.require_justification {
                    outln!("policy:    every action needs --justification");
                }
                if c.state.policy != Default::default() {
                    outln!("policy:    {}", cases::describe_policy(&c.state.policy));
                }
                outln!("members:");
                for m in v["members"].as_array().into_iter().flatten() {
                    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                    outln!(
                        "  {:<12} {}  {} ({}, {}){}",
                        s("role"),
                        s("peer_id"),
                        s("name"),
                        s("org"),
                        s("country"),
                        if s("status") == "revoked" {
                            "  REVOKED from the federation"
                        } else {
                            ""
                        }
                    );
                }
                for r in v["removed"].as_array().into_iter().flatten() {
                    outln!(
                        "  removed      {}  log cut at seq {}: {}",
                        r["peer_id"].as_str().unwrap_or_default(),
                        r["cut_seq"],
                        r["reason"].as_str().unwrap_or_default()
                    );
                }
                for r in v["h2_consents"].as_array().into_iter().flatten() {
                    outln!(
                        "  H2 consent   {} lets {} hold its H2 records",
                        r["originator"].as_str().unwrap_or_default(),
                        r["member"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        CaseCommand::Member(MemberCommand::Add { case, member, role }) => {
            let role = role.parse()?;
            let (id, card) = cases::add_member(&node, &actor, case, member, role)?;
            let held_back = {
                let conn = node.store.conn();
                let c = cases::load(&node, conn, &id)?;
                cases::h2_held_back(&node, conn, &c, &card.identity.ed25519)?
            };
            if cli.json {
                print_json(&json!({
                    "case": id.to_string(),
                    "peer_id": card.peer_id(),
                    "name": card.name,
                    "role": role.name(),
                    "h2_held_back": held_back
                        .iter()
                        .map(|(org, n)| json!({"org": org, "records": n}))
                        .collect::<Vec<_>>(),
                }))?;
            } else {
                outln!(
                    "added {} ({}) to case {id} as {}",
                    card.name,
                    card.peer_id(),
                    role.name()
                );
                for (org, n) in &held_back {
                    outln!(
                        "{n} record(s) of {org} under handling code H2 stay away from {} until {org} consents (`casesync case consent {id} {}` on its node)",
                        card.name,
                        card.peer_id()
                    );
                }
            }
        }
        CaseCommand::Member(MemberCommand::Remove {
            case,
            member,
            reason,
        }) => {
            let (id, card, cut) = cases::remove_member(&node, &actor, case, member, reason)?;
            if cli.json {
                print_json(
                    &json!({"case": id.to_string(), "peer_id": card.peer_id(), "name": card.name, "cut_seq": cut, "reason": reason.trim()}),
                )?;
            } else {
                outln!(
                    "removed {} ({}) from case {id}; its log is cut at seq {cut} and a new key epoch excludes it",
                    card.name,
                    card.peer_id()
                );
            }
        }
        CaseCommand::AppointLead {
            case,
            member,
            reason,
        } => {
            let (id, card) = cases::appoint_lead(&node, &actor, case, member, reason)?;
            if cli.json {
                print_json(
                    &json!({"case": id.to_string(), "peer_id": card.peer_id(), "name": card.name, "role": "lead"}),
                )?;
            } else {
                outln!(
                    "{} ({}) is now lead of case {id}; it takes effect on each member as it learns of the revocations",
                    card.name,
                    card.peer_id()
                );
            }
        }
        CaseCommand::Member(MemberCommand::Role { case, member, role }) => {
            let role: casesync_schema::control::Role = role.parse()?;
            let (id, card, before) = cases::change_role(&node, &actor, case, member, role)?;
            if cli.json {
                print_json(
                    &json!({"case": id.to_string(), "peer_id": card.peer_id(), "name": card.name, "role": role.name(), "was": before.name()}),
                )?;
            } else {
                outln!(
                    "{} ({}) is now {} of case {id} (was {})",
                    card.name,
                    card.peer_id(),
                    role.name(),
                    before.name()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
