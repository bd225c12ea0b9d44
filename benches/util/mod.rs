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

/// The number after `key` on the first log line holding `line`.
pub fn field(log: &str, line: &str, key: &str) -> Option<u64> {
    log.lines().filter(|l| l.contains(line)).find_map(|l| {
        l.split(key)
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}
