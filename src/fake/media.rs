//! The fake's media host: a CDN of its own, on two more loopback ports
//! (the second one, "away", is another origin that a redirect can point
//! to). Messages generated with media on point at it (`attachment_url`,
//! `voice_reply_url`), and profiles carry an `avatar_url` there.
//!
//! It is written on bare TCP rather than axum because its faults are about
//! the bytes on the wire: a body shorter than its `Content-Length`, a body
//! without one that is too large, a body that trickles. Every answer closes
//! its connection (`Connection: close`), so no keep-alive state exists.
//!
//! Every file is a pure function of its path (a magic number fitting its
//! extension, then deterministic bytes), so a test can compute what a
//! client must have stored ([`FakeMedia::body_of`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::generate::{fnv1a, mix};

/// The images messages point to, with their faults (see [`MediaFault`]).
pub const IMAGES: &[&str] = &[
    "/img/sunrise.png",
    "/img/cat.jpg",
    "/img/moved.png",
    "/img/away.png",
    "/img/missing.png",
    "/img/huge.png",
];
/// The voice replies messages point to.
pub const VOICES: &[&str] = &[
    "/voice/hello.mp3",
    "/voice/slow.mp3",
    "/voice/expired.ogg",
    "/voice/short.ogg",
];

/// What a file of the media host does wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaFault {
    /// Sent in chunks of [`FakeMediaConfig::slow_chunk`] bytes, one every
    /// [`FakeMediaConfig::slow_delay`].
    Slow,
    /// `302` to another path of the same host.
    Redirect(String),
    /// `302` to the same path on the other port (another origin).
    RedirectAway,
    /// `302` to a URL given verbatim (a private address, `file:`...).
    RedirectTo(String),
    NotFound,
    Gone,
    /// [`FakeMediaConfig::huge_size`] bytes, without a `Content-Length`.
    Huge,
    /// Announces its `Content-Length`, sends half of it, closes.
    Short,
}

/// How the media host behaves.
#[derive(Debug, Clone)]
pub struct FakeMediaConfig {
    pub slow_chunk: usize,
    pub slow_delay: Duration,
    /// Size of the slow file.
    pub slow_size: usize,
    /// Size of the huge file: above any `max_file_size` a test sets.
    pub huge_size: usize,
    /// Messages link a file of their own each (`/img/<key>-<index>.png`,
    /// `/voice/<key>-<index>.mp3`) instead of cycling through the
    /// catalogue, so a history of N messages makes a backlog of about
    /// 7N/12 distinct files. Off by default.
    pub distinct_files: bool,
    /// Size of every plain file (one without a fault); `None`: 1000 to
    /// 5000 bytes, drawn from the path.
    pub file_size: Option<usize>,
}

impl Default for FakeMediaConfig {
    fn default() -> Self {
        FakeMediaConfig {
            slow_chunk: 16 * 1024,
            slow_delay: Duration::from_millis(20),
            slow_size: 256 * 1024,
            huge_size: 3 * 1024 * 1024,
            distinct_files: false,
            file_size: None,
        }
    }
}

/// One request the media host received.
#[derive(Debug, Clone)]
pub struct MediaRequest {
    pub at: Instant,
    /// The port it came in on: the main one or the away one.
    pub port: u16,
    pub path: String,
    pub query: String,
    /// The `Cookie` header, if any: a client must never send one here.
    pub cookie: Option<String>,
    pub status: u16,
}

#[derive(Debug)]
struct MediaState {
    config: FakeMediaConfig,
    faults: HashMap<String, MediaFault>,
    log: Vec<MediaRequest>,
    away_port: u16,
}

type Shared = Arc<Mutex<MediaState>>;

fn lock(shared: &Shared) -> MutexGuard<'_, MediaState> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running media host; stops when dropped.
#[derive(Debug)]
pub struct FakeMedia {
    addr: SocketAddr,
    away: SocketAddr,
    shared: Shared,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeMedia {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The faults the catalogue's files start with.
fn default_faults() -> HashMap<String, MediaFault> {
    [
        (
            "/img/moved.png",
            MediaFault::Redirect("/img/moved-here.png".into()),
        ),
        ("/img/away.png", MediaFault::RedirectAway),
        ("/img/missing.png", MediaFault::NotFound),
        ("/img/huge.png", MediaFault::Huge),
        ("/voice/slow.mp3", MediaFault::Slow),
        ("/voice/expired.ogg", MediaFault::Gone),
        ("/voice/short.ogg", MediaFault::Short),
    ]
    .into_iter()
    .map(|(path, fault)| (path.to_owned(), fault))
    .collect()
}

impl FakeMedia {
    pub(super) async fn start(config: FakeMediaConfig) -> std::io::Result<FakeMedia> {
        let main = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let away = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let (addr, away_addr) = (main.local_addr()?, away.local_addr()?);
        let shared = Arc::new(Mutex::new(MediaState {
            config,
            faults: default_faults(),
            log: Vec::new(),
            away_port: away_addr.port(),
        }));
        let tasks = [main, away]
            .into_iter()
            .map(|listener| tokio::spawn(accept_loop(listener, shared.clone())))
            .collect();
        Ok(FakeMedia {
            addr,
            away: away_addr,
            shared,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The other origin redirects may point to.
    pub fn away_url(&self) -> String {
        format!("http://{}", self.away)
    }

    /// The URL messages carry for `path`: signed, as a CDN's often are.
    pub fn url(&self, path: &str) -> String {
        media_url(&self.base_url(), path)
    }

    /// Sets (or with `None` clears) the fault of a path.
    pub fn set_fault(&self, path: &str, fault: Option<MediaFault>) {
        let mut state = lock(&self.shared);
        match fault {
            Some(fault) => state.faults.insert(path.to_owned(), fault),
            None => state.faults.remove(path),
        };
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<MediaRequest> {
        lock(&self.shared).log.clone()
    }

    /// The bytes the host serves for `path` when nothing goes wrong (the
    /// slow and huge files have their configured sizes).
    pub fn body_of(&self, path: &str) -> Vec<u8> {
        let state = lock(&self.shared);
        body(path, size_of(&state, path))
    }
}

/// `base` + `path` + a signature that is the same for every link to the
/// path, so messages and personalities share URLs.
pub(super) fn media_url(base: &str, path: &str) -> String {
    format!("{base}{path}?sig={:016x}", mix(fnv1a(path.as_bytes())))
}

fn size_of(state: &MediaState, path: &str) -> usize {
    match state.faults.get(path) {
        Some(MediaFault::Slow) => state.config.slow_size,
        Some(MediaFault::Huge) => state.config.huge_size,
        _ => state
            .config
            .file_size
            .unwrap_or(1000 + (fnv1a(path.as_bytes()) % 4000) as usize),
    }
}

/// The content type a path's extension stands for.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg") => "image/jpeg",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        _ => "application/octet-stream",
    }
}

/// `len` bytes: the magic number of the path's type, then a stream drawn
/// from the path.
fn body(path: &str, len: usize) -> Vec<u8> {
    let magic: &[u8] = match content_type(path) {
        "image/png" => b"\x89PNG\r\n\x1a\n",
        "image/jpeg" => b"\xff\xd8\xff\xe0",
        "audio/mpeg" => b"ID3\x04",
        "audio/ogg" => b"OggS",
        _ => b"",
    };
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&magic[..magic.len().min(len)]);
    let mut x = fnv1a(path.as_bytes());
    while out.len() < len {
        x = mix(x);
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    out
}

async fn accept_loop(listener: TcpListener, shared: Shared) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve(stream, port, shared.clone()));
    }
}

/// The head of a request: its target and its `Cookie` header.
struct Head {
    path: String,
    query: String,
    cookie: Option<String>,
}

async fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let target = lines.next()?.split(' ').nth(1)?.to_owned();
    let cookies: Vec<&str> = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("cookie"))
        .map(|(_, value)| value.trim())
        .collect();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Head {
        path: path.to_owned(),
        query: query.to_owned(),
        cookie: (!cookies.is_empty()).then(|| cookies.join("; ")),
    })
}

async fn serve(mut stream: TcpStream, port: u16, shared: Shared) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let (fault, config, away_port, size) = {
        let state = lock(&shared);
        (
            // The other origin serves the file the main one sends there.
            state
                .faults
                .get(&head.path)
                .filter(|f| !(port == state.away_port && **f == MediaFault::RedirectAway))
                .cloned(),
            state.config.clone(),
            state.away_port,
            size_of(&state, &head.path),
        )
    };
    let status = match &fault {
        Some(MediaFault::Redirect(_) | MediaFault::RedirectAway | MediaFault::RedirectTo(_)) => 302,
        Some(MediaFault::NotFound) => 404,
        Some(MediaFault::Gone) => 410,
        _ => 200,
    };
    lock(&shared).log.push(MediaRequest {
        at: Instant::now(),
        port,
        path: head.path.clone(),
        query: head.query.clone(),
        cookie: head.cookie.clone(),
        status,
    });
    let _ = answer(&mut stream, &head, fault, &config, away_port, size).await;
    let _ = stream.shutdown().await;
}

async fn answer(
    stream: &mut TcpStream,
    head: &Head,
    fault: Option<MediaFault>,
    config: &FakeMediaConfig,
    away_port: u16,
    size: usize,
) -> std::io::Result<()> {
    let redirect = |location: String| {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let typed = content_type(&head.path);
    let ok_head = |len: Option<usize>| {
        let length = len
            .map(|n| format!("Content-Length: {n}\r\n"))
            .unwrap_or_default();
        format!("HTTP/1.1 200 OK\r\nContent-Type: {typed}\r\n{length}Connection: close\r\n\r\n")
    };
    match fault {
        Some(MediaFault::Redirect(to)) => stream.write_all(redirect(to).as_bytes()).await,
        Some(MediaFault::RedirectAway) => {
            let to = format!("http://127.0.0.1:{away_port}{}", head.path);
            stream.write_all(redirect(to).as_bytes()).await
        }
        Some(MediaFault::RedirectTo(to)) => stream.write_all(redirect(to).as_bytes()).await,
        Some(status @ (MediaFault::NotFound | MediaFault::Gone)) => {
            let line = if status == MediaFault::Gone {
                "410 Gone"
            } else {
                "404 Not Found"
            };
            let text = format!("HTTP/1.1 {line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(text.as_bytes()).await
        }
        Some(MediaFault::Huge) => {
            stream.write_all(ok_head(None).as_bytes()).await?;
            stream.write_all(&body(&head.path, size)).await
        }
        Some(MediaFault::Short) => {
            let bytes = body(&head.path, size);
            stream.write_all(ok_head(Some(size)).as_bytes()).await?;
            stream.write_all(&bytes[..size / 2]).await
        }
        Some(MediaFault::Slow) => {
            let bytes = body(&head.path, size);
            stream.write_all(ok_head(Some(size)).as_bytes()).await?;
            for chunk in bytes.chunks(config.slow_chunk.max(1)) {
                stream.write_all(chunk).await?;
                stream.flush().await?;
                tokio::time::sleep(config.slow_delay).await;
            }
            Ok(())
        }
        None => {
            stream.write_all(ok_head(Some(size)).as_bytes()).await?;
            stream.write_all(&body(&head.path, size)).await
        }
    }
}
