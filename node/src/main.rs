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

use std::io::IsTerminal;
use std::process::ExitCode;

use casesync_node::{DataDir, store};
use clap::Parser as _;

use cli::{Cli, data_dir, run};

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
