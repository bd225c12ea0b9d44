//! A media backlog at the fake: N distinct files linked by one
//! personality's history, downloaded by one `chatkeep sync` of the release
//! binary with `[media] requests_per_second = 1000` (high enough to
//! measure chatkeep, not the bucket). For each backlog: files/s and MiB/s
//! of the download phase (from the fake's first media request to its last),
//! peak RSS of the chatkeep process, and the service (chat) requests per
//! second over the run and during the download phase, from the fake's log.
//!
//! Runs: 100,000, 10,000 and 1,000 files of a few KiB, then 1,000 files of
//! 1 MiB: the count and the file size each varied alone.
//!
//! `cargo bench --bench media_backlog [-- FILES]` (FILES: only that many
//! small files, one run).

use std::path::Path;
use std::time::Instant;

#[path = "util/mod.rs"]
mod util;

use chatkeep::fake::{FakeConfig, FakeMediaConfig, FakeService, PersonalitySpec};
use util::run_chatkeep;

/// Chat as polite as a user would set it; pages of 1000 keep the walk short.
const CHAT_RPS: f64 = 5.0;
const MEDIA_RPS: f64 = 1000.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The fewest messages whose links (every third an image, every fourth a
/// voice reply) plus the avatar make at least `files` distinct files.
fn messages_for(files: usize) -> (usize, usize) {
    let mut linked = 1;
    let mut messages = 0;
    while linked < files {
        linked += usize::from(messages % 3 == 0) + usize::from(messages % 4 == 1);
        messages += 1;
    }
    (messages, linked)
}

fn write_config(dir: &Path, base_url: &str) -> std::path::PathBuf {
    util::write_cookie(dir);
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[service]\nbase_url = \"{base_url}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\
             chat_page_size = 1000\nmax_page_size = 1000\n\n\
             [storage]\ndata_dir = \"data\"\n\n\
             [rate_limit]\nrequests_per_second = {CHAT_RPS:?}\nburst = 1\n\n\
             [media]\nrequests_per_second = {MEDIA_RPS:?}\n\n\
             [[personality]]\nname = \"backlog\"\n"
        ),
    )
    .unwrap();
    path
}

/// Bytes of the files in the media store, the index database aside.
fn stored_bytes(media_dir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(media_dir).expect("media dir").flatten() {
        if !entry.file_name().to_string_lossy().starts_with("index.sqlite") {
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            files += 1;
        }
    }
    (bytes, files)
}

fn run(runtime: &tokio::runtime::Runtime, files: usize, file_size: Option<usize>) {
    let (messages, linked) = messages_for(files);
    let fake = runtime
        .block_on(FakeService::start(
            FakeConfig {
                cookie: util::fake_cookie(),
                max_limit: 1000,
                media: Some(FakeMediaConfig {
                    distinct_files: true,
                    file_size,
                    ..FakeMediaConfig::default()
                }),
                ..FakeConfig::default()
            },
            vec![PersonalitySpec::new("backlog", messages)],
        ))
        .expect("fake starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &fake.base_url());
    let sync = run_chatkeep(&config, &["sync"]);

    let downloads: Vec<Instant> = fake.media().requests().iter().map(|r| r.at).collect();
    let service: Vec<Instant> = fake.requests().iter().map(|r| r.at).collect();
    let (bytes, stored) = stored_bytes(&dir.path().join("data/media"));
    let (first, last) = (downloads[0], *downloads.last().expect("downloads"));
    let phase = (last - first).as_secs_f64();
    let during = service.iter().filter(|&&t| first <= t && t <= last).count();
    let wall = sync.wall.as_secs_f64();
    let size = match file_size {
        Some(n) => format!("{:.0} KiB", n as f64 / 1024.0),
        None => "1-5 KB".to_owned(),
    };
    println!(
        "{linked:>6} {size:>8} {stored:>6} {:>8.1} {phase:>7.1} {:>7.0} {:>6.1} {:>8.1} {:>6.2} ({:>3}) {during:>6}",
        mib(bytes),
        (downloads.len() - 1) as f64 / phase,
        mib(bytes) / phase,
        sync.peak_rss_kib as f64 / 1024.0,
        (service.len() - 1) as f64 / wall,
        service.len(),
    );
}

fn main() {
    let only: Option<usize> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("chatkeep media backlog benchmark: one `chatkeep sync`, chat {CHAT_RPS}/s, media {MEDIA_RPS}/s");
    // files: distinct URLs linked (avatar included); stored: files in the
    // store; phase: first to last download request (s); chat/s: service
    // requests per second over the whole sync (their count); during: service
    // requests while the downloads ran.
    println!(" files     size stored  MiB held  phase s files/s  MiB/s RSS MiB chat/s (req) during");
    match only {
        Some(files) => run(&runtime, files, None),
        None => {
            for files in [100_000, 10_000, 1_000] {
                run(&runtime, files, None);
            }
            run(&runtime, 1_000, Some(1024 * 1024));
        }
    }
}
