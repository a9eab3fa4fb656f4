//! The routes: the web UI's files at `/`, the JSON API under `/api/`. Each
//! API handler is one engine call as the person logged in.
//!
//! Longer than most files here (about 1,300 lines): each of the 48 routes
//! carries its OpenAPI description beside its handler, which is most of the
//! length; the routes read as one list, so they stay together.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{COOKIE, Caller};
use super::{ApiError, App};
use crate::access::{Actor, Role};
use crate::cases::Case;
use crate::{Node, audit, browse, cases, import, records, status, users};

type ApiResult = Result<Json<Value>, ApiError>;

/// A JSON object: the shapes are those the CLI prints with `--json`.
struct JsonObject;

impl utoipa::PartialSchema for JsonObject {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new().into()
    }
}
impl utoipa::ToSchema for JsonObject {}

/// Every error: a stable code and the one-line message the CLI prints.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// unauthenticated, forbidden, csrf, cross_origin, refused, invalid,
    /// not_found, too_large, rate_limited, disk_full, integrity, internal
    code: String,
    message: String,
}

/// The OpenAPI document's frame; the paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "casesync", description = "The JSON API of a casesync node's web front end (`serve --http`). Log in at /api/login; send the session's CSRF token in X-CSRF-Token with every change, and a case's required justification in X-Justification."),
    tags((name = "session"), (name = "cases"), (name = "records"), (name = "audit"), (name = "users"), (name = "trust"), (name = "node"), (name = "approvals"), (name = "governance"))
)]
struct ApiDoc;

pub(super) fn routes() -> Router<App> {
    let (api, doc) =
        utoipa_axum::router::OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
            .routes(utoipa_axum::routes!(login))
            .routes(utoipa_axum::routes!(logout))
            .routes(utoipa_axum::routes!(me))
            .routes(utoipa_axum::routes!(node_status))
            .routes(utoipa_axum::routes!(list_cases, create_case))
            .routes(utoipa_axum::routes!(show_case))
            .routes(utoipa_axum::routes!(list_records, add_record))
            .routes(utoipa_axum::routes!(case_chart))
            .routes(utoipa_axum::routes!(case_path))
            .routes(utoipa_axum::routes!(assign, unassign))
            .routes(utoipa_axum::routes!(show_record, edit_record))
            .routes(utoipa_axum::routes!(record_history))
            .routes(utoipa_axum::routes!(evidence_file))
            .routes(utoipa_axum::routes!(events))
            .routes(utoipa_axum::routes!(audit_list))
            .routes(utoipa_axum::routes!(audit_export))
            .routes(utoipa_axum::routes!(list_users, add_user))
            .routes(utoipa_axum::routes!(disable_user))
            .routes(utoipa_axum::routes!(set_password))
            .routes(utoipa_axum::routes!(add_member))
            .routes(utoipa_axum::routes!(remove_member))
            .routes(utoipa_axum::routes!(member_role))
            .routes(utoipa_axum::routes!(trust_list))
            .routes(utoipa_axum::routes!(trust_invite))
            .routes(utoipa_axum::routes!(trust_policy))
            .routes(utoipa_axum::routes!(trust_second))
            .routes(utoipa_axum::routes!(trust_revoke))
            .routes(utoipa_axum::routes!(search))
            .routes(utoipa_axum::routes!(record_provenance))
            .routes(utoipa_axum::routes!(regrade_record))
            .routes(utoipa_axum::routes!(case_consent))
            .routes(utoipa_axum::routes!(case_policy))
            .routes(utoipa_axum::routes!(records_after))
            .routes(utoipa_axum::routes!(erase_record))
            .routes(utoipa_axum::routes!(record_erasure))
            .routes(utoipa_axum::routes!(close_case))
            .routes(utoipa_axum::routes!(archive_case))
            .routes(utoipa_axum::routes!(erase_case))
            .routes(utoipa_axum::routes!(case_erasure))
            .routes(utoipa_axum::routes!(review_due))
            .routes(utoipa_axum::routes!(review_record))
            .routes(utoipa_axum::routes!(list_approvals))
            .routes(utoipa_axum::routes!(approve_request))
            .routes(utoipa_axum::routes!(deny_request))
            .merge(
                // An import is larger than any other request: its own bound.
                utoipa_axum::router::OpenApiRouter::new()
                    .routes(utoipa_axum::routes!(import_records))
                    .layer(axum::extract::DefaultBodyLimit::max(super::MAX_IMPORT)),
            )
            .split_for_parts();
    let doc = std::sync::Arc::new(doc.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    api.route(
        "/api/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    doc.as_str().to_owned(),
                )
            }
        }),
    )
    .route("/", get(index))
    .route("/app.js", get(script))
    .route("/app.css", get(style))
    .route("/vendor/{file}", get(vendor))
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

#[derive(Deserialize, utoipa::ToSchema)]
struct Login {
    name: String,
    password: String,
}

#[utoipa::path(post, path = "/api/login", tag = "session", request_body = Login, responses((status = 200, description = "logged in: the session cookie is set; `csrf` goes in X-CSRF-Token of every change", body = JsonObject), (status = 403, description = "wrong name or password, or locked", body = ErrorBody), (status = 429, description = "too many logins from this address", body = ErrorBody)))]
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

#[utoipa::path(post, path = "/api/logout", tag = "session", responses((status = 200, body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/api/me", tag = "session", responses((status = 200, description = "name and role, and this node's PeerId", body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn me(State(app): State<App>, caller: Caller) -> ApiResult {
    app.as_person(caller, |node, actor| {
        let mut v = who(actor);
        // This node's PeerId: records it made are the ones it regrades and
        // keeps the provenance of.
        v["node"] = json!(node.card.peer_id());
        Ok(Json(v))
    })
    .await
}

#[utoipa::path(get, path = "/api/status", tag = "node", responses((status = 200, description = "as `casesync status --json`", body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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
    serde_json::to_value(cases::summary(node, node.store.conn(), c)?).map_err(internal)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CaseListQuery {
    /// Archived cases too
    all: Option<bool>,
}

#[utoipa::path(get, path = "/api/cases", tag = "cases", params(CaseListQuery), responses((status = 200, description = "the cases this person may see (without those this node archived, unless `all`)", body = [JsonObject]), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn list_cases(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<CaseListQuery>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let all = cases::working_list(node, actor, q.all.unwrap_or(false))?;
        let v = all
            .iter()
            .map(|c| case_json(node, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Json(Value::Array(v)))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewCase {
    title: String,
    #[serde(default)]
    require_justification: bool,
}

#[utoipa::path(post, path = "/api/cases", tag = "cases", request_body = NewCase, responses((status = 200, body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn create_case(State(app): State<App>, caller: Caller, Json(b): Json<NewCase>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let id = cases::create(node, actor, &b.title, b.require_justification)?;
        Ok(Json(json!({"id": id.to_string(), "title": b.title.trim()})))
    })
    .await
}

#[utoipa::path(get, path = "/api/cases/{case}", tag = "cases", params(("case" = String, Path, description = "case id")), responses((status = 200, body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_case(State(app): State<App>, caller: Caller, Path(case): Path<String>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let (_, v) = cases::show(node, actor, &case, |c| {
            case_json(node, c).map_err(|e| crate::NodeError::Io(e.message))
        })?;
        Ok(Json(v))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RecordFilter {
    #[serde(rename = "type")]
    record_type: Option<String>,
    /// Text any field contains.
    q: Option<String>,
    /// updated, created, type, summary or id
    #[serde(default)]
    #[param(value_type = Option<String>)]
    sort: browse::Sort,
    #[serde(default)]
    desc: bool,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// A `type` query parameter: none when absent or empty.
fn record_type_of(
    t: Option<&str>,
) -> Result<Option<casesync_schema::record::RecordType>, crate::NodeError> {
    t.filter(|t| !t.is_empty())
        .map(str::parse)
        .transpose()
        .map_err(crate::NodeError::Schema)
}

/// A page of the case's records: `?type=&q=&sort=updated|created|type|summary|id&desc=true&offset=&limit=`
/// (at most 500 a page; `total` says how many pass the filter).
#[utoipa::path(get, path = "/api/cases/{case}/records", tag = "records", params(("case" = String, Path, description = "case id"), RecordFilter), responses((status = 200, description = "a page: total, offset, records", body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn list_records(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Query(f): Query<RecordFilter>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let record_type = record_type_of(f.record_type.as_deref())?;
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ChartQuery {
    from: String,
    depth: Option<usize>,
    cap: Option<usize>,
}

#[utoipa::path(get, path = "/api/cases/{case}/chart", tag = "records", params(("case" = String, Path, description = "case id"), ChartQuery), responses((status = 200, description = "nodes, edges, truncated", body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PathQuery {
    from: String,
    to: String,
}

#[utoipa::path(get, path = "/api/cases/{case}/path", tag = "records", params(("case" = String, Path, description = "case id"), PathQuery), responses((status = 200, description = "the path (nodes, edges) or null", body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct KeysetQuery {
    #[serde(rename = "type")]
    record_type: Option<String>,
    /// The last record of the previous page (absent: from the start)
    after: Option<String>,
    /// Records in the page, 1 to 10,000 (default 1,000)
    limit: Option<usize>,
}

/// The case's records a page at a time in a stable order, the same on
/// every node (as `record list --limit N --after RECORD`), read in flat
/// memory however large the case: for scripts that go through a whole case.
#[utoipa::path(get, path = "/api/cases/{case}/records/after", tag = "records", params(("case" = String, Path, description = "case id"), KeysetQuery), responses((status = 200, description = "records (an empty page is the end) and `next_after`, the record the next page starts after", body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn records_after(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Query(q): Query<KeysetQuery>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let record_type = record_type_of(q.record_type.as_deref())?;
        let limit = q.limit.unwrap_or(1000);
        if limit == 0 || limit > records::MAX_LIST_PAGE {
            return Err(crate::NodeError::Refused(format!(
                "limit takes 1 to {} records",
                records::MAX_LIST_PAGE
            ))
            .into());
        }
        let page = records::list_page(node, actor, &case, record_type, q.after.as_deref(), limit)?;
        let next = page.last().map(|r| r.id.clone());
        Ok(Json(json!({"records": page, "next_after": next})))
    })
    .await
}

#[utoipa::path(post, path = "/api/cases/{case}/records", tag = "records", params(("case" = String, Path, description = "case id")), request_body(content = JsonObject, description = "as an import line: type, fields, grading, handling, releasable_to"), responses((status = 200, description = "the record as `record show --json`", body = JsonObject), (status = 400, description = "invalid: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/api/records/{record}", tag = "records", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)")), responses((status = 200, body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_record(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let v = records::show(node, actor, &id)?;
        Ok(Json(serde_json::to_value(v).map_err(internal)?))
    })
    .await
}

#[utoipa::path(get, path = "/api/records/{record}/history", tag = "records", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)")), responses((status = 200, description = "as `record history --json`", body = [JsonObject]), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[derive(Deserialize, utoipa::IntoParams)]
struct FileQuery {
    /// Show an image or a PDF in the browser instead of downloading it
    inline: Option<bool>,
}

/// Media types a browser may show in the page: images it renders itself and
/// PDFs. Anything else (HTML, SVG, scripts) is only ever downloaded.
const PREVIEWABLE: [&str; 5] = [
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
];

/// Bytes handed from the engine's blocking thread to the response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(Ok(buf.to_vec())).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the download was cancelled")
        })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An evidence record's file, each piece checked as it is sent (a piece
/// that fails ends the download unfinished); audited as opened.
#[utoipa::path(get, path = "/api/records/{record}/file", tag = "records", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)"), FileQuery), responses((status = 200, description = "the file's bytes, as `evidence get` writes them", content_type = "application/octet-stream", body = String), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn evidence_file(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    let (info_tx, info_rx) = tokio::sync::oneshot::channel::<crate::evidence::FileInfo>();
    // Four 1 MiB segments in flight at most, whatever the file's size.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let failed = tx.clone();
    let work = tokio::spawn(async move {
        app.as_person(caller, move |node, actor| {
            let r = crate::evidence::stream_to(node, actor, &id, "the web front end", |info| {
                let _ = info_tx.send(info.clone());
                ChannelWriter(tx)
            });
            if let Err(e) = &r {
                let _ = failed.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
            Ok(r?)
        })
        .await
    });
    let info = match info_rx.await {
        Ok(info) => info,
        Err(_) => {
            return match work.await {
                Ok(Err(e)) => Err(e),
                _ => Err(ApiError::internal(
                    "the file could not be read; see the node's log",
                )),
            };
        }
    };
    let inline = q.inline == Some(true) && PREVIEWABLE.contains(&info.media_type.as_str());
    let body = axum::body::Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        crate::evidence::header_file_name(&info.file)
    );
    let mut res = body.into_response();
    let h = res.headers_mut();
    let media = HeaderValue::from_str(&info.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, media);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&info.sha256) {
        h.insert("x-content-sha256", v);
    }
    Ok(res)
}

/// Live updates (server-sent events): one `change` event whenever the store
/// changes, by anyone; the page then asks again for what it shows, as the
/// person logged in. The event carries nothing else. The session is checked
/// at the start and before each event, so a stream ends with its session.
#[utoipa::path(get, path = "/api/events", tag = "session", responses((status = 200, description = "server-sent events: `change` when the store changed", content_type = "text/event-stream", body = String), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[derive(Deserialize, utoipa::ToSchema)]
struct Edit {
    /// Fields to set, with their values.
    #[serde(default)]
    #[schema(value_type = Object)]
    set: serde_json::Map<String, Value>,
    #[serde(default)]
    unset: Vec<String>,
}

#[utoipa::path(patch, path = "/api/records/{record}", tag = "records", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)")), request_body = Edit, responses((status = 200, body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[utoipa::path(put, path = "/api/cases/{case}/assignments/{user}", tag = "cases", params(("case" = String, Path, description = "case id"), ("user" = String, Path, description = "an analyst's name")), responses((status = 200, body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[utoipa::path(delete, path = "/api/cases/{case}/assignments/{user}", tag = "cases", params(("case" = String, Path, description = "case id"), ("user" = String, Path, description = "an analyst's name")), responses((status = 200, body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    case: Option<String>,
    since: Option<String>,
    action: Option<String>,
    by: Option<String>,
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery), responses((status = 200, description = "entries as `audit list --json`; an analyst sees only their own", body = [JsonObject]), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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
#[utoipa::path(get, path = "/api/cases/{case}/audit.jsonl", tag = "audit", params(("case" = String, Path, description = "case id")), responses((status = 200, description = "`audit export`: a signed header line, then one entry a line", content_type = "application/x-ndjson", body = String), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = [JsonObject]), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn list_users(State(app): State<App>, caller: Caller) -> ApiResult {
    app.as_person(caller, |node, actor| {
        Ok(Json(
            serde_json::to_value(users::list(node, actor)?).map_err(internal)?,
        ))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewUser {
    name: String,
    /// analyst, supervisor or admin
    #[schema(value_type = String)]
    role: Role,
    password: Option<String>,
}

#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser, responses((status = 200, description = "with a one-time password when none was given", body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn add_user(State(app): State<App>, caller: Caller, Json(u): Json<NewUser>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let made = users::add(node, actor, &u.name, u.role, u.password.as_deref())?;
        Ok(Json(
            json!({"name": u.name.trim(), "role": u.role, "one_time_password": made.as_ref().map(|p| p.as_str())}),
        ))
    })
    .await
}

#[utoipa::path(post, path = "/api/users/{user}/disable", tag = "users", params(("user" = String, Path)), responses((status = 200, body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
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

#[derive(Deserialize, utoipa::ToSchema)]
struct Password {
    /// The new password; none: a one-time password is made and returned.
    password: Option<String>,
}

#[utoipa::path(post, path = "/api/users/{user}/password", tag = "users", params(("user" = String, Path)), request_body = Password, responses((status = 200, description = "the account's sessions ended; a one-time password if none was given", body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn set_password(
    State(app): State<App>,
    caller: Caller,
    Path(user): Path<String>,
    Json(p): Json<Password>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let made = users::set_password(node, actor, &user, p.password.as_deref())?;
        Ok(Json(
            json!({"name": user, "one_time_password": made.as_ref().map(|p| p.as_str())}),
        ))
    })
    .await
}

fn case_role(text: &str) -> Result<casesync_schema::control::Role, ApiError> {
    match text.trim() {
        "lead" => Ok(casesync_schema::control::Role::Lead),
        "contributor" => Ok(casesync_schema::control::Role::Contributor),
        "observer" => Ok(casesync_schema::control::Role::Observer),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!(
                "unknown role {:?}: use lead, contributor or observer",
                crate::short(other)
            ),
        )),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewMember {
    /// The node: its PeerId (enrolled) or its card.
    member: String,
    /// lead, contributor or observer
    role: String,
}

#[utoipa::path(post, path = "/api/cases/{case}/members", tag = "cases", params(("case" = String, Path, description = "case id")), request_body = NewMember, responses((status = 200, body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn add_member(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Json(m): Json<NewMember>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let role = case_role(&m.role)?;
        let (_, card) = cases::add_member(node, actor, &case, &m.member, role)?;
        Ok(Json(
            json!({"peer_id": card.peer_id(), "name": card.name, "role": role.name()}),
        ))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Removal {
    reason: String,
}

#[utoipa::path(post, path = "/api/cases/{case}/members/{peer}/remove", tag = "cases", params(("case" = String, Path, description = "case id"), ("peer" = String, Path, description = "the member's PeerId")), request_body = Removal, responses((status = 200, body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn remove_member(
    State(app): State<App>,
    caller: Caller,
    Path((case, peer)): Path<(String, String)>,
    Json(r): Json<Removal>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let (_, card, cut) = cases::remove_member(node, actor, &case, &peer, &r.reason)?;
        Ok(Json(
            json!({"peer_id": card.peer_id(), "name": card.name, "removed": true, "cut_seq": cut}),
        ))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewRole {
    /// lead, contributor or observer
    role: String,
}

#[utoipa::path(put, path = "/api/cases/{case}/members/{peer}/role", tag = "cases", params(("case" = String, Path, description = "case id"), ("peer" = String, Path, description = "the member's PeerId")), request_body = NewRole, responses((status = 200, body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn member_role(
    State(app): State<App>,
    caller: Caller,
    Path((case, peer)): Path<(String, String)>,
    Json(r): Json<NewRole>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let role = case_role(&r.role)?;
        let (_, card, was) = cases::change_role(node, actor, &case, &peer, role)?;
        Ok(Json(
            json!({"peer_id": card.peer_id(), "role": role.name(), "was": was.name()}),
        ))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportFormat {
    /// jsonl (default) or csv
    format: Option<String>,
}

/// Records from a JSON Lines or CSV body (at most 16 MiB), all or nothing.
#[utoipa::path(post, path = "/api/cases/{case}/import", tag = "records", params(("case" = String, Path, description = "case id"), ImportFormat), request_body(content = String, content_type = "text/plain", description = "JSON Lines (one record a line, as `record import`) or CSV"), responses((status = 200, description = "how many were imported", body = JsonObject), (status = 400, description = "the first bad line, and nothing imported", body = ErrorBody), (status = 413, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn import_records(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Query(f): Query<ImportFormat>,
    body: axum::body::Bytes,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let reader = std::io::Cursor::new(body);
        let r = match f.format.as_deref().unwrap_or("jsonl") {
            "jsonl" => {
                let mut src = import::json_lines(reader);
                records::import(node, actor, &case, &mut src, &mut |_| {})?
            }
            "csv" => {
                let mut src = import::csv_rows(reader)?;
                records::import(node, actor, &case, &mut src, &mut |_| {})?
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("unknown format {:?}: use jsonl or csv", crate::short(other)),
                ));
            }
        };
        Ok(Json(serde_json::to_value(r).map_err(internal)?))
    })
    .await
}

#[utoipa::path(get, path = "/api/trust", tag = "trust", responses((status = 200, description = "the federation's nodes, as `trust list --json`", body = JsonObject), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn trust_list(State(app): State<App>, caller: Caller) -> ApiResult {
    app.as_person(caller, |node, actor| {
        let r = crate::trust::roster_for(node, actor)?;
        let nodes = r.nodes();
        Ok(Json(json!({"federation": r.registry.federation.to_hex(), "name": r.registry.name, "two_admins": r.registry.two_admins, "nodes": nodes})))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Invite {
    /// The node's card (`casesync id --card`).
    card: String,
    #[serde(default)]
    admin: bool,
}

#[utoipa::path(post, path = "/api/trust/invite", tag = "trust", request_body = Invite, responses((status = 200, description = "the join token for that node", body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn trust_invite(State(app): State<App>, caller: Caller, Json(i): Json<Invite>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let card = casesync_schema::NodeCard::from_text(&i.card).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("invalid node card: {e}"),
            )
        })?;
        let token = crate::trust::invite(node, actor, &card, i.admin)?;
        Ok(Json(
            json!({"peer_id": card.peer_id(), "name": card.name, "admin": i.admin, "token": token}),
        ))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct FederationPolicy {
    /// Whether enrolling and revoking take two admin nodes
    two_admins: bool,
}

#[utoipa::path(post, path = "/api/trust/policy", tag = "trust", request_body = FederationPolicy, responses((status = 200, description = "as `federation policy --json`", body = JsonObject), (status = 400, description = "refused (one admin node only; turning it off under the policy gives a request token in the message)", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn trust_policy(
    State(app): State<App>,
    caller: Caller,
    Json(p): Json<FederationPolicy>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let on = crate::trust::set_policy(node, actor, p.two_admins)?;
        Ok(Json(json!({"two_admins": on})))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SecondRequest {
    /// Another admin node's request token (csreq1.)
    token: String,
}

#[utoipa::path(post, path = "/api/trust/second", tag = "trust", request_body = SecondRequest, responses((status = 200, description = "as `approvals approve TOKEN --json`: what the countersigned statement does (an enrollment's join token)", body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn trust_second(
    State(app): State<App>,
    caller: Caller,
    Json(r): Json<SecondRequest>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        json_of(crate::trust::second(node, actor, &r.token)?)
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Revoke {
    peer_id: String,
    reason: String,
}

#[utoipa::path(post, path = "/api/trust/revoke", tag = "trust", request_body = Revoke, responses((status = 200, body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn trust_revoke(State(app): State<App>, caller: Caller, Json(r): Json<Revoke>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let n = crate::trust::revoke(node, actor, &r.peer_id, &r.reason)?;
        cases::cut_revoked(node, actor)?;
        Ok(Json(
            json!({"peer_id": n.card.peer_id(), "name": n.card.name, "status": "revoked"}),
        ))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// A selector in any format, or a name or words
    q: String,
    /// phone, iban, bic, btc, eth, vehicle, email or name
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Only this case
    case: Option<String>,
}

/// Records of the cases this person may see that match, best first (as
/// `casesync search --json`); audited, the query sealed in the entry.
#[utoipa::path(get, path = "/api/search", tag = "records", params(SearchQuery), responses((status = 200, body = [JsonObject]), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn search(State(app): State<App>, caller: Caller, Query(q): Query<SearchQuery>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let kind = q
            .kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(str::parse)
            .transpose()
            .map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e))?;
        let query = crate::search::Query {
            text: q.q,
            kind,
            case: q.case.filter(|c| !c.is_empty()),
        };
        let hits = crate::search::search(node, actor, &query)?;
        Ok(Json(serde_json::to_value(hits).map_err(internal)?))
    })
    .await
}

#[utoipa::path(get, path = "/api/records/{record}/provenance", tag = "records", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)")), responses((status = 200, description = "as `record provenance --json` (the record's originator only)", body = JsonObject), (status = 400, description = "this node did not make the record", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn record_provenance(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let p = crate::provenance::show(node, actor, &id)?;
        Ok(Json(serde_json::to_value(p).map_err(internal)?))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Regrade {
    /// New grading, SYSTEM:CODE
    grading: Option<String>,
    /// New handling code: H0, H1, H2 or H3:CONDITIONS
    handling: Option<String>,
    reason: String,
}

#[utoipa::path(post, path = "/api/records/{record}/regrade", tag = "records", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)")), request_body = Regrade, responses((status = 200, description = "the record as `record show --json`", body = JsonObject), (status = 400, description = "invalid, or not this node's record: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn regrade_record(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Json(r): Json<Regrade>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let change = records::Regrade {
            grading: r
                .grading
                .as_deref()
                .filter(|g| !g.trim().is_empty())
                .map(casesync_schema::record::parse_grading)
                .transpose()
                .map_err(crate::NodeError::from)?,
            handling: r
                .handling
                .as_deref()
                .filter(|h| !h.trim().is_empty())
                .map(|h| {
                    h.parse()
                        .map_err(|e: String| crate::NodeError::Refused(format!("handling: {e}")))
                })
                .transpose()?,
        };
        let v = records::regrade(node, actor, &id, &change, &r.reason)?;
        Ok(Json(serde_json::to_value(v).map_err(internal)?))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Consent {
    /// The member's PeerId
    peer: String,
    reason: String,
}

#[utoipa::path(post, path = "/api/cases/{case}/consents", tag = "cases", params(("case" = String, Path, description = "case id")), request_body = Consent, responses((status = 200, description = "as `case consent --json`", body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn case_consent(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Json(c): Json<Consent>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let done = cases::consent(node, actor, &case, &c.peer, &c.reason)?;
        Ok(Json(serde_json::to_value(done).map_err(internal)?))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Reason {
    /// Why: kept in the audit log (and, for an erasure, sealed in it for members)
    reason: String,
}

fn json_of(v: impl serde::Serialize) -> ApiResult {
    Ok(Json(serde_json::to_value(v).map_err(internal)?))
}

#[utoipa::path(post, path = "/api/records/{record}/erase", tag = "governance", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)")), request_body = Reason, responses((status = 200, description = "as `record erase --json`: the erasure signed (a lead), or an originator's request (`requested`)", body = JsonObject), (status = 400, description = "refused: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn erase_record(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Json(r): Json<Reason>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        json_of(crate::erasure::erase(node, actor, &id, &r.reason)?)
    })
    .await
}

#[utoipa::path(get, path = "/api/records/{record}/erasure", tag = "governance", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)")), responses((status = 200, description = "as `record erasure --json`: each member node pending or erased with its receipt, and copies made before", body = JsonObject), (status = 400, description = "refused: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn record_erasure(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        json_of(crate::erasure::status(node, actor, &id)?)
    })
    .await
}

#[utoipa::path(post, path = "/api/cases/{case}/close", tag = "governance", params(("case" = String, Path, description = "case id")), responses((status = 200, description = "closed: read-only for every member", body = JsonObject), (status = 400, description = "refused: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn close_case(State(app): State<App>, caller: Caller, Path(case): Path<String>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let id = crate::erasure::close_case(node, actor, &case)?;
        json_of(serde_json::json!({"case": id, "closed": true}))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Archive {
    /// true takes the (closed) case out of this node's working lists, false puts it back
    archive: bool,
}

#[utoipa::path(post, path = "/api/cases/{case}/archive", tag = "governance", params(("case" = String, Path, description = "case id")), request_body = Archive, responses((status = 200, description = "as `case archive --json`", body = JsonObject), (status = 400, description = "refused: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn archive_case(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Json(a): Json<Archive>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let archived = crate::erasure::archive_case(node, actor, &case, a.archive)?;
        json_of(serde_json::json!({"case": case, "archived": archived}))
    })
    .await
}

#[utoipa::path(post, path = "/api/cases/{case}/erase", tag = "governance", params(("case" = String, Path, description = "case id")), request_body = Reason, responses((status = 200, description = "as `case erase --json`", body = JsonObject), (status = 400, description = "refused: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn erase_case(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Json(r): Json<Reason>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        json_of(crate::erasure::erase_case(node, actor, &case, &r.reason)?)
    })
    .await
}

#[utoipa::path(get, path = "/api/cases/{case}/erasure", tag = "governance", params(("case" = String, Path, description = "case id")), responses((status = 200, description = "as `case erasure --json`", body = JsonObject), (status = 400, description = "refused: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn case_erasure(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        json_of(crate::erasure::case_status(node, actor, &case)?)
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DueQuery {
    /// Only this case
    case: Option<String>,
}

#[utoipa::path(get, path = "/api/review/due", tag = "governance", params(DueQuery), responses((status = 200, description = "as `review due --json`: records due for retention review, oldest first", body = [JsonObject]), (status = 400, description = "refused: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn review_due(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<DueQuery>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        json_of(crate::review::due(node, actor, q.case.as_deref())?)
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Review {
    /// retain or erase
    decision: String,
    reason: String,
    /// For retain: the next review, YYYY-MM-DD (another full period if absent)
    until: Option<String>,
}

#[utoipa::path(post, path = "/api/records/{record}/review", tag = "governance", params(("record" = String, Path, description = "record id (RECORD@CASE where two cases hold it)")), request_body = Review, responses((status = 200, description = "as `review retain|erase --json`", body = JsonObject), (status = 400, description = "refused: the CLI's message", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn review_record(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Json(r): Json<Review>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| match r.decision.as_str() {
        "retain" => json_of(crate::review::retain(
            node,
            actor,
            &id,
            &r.reason,
            r.until.as_deref(),
        )?),
        "erase" => json_of(crate::review::erase(node, actor, &id, &r.reason)?),
        other => Err(crate::NodeError::Refused(format!(
            "a review decides retain or erase, not {other:?}"
        ))
        .into()),
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CasePolicyBody {
    /// What needs a second person at every member node: member-add,
    /// bundle-export, erase
    four_eyes: Vec<String>,
    /// Whether a record's originator may ask for its erasure
    originator_erases: bool,
}

#[utoipa::path(put, path = "/api/cases/{case}/policy", tag = "cases", params(("case" = String, Path, description = "case id")), request_body = CasePolicyBody, responses((status = 200, description = "as `case policy --json`", body = JsonObject), (status = 400, description = "not a lead's node, or an unknown operation", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn case_policy(
    State(app): State<App>,
    caller: Caller,
    Path(case): Path<String>,
    Json(p): Json<CasePolicyBody>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let list = if p.four_eyes.is_empty() {
            "none".to_string()
        } else {
            p.four_eyes.join(",")
        };
        let set = cases::set_policy(node, actor, &case, Some(&list), Some(p.originator_erases))?;
        Ok(Json(serde_json::json!({
            "four_eyes": set.four_eyes,
            "originator_erases": set.originator_erases,
        })))
    })
    .await
}

#[utoipa::path(get, path = "/api/approvals", tag = "approvals", responses((status = 200, description = "as `approvals list --json`: the requests this person could decide", body = [JsonObject]), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn list_approvals(State(app): State<App>, caller: Caller) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        let list = crate::approvals::list(node, actor)?;
        Ok(Json(serde_json::to_value(list).map_err(internal)?))
    })
    .await
}

#[utoipa::path(post, path = "/api/approvals/{id}/approve", tag = "approvals", params(("id" = i64, Path, description = "request id")), responses((status = 200, description = "as `approvals approve --json`", body = JsonObject), (status = 400, description = "not decidable by this person (their own, decided, expired), or a bundle export (approved at the node's shell, which says where it goes)", body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn approve_request(State(app): State<App>, caller: Caller, Path(id): Path<i64>) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        if crate::approvals::action_of(node, id)?.as_deref() == Some("bundle-export") {
            return Err(crate::NodeError::Refused(format!(
                "request {id} exports a bundle: approve it at the node's shell, which says where it goes (`casesync approvals approve {id} --out FILE`)"
            ))
            .into());
        }
        // A bundle export was refused above: nothing is written here.
        let done = crate::four_eyes::approve(node, actor, id, &mut |_| {
            Err(crate::NodeError::Refused(
                "a bundle is written at the node's shell".into(),
            ))
        })?;
        Ok(Json(serde_json::to_value(done).map_err(internal)?))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Denial {
    reason: String,
}

#[utoipa::path(post, path = "/api/approvals/{id}/deny", tag = "approvals", params(("id" = i64, Path, description = "request id")), request_body = Denial, responses((status = 200, body = JsonObject), (status = 400, body = ErrorBody), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "not allowed, or a missing CSRF token", body = ErrorBody)))]
async fn deny_request(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(d): Json<Denial>,
) -> ApiResult {
    app.as_person(caller, move |node, actor| {
        crate::approvals::deny(node, actor, id, &d.reason)?;
        Ok(Json(json!({"id": id, "state": "denied"})))
    })
    .await
}
