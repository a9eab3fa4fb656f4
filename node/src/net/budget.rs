//! How many requests each peer may make: a token bucket per peer, so that a
//! peer that floods the node gets cheap refusals instead of work, and the
//! node's time goes on to its other peers. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Requests a peer may make at once after a quiet spell. An honest exchange is
/// a digest, a few pulls and a delivery; a push per local write adds two.
pub const BURST: f64 = 64.0;
/// Requests per second a peer may keep up.
pub const RATE_PER_SEC: f64 = 32.0;
/// Peers not heard from for this long are forgotten (they come back full).
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Over the budget: refuse without doing the work. `first` is true for the
    /// first refusal after admitted requests, so the log says it once per spell.
    No {
        first: bool,
    },
}

struct Bucket {
    tokens: f64,
    at: Instant,
    refusing: bool,
}

#[derive(Default)]
pub struct RequestBudget {
    peers: HashMap<PeerId, Bucket>,
}

impl RequestBudget {
    pub fn admit(&mut self, peer: PeerId, now: Instant) -> Admit {
        if self.peers.len() > 1024 {
            self.peers
                .retain(|_, b| now.saturating_duration_since(b.at) < FORGET_AFTER);
        }
        let b = self.peers.entry(peer).or_insert(Bucket {
            tokens: BURST,
            at: now,
            refusing: false,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * RATE_PER_SEC).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refusing = false;
            Admit::Yes
        } else {
            let first = !b.refusing;
            b.refusing = true;
            Admit::No { first }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst_and_the_rate_and_other_peers_are_untouched() {
        let mut budget = RequestBudget::default();
        let (flooder, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let admitted = (0..200)
            .filter(|_| budget.admit(flooder, t0) == Admit::Yes)
            .count();
        assert_eq!(admitted, BURST as usize);
        // The first refusal is flagged for the log, the next are not.
        assert_eq!(budget.admit(flooder, t0), Admit::No { first: false });
        assert_eq!(budget.admit(other, t0), Admit::Yes);
        // A second later the peer may make RATE_PER_SEC more, no more.
        let t1 = t0 + Duration::from_secs(1);
        let admitted = (0..200)
            .filter(|_| budget.admit(flooder, t1) == Admit::Yes)
            .count();
        assert_eq!(admitted, RATE_PER_SEC as usize);
        assert_eq!(budget.admit(flooder, t1), Admit::No { first: false });
        // After a quiet spell it has its burst again, and a new refusal is flagged.
        let t2 = t1 + Duration::from_secs(60);
        let admitted = (0..200)
            .filter(|_| budget.admit(flooder, t2) == Admit::Yes)
            .count();
        assert_eq!(admitted, BURST as usize);
    }

    #[test]
    fn a_new_spell_of_refusals_is_flagged_again() {
        let mut budget = RequestBudget::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        for _ in 0..BURST as usize {
            assert_eq!(budget.admit(p, t0), Admit::Yes);
        }
        assert_eq!(budget.admit(p, t0), Admit::No { first: true });
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(budget.admit(p, t1), Admit::Yes);
        for _ in 0..10 {
            budget.admit(p, t1);
        }
        assert_eq!(budget.admit(p, t1), Admit::No { first: false });
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(budget.admit(p, t2), Admit::Yes);
    }
}
