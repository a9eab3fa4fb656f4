//! Who is asking: the session cookie, the CSRF token and the Origin of a
//! request, and how many logins an address tries.
//!
//! - The session is a random token in the cookie `__Host-casesync` (HttpOnly,
//!   Secure, SameSite=Strict, Path=/), looked up in the store on every
//!   request, so a disabled account's sessions end at once.
//! - Every request that changes something (any method but GET and HEAD) must
//!   carry the session's CSRF token in `X-CSRF-Token`, and must not come from
//!   another site: an `Origin` header, if sent, must be this host's, and
//!   `Sec-Fetch-Site: cross-site` is refused.
//! - The justification a case may require comes in `X-Justification`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};

use super::{ApiError, App};
use crate::access::Actor;
use crate::{Node, users};

pub(crate) const COOKIE: &str = "__Host-casesync";
/// Logins one address may try per minute, whatever the accounts.
const LOGINS_PER_MINUTE: u32 = 20;
/// Addresses remembered at most (the oldest window is dropped past it).
const MAX_ADDRESSES: usize = 4096;

/// A request's credentials, read from its headers (checked in the store by
/// [`App::as_person`]).
pub(crate) struct Caller {
    token: Option<String>,
    csrf: Option<String>,
    changes: bool,
    justification: Option<String>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses a request that changes something and comes from another site.
pub(crate) fn same_origin(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let cross = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!("refused a request from another site ({why})"),
        )
    };
    if header_str(headers, "sec-fetch-site") == Some("cross-site") {
        return Err(cross("Sec-Fetch-Site: cross-site"));
    }
    if let Some(origin) = header_str(headers, "origin") {
        let host = header_str(headers, "host").unwrap_or_default();
        let ok = origin == format!("http://{host}") || origin == format!("https://{host}");
        if !ok {
            return Err(cross(&format!("Origin {}", crate::short(origin))));
        }
    }
    Ok(())
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Caller, ApiError> {
        same_origin(&parts.method, &parts.headers)?;
        let h = &parts.headers;
        Ok(Caller {
            token: cookie(h, COOKIE).map(String::from),
            csrf: header_str(h, "x-csrf-token").map(String::from),
            changes: !matches!(parts.method, Method::GET | Method::HEAD),
            justification: header_str(h, "x-justification").map(String::from),
        })
    }
}

impl App {
    /// Runs `f` as the person whose live session the request carries: 401
    /// without one, 403 for a change without the session's CSRF token.
    pub(crate) async fn as_person<T: Send + 'static>(
        &self,
        caller: Caller,
        f: impl FnOnce(&Node, &Actor) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let Caller {
            token,
            csrf,
            changes,
            justification,
        } = caller;
        let Some(token) = token else {
            return Err(ApiError::unauthenticated());
        };
        self.run(move |node| {
            let session = users::session(node, &token)?.ok_or_else(ApiError::unauthenticated)?;
            if changes && !csrf.as_deref().is_some_and(|c| session.csrf_matches(c)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token: reload the page and try again",
                ));
            }
            let actor = Actor::person(session.account, justification.as_deref());
            f(node, &actor)
        })
        .await
    }
}

/// Login attempts per client address in the current minute.
#[derive(Default)]
pub(crate) struct LoginLimiter(Mutex<HashMap<IpAddr, (Instant, u32)>>);

impl LoginLimiter {
    /// Counts an attempt from `ip`; false past the limit.
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
            if map.len() >= MAX_ADDRESSES {
                return false;
            }
        }
        let w = map.entry(ip).or_insert((now, 0));
        if now.duration_since(w.0) >= Duration::from_secs(60) {
            *w = (now, 0);
        }
        w.1 += 1;
        w.1 <= LOGINS_PER_MINUTE
    }
}
