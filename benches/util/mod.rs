//! What the benchmarks share: running the real binary and reading its peak
//! memory from its own exit log line.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One run of `chatkeep`.
pub struct Run {
    pub wall: Duration,
    pub peak_rss_kib: u64,
    pub stdout: String,
    pub log: String,
}

/// Runs the real binary with debug logs and reads its peak RSS from its own
/// exit log line: wait4's ru_maxrss would count this (large) parent's
/// memory, which a spawned child inherits as its starting high-water mark.
pub fn run_chatkeep(config: &Path, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn,chatkeep=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatkeep starts");
    let out = drain(child.stdout.take().expect("stdout piped"));
    let log = drain(child.stderr.take().expect("stderr piped"));
    let status = child.wait().expect("wait for chatkeep");
    let wall = started.elapsed();
    let stdout = out.join().unwrap_or_default();
    let log = log.join().unwrap_or_default();
    let peak_rss_kib = field(&log, "exiting", "peak_rss_kib=")
        .unwrap_or_else(|| panic!("no peak_rss_kib in chatkeep's log:\n{log}"));
    assert!(status.success(), "chatkeep {args:?} failed:\n{stdout}\n{log}");
    Run {
        wall,
        peak_rss_kib,
        stdout,
        log,
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        pipe.read_to_string(&mut s).ok();
        s
    })
}

/// The session token every benchmark's fake service expects.
pub const TOKEN: &str = "bench-token";

/// The fake's cookie setting for [`TOKEN`].
pub fn fake_cookie() -> Option<(String, String)> {
    Some(("__Secure-better-auth.session_token".into(), TOKEN.into()))
}

/// Writes `dir/cookie` holding [`TOKEN`], mode 0600 (chatkeep warns otherwise).
pub fn write_cookie(dir: &Path) {
    let cookie = dir.join("cookie");
    std::fs::write(&cookie, TOKEN).unwrap();
    std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// The text of the number after `key` on the first log line holding `line`.
fn number_text<'a>(log: &'a str, line: &str, key: &str) -> Option<&'a str> {
    log.lines().filter(|l| l.contains(line)).find_map(|l| {
        let rest = l.split(key).nth(1)?;
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// The whole number after `key` on the first log line holding `line`.
pub fn field(log: &str, line: &str, key: &str) -> Option<u64> {
    number_text(log, line, key)?.parse().ok()
}

/// The decimal number after `key` on the first log line holding `line`
/// (NaN when there is none, so a missing figure shows in the table).
pub fn seconds(log: &str, line: &str, key: &str) -> f64 {
    number_text(log, line, key)
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The message count the benchmark was given (`cargo bench --bench X --
/// MESSAGES`), else a million.
pub fn messages_arg() -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000)
}

/// The in-process fake serving `specs`, checking [`TOKEN`], handing out
/// pages of up to 1000 messages (so that a million is synced quickly).
pub fn fake_with_large_pages(
    runtime: &tokio::runtime::Runtime,
    specs: Vec<chatkeep::fake::PersonalitySpec>,
) -> chatkeep::fake::FakeService {
    runtime
        .block_on(chatkeep::fake::FakeService::start(
            chatkeep::fake::FakeConfig {
                cookie: fake_cookie(),
                max_limit: 1000,
                ..chatkeep::fake::FakeConfig::default()
            },
            specs,
        ))
        .expect("fake starts")
}
