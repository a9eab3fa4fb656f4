//! `user`: accounts of the web front end.

use super::*;
use casesync_node::access::Role;
use casesync_node::users;

/// The password for `user add` / `user passwd`: stdin (a line, or the same line
/// twice), a prompt twice on a terminal, or none (a one-time password is made).
fn new_password() -> Result<Option<Zeroizing<String>>> {
    if std::io::stdin().is_terminal() {
        let a = Zeroizing::new(
            rpassword::prompt_password("password (empty: make a one-time password): ")
                .context("cannot read the password")?,
        );
        if a.is_empty() {
            return Ok(None);
        }
        let b = Zeroizing::new(
            rpassword::prompt_password("repeat password: ").context("cannot read the password")?,
        );
        if *a != *b {
            bail!("the passwords did not match; nothing was changed");
        }
        return Ok(Some(a));
    }
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("cannot read the password from standard input")?;
    let mut lines = text.lines();
    let Some(first) = lines.next().filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if let Some(second) = lines.next()
        && second != first
    {
        bail!("the two password lines on standard input differ; nothing was changed");
    }
    Ok(Some(Zeroizing::new(first.to_string())))
}

fn print_made(cli: &Cli, name: &str, made: Option<Zeroizing<String>>, done: &str) -> Result<()> {
    if cli.json {
        return print_json(
            &json!({"name": name, "one_time_password": made.as_ref().map(|p| p.as_str())}),
        );
    }
    match made {
        Some(p) => outln!(
            "{done}; one-time password (shown once, give it to {name} in person): {}",
            p.as_str()
        ),
        None => outln!("{done}"),
    }
    Ok(())
}

pub(crate) fn user_command(cli: &Cli, cmd: &UserCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    match cmd {
        UserCommand::Add { name, role } => {
            let role: Role = role.parse()?;
            let pw = new_password()?;
            let made = users::add(&node, &actor, name, role, pw.as_ref().map(|p| p.as_str()))?;
            print_made(
                cli,
                name.trim(),
                made,
                &format!("added {} ({})", name.trim(), role.name()),
            )?;
        }
        UserCommand::List => {
            let all = users::list(&node, &actor)?;
            if cli.json {
                print_json(&all)?;
            } else if all.is_empty() {
                outln!("no users yet: add one with `casesync user add NAME --role admin`");
            } else {
                for u in &all {
                    let state = if u.disabled {
                        "disabled".to_string()
                    } else if let Some(t) = &u.locked_until {
                        format!("locked until {t}")
                    } else {
                        "active".to_string()
                    };
                    outln!(
                        "{:<24} {:<10} {:<24} created {}",
                        u.name,
                        u.role.name(),
                        state,
                        u.created
                    );
                }
            }
        }
        UserCommand::Disable { name } => {
            let ended = users::disable(&node, &actor, name)?;
            if cli.json {
                print_json(
                    &json!({"name": name.trim(), "disabled": true, "sessions_ended": ended}),
                )?;
            } else {
                outln!("disabled {}; {ended} session(s) ended", name.trim());
            }
        }
        UserCommand::Passwd { name } => {
            let pw = new_password()?;
            let made = users::set_password(&node, &actor, name, pw.as_ref().map(|p| p.as_str()))?;
            print_made(
                cli,
                name.trim(),
                made,
                &format!("password of {} changed; its sessions ended", name.trim()),
            )?;
        }
        UserCommand::Assign { name, case } | UserCommand::Unassign { name, case } => {
            let assign = matches!(cmd, UserCommand::Assign { .. });
            let changed = users::assign(&node, &actor, name, case, assign)?;
            if cli.json {
                print_json(
                    &json!({"name": name.trim(), "case": case.trim(), "assigned": assign, "changed": changed}),
                )?;
            } else {
                let what = if assign { "assigned" } else { "unassigned" };
                outln!(
                    "{what} case {} {} {}{}",
                    case.trim(),
                    if assign { "to" } else { "from" },
                    name.trim(),
                    if changed { "" } else { " (no change)" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
