//! The peers this node dials (`peer add|list`): addresses its operator gave,
//! tried by `serve` and `sync`. A node dials no other address (docs/design.md,
//! "Network").

use crate::error::{NodeError, Result};
use crate::store::{self, Store};

pub use crate::store::PeerRow as Peer;

/// Remembers `addr` (a multiaddr ending in `/p2p/PEER_ID`); false if it was
/// already known.
pub fn add(store: &Store, addr: &str) -> Result<bool> {
    let m: libp2p::Multiaddr = addr.trim().parse().map_err(|e| {
        NodeError::Refused(format!(
            "`{}` is not a multiaddr ({e}); e.g. /ip4/127.0.0.1/tcp/7001",
            crate::error::short(addr)
        ))
    })?;
    Ok(store.write(|tx| store::add_peer(tx, &m.to_string()))?)
}

/// The remembered peers, in the order they were added.
pub fn list(store: &Store) -> Result<Vec<Peer>> {
    Ok(store::peers(store.conn())?)
}
