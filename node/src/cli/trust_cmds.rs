//! `federation` and `trust`: create, invite, join, leave; list and revoke.

use super::*;

pub(crate) fn print_trust(cli: &Cli, roster: &trust::Roster) -> Result<()> {
    let st = &roster.registry;
    let nodes = roster.nodes();
    if cli.json {
        return print_json(
            &json!({"federation": st.federation.to_hex(), "name": st.name, "two_admins": st.two_admins, "nodes": nodes}),
        );
    }
    outln!(
        "federation {} ({}){}",
        st.name,
        st.federation.to_hex(),
        if st.two_admins {
            "; two admin nodes enroll and revoke"
        } else {
            ""
        }
    );
    for n in st.nodes.values() {
        outln!(
            "{}  {:<14} {:<24} {}  {:<5}  {}",
            n.card.peer_id(),
            n.card.name,
            n.card.org,
            n.card.country,
            if n.admin { "admin" } else { "-" },
            if n.revoked { "revoked" } else { "active" }
        );
        let f = nodes
            .iter()
            .find(|r| r.peer_id == n.card.peer_id())
            .map_or(0, |r| r.equivocated_in_cases);
        if f > 0 {
            outln!(
                "    EQUIVOCATED: signed two different entries with one seq in {f} case(s); its log is frozen there"
            );
        }
    }
    Ok(())
}

pub(crate) fn federation_command(cli: &Cli, cmd: &FederationCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    match cmd {
        FederationCommand::Create { name } => {
            let st = trust::create(&node, &actor, name)?;
            if cli.json {
                print_json(&json!({"federation": st.federation.to_hex(), "name": st.name}))?;
            } else {
                outln!("{}", st.federation.to_hex());
            }
        }
        FederationCommand::Invite { card, admin } => {
            let card = casesync_schema::NodeCard::from_text(card)
                .map_err(|e| anyhow!("invalid node card: {e}"))?;
            let token = trust::invite(&node, &actor, &card, *admin)?;
            if cli.json {
                print_json(
                    &json!({"peer_id": card.peer_id(), "name": card.name, "admin": admin, "token": token}),
                )?;
            } else {
                outln!("{token}");
            }
        }
        FederationCommand::Join {
            token,
            expect_federation,
        } => {
            use std::io::IsTerminal;
            let ask = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
            let mut invited_by = None;
            let st = trust::join(&node, &actor, token, |inv| {
                let id = inv.federation.to_hex();
                eprintln!(
                    "federation \"{}\" ({id})\ninvited by {} ({}), {}, {}\ntoken valid until {}",
                    inv.name,
                    inv.inviter.name,
                    inv.inviter.peer_id(),
                    inv.inviter.org,
                    inv.inviter.country,
                    inv.expires
                );
                invited_by = Some(inv.inviter.peer_id());
                if let Some(want) = expect_federation {
                    let want = want.trim().to_ascii_lowercase();
                    if want.len() < 16 || !id.starts_with(&want) {
                        return Err(casesync_node::NodeError::Refused(format!(
                            "this token is for federation {id}, not the expected {want}: nothing was joined"
                        )));
                    }
                } else if ask {
                    eprint!("Join this federation? [y/N] ");
                    let mut line = String::new();
                    let _ = std::io::stdin().read_line(&mut line);
                    if !matches!(line.trim(), "y" | "Y" | "yes") {
                        return Err(casesync_node::NodeError::Refused("not joined".into()));
                    }
                }
                Ok(())
            })?;
            if cli.json {
                print_json(
                    &json!({"federation": st.federation.to_hex(), "name": st.name, "nodes": st.nodes.len(), "invited_by": invited_by}),
                )?;
            } else {
                outln!(
                    "joined federation {} ({}), {} node(s) enrolled",
                    st.name,
                    st.federation.to_hex(),
                    st.nodes.len()
                );
            }
        }
        FederationCommand::Policy { two_admins } => {
            let on = match two_admins.as_deref() {
                None => {
                    let st = trust::load(node.store.conn())?.ok_or_else(|| {
                        anyhow!("this node belongs to no federation: `casesync federation create` or `join` first")
                    })?;
                    st.two_admins
                }
                Some("on") => trust::set_policy(&node, &actor, true)?,
                Some("off") => trust::set_policy(&node, &actor, false)?,
                Some(other) => bail!("--two-admins takes on or off, not {other:?}"),
            };
            if cli.json {
                print_json(&json!({"two_admins": on}))?;
            } else if on {
                outln!("two admins for enroll and revoke (and for turning this off)");
            } else {
                outln!("one admin enrolls and revokes");
            }
        }
        FederationCommand::Leave => {
            let name = trust::leave(&node, &actor)?;
            if cli.json {
                print_json(&json!({"left": name}))?;
            } else {
                outln!("left federation {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
