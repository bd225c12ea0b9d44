//! The HTTP client for the service: cookie, one global rate limit, retries
//! with backoff, and typed errors. Knows nothing of files.

pub mod cookie;
pub mod documents;
pub mod error;
pub mod rate;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use reqwest::header::{self, HeaderMap, HeaderValue};

pub use cookie::SessionCookie;
pub use error::ApiError;
pub use rate::RateLimiter;

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
    cookie: RwLock<SessionCookie>,
    limiter: Arc<RateLimiter>,
    stats: Stats,
    /// Set after an auth failure: no request is sent until a new client is
    /// built from a changed cookie source.
    auth_dead: AtomicBool,
    /// Told of each rotated session cookie, once adopted.
    on_rotation: Option<RotationHook>,
}

/// What to do with a session cookie the service rotated, besides sending it
/// (the commands save it so that the next process starts from it).
struct RotationHook(Box<dyn Fn(&SessionCookie) + Send + Sync>);

impl std::fmt::Debug for RotationHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotationHook")
    }
}

/// One failed attempt, with the server's Retry-After when it gave one.
struct Failure {
    error: ApiError,
    retry_after: Option<Duration>,
}

impl ApiClient {
    pub fn new(options: ClientOptions, limiter: Arc<RateLimiter>) -> Result<ApiClient, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .user_agent(options.user_agent.clone())
            .build()
            .map_err(|e| ApiError::Network {
                message: format!("cannot build HTTP client: {e}"),
                attempts: 0,
            })?;
        Ok(ApiClient {
            http,
            cookie: RwLock::new(options.cookie.clone()),
            options,
            limiter,
            stats: Stats::default(),
            auth_dead: AtomicBool::new(false),
            on_rotation: None,
        })
    }

    /// Calls `hook` with the new cookie each time the service rotates the
    /// session cookie, right after adopting it, before any other request
    /// can adopt a newer one (so hooks see rotations in order). The hook
    /// runs on the request's task and must not call back into this client.
    /// Replaces an earlier hook.
    pub fn on_rotation(&mut self, hook: impl Fn(&SessionCookie) + Send + Sync + 'static) {
        self.on_rotation = Some(RotationHook(Box::new(hook)));
    }

    /// True after the service refused the session: nothing more is sent.
    pub fn is_auth_dead(&self) -> bool {
        self.auth_dead.load(Ordering::Relaxed)
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
                return Err(ApiError::Auth {
                    status: 401,
                    successful_before: self.stats.successes.load(Ordering::Relaxed),
                });
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
        let headers = response.headers().clone();
        self.adopt_rotated_cookie(&headers);
        if !response.status().is_success() {
            let bot = bot_wall_signal(&headers);
            let retry_after = retry_after(&headers);
            let error = match (status, bot) {
                (_, Some(signal)) if status == 403 || status == 429 || status == 503 => {
                    ApiError::BotWall { status, signal }
                }
                (401 | 403, _) => ApiError::Auth {
                    status,
                    successful_before: self.stats.successes.load(Ordering::Relaxed),
                },
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

    /// Adopts a rotated session token at once (the old one may die soon).
    fn adopt_rotated_cookie(&self, headers: &HeaderMap) {
        let mut cookie = self.cookie.write().unwrap_or_else(|p| p.into_inner());
        for value in headers.get_all(header::SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            if let Some(token) = cookie::rotated_token(value, cookie.name())
                && token != cookie.token()
            {
                *cookie = cookie.with_token(token);
                tracing::info!(
                    name = cookie.name(),
                    "the service rotated the session cookie; using the new one"
                );
                // Under the write lock: rotations reach the hook in order.
                if let Some(RotationHook(hook)) = &self.on_rotation {
                    hook(&cookie);
                }
            }
        }
    }
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
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the answer"
    } else {
        "request failed"
    };
    let mut message = what.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    ApiError::Network { message, attempts: 1 }
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
}
