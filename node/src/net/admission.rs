//! Admission of incoming connections before their handshake ends, when the
//! node does not yet know who is connecting. Idle TCP connections that never
//! finish a handshake must not lock enrolled peers out (issue 14, finding 8):
//! each IP address may hold only a few pending connections, and part of the
//! pending slots is kept for addresses an enrolled peer has connected from.
//! The handshake itself is bounded by the transport's timeout (`net::new`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::{ConnectionEstablished, ListenFailure};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

/// Pending incoming connections in all.
pub const MAX_PENDING: usize = 64;
/// Of those, kept for addresses an enrolled peer has connected from.
pub const RESERVED: usize = 16;
/// Pending incoming connections one address may hold (twice that for an
/// address an enrolled peer has connected from: several nodes may share one).
pub const MAX_PENDING_PER_IP: usize = 8;
/// How many addresses are remembered as an enrolled peer's.
const MAX_TRUSTED: usize = 1024;

/// Why a pending connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    PerAddress,
    Total,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::PerAddress => write!(f, "too many unfinished handshakes from this address"),
            Limit::Total => write!(f, "too many unfinished handshakes"),
        }
    }
}

impl std::error::Error for Limit {}

/// Whether one more pending connection is admitted, given how many are pending
/// in all and from its address, and whether an enrolled peer has connected
/// from that address. Pure.
pub fn admit(pending: usize, from_ip: usize, trusted: bool) -> Result<(), Limit> {
    let (total, per_ip) = match trusted {
        true => (MAX_PENDING, 2 * MAX_PENDING_PER_IP),
        false => (MAX_PENDING - RESERVED, MAX_PENDING_PER_IP),
    };
    if from_ip >= per_ip {
        return Err(Limit::PerAddress);
    }
    if pending >= total {
        return Err(Limit::Total);
    }
    Ok(())
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

#[derive(Default)]
pub struct Behaviour {
    pending: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
    /// Addresses an allowed peer finished a handshake from (every behaviour,
    /// the allow list included, admitted the connection), oldest first.
    trusted: HashSet<IpAddr>,
    trusted_order: VecDeque<IpAddr>,
}

impl Behaviour {
    fn release(&mut self, id: &ConnectionId) {
        if let Some(ip) = self.pending.remove(id)
            && let Some(n) = self.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    fn trust(&mut self, ip: IpAddr) {
        if self.trusted.insert(ip) {
            self.trusted_order.push_back(ip);
            if self.trusted_order.len() > MAX_TRUSTED
                && let Some(old) = self.trusted_order.pop_front()
            {
                self.trusted.remove(&old);
            }
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        admit(self.pending.len(), from_ip, self.trusted.contains(&ip))
            .map_err(ConnectionDenied::new)?;
        self.pending.insert(connection_id, ip);
        *self.per_ip.entry(ip).or_default() += 1;
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint,
                ..
            }) => {
                self.release(&connection_id);
                if let ConnectedPoint::Listener { send_back_addr, .. } = endpoint
                    && let Some(ip) = ip_of(send_back_addr)
                {
                    self.trust(ip);
                }
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_a_few_slots_and_enrolled_peers_keep_theirs() {
        assert_eq!(admit(0, 0, false), Ok(()));
        assert_eq!(admit(10, MAX_PENDING_PER_IP, false), Err(Limit::PerAddress));
        // Strangers fill the general slots; an enrolled peer's address still
        // gets one of the reserved ones.
        let general = MAX_PENDING - RESERVED;
        assert_eq!(admit(general, 0, false), Err(Limit::Total));
        assert_eq!(admit(general, 0, true), Ok(()));
        assert_eq!(admit(MAX_PENDING, 0, true), Err(Limit::Total));
        assert_eq!(admit(0, MAX_PENDING_PER_IP, true), Ok(()));
    }
}
