//! The HTTP side of media: downloads streamed into the store, bounded in
//! size, paced by a token bucket and a bandwidth limit of their own.
//!
//! The client here never holds the session cookie (it is built from
//! nothing of the service's client), follows no redirect by itself (each
//! hop is checked, at most [`MAX_REDIRECTS`]), uses no proxy (a proxy would
//! connect wherever it likes, past the address check), and connects only
//! to an address [`AddressPolicy`] allowed: the host is resolved here and
//! the connection pinned to the checked address, so a name that resolves
//! differently the second time cannot slip past.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::{self, HeaderValue};
use tokio_util::sync::CancellationToken;

use super::address::AddressPolicy;
use super::store::MediaStore;
use super::{MediaHash, MediaUrl, redact};
use crate::api::RateLimiter;

/// Most redirects followed for one file.
pub const MAX_REDIRECTS: usize = 5;
/// Default of `[media] max_file_size`.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 100 * 1024 * 1024;

/// How downloads behave; from `[media]`.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub max_file_size: u64,
    pub requests_per_second: f64,
    /// Bytes per second over all downloads of the process; `None`: no limit.
    pub max_bytes_per_second: Option<u64>,
    /// How long a connection may stay silent.
    pub timeout: Duration,
    pub user_agent: String,
    pub policy: AddressPolicy,
}

impl FetchOptions {
    /// What `config` sets: `[media]`, the service's timeout and user agent,
    /// and its host as the one non-public host allowed.
    pub fn from_config(config: &crate::config::Config) -> FetchOptions {
        FetchOptions {
            max_file_size: config.media.max_file_size,
            requests_per_second: config.media.requests_per_second,
            max_bytes_per_second: config.media.max_bytes_per_second,
            timeout: config.service.timeout,
            user_agent: config.service.user_agent.clone(),
            policy: AddressPolicy::for_service(&config.service.base_url),
        }
    }
}

/// A file now in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub hash: MediaHash,
    /// Its name in the store: `<hash>.<ext>`.
    pub file: String,
    pub size: u64,
    pub content_type: Option<String>,
}

/// Why a URL was not stored; the variants are what the index records.
/// URLs in messages are shown without their query string.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 404 or 410: not asked again.
    #[error("{url}: the media host answered {status}; the file is gone")]
    Gone { url: String, status: u16 },
    #[error(
        "{url}: larger than max_file_size ({limit} bytes), not stored; raise [media] max_file_size to keep it"
    )]
    TooLarge { url: String, limit: u64 },
    /// Not fetched on principle: not asked again.
    #[error("{url}: refused: {reason}")]
    Refused { url: String, reason: String },
    /// A network error, a 5xx, a body cut short: tried again later.
    #[error("{url}: {message}")]
    Transient { url: String, message: String },
    /// The store could not be written: tried again later.
    #[error("media store: {0}")]
    Store(#[from] std::io::Error),
    #[error("cancelled")]
    Cancelled,
}

/// Downloads media, one request at a time per caller, all callers sharing
/// one token bucket and one bandwidth budget.
#[derive(Debug)]
pub struct MediaFetcher {
    options: FetchOptions,
    limiter: RateLimiter,
    /// When the bandwidth limit lets the next byte go.
    bandwidth_free_at: tokio::sync::Mutex<Instant>,
}

impl MediaFetcher {
    pub fn new(options: FetchOptions) -> MediaFetcher {
        let rate = options.requests_per_second;
        MediaFetcher {
            options,
            // Its own bucket, burst 1: the media backlog never draws from
            // the service's (see `api::rate`).
            limiter: RateLimiter::new(rate, 1),
            bandwidth_free_at: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    pub fn options(&self) -> &FetchOptions {
        &self.options
    }

    /// Downloads `url` into `store`, following checked redirects.
    pub async fn fetch(
        &self,
        url: &MediaUrl,
        store: &MediaStore,
        cancel: &CancellationToken,
    ) -> Result<Fetched, FetchError> {
        let shown = url.redacted().to_owned();
        let refused = |reason: String| FetchError::Refused {
            url: shown.clone(),
            reason,
        };
        let mut current = Url::parse(url.as_str()).map_err(|e| refused(format!("not a usable URL ({e})")))?;
        for _ in 0..=MAX_REDIRECTS {
            if !matches!(current.scheme(), "http" | "https") {
                return Err(refused(format!(
                    "only http and https URLs are fetched, not {}:",
                    current.scheme()
                )));
            }
            let addr = self.resolve(&current).await.map_err(|e| match e {
                Resolve::Refused(reason) => refused(reason),
                Resolve::Failed(message) => FetchError::Transient {
                    url: shown.clone(),
                    message,
                },
            })?;
            tokio::select! {
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                _ = self.limiter.acquire() => {}
            }
            let response = tokio::select! {
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                r = self.get(&current, addr) => r.map_err(|message| FetchError::Transient { url: shown.clone(), message })?,
            };
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| current.join(l).ok())
                    .ok_or_else(|| {
                        refused(format!(
                            "a {} redirect without a usable Location",
                            status.as_u16()
                        ))
                    })?;
                tracing::debug!(
                    from = redact(current.as_str()),
                    to = redact(location.as_str()),
                    "media redirect"
                );
                current = location;
                continue;
            }
            return match status.as_u16() {
                404 | 410 => Err(FetchError::Gone {
                    url: shown,
                    status: status.as_u16(),
                }),
                200..=299 => self.stream(response, &shown, store, cancel).await,
                other => Err(FetchError::Transient {
                    url: shown,
                    message: format!("the media host answered {other}"),
                }),
            };
        }
        Err(refused(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// The checked address to connect to for `url`'s host.
    async fn resolve(&self, url: &Url) -> Result<SocketAddr, Resolve> {
        let host = url
            .host_str()
            .ok_or_else(|| Resolve::Refused("a URL without a host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Resolve::Refused("a URL without a port".into()))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let candidates: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| Resolve::Failed(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        let mut why = None;
        for addr in &candidates {
            match self.options.policy.check(host, addr.ip()) {
                Ok(()) => return Ok(*addr),
                Err(forbidden) => why = Some(forbidden),
            }
        }
        Err(match why {
            Some(forbidden) => Resolve::Refused(format!(
                "{host} is {forbidden}; media is fetched only from public addresses (or the service's own host)"
            )),
            None => Resolve::Failed(format!("{host} resolves to no address")),
        })
    }

    /// One GET to `url`, connected to `addr` and nowhere else.
    async fn get(&self, url: &Url, addr: SocketAddr) -> Result<reqwest::Response, String> {
        let host = url.host_str().unwrap_or_default();
        // A client per request: it is the one way to pin reqwest's
        // connection to the address just checked. At a request a second,
        // the cost does not matter.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .resolve(host, addr)
            .connect_timeout(self.options.timeout.min(Duration::from_secs(10)))
            .read_timeout(self.options.timeout)
            .user_agent(self.options.user_agent.clone())
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        client
            .get(url.clone())
            .header(header::ACCEPT, HeaderValue::from_static("*/*"))
            .send()
            .await
            .map_err(|e| crate::api::transport_words(&e, ""))
    }

    /// Writes the body into a new file of the store, within the limits.
    async fn stream(
        &self,
        mut response: reqwest::Response,
        shown: &str,
        store: &MediaStore,
        cancel: &CancellationToken,
    ) -> Result<Fetched, FetchError> {
        let limit = self.options.max_file_size;
        let too_large = || FetchError::TooLarge {
            url: shown.to_owned(),
            limit,
        };
        let announced = response.content_length();
        if announced.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|v| !v.is_empty());
        let ext = extension(content_type.as_deref(), response.url().path());
        let mut part = store.begin()?;
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                chunk = response.chunk() => chunk,
            };
            let chunk = match chunk {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let got = match announced {
                        Some(announced) => format!("got {} bytes of the {announced} announced", part.len()),
                        None => format!("got {} bytes", part.len()),
                    };
                    return Err(FetchError::Transient {
                        url: shown.to_owned(),
                        message: format!("{got}, then: {}", crate::api::transport_words(&e, "")),
                    });
                }
            };
            if part.len() + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            part.write(&chunk)?;
            tokio::select! {
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                _ = self.pace(chunk.len() as u64) => {}
            }
        }
        if let Some(announced) = announced
            && announced != part.len()
        {
            return Err(FetchError::Transient {
                url: shown.to_owned(),
                message: format!("got {} bytes of the {announced} announced", part.len()),
            });
        }
        let size = part.len();
        let (hash, file) = part.finish(ext)?;
        Ok(Fetched {
            hash,
            file,
            size,
            content_type,
        })
    }

    /// Waits as long as `bytes` take at `max_bytes_per_second`, counted
    /// over every download of the process.
    async fn pace(&self, bytes: u64) {
        let Some(rate) = self.options.max_bytes_per_second.filter(|r| *r > 0) else {
            return;
        };
        let until = {
            let mut free_at = self.bandwidth_free_at.lock().await;
            let start = (*free_at).max(Instant::now());
            *free_at = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
            *free_at
        };
        tokio::time::sleep_until(until.into()).await;
    }
}

enum Resolve {
    Refused(String),
    Failed(String),
}

/// The extensions a stored file may get, by content type. Nothing else is
/// ever put in a file name: the rest is `bin`.
const TYPES: &[(&str, &str)] = &[
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/gif", "gif"),
    ("image/webp", "webp"),
    ("image/avif", "avif"),
    ("image/heic", "heic"),
    ("image/svg+xml", "svg"),
    ("audio/mpeg", "mp3"),
    ("audio/mp3", "mp3"),
    ("audio/ogg", "ogg"),
    ("audio/opus", "opus"),
    ("audio/wav", "wav"),
    ("audio/x-wav", "wav"),
    ("audio/webm", "weba"),
    ("audio/mp4", "m4a"),
    ("audio/aac", "aac"),
    ("audio/flac", "flac"),
    ("video/mp4", "mp4"),
    ("video/webm", "webm"),
    ("application/pdf", "pdf"),
    ("text/plain", "txt"),
];

/// Whether `ext` is one a stored file may have: what a snapshot's media
/// member name is checked against before it becomes a path.
pub fn is_stored_extension(ext: &str) -> bool {
    ext == "bin" || TYPES.iter().any(|(_, known)| *known == ext)
}

/// The extension for a file: from its content type, else from the URL's
/// path when that is one of the known ones, else `bin`.
pub fn extension(content_type: Option<&str>, path: &str) -> &'static str {
    if let Some(ext) = content_type.and_then(|t| TYPES.iter().find(|(known, _)| *known == t)) {
        return ext.1;
    }
    let from_path = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    let from_path = from_path.as_deref().map(|e| if e == "jpeg" { "jpg" } else { e });
    TYPES
        .iter()
        .map(|(_, ext)| *ext)
        .find(|ext| Some(*ext) == from_path)
        .unwrap_or("bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_come_from_a_fixed_list() {
        assert_eq!(extension(Some("image/png"), "/x.bin"), "png");
        assert_eq!(extension(Some("application/octet-stream"), "/a/b.JPEG"), "jpg");
        assert_eq!(extension(None, "/a/b.mp3"), "mp3");
        assert_eq!(extension(None, "/a/b.sh"), "bin");
        assert_eq!(extension(None, "/a/..%2fetc"), "bin");
        assert_eq!(extension(Some("text/html"), "/"), "bin");
    }
}
