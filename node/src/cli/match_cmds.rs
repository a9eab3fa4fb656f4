//! `match` and `selectors export`: deconfliction with partners and
//! selectors for outside bodies.

use super::*;
use casesync_node::deconfliction::{self, Policy};
use casesync_node::selector_export::{self, ExportRequest, Format};

pub(crate) fn match_command(cli: &Cli, args: &MatchArgs) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    if let Some(MatchCommand::Policy {
        allow,
        deny_all,
        per_day,
        contact,
    }) = &args.policy
    {
        let mut p = deconfliction::policy(&node)?;
        let changed = !allow.is_empty() || *deny_all || per_day.is_some() || contact.is_some();
        if changed {
            if *deny_all {
                p.allow.clear();
            } else if !allow.is_empty() {
                p.allow = allow.iter().map(|a| a.trim().to_string()).collect();
            }
            if let Some(n) = per_day {
                p.per_day = *n;
            }
            if let Some(c) = contact {
                p.contact = Some(c.trim().to_string());
            }
            p = deconfliction::set_policy(&node, &actor, p)?;
        }
        print_policy(cli, &node, &p)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(MatchCommand::Request {
        peer,
        handle,
        kind,
        message,
        timeout,
    }) = &args.policy
    {
        let addr = deconfliction::peer_address(&node, peer)?;
        let timeout = std::time::Duration::from_secs((*timeout).max(1));
        with_peer(&node, addr, timeout, |client, peer| {
            let (node, actor) = (&node, &actor);
            async move {
                deconfliction::follow_up(node, actor, &client, peer, handle, kind, message).await
            }
        })?;
        if cli.json {
            print_json(&serde_json::json!({"peer": peer, "handle": handle, "filed": true}))?;
        } else {
            outln!("filed with {peer}: a request to {kind} its case {handle}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(peer) = &args.peer else {
        bail!(
            "match needs --peer PEER_ID (and --case CASE or --selectors FILE), or `match policy`"
        );
    };
    let region = Some(node.card.country.clone());
    let sels = match (&args.case, &args.selectors) {
        (Some(c), None) => deconfliction::selectors_of_case(&node, &actor, c)?,
        (None, Some(f)) => {
            let text = read_bounded(f, 64 * 1024 * 1024)?;
            deconfliction::selectors_from_text(&text, region.as_deref())?
        }
        _ => bail!("match needs --case CASE or --selectors FILE"),
    };
    if sels.is_empty() {
        bail!("the case holds no selectors to ask about");
    }
    let addr = deconfliction::peer_address(&node, peer)?;
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let case = args.case.clone();
    let report = with_peer(&node, addr, timeout, |client, peer| {
        let (node, actor, sels) = (&node, &actor, &sels);
        async move { deconfliction::ask(node, actor, &client, peer, case.as_deref(), sels).await }
    })?;
    if cli.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "asked {} about {} selector(s): {} held there",
        report.peer,
        report.asked,
        report.hits.len()
    );
    for h in &report.hits {
        outln!(
            "HIT  {:<8} {:<36} case handle {}",
            h.kind.name(),
            h.selector,
            h.handle
        );
    }
    if !report.hits.is_empty() {
        outln!("contact: {}", report.contact);
    }
    outln!(
        "{} selector(s) left today with this partner",
        report.left_today
    );
    Ok(ExitCode::SUCCESS)
}

/// Connects to the partner at `addr` and runs `f` over the connection, the
/// whole within `timeout`.
fn with_peer<T, F, Fut>(
    node: &Node,
    addr: libp2p::Multiaddr,
    timeout: std::time::Duration,
    f: F,
) -> Result<T>
where
    F: FnOnce(casesync_node::net::Client, libp2p::PeerId) -> Fut,
    Fut: std::future::Future<Output = casesync_node::Result<T>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    Ok(local.block_on(&rt, async {
        let (client, peer) = serve::connect(node, addr, timeout).await?;
        tokio::time::timeout(timeout, f(client, peer))
            .await
            .unwrap_or_else(|_| {
                Err(casesync_node::NodeError::Io(format!(
                    "{peer} did not finish answering within {} s (try a larger --timeout)",
                    timeout.as_secs()
                )))
            })
    })?)
}

fn print_policy(cli: &Cli, node: &Node, p: &Policy) -> Result<()> {
    if cli.json {
        return print_json(p);
    }
    if p.allow.is_empty() {
        outln!("allow:    nobody (`match policy --allow PEER_ID|ORG` to let partners ask)");
    } else {
        outln!("allow:    {}", p.allow.join(", "));
    }
    outln!("per day:  {} selectors per partner", p.per_day);
    outln!(
        "contact:  {}",
        p.contact
            .clone()
            .unwrap_or_else(|| format!("{}, {}", node.card.name, node.card.org))
    );
    Ok(())
}

/// Reads a file the operator named, refusing one larger than `limit`.
fn read_bounded(path: &std::path::Path, limit: u64) -> Result<String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::new();
    f.take(limit + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    if text.len() as u64 > limit {
        bail!("{} is larger than {} MiB", path.display(), limit >> 20);
    }
    Ok(text)
}

pub(crate) fn selectors_command(cli: &Cli, cmd: &SelectorsCommand) -> Result<ExitCode> {
    let SelectorsCommand::Export {
        case,
        recipient,
        kinds,
        out,
    } = cmd;
    let node = unlock(cli)?;
    let kinds = kinds
        .iter()
        .map(|k| k.parse())
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|e| anyhow!(e))?;
    let report = selector_export::export(
        &node,
        &actor_of(cli),
        &ExportRequest {
            case: case.clone(),
            recipient: recipient.clone(),
            kinds,
            out: out.clone(),
            format: Format::for_path(out),
        },
    )?;
    if cli.json {
        return print_json(&report).map(|_| ExitCode::SUCCESS);
    }
    let types: Vec<String> = report
        .by_type
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    outln!(
        "wrote {} selector(s) for {} to {} ({})",
        report.selectors,
        report.recipient,
        report.out,
        types.join(", ")
    );
    if report.withheld_records > 0 {
        outln!(
            "withheld {} record(s) whose releasable_to does not name {}",
            report.withheld_records,
            report.recipient
        );
    }
    Ok(ExitCode::SUCCESS)
}
