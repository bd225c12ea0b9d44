//! Where and how the real binary logs: the journal's native protocol when
//! standard error is the journal, one text line per event elsewhere, the
//! `[log]` table honoured by `sync` as by the daemon, and a failed
//! personality's summary at WARN or ERROR.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use chatkeep::fake::{Fault, FaultPlan};
use common::*;

/// A fake whose chat requests all fail with 500: every sync of "lilith"
/// backs up her documents and fails her chat, a partial outcome.
async fn failing_chat() -> FakeService {
    fake(
        FakeConfig {
            faults: FaultPlan {
                probability: 1.0,
                random: vec![Fault::ServerError(500)],
                only_chat: true,
                ..FaultPlan::default()
            },
            ..FakeConfig::default()
        },
        vec![PersonalitySpec::new("lilith", 30)],
    )
    .await
}

/// A config for `fake` in `dir`, with `log` appended (a `[log]` table).
fn config_with(dir: &Path, fake: &FakeService, log: &str) -> PathBuf {
    let config = write_config(dir, &fake.base_url(), &["lilith"], 10_000.0, "max_retries = 1");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(log);
    std::fs::write(&config, text).unwrap();
    config
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Standard error given as a file whose `device:inode` is in
/// `JOURNAL_STREAM`, as systemd does for a service; the native messages
/// go to a socket the test listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_journal_events_go_natively_with_priorities_and_fields() {
    let fake = failing_chat().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), &fake, "");
    let socket_path = dir.path().join("journal.socket");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();

    let out = chatkeep(&config)
        .arg("sync")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("CHATKEEP_JOURNAL_SOCKET", &socket_path)
        .stderr(Stdio::from(stderr))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Ok(n) = socket.recv(&mut buf) {
        datagrams.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = datagrams.join("\n---\n");
    assert!(!all.contains(TOKEN), "the cookie leaked: {all}");
    let summary = datagrams
        .iter()
        .find(|d| d.contains("MESSAGE=lilith: partial; "))
        .unwrap_or_else(|| panic!("no summary among the datagrams: {all}"));
    let fields: Vec<&str> = summary.lines().collect();
    assert!(fields.contains(&"PRIORITY=4"), "{summary}");
    assert!(fields.contains(&"SYSLOG_IDENTIFIER=chatkeep"), "{summary}");
    assert!(fields.contains(&"PERSONALITY=lilith"), "{summary}");
    assert!(fields.contains(&"OUTCOME=partial"), "{summary}");
    assert!(fields.iter().any(|f| f.starts_with("ERROR=")), "{summary}");
    // Every datagram is NAME=value lines, the first its priority.
    for d in &datagrams {
        assert!(d.starts_with("PRIORITY="), "{d}");
        assert!(d.lines().all(|l| l.contains('=')), "{d}");
    }
    // Nothing of the log went to the stream as text.
    let written = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!written.contains("lilith: partial"), "{written}");
}

/// A `JOURNAL_STREAM` inherited by a process whose standard error is
/// something else (here a pipe) does not count: text lines as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inherited_journal_stream_that_is_not_stderr_keeps_text() {
    let fake = failing_chat().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), &fake, "");
    let socket_path = dir.path().join("journal.socket");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let out = chatkeep(&config)
        .arg("sync")
        .env("JOURNAL_STREAM", "1:1")
        .env("CHATKEEP_JOURNAL_SOCKET", &socket_path)
        .output()
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(socket.recv(&mut buf).is_err(), "a datagram was sent");
    assert!(
        stderr_lines(&out).iter().any(|l| l.contains("lilith: partial; ")),
        "{}",
        text(&out)
    );
}

/// Text mode: each event on one line, a failed summary at WARN with its
/// fields (the error too) on that line; standard output as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_summary_is_one_warning_line_with_its_fields() {
    let fake = failing_chat().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), &fake, "");
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = stderr_lines(&out);
    // Every line is an event of its own: a timestamp, then a level.
    for line in &lines {
        let level = line.split_whitespace().nth(1).unwrap_or("");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "a line that is not an event: {line:?}\n{}",
            text(&out)
        );
    }
    let summary: Vec<&String> = lines.iter().filter(|l| l.contains("lilith: partial; ")).collect();
    assert_eq!(summary.len(), 1, "{}", text(&out));
    let summary = summary[0];
    assert!(summary.contains(" WARN "), "{summary}");
    assert!(summary.contains("personality=\"lilith\""), "{summary}");
    assert!(summary.contains("outcome=\"partial\""), "{summary}");
    assert!(summary.contains("error="), "{summary}");
    assert!(!summary.contains("\\n"), "{summary}");
    // The lines for a person: the summary, then its error.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut printed = stdout.lines();
    assert!(
        printed.next().unwrap_or("").starts_with("lilith: partial; "),
        "{stdout}"
    );
    assert!(printed.next().unwrap_or("").starts_with("  error: "), "{stdout}");
}

/// `sync`, as the timer units run it, logs as `[log]` says: JSON lines, to
/// files in `dir` too; `check-config` still prints just the config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_honours_the_log_table() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 30)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), &fake, "\n[log]\ndir = \"logs\"\nformat = \"json\"\n");
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("lilith: ok; "),
        "{}",
        text(&out)
    );
    for line in stderr_lines(&out) {
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
    }

    let logs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("logs"))
        .expect("the log directory was made")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let written = std::fs::read_to_string(&logs[0]).unwrap();
    let summary = written
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["personality"] == "lilith")
        .unwrap_or_else(|| panic!("no summary in the log file: {written}"));
    assert_eq!(summary["level"], "INFO", "{summary}");
    assert_eq!(summary["fields"]["outcome"], "ok", "{summary}");
    assert!(!written.contains(TOKEN), "the cookie leaked: {written}");

    let check = chatkeep(&config).arg("check-config").output().unwrap();
    assert!(check.status.success(), "{}", text(&check));
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(printed.parse::<toml::Table>().is_ok(), "{printed}");
}

/// A command's fatal error, printed rather than logged, is filed as an
/// error by the journal too: systemd reads the `<3>` in front.
#[test]
fn on_the_journal_a_fatal_error_carries_its_priority() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    let store = chatkeep::store::Store::open(&dir.path().join("data")).unwrap();
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let out = chatkeep(&config)
        .arg("sync")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("CHATKEEP_JOURNAL_SOCKET", dir.path().join("nobody-listens"))
        .stderr(Stdio::from(stderr))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let written = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(written.starts_with("<3>error: "), "{written}");
    drop(store);
}

/// `status` and `export`, which root or a monitoring user may run beside
/// the daemon, say nothing of a log directory they cannot use, and print
/// what they printed; `check-config` points it out.
#[test]
fn status_is_quiet_about_a_log_directory_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    let before = chatkeep(&config).arg("status").output().unwrap();
    std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
    let mut text_of = std::fs::read_to_string(&config).unwrap();
    text_of.push_str("\n[log]\ndir = \"not-a-dir\"\n");
    std::fs::write(&config, text_of).unwrap();

    let after = chatkeep(&config).arg("status").output().unwrap();
    assert_eq!(after.status.code(), before.status.code(), "{}", text(&after));
    assert_eq!(after.stdout, before.stdout, "{}", text(&after));
    assert!(
        !String::from_utf8_lossy(&after.stderr).contains("cannot log to"),
        "{}",
        text(&after)
    );
    // check-config names the directory and fails on it.
    let check = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(check.status.code(), Some(2), "{}", text(&check));
    assert!(text(&check).contains("log.dir"), "{}", text(&check));
}
