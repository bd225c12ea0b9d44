//! Snapshot of a 1,000,000-message personality at gzip levels 1, 6 and 9:
//! wall time, throughput (uncompressed bytes put into the snapshot per
//! second), snapshot size and peak RSS of the `chatkeep archive` process;
//! then `chatkeep verify --latest` on the last one.
//!
//! The store is made by a `chatkeep sync` from the in-process fake service
//! (pages of 1000 to make it quick; the sync itself is measured by
//! `sync_million`).
//!
//! `cargo bench --bench archive_million [-- MESSAGES]`

use std::path::Path;

#[path = "util/mod.rs"]
mod util;

use chatkeep::fake::PersonalitySpec;
use util::{field, run_chatkeep, seconds};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn write_config(path: &Path, base_url: &str, level: u32) {
    std::fs::write(
        path,
        format!(
            "[service]\nbase_url = \"{base_url}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\
             chat_page_size = 1000\nmax_page_size = 1000\n\n\
             [storage]\ndata_dir = \"data\"\n\n\
             [rate_limit]\nrequests_per_second = 1000000.0\nburst = 1000\n\n\
             [archive]\ncompression_level = {level}\nskip_unchanged = false\nkeep_last = 100\n\n\
             [[personality]]\nname = \"million\"\n"
        ),
    )
    .unwrap();
}

fn main() {
    let messages = util::messages_arg();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fake = util::fake_with_large_pages(&runtime, vec![PersonalitySpec::new("million", messages)]);
    let dir = tempfile::tempdir().expect("tempdir");
    util::write_cookie(dir.path());
    let config = dir.path().join("config.toml");
    write_config(&config, &fake.base_url(), 6);

    let sync = run_chatkeep(&config, &["sync"]);
    let log_size = std::fs::metadata(dir.path().join("data/million/chat.jsonl.gz"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "chatkeep archive benchmark: {messages} messages (synced in {:.1} s; gzip chat log {:.1} MiB)",
        sync.wall.as_secs_f64(),
        mib(log_size)
    );
    println!("level  wall      throughput   snapshot     ratio   peak RSS   (measure  write  read back)");
    for level in [1, 6, 9] {
        write_config(&config, &fake.base_url(), level);
        let run = run_chatkeep(&config, &["archive", "million"]);
        let payload = field(&run.log, "snapshot written", "payload_bytes=").expect("payload_bytes logged");
        let size = field(&run.log, "snapshot written", "bytes=").expect("bytes logged");
        println!(
            "{level:>5}  {:>6.1} s  {:>6.1} MiB/s  {:>7.1} MiB  {:>5.1}%  {:>5.1} MiB   ({:>5.1} s {:>5.1} s {:>5.1} s)",
            run.wall.as_secs_f64(),
            mib(payload) / run.wall.as_secs_f64(),
            mib(size),
            100.0 * size as f64 / payload as f64,
            run.peak_rss_kib as f64 / 1024.0,
            seconds(&run.log, "chat history export measured", "seconds="),
            seconds(&run.log, "snapshot streamed", "write_seconds="),
            seconds(&run.log, "snapshot streamed", "check_seconds="),
        );
        if level == 9 {
            println!("       (uncompressed content: {:.1} MiB)", mib(payload));
        }
    }
    let verify = run_chatkeep(&config, &["verify", "million", "--latest"]);
    println!(
        "verify --latest (level 9 snapshot and the live store): {:.1} s, peak RSS {:.1} MiB",
        verify.wall.as_secs_f64(),
        verify.peak_rss_kib as f64 / 1024.0
    );
}
