//! The binary as a user meets it: config errors, exit codes, the demo,
//! the lock, and no secret in any output.

mod common;

use chatkeep::fake::{FakeConfig, PersonalitySpec};
use common::*;

#[test]
fn config_errors_name_file_line_and_column_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[service]\nbase_url = \"https://x.example\"\njargon = \"shapes\"\ncookie_file = \"c\"\n\n[storage]\ndata_dir = \"d\"\n\n[rate_limit]\nrequests_per_second = -1\n",
    )
    .unwrap();
    let out = chatkeep(&path).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:10:23:", path.display())), "{stderr}");
    assert!(stderr.contains("requests_per_second"), "{stderr}");

    std::fs::write(
        &path,
        "[service]\nbase_url = \"https://x.example\"\njargon = \"shapes\"\ncookie_flie = \"c\"\n",
    )
    .unwrap();
    let out = chatkeep(&path).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4:1:", path.display())) && stderr.contains("cookie_flie"),
        "{stderr}"
    );
}

#[test]
fn check_config_redacts_an_inline_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[service]\nbase_url = \"https://x.example\"\njargon = \"shapes\"\ncookie = \"{TOKEN}\"\n\n[storage]\ndata_dir = \"d\"\n"),
    )
    .unwrap();
    let out = chatkeep(&path).arg("check-config").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(TOKEN), "the cookie leaked: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[redacted]"));
}

/// Said once to the person, in words (the status files' `auth_expired` is
/// a name for machines), and never with the cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_cookie_exits_3_saying_so_without_printing_it() {
    let fake = fake(
        FakeConfig {
            cookie: Some((COOKIE_NAME.into(), "another-token".into())),
            ..FakeConfig::default()
        },
        vec![PersonalitySpec::new("lilith", 10)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let all = text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Once for the person (standard output), once in the log event on
    // standard error, whose `outcome` field keeps the status files' name.
    assert_eq!(
        stdout.matches("the session cookie is invalid or expired").count(),
        1,
        "{all}"
    );
    assert!(
        all.matches("the session cookie is invalid or expired").count() <= 2,
        "{all}"
    );
    assert!(
        stdout.contains("lilith: the service refused the session cookie; nothing was backed up"),
        "{all}"
    );
    assert!(!stdout.contains("auth_expired"), "{all}");
    assert!(all.contains("first request"), "{all}");
    assert!(!all.contains(TOKEN), "the cookie leaked: {all}");
    // Auth failures are not retried.
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_data_directory_exits_2_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    let store = chatkeep::store::Store::open(&dir.path().join("data")).unwrap();
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("pid {}", std::process::id())),
        "{}",
        text(&out)
    );
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lock_wait_a_second_sync_waits_for_the_holder_and_then_runs() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 60)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
    let store = chatkeep::store::Store::open(&dir.path().join("data")).unwrap();

    // A wait that runs out ends as without one: exit 2, naming the holder.
    let started = std::time::Instant::now();
    let out = chatkeep(&config)
        .args(["sync", "--lock-wait", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert!(
        text(&out).contains(&format!("pid {}", std::process::id())) && text(&out).contains("waited 1s"),
        "{}",
        text(&out)
    );
    assert!(fake.requests().is_empty(), "nothing asked while waiting");

    let waiting = chatkeep(&config)
        .args(["sync", "--lock-wait", "1m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(fake.requests().is_empty(), "it waits while the lock is held");
    drop(store);
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("waiting up to 1m"), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("lilith: "),
        "{}",
        text(&out)
    );
}

#[test]
fn demo_runs_offline_and_its_export_matches_the_fake() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("export --upstream-only matches"), "{stdout}");
    assert!(
        stdout.contains("1 revised (the earlier version kept), 1 gone upstream")
            && stdout.contains("the regenerated message has 2 versions"),
        "{stdout}"
    );
    assert!(dir.path().join("data/aria/aria.json").is_file());
    assert!(dir.path().join("exports/aria_chat_history.md").is_file());
    assert!(
        !text(&out).contains("demo-session-token"),
        "the demo cookie leaked"
    );

    // The commands it suggests work as printed, its service gone: each
    // `  $ ` line, run by a shell, the last one removing what it left.
    let commands: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("  $ ")).collect();
    assert!(commands.len() >= 4, "{stdout}");
    assert!(commands.iter().all(|c| !c.starts_with("chatkeep ")), "{stdout}");
    assert!(
        commands
            .iter()
            .any(|c| c.ends_with(" export bramble --format markdown")),
        "{stdout}"
    );
    for command in &commands {
        let run = std::process::Command::new("sh")
            .args(["-c", command])
            .env_remove("CHATKEEP_CONFIG")
            .output()
            .unwrap();
        assert!(run.status.success(), "{command}: {}", text(&run));
    }
    assert_eq!(
        commands.last().copied(),
        Some(format!("rm -r {}", dir.path().display()).as_str())
    );
    assert!(!dir.path().exists(), "the demo's directory is still there");
}

/// The config as `check-config` reads it, with `[daemon]` holding `daemon`
/// (from the line returned), without the test suite's allowance for fast schedules.
fn check_daemon(daemon: &str) -> (std::process::Output, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "https://x.example", &[], 1.0, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[daemon]\n");
    let place = format!("{}:{}", path.display(), text.lines().count() + 1);
    text.push_str(daemon);
    std::fs::write(&path, text).unwrap();
    let out = chatkeep(&path)
        .env_remove(FAST_SCHEDULES)
        .arg("check-config")
        .output()
        .unwrap();
    (out, place, dir)
}

#[test]
fn a_schedule_firing_more_often_than_the_shortest_interval_is_refused_with_its_place() {
    for schedule in ["* * * * * *", "*/5 * * * * *", "0,5 0 3 * * *"] {
        let (out, place, _dir) = check_daemon(&format!("schedule = {schedule:?}\n"));
        assert_eq!(out.status.code(), Some(2), "{schedule}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{place}:12:")), "{stderr}");
        assert!(
            stderr.contains("daemon.schedule must not run more often than every 10s"),
            "{stderr}"
        );
    }
    let (out, _, _dir) = check_daemon("schedule = \"*/10 * * * * *\"\n");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn durations_combine_units() {
    let (out, _, _dir) = check_daemon("interval = \"1h30m\"\n");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("interval = \"90m\""),
        "{}",
        text(&out)
    );
}

#[test]
fn usage_lines_do_not_show_config_as_required() {
    let dir = tempfile::tempdir().unwrap();
    let out = chatkeep(&dir.path().join("c.toml"))
        .env("CHATKEEP_CONFIG", dir.path().join("c.toml"))
        .arg("export")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Usage: chatkeep export <NAME>"), "{stderr}");
    // Set only in the environment, as systemd units and shells do.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .env("CHATKEEP_CONFIG", dir.path().join("c.toml"))
        .arg("export")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Usage: chatkeep export <NAME>"), "{stderr}");
    assert!(!stderr.contains("--config"), "{stderr}");
    // And the environment still names the config.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .env("CHATKEEP_CONFIG", dir.path().join("c.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("c.toml"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_a_thing_is_said_in_the_singular() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("solo", 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["solo"], 10_000.0, "");
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("valid, 1 personality\n"), "{}", text(&out));
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(" 1 requests"), "{}", text(&out));
    let file = dir.path().join("solo.jsonl");
    let out = chatkeep(&config)
        .args(["export", "solo", "-f", "jsonl", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("wrote 1 message of solo"), "{}", text(&out));
}
