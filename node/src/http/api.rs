//! The routes: the web UI's files at `/`, the JSON API under `/api/`. Each
//! API handler is one engine call as the person logged in.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{COOKIE, Caller};
use super::{ApiError, App};
use crate::access::{Actor, Role};
use crate::cases::Case;
use crate::{Node, audit, browse, cases, import, records, status, users};

type ApiResult = Result<Json<Value>, ApiError>;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/app.css", get(style))
        .route("/vendor/{file}", get(vendor))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/status", get(node_status))
        .route("/api/cases", get(list_cases).post(create_case))
        .route("/api/cases/{case}", get(show_case))
        .route(
            "/api/cases/{case}/records",
            get(list_records).post(add_record),
        )
        .route(
            "/api/cases/{case}/assignments/{user}",
            put(assign).delete(unassign),
        )
        .route("/api/cases/{case}/chart", get(case_chart))
        .route("/api/cases/{case}/path", get(case_path))
        .route("/api/records/{record}", get(show_record).patch(edit_record))
        .route("/api/records/{record}/history", get(record_history))
        .route("/api/events", get(events))
        .route("/api/audit", get(audit_list))
        .route("/api/cases/{case}/audit.jsonl", get(audit_export))
        .route("/api/users", get(list_users).post(add_user))
        .route("/api/users/{user}/disable", post(disable_user))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such page or API route",
    )
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset(
        include_str!("assets/index.html"),
        "text/html; charset=utf-8",
    )
}
async fn script() -> Response {
    asset(
        include_str!("assets/app.js"),
        "text/javascript; charset=utf-8",
    )
}
async fn style() -> Response {
    asset(include_str!("assets/app.css"), "text/css; charset=utf-8")
}

/// The vendored libraries (assets/vendor/README.md), by exact name only.
async fn vendor(Path(file): Path<String>) -> Response {
    let body = match file.as_str() {
        "cytoscape.min.js" => include_str!("assets/vendor/cytoscape.min.js"),
        "layout-base.js" => include_str!("assets/vendor/layout-base.js"),
        "cose-base.js" => include_str!("assets/vendor/cose-base.js"),
        "cytoscape-fcose.js" => include_str!("assets/vendor/cytoscape-fcose.js"),
        _ => return not_found().await.into_response(),
    };
    let mut res = asset(body, "text/javascript; charset=utf-8");
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    res
}

#[derive(Deserialize)]
struct Login {
    name: String,
    password: String,
}

async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    Json(body): Json<Login>,
) -> Result<Response, ApiError> {
    super::auth::same_origin(&method, &headers)?;
    if !app.logins.admit(peer.ip()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many login attempts from this address: wait a minute",
        ));
    }
    let from = peer.ip().to_string();
    let s = app
        .run(move |node| Ok(users::login(node, &body.name, &body.password, &from)?))
        .await?;
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; Secure; SameSite=Strict",
        s.token.as_str()
    );
    let body = json!({"name": s.account.name, "role": s.account.role, "csrf": s.csrf.as_str()});
    let mut res = Json(body).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal("bad cookie"))?,
    );
    Ok(res)
}

async fn logout(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
    caller: Caller,
) -> Result<Response, ApiError> {
    let token = super::auth::cookie(&headers, COOKIE)
        .unwrap_or_default()
        .to_string();
    app.as_person(caller, move |node, actor| {
        users::logout(node, actor, &token)?;
        Ok(())
    })
    .await?;
    let mut res = Json(json!({"logged_out": true})).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-casesync=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(res)
}

fn who(actor: &Actor) -> Value {
    let role = actor.account.as_ref().map(|a| a.role);
    json!({"name": actor.operator, "role": role})
}

async fn me(State(app): State<App>, caller: Caller) -> ApiResult {
    app.as_person(caller, |_, actor| Ok(Json(who(actor)))).await
}

async fn node_status(State(app): State<App>, caller: Caller) -> ApiResult {
    app.as_person(caller, |node, actor| {
        Ok(Json(
            serde_json::to_value(status::status(node, actor)?).map_err(internal)?,
        ))
    })
    .await
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn case_json(node: &Node, c: &Case) -> Result<Value, ApiError> {
    let conn = node.store.conn();
    let (records, entries) = cases::sizes(conn, c)?;
    let members: Vec<Value> = c
        .state
        .members
        .values()
        .map(|m| {
            json!({"peer_id": m.card.peer_id(), "name": m.card.name, "org": m.card.org,
                   "country": m.card.country, "role": m.role.name()})
        })
        .collect();
    Ok(json!({
        "id": c.id.to_string(),
        "title": c.meta.title,
        "require_justification": c.meta.require_justification,
        "role": c.my_role(node).map(|r| r.name()),
        "members": members,
        "records": records,
        "entries": entries,
    }))
}

async fn list_cases(State(app): State<App>, caller: Caller) -> ApiResult {
    app.as_person(caller, |node, actor| {
        let all = cases::list_for(node, actor)?;
        let v = all
            .iter()
            .map(|c| case_json(node, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Json(Value::Array(v)))
    })
    .await
}

#[derive(Deserialize)]
struct NewCase {
    title: String,
    #[serde(default)]
    require_justification: bool,
}

async fn create_case(State(app): State<App>, caller: Caller, Json(b): Json<NewCase>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let id = cases::create(node, actor, &b.title, b.require_justification)?;
        Ok(Json(json!({"id": id.to_string(), "title": b.title.trim()})))
    })
    .await
}

async fn show_case(State(app): State<App>, caller: Caller, Path(case): Path<String>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let (_, v) = cases::show(node, actor, &case, |c| {
            case_json(node, c).map_err(|e| crate::NodeError::Io(e.message))
        })?;
        Ok(Json(v))
    })
    .await
}

#[derive(Deserialize)]
struct RecordFilter {
    #[serde(rename = "type")]
    record_type: Option<String>,
    /// Text any field contains.
    q: Option<String>,
    #[serde(default)]
    sort: browse::Sort,
    #[serde(default)]
    desc: bool,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// A page of the case's records: `?type=&q=&sort=updated|created|type|summary|id&desc=true&offset=&limit=`
/// (at most 500 a page; `total` says how many pass the filter).
async fn list_records(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Query(f): Query<RecordFilter>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let record_type = f
            .record_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(str::parse)
            .transpose()
            .map_err(|e: casesync_schema::SchemaError| crate::NodeError::Schema(e))?;
        let q = browse::PageQuery {
            record_type,
            text: f.q,
            sort: f.sort,
            descending: f.desc,
            offset: f.offset,
            limit: f.limit.unwrap_or(100),
        };
        let page = browse::page(node, actor, &case, &q)?;
        Ok(Json(serde_json::to_value(page).map_err(internal)?))
    })
    .await
}

#[derive(Deserialize)]
struct ChartQuery {
    from: String,
    depth: Option<usize>,
    cap: Option<usize>,
}

async fn case_chart(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Query(q): Query<ChartQuery>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let c = browse::chart(
            node,
            actor,
            &case,
            &q.from,
            q.depth.unwrap_or(1),
            q.cap.unwrap_or(150),
        )?;
        Ok(Json(serde_json::to_value(c).map_err(internal)?))
    })
    .await
}

#[derive(Deserialize)]
struct PathQuery {
    from: String,
    to: String,
}

async fn case_path(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let p = browse::path(node, actor, &case, &q.from, &q.to)?;
        Ok(Json(json!({"path": p})))
    })
    .await
}

async fn add_record(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let input = import::record_from_json(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e))?;
        let v = records::add(node, actor, &case, input)?;
        Ok(Json(serde_json::to_value(v).map_err(internal)?))
    })
    .await
}

async fn show_record(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let v = records::show(node, actor, &id)?;
        Ok(Json(serde_json::to_value(v).map_err(internal)?))
    })
    .await
}

async fn record_history(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let h = records::history(node, actor, &id)?;
        Ok(Json(serde_json::to_value(h).map_err(internal)?))
    })
    .await
}

/// Live updates (server-sent events): one `change` event whenever the store
/// changes, by anyone; the page then asks again for what it shows, as the
/// person logged in. The event carries nothing else. The session is checked
/// at the start and before each event, so a stream ends with its session.
async fn events(
    State(app): State<App>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    app.as_person(caller, |_, _| Ok(())).await?;
    let token = super::auth::cookie(&headers, COOKIE)
        .unwrap_or_default()
        .to_string();
    let rx = app.changes.clone();
    let stream = futures::stream::unfold((app, rx, token), |(app, mut rx, token)| async move {
        rx.changed().await.ok()?;
        let n = *rx.borrow_and_update();
        let t = token.clone();
        let live = app
            .run(move |node| Ok(users::session(node, &t)?.is_some()))
            .await
            .unwrap_or(false);
        if !live {
            return None;
        }
        let ev = axum::response::sse::Event::default()
            .event("change")
            .data(n.to_string());
        Some((Ok::<_, std::convert::Infallible>(ev), (app, rx, token)))
    });
    Ok(axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response())
}

#[derive(Deserialize)]
struct Edit {
    #[serde(default)]
    set: serde_json::Map<String, Value>,
    #[serde(default)]
    unset: Vec<String>,
}

async fn edit_record(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Json(e): Json<Edit>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let set = e
            .set
            .iter()
            .map(|(k, v)| {
                casesync_schema::record::FieldValue::from_json(k, v)
                    .map(|fv| (k.clone(), fv))
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let v = records::edit(node, actor, &id, set, e.unset)?;
        Ok(Json(serde_json::to_value(v).map_err(internal)?))
    })
    .await
}

async fn assign(
    State(app): State<App>,
    caller: Caller,
    Path((case, user)): Path<(String, String)>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let changed = users::assign(node, actor, &user, &case, true)?;
        Ok(Json(json!({"assigned": true, "changed": changed})))
    })
    .await
}

async fn unassign(
    State(app): State<App>,
    caller: Caller,
    Path((case, user)): Path<(String, String)>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let changed = users::assign(node, actor, &user, &case, false)?;
        Ok(Json(json!({"assigned": false, "changed": changed})))
    })
    .await
}

#[derive(Deserialize)]
struct AuditQuery {
    case: Option<String>,
    since: Option<String>,
    action: Option<String>,
    by: Option<String>,
}

async fn audit_list(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let case = q
            .case
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.trim().parse::<casesync_schema::CaseId>().map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid", format!("case: {e}"))
                })
            })
            .transpose()?;
        let filter = audit::Filter {
            case,
            since: q
                .since
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(audit::parse_since)
                .transpose()?,
            action: q.action.filter(|a| !a.is_empty()),
            operator: q.by.filter(|b| !b.is_empty()),
        };
        let entries = audit::list(node, actor, &filter)?;
        Ok(Json(serde_json::to_value(entries).map_err(internal)?))
    })
    .await
}

/// A case's audit export (`audit export`'s signed JSON Lines), as a download.
async fn audit_export(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
) -> Result<Response, ApiError> {
    let bytes = app
        .as_person(caller, move |node, actor| {
            let (_, bytes) = cases::export_audit(node, actor, &case, cases::ExportTo::Memory)?;
            Ok(bytes)
        })
        .await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"audit.jsonl\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn list_users(State(app): State<App>, caller: Caller) -> ApiResult {
    app.as_person(caller, |node, actor| {
        Ok(Json(
            serde_json::to_value(users::list(node, actor)?).map_err(internal)?,
        ))
    })
    .await
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    role: Role,
    password: Option<String>,
}

async fn add_user(State(app): State<App>, caller: Caller, Json(u): Json<NewUser>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let made = users::add(node, actor, &u.name, u.role, u.password.as_deref())?;
        Ok(Json(
            json!({"name": u.name.trim(), "role": u.role, "one_time_password": made.as_ref().map(|p| p.as_str())}),
        ))
    })
    .await
}

async fn disable_user(
    State(app): State<App>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let ended = users::disable(node, actor, &user)?;
        Ok(Json(
            json!({"name": user, "disabled": true, "sessions_ended": ended}),
        ))
    })
    .await
}
