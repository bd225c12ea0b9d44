//! `chatkeep status` as a user and a health check meet it: the real binary
//! over hand-written status files, no service, no lock.

mod common;

use std::path::{Path, PathBuf};

use chatkeep::status::{DaemonPersonality, DaemonStatus, Outcome};
use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::Value;

/// A config naming `names`, its data directory `<dir>/data` (not created).
fn setup(names: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: status must not touch the network.
    let config = write_config(dir.path(), "http://127.0.0.1:9", names, 1.0, "");
    let data = dir.path().join("data");
    (dir, config, data)
}

/// Writes `<data>/<name>/status.json` by hand, as a sync would have.
fn write_status(
    data: &Path,
    name: &str,
    outcome: &str,
    finished: DateTime<Utc>,
    chat: Option<(u64, u64)>,
    error: Option<&str>,
) {
    let ok = outcome == "ok";
    let json = serde_json::json!({
        "personality": name,
        "personality_id": "0b5e7c1a-0000-4000-8000-000000000001",
        "last_started": finished - Duration::seconds(20),
        "last_finished": finished,
        "outcome": outcome,
        "error": error,
        "sections": {"profile": if ok {
            serde_json::json!({"state": "saved", "change": "unchanged"})
        } else {
            serde_json::json!({"state": "failed", "error": error})
        }},
        "requests": 7,
        "chat": chat.map(|(total, new)| serde_json::json!({"total": total, "new": new, "oldest": null, "newest": null})),
        "last_success": if ok { Some(finished) } else { None },
    });
    let dir = data.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("status.json"), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

/// A daemon status for `pid` with a next run per personality.
fn write_daemon(data: &Path, pid: u32, next: &[(&str, DateTime<Utc>)]) {
    let mut status = DaemonStatus::new(PathBuf::from("/etc/chatkeep/config.toml"));
    status.pid = pid;
    for (name, at) in next {
        status.personalities.insert(
            (*name).to_owned(),
            DaemonPersonality {
                next_run: Some(*at),
                last_outcome: Some(Outcome::Ok),
                ..DaemonPersonality::default()
            },
        );
    }
    status.write(data).unwrap();
}

struct Run {
    code: Option<i32>,
    stdout: String,
    all: String,
}

fn status(config: &Path, json: bool) -> Run {
    let mut cmd = chatkeep(config);
    cmd.arg("status");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout.clone()).unwrap(),
        all: text(&out),
    }
}

/// The table's row for `name`, split on runs of two or more spaces.
fn row(stdout: &str, name: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn all_ok_exits_0_with_an_aligned_table_and_next_runs_from_the_running_daemon() {
    let (_dir, config, data) = setup(&["lilith", "eve"]);
    let now = Utc::now();
    write_status(
        &data,
        "lilith",
        "ok",
        now - Duration::minutes(185),
        Some((1234, 5)),
        None,
    );
    write_status(&data, "eve", "ok", now - Duration::days(3), Some((0, 0)), None);
    // This test process stands in for a live daemon.
    let next = now + Duration::minutes(90) + Duration::seconds(30);
    write_daemon(&data, std::process::id(), &[("lilith", next)]);

    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
    let out = &run.stdout;
    assert!(!out.contains('\x1b'), "colours on a pipe: {out}");
    let ago = (now - Duration::minutes(185)).format("%Y-%m-%d %H:%M");
    assert_eq!(
        row(out, "lilith"),
        [
            "lilith".to_owned(),
            format!("{ago} (3h ago)"),
            "ok".into(),
            "1234".into(),
            "5".into(),
            format!("{} (in 1h)", next.format("%Y-%m-%d %H:%M")),
            "—".into(),
        ]
    );
    let eve = row(out, "eve");
    assert!(eve[1].ends_with("(3d ago)") && eve[5] == "—", "{eve:?}");

    // Every column starts at the same character in every line.
    let lines: Vec<Vec<char>> = out.lines().take(3).map(|l| l.chars().collect()).collect();
    let header: String = lines[0].iter().collect();
    for column in ["LAST RUN (UTC)", "OUTCOME", "NEXT RUN (UTC)", "LAST ARCHIVE"] {
        let at = header[..header.find(column).unwrap()].chars().count();
        for line in &lines[1..] {
            assert!(
                line[at - 2..at] == [' ', ' '] && line[at] != ' ',
                "{column} misaligned:\n{out}"
            );
        }
    }
    assert!(
        out.contains(&format!("daemon: running, pid {}", std::process::id())),
        "{out}"
    );
}

#[test]
fn a_failed_personality_exits_1_and_says_why() {
    let (_dir, config, data) = setup(&["lilith", "eve"]);
    let now = Utc::now();
    write_status(&data, "lilith", "ok", now, Some((10, 0)), None);
    write_status(
        &data,
        "eve",
        "auth_expired",
        now,
        None,
        Some("the service refused the session cookie; renew it"),
    );
    let run = status(&config, false);
    assert_eq!(run.code, Some(1), "{}", run.all);
    assert_eq!(row(&run.stdout, "eve")[2], "auth_expired");
    assert!(
        run.stdout
            .contains("eve: auth_expired: the service refused the session cookie; renew it\n"),
        "{}",
        run.all
    );
}

#[test]
fn a_personality_that_never_ran_exits_1() {
    let (_dir, config, data) = setup(&["lilith", "eve"]);
    write_status(&data, "lilith", "ok", Utc::now(), Some((10, 0)), None);
    let run = status(&config, false);
    assert_eq!(run.code, Some(1), "{}", run.all);
    assert_eq!(row(&run.stdout, "eve")[..3], ["eve", "never", "never run"]);

    // Not even a data directory yet: nothing ran.
    let (_dir, config, _) = setup(&["lilith"]);
    let run = status(&config, false);
    assert_eq!(run.code, Some(1), "{}", run.all);
    assert!(run.stdout.contains("daemon: not running"), "{}", run.all);
}

#[test]
fn json_carries_the_same_information_and_exit_code() {
    let (_dir, config, data) = setup(&["lilith", "eve"]);
    let now = Utc::now();
    let finished = now - Duration::hours(2);
    write_status(&data, "lilith", "ok", finished, Some((1234, 5)), None);
    write_status(
        &data,
        "eve",
        "partial",
        finished,
        Some((7, 1)),
        Some("memories: 500"),
    );
    let next = now + Duration::minutes(30);
    write_daemon(&data, std::process::id(), &[("lilith", next), ("eve", next)]);

    let run = status(&config, true);
    assert_eq!(run.code, Some(1), "{}", run.all);
    let doc: Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["healthy"], false);
    assert_eq!(doc["daemon"]["running"], true);
    assert_eq!(doc["daemon"]["pid"], std::process::id());
    assert_eq!(doc["data_dir"], data.to_str().unwrap());
    let people = doc["personalities"].as_array().unwrap();
    let names: Vec<&str> = people.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lilith", "eve"], "config order");
    let lilith = &people[0];
    let time = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    assert_eq!(
        (
            &lilith["outcome"],
            &lilith["healthy"],
            &lilith["messages"],
            &lilith["new_last_run"]
        ),
        (
            &Value::from("ok"),
            &Value::from(true),
            &Value::from(1234),
            &Value::from(5)
        )
    );
    assert_eq!(time(&lilith["last_run"]), finished);
    assert_eq!(time(&lilith["last_success"]), finished);
    assert_eq!(time(&lilith["next_run"]), next);
    assert_eq!(lilith["last_archive"], Value::Null);
    assert_eq!(lilith["configured"], true);
    let eve = &people[1];
    assert_eq!(
        (&eve["outcome"], &eve["healthy"], &eve["error"]),
        (
            &Value::from("partial"),
            &Value::from(false),
            &Value::from("memories: 500")
        )
    );
    assert_eq!(eve["last_success"], Value::Null);

    // The table agrees.
    let table = status(&config, false);
    assert_eq!(table.code, run.code);
    assert_eq!(row(&table.stdout, "eve")[2..5], ["partial", "7", "1"]);
}

#[test]
fn a_daemon_that_is_gone_shows_no_next_run_and_is_said_to_be_not_running() {
    let (_dir, config, data) = setup(&["lilith"]);
    let now = Utc::now();
    write_status(&data, "lilith", "ok", now, Some((3, 3)), None);
    // Above the kernel's largest pid (2^22): no such process.
    write_daemon(&data, 4_194_305, &[("lilith", now + Duration::hours(1))]);
    let run = status(&config, false);
    assert_eq!(
        run.code,
        Some(0),
        "the daemon's state is shown, not counted: {}",
        run.all
    );
    assert_eq!(row(&run.stdout, "lilith")[5], "—");
    assert!(
        run.stdout.contains("daemon: not running (pid 4194305 is gone"),
        "{}",
        run.all
    );
    let doc: Value = serde_json::from_str(&status(&config, true).stdout).unwrap();
    assert_eq!(doc["daemon"]["running"], false);
    assert_eq!(doc["personalities"][0]["next_run"], Value::Null);
}

#[test]
fn backups_no_longer_configured_are_listed_but_not_counted() {
    let (_dir, config, data) = setup(&["lilith"]);
    let now = Utc::now();
    write_status(&data, "lilith", "ok", now, Some((3, 0)), None);
    write_status(
        &data,
        "old-friend",
        "bot_wall",
        now - Duration::days(40),
        None,
        Some("bot wall"),
    );
    // Not personalities: no status file, hidden, or a plain file.
    std::fs::create_dir_all(data.join("empty")).unwrap();
    std::fs::write(data.join(".chatkeep.lock"), "1\n").unwrap();
    std::fs::write(data.join("metrics.prom"), "").unwrap();
    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
    assert_eq!(row(&run.stdout, "old-friend")[2], "bot_wall");
    assert!(
        run.stdout.contains("old-friend: not in the config"),
        "{}",
        run.all
    );
    for absent in ["empty", ".chatkeep.lock", "metrics.prom"] {
        assert!(
            !run.stdout.contains(&format!("\n{absent} ")),
            "{absent} listed: {}",
            run.all
        );
    }
    let doc: Value = serde_json::from_str(&status(&config, true).stdout).unwrap();
    assert_eq!(doc["personalities"][1]["configured"], false);
    assert_eq!(doc["healthy"], true);
}

#[test]
fn an_unreadable_status_file_is_reported_not_taken_for_never_run() {
    let (_dir, config, data) = setup(&["lilith"]);
    std::fs::create_dir_all(data.join("lilith")).unwrap();
    std::fs::write(data.join("lilith/status.json"), "{ torn").unwrap();
    let run = status(&config, false);
    assert_eq!(run.code, Some(1), "{}", run.all);
    assert_eq!(row(&run.stdout, "lilith")[2], "unreadable");
    assert!(run.stdout.contains("status.json cannot be read"), "{}", run.all);
}

#[test]
fn works_while_another_process_holds_the_data_directory() {
    let (_dir, config, data) = setup(&["lilith"]);
    write_status(&data, "lilith", "ok", Utc::now(), Some((1, 1)), None);
    let _held = chatkeep::store::Store::open(&data).unwrap();
    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
}

#[test]
fn a_personality_cannot_take_the_name_of_chatkeeps_own_files() {
    // A personality named like the daemon's status file would need a
    // directory where that file is: the config refuses the name, with its
    // position, before anything touches the data directory. `status` says
    // so and reports what it can without it (lilith never ran: exit 1).
    let (_dir, config, data) = setup(&["lilith", "status.json"]);
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.contains("\"status.json\""))
        .unwrap()
        + 1;
    let run = status(&config, false);
    assert_eq!(run.code, Some(1), "{}", run.all);
    assert!(run.all.contains("chatkeep's own files"), "{}", run.all);
    assert!(
        run.all
            .contains(&format!("{} is invalid (line {line},", config.display())),
        "{}",
        run.all
    );
    assert!(!data.join("status.json").exists());

    // A backup directory of that name left by hand is listed, and the
    // daemon's file is reported as unreadable rather than trusted.
    let (_dir, config, data) = setup(&["lilith"]);
    let now = Utc::now();
    write_status(&data, "lilith", "ok", now, Some((1, 1)), None);
    write_status(&data, "status.json", "ok", now, Some((2, 0)), None);
    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
    assert!(run.stdout.contains("daemon: not running"), "{}", run.all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_agrees_with_what_a_real_sync_did() {
    use chatkeep::fake::{FakeConfig, PersonalitySpec};
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 30)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
    let sync = chatkeep(&config).arg("sync").output().unwrap();
    assert!(sync.status.success(), "{}", text(&sync));

    let run = status(&config, true);
    assert_eq!(run.code, Some(0), "{}", run.all);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let lilith = &doc["personalities"][0];
    assert_eq!(
        (&lilith["outcome"], &lilith["messages"], &lilith["new_last_run"]),
        (&Value::from("ok"), &Value::from(30), &Value::from(30))
    );
    assert!(!run.all.contains(TOKEN), "the cookie leaked: {}", run.all);

    let again = chatkeep(&config).arg("sync").output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
    assert_eq!(row(&run.stdout, "lilith")[2..5], ["ok", "30", "0"]);
}

/// Replaces `from` with `to` in the config file: a bad edit.
fn edit(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    std::fs::write(config, text.replacen(from, to, 1)).unwrap();
}

/// The 1-based line of the config file holding `needle`.
fn line_of(config: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(config).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn a_broken_config_is_said_to_be_invalid_and_the_status_still_reported() {
    let (_dir, config, data) = setup(&["lilith", "eve"]);
    let now = Utc::now();
    write_status(&data, "lilith", "ok", now, Some((12, 2)), None);
    write_status(&data, "eve", "ok", now, Some((7, 0)), None);
    // Broken TOML: the whole file does not parse.
    edit(&config, "burst = 1", "burst = lots");
    let line = line_of(&config, "burst = lots");

    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "every personality is ok: {}", run.all);
    assert!(
        run.stdout.starts_with(&format!(
            "warning: the config file {} is invalid (line {line}, column",
            config.display()
        )),
        "{}",
        run.all
    );
    assert!(run.stdout.contains("[storage] data_dir"), "{}", run.all);
    assert_eq!(row(&run.stdout, "lilith")[2..4], ["ok", "12"]);
    assert_eq!(row(&run.stdout, "eve")[2..4], ["ok", "7"]);

    let json = status(&config, true);
    assert_eq!(json.code, Some(0), "{}", json.all);
    let doc: Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    assert_eq!(doc["config_error"]["line"], line);
    assert_eq!(doc["data_dir"], data.to_str().unwrap());
    assert_eq!(doc["personalities"].as_array().unwrap().len(), 2);
    assert!(json.all.contains("is invalid"), "{}", json.all);

    // The outcomes still decide the exit code.
    write_status(
        &data,
        "eve",
        "failed",
        now,
        None,
        Some("the service answered 500"),
    );
    let run = status(&config, false);
    assert_eq!(run.code, Some(1), "{}", run.all);
    assert!(
        run.stdout.contains("eve: failed: the service answered 500"),
        "{}",
        run.all
    );
}

#[test]
fn a_config_that_parses_but_does_not_validate_is_reported_with_line_and_column() {
    let (_dir, config, data) = setup(&["lilith"]);
    write_status(&data, "lilith", "ok", Utc::now(), Some((3, 0)), None);
    edit(&config, "burst = 1", "burst = \"many\"");
    let line = line_of(&config, "burst = \"many\"");
    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
    assert!(
        run.stdout
            .contains(&format!("is invalid (line {line}, column 9)")),
        "{}",
        run.all
    );
    assert_eq!(row(&run.stdout, "lilith")[2], "ok");
}

#[test]
fn with_a_broken_config_the_running_daemons_personalities_count() {
    let (_dir, config, data) = setup(&["lilith", "eve"]);
    let now = Utc::now();
    write_status(&data, "lilith", "ok", now, Some((1, 0)), None);
    write_status(
        &data,
        "eve",
        "failed",
        now,
        None,
        Some("the service answered 500"),
    );
    // The bad edit is in eve's own block: the file no longer names her,
    // but the daemon (this process stands in for it) still backs her up.
    edit(&config, "name = \"eve\"", "name = eve");
    write_daemon(&data, std::process::id(), &[("lilith", now), ("eve", now)]);
    let run = status(&config, true);
    assert_eq!(run.code, Some(1), "eve's failure counts: {}", run.all);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let eve = doc["personalities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "eve")
        .cloned()
        .unwrap();
    assert_eq!(eve["configured"], true);
}

#[test]
fn without_a_data_directory_to_read_status_exits_2_naming_data_dir_flag() {
    let (dir, config, data) = setup(&["lilith"]);
    write_status(&data, "lilith", "ok", Utc::now(), Some((1, 0)), None);
    edit(&config, "data_dir = \"data\"", "data_dir = data");
    let run = status(&config, false);
    assert_eq!(run.code, Some(2), "{}", run.all);
    assert!(
        run.all.contains(&format!("{}:", config.display())) && run.all.contains("--data-dir"),
        "{}",
        run.all
    );

    // --data-dir: reports, with a broken config or none at all.
    for config in [config.clone(), dir.path().join("missing.toml")] {
        let out = chatkeep(&config)
            .arg("status")
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("given by --data-dir"), "{stdout}");
        assert_eq!(row(&stdout, "lilith")[2], "ok");
    }
}

#[test]
fn an_interrupted_sync_is_healthy_unless_the_one_before_it_failed() {
    let (_dir, config, data) = setup(&["lilith", "eve"]);
    let now = Utc::now();
    // A status file from before `interrupted` existed still reads.
    write_status(&data, "lilith", "ok", now, Some((10, 1)), None);
    write_status(&data, "eve", "ok", now, Some((10, 1)), None);
    let interrupt = |name: &str, previous: Option<&str>| {
        let path = data.join(name).join("status.json");
        let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        doc["outcome"] = "interrupted".into();
        doc["sections"] = serde_json::json!({"chat": {"state": "interrupted", "spooled": 50}});
        if let Some(previous) = previous {
            doc["previous_outcome"] = previous.into();
        }
        std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    };
    interrupt("lilith", Some("ok"));
    interrupt("eve", None);
    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
    assert_eq!(row(&run.stdout, "lilith")[2], "interrupted", "{}", run.all);

    interrupt("eve", Some("failed"));
    let run = status(&config, true);
    assert_eq!(run.code, Some(1), "{}", run.all);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let eve = &doc["personalities"][1];
    assert_eq!(
        (&eve["outcome"], &eve["previous_outcome"], &eve["healthy"]),
        (
            &Value::from("interrupted"),
            &Value::from("failed"),
            &Value::from(false)
        ),
        "{}",
        run.all
    );
    let run = status(&config, false);
    assert!(
        run.stdout
            .contains("eve: interrupted by a shutdown; the last sync that finished ended failed\n"),
        "{}",
        run.all
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_first_backup_is_interrupted_not_failed_and_shows_what_was_fetched() {
    use chatkeep::fake::{FakeConfig, PersonalitySpec};
    const MESSAGES: usize = 3000;
    let fake = fake(
        FakeConfig::default(),
        vec![PersonalitySpec::new("first", MESSAGES)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    // ~60 pages at 40 requests/s: caught mid-walk.
    let config = write_config(dir.path(), &fake.base_url(), &["first"], 40.0, "");
    let child = chatkeep(&config)
        .arg("sync")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fake.chat_requests("first") < 10 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // SIGINT, as Ctrl-C sends it.
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let sync = child.wait_with_output().unwrap();
    let requests = fake.chat_requests("first");
    assert!(requests < 50, "the walk did not stop early ({requests} requests)");
    let summary = String::from_utf8_lossy(&sync.stdout);
    assert!(
        summary.starts_with("first: interrupted; ")
            && summary.contains("; chat: interrupted, ")
            && summary.contains(" messages fetched and not stored yet"),
        "{}",
        text(&sync)
    );
    assert!(
        !String::from_utf8_lossy(&sync.stdout).contains("FAILED"),
        "{}",
        text(&sync)
    );

    let run = status(&config, true);
    assert_eq!(
        run.code,
        Some(0),
        "an interrupted first backup is no failure: {}",
        run.all
    );
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let first = &doc["personalities"][0];
    assert_eq!(
        (&first["outcome"], &first["messages"], &first["error"]),
        (&Value::from("interrupted"), &Value::from(0), &Value::Null),
        "{}",
        run.all
    );
    let spooled = first["spooled"].as_u64().unwrap();
    assert!(spooled > 0 && spooled < MESSAGES as u64, "{}", run.all);
    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
    assert_eq!(
        row(&run.stdout, "first")[2..4],
        ["interrupted", "0"],
        "{}",
        run.all
    );
    assert!(
        run.stdout.contains(&format!(
            "first: the chat history is still being fetched: {spooled} messages fetched, not stored yet"
        )),
        "{}",
        run.all
    );

    // Export writes what is stored, and says on stderr that it is not all.
    let out = chatkeep(&config)
        .args(["export", "first", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty(), "nothing is stored yet: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "warning: the chat history of `first` is still being fetched: {spooled} messages fetched are \
             not stored yet, so this export holds only the 0 stored"
        )),
        "{}",
        text(&out)
    );

    // The next sync resumes the walk and completes the history.
    let again = chatkeep(&config).arg("sync").output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(fake.chat_requests("first") < requests + 70);
    assert_complete(&export_lines(&load(&config), "first"), &fake, "first");
    let run = status(&config, false);
    assert_eq!(run.code, Some(0), "{}", run.all);
    assert_eq!(row(&run.stdout, "first")[2..4], ["ok", "3000"], "{}", run.all);
    assert!(!run.stdout.contains("still being fetched"), "{}", run.all);
    let out = chatkeep(&config).args(["export", "first"]).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
