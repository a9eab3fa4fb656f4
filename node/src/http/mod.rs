//! The web front end (`serve --http`): a JSON API under `/api/` and the web
//! UI's files, for the analysts of the agency that runs the node. Like the
//! CLI it is a front end: each request is one engine call made as the person
//! logged in (`access::Actor::person`), and the engine checks what their role
//! allows and writes the audit entry. This module parses, authenticates,
//! calls and renders.
//!
//! - `auth`: the session cookie, the CSRF token, the Origin check, login
//!   attempts per address.
//! - `api`: the routes.
//!
//! Engine calls block (SQLite, Argon2id, signatures), so each runs on a
//! blocking thread with a store handle of its own from a small pool.

mod api;
mod auth;
mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;
use crate::{Node, NodeError, Result};

/// Largest request body the API reads (a record, a login, a filter).
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest import body (`POST /api/cases/{case}/import`).
pub const MAX_IMPORT: usize = 16 * 1024 * 1024;
/// Engine calls running at once; more wait for a handle.
const HANDLES: usize = 4;

/// Where the front end listens, and its TLS certificate and key (PEM), if any.
pub struct HttpOptions {
    pub addr: SocketAddr,
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A bound front end: plain HTTP on loopback, or TLS.
pub enum Bound {
    Plain(tokio::net::TcpListener),
    Tls(tls::TlsListener),
}

impl Bound {
    pub fn local_addr(&self) -> Result<SocketAddr> {
        use axum::serve::Listener;
        match self {
            Bound::Plain(l) => l.local_addr(),
            Bound::Tls(l) => l.local_addr(),
        }
        .map_err(|e| NodeError::Io(format!("cannot read the --http address: {e}")))
    }
    pub fn scheme(&self) -> &'static str {
        match self {
            Bound::Plain(_) => "http",
            Bound::Tls(_) => "https",
        }
    }
}

/// Store handles for engine calls, reused (opening one costs milliseconds).
struct Pool {
    base: Mutex<Node>,
    spare: Mutex<Vec<Node>>,
    permits: tokio::sync::Semaphore,
}

impl Pool {
    fn take(&self) -> Result<Node> {
        if let Some(n) = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(n);
        }
        self.base
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_clone()
    }
    fn give_back(&self, n: Node) {
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).push(n);
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    pool: Arc<Pool>,
    logins: Arc<auth::LoginLimiter>,
    /// Counts changes of the store (`status::change_marker`), for live updates.
    changes: tokio::sync::watch::Receiver<u64>,
}

impl App {
    /// Runs `f` on a blocking thread with a store handle.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> std::result::Result<T, ApiError> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let _permit = self
            .pool
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::internal("the node is stopping"))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let node = pool.take()?;
            let r = f(&node);
            pool.give_back(node);
            r
        })
        .await
        .map_err(|_| ApiError::internal("the request's work failed; see the node's log"))?
    }
}

/// An error as the API returns it: a stable code and the one-line message the
/// CLI prints for the same refusal.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    pub(crate) fn unauthenticated() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "not logged in, or the session ended: log in again",
        )
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> ApiError {
        let message = e.to_string();
        let (status, code) = match &e {
            NodeError::Refused(m) if m.starts_with("unknown ") || m.starts_with("no user ") => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            NodeError::Refused(_) => (StatusCode::BAD_REQUEST, "refused"),
            NodeError::Schema(_) => (StatusCode::BAD_REQUEST, "invalid"),
            NodeError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            NodeError::Store(StoreError::DiskFull(_)) => {
                (StatusCode::INSUFFICIENT_STORAGE, "disk_full")
            }
            NodeError::Integrity(_) => (StatusCode::INTERNAL_SERVER_ERROR, "integrity"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::warn!(target: "casesync", "http: {message}");
        }
        ApiError::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// Headers on every response: the page may load only its own files, never be
/// framed, and nothing of the API is cached.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // axum's own refusal is plain text: the API answers JSON.
        res = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the request body is over the limit ({MAX_BODY} bytes; {MAX_IMPORT} for an import)"
            ),
        )
        .into_response();
    }
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

fn router(app: App) -> Router {
    api::routes()
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(app)
}

/// Polls the store's change marker (one indexed query, every 250 ms) and
/// counts its changes for the pages that listen (`/api/events`): a write by
/// this process, another `casesync` command or a partner's sync.
async fn watch_changes(app: App, tx: tokio::sync::watch::Sender<u64>) {
    let mut last = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(now) = app
            .run(|node| Ok(crate::status::change_marker(node)?))
            .await
        else {
            continue;
        };
        if last.is_some_and(|l| l != now) {
            tx.send_modify(|n| *n += 1);
        }
        last = Some(now);
    }
}

/// Binds the front end's address (before anything else starts, so a taken
/// port or a bad certificate fails at once). Without TLS only loopback is
/// served: a session cookie and passwords must not cross a network in the
/// clear.
pub async fn bind(opts: &HttpOptions) -> Result<Bound> {
    let config = match &opts.tls {
        Some((cert, key)) => Some(tls::config(cert, key)?),
        None if !opts.addr.ip().is_loopback() => {
            return Err(NodeError::Refused(format!(
                "--http {} is not a loopback address: serving the web front end beyond this machine needs TLS (--http-tls-cert and --http-tls-key)",
                opts.addr
            )));
        }
        None => None,
    };
    let tcp = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| NodeError::Io(format!("cannot listen on {} for --http: {e}", opts.addr)))?;
    Ok(match config {
        Some(c) => Bound::Tls(tls::TlsListener::new(tcp, c)?),
        None => Bound::Plain(tcp),
    })
}

/// Serves the front end on `bound` until the task is dropped.
pub async fn run(node: Node, bound: Bound) -> Result<()> {
    use axum::serve::ListenerExt;
    let (tx, changes) = tokio::sync::watch::channel(0u64);
    let app = App {
        pool: Arc::new(Pool {
            base: Mutex::new(node),
            spare: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(HANDLES),
        }),
        logins: Arc::default(),
        changes,
    };
    tokio::spawn(watch_changes(app.clone(), tx));
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    let stopped = match bound {
        Bound::Plain(l) => axum::serve(l, service).await,
        // `tap_io` gives the TLS listener the client address as ConnectInfo.
        Bound::Tls(l) => axum::serve(l.tap_io(|_| {}), service).await,
    };
    stopped.map_err(|e| NodeError::Io(format!("the web front end stopped: {e}")))
}
