//! `audit`: list, verify, export.

use super::*;

pub(crate) fn audit_command(cli: &Cli, cmd: &AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify => {
            // Keyless, like `log verify`: nothing is opened, only links and
            // signatures are checked.
            let store = data_dir(cli)?.open_store()?;
            let r = audit::verify(store.conn())?;
            if cli.json {
                print_json(
                    &json!({"entries": r.entries, "ok": r.fault.is_none(), "first_bad": r.fault}),
                )?;
            } else if r.fault.is_none() {
                outln!(
                    "audit log verified: {} entries, chain and signatures intact",
                    r.entries
                );
            }
            if let Some(f) = r.fault {
                bail!(
                    "audit log verification failed at entry {}: {} ({} entries before it verified); the audit log was altered: keep this data dir as evidence and restore from a backup",
                    f.seq,
                    f.reason,
                    r.entries
                );
            }
        }
        AuditCommand::List {
            case,
            since,
            action,
            by,
        } => {
            let node = unlock(cli)?;
            let actor = actor_of(cli);
            let filter = audit::Filter {
                case: case
                    .as_deref()
                    .map(|c| {
                        c.trim()
                            .parse::<casesync_schema::CaseId>()
                            .map_err(|e| anyhow!("--case {c:?} is not a case id: {e}"))
                    })
                    .transpose()?,
                since: since.as_deref().map(audit::parse_since).transpose()?,
                action: action.clone(),
                operator: by.clone(),
            };
            let entries = audit::list(&node, &actor, &filter)?;
            if cli.json {
                print_json(&entries)?;
            } else {
                for e in &entries {
                    outln!(
                        "{:>6}  {}  {:<14} {:<18} {:<8} {}{}{}{}{}",
                        e.seq,
                        e.time,
                        e.operator,
                        e.action,
                        match e.outcome {
                            audit::Outcome::Ok => "ok",
                            audit::Outcome::Refused => "REFUSED",
                        },
                        e.case
                            .as_deref()
                            .map(|c| format!("case {c} "))
                            .unwrap_or_default(),
                        match e.records.len() {
                            0 => String::new(),
                            1..=3 => format!("records {} ", e.records.join(", ")),
                            n => format!("{n} records "),
                        },
                        e.peer
                            .as_deref()
                            .map(|p| format!("peer {p} "))
                            .unwrap_or_default(),
                        e.justification
                            .as_deref()
                            .map(|j| format!("why: {j} "))
                            .unwrap_or_default(),
                        e.detail
                            .as_deref()
                            .map(|d| format!("- {d}"))
                            .unwrap_or_default(),
                    );
                }
                outln!("{} entries", entries.len());
            }
        }
        AuditCommand::Export { case, out } => {
            let node = unlock(cli)?;
            let actor = actor_of(cli);
            let (r, _) = cases::export_audit(&node, &actor, case, cases::ExportTo::File(out))?;
            if cli.json {
                print_json(
                    &json!({"out": out, "entries": r.entries, "chain_verified": r.chain_fault.is_none(), "chain_entries": r.chain_entries}),
                )?;
            } else {
                outln!("wrote {} audit entries to {}", r.entries, out.display());
            }
            if let Some(f) = r.chain_fault {
                bail!(
                    "the export was written, but the audit chain fails at entry {}: {} (the header says so)",
                    f.seq,
                    f.reason
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
