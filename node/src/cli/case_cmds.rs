//! `case`: create, list, show, members, roles, appoint a lead.

use super::*;

pub(crate) fn case_json(node: &Node, c: &cases::Case) -> Result<serde_json::Value> {
    let conn = node.store.conn();
    // A member whose node the federation revoked stays a member until a lead
    // removes it (with a cut): it is shown as revoked meanwhile.
    let registry = casesync_node::trust::load(conn)?;
    let revoked = |id: &[u8; 32]| {
        registry
            .as_ref()
            .and_then(|r| r.nodes.get(id))
            .is_some_and(|n| n.revoked)
    };
    let members: Vec<_> = c
        .state
        .members
        .iter()
        .map(|(id, m)| json!({"peer_id": m.card.peer_id(), "name": m.card.name, "org": m.card.org, "country": m.card.country, "role": m.role.name(), "status": if revoked(id) { "revoked" } else { "active" }}))
        .collect();
    let epoch = c.state.epochs.last().map(|e| e.id.to_hex());
    let (records, entries) = cases::sizes(conn, c)?;
    // Who can read what is sealed under the newest epoch: only current members
    // once a lead has put a merge into effect.
    let readers: Vec<String> = c
        .state
        .epochs
        .last()
        .map(|e| {
            e.wraps
                .keys()
                .map(|k| casesync_crypto::identity::peer_id_of(k).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let removed: Vec<_> = c
        .state
        .removed
        .iter()
        .map(|(k, r)| {
            // Sealed under the removal's epoch: a node without that key (a
            // relay) sees that a reason exists, not what it says.
            let reason = cases::removal_reason(node, conn, c, r)
                .unwrap_or_else(|| "(sealed: this node holds no key to read it)".into());
            json!({"peer_id": casesync_crypto::identity::peer_id_of(k).unwrap_or_default(),
                   "cut_seq": r.cut.last().map_or(0, |e| e.seq), "reason": reason})
        })
        .collect();
    Ok(json!({
        "id": c.id.to_string(),
        "title": c.meta.title,
        "require_justification": c.meta.require_justification,
        "role": c.my_role(node).map(|r| r.name()),
        "members": members,
        "removed": removed,
        "key_epoch": epoch,
        "key_epochs": c.state.epochs.len(),
        "key_epoch_readers": readers,
        "records": records,
        "entries": entries,
    }))
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
        CaseCommand::List => {
            let all = cases::list_for(&node, &actor)?;
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
            }
        }
        CaseCommand::Member(MemberCommand::Add { case, member, role }) => {
            let role = role.parse()?;
            let (id, card) = cases::add_member(&node, &actor, case, member, role)?;
            if cli.json {
                print_json(
                    &json!({"case": id.to_string(), "peer_id": card.peer_id(), "name": card.name, "role": role.name()}),
                )?;
            } else {
                outln!(
                    "added {} ({}) to case {id} as {}",
                    card.name,
                    card.peer_id(),
                    role.name()
                );
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
