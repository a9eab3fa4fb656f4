//! `bundle export` and `bundle import`.

use super::*;

pub(crate) fn bundle_command(cli: &Cli, cmd: &BundleCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    match cmd {
        BundleCommand::Export {
            out,
            cases,
            recipient,
        } => {
            // Each part is written as soon as it is made (OUT, OUT.2, ...),
            // readable by the owner only: an unencrypted bundle is case data.
            let mut sink = bundle::PartFiles::new(out);
            let r = bundle::export(&node, &actor, cases, recipient.as_deref(), &mut |part| {
                sink.write(part)
            })?;
            if r.cases == 0 {
                bail!(
                    "nothing to export: {}",
                    if r.skipped.is_empty() {
                        "this node holds no case".to_string()
                    } else {
                        r.skipped.join("; ")
                    }
                );
            }
            let files = sink.written;
            let bytes = r.bytes;
            if cli.json {
                print_json(
                    &json!({"out": out, "bytes": bytes, "files": files, "cases": r.cases, "control_ops": r.control_ops, "entries": r.entries, "skipped": r.skipped}),
                )?;
            } else {
                for s in &r.skipped {
                    outln!("skipped {s}");
                }
                outln!(
                    "wrote {} ({} bytes): {} case(s), {} entries",
                    out.display(),
                    bytes,
                    r.cases,
                    r.entries
                );
                if files.len() > 1 {
                    outln!(
                        "in {} files, each within the {} MiB a bundle may be: {}; import them in this order",
                        files.len(),
                        casesync_schema::bundle::MAX_BUNDLE_BYTES >> 20,
                        files
                            .iter()
                            .map(|f| f.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        BundleCommand::Import { file } => {
            let (sender, r) = bundle::import_file(&node, &actor, file)?;
            // A lead puts merged control operations into effect at once.
            let mut repaired = cases::after_merge(&node, &actor)?;
            repaired.extend(casesync_node::erasure::carry_out(&node, &actor)?);
            if cli.json {
                print_json(
                    &json!({"sender": sender.peer_id(), "report": r, "repaired": repaired}),
                )?;
            } else {
                for x in &r.rejected {
                    outln!("rejected {x}");
                }
                outln!(
                    "from {} ({}): {} entries, {} control operations, {} registry statements; {} records new, {} updated; {} already held, {} waiting for entries they build on, {} rejected",
                    sender.name,
                    sender.peer_id(),
                    r.entries,
                    r.control_ops,
                    r.registry_ops,
                    r.records_created,
                    r.records_updated,
                    r.duplicates,
                    r.waiting,
                    r.rejected.len()
                );
                for line in &repaired {
                    outln!("{line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
