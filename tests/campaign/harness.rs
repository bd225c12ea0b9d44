//! The crash-and-fault campaign: from a seed, a history at the fake service
//! (ties, unknown fields, hostile unicode, either `before_ts` semantics, any
//! page order), then real `chatkeep` processes killed with SIGKILL at
//! random points while the fake injects faults, rotates the cookie and
//! keeps receiving new messages. At the end, against the fake's ground
//! truth: every message exactly once, byte-faithful, in order; the store
//! consistent; requests within the rate limit.
//!
//! Shared by the short fixed-seed test (`tests/campaign/main.rs`) and the
//! long form (`cargo bench --bench campaign -- --seeds N`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chatkeep::export::{self, ExportMeta, Format};
use chatkeep::fake::{
    BeforeTs, FakeConfig, FakeService, Fault, FaultPlan, PageOrder, PersonalitySpec, RetryAfter,
};
use chatkeep::message::{Message, minify};
use chatkeep::store::ChatStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COOKIE_NAME: &str = "__Secure-better-auth.session_token";
/// Configured rate: the fake checks every one-second window against it.
const RPS: f64 = 150.0;
const BURST: u32 = 5;

/// What one seed did.
#[derive(Debug, Default, Clone)]
pub struct SeedReport {
    pub seed: u64,
    pub runs: u32,
    pub kills: u32,
    pub faults: usize,
    pub messages: usize,
    pub rotations: u32,
    /// Cookie re-pasted after a kill lost a rotation (see `run_seed`).
    pub repastes: u32,
    pub requests: usize,
    pub lost: usize,
    pub doubled: usize,
    /// `archive` and `prune` runs killed midway.
    pub archive_kills: u32,
}

impl std::fmt::Display for SeedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} runs, {} kills ({} of archive/prune), {} faults, {} rotations ({} re-pasted), {} messages, {} requests, {} lost, {} doubled",
            self.seed,
            self.runs,
            self.kills,
            self.archive_kills,
            self.faults,
            self.rotations,
            self.repastes,
            self.messages,
            self.requests,
            self.lost,
            self.doubled
        )
    }
}

fn spec(rng: &mut StdRng) -> PersonalitySpec {
    let messages = rng.random_range(200..2500);
    let mut spec = PersonalitySpec::new("camp", messages);
    spec.extra_fields = rng.random_bool(0.5);
    spec.hostile_unicode = rng.random_bool(0.5);
    // Non-overlapping tie groups, some larger than a page.
    let mut at = rng.random_range(0..60usize);
    while at + 70 < messages {
        let size = *[2usize, 3, 49, 50, 51, 60]
            .get(rng.random_range(0..6))
            .unwrap_or(&2);
        spec.tie_groups.push((at, size));
        at += size + rng.random_range(20..400);
    }
    spec
}

fn faults(rng: &mut StdRng) -> FaultPlan {
    FaultPlan {
        script: Vec::new(),
        probability: rng.random_range(0.02..0.12),
        random: vec![
            Fault::ServerError(500),
            Fault::ServerError(503),
            Fault::Reset,
            Fault::Truncated,
            Fault::Slow(Duration::from_millis(30)),
            Fault::RateLimited {
                retry_after: RetryAfter::Seconds(0),
            },
            Fault::RateLimited {
                retry_after: RetryAfter::None,
            },
        ],
        only_chat: false,
    }
}

fn write_config(dir: &Path, base_url: &str, token: &str) -> std::path::PathBuf {
    let cookie = dir.join("cookie");
    std::fs::write(&cookie, token).unwrap();
    std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[service]\nbase_url = \"{base_url}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\
             initial_backoff = \"5ms\"\nmax_backoff = \"40ms\"\nmax_retries = 8\n\n\
             [storage]\ndata_dir = \"data\"\n\n\
             [rate_limit]\nrequests_per_second = {RPS:?}\nburst = {BURST}\n\n\
             [archive]\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n\n\
             [[personality]]\nname = \"camp\"\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `chatkeep sync`; with `kill_after`, SIGKILLs it after that long
/// (if still running). Returns when it started and its exit code (`None`
/// when killed).
fn sync(config: &Path, kill_after: Option<Duration>) -> (Instant, Option<i32>) {
    run(config, "sync", kill_after)
}

/// Runs `chatkeep <command>` the same way.
fn run(config: &Path, command: &str, kill_after: Option<Duration>) -> (Instant, Option<i32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--config")
        .arg(config)
        .args(["-q", command])
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chatkeep starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (started, status.code());
        }
        if kill_after.is_some_and(|k| started.elapsed() >= k) {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return (started, None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The one-second window that most exceeds what the token bucket allows:
/// `rps` tokens a second plus one `burst`, whatever the number of
/// processes that ran in the window (each goes on with the bucket the last
/// one saved in `rate_limit.state`, so a restart brings no new burst).
/// Returns (requests, allowed) of that window.
pub fn worst_second(times: &[Instant], rps: usize, burst: usize) -> (usize, usize) {
    let allowed = rps + burst;
    let mut worst = 0;
    for (i, &from) in times.iter().enumerate() {
        let to = from + Duration::from_secs(1);
        worst = worst.max(times[i..].iter().take_while(|&&t| t < to).count());
    }
    (worst, allowed)
}

/// One seed of the campaign. Panics with a description on any broken promise.
pub async fn run_seed(seed: u64, kills: u32) -> SeedReport {
    let mut rng = StdRng::seed_from_u64(seed);
    let before_ts = if rng.random_bool(0.5) {
        BeforeTs::Strict
    } else {
        BeforeTs::Inclusive
    };
    let order = match rng.random_range(0..3) {
        0 => PageOrder::NewestFirst,
        1 => PageOrder::OldestFirst,
        _ => PageOrder::Shuffled,
    };
    let mut token = format!("token-{seed}-0");
    let fake = FakeService::start(
        FakeConfig {
            seed,
            before_ts,
            order,
            cookie: Some((COOKIE_NAME.into(), token.clone())),
            faults: faults(&mut rng),
            ..FakeConfig::default()
        },
        vec![spec(&mut rng)],
    )
    .await
    .expect("fake starts");
    if rng.random_bool(0.5) {
        fake.grow_while_walking("camp", rng.random_range(3..20), rng.random_range(1..30));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &fake.base_url(), &token);
    let mut report = SeedReport {
        seed,
        ..SeedReport::default()
    };

    for i in 0..kills {
        if rng.random_bool(0.5) {
            fake.append_messages("camp", rng.random_range(1..400));
        }
        if rng.random_bool(0.03) {
            report.rotations += 1;
            let next = format!("token-{seed}-{}", i + 1);
            fake.rotate_cookie(&next);
            token = next;
        }
        // Now and then a snapshot or a prune, killed midway as often as not.
        if rng.random_bool(0.2) {
            let command = if rng.random_bool(0.6) { "archive" } else { "prune" };
            let kill = Duration::from_millis(rng.random_range(2..40));
            let config = config.clone();
            let (_, code) = tokio::task::spawn_blocking(move || run(&config, command, Some(kill)))
                .await
                .expect("join");
            report.runs += 1;
            match code {
                None => {
                    report.kills += 1;
                    report.archive_kills += 1;
                }
                // 1: a personality not yet synced has nothing to snapshot.
                Some(0) | Some(1) => {}
                Some(other) => panic!("seed {seed}: chatkeep {command} exited {other}"),
            }
        }
        let kill_after = Duration::from_millis(rng.random_range(3..150));
        let config = config.clone();
        let (_, code) = tokio::task::spawn_blocking(move || sync(&config, Some(kill_after)))
            .await
            .expect("join");
        report.runs += 1;
        match code {
            None => report.kills += 1,
            Some(0) | Some(1) => {}
            // A kill between receiving a rotated cookie and saving it loses
            // the session, as it would for a person: paste the current one.
            Some(3) => {
                report.repastes += 1;
                let current = fake.cookie().map(|(_, t)| t).unwrap_or_else(|| token.clone());
                write_config(dir.path(), &fake.base_url(), &current);
            }
            Some(other) => panic!("seed {seed}: chatkeep exited {other}"),
        }
    }

    // The end: no faults, no growth, runs to completion.
    fake.set_faults(FaultPlan::default());
    fake.grow_while_walking("camp", 0, 0);
    let mut finished = false;
    for _ in 0..3 {
        let config = config.clone();
        let (_, code) = tokio::task::spawn_blocking(move || sync(&config, None))
            .await
            .expect("join");
        report.runs += 1;
        match code {
            Some(0) => {
                finished = true;
                break;
            }
            Some(3) => {
                report.repastes += 1;
                let current = fake.cookie().map(|(_, t)| t).unwrap_or_default();
                write_config(dir.path(), &fake.base_url(), &current);
            }
            other => panic!("seed {seed}: final sync exited {other:?}"),
        }
    }
    assert!(finished, "seed {seed}: the final sync never succeeded");

    let requests = fake.requests();
    report.requests = requests.len();
    report.faults = requests.iter().filter(|r| r.fault.is_some()).count();
    let times: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    let (requests_in_window, allowed) = worst_second(&times, RPS as usize, BURST as usize);
    assert!(
        requests_in_window <= allowed,
        "seed {seed}: {requests_in_window} requests in one second, the bucket allows {allowed}"
    );

    // Against the ground truth: every message exactly once, byte-faithful, in order.
    // A snapshot of the final state, then verify: every snapshot, old ones
    // written by killed runs included, and the live store.
    for command in ["archive", "verify"] {
        let config = config.clone();
        let (_, code) = tokio::task::spawn_blocking(move || run(&config, command, None))
            .await
            .expect("join");
        assert_eq!(code, Some(0), "seed {seed}: chatkeep {command} failed");
    }

    let store = ChatStore::open(&dir.path().join("data/camp")).expect("store opens");
    let mut out = Vec::new();
    export::write(
        &store,
        &ExportMeta {
            shape_id: "",
            shape_name: "camp",
        },
        Format::Jsonl,
        &mut out,
    )
    .unwrap_or_else(|e| panic!("seed {seed}: export: {e}"));
    let exported: Vec<String> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect();
    let mut truth: Vec<String> = fake.ground_truth("camp").iter().map(|m| minify(m)).collect();
    report.messages = truth.len();
    let mut got = exported.clone();
    got.sort();
    truth.sort();
    let mut unique = got.clone();
    unique.dedup();
    report.doubled = got.len() - unique.len();
    report.lost = truth.iter().filter(|m| unique.binary_search(m).is_err()).count();
    if report.doubled > 0 && std::env::var_os("CAMPAIGN_DEBUG").is_some() {
        for w in got.windows(2).filter(|w| w[0] == w[1]) {
            let m = Message::from_stored_line(&w[0]).unwrap();
            let pos: Vec<usize> = exported
                .iter()
                .enumerate()
                .filter(|(_, l)| **l == w[0])
                .map(|(i, _)| i)
                .collect();
            eprintln!(
                "doubled {} ts {} at export lines {:?} of {}",
                m.id.as_str(),
                m.ts,
                pos,
                exported.len()
            );
        }
        eprintln!("before_ts {before_ts:?} order {order:?}");
        let dump = dir.keep();
        eprintln!("data kept in {}", dump.display());
    }
    assert_eq!((report.lost, report.doubled), (0, 0), "seed {seed}: {report}");
    assert_eq!(
        unique, truth,
        "seed {seed}: stored messages differ from the ground truth"
    );
    let ts: Vec<f64> = exported
        .iter()
        .map(|l| {
            Message::from_stored_line(l)
                .expect("stored line parses")
                .ts
                .as_f64()
        })
        .collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "seed {seed}: chat log out of order"
    );
    assert_eq!(
        store.state().message_count as usize,
        exported.len(),
        "seed {seed}: state disagrees with the log"
    );
    assert!(
        !store.has_pending_walk(),
        "seed {seed}: a walk spool was left behind"
    );
    fake.shutdown().await;
    report
}
