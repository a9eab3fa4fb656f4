//! `evidence`: files stored with a case.

use super::*;
use casesync_node::evidence::{self, AddRequest, FileReport};

fn print_file(cli: &Cli, r: &FileReport, verb: &str) -> Result<()> {
    if cli.json {
        return print_json(r);
    }
    match &r.out {
        Some(out) => outln!(
            "{verb} {} ({} bytes, {} pieces) to {out}\nsha256 {}",
            r.file,
            r.size,
            r.pieces,
            r.sha256
        ),
        None => outln!(
            "{verb} {} ({} bytes): {} pieces and the whole file hold\nsha256 {}",
            r.file,
            r.size,
            r.pieces,
            r.sha256
        ),
    }
    Ok(())
}

pub(crate) fn evidence_command(cli: &Cli, cmd: &EvidenceCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    match cmd {
        EvidenceCommand::Add {
            case,
            file,
            title,
            fields,
        } => {
            let fields = parse_fields(fields)?
                .into_iter()
                .map(|(k, v)| (k, v.as_text()))
                .collect();
            let v = evidence::add(
                &node,
                &actor,
                &AddRequest {
                    case: case.clone(),
                    path: file.clone(),
                    title: title.clone(),
                    fields,
                },
            )?;
            if cli.json {
                print_json(&v)?;
            } else {
                outln!("{}", v.id);
            }
        }
        EvidenceCommand::Get { record, out } => {
            print_file(cli, &evidence::get(&node, &actor, record, out)?, "wrote")?;
        }
        EvidenceCommand::Verify { record } => {
            print_file(cli, &evidence::verify(&node, &actor, record)?, "verified")?;
        }
        EvidenceCommand::Custody { record } => {
            let trail = evidence::custody(&node, &actor, record)?;
            if cli.json {
                print_json(&trail)?;
            } else {
                for e in &trail {
                    let why = e
                        .justification
                        .as_deref()
                        .map(|j| format!("  why: {j}"))
                        .unwrap_or_default();
                    let peer = e
                        .peer
                        .as_deref()
                        .map(|p| format!("  peer: {p}"))
                        .unwrap_or_default();
                    outln!(
                        "{}  {:<16} {:<8} by {} on {}{peer}{why}",
                        e.time,
                        e.action,
                        match e.outcome {
                            audit::Outcome::Ok => "ok",
                            audit::Outcome::Refused => "REFUSED",
                        },
                        e.operator,
                        e.node
                    );
                }
            }
        }
        EvidenceCommand::Export { record, out } => {
            print_file(
                cli,
                &evidence::export(&node, &actor, record, out)?,
                "exported",
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
