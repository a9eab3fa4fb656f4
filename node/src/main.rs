//! The `casesync` binary: parse the command line, unlock the node, run one
//! command, print its result. All logic lives in the library.

/// `println!` that does not panic when stdout is gone: a reader that stopped
/// early (`casesync record list CASE | head`) ends the command as SIGPIPE ends
/// any Unix tool (status 141), not with a panic and a backtrace.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            stdout_failed(e);
        }
    }};
}

mod cli;

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use casesync_node::audit::{self, Action, Event};
use casesync_node::{DataDir, Node, bundle, cases, import, records, serve, store, trust, verify};
use casesync_schema::doc::RecordView;
use casesync_schema::record::{FieldValue, RecordType, ReleasableTo};
use clap::Parser as _;
use serde_json::json;
use zeroize::Zeroizing;

use cli::{
    AuditCommand, BundleCommand, CaseCommand, Cli, Command, FederationCommand, LogCommand,
    MemberCommand, PassphraseCommand, PeerCommand, RecordCommand, TrustCommand,
};

/// Logs (what `serve` and `sync` say as they go, and libp2p's own events) go
/// to stderr through `tracing`: `RUST_LOG` filters them (default: casesync's
/// at info, libp2p's warnings), `CASESYNC_LOG_FORMAT=json` writes one JSON
/// object a line for a log collector. Command output and errors are not logs.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,casesync=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let json = std::env::var("CASESYNC_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = match json {
        true => builder.json().try_init(),
        false => builder.with_target(false).try_init(),
    };
}

fn main() -> ExitCode {
    // Keys live in this process's memory: no core dump, and no ptrace by
    // other processes of the same user.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    casesync_node::clock::init();
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // A `serve` running on this data dir pushes what this command wrote at
    // once (`wake`); a command that wrote nothing costs it one query.
    let dir = data_dir(&cli).ok();
    match run(cli) {
        Ok(code) => {
            if let Some(d) = dir {
                casesync_node::wake::notify(&d);
            }
            code
        }
        Err(e) => {
            // One line: what failed and what to do.
            let mut msg = format!("{e:#}").replace('\n', " ");
            if let Some(d) = dir.as_ref().filter(|_| is_io_error(&e)) {
                msg = explain_io_failure(d, msg);
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the failure is the store's "disk I/O error" (see
/// [`store::StoreError::is_io_error`]), which needs explaining.
fn is_io_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let inner = match c.downcast_ref::<casesync_node::NodeError>() {
            Some(casesync_node::NodeError::Store(s)) => Some(s),
            _ => c.downcast_ref::<store::StoreError>(),
        };
        inner.is_some_and(store::StoreError::is_io_error)
    })
}

/// Below this much free space, an I/O failure of the store is taken to be
/// the disk filling up (SQLite needs room for the WAL and its index).
const LOW_DISK_BYTES: u64 = 8 << 20;

/// SQLite rolls back a transaction whose write failed, so nothing of the
/// command landed; say whether the disk is full and what to do.
fn explain_io_failure(d: &DataDir, msg: String) -> String {
    match d.free_bytes() {
        Some(free) if free < LOW_DISK_BYTES => format!(
            "the disk holding the data dir {} is full ({} KiB free; {msg}); nothing was written: free some space and run the command again",
            d.root.display(),
            free / 1024
        ),
        _ => format!(
            "{msg}; nothing was written: check the disk holding the data dir {} (free space, errors) and run the command again",
            d.root.display()
        ),
    }
}

/// Help and version print as clap renders them; a usage mistake becomes the one
/// `error:` line every failure gets (README, "The command line"), with a pointer to `--help`.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let message = text.split("\n\nUsage:").next().unwrap_or(text);
    let message = message
        .replace("\n\n  tip:", "; tip:")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("error: {message} (see `casesync --help`)");
    ExitCode::from(2)
}

fn data_dir(cli: &Cli) -> Result<DataDir> {
    let root = match &cli.data_dir {
        Some(d) => d.clone(),
        None => DataDir::platform_default()
            .ok_or_else(|| anyhow!("no data dir: pass --data-dir or set CASESYNC_HOME"))?,
    };
    Ok(DataDir::new(root))
}

/// A passphrase from `path`: its first line. The file must be readable by its
/// owner only (a passphrase others can read protects nothing).
fn passphrase_from_file(path: &std::path::Path) -> Result<Zeroizing<String>> {
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
fn passphrase(cli: &Cli, confirm: bool) -> Result<Zeroizing<String>> {
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

fn unlock(cli: &Cli) -> Result<Node> {
    let dir = data_dir(cli)?;
    if !dir.is_initialized() {
        // Say this before asking for a passphrase that cannot help.
        dir.open_store()?;
    }
    Ok(dir.unlock_as(passphrase(cli, false)?.as_bytes(), actor(cli))?)
}

/// Who acts, for the audit log: `--operator` (else the OS user) and the
/// `--justification` given.
fn actor(cli: &Cli) -> audit::Actor {
    audit::Actor {
        operator: cli
            .operator
            .clone()
            .filter(|o| !o.trim().is_empty())
            .unwrap_or_else(audit::Actor::os_user),
        justification: cli
            .justification
            .as_ref()
            .map(|j| j.trim().to_string())
            .filter(|j| !j.is_empty()),
    }
}

/// Runs an action and, if it fails once the node is unlocked, records the
/// refusal in the audit log in a transaction of its own (the failed action
/// rolled back and left nothing else): "logged as refused".
fn audited<T>(
    node: &Node,
    action: Action,
    case: Option<&str>,
    record: Option<&str>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let r = f();
    if let Err(e) = &r {
        let mut ev = Event::new(action).refused(format!("{e:#}"));
        if let Some(c) = case.and_then(|c| c.trim().parse::<casesync_schema::CaseId>().ok()) {
            ev = ev.case(c);
        }
        if let Some(rec) = record {
            ev = ev.records([rec.trim()]);
        }
        if let Err(ae) = audit::append_alone(node, ev) {
            eprintln!("warning: the refusal could not be recorded in the audit log: {ae}");
        }
    }
    r
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
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
            dir.change_passphrase(old.as_bytes(), new.as_bytes())?;
            // Audited under the new passphrase (the unlock proves it works).
            let node = dir.unlock_as(new.as_bytes(), actor(&cli))?;
            audit::append_alone(
                &node,
                Event::new(Action::PassphraseChange)
                    .detail("keystore re-sealed (Argon2id, 64 MiB, 3 passes)"),
            )?;
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
            let r = audited(&node, Action::NodeBackup, None, None, || {
                Ok(casesync_node::backup::backup(&node, out)?)
            })?;
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
                actor(&cli),
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
            let Some(st) = trust::load(store.conn())? else {
                bail!(
                    "this node belongs to no federation: run `casesync federation create --name NAME`, or join one with a token"
                );
            };
            let flagged = store::equivocators(store.conn())?;
            print_trust(&cli, &st, &flagged)?;
        }
        Command::Trust(TrustCommand::Revoke { peer_id, reason }) => {
            let node = unlock(&cli)?;
            let n = audited(&node, Action::TrustRevoke, None, None, || {
                Ok(trust::revoke(&node, peer_id, reason)?)
            })?;
            cases::cut_revoked(&node)?;
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
        } => {
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
            };
            run_network(node, opts, true)?;
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
            };
            if opts.peers.is_empty() && store::peers(node.store.conn())?.is_empty() {
                bail!(
                    "no peer to sync with: pass --peer MULTIADDR or `casesync peer add MULTIADDR`"
                );
            }
            let results = run_network(node, opts, false)?;
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
                bail!(
                    "no peer answered: check the addresses (they end in /p2p/PEER_ID), that the peers run `casesync serve`, and that they are enrolled"
                );
            }
        }
        Command::Peer(PeerCommand::Add { addr }) => {
            let m = parse_addrs(std::slice::from_ref(addr))?;
            let store = data_dir(&cli)?.open_store()?;
            let added = store::add_peer(store.conn(), &m[0].to_string())?;
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
            let peers = store::peers(store.conn())?;
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

/// `flagged`: nodes proved to have equivocated, with the number of cases.
fn print_trust(
    cli: &Cli,
    st: &casesync_schema::registry::RegistryState,
    flagged: &[([u8; 32], u64)],
) -> Result<()> {
    let forks = |id: &[u8; 32]| {
        flagged
            .iter()
            .find(|(a, _)| a == id)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let nodes: Vec<_> = st
        .nodes
        .iter()
        .map(|(id, n)| {
            json!({"peer_id": n.card.peer_id(), "name": n.card.name, "org": n.card.org, "country": n.card.country,
                   "admin": n.admin, "status": if n.revoked { "revoked" } else { "active" },
                   "revocation_reason": n.revocation.as_ref().map(|(r, _)| r),
                   "equivocated_in_cases": forks(id)})
        })
        .collect();
    if cli.json {
        return print_json(
            &json!({"federation": st.federation.to_hex(), "name": st.name, "nodes": nodes}),
        );
    }
    outln!("federation {} ({})", st.name, st.federation.to_hex());
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
        let f = forks(&n.card.identity.ed25519);
        if f > 0 {
            outln!(
                "    EQUIVOCATED: signed two different entries with one seq in {f} case(s); its log is frozen there"
            );
        }
    }
    Ok(())
}

fn federation_command(cli: &Cli, cmd: &FederationCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    match cmd {
        FederationCommand::Create { name } => {
            let st = trust::create(&node, name)?;
            if cli.json {
                print_json(&json!({"federation": st.federation.to_hex(), "name": st.name}))?;
            } else {
                outln!("{}", st.federation.to_hex());
            }
        }
        FederationCommand::Invite { card, admin } => {
            let card = casesync_schema::NodeCard::from_text(card)
                .map_err(|e| anyhow!("invalid node card: {e}"))?;
            let token = audited(&node, Action::FederationInvite, None, None, || {
                Ok(trust::invite(&node, &card, *admin)?)
            })?;
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
            let st = trust::join(&node, token, |inv| {
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
        FederationCommand::Leave => {
            let name = audited(&node, Action::FederationLeave, None, None, || {
                Ok(trust::leave(&node)?)
            })?;
            if cli.json {
                print_json(&json!({"left": name}))?;
            } else {
                outln!("left federation {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_addrs(addrs: &[String]) -> Result<Vec<libp2p::Multiaddr>> {
    addrs
        .iter()
        .map(|a| {
            let m: libp2p::Multiaddr = a.trim().parse().map_err(|e| {
                anyhow!(
                    "`{}` is not a multiaddr ({e}); e.g. /ip4/127.0.0.1/tcp/7001",
                    casesync_node::short(a)
                )
            })?;
            Ok(m)
        })
        .collect()
}

/// Runs the network on a single-threaded runtime until done (sync) or until
/// SIGINT/SIGTERM (serve).
fn run_network(
    node: Node,
    opts: serve::Options,
    until_signal: bool,
) -> Result<Vec<serve::Exchange>> {
    for p in &opts.peers {
        if !p
            .iter()
            .any(|x| matches!(x, libp2p::multiaddr::Protocol::P2p(_)))
        {
            bail!("peer address {p} must end in /p2p/PEER_ID");
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let results = local.block_on(&rt, async move {
        let shutdown = async move {
            if until_signal {
                wait_for_signal().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        serve::run(node, opts, shutdown).await
    })?;
    Ok(results)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn status_command(cli: &Cli) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let conn = node.store.conn();
    let fed = trust::load(conn)?;
    let peers = store::peers(conn)?;
    let mut case_rows = Vec::new();
    for c in cases::list(&node)? {
        let logs: Vec<_> = store::log_heads(conn, c.case_ref)?
            .into_iter()
            .map(|(author, seq, hash)| {
                let peer = casesync_crypto::identity::peer_id_of(&author).unwrap_or_default();
                let name = c
                    .state
                    .members
                    .get(&author)
                    .map(|m| m.card.name.clone())
                    .unwrap_or_default();
                json!({"author": peer, "name": name, "seq": seq, "head": hash.to_hex()})
            })
            .collect();
        let frozen: Vec<_> = store::equivocations(conn, c.case_ref)?
            .into_iter()
            .map(|q| json!({"author": casesync_crypto::identity::peer_id_of(&q.author).unwrap_or_default(), "frozen_before_seq": q.seq}))
            .collect();
        let peer = |k: &[u8; 32]| casesync_crypto::identity::peer_id_of(k).unwrap_or_default();
        let stranded: Vec<_> = casesync_node::ingest::built_on_frozen(conn, &c)?
            .into_iter()
            .map(|b| json!({"author": peer(&b.author), "seq": b.seq, "built_on": peer(&b.on)}))
            .collect();
        case_rows.push(json!({"id": c.id.to_string(), "title": c.meta.title, "members": c.state.members.len(), "logs": logs, "frozen": frozen, "built_on_frozen": stranded, "waiting": store::waiting_count(conn, c.case_ref)?}));
    }
    let v = json!({
        "peer_id": node.card.peer_id(),
        "federation": fed.as_ref().map(|f| json!({"id": f.federation.to_hex(), "name": f.name, "nodes": f.nodes.len()})),
        "peers": peers.iter().map(|p| json!({"addr": p.addr, "last_sync": p.last_sync, "next_attempt": p.next_dial})).collect::<Vec<_>>(),
        "cases": case_rows,
    });
    if cli.json {
        print_json(&v)?;
    } else {
        outln!("node:       {} ({})", node.card.name, node.card.peer_id());
        match &fed {
            Some(f) => outln!("federation: {} ({} nodes)", f.name, f.nodes.len()),
            None => outln!("federation: none"),
        }
        for p in &peers {
            let next = match &p.next_dial {
                Some(t) => format!("  unreachable, next attempt: {t}"),
                None => String::new(),
            };
            outln!(
                "peer:       {}  last sync: {}{next}",
                p.addr,
                p.last_sync.as_deref().unwrap_or("never")
            );
        }
        for c in v["cases"].as_array().into_iter().flatten() {
            outln!(
                "case {}  {}",
                c["id"].as_str().unwrap_or_default(),
                c["title"].as_str().unwrap_or_default()
            );
            for f in c["frozen"].as_array().into_iter().flatten() {
                outln!(
                    "  EQUIVOCATION by {}: its log is frozen before seq {}",
                    f["author"].as_str().unwrap_or_default(),
                    f["frozen_before_seq"]
                );
            }
            for e in c["built_on_frozen"].as_array().into_iter().flatten() {
                outln!(
                    "  entry {} of {} built on the frozen log of {}: its changes that depend on it do not apply (a lead resolves it by removing that author)",
                    e["seq"],
                    e["author"].as_str().unwrap_or_default(),
                    e["built_on"].as_str().unwrap_or_default()
                );
            }
            if c["waiting"].as_u64().unwrap_or_default() > 0 {
                outln!("  {} entries wait for entries they build on", c["waiting"]);
            }
            for l in c["logs"].as_array().into_iter().flatten() {
                outln!(
                    "  log {:<14} seq {:>6}  head {}",
                    l["name"].as_str().unwrap_or_default(),
                    l["seq"],
                    &l["head"].as_str().unwrap_or_default()
                        [..12.min(l["head"].as_str().unwrap_or_default().len())]
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bundle_command(cli: &Cli, cmd: &BundleCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    match cmd {
        BundleCommand::Export {
            out,
            cases,
            recipient,
        } => {
            let one = (cases.len() == 1).then(|| cases[0].as_str());
            let r = audited(&node, Action::BundleExport, one, None, || {
                Ok(bundle::export(&node, cases, recipient.as_deref())?)
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
            // Readable by the owner only: an unencrypted bundle is case data.
            // Past the size of one bundle, the parts go to OUT, OUT.2, ...
            let files: Vec<std::path::PathBuf> = (1..=r.parts.len())
                .map(|i| match i {
                    1 => out.clone(),
                    i => std::path::PathBuf::from(format!("{}.{i}", out.display())),
                })
                .collect();
            for (f, part) in files.iter().zip(&r.parts) {
                casesync_node::files::write_private_file(f, part)?;
            }
            let bytes: usize = r.parts.iter().map(Vec::len).sum();
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
            let (sender, r) = audited(&node, Action::BundleImport, None, None, || {
                let bytes = bundle::read_file(&node, file)?;
                Ok(bundle::import(&node, bytes)?)
            })?;
            // A lead puts merged control operations into effect at once.
            let repaired = cases::after_merge(&node)?;
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

fn case_json(node: &Node, c: &cases::Case) -> Result<serde_json::Value> {
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
        "records": casesync_node::store::record_count(conn, c.case_ref)?,
        "entries": casesync_node::store::entry_count(conn, c.case_ref)?,
    }))
}

fn case_command(cli: &Cli, cmd: &CaseCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    match cmd {
        CaseCommand::Create {
            title,
            require_justification,
        } => {
            let id = cases::create(&node, title, *require_justification)?;
            if cli.json {
                print_json(&json!({"id": id.to_string(), "title": title.trim()}))?;
            } else {
                outln!("{id}");
            }
        }
        CaseCommand::List => {
            let all = cases::list(&node)?;
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
                    let n = casesync_node::store::record_count(node.store.conn(), c.case_ref)?;
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
            let (c, v) = audited(&node, Action::CaseShow, Some(case), None, || {
                let c = cases::load_by_text(&node, node.store.conn(), case)?;
                let v = case_json(&node, &c)?;
                let members: Vec<String> =
                    c.state.members.values().map(|m| m.card.peer_id()).collect();
                audit::append_alone(
                    &node,
                    Event::new(Action::CaseShow).case(c.id).detail(format!(
                        "title, {} member(s): {}",
                        members.len(),
                        members.join(", ")
                    )),
                )?;
                Ok((c, v))
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
            let (id, card) = audited(&node, Action::MemberAdd, Some(case), None, || {
                Ok(cases::add_member(&node, case, member, role)?)
            })?;
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
            let (id, card, cut) = audited(&node, Action::MemberRemove, Some(case), None, || {
                Ok(cases::remove_member(&node, case, member, reason)?)
            })?;
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
            let (id, card) = audited(&node, Action::LeadAppoint, Some(case), None, || {
                Ok(cases::appoint_lead(&node, case, member, reason)?)
            })?;
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
            let (id, card, before) = audited(&node, Action::MemberRole, Some(case), None, || {
                Ok(cases::change_role(&node, case, member, role)?)
            })?;
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

fn parse_fields(args: &[String]) -> Result<Vec<(String, FieldValue)>> {
    args.iter()
        .map(|a| {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| anyhow!("--field `{}` is not KEY=VALUE", casesync_node::short(a)))?;
            let k = k.trim();
            casesync_schema::record::check_field_name(k)?;
            if v.trim().is_empty() {
                bail!("--field {k}= has no value; to remove a field use --unset {k}");
            }
            Ok((k.to_string(), FieldValue::Str(v.to_string())))
        })
        .collect()
}

fn print_record(cli: &Cli, v: &RecordView) -> Result<()> {
    if cli.json {
        return print_json(v);
    }
    outln!("id:            {}", v.id);
    outln!("type:          {}", v.record_type);
    outln!("case:          {}", v.case);
    for (k, val) in &v.fields {
        outln!("  {k}: {}", val.as_text());
    }
    if let Some(g) = &v.grading {
        outln!("grading:       {g}");
    }
    if !v.releasable_to.is_empty() {
        outln!("releasable to: {}", v.releasable_to.join(", "));
    }
    outln!("originator:    {}", v.originator);
    outln!("created:       {}", v.created);
    outln!("updated:       {}", v.updated);
    for (k, val) in &v.extra {
        outln!("  (newer) {k}: {val}");
    }
    Ok(())
}

fn summary(v: &RecordView) -> String {
    let key = [
        "name",
        "title",
        "number",
        "iban",
        "address",
        "registration",
        "text",
        "file",
        "link_type",
    ];
    key.iter()
        .find_map(|k| v.fields.get(*k))
        .map(|f| f.as_text())
        .unwrap_or_default()
        .chars()
        .take(60)
        .collect()
}

fn record_command(cli: &Cli, cmd: &RecordCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    match cmd {
        RecordCommand::Add {
            case,
            record_type,
            fields,
            file,
            grading,
            releasable_to,
        } => {
            let mut input = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    import::parse_json_line(1, text.trim())
                        .with_context(|| format!("in {}", path.display()))?
                }
                None => {
                    let t = record_type
                        .as_deref()
                        .ok_or_else(|| anyhow!("--type is required (or --file RECORD.json)"))?;
                    casesync_schema::record::RecordInput {
                        record_type: t.parse()?,
                        fields: Default::default(),
                        grading: None,
                        releasable_to: ReleasableTo::default(),
                    }
                }
            };
            if let (Some(t), Some(_)) = (record_type, file) {
                input.record_type = t.parse()?;
            }
            for (k, v) in parse_fields(&fields.fields)? {
                input.fields.insert(k, v);
            }
            if let Some(g) = grading {
                input.grading = Some(casesync_schema::record::parse_grading(g)?);
            }
            if let Some(r) = releasable_to {
                input.releasable_to = ReleasableTo::parse_list(r)?;
            }
            let v = audited(&node, Action::RecordAdd, Some(case), None, || {
                Ok(records::add(&node, case, input)?)
            })?;
            if cli.json {
                print_json(&v)?;
            } else {
                outln!("{}", v.id);
            }
        }
        RecordCommand::Edit {
            record,
            fields,
            unset,
        } => {
            let set = parse_fields(&fields.fields)?;
            if set.is_empty() && unset.is_empty() {
                bail!("nothing to change: give --field KEY=VALUE or --unset KEY");
            }
            let v = audited(&node, Action::RecordEdit, None, Some(record), || {
                Ok(records::edit(&node, record, set, unset.clone())?)
            })?;
            if cli.json {
                print_json(&v)?;
            } else {
                outln!("{}", v.id);
            }
        }
        RecordCommand::Show { record } => {
            let v = audited(&node, Action::RecordShow, None, Some(record), || {
                Ok(records::show(&node, record)?)
            })?;
            print_record(cli, &v)?;
        }
        RecordCommand::List { case, record_type } => {
            let t: Option<RecordType> = record_type.as_deref().map(str::parse).transpose()?;
            let list = audited(&node, Action::RecordList, Some(case), None, || {
                Ok(records::list(&node, case, t)?)
            })?;
            if cli.json {
                print_json(&list)?;
            } else {
                for v in &list {
                    outln!("{}  {:<13}  {}", v.id, v.record_type, summary(v));
                }
                outln!("{} record(s)", list.len());
            }
        }
        RecordCommand::Import { case, file, format } => {
            let mut f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let mut head = [0u8; 64];
            let n = f
                .read(&mut head)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let fmt = match format.as_deref() {
                Some("csv") => import::Format::Csv,
                Some(_) => import::Format::JsonLines,
                None => import::Format::detect(&file.to_string_lossy(), &head[..n]),
            };
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let bar = progress_bar(file)?;
            let mut source: Box<
                dyn Iterator<
                    Item = casesync_node::Result<(usize, casesync_schema::record::RecordInput)>,
                >,
            > = match fmt {
                import::Format::JsonLines => Box::new(import::json_lines(f)),
                import::Format::Csv => Box::new(import::csv_rows(f)?),
            };
            let report = audited(&node, Action::RecordImport, Some(case), None, || {
                Ok(records::import(&node, case, &mut source, &mut |n| {
                    if let Some(b) = &bar {
                        b.set_position(n as u64);
                    }
                })?)
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if cli.json {
                print_json(&json!({"imported": report.records}))?;
            } else {
                outln!("imported {} record(s)", report.records);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr, only when stderr is a terminal (never in scripts).
fn progress_bar(file: &std::path::Path) -> Result<Option<indicatif::ProgressBar>> {
    if !std::io::stderr().is_terminal() {
        return Ok(None);
    }
    let mut lines = 0u64;
    let mut f = std::io::BufReader::new(std::fs::File::open(file)?);
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let bar = indicatif::ProgressBar::new(lines);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "importing {bar:30} {pos}/{len} records, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Ok(Some(bar))
}

fn audit_command(cli: &Cli, cmd: &AuditCommand) -> Result<ExitCode> {
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
            let entries = audit::list(&node, &filter)?;
            // Reading the audit log is itself recorded.
            let mut ev =
                Event::new(Action::AuditList).detail(format!("{} entries shown", entries.len()));
            if let Some(c) = filter.case {
                ev = ev.case(c);
            }
            audit::append_alone(&node, ev)?;
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
            let r = audited(&node, Action::AuditExport, Some(case), None, || {
                let c = cases::load_by_text(&node, node.store.conn(), case)?;
                let r = audit::export(&node, c.id, out)?;
                audit::append_alone(
                    &node,
                    Event::new(Action::AuditExport).case(c.id).detail(format!(
                        "{} entries written to {}",
                        r.entries,
                        out.display()
                    )),
                )?;
                Ok(r)
            })?;
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
