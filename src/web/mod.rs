//! `chatkeep serve`: a local, read-only web view of the backup. Pages are
//! rendered on the server and work without JavaScript (they carry none).
//!
//! Safe by construction: it only reads the store and the status files
//! (never the lock, the cookie or the network); every piece of text from
//! the store is escaped ([`html::escape`]); every response carries a
//! Content-Security-Policy that allows no script at all, no framing and no
//! referrer. It listens on loopback unless a token protects it: then every
//! request needs the token (`Authorization: Bearer`, or the cookie the
//! login form sets) or gets 401 and nothing of the store. Without a token,
//! a request must name the loopback address in its `Host`, so that a web
//! page elsewhere cannot read the backup through DNS rebinding.

pub mod activity;
pub mod html;
pub mod pages;
pub mod transcript;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::commands::status::{Report, Sources};
use crate::config::{Config, ConfigLocation};
use crate::store::ChatStore;

/// Where `serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8767";
/// The cookie the login form sets: the token's SHA-256, not the token.
const SESSION_COOKIE: &str = "chatkeep_session";
/// The shortest token accepted: guessing it over HTTP must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// What the server shares between requests.
pub struct WebState {
    pub location: ConfigLocation,
    pub config: Config,
    /// The listening address, for the `Host` check.
    pub listen: SocketAddr,
    /// The token's SHA-256, when one protects the server.
    token: Option<[u8; 32]>,
    activity: activity::Cache,
}

impl WebState {
    pub fn new(
        location: ConfigLocation,
        config: Config,
        listen: SocketAddr,
        token: Option<&str>,
    ) -> WebState {
        WebState {
            location,
            config,
            listen,
            token: token.map(digest),
            activity: activity::Cache::default(),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an address may not be listened on: a non-loopback one needs a
/// token.
pub fn check_listen(addr: SocketAddr, has_token: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || has_token {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the backup on {addr}, which is not a loopback address, without a token: anyone \
         who can reach it could read every conversation. Give --token-file FILE (a file holding a secret of \
         at least {MIN_TOKEN_LEN} characters), or listen on 127.0.0.1"
    ))
}

/// The routes, with the security headers and the token check around them.
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/style.css", get(style))
        .route("/login", get(login_form).post(login))
        .route("/search", get(search))
        .route("/p/{name}", get(personality))
        .route("/p/{name}/chat", get(chat))
        .route("/p/{name}/{part}", get(document))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves on `listener` until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<WebState>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The token check (when one is set), else the `Host` check.
async fn guard(State(state): State<Arc<WebState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    match &state.token {
        None => {
            if !host_is_loopback(request.headers(), state.listen) {
                return html_response(
                    StatusCode::MISDIRECTED_REQUEST,
                    pages::message_page(
                        "Not this host",
                        "This server answers only requests made to its loopback address.",
                    ),
                );
            }
        }
        Some(token) => {
            if path != "/login" && path != "/style.css" && !authorized(request.headers(), token) {
                let mut response = html_response(StatusCode::UNAUTHORIZED, pages::login(false));
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"chatkeep\""),
                );
                return response;
            }
        }
    }
    next.run(request).await
}

fn host_is_loopback(headers: &HeaderMap, listen: SocketAddr) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let port = listen.port();
    [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        listen.to_string(),
    ]
    .iter()
    .any(|allowed| host.eq_ignore_ascii_case(allowed))
}

fn authorized(headers: &HeaderMap, token: &[u8; 32]) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| digest(given) == *token);
    let session = hex(token);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == SESSION_COOKIE && value == session);
    bearer || cookie
}

fn html_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn ok_html(body: String) -> Response {
    html_response(StatusCode::OK, body)
}

fn failure(text: &str) -> Response {
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message_page("Cannot show this", text),
    )
}

fn not_found_page(text: &str) -> Response {
    html_response(StatusCode::NOT_FOUND, pages::message_page("Not found", text))
}

async fn not_found() -> Response {
    not_found_page("There is no such page.")
}

/// The response for a page a reader rendered: the page, 404 saying
/// `missing` when there was nothing to show, or the failure.
fn respond(page: Result<Result<Option<String>, String>, Response>, missing: &str) -> Response {
    match page {
        Ok(Ok(Some(page))) => ok_html(page),
        Ok(Ok(None)) => not_found_page(missing),
        Ok(Err(e)) => failure(&e),
        Err(response) => response,
    }
}

/// Runs `read` on a blocking thread: the store's reads are synchronous.
async fn blocking<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|_| failure("the page's reader stopped unexpectedly"))
}

fn report(state: &WebState) -> Result<Report, String> {
    let sources =
        Sources::find(&state.location, Some(&state.config.storage.data_dir)).map_err(|e| e.message)?;
    Report::collect(sources, Utc::now()).map_err(|e| e.message)
}

async fn overview(State(state): State<Arc<WebState>>) -> Response {
    match blocking(move || report(&state)).await {
        Ok(Ok(report)) => ok_html(pages::overview(&report)),
        Ok(Err(e)) => failure(&e),
        Err(response) => response,
    }
}

/// 200 when `chatkeep status` would exit 0, else 503; the body says which.
async fn health(State(state): State<Arc<WebState>>) -> Response {
    let text_response = |status, text: &str| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{text}\n"),
        )
            .into_response()
    };
    match blocking(move || report(&state)).await {
        Ok(Ok(report)) if report.healthy => text_response(StatusCode::OK, "ok"),
        Ok(Ok(report)) => {
            let failing: Vec<&str> = report
                .personalities
                .iter()
                .filter(|e| e.configured && !e.healthy)
                .map(|e| e.name.as_str())
                .collect();
            text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("unhealthy: {}", failing.join(", ")),
            )
        }
        Ok(Err(e)) => text_response(StatusCode::SERVICE_UNAVAILABLE, &format!("unknown: {e}")),
        Err(response) => response,
    }
}

/// The daemon's metrics file as it wrote it; without a daemon, the same
/// metrics rendered from the status files (no request counters then).
async fn metrics(State(state): State<Arc<WebState>>) -> Response {
    let text = blocking(move || {
        if let Ok(text) = std::fs::read_to_string(&state.config.metrics.file) {
            return text;
        }
        let data_dir = &state.config.storage.data_dir;
        let statuses: Vec<_> = state
            .config
            .personalities
            .iter()
            .filter_map(|p| crate::store::personality_dir(data_dir, p.name.as_str()).ok())
            .filter_map(|dir| crate::status::PersonalityStatus::read(&dir))
            .collect();
        let remotes = crate::remote::status::read(&state.config.archive.dir);
        let mut text = crate::metrics::render(&statuses, &crate::metrics::Counters::default());
        text.push_str(&crate::metrics::render_remotes(&remotes));
        text
    })
    .await;
    match text {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn style() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
        .into_response()
}

async fn login_form() -> Response {
    ok_html(pages::login(false))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<Arc<WebState>>, axum::Form(form): axum::Form<LoginForm>) -> Response {
    let Some(token) = &state.token else {
        return Redirect::to("/").into_response();
    };
    if digest(&form.token) != *token {
        return html_response(StatusCode::UNAUTHORIZED, pages::login(true));
    }
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        hex(token)
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The store of `name`, if it is a name the data directory may hold.
fn open_chat(state: &WebState, name: &str) -> Result<Option<ChatStore>, String> {
    let Ok(dir) = crate::store::personality_dir(&state.config.storage.data_dir, name) else {
        return Ok(None);
    };
    if !dir.path().is_dir() {
        return Ok(None);
    }
    ChatStore::open_read_only(dir.path())
        .map(Some)
        .map_err(|e| e.to_string())
}

async fn personality(State(state): State<Arc<WebState>>, Path(name): Path<String>) -> Response {
    let page = blocking(move || -> Result<Option<String>, String> {
        let Some(store) = open_chat(&state, &name)? else {
            return Ok(None);
        };
        let dir = crate::store::personality_dir(&state.config.storage.data_dir, &name)
            .map_err(|e| e.to_string())?;
        let report = report(&state).ok();
        let entry = report
            .as_ref()
            .and_then(|r| r.personalities.iter().find(|e| e.name == name));
        let documents: Vec<(&str, &str, bool)> = pages::DOCUMENTS
            .iter()
            .map(|(part, title, suffix)| (*part, *title, dir.document_path(suffix).is_file()))
            .collect();
        let (_, activity) = state.activity.get(&name, &store).map_err(|e| e.to_string())?;
        let chart = activity::svg(&activity, &format!("/p/{}/chat", html::url_component(&name)));
        Ok(Some(pages::personality(entry, &name, &documents, &chart)))
    })
    .await;
    respond(page, "There is no backup of that name.")
}

async fn document(
    State(state): State<Arc<WebState>>,
    Path((name, part)): Path<(String, String)>,
) -> Response {
    let Some((_, title, suffix)) = pages::DOCUMENTS.iter().find(|(p, _, _)| *p == part) else {
        return not_found_page("There is no such page.");
    };
    let page = blocking(move || -> Result<Option<String>, String> {
        let Ok(dir) = crate::store::personality_dir(&state.config.storage.data_dir, &name) else {
            return Ok(None);
        };
        let Some(bytes) = dir
            .read_document(&dir.document_path(suffix))
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(Some(pages::document(&name, title, &value)))
    })
    .await;
    respond(page, "That document is not in the backup.")
}

#[derive(Deserialize)]
struct ChatQuery {
    at: Option<String>,
    before: Option<String>,
    skip: Option<u64>,
    date: Option<String>,
}

async fn chat(
    State(state): State<Arc<WebState>>,
    Path(name): Path<String>,
    Query(query): Query<ChatQuery>,
) -> Response {
    let date = match query.date.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => day
                .and_hms_opt(0, 0, 0)
                .and_then(|t| crate::message::Ts::new(t.and_utc().timestamp() as f64)),
            Err(_) => {
                return html_response(
                    StatusCode::BAD_REQUEST,
                    pages::message_page("Not a date", "Give the date as YYYY-MM-DD, such as 2024-01-31."),
                );
            }
        },
    };
    let page = blocking(move || -> Result<Option<String>, String> {
        let Some(store) = open_chat(&state, &name)? else {
            return Ok(None);
        };
        let at = date
            .map(transcript::Cursor::at)
            .or_else(|| query.at.as_deref().and_then(|t| pages::cursor(t, query.skip)));
        let (starts, _) = state.activity.get(&name, &store).map_err(|e| e.to_string())?;
        let page = match (at, query.before.as_deref()) {
            (Some(at), _) => transcript::from(&store, &starts, at, transcript::PAGE),
            (None, Some(before)) => transcript::until(
                &store,
                &starts,
                pages::cursor(before, query.skip),
                transcript::PAGE,
            ),
            (None, None) => transcript::until(&store, &starts, None, transcript::PAGE),
        }
        .map_err(|e| e.to_string())?;
        Ok(Some(pages::transcript(&name, &page)))
    })
    .await;
    respond(page, "There is no backup of that name.")
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    sort: Option<String>,
}

/// Hits of a query over every personality, from the index as of its last
/// commit (opened per request: it follows the syncs).
async fn search(State(state): State<Arc<WebState>>, Query(params): Query<SearchParams>) -> Response {
    let q = params.q.unwrap_or_default();
    let relevance = params.sort.as_deref() == Some("relevance");
    if q.trim().is_empty() {
        return ok_html(pages::search("", None, relevance));
    }
    let page = blocking(move || {
        let mut query = crate::search::SearchQuery::new(q.clone());
        query.limit = 50;
        if relevance {
            query.sort = crate::search::query::Sort::Relevance;
        }
        let found = crate::search::SearchIndex::open(&state.config.storage.data_dir)
            .and_then(|index| index.search(&query));
        match found {
            Ok(results) => pages::search(&q, Some(Ok(&results)), relevance),
            Err(e) => pages::search(&q, Some(Err(e.to_string())), relevance),
        }
    })
    .await;
    match page {
        Ok(page) => ok_html(page),
        Err(response) => response,
    }
}
