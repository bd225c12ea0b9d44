//! The HTTP client for the service: cookie, one global rate limit, retries
//! with backoff, and typed errors. Knows nothing of files.
//!
//! The session cookie goes to the configured origin (`base_url`'s scheme,
//! host and port) and nowhere else: no redirect is followed (the API never
//! redirects; a 3xx is a contract breach), a `Set-Cookie` is listened to
//! only from that origin and only when a browser would apply it there, and
//! over plain `http://` no proxy from the environment is used, since it
//! would read the cookie.

pub mod cookie;
pub mod documents;
pub mod error;
pub mod rate;
pub mod set_cookie;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderValue};

pub use cookie::SessionCookie;
pub use error::{ApiError, AuthFailure};
pub use rate::RateLimiter;
pub use set_cookie::SessionUpdate;

use crate::message::{self, Message, Ts};

/// Largest answer accepted; a chat page of 500 long messages is far below.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// How to reach and treat the service.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub base_url: String,
    pub jargon: String,
    pub cookie: SessionCookie,
    pub extra_cookies: BTreeMap<String, String>,
    pub timeout: Duration,
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub user_agent: String,
}

/// Counters of one client, for summaries and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub successes: AtomicU64,
    pub chat_requests: AtomicU64,
    pub retries: AtomicU64,
}

/// A personality's profile: its raw JSON and the fields the sync needs.
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: PersonalityId,
    pub user_id: Option<String>,
    pub display_name: Option<String>,
    /// The profile as received, pretty-printed for the store.
    pub raw: Box<serde_json::value::RawValue>,
}

/// The UUID the service uses for a personality in every path but the profile's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonalityId(String);

impl PersonalityId {
    /// Accepts only characters that cannot change the meaning of a URL path.
    pub fn new(id: &str) -> Option<PersonalityId> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        ok.then(|| PersonalityId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PersonalityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A logged-in account, as `/api/users/me` describes it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Account {
    pub id: String,
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
}

/// The service client. Cheap to share behind an `Arc`; every request of
/// every task goes through the same [`RateLimiter`].
#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    options: ClientOptions,
    /// `options.base_url`, parsed: the one origin requests go to and
    /// `Set-Cookie` is taken from.
    base: Url,
    cookie: RwLock<SessionCookie>,
    limiter: Arc<RateLimiter>,
    stats: Stats,
    /// Set after an auth failure: no request is sent until a new client is
    /// built from a changed cookie source.
    auth_dead: AtomicBool,
    /// The auth failure was the service ending the session (it cleared the
    /// session cookie), not a refusal.
    session_ended: AtomicBool,
    /// Told of each change the service makes to the session cookie.
    on_session_change: Option<SessionHook>,
}

/// What the service did to the session cookie, as the hook hears it.
#[derive(Debug, Clone, Copy)]
pub enum SessionChange<'a> {
    /// It rotated the token: this is the cookie now sent.
    Rotated(&'a SessionCookie),
    /// It ended the session of this cookie (it cleared the cookie): no
    /// more request is sent with it.
    Ended(&'a SessionCookie),
}

/// What to do when the service changes the session cookie, besides using
/// the change (the commands save it so that the next process starts from
/// it).
struct SessionHook(Box<dyn Fn(SessionChange<'_>) + Send + Sync>);

impl std::fmt::Debug for SessionHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHook")
    }
}

/// One failed attempt, with the server's Retry-After when it gave one.
struct Failure {
    error: ApiError,
    retry_after: Option<Duration>,
}

impl ApiClient {
    pub fn new(options: ClientOptions, limiter: Arc<RateLimiter>) -> Result<ApiClient, ApiError> {
        let cannot = |what: String| ApiError::Network {
            message: what,
            attempts: 0,
        };
        let base = Url::parse(&options.base_url).map_err(|e| cannot(format!("unusable base URL: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .user_agent(options.user_agent.clone())
            // The API never redirects; following one would send the cookie
            // to wherever it points, another host or plain http. A 3xx is
            // reported instead (see `redirect_error`).
            .redirect(reqwest::redirect::Policy::none());
        if base.scheme() == "http" {
            // Over plain HTTP, a proxy from HTTP_PROXY or ALL_PROXY reads
            // the cookie. Over https it only relays encrypted bytes (with
            // CONNECT), so there the environment's proxy is kept.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| cannot(format!("cannot build HTTP client: {e}")))?;
        Ok(ApiClient {
            http,
            base,
            cookie: RwLock::new(options.cookie.clone()),
            options,
            limiter,
            stats: Stats::default(),
            auth_dead: AtomicBool::new(false),
            session_ended: AtomicBool::new(false),
            on_session_change: None,
        })
    }

    /// Calls `hook` each time the service changes the session cookie: with
    /// the new cookie right after adopting a rotation, or with the cookie
    /// whose session the service ended. Called before any other request
    /// can change it again (so hooks see changes in order); runs on the
    /// request's task and must not call back into this client. Replaces an
    /// earlier hook.
    pub fn on_session_change(&mut self, hook: impl Fn(SessionChange<'_>) + Send + Sync + 'static) {
        self.on_session_change = Some(SessionHook(Box::new(hook)));
    }

    /// True after the service refused the session: nothing more is sent.
    pub fn is_auth_dead(&self) -> bool {
        self.auth_dead.load(Ordering::Relaxed)
    }

    /// True after the service ended the session (it cleared the session
    /// cookie); [`Self::is_auth_dead`] is true too.
    pub fn is_session_ended(&self) -> bool {
        self.session_ended.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The session cookie in use (it changes when the service rotates it).
    pub fn cookie(&self) -> SessionCookie {
        self.cookie.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub async fn me(&self) -> Result<Account, ApiError> {
        let body = self.get("/api/users/me").await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Contract(format!("/api/users/me: {e}")))
    }

    pub async fn profile(&self, slug: &str) -> Result<Profile, ApiError> {
        #[derive(serde::Deserialize)]
        struct Fields {
            id: Option<serde_json::Value>,
            user_id: Option<serde_json::Value>,
            name: Option<String>,
        }
        let path = format!("/api/{}/username/{}", self.options.jargon, slug);
        let body = self.get(&path).await.map_err(|e| match e {
            ApiError::NotFound { .. } => ApiError::NotFound {
                what: format!("no personality named `{slug}`"),
            },
            other => other,
        })?;
        let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(&body)
            .map_err(|e| ApiError::Contract(format!("profile of {slug}: {e}")))?;
        let fields: Fields = serde_json::from_str(raw.get())
            .map_err(|e| ApiError::Contract(format!("profile of {slug} is not an object: {e}")))?;
        let id = match &fields.id {
            Some(serde_json::Value::String(s)) => PersonalityId::new(s).ok_or_else(|| {
                let shown: String = s.chars().take(60).collect::<String>().escape_debug().to_string();
                format!(
                    "profile of {slug} has an `id` that could change a request path or a file name \
                     (\"{shown}\"{}); only ASCII letters, digits, '-' and '_' are accepted",
                    if s.chars().count() > 60 { "…" } else { "" }
                )
            }),
            _ => Err(format!("profile of {slug} has no `id` string")),
        }
        .map_err(ApiError::Contract)?;
        let user_id = fields.user_id.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        Ok(Profile {
            id,
            user_id,
            display_name: fields.name,
            raw,
        })
    }

    /// One page of chat history: up to `limit` messages older than `before`
    /// (or the newest without it). Contract checks that need no history are
    /// done here; the walk checks the rest.
    pub async fn chat_page(
        &self,
        id: &PersonalityId,
        before: Option<Ts>,
        limit: u32,
    ) -> Result<Vec<Message>, ApiError> {
        let mut path = format!(
            "/api/{}/{}/chat/history?limit={limit}&shape_id={}",
            self.options.jargon, id, id
        );
        if let Some(before) = before {
            path.push_str(&format!("&before_ts={before}"));
        }
        self.stats.chat_requests.fetch_add(1, Ordering::Relaxed);
        let body = self.get(&path).await?;
        let page = message::parse_page(&body)?;
        if page.len() > limit as usize {
            return Err(ApiError::Contract(format!(
                "asked for at most {limit} messages, got {}",
                page.len()
            )));
        }
        Ok(page)
    }

    /// GET with the rate limit, retries and backoff. Returns a body that is
    /// syntactically valid JSON.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>, ApiError> {
        let url = format!("{}{}", self.options.base_url, path);
        let mut attempt = 0u32;
        loop {
            if self.auth_dead.load(Ordering::Relaxed) {
                let failure = if self.session_ended.load(Ordering::Relaxed) {
                    AuthFailure::Ended
                } else {
                    AuthFailure::Refused { status: 401 }
                };
                return Err(self.auth_error(failure));
            }
            attempt += 1;
            self.limiter.acquire().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            match self.send_once(&url).await {
                Ok(body) => {
                    self.stats.successes.fetch_add(1, Ordering::Relaxed);
                    return Ok(body);
                }
                Err(failure) if failure.error.is_transient() && attempt <= self.options.max_retries => {
                    let wait = match failure.error {
                        ApiError::RateLimited { .. } => {
                            let wait = failure.retry_after.unwrap_or_else(|| self.backoff(attempt));
                            // The limit is per account: every worker waits.
                            self.limiter.pause_for(wait);
                            Duration::ZERO
                        }
                        _ => self.backoff(attempt),
                    };
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(path = path_only(path), attempt, error = %failure.error, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(failure) => {
                    if let ApiError::Auth { .. } = failure.error {
                        self.auth_dead.store(true, Ordering::Relaxed);
                    }
                    return Err(failure.error.with_attempts(attempt));
                }
            }
        }
    }

    fn auth_error(&self, failure: AuthFailure) -> ApiError {
        ApiError::Auth {
            failure,
            successful_before: self.stats.successes.load(Ordering::Relaxed),
        }
    }

    /// Exponential backoff with full jitter: uniform in [0, min(max, base·2ⁿ)].
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .options
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
        let cap = exp.min(self.options.max_backoff);
        cap.mul_f64(rand::rng().random_range(0.0..=1.0))
    }

    async fn send_once(&self, url: &str) -> Result<Vec<u8>, Failure> {
        let fail = |error| Failure {
            error,
            retry_after: None,
        };
        let cookie_header = {
            let cookie = self.cookie.read().unwrap_or_else(|p| p.into_inner());
            let extras = self
                .options
                .extra_cookies
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()));
            let mut value = HeaderValue::from_str(&cookie.header_value(extras)).map_err(|_| {
                fail(ApiError::Contract(
                    "the cookie contains characters a header cannot carry".into(),
                ))
            })?;
            value.set_sensitive(true);
            value
        };
        let response = self
            .http
            .get(url)
            .header(header::COOKIE, cookie_header)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(network_error(&e)))?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            // Nothing of it is used, its Set-Cookie included.
            return Err(fail(redirect_error(status, response.url(), response.headers())));
        }
        let headers = response.headers().clone();
        self.apply_set_cookies(response.url(), &headers).map_err(fail)?;
        if !response.status().is_success() {
            let bot = bot_wall_signal(&headers);
            let retry_after = retry_after(&headers);
            let error = match (status, bot) {
                (_, Some(signal)) if status == 403 || status == 429 || status == 503 => {
                    ApiError::BotWall { status, signal }
                }
                (401 | 403, _) => self.auth_error(AuthFailure::Refused { status }),
                (429, _) => ApiError::RateLimited {
                    attempts: 1,
                    retry_after,
                },
                (404, _) => ApiError::NotFound {
                    what: path_only(url).to_owned(),
                },
                (500..=599, _) => ApiError::Server { status, attempts: 1 },
                _ => ApiError::Status { status },
            };
            return Err(Failure { error, retry_after });
        }
        let html_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            // Announced too large: refuse without reading it.
            return Err(fail(too_large()));
        }
        let body = read_capped(response).await.map_err(fail)?;
        let looks_html = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        if html_type || looks_html {
            return Err(fail(ApiError::BotWall {
                status,
                signal: "an HTML page where JSON was expected".into(),
            }));
        }
        check_json(&body).map_err(fail)?;
        Ok(body)
    }

    /// Applies what the answer's `Set-Cookie` headers say of the session
    /// cookie (see [`set_cookie::session_update`]), the last one winning as
    /// it would in a browser: a rotated token is adopted at once (the old
    /// one may die soon); a cleared cookie ends the session, which is an
    /// auth failure of this answer and of every later request. Only an
    /// answer from the configured origin is listened to.
    fn apply_set_cookies(&self, url: &Url, headers: &HeaderMap) -> Result<(), ApiError> {
        if !headers.contains_key(header::SET_COOKIE) {
            return Ok(());
        }
        if url.origin() != self.base.origin() {
            tracing::warn!("ignored the Set-Cookie of an answer from another origin than base_url's");
            return Ok(());
        }
        let host = self.base.host_str().unwrap_or_default();
        let now = chrono::Utc::now();
        let mut cookie = self.cookie.write().unwrap_or_else(|p| p.into_inner());
        let mut last = None;
        for value in headers.get_all(header::SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            match set_cookie::session_update(value, cookie.name(), host, now) {
                Some(SessionUpdate::Ignored(reason)) => tracing::warn!(
                    name = cookie.name(),
                    "ignored a Set-Cookie for the session cookie: {reason}"
                ),
                Some(update) => last = Some(update),
                None => {}
            }
        }
        // Under the write lock: changes reach the hook in order.
        let hook = |change| {
            if let Some(SessionHook(hook)) = &self.on_session_change {
                hook(change);
            }
        };
        match last {
            Some(SessionUpdate::Rotated(token)) if token != cookie.token() => {
                *cookie = cookie.with_token(token);
                tracing::info!(
                    name = cookie.name(),
                    "the service rotated the session cookie; using the new one"
                );
                hook(SessionChange::Rotated(&cookie));
            }
            Some(SessionUpdate::Ended) => {
                self.session_ended.store(true, Ordering::Relaxed);
                tracing::warn!(
                    name = cookie.name(),
                    "the service ended the session: it cleared the session cookie"
                );
                hook(SessionChange::Ended(&cookie));
                return Err(self.auth_error(AuthFailure::Ended));
            }
            _ => {}
        }
        Ok(())
    }
}

/// The error for a 3xx answer. The API never redirects, and following
/// would send the cookie to wherever the answer points (another host, or
/// the same one over plain http): a contract breach, not retried. The
/// target is named by its origin only, since its path or query could carry
/// a token.
fn redirect_error(status: u16, from: &Url, headers: &HeaderMap) -> ApiError {
    let target = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| from.join(location).ok());
    let to = match target {
        Some(url) if url.has_host() => format!("a redirect to {}", url.origin().ascii_serialization()),
        Some(url) => format!("a redirect to a {}: URL", url.scheme()),
        None => "a redirect without a usable Location".to_owned(),
    };
    ApiError::Contract(format!(
        "the service answered {status}, {to}; the API never redirects, so chatkeep does not follow it \
         (the session cookie would go along)"
    ))
}

/// The checks every answer passes before anyone parses it: UTF-8, whole
/// JSON, and nested no deeper than [`message::MAX_JSON_DEPTH`]. A body cut
/// short (a truncated answer, maybe in the middle of a character) is
/// transient; well-formed text that breaks these rules is a contract breach,
/// which asking again does not mend.
fn check_json(body: &[u8]) -> Result<(), ApiError> {
    if let Err(e) = std::str::from_utf8(body)
        && e.error_len().is_some()
    {
        return Err(ApiError::Contract(format!(
            "the answer is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Err(ApiError::BadBody {
            message: format!("{} bytes that are not whole JSON ({e})", body.len()),
            attempts: 1,
        });
    }
    if message::nested_deeper_than(body, message::MAX_JSON_DEPTH) {
        return Err(ApiError::Contract(format!(
            "the answer is nested deeper than {} levels",
            message::MAX_JSON_DEPTH
        )));
    }
    Ok(())
}

fn too_large() -> ApiError {
    ApiError::Contract(format!("answer larger than {} MiB", MAX_BODY / (1024 * 1024)))
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(network_error(&e)),
        }
    }
}

fn network_error(e: &reqwest::Error) -> ApiError {
    // The host and port only: a URL's path or query could carry anything.
    let host = e.url().and_then(|u| {
        let port = u
            .port_or_known_default()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        u.host_str().map(|h| format!("{h}{port}"))
    });
    let to = host.as_ref().map(|h| format!(" to {h}")).unwrap_or_default();
    let mut message = transport_words(e, &to);
    if let (Some(host), true) = (&host, e.is_connect() || e.is_timeout()) {
        message.push_str(&format!(
            "; check service.base_url in the config, and that {host} is up and reachable from this machine"
        ));
    }
    ApiError::Network { message, attempts: 1 }
}

/// A reqwest error in words, never with its URL (whose path or query may
/// carry a signature or anything else): what went wrong, `to` (where it
/// was going) after a timeout or a failed connection, then each cause.
/// For the service's client and the media fetcher alike.
pub(crate) fn transport_words(e: &reqwest::Error, to: &str) -> String {
    let mut message = if e.is_timeout() {
        format!("timed out{to}")
    } else if e.is_connect() {
        format!("could not connect{to}")
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the answer".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

fn bot_wall_signal(headers: &HeaderMap) -> Option<String> {
    headers.keys().map(|k| k.as_str()).find_map(|name| {
        (name == "cf-mitigated" || name.starts_with("x-datadome") || name.starts_with("x-px"))
            .then(|| format!("`{name}` header"))
    })
}

/// Retry-After as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(24 * 3600)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date
        .signed_duration_since(chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    Some(wait.min(Duration::from_secs(24 * 3600)))
}

/// The path of a URL without its query, for log lines.
fn path_only(url: &str) -> &str {
    let start = url.find("/api/").unwrap_or(0);
    let rest = &url[start..];
    rest.split('?').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(header::RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
    }

    #[test]
    fn answers_are_checked_before_parsing() {
        assert!(check_json(br#"[{"id":"a","ts":1}]"#).is_ok());
        let transient = |r: Result<(), ApiError>| r.is_err_and(|e| e.is_transient());
        // Cut short, even inside a character: transient.
        assert!(transient(check_json(br#"[{"id":"a","#)));
        assert!(transient(check_json(&[b'"', b'c', 0xc3])));
        // Broken rules: contract breaches, not retried.
        let contract = |r: Result<(), ApiError>| matches!(r, Err(ApiError::Contract(_)));
        assert!(contract(check_json(&[b'"', 0xff, b'"'])));
        let deep = [vec![b'['; 129], vec![b']'; 129]].concat();
        assert!(contract(check_json(&deep)));
        assert!(check_json(&deep[1..deep.len() - 1]).is_ok());
    }

    #[test]
    fn bot_wall_headers_are_recognised() {
        let mut h = HeaderMap::new();
        assert_eq!(bot_wall_signal(&h), None);
        h.insert("x-datadome-cid", HeaderValue::from_static("1"));
        assert!(bot_wall_signal(&h).is_some());
    }

    #[test]
    fn personality_ids_cannot_change_the_path() {
        assert!(PersonalityId::new("0b1c2d3e-aaaa-4bbb-8ccc-111122223333").is_some());
        for bad in ["", "a/b", "../x", "a?b", "a b", "a%2F"] {
            assert!(PersonalityId::new(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_redirect_is_a_contract_breach_naming_only_the_target_origin() {
        let from = Url::parse("https://shapes.inc/api/users/me").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("http://evil.example:8080/steal/here?session=leaked-query#frag"),
        );
        let error = redirect_error(302, &from, &h);
        assert!(matches!(error, ApiError::Contract(_)));
        assert!(!error.is_transient());
        let message = error.to_string();
        assert!(message.contains("302") && message.contains("http://evil.example:8080"));
        for hidden in ["steal", "leaked-query", "frag"] {
            assert!(!message.contains(hidden), "the message names {hidden}");
        }
        // A relative target is read against the answer's URL.
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("/login?next=leaked-query"),
        );
        let message = redirect_error(307, &from, &h).to_string();
        assert!(message.contains("https://shapes.inc") && !message.contains("leaked-query"));
        h.remove(header::LOCATION);
        assert!(
            redirect_error(301, &from, &h)
                .to_string()
                .contains("without a usable Location")
        );
    }

    fn client_of(base_url: &str, token: &str) -> ApiClient {
        let options = ClientOptions {
            base_url: base_url.to_owned(),
            jargon: "shapes".to_owned(),
            cookie: SessionCookie::parse(token, cookie::CURRENT_NAME).unwrap(),
            extra_cookies: BTreeMap::new(),
            timeout: Duration::from_secs(1),
            max_retries: 0,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            user_agent: "test".to_owned(),
        };
        ApiClient::new(options, Arc::new(RateLimiter::new(1000.0, 1))).unwrap()
    }

    fn set_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(header::SET_COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn set_cookie_is_taken_only_from_the_configured_origin() {
        let client = client_of("http://127.0.0.1:8080", "configured");
        let rotation = set_cookie(&format!("{}=rotated; Path=/", cookie::CURRENT_NAME));
        let ended = set_cookie(&format!("{}=deleted; Max-Age=0", cookie::CURRENT_NAME));
        for foreign in [
            "http://127.0.0.1:8081/api/users/me",
            "https://127.0.0.1:8080/api/users/me",
            "http://localhost:8080/api/users/me",
            "http://evil.example/api/users/me",
        ] {
            let url = Url::parse(foreign).unwrap();
            assert!(client.apply_set_cookies(&url, &rotation).is_ok());
            assert!(client.apply_set_cookies(&url, &ended).is_ok());
            assert!(client.cookie().token() == "configured", "adopted from {foreign}");
            assert!(!client.is_auth_dead() && !client.is_session_ended());
        }
        let ours = Url::parse("http://127.0.0.1:8080/api/users/me").unwrap();
        assert!(client.apply_set_cookies(&ours, &rotation).is_ok());
        assert!(
            client.cookie().token() == "rotated",
            "not adopted from the origin"
        );
        let error = client.apply_set_cookies(&ours, &ended).unwrap_err();
        assert!(matches!(
            error,
            ApiError::Auth {
                failure: AuthFailure::Ended,
                ..
            }
        ));
        assert!(client.is_session_ended());
    }
}
