//! The network: one task owns the libp2p Swarm (TCP + Noise + Yamux,
//! request-response with CBOR, connection limits); the rest of the node drives it through a
//! cloneable [`Client`] and receives [`Event`]s (the pattern of rust-libp2p's
//! file-sharing example).
//!
//! Only enrolled, active nodes may connect: the allow list is the registry's,
//! and any other PeerId is denied once the Noise handshake proves who it is.

pub mod admission;
pub mod budget;
pub mod codec;
pub mod protocol;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, allow_block_list, connection_limits, noise, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use codec::{Frame, PieceCodec, SyncCodec};
use protocol::{PIECES_PROTOCOL, PROTOCOL, PieceRequest, PieceResponse, SyncRequest, SyncResponse};

/// Connections one peer may hold at once: its `serve`, a `sync --once` run
/// beside it on the same data dir (same PeerId), and a dial in each direction
/// at the same moment. More is waste or abuse.
const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// A connection whose handshake (TCP, Noise, Yamux) has not finished within
/// this is dropped: an idle stranger holds a pending slot no longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Refused incoming connections are logged as a count per interval, not a
/// line each (a stranger reconnecting in a loop must not flood the log).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Peers named in the log per interval; the rest are counted.
const REFUSALS_NAMED: usize = 16;
/// Requests in flight on one connection, both directions together. With the
/// message cap and the connection limit this bounds what one enrolled peer can
/// make the node buffer (4 x 8 x 16 MiB); honest peers have one exchange at a
/// time.
const MAX_STREAMS_PER_CONNECTION: usize = 8;
/// Streams per connection for the node's own requests, apart from the ones
/// peers open (an exchange, a push, a digest probe at once, with room).
const MAX_OWN_STREAMS_PER_CONNECTION: usize = 8;
/// A request that is not answered (or not fully sent) within this is dropped,
/// so a peer that stalls mid-message holds a stream no longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// Pending incoming connections per address, with slots kept for
    /// addresses enrolled peers connect from (`admission`).
    admission: admission::Behaviour,
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    /// Requests peers send this node (inbound only).
    serve: request_response::Behaviour<SyncCodec>,
    /// Requests this node sends (outbound only): its own streams per
    /// connection, so a peer that fills the inbound ones (slow, stalled or
    /// many requests) cannot keep this node from syncing with it.
    ask: request_response::Behaviour<SyncCodec>,
    /// Evidence pieces peers ask of this node, on streams of their own.
    pieces_serve: request_response::Behaviour<PieceCodec>,
    /// Evidence pieces this node asks for.
    pieces_ask: request_response::Behaviour<PieceCodec>,
}

/// Streams per connection for evidence pieces, each way: a piece request
/// carries up to 8 MiB, so few at once.
const PIECE_STREAMS_PER_CONNECTION: usize = 2;

fn pieces_behaviour(support: ProtocolSupport) -> request_response::Behaviour<PieceCodec> {
    request_response::Behaviour::with_codec(
        PieceCodec::default(),
        [(StreamProtocol::new(PIECES_PROTOCOL), support)],
        request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(PIECE_STREAMS_PER_CONNECTION),
    )
}

/// The sync protocol in one direction, with its own streams per connection.
fn sync_behaviour(
    support: ProtocolSupport,
    streams: usize,
) -> request_response::Behaviour<SyncCodec> {
    request_response::Behaviour::with_codec(
        SyncCodec::default(),
        [(StreamProtocol::new(PROTOCOL), support)],
        request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(streams),
    )
}

/// What the node asks of the network task.
enum Command {
    Listen {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Request {
        peer: PeerId,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, String>>,
    },
    Respond {
        channel: ResponseChannel<Frame<SyncResponse>>,
        response: SyncResponse,
    },
    Allow {
        peers: Vec<PeerId>,
        revoked: Vec<PeerId>,
    },
    Disconnect {
        peer: PeerId,
    },
    PieceRequest {
        peer: PeerId,
        request: PieceRequest,
        reply: oneshot::Sender<Result<PieceResponse, String>>,
    },
    PieceRespond {
        channel: ResponseChannel<Frame<PieceResponse>>,
        response: PieceResponse,
    },
}

/// What the network tells the node.
#[derive(Debug)]
pub enum Event {
    Listening(Multiaddr),
    Connected(PeerId),
    Disconnected(PeerId),
    Inbound {
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<Frame<SyncResponse>>,
    },
    /// A peer asks for evidence pieces.
    PieceInbound {
        peer: PeerId,
        request: PieceRequest,
        channel: ResponseChannel<Frame<PieceResponse>>,
    },
    /// A connection was refused or failed; for the log.
    Refused(String),
}

/// A handle to the network task. Cloneable; the task ends when every handle is dropped.
#[derive(Clone)]
pub struct Client {
    /// Commands to the network task, which owns the other half.
    commands: mpsc::Sender<Command>,
}

fn closed() -> String {
    "the network task has stopped".to_string()
}

impl Client {
    /// Sends the command `make` builds around a reply channel, and waits
    /// for the network task's answer.
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Command,
    ) -> Result<T, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
    pub async fn listen(&self, addr: Multiaddr) -> Result<(), String> {
        self.call(|reply| Command::Listen { addr, reply }).await
    }
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), String> {
        self.call(|reply| Command::Dial { addr, reply }).await
    }
    pub async fn request(
        &self,
        peer: PeerId,
        request: SyncRequest,
    ) -> Result<SyncResponse, String> {
        self.call(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await
    }
    pub async fn respond(
        &self,
        channel: ResponseChannel<Frame<SyncResponse>>,
        response: SyncResponse,
    ) {
        let _ = self
            .commands
            .send(Command::Respond { channel, response })
            .await;
    }
    /// Asks `peer` for evidence pieces.
    pub async fn request_pieces(
        &self,
        peer: PeerId,
        request: PieceRequest,
    ) -> Result<PieceResponse, String> {
        self.call(|reply| Command::PieceRequest {
            peer,
            request,
            reply,
        })
        .await
    }
    pub async fn respond_pieces(
        &self,
        channel: ResponseChannel<Frame<PieceResponse>>,
        response: PieceResponse,
    ) {
        let _ = self
            .commands
            .send(Command::PieceRespond { channel, response })
            .await;
    }
    /// Closes every connection to `peer` (it broke the protocol); it may dial
    /// again, and is disconnected again if it goes on.
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Disconnect { peer }).await;
    }
    /// Sets the peers that may connect (enrolled, active) and those that may
    /// never connect again (revoked): their connections are closed.
    pub async fn allow(&self, peers: Vec<PeerId>, revoked: Vec<PeerId>) {
        let _ = self.commands.send(Command::Allow { peers, revoked }).await;
    }
}

/// Owns the Swarm; run it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: libp2p::Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    pending_dial: HashMap<PeerId, Vec<oneshot::Sender<Result<(), String>>>>,
    pending_request: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>>,
    pending_pieces: HashMap<OutboundRequestId, oneshot::Sender<Result<PieceResponse, String>>>,
    allowed: Vec<PeerId>,
    /// Peers dialed on the operator's explicit request.
    explicit: std::collections::HashSet<PeerId>,
    /// Revoked nodes: never dialed, never allowed.
    revoked: std::collections::HashSet<PeerId>,
    /// Incoming connections refused in this `REFUSAL_LOG_INTERVAL`: the first
    /// from each peer (all unknown peers count as one, and at most
    /// `REFUSALS_NAMED` peers) is logged, the others counted.
    refused: u64,
    refused_from: std::collections::HashSet<Option<PeerId>>,
}

/// Builds the network for `keypair`: a client handle, the event stream, and the
/// event loop to spawn.
pub fn new(
    keypair: libp2p::identity::Keypair,
) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), String> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        // No identify: a node dials only addresses its operator gave (`--peer`,
        // `peer add`), never ones a peer reports about itself (which a hostile
        // peer could point anywhere), and nothing else uses what identify
        // says; it cost about 1.5 KB on every connection.
        .with_behaviour(|_| Behaviour {
            allow: allow_block_list::Behaviour::default(),
            admission: admission::Behaviour::default(),
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
            ),
            serve: sync_behaviour(ProtocolSupport::Inbound, MAX_STREAMS_PER_CONNECTION),
            ask: sync_behaviour(ProtocolSupport::Outbound, MAX_OWN_STREAMS_PER_CONNECTION),
            pieces_serve: pieces_behaviour(ProtocolSupport::Inbound),
            pieces_ask: pieces_behaviour(ProtocolSupport::Outbound),
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .with_connection_timeout(HANDSHAKE_TIMEOUT)
        .build();
    let (ctx, crx) = mpsc::channel(64);
    let (etx, erx) = mpsc::channel(256);
    Ok((
        Client { commands: ctx },
        erx,
        EventLoop {
            swarm,
            commands: crx,
            events: etx,
            pending_dial: HashMap::new(),
            pending_request: HashMap::new(),
            pending_pieces: HashMap::new(),
            allowed: Vec::new(),
            explicit: Default::default(),
            revoked: Default::default(),
            refused: 0,
            refused_from: Default::default(),
        },
    ))
}

impl EventLoop {
    /// Runs until every [`Client`] is dropped.
    pub async fn run(mut self) {
        let mut log_tick = tokio::time::interval(REFUSAL_LOG_INTERVAL);
        log_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = log_tick.tick() => self.log_refusals().await,
                event = self.swarm.select_next_some() => self.on_swarm(event).await,
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => return,
                },
            }
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Listen { addr, reply } => {
                let _ = reply.send(
                    self.swarm
                        .listen_on(addr)
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                );
            }
            Command::Dial { addr, reply } => {
                let peer = addr.iter().find_map(|p| match p {
                    libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                    _ => None,
                });
                match peer {
                    Some(peer) if self.swarm.is_connected(&peer) => {
                        let _ = reply.send(Ok(()));
                    }
                    Some(peer) if self.revoked.contains(&peer) => {
                        let _ = reply.send(Err(format!("{peer} is revoked")));
                    }
                    Some(peer) => {
                        // An address the operator asked to dial may connect even if the
                        // registry does not list it (requests are still checked against
                        // the registry, so an unenrolled peer gets nothing).
                        self.explicit.insert(peer);
                        self.swarm.behaviour_mut().allow.allow_peer(peer);
                        match self.swarm.dial(addr) {
                            Ok(()) => self.pending_dial.entry(peer).or_default().push(reply),
                            Err(e) => {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                    None => {
                        let _ = reply.send(Err("the address must end in /p2p/PEER_ID".into()));
                    }
                }
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .ask
                    .send_request(&peer, Frame::Message(request));
                self.pending_request.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .serve
                    .send_response(channel, Frame::Message(response));
            }
            Command::Disconnect { peer } => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::PieceRequest {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .pieces_ask
                    .send_request(&peer, Frame::Message(request));
                self.pending_pieces.insert(id, reply);
            }
            Command::PieceRespond { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .pieces_serve
                    .send_response(channel, Frame::Message(response));
            }
            Command::Allow { peers, revoked } => {
                // A revoked node is cut off at once, even one the operator dialed
                // by hand: disallowing closes its connections.
                for p in &revoked {
                    self.explicit.remove(p);
                    self.revoked.insert(*p);
                    self.swarm.behaviour_mut().allow.disallow_peer(*p);
                }
                for p in self.allowed.drain(..).collect::<Vec<_>>() {
                    if !peers.contains(&p) && !self.explicit.contains(&p) {
                        self.swarm.behaviour_mut().allow.disallow_peer(p);
                    }
                }
                for p in &peers {
                    self.swarm.behaviour_mut().allow.allow_peer(*p);
                }
                self.allowed = peers;
            }
        }
    }

    async fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let _ = self.events.send(Event::Listening(address)).await;
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                for r in self.pending_dial.remove(&peer_id).into_iter().flatten() {
                    let _ = r.send(Ok(()));
                }
                let _ = self.events.send(Event::Connected(peer_id)).await;
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                let _ = self.events.send(Event::Disconnected(peer_id)).await;
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let Some(p) = peer_id {
                    for r in self.pending_dial.remove(&p).into_iter().flatten() {
                        let _ = r.send(Err(error.to_string()));
                    }
                }
                let _ = self
                    .events
                    .send(Event::Refused(format!(
                        "outgoing connection failed: {error}"
                    )))
                    .await;
            }
            SwarmEvent::IncomingConnectionError {
                peer_id,
                send_back_addr,
                error,
                ..
            } => {
                let who = peer_id
                    .map(|p| p.to_base58())
                    .unwrap_or_else(|| "an unknown peer".into());
                // The first refusal of each peer in an interval is logged at
                // once, the rest as one count when the interval ends.
                let first =
                    self.refused_from.len() < REFUSALS_NAMED && self.refused_from.insert(peer_id);
                if !first {
                    self.refused += 1;
                } else {
                    let _ = self
                        .events
                        .send(Event::Refused(format!(
                            "refused incoming connection from {who} at {send_back_addr} (not an enrolled node, or its handshake did not finish): {error}"
                        )))
                        .await;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Serve(e) | BehaviourEvent::Ask(e)) => {
                self.on_sync(e).await
            }
            SwarmEvent::Behaviour(
                BehaviourEvent::PiecesServe(e) | BehaviourEvent::PiecesAsk(e),
            ) => self.on_pieces(e).await,
            // allow-list events, and the rest: nothing to do.
            _ => {}
        }
    }

    /// One line for the incoming connections refused in the interval that
    /// were not logged when they happened.
    async fn log_refusals(&mut self) {
        self.refused_from.clear();
        let more = std::mem::take(&mut self.refused);
        if more == 0 {
            return;
        }
        let _ = self
            .events
            .send(Event::Refused(format!(
                "refused {more} more incoming connection(s) in the last {} s",
                REFUSAL_LOG_INTERVAL.as_secs()
            )))
            .await;
    }

    /// Closes every connection to `peer`, which broke the protocol, and says so.
    async fn cut_off(&mut self, peer: PeerId, why: String) {
        let _ = self.swarm.disconnect_peer_id(peer);
        let _ = self
            .events
            .send(Event::Refused(format!(
                "disconnected {peer}: it broke the sync protocol ({why})"
            )))
            .await;
    }

    async fn on_sync(
        &mut self,
        e: request_response::Event<Frame<SyncRequest>, Frame<SyncResponse>>,
    ) {
        match e {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request: Frame::Message(request),
                    channel,
                    ..
                } => {
                    let _ = self
                        .events
                        .send(Event::Inbound {
                            peer,
                            request,
                            channel,
                        })
                        .await;
                }
                request_response::Message::Request {
                    request: Frame::Broken(why),
                    channel,
                    ..
                } => {
                    // Said once, for an honest peer with a bug; then cut off.
                    let _ = self.swarm.behaviour_mut().serve.send_response(
                        channel,
                        Frame::Message(SyncResponse::Refused {
                            reason: format!("protocol violation: {why}"),
                        }),
                    );
                    self.cut_off(peer, why).await;
                }
                request_response::Message::Request {
                    request: Frame::Busy,
                    channel,
                    ..
                } => {
                    // Too much is being read at once: no fault of this peer's.
                    let _ = self.swarm.behaviour_mut().serve.send_response(
                        channel,
                        Frame::Message(SyncResponse::Refused {
                            reason: "busy: too much arriving at once; try again".into(),
                        }),
                    );
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let answer = match response {
                        Frame::Message(r) => Ok(r),
                        Frame::Busy => Err(format!(
                            "this node had no room to read {peer}'s answer; trying again later"
                        )),
                        Frame::Broken(why) => {
                            self.cut_off(peer, format!("its answer: {why}")).await;
                            Err(format!("{peer} answered with {why}"))
                        }
                    };
                    if let Some(r) = self.pending_request.remove(&request_id) {
                        let _ = r.send(answer);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(r) = self.pending_request.remove(&request_id) {
                    let _ = r.send(Err(error.to_string()));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                // The stream failed (reset, timed out, connection gone): no
                // fault of the peer's that can be proved; what it sent that
                // could not be read arrives as a broken frame instead.
                let _ = self
                    .events
                    .send(Event::Refused(format!(
                        "inbound request from {peer} failed: {error}"
                    )))
                    .await;
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    async fn on_pieces(
        &mut self,
        e: request_response::Event<Frame<PieceRequest>, Frame<PieceResponse>>,
    ) {
        match e {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => match request {
                    Frame::Message(request) => {
                        let _ = self
                            .events
                            .send(Event::PieceInbound {
                                peer,
                                request,
                                channel,
                            })
                            .await;
                    }
                    Frame::Broken(why) => {
                        let _ = self.swarm.behaviour_mut().pieces_serve.send_response(
                            channel,
                            Frame::Message(PieceResponse::Refused {
                                reason: format!("protocol violation: {why}"),
                            }),
                        );
                        self.cut_off(peer, why).await;
                    }
                    Frame::Busy => {
                        let _ = self.swarm.behaviour_mut().pieces_serve.send_response(
                            channel,
                            Frame::Message(PieceResponse::Refused {
                                reason: "busy: too much arriving at once; try again".into(),
                            }),
                        );
                    }
                },
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let answer = match response {
                        Frame::Message(r) => Ok(r),
                        Frame::Busy => Err(format!("no room to read {peer}'s pieces; later")),
                        Frame::Broken(why) => {
                            self.cut_off(peer, format!("its pieces: {why}")).await;
                            Err(format!("{peer} answered with {why}"))
                        }
                    };
                    if let Some(r) = self.pending_pieces.remove(&request_id) {
                        let _ = r.send(answer);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(r) = self.pending_pieces.remove(&request_id) {
                    let _ = r.send(Err(error.to_string()));
                }
            }
            _ => {}
        }
    }
}
