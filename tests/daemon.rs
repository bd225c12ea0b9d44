//! The daemon as systemd runs it: a real `chatkeep run` process, real
//! signals, the notify socket, status files, one daemon per data directory.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chatkeep::fake::{FakeConfig, PersonalitySpec};
use common::*;

const EVERY_SECOND: &str = "[daemon]\nschedule = \"* * * * * *\"\nshutdown_timeout = \"5s\"\n";

/// Writes a config and appends daemon settings at the end.
fn daemon_config(dir: &Path, base_url: &str, names: &[&str], rps: f64, daemon: &str) -> std::path::PathBuf {
    let path = write_config(dir, base_url, names, rps, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push('\n');
    text.push_str(daemon);
    std::fs::write(&path, text).unwrap();
    path
}

/// The config at `path` loaded in this process, which does not allow the
/// per-second schedules the daemon runs on here: the same config ticking
/// every 10 s, written beside it.
fn load_in_process(path: &Path) -> chatkeep::config::Config {
    let text = std::fs::read_to_string(path).unwrap();
    let slower = path.with_file_name("in-process.toml");
    std::fs::write(&slower, text.replace("\"* * * * * *\"", "\"*/10 * * * * *\"")).unwrap();
    load(&slower)
}

/// The daemon with its stderr collected line by line.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(config: &Path, env: &[(&str, String)]) -> Daemon {
        let mut cmd = chatkeep(config);
        cmd.arg("run").stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line with {needle:?} within {timeout:?}; log so far:\n{}",
            self.seen.join("\n")
        );
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for exit; returns the code.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.seen.push(line);
                }
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "daemon still running after {timeout:?}:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to 10 s for `check` to hold.
fn eventually(check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_syncs_on_schedule_reloads_on_hup_and_stops_on_term() {
    let fake = fake(
        FakeConfig::default(),
        vec![PersonalitySpec::new("one", 120), PersonalitySpec::new("two", 60)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &fake.base_url(), &["one"], 1000.0, EVERY_SECOND);
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for("chatkeep daemon started", Duration::from_secs(10));
    daemon.wait_for("personality=\"one\" outcome=\"ok\"", Duration::from_secs(10));
    let data = dir.path().join("data");
    // Status and metrics are rewritten right after the sync's log line.
    eventually(|| {
        std::fs::read_to_string(data.join("metrics.prom"))
            .is_ok_and(|m| m.contains("chatkeep_last_run_ok{personality=\"one\"} 1"))
    });
    let status = read_json(&data.join("status.json"));
    assert_eq!(status["pid"], serde_json::json!(daemon.child.id()));
    assert!(status["personalities"]["one"]["next_run"].is_string(), "{status}");
    assert_eq!(status["personalities"]["one"]["last_outcome"], "ok", "{status}");

    // A second daemon on the same data directory is refused; a one-shot
    // sync is handed to this one.
    let out = chatkeep(&config).arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("pid {}", daemon.child.id())),
        "{}",
        text(&out)
    );
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("the daemon (pid {})", daemon.child.id())),
        "{}",
        text(&out)
    );

    // An invalid config on SIGHUP is refused and the old one kept.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("burst = 1", "burst = 0")).unwrap();
    daemon.signal("HUP");
    daemon.wait_for("keeping the running config", Duration::from_secs(10));
    // A valid one adds a personality without a restart.
    daemon_config(
        dir.path(),
        &fake.base_url(),
        &["one", "two"],
        1000.0,
        EVERY_SECOND,
    );
    daemon.signal("HUP");
    daemon.wait_for("config reloaded", Duration::from_secs(10));
    daemon.wait_for("personality=\"two\" outcome=\"ok\"", Duration::from_secs(10));
    assert_complete(&export_lines(&load_in_process(&config), "two"), &fake, "two");

    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    daemon.wait_for("chatkeep daemon stopped", Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_walk_stops_at_a_page_boundary_within_the_timeout_and_the_next_run_resumes() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("long", 5000)]).await;
    let dir = tempfile::tempdir().unwrap();
    // 10 requests/s: the walk of ~100 pages takes ~10 s.
    let config = daemon_config(
        dir.path(),
        &fake.base_url(),
        &["long"],
        10.0,
        "[daemon]\nrun_on_start = true\nshutdown_timeout = \"5s\"\n",
    );
    let mut daemon = Daemon::start(&config, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.chat_requests("long") < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop_at = Instant::now();
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(6)), Some(0));
    assert!(
        stop_at.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stop_at.elapsed()
    );
    let done = fake.chat_requests("long");
    assert!(done < 90, "the walk did not stop early ({done} requests)");

    // A clean stop is no failure: recorded as `interrupted`, healthy for
    // `status` and the metrics, with what the walk fetched so far.
    let status = read_json(&dir.path().join("data/long/status.json"));
    assert_eq!(status["outcome"], "interrupted", "{status}");
    assert_eq!(status["error"], serde_json::Value::Null, "{status}");
    assert_eq!(status["sections"]["chat"]["state"], "interrupted", "{status}");
    let spooled = status["sections"]["chat"]["spooled"].as_u64().unwrap();
    assert!(spooled > 0 && spooled < 5000, "{status}");
    let out = chatkeep(&config).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("long ") && l.contains(" interrupted ")),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains(&format!(
            "long: the chat history is still being fetched: {spooled} messages fetched"
        )),
        "{}",
        text(&out)
    );
    assert!(
        !stdout.contains("FAILED") && !stdout.contains("partial"),
        "{}",
        text(&out)
    );
    let metrics = std::fs::read_to_string(dir.path().join("data/metrics.prom")).unwrap();
    assert!(
        metrics.contains("chatkeep_last_run_ok{personality=\"long\"} 1\n")
            && metrics.contains("chatkeep_last_run_interrupted{personality=\"long\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("chatkeep_errors_total"))
            .all(|l| l.ends_with(" 0")),
        "{metrics}"
    );
    let daemon_status = read_json(&dir.path().join("data/status.json"));
    assert_eq!(
        daemon_status["personalities"]["long"]["last_outcome"], "interrupted",
        "{daemon_status}"
    );
    // Export says the history is not all there yet, rather than silently
    // writing what is stored.
    let out = chatkeep(&config).args(["export", "long"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "the chat history of `long` is still being fetched: {spooled} messages fetched are not stored yet"
        )),
        "{}",
        text(&out)
    );

    // The one-shot sync resumes it and ends complete.
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("chat"),
        "{}",
        text(&out)
    );
    assert!(fake.chat_requests("long") < done + 100);
    assert_complete(&export_lines(&load(&config), "long"), &fake, "long");
    let out = chatkeep(&config).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("still being fetched"),
        "{}",
        text(&out)
    );
    let out = chatkeep(&config).args(["export", "long"]).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out).lines().take(3).collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_status_watchdog_and_stopping() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("n", 20)]).await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let config = daemon_config(
        dir.path(),
        &fake.base_url(),
        &["n"],
        1000.0,
        "[daemon]\nrun_on_start = true\n",
    );
    let mut daemon = Daemon::start(
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.display().to_string()),
            ("WATCHDOG_USEC", "200000".into()),
        ],
    );
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = |h: &[String], what: &str| h.iter().any(|m| m.contains(what));
    while !(want(&heard, "READY=1")
        && want(&heard, "WATCHDOG=1")
        && want(&heard, "STATUS=1 personality: 0 running, 1 ok"))
        && Instant::now() < deadline
    {
        if let Ok(n) = socket.recv(&mut buf) {
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(want(&heard, "READY=1"), "{heard:?}");
    assert!(want(&heard, "WATCHDOG=1"), "{heard:?}");
    assert!(want(&heard, "STATUS=1 personality: 0 running, 1 ok"), "{heard:?}");
    daemon.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want(&heard, "STOPPING=1") && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(want(&heard, "STOPPING=1"), "{heard:?}");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_finds_a_personality_still_running_is_skipped_and_workers_share_one_bucket() {
    let specs = (0..3)
        .map(|i| PersonalitySpec::new(format!("p{i}"), 600))
        .collect();
    let fake = fake(FakeConfig::default(), specs).await;
    let dir = tempfile::tempdir().unwrap();
    // 5 requests/s for everyone; each walk takes ~3 s, the schedule fires every second.
    let config = daemon_config(
        dir.path(),
        &fake.base_url(),
        &["p0", "p1", "p2"],
        5.0,
        "[daemon]\nschedule = \"* * * * * *\"\nworkers = 2\nshutdown_timeout = \"5s\"\n",
    );
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for(
        "still running from an earlier start; skipping this one",
        Duration::from_secs(10),
    );
    daemon.wait_for("personality=\"p2\" outcome=\"ok\"", Duration::from_secs(30));
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    // One bucket for both workers: two buckets would let ~10 a second through.
    // Arrival times carry scheduling jitter (tests run in parallel), so judge
    // the busiest second with one request of slack, and the whole run's rate.
    let times: Vec<_> = fake.requests().iter().map(|r| r.at).collect();
    let busiest = busiest_second(&times);
    assert!(
        busiest <= 5 + 1 + 1,
        "{busiest} requests in one second at 5/s, burst 1, with 2 workers"
    );
    let span = (*times.last().unwrap() - times[0]).as_secs_f64();
    let rate = (times.len() - 1) as f64 / span;
    assert!(rate <= 5.0 * 1.02, "{rate:.2} requests/s over {span:.1} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_daily_files_in_json_when_configured() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("logged", 20)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(
        dir.path(),
        &fake.base_url(),
        &["logged"],
        1000.0,
        "[daemon]\nrun_on_start = true\n\n[log]\ndir = \"logs\"\nformat = \"json\"\nmax_files = 3\n",
    );
    let mut daemon = Daemon::start(&config, &[]);
    let line = daemon.wait_for("\"outcome\":\"ok\"", Duration::from_secs(10));
    let parsed: serde_json::Value = serde_json::from_str(&line).expect("stderr lines are JSON");
    assert_eq!(parsed["fields"]["personality"], "logged");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    let files: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("chatkeep.") && name.ends_with(".log"), "{name}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(lines.iter().any(|l| l["fields"]["outcome"] == "ok"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "chatkeep daemon stopped"),
        "flushed at exit: {text}"
    );
    assert!(!text.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_schedule_snapshots_each_personality_and_verify_accepts_them() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("snap", 300)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(
        dir.path(),
        &fake.base_url(),
        &["snap"],
        1000.0,
        "[daemon]\nrun_on_start = true\nschedule = \"0 0 0 1 1 *\"\narchive_schedule = \"* * * * * *\"\n",
    );
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for("personality=\"snap\" outcome=\"ok\"", Duration::from_secs(10));
    daemon.wait_for("snapshot written", Duration::from_secs(10));
    // Nothing changes afterwards: the next ticks write no new snapshot.
    daemon.wait_for(
        "nothing changed since the newest snapshot",
        Duration::from_secs(10),
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    let manifest = read_json(&dir.path().join("data/archives/snap/manifest.json"));
    assert_eq!(
        manifest["snapshots"].as_array().map(Vec::len),
        Some(1),
        "{manifest}"
    );
    let out = chatkeep(&config).arg("verify").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = chatkeep(&config).arg("status").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let row = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("snap "))
        .unwrap()
        .to_owned();
    assert!(
        !row.trim_end().ends_with('—'),
        "status shows the last archive: {row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_schedule_repairs_what_syncs_cannot_see() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("deep", 300)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(
        dir.path(),
        &fake.base_url(),
        &["deep"],
        1000.0,
        "[daemon]\nrun_on_start = true\nschedule = \"0 0 0 1 1 *\"\n",
    );
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for("personality=\"deep\" outcome=\"ok\"", Duration::from_secs(10));
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    // Deeper than any sync looks.
    let changed = fake.regenerate_nth_newest("deep", 250);
    let edited = std::fs::read_to_string(&config).unwrap().replace(
        "run_on_start = true",
        "run_on_start = false\naudit_schedule = \"* * * * * *\"",
    );
    std::fs::write(&config, edited).unwrap();
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for(
        "audit: the backup and the service differ",
        Duration::from_secs(15),
    );
    daemon.wait_for(
        "audit: the backup holds everything the service holds",
        Duration::from_secs(15),
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    let out = chatkeep(&config)
        .args(["export", "deep", "--format", "jsonl", "--revisions"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let versions = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&changed))
        .count();
    assert_eq!(versions, 2, "the first version and the regenerated one");
}

/// Runs `chatkeep status --json` against `config`.
fn status_json(config: &Path) -> serde_json::Value {
    let out = chatkeep(config).args(["status", "--json"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_that_keep_the_schedule_do_not_restart_the_interval_countdown() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 20)]).await;
    let dir = tempfile::tempdir().unwrap();
    // The shortest interval the config allows, and a SIGHUP every 3 s: each
    // reload used to start the 10 s countdown again, so no sync ever ran.
    let config = daemon_config(
        dir.path(),
        &fake.base_url(),
        &["one"],
        1000.0,
        "[daemon]\ninterval = \"10s\"\nshutdown_timeout = \"5s\"\n",
    );
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for("chatkeep daemon started", Duration::from_secs(10));
    let started = Instant::now();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        daemon.signal("HUP");
    }
    // 15 s after the start, with the last reload just now: the sync due at
    // 10 s has run.
    daemon.wait_for("personality=\"one\" outcome=\"ok\"", Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(18),
        "{:?}",
        started.elapsed()
    );
    assert!(fake.chat_requests("one") > 0);
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_says_what_changed_or_that_nothing_did() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 20)]).await;
    let dir = tempfile::tempdir().unwrap();
    let hourly = "[daemon]\nschedule = \"0 0 * * * *\"\nshutdown_timeout = \"5s\"\n";
    let config = daemon_config(dir.path(), &fake.base_url(), &["one"], 1000.0, hourly);
    let mut daemon = Daemon::start(&config, &[]);
    // Start-up says what is scheduled and when it next runs.
    let line = daemon.wait_for("scheduled", Duration::from_secs(10));
    assert!(line.contains("next_run="), "{line}");
    daemon.wait_for("chatkeep daemon started", Duration::from_secs(10));

    daemon.signal("HUP");
    let line = daemon.wait_for("config reloaded", Duration::from_secs(10));
    assert!(line.contains("nothing changed"), "{line}");

    // A personality added, and the default schedule changed.
    daemon_config(
        dir.path(),
        &fake.base_url(),
        &["one", "two"],
        1000.0,
        "[daemon]\nschedule = \"0 30 * * * *\"\nshutdown_timeout = \"5s\"\n",
    );
    daemon.seen.clear();
    daemon.signal("HUP");
    let line = daemon.wait_for("config reloaded", Duration::from_secs(10));
    assert!(line.contains("added: two"), "{line}");
    assert!(line.contains("schedule changed: default"), "{line}");
    assert!(!line.contains("nothing changed"), "{line}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personality_removed_from_the_config_leaves_the_schedule_on_reload() {
    let fake = fake(
        FakeConfig::default(),
        vec![PersonalitySpec::new("one", 20), PersonalitySpec::new("two", 20)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let daemon_table =
        "[daemon]\nschedule = \"0 0 * * * *\"\nrun_on_start = true\nshutdown_timeout = \"5s\"\n";
    let config = daemon_config(
        dir.path(),
        &fake.base_url(),
        &["one", "two"],
        1000.0,
        daemon_table,
    );
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for("personality=\"one\" outcome=\"ok\"", Duration::from_secs(10));
    daemon.wait_for("personality=\"two\" outcome=\"ok\"", Duration::from_secs(10));
    let data = dir.path().join("data");
    eventually(|| {
        let status = read_json(&data.join("status.json"));
        status["personalities"]["two"]["next_run"].is_string()
            && !status["personalities"]["two"]["running"]
                .as_bool()
                .unwrap_or(true)
    });

    daemon_config(dir.path(), &fake.base_url(), &["one"], 1000.0, daemon_table);
    daemon.signal("HUP");
    let line = daemon.wait_for("config reloaded", Duration::from_secs(10));
    assert!(line.contains("removed: two"), "{line}");
    let status = read_json(&data.join("status.json"));
    assert!(status["personalities"]["one"]["next_run"].is_string(), "{status}");
    assert!(status["personalities"]["two"]["next_run"].is_null(), "{status}");
    // `chatkeep status` still lists its backup, with no next run.
    let report = status_json(&config);
    let entries = report["personalities"].as_array().unwrap();
    let two = entries
        .iter()
        .find(|e| e["name"] == "two")
        .expect("two is listed");
    assert_eq!(two["configured"], false, "{report}");
    assert!(two["next_run"].is_null(), "{report}");
    let one = entries.iter().find(|e| e["name"] == "one").unwrap();
    assert!(one["next_run"].is_string(), "{report}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_with_no_personality_warns_that_nothing_is_scheduled() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 20)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &fake.base_url(), &[], 1000.0, EVERY_SECOND);
    let mut daemon = Daemon::start(&config, &[]);
    let line = daemon.wait_for("nothing is scheduled", Duration::from_secs(10));
    assert!(line.contains("WARN"), "{line}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    assert!(
        !daemon.seen.iter().any(|l| l.contains("scheduled: ")),
        "{}",
        daemon.seen.join("\n")
    );
}

/// A year between ticks: only a request runs anything.
const NEVER: &str = "[daemon]\nschedule = \"0 0 0 1 1 *\"\nshutdown_timeout = \"5s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_archive_while_the_daemon_runs_are_run_by_the_daemon_at_once() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("asked", 120)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &fake.base_url(), &["asked"], 1000.0, NEVER);
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for("chatkeep daemon started", Duration::from_secs(10));
    let socket = dir.path().join("data/.chatkeep.sock");
    assert!(socket.exists(), "the daemon listens on {}", socket.display());

    let run = |args: &[&str]| {
        let out = chatkeep(&config).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            text(&out),
        )
    };
    let (code, stdout, all) = run(&["sync", "asked"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains(&format!(
            "the daemon (pid {}) holds the data directory",
            daemon.child.id()
        )),
        "{all}"
    );
    assert!(
        stdout.starts_with("asked: ") && stdout.contains("120 new"),
        "the sync's own summary line: {all}"
    );
    daemon.wait_for("asked to run now", Duration::from_secs(10));
    let status = read_json(&dir.path().join("data/asked/status.json"));
    assert_eq!(status["outcome"], "ok", "{status}");

    // Without names: every configured personality, as `archive` alone does.
    let (code, stdout, all) = run(&["archive"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(stdout.contains("asked: wrote asked-"), "{all}");
    let manifest = read_json(&dir.path().join("data/archives/asked/manifest.json"));
    assert_eq!(
        manifest["snapshots"].as_array().map(Vec::len),
        Some(1),
        "{manifest}"
    );

    // A named personality with no backup is an error, as without the daemon.
    let (code, _, all) = run(&["archive", "stranger"]);
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("stranger: skipped: no backup yet"), "{all}");

    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    assert!(!socket.exists(), "the daemon removes its socket when it stops");
    // With the daemon gone, a sync runs in its own process again.
    let (code, stdout, all) = run(&["sync", "asked"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(!all.contains("the daemon (pid"), "{all}");
    assert!(stdout.starts_with("asked: "), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_handed_to_a_daemon_that_stops_mid_walk_ends_as_interrupted() {
    // 600 messages at 4 requests a second: three seconds of walking.
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("long", 600)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &fake.base_url(), &["long"], 4.0, NEVER);
    let mut daemon = Daemon::start(&config, &[]);
    daemon.wait_for("chatkeep daemon started", Duration::from_secs(10));
    let client = chatkeep(&config)
        .args(["sync", "long"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    daemon.wait_for("asked to run now", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(800));
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    let out = client.wait_with_output().unwrap();
    // A clean stop of the daemon is a clean stop of the sync it ran.
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("interrupted"),
        "{}",
        text(&out)
    );
}
