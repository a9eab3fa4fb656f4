//! How a running `serve` learns at once that another process wrote to its data
//! dir (a `record edit`, an import, a `sync --once`), so the write is pushed to
//! peers without waiting for a poll.
//!
//! `serve` binds a Unix datagram socket, `serve.wake`, in the data dir; a
//! process that committed a write sends it one empty datagram. The datagram
//! carries nothing and proves nothing: on any datagram `serve` re-reads the
//! store's change marker (one indexed query), so a stray or forged one costs
//! that query and no more. Where no socket can be bound (not Unix, a path too
//! long for a socket address, a read-only dir), `serve` polls the marker often
//! instead; where one is bound it still polls, rarely, for writers that do not
//! notify (an older binary, a sqlite3 shell).

use std::path::{Path, PathBuf};

use crate::node::DataDir;

const WAKE_FILE: &str = "serve.wake";

fn path(dir: &DataDir) -> PathBuf {
    dir.root.join(WAKE_FILE)
}

/// Tells a `serve` running on `dir`, if any, that the store changed. Never
/// fails: with no `serve` listening there is nobody to tell.
pub fn notify(dir: &DataDir) {
    #[cfg(unix)]
    {
        let p = path(dir);
        if p.exists()
            && let Ok(s) = std::os::unix::net::UnixDatagram::unbound()
        {
            let _ = s.set_nonblocking(true);
            let _ = s.send_to(&[], &p);
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// The socket a running `serve` is woken through; removed when dropped.
pub struct Listener {
    #[cfg(unix)]
    socket: tokio::net::UnixDatagram,
    path: PathBuf,
}

impl Listener {
    /// Binds `serve.wake` in `dir`. A file left there by a `serve` that was
    /// killed is replaced. `Err` says why none could be bound (the caller
    /// falls back to polling and says so).
    pub fn bind(dir: &DataDir) -> std::io::Result<Listener> {
        let path = path(dir);
        #[cfg(unix)]
        {
            let socket = match tokio::net::UnixDatagram::bind(&path) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    remove_stale(&path)?;
                    tokio::net::UnixDatagram::bind(&path)?
                }
                Err(e) => return Err(e),
            };
            Ok(Listener { socket, path })
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "no Unix sockets on this platform",
            ))
        }
    }

    /// Waits for the next wake-up; several queued datagrams count as one.
    pub async fn woken(&self) {
        #[cfg(unix)]
        {
            let mut buf = [0u8; 16];
            if self.socket.recv(&mut buf).await.is_err() {
                // A socket error is not a reason to spin: wait as a poll would.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            while self.socket.try_recv(&mut buf).is_ok() {}
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    }
}

/// Removes `path` only if it is a socket (never a file someone put there).
fn remove_stale(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if std::fs::symlink_metadata(path)?.file_type().is_socket() {
            return std::fs::remove_file(path);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{} exists and is not a socket", path.display()),
    ))
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
