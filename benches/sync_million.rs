//! Full sync of a 1,000,000-message personality from the fake service with
//! the rate limit effectively off, then an incremental sync of 10 new
//! messages on top, one that finds regenerated and deleted messages on the
//! first page, exports, and an audit of the whole history. Reports
//! messages/s, peak RSS of the chatkeep process and requests counted at the
//! fake.
//!
//! `cargo bench --bench sync_million [-- MESSAGES]`

use std::time::Instant;

#[path = "util/mod.rs"]
mod util;

use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use util::run_chatkeep;

fn main() {
    let messages = util::messages_arg();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fake = runtime
        .block_on(FakeService::start(
            FakeConfig {
                cookie: util::fake_cookie(),
                ..FakeConfig::default()
            },
            vec![PersonalitySpec::new("million", messages)],
        ))
        .expect("fake starts");
    let dir = tempfile::tempdir().expect("tempdir");
    util::write_cookie(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\nbase_url = \"{}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\n\
             [storage]\ndata_dir = \"data\"\n\n\
             [rate_limit]\nrequests_per_second = 1000000.0\nburst = 1000\n\n\
             [[personality]]\nname = \"million\"\n",
            fake.base_url()
        ),
    )
    .unwrap();

    println!("chatkeep sync benchmark: {messages} messages, page size 50, rate limit off");
    let full = run_chatkeep(&config, &["sync"]);
    let full_requests = fake.requests().len();
    let full_chat = fake.chat_requests("million");
    // The open log and any sealed segments.
    let chat_dir = dir.path().join("data/million");
    let segments = std::fs::read_dir(chat_dir.join("segments"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_else(|_| Vec::new());
    let log_size: u64 = segments
        .iter()
        .chain([&chat_dir.join("chat.jsonl.gz")])
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "full sync:        {:>8.1} s  {:>9.0} msg/s  peak RSS {:>6.1} MiB  requests {} ({} chat)  log {:.1} MiB",
        full.wall.as_secs_f64(),
        messages as f64 / full.wall.as_secs_f64(),
        full.peak_rss_kib as f64 / 1024.0,
        full_requests,
        full_chat,
        log_size as f64 / (1024.0 * 1024.0),
    );
    print!("  {}", full.stdout);

    fake.append_messages("million", 10);
    fake.clear_requests();
    let inc = run_chatkeep(&config, &["sync"]);
    println!(
        "incremental (+10): {:>7.3} s  peak RSS {:>6.1} MiB  requests {} ({} chat)",
        inc.wall.as_secs_f64(),
        inc.peak_rss_kib as f64 / 1024.0,
        fake.requests().len(),
        fake.chat_requests("million"),
    );
    print!("  {}", inc.stdout);

    // Upstream changes under the newest page: two replies regenerated, one
    // message deleted, three new ones.
    fake.regenerate_nth_newest("million", 1);
    fake.regenerate_nth_newest("million", 30);
    fake.delete_nth_newest("million", 20);
    fake.append_messages("million", 3);
    fake.clear_requests();
    let drift = run_chatkeep(&config, &["sync"]);
    println!(
        "incremental (+3, 2 regenerated, 1 deleted): {:>7.3} s  peak RSS {:>6.1} MiB  requests {} ({} chat)",
        drift.wall.as_secs_f64(),
        drift.peak_rss_kib as f64 / 1024.0,
        fake.requests().len(),
        fake.chat_requests("million"),
    );
    print!("  {}", drift.stdout);

    // The whole history walked again and compared: nothing differs.
    fake.clear_requests();
    let audit = run_chatkeep(&config, &["audit"]);
    println!(
        "audit:            {:>8.1} s  {:>9.0} msg/s  peak RSS {:>6.1} MiB  requests {} ({} chat)",
        audit.wall.as_secs_f64(),
        messages as f64 / audit.wall.as_secs_f64(),
        audit.peak_rss_kib as f64 / 1024.0,
        fake.requests().len(),
        fake.chat_requests("million"),
    );
    print!("{}", audit.stdout);

    let export_started = Instant::now();
    let export_path = dir.path().join("export.json");
    let export_path = export_path.to_str().expect("utf-8 temp path");
    let export = run_chatkeep(&config, &["export", "million", "-o", export_path]);
    println!(
        "export (json):    {:>8.1} s  {:>9.0} msg/s  peak RSS {:>6.1} MiB",
        export_started.elapsed().as_secs_f64(),
        (messages + 10) as f64 / export.wall.as_secs_f64(),
        export.peak_rss_kib as f64 / 1024.0,
    );

    // Messages a minute apart make one conversation of the whole history:
    // the worst case for a format whose summary precedes its messages.
    let conversations_path = dir.path().join("conversations.jsonl");
    let conversations_path = conversations_path.to_str().expect("utf-8 temp path");
    let args = [
        "export",
        "million",
        "--format",
        "conversations",
        "-o",
        conversations_path,
    ];
    let conversations = run_chatkeep(&config, &args);
    println!(
        "export (conversations): {:>5.1} s  {:>9.0} msg/s  peak RSS {:>6.1} MiB  (one conversation of every message)",
        conversations.wall.as_secs_f64(),
        (messages + 10) as f64 / conversations.wall.as_secs_f64(),
        conversations.peak_rss_kib as f64 / 1024.0,
    );
}
