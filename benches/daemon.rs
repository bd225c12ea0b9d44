//! Two daemon measurements, each over a minute of wall time:
//! 1. Rate-limit accuracy: 4 workers syncing 4 large personalities under
//!    `requests_per_second = 5`, `burst = 1`, measured at the fake:
//!    achieved rate / configured, closest pair of requests, busiest second.
//! 2. Idle cost: a daemon with nothing to do, CPU time and RSS over 60 s.
//!
//! `cargo bench --bench daemon [-- SECONDS]` (default 60).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "util/mod.rs"]
mod util;

use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};

fn config(dir: &Path, base_url: &str, names: &[&str], daemon: &str) -> std::path::PathBuf {
    util::write_cookie(dir);
    let mut text = format!(
        "[service]\nbase_url = \"{base_url}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\n\
         [storage]\ndata_dir = \"data\"\n\n[rate_limit]\nrequests_per_second = 5.0\nburst = 1\n\n{daemon}\n"
    );
    for n in names {
        text.push_str(&format!("\n[[personality]]\nname = \"{n}\"\n"));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chatkeep run starts")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// (CPU seconds used so far, resident KiB) of a process, from /proc.
fn cpu_and_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let names = ["w0", "w1", "w2", "w3"];
    let fake: FakeService = runtime
        .block_on(FakeService::start(
            FakeConfig {
                cookie: util::fake_cookie(),
                ..FakeConfig::default()
            },
            names.iter().map(|n| PersonalitySpec::new(*n, 50_000)).collect(),
        ))
        .expect("fake");

    // 1. Rate-limit accuracy under 4 workers.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &fake.base_url(),
        &names,
        "[daemon]\nworkers = 4\nrun_on_start = true\nschedule = \"0 0 0 1 1 *\"",
    );
    let child = start(&cfg);
    std::thread::sleep(Duration::from_secs(seconds));
    stop(child);
    let times: Vec<Instant> = fake.requests().iter().map(|r| r.at).collect();
    let span = (*times.last().unwrap() - times[0]).as_secs_f64();
    let achieved = (times.len() - 1) as f64 / span;
    let closest = times.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    let busiest = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|&&t| t < times[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    let personalities_served = names.iter().filter(|n| fake.chat_requests(n) > 0).count();
    println!(
        "rate limit: {} requests in {span:.1} s with 4 workers ({personalities_served} personalities in flight): \
         achieved {achieved:.3} req/s of 5 configured ({:.1}%), closest pair {:.1} ms, busiest second {busiest}",
        times.len(),
        100.0 * achieved / 5.0,
        closest.as_secs_f64() * 1000.0
    );

    // 2. Idle: nothing scheduled for a year.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &fake.base_url(),
        &names,
        "[daemon]\nschedule = \"0 0 0 1 1 *\"",
    );
    let child = start(&cfg);
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, _) = cpu_and_rss(child.id());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, rss) = cpu_and_rss(child.id());
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "idle daemon: {:.3} s CPU over {wall:.0} s ({:.3}% of one core), RSS {:.1} MiB",
        cpu1 - cpu0,
        100.0 * (cpu1 - cpu0) / wall,
        rss as f64 / 1024.0
    );
    stop(child);
}
