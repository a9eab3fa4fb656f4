//! The command line as a front end: `args` parses (clap), each `*_cmds`
//! module runs one group of commands on the library and renders the result
//! (human text, or JSON with `--json`). No rule of the node lives here: the
//! library checks, writes and audits; this turns its answers into output.

mod approvals_cmds;
mod args;
mod audit_cmds;
mod bundle_cmds;
mod case_cmds;
mod evidence_cmds;
mod match_cmds;
mod net_cmds;
mod record_cmds;
mod review_cmds;
mod trust_cmds;
mod user_cmds;

use approvals_cmds::*;
pub(crate) use args::*;
use audit_cmds::*;
use bundle_cmds::*;
use case_cmds::*;
use evidence_cmds::*;
use match_cmds::*;
use net_cmds::*;
use record_cmds::*;
use review_cmds::*;
use trust_cmds::*;
use user_cmds::*;

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use casesync_node::audit;
use casesync_node::{DataDir, Node, bundle, cases, import, records, serve, trust, verify};
use casesync_schema::doc::RecordView;
use casesync_schema::record::{FieldValue, RecordType, ReleasableTo};
use serde_json::json;
use zeroize::Zeroizing;

pub(crate) fn data_dir(cli: &Cli) -> Result<DataDir> {
    let root = match &cli.data_dir {
        Some(d) => d.clone(),
        None => DataDir::platform_default()
            .ok_or_else(|| anyhow!("no data dir: pass --data-dir or set CASESYNC_HOME"))?,
    };
    Ok(DataDir::new(root))
}

/// A passphrase from `path`: its first line. The file must be readable by its
/// owner only (a passphrase others can read protects nothing).
pub(crate) fn passphrase_from_file(path: &std::path::Path) -> Result<Zeroizing<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot read the passphrase file {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the passphrase file {} is readable by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the passphrase file {}", path.display()))?,
    );
    let line = Zeroizing::new(text.lines().next().unwrap_or_default().to_string());
    if line.is_empty() {
        bail!("the passphrase file {} is empty", path.display());
    }
    Ok(line)
}

/// The keystore passphrase: `--passphrase-file`, else `CASESYNC_PASSPHRASE`
/// (for scripts), else a prompt on a terminal.
pub(crate) fn passphrase(cli: &Cli, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(path) = &cli.passphrase_file {
        return passphrase_from_file(path);
    }
    if let Some(p) = std::env::var_os("CASESYNC_PASSPHRASE") {
        let p = p
            .into_string()
            .map_err(|_| anyhow!("CASESYNC_PASSPHRASE is not valid UTF-8"))?;
        if p.is_empty() {
            bail!("CASESYNC_PASSPHRASE is empty: set the keystore passphrase");
        }
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set CASESYNC_PASSPHRASE or run in a terminal to be prompted");
    }
    let p = Zeroizing::new(
        rpassword::prompt_password("casesync passphrase: ")
            .context("cannot read the passphrase")?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("repeat passphrase: ")
                .context("cannot read the passphrase")?,
        );
        if *again != *p {
            bail!("the passphrases did not match; nothing was created");
        }
    }
    Ok(p)
}

pub(crate) fn unlock(cli: &Cli) -> Result<Node> {
    let dir = data_dir(cli)?;
    if !dir.is_initialized() {
        // Say this before asking for a passphrase that cannot help.
        dir.open_store()?;
    }
    Ok(dir.unlock_as(passphrase(cli, false)?.as_bytes(), &actor_of(cli))?)
}

/// Who acts, for the audit log: `--operator` (else the OS user) and the
/// `--justification` given.
pub(crate) fn actor_of(cli: &Cli) -> audit::Actor {
    audit::Actor::new(cli.operator.as_deref(), cli.justification.as_deref())
}

pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let actor = actor_of(&cli);
    match &cli.command {
        Command::Init {
            name,
            org,
            country,
            kdf_memory_mib,
        } => {
            let dir = data_dir(&cli)?;
            if dir.is_initialized() {
                // Refuse before prompting.
                dir.init(name, org, country, b"-")?;
            }
            let kdf = casesync_crypto::keystore::KdfParams::with_memory_mib(*kdf_memory_mib)
                .ok_or_else(|| {
                    anyhow!(
                        "--kdf-memory-mib must be between {} and 1024",
                        casesync_crypto::keystore::KdfParams::MINIMUM_MIB
                    )
                })?;
            let node =
                dir.init_with(name, org, country, passphrase(&cli, true)?.as_bytes(), kdf)?;
            let peer = node.card.peer_id();
            if cli.json {
                print_json(
                    &json!({"peer_id": peer, "name": node.card.name, "org": node.card.org, "country": node.card.country, "data_dir": dir.root}),
                )?;
            } else {
                outln!("{peer}");
            }
        }
        Command::Passphrase(PassphraseCommand::Change {
            new_passphrase_file,
        }) => {
            let dir = data_dir(&cli)?;
            let old = passphrase(&cli, false)?;
            let new = match new_passphrase_file {
                Some(p) => passphrase_from_file(p)?,
                None => {
                    if !std::io::stdin().is_terminal() {
                        bail!(
                            "no new passphrase: pass --new-passphrase-file FILE or run in a terminal"
                        );
                    }
                    let a = Zeroizing::new(
                        rpassword::prompt_password("new passphrase: ")
                            .context("cannot read the passphrase")?,
                    );
                    let b = Zeroizing::new(
                        rpassword::prompt_password("repeat new passphrase: ")
                            .context("cannot read the passphrase")?,
                    );
                    if *a != *b {
                        bail!("the new passphrases did not match; nothing was changed");
                    }
                    a
                }
            };
            dir.change_passphrase(old.as_bytes(), new.as_bytes(), &actor)?;
            if cli.json {
                print_json(&json!({"changed": true}))?;
            } else {
                outln!(
                    "passphrase changed; the keystore is re-sealed with the current key-derivation cost"
                );
            }
        }
        Command::Backup { out } => {
            let node = unlock(&cli)?;
            let r = casesync_node::backup::backup(&node, &actor, out)?;
            if cli.json {
                print_json(&json!({"path": r.path, "bytes": r.bytes}))?;
            } else {
                outln!(
                    "backup written to {} ({} bytes); restore it with `casesync --data-dir NEW_DIR restore {}`",
                    r.path.display(),
                    r.bytes,
                    r.path.display()
                );
            }
        }
        Command::Restore { file } => {
            let dir = data_dir(&cli)?;
            let node = casesync_node::backup::restore(
                &dir,
                file,
                passphrase(&cli, false)?.as_bytes(),
                &actor,
            )?;
            let peer = node.card.peer_id();
            if cli.json {
                print_json(&json!({"peer_id": peer, "data_dir": dir.root, "new_chains": true}))?;
            } else {
                outln!(
                    "restored node {peer} into {}; its next entry in each case starts a new chain of its log. Sync with a partner (`casesync sync --once` or `serve`) to fetch back what it wrote after the backup",
                    dir.root.display()
                );
            }
        }
        Command::Id { card } => {
            let c = data_dir(&cli)?.card()?;
            if *card {
                if cli.json {
                    print_json(&json!({"card": c.to_text()}))?;
                } else {
                    outln!("{}", c.to_text());
                }
            } else if cli.json {
                print_json(
                    &json!({"peer_id": c.peer_id(), "name": c.name, "org": c.org, "country": c.country}),
                )?;
            } else {
                outln!(
                    "peer id:  {}\nname:     {}\norg:      {}\ncountry:  {}",
                    c.peer_id(),
                    c.name,
                    c.org,
                    c.country
                );
            }
        }
        Command::Federation(cmd) => return federation_command(&cli, cmd),
        Command::Trust(TrustCommand::List) => {
            let store = data_dir(&cli)?.open_store()?;
            let roster = trust::roster(store.conn())?;
            print_trust(&cli, &roster)?;
        }
        Command::Trust(TrustCommand::Revoke { peer_id, reason }) => {
            let node = unlock(&cli)?;
            let n = trust::revoke(&node, &actor, peer_id, reason)?;
            cases::cut_revoked(&node, &actor)?;
            // A running `serve` on this data dir may have made the cut first:
            // report every case this node leads that the node is now cut from.
            let me = node.keys.public().ed25519;
            let id = n.card.identity.ed25519;
            let cut_cases: Vec<String> = cases::list(&node)?
                .iter()
                .filter(|c| c.state.role_of(&me) == Some(casesync_schema::control::Role::Lead))
                .filter(|c| c.state.removed.contains_key(&id))
                .map(|c| c.id.to_string())
                .collect();
            if cli.json {
                print_json(
                    &json!({"peer_id": n.card.peer_id(), "name": n.card.name, "status": "revoked",
                                   "reason": reason.trim(), "removed_from_cases": cut_cases}),
                )?;
            } else {
                outln!(
                    "revoked {} ({}); the statement reaches the other nodes by sync",
                    n.card.name,
                    n.card.peer_id()
                );
                for c in &cut_cases {
                    outln!("removed it from case {c}, which this node leads");
                }
            }
        }
        Command::Case(cmd) => return case_command(&cli, cmd),
        Command::Bundle(cmd) => return bundle_command(&cli, cmd),
        Command::Serve {
            listen,
            peer,
            anti_entropy,
            fetch,
            http,
            http_tls_cert,
            http_tls_key,
        } => {
            let http = http
                .as_deref()
                .map(|a| {
                    let addr = a.trim().parse::<std::net::SocketAddr>().map_err(|e| {
                        anyhow!(
                            "--http {:?} is not an address ({e}); e.g. 127.0.0.1:8080",
                            casesync_node::short(a)
                        )
                    })?;
                    Ok::<_, anyhow::Error>(casesync_node::http::HttpOptions {
                        addr,
                        tls: http_tls_cert.clone().zip(http_tls_key.clone()),
                    })
                })
                .transpose()?;
            let node = unlock(&cli)?;
            let _lock = node.dir.lock_for_serve()?;
            let listen = if listen.is_empty() {
                vec!["/ip4/127.0.0.1/tcp/0".to_string()]
            } else {
                listen.clone()
            };
            let opts = serve::Options {
                listen: parse_addrs(&listen)?,
                peers: parse_addrs(peer)?,
                once: false,
                timeout: std::time::Duration::from_secs(0),
                anti_entropy: std::time::Duration::from_secs_f64(*anti_entropy),
                actor,
                fetch: match fetch.as_str() {
                    "eager" => serve::FetchPolicy::Eager,
                    "on-open" => serve::FetchPolicy::OnOpen,
                    other => bail!("--fetch {other:?}: use eager or on-open"),
                },
            };
            run_network(node, opts, true, http)?;
        }
        Command::Sync {
            once: _,
            peer,
            timeout,
        } => {
            let node = unlock(&cli)?;
            let opts = serve::Options {
                listen: vec![],
                peers: parse_addrs(peer)?,
                once: true,
                timeout: std::time::Duration::from_secs(*timeout),
                anti_entropy: std::time::Duration::from_secs(5),
                actor,
                fetch: serve::FetchPolicy::OnOpen,
            };
            if opts.peers.is_empty() && casesync_node::peers::list(&node.store)?.is_empty() {
                bail!(
                    "no peer to sync with: pass --peer MULTIADDR or `casesync peer add MULTIADDR`"
                );
            }
            let results = run_network(node, opts, false, None)?;
            if cli.json {
                print_json(&results)?;
            } else {
                for r in &results {
                    match &r.error {
                        None => outln!(
                            "{}: received {} entries, sent {}",
                            r.peer,
                            r.received,
                            r.sent
                        ),
                        Some(e) => outln!("{}: failed: {e}", r.peer),
                    }
                }
            }
            if !results.iter().any(|r| r.error.is_none()) {
                let (received, sent) = results
                    .iter()
                    .fold((0, 0), |(r, s), x| (r + x.received, s + x.sent));
                // A peer that moved anything answered.
                if results.iter().any(|r| r.answered) {
                    bail!(
                        "sync stopped before it finished: {received} entries received and {sent} sent are kept; run it again to resume"
                    );
                }
                bail!(
                    "no peer answered: check the addresses (they end in /p2p/PEER_ID), that the peers run `casesync serve`, and that they are enrolled"
                );
            }
        }
        Command::Peer(PeerCommand::Add { addr }) => {
            let m = parse_addrs(std::slice::from_ref(addr))?;
            let store = data_dir(&cli)?.open_store()?;
            let added = casesync_node::peers::add(&store, &m[0].to_string())?;
            if cli.json {
                print_json(&json!({"addr": m[0].to_string(), "added": added}))?;
            } else if added {
                outln!("added {}", m[0]);
            } else {
                outln!("already known: {}", m[0]);
            }
        }
        Command::Peer(PeerCommand::List) => {
            let store = data_dir(&cli)?.open_store()?;
            let peers = casesync_node::peers::list(&store)?;
            if cli.json {
                print_json(
                    &peers
                        .iter()
                        .map(|p| json!({"addr": p.addr, "last_sync": p.last_sync}))
                        .collect::<Vec<_>>(),
                )?;
            } else {
                for p in &peers {
                    outln!(
                        "{}  last sync: {}",
                        p.addr,
                        p.last_sync.as_deref().unwrap_or("never")
                    );
                }
            }
        }
        Command::Status => return status_command(&cli),
        Command::Audit(cmd) => return audit_command(&cli, cmd),
        Command::User(cmd) => return user_command(&cli, cmd),
        Command::Match(args) => return match_command(&cli, args),
        Command::Evidence(cmd) => return evidence_command(&cli, cmd),
        Command::Selectors(cmd) => return selectors_command(&cli, cmd),
        Command::Review(cmd) => return review_command(&cli, cmd),
        Command::Approvals(cmd) => return approvals_command(&cli, cmd),
        Command::Search { query, kind, case } => {
            let node = unlock(&cli)?;
            let q = casesync_node::search::Query {
                text: query.clone(),
                kind: kind
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(|e: String| anyhow!(e))?,
                case: case.clone(),
            };
            let hits = casesync_node::search::search(&node, &actor, &q)?;
            if cli.json {
                print_json(&hits)?;
            } else if hits.is_empty() {
                outln!("no match in the cases this node holds");
            } else {
                for h in &hits {
                    let also = if h.also_in.is_empty() {
                        String::new()
                    } else {
                        format!("  ALSO IN {}", h.also_in.join(", "))
                    };
                    outln!(
                        "{:<24} {:<13} {:<40} {}{also}",
                        casesync_node::short(&h.case_title),
                        h.record_type,
                        h.summary,
                        h.record
                    );
                }
            }
        }
        Command::Record(cmd) => return record_command(&cli, cmd),
        Command::Log(LogCommand::Verify) => {
            let store = data_dir(&cli)?.open_store()?;
            let report = verify::verify_store(store.conn())?;
            if cli.json {
                print_json(&report)?;
            } else {
                for f in &report.failures {
                    outln!("BAD {} (row {}): {}", f.item, f.row, f.reason);
                }
                outln!(
                    "checked {} entries in {} logs and {} control operations across {} cases: {} bad",
                    report.entries,
                    report.logs,
                    report.control_ops,
                    report.cases,
                    report.failed
                );
            }
            if let Some(first) = report.failures.first() {
                bail!(
                    "log verify found {} bad item(s); first: {} (row {}): {}",
                    report.failed,
                    first.item,
                    first.row,
                    first.reason
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
