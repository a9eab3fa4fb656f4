//! A TCP proxy for one directed link: node i dials node j through it (its
//! `--peer` address is the proxy's port), so the test decides what crosses.
//! It can cut the link (close every connection and refuse new ones), heal it,
//! reset its connections, and delay every chunk it forwards. Nodes dial only
//! the addresses they are given (they run no identify), so a cut
//! link is a real partition.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One directed link.
pub(crate) struct Link {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    /// Connections accepted and forwarded, for the report.
    forwarded: AtomicUsize,
}

struct State {
    target: Option<SocketAddr>,
    up: bool,
    delay: Duration,
    /// Bytes still forwarded before the link stalls (holds what arrives,
    /// connections open), if set: [`Link::stall_after`].
    budget: Option<usize>,
    /// Both sockets of every live connection, to close them on a cut or reset.
    open: Vec<(TcpStream, TcpStream)>,
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Link {
    pub(crate) fn new() -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                target: None,
                up: true,
                delay: Duration::ZERO,
                budget: None,
                open: Vec::new(),
            }),
            stop: AtomicBool::new(false),
            forwarded: AtomicUsize::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || accept(listener, s));
        Link { port, shared }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Where the link leads (the node's current listen port: it changes when
    /// the node restarts).
    pub(crate) fn set_target(&self, port: u16) {
        lock(&self.shared).target = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    }

    /// Closes every connection and refuses new ones until [`Link::heal`].
    pub(crate) fn cut(&self) {
        lock(&self.shared).up = false;
        self.reset();
    }

    pub(crate) fn heal(&self) {
        lock(&self.shared).up = true;
    }

    /// Closes every connection now; new ones may follow.
    pub(crate) fn reset(&self) {
        let open = std::mem::take(&mut lock(&self.shared).open);
        for (a, b) in open {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Holds every chunk this long before forwarding it.
    pub(crate) fn set_delay(&self, d: Duration) {
        lock(&self.shared).delay = d;
    }

    /// Forwards `bytes` more (both ways together), then holds everything,
    /// connections open, until [`Link::unstall`]: a peer that stops
    /// answering in the middle of a sync.
    pub(crate) fn stall_after(&self, bytes: usize) {
        lock(&self.shared).budget = Some(bytes);
    }

    pub(crate) fn unstall(&self) {
        lock(&self.shared).budget = None;
    }

    pub(crate) fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.reset();
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(inbound) = incoming else { continue };
        let target = {
            let st = lock(&shared);
            if st.up { st.target } else { None }
        };
        // Cut, or the node behind it is not up yet: the dialer sees a closed
        // connection, as across a dead link.
        let Some(target) = target else { continue };
        let Ok(outbound) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            continue;
        };
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let clones = (
            inbound.try_clone(),
            outbound.try_clone(),
            inbound.try_clone(),
            outbound.try_clone(),
        );
        let (Ok(in2), Ok(out2), Ok(in3), Ok(out3)) = clones else {
            continue;
        };
        {
            let mut st = lock(&shared);
            // A cut that came while connecting wins.
            if !st.up {
                continue;
            }
            st.open.push((in3, out3));
        }
        shared.forwarded.fetch_add(1, Ordering::Relaxed);
        let s1 = shared.clone();
        let s2 = shared.clone();
        std::thread::spawn(move || pump(inbound, out2, &s1));
        std::thread::spawn(move || pump(outbound, in2, &s2));
    }
}

/// Copies `from` to `to` until either side closes, delaying each chunk.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = lock(shared).delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        // Stalled: hold the chunk until unstalled (or the proxy stops).
        loop {
            let mut st = lock(shared);
            match st.budget {
                Some(b) if b < n => {}
                Some(b) => {
                    st.budget = Some(b - n);
                    break;
                }
                None => break,
            }
            drop(st);
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
