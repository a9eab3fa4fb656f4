//! `serve`, `sync` and `status`: the network commands.

use super::*;
use std::io::Write as _;

pub(crate) fn parse_addrs(addrs: &[String]) -> Result<Vec<libp2p::Multiaddr>> {
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
pub(crate) fn run_network(
    node: Node,
    opts: serve::Options,
    until_signal: bool,
    http: Option<casesync_node::http::HttpOptions>,
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
    let front = match http {
        Some(opts) => Some((node.try_clone()?, opts)),
        None => None,
    };
    let results = local.block_on(&rt, async move {
        if let Some((handle, opts)) = front {
            let listener = casesync_node::http::bind(&opts).await?;
            let bound = listener.local_addr()?;
            // Scripts read this line, as they read `listening on`.
            let mut out = std::io::stdout();
            let _ =
                writeln!(out, "http on {}://{bound}/", listener.scheme()).and_then(|_| out.flush());
            tokio::task::spawn_local(async move {
                if let Err(e) = casesync_node::http::run(handle, listener).await {
                    tracing::warn!(target: "casesync", "{e}");
                }
            });
        }
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

pub(crate) async fn wait_for_signal() {
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

pub(crate) fn status_command(cli: &Cli) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let st = casesync_node::status::status(&node, &actor_of(cli))?;
    if cli.json {
        print_json(&st)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("node:       {} ({})", st.name, st.peer_id);
    match &st.federation {
        Some(f) => outln!("federation: {} ({} nodes)", f.name, f.nodes),
        None => outln!("federation: none"),
    }
    for p in &st.peers {
        let next = match &p.next_attempt {
            Some(t) => format!("  unreachable, next attempt: {t}"),
            None => String::new(),
        };
        outln!(
            "peer:       {}  last sync: {}{next}",
            p.addr,
            p.last_sync.as_deref().unwrap_or("never")
        );
    }
    for c in &st.cases {
        outln!("case {}  {}", c.id, c.title);
        for f in &c.frozen {
            outln!(
                "  EQUIVOCATION by {}: its log is frozen before seq {}",
                f.author,
                f.frozen_before_seq
            );
        }
        for e in &c.built_on_frozen {
            outln!(
                "  entry {} of {} built on the frozen log of {}: its changes that depend on it do not apply (a lead resolves it by removing that author)",
                e.seq,
                e.author,
                e.built_on
            );
        }
        if c.withheld_parts > 0 {
            outln!(
                "  {} record part(s) withheld from this node (handling code H2): they arrive once their originator consents",
                c.withheld_parts
            );
        }
        if c.waiting > 0 {
            outln!("  {} entries wait for entries they build on", c.waiting);
        }
        for l in &c.logs {
            outln!(
                "  log {:<14} seq {:>6}  head {}",
                l.name,
                l.seq,
                &l.head[..12.min(l.head.len())]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
