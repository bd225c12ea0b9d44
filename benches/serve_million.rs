//! `chatkeep serve` over a large history: how long a transcript page in
//! the middle of the history takes (time to first byte and to the whole
//! page, median and p99), the newest page, the personality page (its
//! activity chart counts the whole log once, then is cached), and the
//! server's peak RSS after 50 concurrent clients read random pages, for a
//! small history and a large one (the bound must not follow the history).
//!
//! The stores are made by a `chatkeep sync` from the in-process fake
//! service (pages of 1000 to make it quick).
//!
//! `cargo bench --bench serve_million [-- MESSAGES]` (default 1,000,000;
//! the small history is always 10,000).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "util/mod.rs"]
mod util;

use chatkeep::fake::PersonalitySpec;

const NAME: &str = "million";
const CLIENTS: usize = 50;
const REQUESTS_PER_CLIENT: usize = 20;

fn write_config(path: &Path, base_url: &str) {
    std::fs::write(
        path,
        format!(
            "[service]\nbase_url = \"{base_url}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\
             chat_page_size = 1000\nmax_page_size = 1000\n\n\
             [storage]\ndata_dir = \"data\"\n\n\
             [rate_limit]\nrequests_per_second = 1000000.0\nburst = 1000\n\n\
             [[personality]]\nname = \"{NAME}\"\nsections = [\"chat\"]\n"
        ),
    )
    .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Timed {
    first_byte: Duration,
    whole: Duration,
}

async fn get(client: &reqwest::Client, url: &str) -> Timed {
    let start = Instant::now();
    let response = client.get(url).send().await.expect("the server answers");
    let first_byte = start.elapsed();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    let body = response.bytes().await.expect("a body");
    assert!(!body.is_empty());
    Timed {
        first_byte,
        whole: start.elapsed(),
    }
}

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "  {label:<44} median {:>7.2} ms   p99 {:>7.2} ms   ({} requests)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        times.len()
    );
}

fn bench(runtime: &tokio::runtime::Runtime, messages: usize) {
    let fake = util::fake_with_large_pages(runtime, vec![PersonalitySpec::new(NAME, messages)]);
    let dir = tempfile::tempdir().expect("tempdir");
    util::write_cookie(dir.path());
    let config = dir.path().join("config.toml");
    write_config(&config, &fake.base_url());
    let sync = util::run_chatkeep(&config, &["sync"]);
    let first = fake.ground_truth(NAME).first().cloned().unwrap();
    let last = fake.ground_truth(NAME).last().cloned().unwrap();
    let ts = |m: &str| chatkeep::message::Message::stored_keys(m).unwrap().1.as_f64();
    let (oldest, newest) = (ts(&first), ts(&last));
    println!(
        "\n{messages} messages (synced in {:.1} s), history from {} to {}",
        sync.wall.as_secs_f64(),
        chrono::DateTime::from_timestamp(oldest as i64, 0)
            .unwrap()
            .date_naive(),
        chrono::DateTime::from_timestamp(newest as i64, 0)
            .unwrap()
            .date_naive()
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn,chatkeep=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("serve says where")
        .trim_end_matches('/')
        .to_owned();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s).ok();
        s
    });

    runtime.block_on(async {
        let client = reqwest::Client::new();
        let chat = format!("{base}/p/{NAME}/chat");
        // The personality page: the chart's first count reads the log.
        let cold = get(&client, &format!("{base}/p/{NAME}")).await;
        let warm = get(&client, &format!("{base}/p/{NAME}")).await;
        println!(
            "  personality page, first (counts the log)     {:>9.1} ms;  again (cached) {:.2} ms",
            ms(cold.whole),
            ms(warm.whole)
        );
        let mut newest_page = Vec::new();
        for _ in 0..50 {
            newest_page.push(get(&client, &chat).await.whole);
        }
        summary("newest transcript page, whole page", newest_page);
        // Pages in the middle of the history (around the 45-55 % mark).
        let mut first_byte = Vec::new();
        let mut whole = Vec::new();
        for i in 0..100 {
            let at = oldest + (newest - oldest) * (0.45 + 0.001 * f64::from(i));
            let t = get(&client, &format!("{chat}?at={at}&skip=0")).await;
            first_byte.push(t.first_byte);
            whole.push(t.whole);
        }
        summary("middle transcript page, first byte", first_byte);
        summary("middle transcript page, whole page", whole);

        // 50 clients at once, each reading random pages.
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let client = client.clone();
            let chat = chat.clone();
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for r in 0..REQUESTS_PER_CLIENT {
                    let f = ((c * 7919 + r * 104_729) % 1000) as f64 / 1000.0;
                    let at = oldest + (newest - oldest) * f;
                    times.push(get(&client, &format!("{chat}?at={at}&skip=0")).await.whole);
                }
                times
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed();
        let n = all.len();
        summary(&format!("{CLIENTS} concurrent clients, random pages"), all);
        println!(
            "  {n} pages in {:.2} s: {:.0} pages/s",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64()
        );
    });

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let log = log.join().unwrap();
    let peak = util::field(&log, "exiting", "peak_rss_kib=").expect("serve logs its peak RSS");
    println!("  serve peak RSS {:.1} MiB", peak as f64 / 1024.0);
}

fn main() {
    let messages = util::messages_arg();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("chatkeep serve benchmark (release build)");
    bench(&runtime, 10_000);
    bench(&runtime, messages);
}
