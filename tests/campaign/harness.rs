//! The crash-and-fault campaign: from a seed, a history at the fake service
//! (ties, unknown fields, hostile unicode, either `before_ts` semantics, any
//! page order), then real `chatkeep` processes killed with SIGKILL at
//! random points while the fake injects faults (empty `[]` answers
//! included), rotates the cookie, keeps receiving new messages and changes
//! its history as a service does (promise 10): replies regenerated,
//! messages deleted, older history inserted below the oldest, now and then
//! a chat reset. Syncs probe below the oldest message at every run
//! (`tail_check = "0s"`), so tail walks are killed too.
//!
//! After every run, killed or not, the store's committed state holds every
//! id it ever held, once. At the end (faults, growth and edits off) a sync
//! runs to completion, `chatkeep audit --repair` adopts what the syncs
//! could not see and a second audit finds nothing; then, against the fake's
//! ground truth: every current message stored exactly once, its current
//! version byte-faithful, in order; every stored message the service no
//! longer has marked deleted, none removed; the store consistent; requests
//! within the rate limit.
//!
//! `CAMPAIGN_DEBUG=1` keeps each seed's data directory and prints where
//! the time goes.
//!
//! Shared by the short fixed-seed test (`tests/campaign/main.rs`) and the
//! long form (`cargo bench --bench campaign -- --seeds N`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chatkeep::export::{self, ExportMeta, ExportOptions, Format};
use chatkeep::fake::{
    BeforeTs, FakeConfig, FakeService, Fault, FaultPlan, PageOrder, PersonalitySpec, RequestRecord,
    RetryAfter,
};
use chatkeep::message::minify;
use chatkeep::store::ChatStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COOKIE_NAME: &str = "__Secure-better-auth.session_token";
const NAME: &str = "camp";
/// Configured rate: the fake checks every one-second window against it.
const RPS: f64 = 150.0;
const BURST: u32 = 5;
/// The newest this many messages are where edits upstream are likeliest
/// (and where a sync's refreshed range sees them).
const NEWEST: usize = 60;

/// What one seed did.
#[derive(Debug, Default, Clone)]
pub struct SeedReport {
    pub seed: u64,
    pub runs: u32,
    pub kills: u32,
    pub faults: usize,
    /// Of the faults: `200 []` answered to a chat request.
    pub empty_answers: usize,
    /// Of those: `[]` answered to two chat requests in a row (the second
    /// one confirming the first), as scripted now and then.
    pub double_lies: u32,
    /// Messages the service holds at the end.
    pub messages: usize,
    /// Messages the backup holds at the end (current versions, those gone
    /// upstream included).
    pub stored: usize,
    pub rotations: u32,
    /// Cookie re-pasted after a kill lost a rotation (see `run_seed`).
    pub repastes: u32,
    pub requests: usize,
    pub lost: usize,
    pub doubled: usize,
    /// `archive` and `prune` runs killed midway.
    pub archive_kills: u32,
    /// `audit --repair` runs killed midway.
    pub audit_kills: u32,
    /// Edits made upstream: replies regenerated, messages deleted, messages
    /// inserted below the oldest, chat resets.
    pub regenerations: u32,
    pub deletions: u32,
    pub inserted_older: usize,
    pub resets: u32,
    /// Found in the backup at the end: messages with earlier versions kept
    /// (and how many earlier versions), messages marked deleted upstream,
    /// inserted older messages stored.
    pub revised: usize,
    pub earlier_versions: usize,
    pub marked_deleted: usize,
    pub older_found: usize,
    /// What the first audit after the final sync found differing (missing,
    /// changed, gone upstream, back upstream): left for the audit to repair.
    pub audit_differed: u64,
}

impl SeedReport {
    /// Adds the counts of `other` (one more seed) to these totals.
    pub fn add(&mut self, other: &SeedReport) {
        self.runs += other.runs;
        self.kills += other.kills;
        self.archive_kills += other.archive_kills;
        self.audit_kills += other.audit_kills;
        self.faults += other.faults;
        self.empty_answers += other.empty_answers;
        self.double_lies += other.double_lies;
        self.messages += other.messages;
        self.stored += other.stored;
        self.rotations += other.rotations;
        self.repastes += other.repastes;
        self.requests += other.requests;
        self.lost += other.lost;
        self.doubled += other.doubled;
        self.regenerations += other.regenerations;
        self.deletions += other.deletions;
        self.inserted_older += other.inserted_older;
        self.resets += other.resets;
        self.revised += other.revised;
        self.earlier_versions += other.earlier_versions;
        self.marked_deleted += other.marked_deleted;
        self.older_found += other.older_found;
        self.audit_differed += other.audit_differed;
    }

    /// The counts, as one line: a seed's after its number, or a campaign's
    /// totals.
    pub fn counts(&self) -> String {
        format!(
            "{} runs, {} kills ({} of archive/prune, {} of audits), {} faults ({} empty answers, {} double lies), \
             {} rotations ({} re-pasted); upstream {} regenerations, {} deletions, {} older inserted, {} resets; \
             {} messages, {} stored ({} revised with {} earlier versions, {} marked deleted, {} older found), \
             audit repaired {}, {} requests, {} lost, {} doubled",
            self.runs,
            self.kills,
            self.archive_kills,
            self.audit_kills,
            self.faults,
            self.empty_answers,
            self.double_lies,
            self.rotations,
            self.repastes,
            self.regenerations,
            self.deletions,
            self.inserted_older,
            self.resets,
            self.messages,
            self.stored,
            self.revised,
            self.earlier_versions,
            self.marked_deleted,
            self.older_found,
            self.audit_differed,
            self.requests,
            self.lost,
            self.doubled
        )
    }
}

impl std::fmt::Display for SeedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {}: {}", self.seed, self.counts())
    }
}

fn spec(rng: &mut StdRng) -> PersonalitySpec {
    let messages = rng.random_range(200..2500);
    let mut spec = PersonalitySpec::new(NAME, messages);
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
            // Only chat requests are emptied; others are left alone. Three
            // times: most requests of a run killed early are not chat
            // requests.
            Fault::EmptyPage,
            Fault::EmptyPage,
            Fault::EmptyPage,
        ],
        only_chat: false,
    }
}

/// The campaign's config in `dir`, with `sync` as the body of its `[sync]`
/// table.
fn write_config(dir: &Path, base_url: &str, token: &str, sync: &str) -> PathBuf {
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
             [sync]\n{sync}\n\n\
             [archive]\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n\n\
             [[personality]]\nname = \"{NAME}\"\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `chatkeep sync`; with `kill_after`, SIGKILLs it after that long
/// (if still running). Returns its exit code (`None` when killed).
fn sync(config: &Path, kill_after: Option<Duration>) -> Option<i32> {
    run(config, &["sync"], kill_after)
}

/// Runs `chatkeep <args>` the same way.
fn run(config: &Path, args: &[&str], kill_after: Option<Duration>) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--config")
        .arg(config)
        .arg("-q")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chatkeep starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if kill_after.is_some_and(|k| started.elapsed() >= k) {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `chatkeep audit [--repair] --json` to completion: its exit code and
/// the row of the one personality.
fn audit(config: &Path, repair: bool) -> (Option<i32>, serde_json::Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatkeep"));
    command
        .arg("--config")
        .arg(config)
        .args(["-q", "audit", "--json"])
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY");
    if repair {
        command.arg("--repair");
    }
    let out = command.output().expect("chatkeep audit runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "chatkeep audit --json printed no report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report["personalities"][0].clone())
}

/// What the audit row counts as differing.
fn differing(row: &serde_json::Value) -> u64 {
    ["missing", "changed", "gone_upstream", "back_upstream"]
        .iter()
        .map(|k| row[k].as_u64().unwrap_or(0))
        .sum()
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

/// One exported line, as far as the campaign reads it.
#[derive(serde::Deserialize)]
struct Line {
    id: String,
    ts: f64,
    #[serde(rename = "_chatkeep", default)]
    note: Option<Note>,
}

/// chatkeep's own note on an exported line.
#[derive(serde::Deserialize)]
struct Note {
    deleted_upstream_at: Option<String>,
    superseded_at: Option<String>,
    position_ts: Option<f64>,
}

impl Line {
    fn parse(line: &str) -> Line {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("exported line {line}: {e}"))
    }

    fn note(&self) -> &Note {
        static NONE: Note = Note {
            deleted_upstream_at: None,
            superseded_at: None,
            position_ts: None,
        };
        self.note.as_ref().unwrap_or(&NONE)
    }

    /// Where the message stands in the history.
    fn place(&self) -> f64 {
        self.note().position_ts.unwrap_or(self.ts)
    }
}

/// The committed history of the store in `store_dir` as exported (JSON
/// Lines) with `options`; empty when nothing was ever committed.
fn export_lines(store_dir: &Path, options: &ExportOptions) -> Vec<String> {
    let store = ChatStore::open_read_only(store_dir)
        .unwrap_or_else(|e| panic!("the store in {} does not open: {e}", store_dir.display()));
    let mut out = Vec::new();
    export::write_with(
        &store,
        &ExportMeta {
            shape_id: "",
            shape_name: NAME,
            display_name: None,
        },
        Format::Jsonl,
        options,
        &mut out,
    )
    .unwrap_or_else(|e| panic!("export: {e}"));
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The id of every message the committed store in `store_dir` holds
/// (current versions, those gone upstream included), in order: what the
/// default export writes, read without writing it.
fn stored_ids(store_dir: &Path) -> Vec<String> {
    let store = ChatStore::open_read_only(store_dir)
        .unwrap_or_else(|e| panic!("the store in {} does not open: {e}", store_dir.display()));
    let history = store
        .history_with_keys()
        .unwrap_or_else(|e| panic!("reading the store: {e}"));
    history
        .map(|entry| {
            let entry = entry.unwrap_or_else(|e| panic!("reading the store: {e}"));
            let key = entry.key.expect("history_with_keys gives keys");
            key.id.as_str().to_owned()
        })
        .collect()
}

/// Ids exported more than once, with their counts.
fn doubles<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        *counts.entry(id).or_default() += 1;
    }
    let mut doubled: Vec<(&str, usize)> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    doubled.sort();
    doubled
}

/// What the campaign knows of the store between runs.
#[derive(Default)]
struct Stored {
    /// Every id the store ever held: it never removes one.
    ever: HashSet<String>,
    /// The newest stored ids, oldest first: where edits upstream meet a
    /// backup that already holds the message.
    newest: Vec<String>,
    /// The committed state last checked (`chat_state.json`).
    state: Option<Vec<u8>>,
    /// Checks that read the store, the largest store read, and the time
    /// spent reading (shown with `CAMPAIGN_DEBUG`).
    reads: u32,
    largest: usize,
    reading: Duration,
}

impl Stored {
    /// Checks the committed store after a run: no id twice, and every id
    /// ever stored still there (a message once stored is never removed).
    ///
    /// What a reader sees is the committed state: `chat_state.json` names
    /// every file and length it reads, and those never change below a
    /// committed length (sealed segments, overlay generations, the log's
    /// committed prefix). So while that file's bytes are unchanged the
    /// check has nothing new to read and is skipped: most killed runs
    /// commit nothing, and a store of thousands of messages takes a while
    /// to read in a debug build.
    fn check(&mut self, seed: u64, when: &str, store_dir: &Path) {
        let state = std::fs::read(store_dir.join("chat_state.json")).ok();
        if state.is_some() && state == self.state {
            return;
        }
        let started = Instant::now();
        let ids = stored_ids(store_dir);
        let doubled = doubles(ids.iter().map(String::as_str));
        assert!(
            doubled.is_empty(),
            "seed {seed}, {when}: ids stored twice: {doubled:?}"
        );
        let now: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut gone: Vec<&String> = self.ever.iter().filter(|id| !now.contains(id.as_str())).collect();
        gone.sort();
        assert!(
            gone.is_empty(),
            "seed {seed}, {when}: {} stored messages were removed, such as {:?}",
            gone.len(),
            &gone[..gone.len().min(5)]
        );
        self.newest = ids[ids.len().saturating_sub(NEWEST)..].to_vec();
        self.largest = self.largest.max(ids.len());
        self.ever.extend(ids);
        self.state = state;
        self.reads += 1;
        self.reading += started.elapsed();
    }
}

/// Edits the fake's history between two runs, as a service's users and
/// operators do: regenerations and deletions, mostly among the newest
/// messages (upstream's, and the newest the backup holds, which may be
/// older after a kill) and now and then deep in the history; older history
/// inserted below the oldest; rarely a chat reset. Keeps at least some
/// history.
fn edit_upstream(
    fake: &FakeService,
    rng: &mut StdRng,
    stored: &Stored,
    report: &mut SeedReport,
    older: &mut HashSet<String>,
) {
    let len = fake.message_count(NAME);
    if len > 0 && rng.random_bool(0.15) {
        fake.regenerate_nth_newest(NAME, rng.random_range(0..len.min(NEWEST)));
        report.regenerations += 1;
    }
    if !stored.newest.is_empty() && rng.random_bool(0.2) {
        for _ in 0..rng.random_range(1..=3) {
            let id = &stored.newest[rng.random_range(0..stored.newest.len())];
            // False when it is gone upstream already.
            if fake.regenerate(NAME, id) {
                report.regenerations += 1;
            }
        }
    }
    if len > 0 && rng.random_bool(0.05) {
        fake.regenerate_nth_newest(NAME, rng.random_range(0..len));
        report.regenerations += 1;
    }
    if len > 20 && rng.random_bool(0.1) {
        for _ in 0..rng.random_range(1..=3) {
            let len = fake.message_count(NAME);
            fake.delete_nth_newest(NAME, rng.random_range(0..len.min(NEWEST)));
            report.deletions += 1;
        }
    }
    if len > 20 && !stored.newest.is_empty() && rng.random_bool(0.1) {
        let id = &stored.newest[rng.random_range(0..stored.newest.len())];
        report.deletions += fake.delete(NAME, &[id]) as u32;
    }
    if len > 20 && rng.random_bool(0.05) {
        for _ in 0..rng.random_range(1..=5) {
            let len = fake.message_count(NAME);
            fake.delete_nth_newest(NAME, rng.random_range(0..len));
            report.deletions += 1;
        }
    }
    if rng.random_bool(0.06) {
        let k = rng.random_range(1..150);
        fake.insert_older(NAME, k);
        older.extend(fake.message_ids(NAME).into_iter().take(k));
        report.inserted_older += k;
    }
    if rng.random_bool(0.004) {
        fake.reset_chat(NAME);
        fake.append_messages(NAME, rng.random_range(20..300));
        report.resets += 1;
    }
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
    let plan = faults(&mut rng);
    let fake = FakeService::start(
        FakeConfig {
            seed,
            before_ts,
            order,
            cookie: Some((COOKIE_NAME.into(), token.clone())),
            faults: plan.clone(),
            ..FakeConfig::default()
        },
        vec![spec(&mut rng)],
    )
    .await
    .expect("fake starts");
    if rng.random_bool(0.5) {
        fake.grow_while_walking(NAME, rng.random_range(3..20), rng.random_range(1..30));
    }
    // Tail walks at every sync, so that they are killed too; in some seeds
    // a refreshed range wider than the first page.
    let sync_table = if rng.random_bool(0.5) {
        "tail_check = \"0s\"\nrefresh = 120"
    } else {
        "tail_check = \"0s\""
    };
    // CAMPAIGN_DEBUG=1 keeps the data directory for a look afterwards.
    let debug = std::env::var_os("CAMPAIGN_DEBUG").is_some();
    let dir = tempfile::Builder::new()
        .prefix("campaign")
        .disable_cleanup(debug)
        .tempdir()
        .expect("tempdir");
    let config = write_config(dir.path(), &fake.base_url(), &token, sync_table);
    let store_dir = dir.path().join("data").join(NAME);
    let mut report = SeedReport {
        seed,
        ..SeedReport::default()
    };
    // What the store held, and the ids of the messages inserted below the
    // oldest.
    let mut stored = Stored::default();
    let started = Instant::now();
    let mut older = HashSet::new();

    for i in 0..kills {
        // Half as many new messages as the campaign once added: the final
        // sync, two audits, the snapshot, verify and the checks each read
        // the whole history, in a debug build.
        if rng.random_bool(0.5) {
            fake.append_messages(NAME, rng.random_range(1..200));
        }
        edit_upstream(&fake, &mut rng, &stored, &mut report, &mut older);
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
            let code = tokio::task::spawn_blocking(move || run(&config, &[command], Some(kill)))
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
        // Now and then an audit with repair, killed midway: its walk stays
        // in audit.spool, and the next audit resumes it only if no sync
        // committed meanwhile (tests/drift.rs, `an_audit_interrupted_*`).
        if rng.random_bool(0.08) {
            let kill = Duration::from_millis(rng.random_range(20..600));
            let config = config.clone();
            let code = tokio::task::spawn_blocking(move || run(&config, &["audit", "--repair"], Some(kill)))
                .await
                .expect("join");
            report.runs += 1;
            match code {
                None => {
                    report.kills += 1;
                    report.audit_kills += 1;
                }
                // 1: it differed, or it broke off (an error of the service);
                // 3: the cookie changed under it (the next sync re-pastes).
                Some(0) | Some(1) | Some(3) => {}
                Some(other) => panic!("seed {seed}: chatkeep audit --repair exited {other}"),
            }
        }
        // Most runs are killed early (starting, the small sections, the
        // first pages); one in seven gets long enough to commit now and then.
        let long = rng.random_bool(0.15);
        let kill_after = if long {
            rng.random_range(150..1000)
        } else {
            rng.random_range(3..150)
        };
        let kill_after = Duration::from_millis(kill_after);
        // Now and then a replica that answers `[]` twice in a row, which the
        // walk's confirmation believes: a hole to be found by the probe
        // below the oldest or by the audit. Mostly in long runs, which get
        // as far as the chat requests.
        let lie = rng.random_bool(if long { 0.3 } else { 0.03 });
        if lie {
            // A zero-length `Slow` is no fault at all: it places the lie at
            // a chat request further on.
            let mut script = vec![Fault::Slow(Duration::ZERO); rng.random_range(0..6)];
            script.extend([Fault::EmptyPage, Fault::EmptyPage]);
            fake.set_faults(FaultPlan {
                script,
                only_chat: true,
                ..plan.clone()
            });
        }
        let config = config.clone();
        let code = tokio::task::spawn_blocking(move || sync(&config, Some(kill_after)))
            .await
            .expect("join");
        report.runs += 1;
        if lie {
            fake.set_faults(plan.clone());
        }
        match code {
            None => report.kills += 1,
            Some(0) | Some(1) => {}
            // A kill between receiving a rotated cookie and saving it loses
            // the session, as it would for a person: paste the current one.
            Some(3) => {
                report.repastes += 1;
                let current = fake.cookie().map(|(_, t)| t).unwrap_or_else(|| token.clone());
                write_config(dir.path(), &fake.base_url(), &current, sync_table);
            }
            Some(other) => panic!("seed {seed}: chatkeep exited {other}"),
        }
        stored.check(seed, &format!("after run {}", report.runs), &store_dir);
    }

    if debug {
        eprintln!(
            "seed {seed}: loop done in {:.1} s; the store read {} times in {:.1} s (at most {} messages), {} stored, {} upstream; data in {}",
            started.elapsed().as_secs_f64(),
            stored.reads,
            stored.reading.as_secs_f64(),
            stored.largest,
            stored.ever.len(),
            fake.message_count(NAME),
            dir.path().display()
        );
    }
    let phase = Instant::now();

    // The end: no faults, no growth, no edits; runs to completion.
    fake.set_faults(FaultPlan::default());
    fake.grow_while_walking(NAME, 0, 0);
    let mut finished = false;
    for _ in 0..3 {
        let config = config.clone();
        let code = tokio::task::spawn_blocking(move || sync(&config, None))
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
                write_config(dir.path(), &fake.base_url(), &current, sync_table);
            }
            other => panic!("seed {seed}: final sync exited {other:?}"),
        }
    }
    assert!(finished, "seed {seed}: the final sync never succeeded");
    stored.check(seed, "after the final sync", &store_dir);

    // What the syncs could not see (deep edits, holes left by empty
    // answers believed twice) the audit adopts; a second one finds nothing.
    let (code, row) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || audit(&config, true))
            .await
            .expect("join")
    };
    report.runs += 1;
    assert!(
        matches!(code, Some(0) | Some(1)) && row["error"].is_null(),
        "seed {seed}: audit --repair exited {code:?}: {row}"
    );
    report.audit_differed = differing(&row);
    let repaired = row;
    stored.check(seed, "after audit --repair", &store_dir);
    let (code, row) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || audit(&config, false))
            .await
            .expect("join")
    };
    report.runs += 1;
    assert_eq!(
        code,
        Some(0),
        "seed {seed}: the audit after the repair still differs: {row}\nthe repair: {repaired}"
    );

    if debug {
        eprintln!(
            "seed {seed}: final sync and audits in {:.1} s",
            phase.elapsed().as_secs_f64()
        );
    }
    let phase = Instant::now();
    let requests = fake.requests();
    report.requests = requests.len();
    report.faults = requests.iter().filter(|r| r.fault.is_some()).count();
    let empty = |r: &&RequestRecord| r.fault.as_deref() == Some("empty_page");
    report.empty_answers = requests.iter().filter(empty).count();
    let chat: Vec<&RequestRecord> = requests.iter().filter(|r| r.is_chat).collect();
    report.double_lies = chat.windows(2).filter(|w| empty(&w[0]) && empty(&w[1])).count() as u32;
    let times: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    let (requests_in_window, allowed) = worst_second(&times, RPS as usize, BURST as usize);
    assert!(
        requests_in_window <= allowed,
        "seed {seed}: {requests_in_window} requests in one second, the bucket allows {allowed}"
    );

    // A snapshot of the final state, then verify: every snapshot, old ones
    // written by killed runs included, and the live store.
    for command in ["archive", "verify"] {
        let config = config.clone();
        let code = tokio::task::spawn_blocking(move || run(&config, &[command], None))
            .await
            .expect("join");
        assert_eq!(code, Some(0), "seed {seed}: chatkeep {command} failed");
    }

    if debug {
        eprintln!(
            "seed {seed}: archive and verify in {:.1} s",
            phase.elapsed().as_secs_f64()
        );
    }
    let phase = Instant::now();
    check_final(seed, &fake, &store_dir, &stored.ever, &older, &mut report);
    if debug {
        eprintln!(
            "seed {seed}: checked in {:.1} s; {:.1} s in all",
            phase.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    fake.shutdown().await;
    report
}

/// Whether an exported line is an earlier version (`--revisions`): the
/// note chatkeep adds to those starts with `superseded_at`, and the fake's
/// messages never carry a `_chatkeep` field of their own.
fn is_earlier(line: &str) -> bool {
    line.contains("\"_chatkeep\":{\"superseded_at\"")
}

/// Against the fake's ground truth: every current message stored once,
/// its current version byte-faithful, in order; every stored message the
/// service no longer has marked, none lost; the store consistent. Each
/// export is read once and each line parsed at most once: in a debug build
/// reading thousands of messages is what takes the time.
fn check_final(
    seed: u64,
    fake: &FakeService,
    store_dir: &Path,
    ever: &HashSet<String>,
    older: &HashSet<String>,
    report: &mut SeedReport,
) {
    let all = export_lines(store_dir, &ExportOptions::default());
    let shown = export_lines(
        store_dir,
        &ExportOptions {
            upstream_only: true,
            ..ExportOptions::default()
        },
    );
    let with_revisions = export_lines(
        store_dir,
        &ExportOptions {
            revisions: true,
            ..ExportOptions::default()
        },
    );
    let truth: Vec<String> = fake.ground_truth(NAME).iter().map(|m| minify(m)).collect();
    let truth_ids: HashSet<String> = fake.message_ids(NAME).into_iter().collect();
    assert_eq!(
        truth_ids.len(),
        truth.len(),
        "seed {seed}: the fake repeats an id"
    );
    report.messages = truth.len();
    report.stored = all.len();

    let parsed: Vec<Line> = all.iter().map(|l| Line::parse(l)).collect();
    let stored_ids: HashSet<&str> = parsed.iter().map(|l| l.id.as_str()).collect();
    let doubled = doubles(parsed.iter().map(|l| l.id.as_str()));
    report.doubled = doubled.iter().map(|(_, n)| n - 1).sum();
    let gone: Vec<&String> = ever
        .iter()
        .filter(|id| !stored_ids.contains(id.as_str()))
        .collect();
    let missing: Vec<&String> = truth_ids
        .iter()
        .filter(|id| !stored_ids.contains(id.as_str()))
        .collect();
    report.lost = gone.len() + missing.len();
    report.marked_deleted = parsed
        .iter()
        .filter(|l| l.note().deleted_upstream_at.is_some())
        .count();
    report.older_found = older.iter().filter(|id| stored_ids.contains(id.as_str())).count();
    // Earlier versions, each just before the current version of its message
    // (the i-th current line of the revisions export is the i-th line of
    // the export: checked below).
    let mut earlier: HashMap<String, usize> = HashMap::new();
    let mut current = parsed.iter();
    let mut before: Vec<Line> = Vec::new();
    for line in &with_revisions {
        if is_earlier(line) {
            let version = Line::parse(line);
            assert!(version.note().superseded_at.is_some(), "seed {seed}: {line}");
            before.push(version);
            continue;
        }
        let Some(now) = current.next() else { break };
        for version in before.drain(..) {
            assert_eq!(
                version.id, now.id,
                "seed {seed}: an earlier version of {} is placed before {}",
                version.id, now.id
            );
            *earlier.entry(version.id).or_default() += 1;
        }
    }
    assert!(
        before.is_empty(),
        "seed {seed}: earlier versions after the last message"
    );
    report.revised = earlier.len();
    report.earlier_versions = earlier.values().sum();

    if report.lost > 0 || report.doubled > 0 {
        eprintln!("seed {seed}: doubled {doubled:?}");
        eprintln!(
            "seed {seed}: {} once stored and now gone, such as {:?}",
            gone.len(),
            &gone[..gone.len().min(10)]
        );
        eprintln!(
            "seed {seed}: {} upstream and not stored, such as {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
    assert_eq!((report.lost, report.doubled), (0, 0), "seed {seed}: {report}");

    // In order: by `ts`, or the place a message kept when a later version
    // came with another `ts` (which the fake never does).
    assert!(
        parsed.windows(2).all(|w| w[0].place() <= w[1].place()),
        "seed {seed}: the export is out of order"
    );
    // Every stored message the service no longer has is marked, and only those.
    for line in &parsed {
        let marked = line.note().deleted_upstream_at.is_some();
        assert_eq!(
            marked,
            !truth_ids.contains(&line.id),
            "seed {seed}: message {} is {}marked deleted upstream",
            line.id,
            if marked { "" } else { "not " }
        );
    }
    // What the service shows today is the export without the marked ones...
    assert!(
        all.iter()
            .zip(&parsed)
            .filter(|(_, p)| p.note().deleted_upstream_at.is_none())
            .map(|(l, _)| l)
            .eq(shown.iter()),
        "seed {seed}: the upstream-only export is not the export without the messages gone upstream"
    );
    // ... and it is the service's current messages, each in its current
    // version, byte for byte. The order is the export's, checked above;
    // the fake's is by `ts` too, and messages sharing one `ts` may come in
    // any order, so only the sets are compared.
    let mut shown_sorted: Vec<&String> = shown.iter().collect();
    let mut truth_sorted: Vec<&String> = truth.iter().collect();
    shown_sorted.sort();
    truth_sorted.sort();
    if shown_sorted != truth_sorted {
        let shown_set: HashSet<&String> = shown.iter().collect();
        let truth_set: HashSet<&String> = truth.iter().collect();
        let extra: Vec<&&String> = shown_set.difference(&truth_set).take(3).collect();
        let absent: Vec<&&String> = truth_set.difference(&shown_set).take(3).collect();
        panic!(
            "seed {seed}: what the backup shows as upstream ({}) differs from the service ({}):\n\
             stored, not upstream: {extra:?}\nupstream, not stored: {absent:?}",
            shown.len(),
            truth.len()
        );
    }
    // The revisions export is the export with earlier versions added.
    assert!(
        with_revisions.iter().filter(|l| !is_earlier(l)).eq(all.iter()),
        "seed {seed}: the --revisions export's current versions differ from the export"
    );

    let store = ChatStore::open(store_dir).expect("store opens");
    assert_eq!(
        store.state().message_count as usize,
        all.len(),
        "seed {seed}: state disagrees with the log"
    );
    assert!(
        !store.has_pending_walk(),
        "seed {seed}: a walk spool was left behind"
    );
    assert!(
        !store.has_pending_audit(),
        "seed {seed}: an audit spool was left behind"
    );
}
