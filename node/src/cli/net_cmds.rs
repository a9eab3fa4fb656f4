//! `serve`, `sync` and `status`: the network commands.

use super::*;

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
