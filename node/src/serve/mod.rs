//! Running the node on the network: `serve` (listen, sync with every enrolled
//! peer on connect, push local writes at once, anti-entropy every few seconds)
//! and `sync --once` (connect, exchange, report, exit).
//!
//! Everything runs on one thread (a tokio `LocalSet`): the network task owns the
//! Swarm, this driver owns the node; each exchange with a peer runs as its own
//! local task on its own store connection, so inbound requests are answered while
//! an exchange waits.
//!
//! About 600 lines: [`run`] is one select loop whose arms share its state
//! (connections, running exchanges, what each peer holds); answering and
//! exchanging, which need none of it, are in `answer.rs` and `exchange.rs`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::rc::Rc;
use std::time::{Duration, Instant};

use casesync_schema::bundle::BundleBody;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use crate::audit::{self, Action, Actor};
use crate::net::budget::{Admit, RequestBudget};
use crate::net::protocol::{CaseHave, MESSAGE_LIMITS, RESPONSE_BUDGET, SyncRequest, SyncResponse};
use crate::net::{self, Client, Event};
use crate::{Node, NodeError, Result, ingest, store, sync, trust};

mod answer;
mod exchange;
mod pieces;

pub use answer::answer;
use answer::*;
use exchange::*;
pub use exchange::{Start, exchange};
pub use pieces::FetchPolicy;

/// Store connections kept open for the next exchanges.
const MAX_SPARE_HANDLES: usize = 4;

/// Node handles (store connections) kept for the next exchange or answer:
/// opening one costs a couple of milliseconds, a push's whole budget.
#[derive(Default)]
struct SpareHandles(RefCell<Vec<Node>>);

impl SpareHandles {
    fn take(&self, node: &Node) -> Result<Node> {
        let spare = self.0.borrow_mut().pop();
        match spare {
            Some(h) => Ok(h),
            None => node.try_clone(),
        }
    }

    fn give_back(&self, handle: Node) {
        let mut spare = self.0.borrow_mut();
        if spare.len() < MAX_SPARE_HANDLES {
            spare.push(handle);
        }
    }
}
/// Requests answered at once, each on a blocking thread with its own store
/// connection: a heavy delivery (a long history to ingest) never stalls the
/// network task or the node's other peers.
const MAX_ANSWERS_AT_ONCE: usize = 4;
/// Requests read and waiting for an answer, or being answered, all peers
/// together: past it a request is answered "busy" at once and dropped, so
/// decoded requests (up to 16 MiB each) cost at most this many times that,
/// on top of what is being read (`net::codec::READ_BUDGET`).
const MAX_REQUESTS_HELD: usize = 8;

pub struct Options {
    pub listen: Vec<Multiaddr>,
    pub peers: Vec<Multiaddr>,
    /// `sync --once`: exchange with the given peers and return.
    pub once: bool,
    pub timeout: Duration,
    /// Time between anti-entropy rounds with each connected peer.
    pub anti_entropy: Duration,
    /// Who started the run: what the node does in it unasked (answering
    /// peers, its rounds, a lead's repairs) is audited under this actor.
    pub actor: Actor,
    /// Which evidence files' pieces `serve` fetches from members.
    pub fetch: FetchPolicy,
}

/// What exchanges have moved so far, as they go: `sync --once` gives up
/// after its timeout passes with nothing moving (not after the timeout in
/// all), shows the counts on a terminal, and says what arrived when it
/// stops. Every batch received is committed as it lands, so a rerun
/// resumes where this one stopped.
pub struct Progress {
    last: std::cell::Cell<Instant>,
    /// Per peer: entries received and sent.
    moved: RefCell<HashMap<PeerId, (u64, u64)>>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            last: std::cell::Cell::new(Instant::now()),
            moved: RefCell::default(),
        }
    }
    /// Something moved with `peer` (an answer, a batch).
    pub(crate) fn moved(&self, peer: PeerId, received: u64, sent: u64) {
        self.last.set(Instant::now());
        let mut m = self.moved.borrow_mut();
        let e = m.entry(peer).or_default();
        e.0 += received;
        e.1 += sent;
    }
    fn idle(&self) -> Duration {
        self.last.get().elapsed()
    }
    fn of(&self, peer: &PeerId) -> (u64, u64) {
        self.moved.borrow().get(peer).copied().unwrap_or_default()
    }
    /// Whether anything came back from `peer` (an answer, before any batch).
    fn answered(&self, peer: &PeerId) -> bool {
        self.moved.borrow().contains_key(peer)
    }
    fn totals(&self) -> (u64, u64) {
        self.moved
            .borrow()
            .values()
            .fold((0, 0), |(r, s), (a, b)| (r + a, s + b))
    }
}

/// What one exchange with a peer moved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exchange {
    pub peer: String,
    pub received: u64,
    pub sent: u64,
    pub error: Option<String>,
    /// The peer answered (even if the exchange then stopped before anything
    /// was received): "no peer answered" is never said of it.
    pub answered: bool,
}

/// What `serve` and `sync` say as they go, through `tracing` (`RUST_LOG`
/// filters it; `CASESYNC_LOG_FORMAT=json` writes one JSON object a line).
fn log(msg: impl AsRef<str>) {
    tracing::info!(target: "casesync", "{}", msg.as_ref());
}

/// A refusal, a disconnection, a peer that cannot be reached.
fn warn(msg: impl AsRef<str>) {
    tracing::warn!(target: "casesync", "{}", msg.as_ref());
}

/// The federation id, and the ed25519 key of `peer` if it is enrolled and active:
/// one registry load (and one pass of signature checks) per request or exchange.
fn federation_and_peer(node: &Node, peer: &PeerId) -> Result<(Vec<u8>, Option<[u8; 32]>)> {
    let st = trust::load(node.store.conn())?.ok_or_else(|| {
        NodeError::Refused(
            "this node belongs to no federation: sync needs one (see `casesync federation create|join`)".into(),
        )
    })?;
    let key = st
        .by_peer_id(&peer.to_base58())
        .filter(|n| !n.revoked)
        .map(|n| n.card.identity.ed25519);
    Ok((st.federation.0.to_vec(), key))
}

/// The peers that may connect (enrolled and active, not this node) and those
/// that never may again (revoked).
fn allowed_peers(node: &Node) -> Result<(Vec<PeerId>, Vec<PeerId>)> {
    let me = node.card.peer_id();
    let Some(st) = trust::load(node.store.conn())? else {
        return Ok((vec![], vec![]));
    };
    let (mut allowed, mut revoked) = (Vec::new(), Vec::new());
    for n in st.nodes.values() {
        let p = n.card.peer_id();
        if p == me {
            continue;
        }
        if let Ok(id) = p.parse::<PeerId>() {
            if n.revoked {
                revoked.push(id);
            } else {
                allowed.push(id);
            }
        }
    }
    Ok((allowed, revoked))
}

/// Puts the registry and merged control logs into effect: the transport's
/// allow list (revoked nodes are cut off), and, in the cases this node leads,
/// the removal of revoked members with a cut and the repair of keys after
/// concurrent removals (`cases::after_merge`).
async fn apply_registry(node: &Node, actor: &Actor, client: &Client) -> Result<()> {
    let (allowed, revoked) = allowed_peers(node)?;
    client.allow(allowed, revoked).await;
    apply_control(node, actor);
    Ok(())
}

/// `cases::after_merge`, logged. A failure is retried at the next round; it
/// must not stop the node.
fn apply_control(node: &Node, actor: &Actor) {
    match crate::cases::after_merge(node, actor) {
        Ok(lines) => lines.into_iter().for_each(log),
        Err(e) => warn(format!(
            "could not put merged control operations into effect yet: {e}"
        )),
    }
    // Erasures that arrived (or that a kill left half done) are carried out.
    match crate::erasure::carry_out(node, actor) {
        Ok(lines) => lines.into_iter().for_each(log),
        Err(e) => warn(format!("could not carry out an erasure yet: {e}")),
    }
}

/// Resolves when a local write may have happened: the wake socket fired, or the
/// poll tick came. Both are cancel-safe, as `select!` needs.
async fn maybe_written(wake: Option<&crate::wake::Listener>, tick: &mut tokio::time::Interval) {
    match wake {
        Some(w) => tokio::select! {
            _ = w.woken() => {}
            _ = tick.tick() => {}
        },
        None => {
            tick.tick().await;
        }
    }
}

/// Notes what was appended to the store since `marker` (by any process) and
/// puts new registry statements into effect; returns whether anything changed.
async fn take_changes(
    node: &Node,
    actor: &Actor,
    client: &Client,
    marker: &mut (i64, i64, i64),
) -> Result<bool> {
    let now = store::change_marker(node.store.conn())?;
    if now == *marker {
        return Ok(false);
    }
    if now.2 != marker.2 {
        // New registry statements: nodes enrolled or revoked.
        apply_registry(node, actor, client).await?;
    } else if now.1 != marker.1 {
        // New control operations: a merge may call for a rotation.
        apply_control(node, actor);
    }
    *marker = now;
    Ok(true)
}

/// Runs the node on the network until `shutdown` resolves (or, with `once`,
/// until every given peer has been synced or the timeout passes).
/// Redialing a peer that could not be reached: exponential back-off with
/// jitter, so many nodes that lost one peer do not all knock at once.
#[derive(Default)]
struct Redial {
    failures: u32,
    next: Option<Instant>,
    /// The next attempt as wall-clock ms, for `status`.
    shown: Option<i64>,
    dialing: bool,
    /// `shown` changed and is not in the store yet.
    dirty: bool,
}

/// The wait after `failures` failed dials in a row: 1 s, doubling, at most
/// 5 min, times a jitter factor from 0.5 to 1.5 (`jitter` spread over u32).
fn redial_delay(failures: u32, jitter: u32) -> Duration {
    let base = 1u64 << failures.saturating_sub(1).min(9);
    let base = Duration::from_secs(base.min(300));
    base.mul_f64(0.5 + f64::from(jitter) / f64::from(u32::MAX))
}

fn jitter() -> u32 {
    let mut b = [0u8; 4];
    let _ = casesync_crypto::random_bytes(&mut b);
    u32::from_le_bytes(b)
}

/// libp2p binds listeners with SO_REUSEPORT (so that dials can reuse the
/// port), and the kernel would let a second process bind the same port and
/// split the partners' connections between the two. A plain bind first (no
/// SO_REUSEPORT) fails if any process listens there.
fn refuse_a_held_address(addr: &Multiaddr) -> Result<()> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(NodeError::Refused(format!(
            "cannot listen on {addr}: another process listens there (another `casesync serve`?): stop it or pick another port"
        ))),
        Err(e) => Err(NodeError::Io(format!("cannot listen on {addr}: {e}"))),
    }
}

/// Connects to one enrolled peer for a request of this node's own (`match`),
/// on the current `LocalSet`: the network runs until the returned client is
/// dropped; requests the peer sends meanwhile are refused.
pub async fn connect(node: &Node, addr: Multiaddr, timeout: Duration) -> Result<(Client, PeerId)> {
    let peer = addr
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(id) => Some(id),
            _ => None,
        })
        .ok_or_else(|| {
            NodeError::Refused(format!("peer address {addr} must end in /p2p/PEER_ID"))
        })?;
    if federation_and_peer(node, &peer)?.1.is_none() {
        return Err(NodeError::Refused(format!(
            "{peer} is not an enrolled, active node of this federation (see `casesync trust list`)"
        )));
    }
    let (client, mut events, event_loop) = net::new(node.keys.libp2p_keypair()?)
        .map_err(|e| NodeError::Io(format!("cannot start the network: {e}")))?;
    tokio::task::spawn_local(event_loop.run());
    let (allowed, revoked) = allowed_peers(node)?;
    client.allow(allowed, revoked).await;
    let answering = client.clone();
    tokio::task::spawn_local(async move {
        while let Some(ev) = events.recv().await {
            if let Event::Inbound { channel, .. } = ev {
                answering
                    .respond(
                        channel,
                        SyncResponse::Refused {
                            reason: "busy: this node is running a one-off request".into(),
                        },
                    )
                    .await;
            }
        }
    });
    match tokio::time::timeout(timeout, client.dial(addr.clone())).await {
        Ok(Ok(())) => Ok((client, peer)),
        Ok(Err(e)) => Err(NodeError::Io(format!(
            "cannot reach {addr}: {e} (is the partner's `casesync serve` running?)"
        ))),
        Err(_) => Err(NodeError::Io(format!(
            "cannot reach {addr} within {} s (is the partner's `casesync serve` running?)",
            timeout.as_secs()
        ))),
    }
}

pub async fn run(
    node: Node,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<Vec<Exchange>> {
    // Fail early, before any network setup, if there is no federation.
    let me_peer = node.keys.libp2p_keypair()?.public().to_peer_id();
    federation_and_peer(&node, &me_peer)?;
    let (client, mut events, event_loop) = net::new(node.keys.libp2p_keypair()?)
        .map_err(|e| NodeError::Io(format!("cannot start the network: {e}")))?;
    tokio::task::spawn_local(event_loop.run());
    let actor = std::sync::Arc::new(opts.actor.clone());
    apply_registry(&node, &actor, &client).await?;
    // A node that answers deconfliction files what it holds now, not at the
    // first partner's request.
    if !opts.once && !crate::deconfliction::policy(&node)?.allow.is_empty() {
        let handle = node.try_clone()?;
        std::thread::spawn(move || {
            if let Err(e) = crate::deconfliction::refresh(&handle) {
                warn(format!("filing records for deconfliction failed: {e}"));
            }
        });
    }
    let me = node.card.peer_id();
    for addr in &opts.listen {
        refuse_a_held_address(addr)?;
        client
            .listen(addr.clone())
            .await
            .map_err(|e| NodeError::Io(format!("cannot listen on {addr}: {e}")))?;
    }
    let mut dial: Vec<Multiaddr> = opts.peers.clone();
    if !opts.once || dial.is_empty() {
        for p in store::peers(node.store.conn())? {
            if let Ok(m) = p.addr.parse::<Multiaddr>()
                && !dial.contains(&m)
            {
                dial.push(m);
            }
        }
    }
    let expected: HashSet<PeerId> = dial
        .iter()
        .filter_map(|a| {
            a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            })
        })
        .collect();
    // Every address is dialed by the redial tick, whose first tick is at
    // once: a dial here as well opened a second connection to each peer (a
    // second handshake, about 600 bytes and a signature check each way).

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Exchange>();
    // Answers computed off the network task: (peer, channel, handle back,
    // response, protocol violation).
    let (answered_tx, mut answered_rx) = mpsc::unbounded_channel::<Answered>();
    let answering = Rc::new(tokio::sync::Semaphore::new(MAX_ANSWERS_AT_ONCE));
    let held = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_REQUESTS_HELD));
    let in_flight: Rc<RefCell<HashSet<PeerId>>> = Rc::default();
    // Peers to exchange with again when their running exchange ends, and whether
    // that one may start with a digest probe (not if a local write asked for it).
    let again: Rc<RefCell<HashMap<PeerId, bool>>> = Rc::default();
    // What each connected peer is known to hold, so a push delivers at once.
    // Taken by a running exchange and put back when it succeeds; forgotten
    // when it fails or the peer disconnects (the next exchange pulls).
    let known: Rc<RefCell<HashMap<PeerId, Known>>> = Rc::default();
    let handles: Rc<SpareHandles> = Rc::default();
    // `sync --once` first compares digests too: reconnecting in-sync nodes
    // then costs one digest each way, not a summary of every shared case.
    let digest_first = opts.once;
    let progress = Rc::new(Progress::new());
    let start_exchange = |peer: PeerId, probe: bool| -> Result<()> {
        if !in_flight.borrow_mut().insert(peer) {
            let mut again = again.borrow_mut();
            let p = again.entry(peer).or_insert(probe);
            *p &= probe;
            return Ok(());
        }
        // A store connection per running exchange, reused: opening one costs
        // a couple of milliseconds, a push's whole budget.
        let handle = handles.take(&node)?;
        let handles = handles.clone();
        let c = client.clone();
        let tx = done_tx.clone();
        let known = known.clone();
        let prior = known.borrow_mut().remove(&peer);
        let actor = actor.clone();
        let progress = progress.clone();
        tokio::task::spawn_local(async move {
            let start = match (probe, digest_first) {
                (true, _) => Start::Probe,
                (false, true) => Start::DigestFirst,
                (false, false) => Start::Push,
            };
            let r = match exchange(&handle, &actor, &c, peer, start, prior, &progress).await {
                Ok((x, k)) => {
                    if let Some(k) = k {
                        known.borrow_mut().insert(peer, k);
                    }
                    x
                }
                Err(e) => {
                    // What was stored before the failure is kept and counted.
                    let (received, sent) = progress.of(&peer);
                    Exchange {
                        peer: peer.to_base58(),
                        received,
                        sent,
                        error: Some(e.to_string()),
                        answered: progress.answered(&peer),
                    }
                }
            };
            handles.give_back(handle);
            let _ = tx.send(r);
        });
        Ok(())
    };

    let mut budget = RequestBudget::default();
    let mut connected: HashSet<PeerId> = HashSet::new();
    let mut results: HashMap<PeerId, Exchange> = HashMap::new();
    let mut marker = store::change_marker(node.store.conn())?;
    // What a kill may have left half done (an erasure) is finished first.
    if !opts.once {
        apply_control(&node, &actor);
    }
    // A write by another process on this data dir wakes this one at once
    // (`wake`); the change marker is also polled (one indexed query), often
    // where no wake socket could be bound and rarely where one is.
    let wake = if opts.once {
        None
    } else {
        match crate::wake::Listener::bind(&node.dir) {
            Ok(l) => Some(l),
            Err(e) => {
                warn(format!(
                    "cannot bind the wake socket in {} ({e}); noticing local writes by polling",
                    node.dir.root.display()
                ));
                None
            }
        }
    };
    let poll = if wake.is_some() { 500 } else { 20 };
    let mut push_tick = tokio::time::interval(Duration::from_millis(poll));
    let mut entropy_tick = tokio::time::interval(opts.anti_entropy);
    let mut redial_tick = tokio::time::interval(Duration::from_secs(1));
    let redial: Rc<RefCell<HashMap<Multiaddr, Redial>>> = Rc::default();
    // A busy moment delays ticks; it must not be followed by a burst of them.
    for t in [&mut push_tick, &mut entropy_tick, &mut redial_tick] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut fetch_tick = tokio::time::interval(Duration::from_secs(1));
    fetch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let fetching: Rc<std::cell::Cell<bool>> = Rc::default();
    let piece_answers = Rc::new(tokio::sync::Semaphore::new(pieces::PIECE_ANSWERS_AT_ONCE));
    // `sync --once` stops after `timeout` with nothing moving; on a
    // terminal it shows what moved, every second.
    let mut idle_tick = tokio::time::interval(Duration::from_secs(1));
    idle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let show = opts.once && std::io::stderr().is_terminal();
    // Whether `sync --once` gave up for want of progress (not a signal).
    let mut idle_out = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = idle_tick.tick(), if opts.once => {
                if show {
                    let (r, s) = progress.totals();
                    eprint!("\rreceived {r} entries, sent {s}");
                }
                if progress.idle() >= opts.timeout {
                    idle_out = true;
                    break;
                }
            }
            Some(ev) = events.recv() => match ev {
                Event::Listening(a) => {
                    // Scripts read this line; one that stopped reading must
                    // not stop the node (println! would panic on a closed pipe).
                    let mut out = std::io::stdout();
                    let _ = writeln!(out, "listening on {a}/p2p/{me}").and_then(|_| out.flush());
                }
                Event::Connected(p) => {
                    if federation_and_peer(&node, &p)?.1.is_none() {
                        warn(format!("connected to {p}, which is not enrolled: it gets nothing"));
                    } else {
                        connected.insert(p);
                        if !opts.once || expected.contains(&p) {
                            start_exchange(p, !opts.once)?;
                        }
                    }
                }
                Event::Disconnected(p) => {
                    connected.remove(&p);
                    known.borrow_mut().remove(&p);
                }
                Event::Inbound { peer, request, channel } => {
                    if let Admit::No { first } = budget.admit(peer, Instant::now()) {
                        // Refused unread: a flood costs this, not a store query each.
                        if first {
                            warn(format!("refusing requests from {peer}: over its budget of {} a second", net::budget::RATE_PER_SEC));
                        }
                        client.respond(channel, SyncResponse::Refused { reason: "too many requests; slow down".into() }).await;
                        continue;
                    }
                    let Ok(slot) = held.clone().try_acquire_owned() else {
                        drop(request);
                        client.respond(channel, SyncResponse::Refused { reason: "busy: too many requests waiting; try again".into() }).await;
                        continue;
                    };
                    // Answered on a blocking thread (store work, signature
                    // checks, Automerge), with a store connection of its own.
                    let handle = handles.take(&node)?;
                    let tx = answered_tx.clone();
                    let answering = answering.clone();
                    let actor = actor.clone();
                    tokio::task::spawn_local(async move {
                        let _permit = answering.acquire().await;
                        let done = tokio::task::spawn_blocking(move || {
                            let (response, violation) = answer(&handle, &actor, &peer, request);
                            (handle, response, violation)
                        })
                        .await;
                        drop(slot);
                        let _ = tx.send((peer, channel, done.ok()));
                    });
                }
                Event::PieceInbound { peer, request, channel } => {
                    if let Admit::No { .. } = budget.admit(peer, Instant::now()) {
                        client.respond_pieces(channel, crate::net::protocol::PieceResponse::Refused { reason: "too many requests; slow down".into() }).await;
                        continue;
                    }
                    pieces::answer(&node, &client, &piece_answers, peer, request, channel)?;
                }
                Event::Refused(msg) => log(msg),
            },
            _ = fetch_tick.tick(), if !opts.once && !fetching.get() => {
                fetching.set(true);
                let round = pieces::fetch(
                    handles.take(&node)?,
                    actor.clone(),
                    client.clone(),
                    connected.iter().copied().collect(),
                    opts.fetch,
                    fetching.clone(),
                );
                let handles = handles.clone();
                // Its store handles go back to the spares: a round every
                // second that opened a connection each time left the next
                // push or answer to open one too (a schema load, ~1 ms).
                tokio::task::spawn_local(async move {
                    for h in round.await {
                        handles.give_back(h);
                    }
                });
            }
            Some((peer, channel, done)) = answered_rx.recv() => {
                let Some((handle, response, violation)) = done else {
                    client.respond(channel, SyncResponse::Refused { reason: "the node could not answer; try again".into() }).await;
                    continue;
                };
                handles.give_back(handle);
                let fresh = matches!(response, SyncResponse::Accepted { entries, .. } if entries > 0);
                client.respond(channel, response).await;
                if let Some(why) = violation {
                    warn(format!("disconnected {peer}: it broke the sync protocol ({why})"));
                    client.disconnect(peer).await;
                }
                if fresh {
                    // Relay at once what a peer delivered (a line of nodes must
                    // not wait a push tick at every hop).
                    take_changes(&node, &actor, &client, &mut marker).await?;
                    for p in connected.iter().filter(|p| **p != peer) {
                        start_exchange(*p, false)?;
                    }
                }
            }
            Some(x) = done_rx.recv() => {
                let p: Option<PeerId> = x.peer.parse().ok();
                if let Some(p) = p {
                    in_flight.borrow_mut().remove(&p);
                    let rerun = again.borrow_mut().remove(&p);
                    if let Some(probe) = rerun && connected.contains(&p) {
                        start_exchange(p, probe)?;
                    }
                    if x.received > 0 && !opts.once {
                        // Relay at once what was pulled from `p`.
                        take_changes(&node, &actor, &client, &mut marker).await?;
                        for q in connected.iter().filter(|q| **q != p) {
                            start_exchange(*q, false)?;
                        }
                    }
                    // `sync --once` prints its results itself; a peer that went
                    // away explains its own failed exchange.
                    match &x.error {
                        Some(e) if connected.contains(&p) => warn(format!("sync with {p} failed: {e}")),
                        None if x.received + x.sent > 0 && !opts.once => log(format!("synced with {p}: received {} entries, sent {}", x.received, x.sent)),
                        _ => {}
                    }
                    results.insert(p, x);
                }
                if opts.once && !expected.is_empty() && expected.iter().all(|p| results.contains_key(p)) {
                    break;
                }
            }
            _ = maybe_written(wake.as_ref(), &mut push_tick), if !opts.once => {
                // Writes by this or another process on the same data dir: push now.
                if take_changes(&node, &actor, &client, &mut marker).await? {
                    for p in connected.clone() {
                        start_exchange(p, false)?;
                    }
                }
            }
            _ = entropy_tick.tick(), if !opts.once => {
                apply_registry(&node, &actor, &client).await?;
                for p in connected.clone() {
                    start_exchange(p, true)?;
                }
            }
            _ = redial_tick.tick() => {
                let now = Instant::now();
                for a in &dial {
                    let known = a.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(id) if connected.contains(&id)));
                    let mut state = redial.borrow_mut();
                    let st = state.entry(a.clone()).or_default();
                    if known {
                        if st.failures > 0 || st.shown.is_some() {
                            *st = Redial::default();
                            st.dirty = true;
                        }
                    } else if st.next.is_none_or(|t| t <= now) && !st.dialing {
                        st.dialing = true;
                        let c = client.clone();
                        let a = a.clone();
                        let redial = redial.clone();
                        tokio::task::spawn_local(async move {
                            let failed = c.dial(a.clone()).await.err();
                            let mut state = redial.borrow_mut();
                            let st = state.entry(a.clone()).or_default();
                            st.dialing = false;
                            match failed {
                                Some(e) => {
                                    st.failures = st.failures.saturating_add(1);
                                    let wait = redial_delay(st.failures, jitter());
                                    st.next = Some(Instant::now() + wait);
                                    let (ms, _) = crate::clock::now();
                                    st.shown = Some(ms + wait.as_millis() as i64);
                                    st.dirty = true;
                                    if st.failures <= 3 || st.failures.is_power_of_two() {
                                        warn(format!(
                                            "cannot reach {a}: {e}; next attempt in {} s",
                                            wait.as_secs()
                                        ));
                                    }
                                }
                                None => {
                                    let was = st.shown.is_some();
                                    *st = Redial::default();
                                    st.dirty = was;
                                }
                            }
                        });
                    }
                }
                // What `status` shows: when each remembered peer is tried next.
                let dirty: Vec<(String, Option<i64>)> = redial
                    .borrow_mut()
                    .iter_mut()
                    .filter(|(_, st)| st.dirty)
                    .map(|(a, st)| {
                        st.dirty = false;
                        (a.to_string(), st.shown)
                    })
                    .collect();
                for (addr, when) in dirty {
                    let text = when.map(crate::clock::format_ms);
                    let _ = node.store.write(|tx| store::set_peer_next_dial(tx, &addr, text.as_deref()));
                }
            }
        }
    }
    if opts.once {
        if show {
            eprintln!();
        }
        // A peer still exchanging (or never answering) when the run
        // stopped: what moved with it is kept, and a rerun resumes.
        for p in &expected {
            if results.contains_key(p) {
                continue;
            }
            let (received, sent) = progress.of(p);
            let secs = opts.timeout.as_secs();
            results.insert(
                *p,
                Exchange {
                    peer: p.to_base58(),
                    received,
                    sent,
                    error: Some(if connected.contains(p) {
                        format!(
                            "stopped {}, having received {received} entries and sent {sent} (kept: run `casesync sync --once` again to resume)",
                            if idle_out {
                                format!("after {secs} s without progress")
                            } else {
                                "when interrupted".to_string()
                            }
                        )
                    } else {
                        format!("did not answer within {secs} s")
                    }),
                    answered: connected.contains(p) || progress.answered(p),
                },
            );
        }
        // What arrived may call for a lead's rotation; it travels with the
        // next sync.
        apply_control(&node, &actor);
    }
    Ok(results.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redials_back_off_exponentially_with_jitter_up_to_five_minutes() {
        let secs = |f, j| redial_delay(f, j).as_secs_f64();
        assert!((secs(1, 0) - 0.5).abs() < 0.01);
        assert!((secs(1, u32::MAX) - 1.5).abs() < 0.01);
        assert!((secs(2, u32::MAX / 2) - 2.0).abs() < 0.01);
        assert!((secs(5, u32::MAX / 2) - 16.0).abs() < 0.01);
        for f in [10, 11, 40, u32::MAX] {
            assert!((150.0..=450.0).contains(&secs(f, jitter())), "{f}");
        }
    }
}
