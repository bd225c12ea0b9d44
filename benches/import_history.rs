//! `chatkeep import` of an earlier script's `_chat_history.json`: a file of
//! N messages (the script's export format, pretty-printed as it wrote it),
//! imported by the release binary into an empty backup. For each size:
//! file size, wall time, messages/s and the peak RSS of the chatkeep
//! process, which should not grow with N.
//!
//! Runs: 10,000, 100,000 and 1,000,000 messages.
//!
//! `cargo bench --bench import_history [-- MESSAGES]` (one run of that many).

use std::io::Write;
use std::path::Path;

#[path = "util/mod.rs"]
mod util;

use util::run_chatkeep;

/// Writes an export of `n` messages, oldest first, pretty-printed (the
/// messages' fields one a line, as `json.dump(..., indent=2)` lays them
/// out), each with a user line and a reply of some length and a
/// Python-style `ts`.
fn write_export(path: &Path, n: usize) -> u64 {
    let file = std::fs::File::create(path).expect("create export");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(
        out,
        "{{\n  \"shape_id\": \"bench-id\",\n  \"shape_name\": \"bench\",\n  \"message_count\": {n},\n  \"messages\": ["
    )
    .unwrap();
    for i in 0..n {
        let ts = 1_600_000_000.0 + i as f64 * 37.25;
        let words = 8 + i % 40;
        let message: String = (0..words)
            .map(|w| format!("word{} ", (i * 7 + w) % 997))
            .collect();
        let reply: String = (0..words * 2)
            .map(|w| format!("reply{} ", (i * 3 + w) % 991))
            .collect();
        let comma = if i + 1 < n { "," } else { "" };
        writeln!(
            out,
            "    {{\n      \"id\": \"m{i:08}\",\n      \"message\": \"{message}\",\n      \"reply\": \"{reply}\",\n      \
             \"ts\": {ts:?},\n      \"attachment_url\": null,\n      \"voice_reply_url\": null\n    }}{comma}"
        )
        .unwrap();
    }
    writeln!(out, "  ],\n  \"export_date\": \"2024-12-13T12:00:00.000Z\"\n}}").unwrap();
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn run(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    util::write_cookie(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[service]\nbase_url = \"http://127.0.0.1:9\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\n\
         [storage]\ndata_dir = \"data\"\n\n[[personality]]\nname = \"bench\"\n",
    )
    .unwrap();
    let export = dir.path().join("bench_chat_history.json");
    let size = write_export(&export, n);
    let export = export.to_string_lossy().into_owned();
    let run = run_chatkeep(&config, &["import", "bench", &export, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("a JSON report");
    assert_eq!(report["chat"]["added"], n as u64, "{}", run.stdout);
    let wall = run.wall.as_secs_f64();
    println!(
        "{n:>9} {:>9.1} {wall:>8.1} {:>10.0} {:>8.1}",
        size as f64 / (1024.0 * 1024.0),
        n as f64 / wall,
        run.peak_rss_kib as f64 / 1024.0
    );
}

fn main() {
    let only: Option<usize> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    println!(
        "chatkeep import benchmark: an earlier script's pretty-printed _chat_history.json into an empty backup"
    );
    println!(" messages  file MiB   wall s  messages/s  RSS MiB");
    match only {
        Some(n) => run(n),
        None => {
            for n in [10_000, 100_000, 1_000_000] {
                run(n);
            }
        }
    }
}
