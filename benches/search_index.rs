//! The search index on a 1,000,000-message personality: the time, peak
//! RSS and size of building it from the store (`chatkeep reindex`), the
//! cost of indexing 1,000 new messages after a sync, and the latency of a
//! mixed set of queries (median and p99), through the library as a web
//! view would call it, and once through the binary.
//!
//! The store is made by a `chatkeep sync` from the in-process fake service
//! (pages of 1000 to make it quick; that sync builds the index too).
//!
//! `cargo bench --bench search_index [-- MESSAGES]`

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "util/mod.rs"]
mod util;

use chatkeep::fake::PersonalitySpec;
use chatkeep::search::{SearchIndex, SearchQuery, Sort};
use util::{run_chatkeep, seconds};

const NAME: &str = "million";

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn write_config(path: &Path, base_url: &str) {
    std::fs::write(
        path,
        format!(
            "[service]\nbase_url = \"{base_url}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\
             chat_page_size = 1000\nmax_page_size = 1000\n\n\
             [storage]\ndata_dir = \"data\"\n\n\
             [rate_limit]\nrequests_per_second = 1000000.0\nburst = 1000\n\n\
             [[personality]]\nname = \"{NAME}\"\n"
        ),
    )
    .unwrap();
}

/// Bytes of the files in `dir`.
fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The queries timed: common and rare words, conjunctions, a phrase, an
/// OR, a negation, field filters, a time window, both orders.
fn queries() -> Vec<(&'static str, SearchQuery)> {
    let q = |text: &str, sort: Sort| {
        let mut query = SearchQuery::new(text);
        query.sort = sort;
        query
    };
    let mut window = q("moon", Sort::Newest);
    window.since = chrono::DateTime::from_timestamp(1_720_000_000, 0);
    window.before = chrono::DateTime::from_timestamp(1_730_000_000, 0);
    let mut one = q("river garden", Sort::Newest);
    one.personalities = vec![NAME.to_owned()];
    vec![
        ("one common word, newest", q("moon", Sort::Newest)),
        ("one common word, relevance", q("moon", Sort::Relevance)),
        ("three words (all), newest", q("moon river glacier", Sort::Newest)),
        (
            "three words (all), relevance",
            q("moon river glacier", Sort::Relevance),
        ),
        ("phrase", q("\"quiet lantern\"", Sort::Newest)),
        ("a OR b", q("saffron OR velvet", Sort::Relevance)),
        ("word -word", q("echo -harbor", Sort::Newest)),
        ("role:user word", q("role:user compass", Sort::Newest)),
        ("no match", q("xylophone", Sort::Newest)),
        ("time window", window),
        ("personality filter", one),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let messages = util::messages_arg();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fake = util::fake_with_large_pages(&runtime, vec![PersonalitySpec::new(NAME, messages)]);
    let dir = tempfile::tempdir().expect("tempdir");
    util::write_cookie(dir.path());
    let config = dir.path().join("config.toml");
    write_config(&config, &fake.base_url());
    let data = dir.path().join("data");
    let index_dir = chatkeep::search::index_dir(&data);

    let sync = run_chatkeep(&config, &["sync"]);
    let indexed_in_sync = seconds(&sync.log, "search index caught up", "seconds=");
    println!(
        "chatkeep search index benchmark: {messages} messages (synced in {:.1} s, of which indexing {:.1} s; \
         peak RSS {:.1} MiB)",
        sync.wall.as_secs_f64(),
        indexed_in_sync,
        sync.peak_rss_kib as f64 / 1024.0
    );

    let build = run_chatkeep(&config, &["reindex", NAME]);
    println!(
        "build (reindex {NAME}): {:.1} s, {:.0} msg/s, peak RSS {:.1} MiB, index {:.1} MiB \
         (chat log and segments {:.1} MiB)",
        build.wall.as_secs_f64(),
        messages as f64 / build.wall.as_secs_f64(),
        build.peak_rss_kib as f64 / 1024.0,
        mib(size_of(&index_dir)),
        mib(size_of(&data.join(NAME)) + size_of(&data.join(NAME).join("segments")))
    );

    fake.append_messages(NAME, 1000);
    let incremental = run_chatkeep(&config, &["sync", NAME]);
    let line = incremental
        .log
        .lines()
        .find(|l| l.contains("search index caught up"))
        .unwrap_or("(no catch-up logged)");
    println!(
        "incremental: sync of 1000 new messages {:.2} s wall, of which indexing {:.3} s; peak RSS {:.1} MiB; {}",
        incremental.wall.as_secs_f64(),
        seconds(&incremental.log, "search index caught up", "seconds="),
        incremental.peak_rss_kib as f64 / 1024.0,
        line.split("done=")
            .nth(1)
            .map_or("", |d| d.split(" seconds=").next().unwrap_or(""))
    );

    let opened = Instant::now();
    let index = SearchIndex::open(&data).expect("the index opens");
    println!("open the index: {:.1} ms", ms(opened.elapsed()));
    let queries = queries();
    // One warm-up pass (page cache, lazily loaded structures), then timed.
    for (_, query) in &queries {
        index.search(query).expect("search");
    }
    const ROUNDS: usize = 30;
    let mut all = Vec::new();
    println!(
        "query                           hits      median    p99   (ms, {ROUNDS} runs, 20 hits with snippets)"
    );
    for (label, query) in &queries {
        let mut times = Vec::with_capacity(ROUNDS);
        let mut total = 0;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let results = index.search(query).expect("search");
            times.push(started.elapsed());
            total = results.total;
        }
        times.sort();
        println!(
            "{label:<30} {total:>8}  {:>8.2} {:>7.2}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "all {} searches: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().expect("timed"))
    );

    let cli = run_chatkeep(&config, &["search", "moon river"]);
    println!(
        "`chatkeep search \"moon river\"` as a process: {:.0} ms wall, peak RSS {:.1} MiB",
        ms(cli.wall),
        cli.peak_rss_kib as f64 / 1024.0
    );
}
