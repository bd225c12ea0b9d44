//! `chatkeep export` as a user runs it: the Markdown transcript (days,
//! times, the display name, regenerated replies), `--format md`, `-o DIR`
//! and `--since`/`--until`.

mod common;

use std::path::Path;

use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use common::*;

const NAME: &str = "lilith";

/// Ten messages six hours apart from 2023-11-14T22:13:20Z, so across
/// three days, under the display name "Lady Lilith"; the newest reply
/// regenerated once before the backup.
async fn backed_up() -> (FakeService, tempfile::TempDir, std::path::PathBuf) {
    let mut spec = PersonalitySpec::new(NAME, 10);
    spec.display_name = "Lady Lilith".into();
    spec.step_ms = 6 * 3600 * 1000;
    let fake = fake(FakeConfig::default(), vec![spec]).await;
    fake.regenerate_nth_newest(NAME, 0);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (fake, dir, config)
}

fn export(config: &Path, args: &[&str]) -> std::process::Output {
    chatkeep(config)
        .arg("export")
        .arg(NAME)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_groups_by_day_with_times_the_display_name_and_regenerated_replies() {
    let (_fake, _dir, config) = backed_up().await;
    let md = stdout(&export(&config, &["--format", "markdown"]));
    assert!(md.starts_with("# Chat history with Lady Lilith\n"), "{md}");
    // 22:13, 04:13, 10:13, 16:13 ...: four days touched, one heading each.
    let days: Vec<&str> = md.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        days,
        ["## 2023-11-14", "## 2023-11-15", "## 2023-11-16", "## 2023-11-17"],
        "{md}"
    );
    assert!(!md.contains("### "), "no heading per message: {md}");
    assert!(md.contains("**22:13** **You:** "), "{md}");
    assert!(md.contains("**04:13** **You:** "), "{md}");
    assert_eq!(md.matches("**Lady Lilith:** ").count(), 10, "{md}");
    assert!(!md.contains("**lilith:**"), "the slug is not the name: {md}");
    assert_eq!(md.matches("*Earlier reply, regenerated:* ").count(), 1, "{md}");
    // The regenerated reply comes after the current one, in the newest message.
    let last_day = md.rsplit("## ").next().unwrap();
    assert!(last_day.contains("*Earlier reply, regenerated:*"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_falls_back_to_the_slug_without_a_profile_and_md_is_an_alias() {
    let (_fake, dir, config) = backed_up().await;
    let md = stdout(&export(&config, &["--format", "md"]));
    assert!(md.starts_with("# Chat history with Lady Lilith\n"), "{md}");
    std::fs::remove_file(dir.path().join("data").join(NAME).join(format!("{NAME}.json"))).unwrap();
    let md = stdout(&export(&config, &["-f", "md"]));
    assert!(md.starts_with("# Chat history with lilith\n"), "{md}");
    assert!(md.contains("**lilith:** "), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_into_a_directory_writes_the_named_file() {
    let (_fake, dir, config) = backed_up().await;
    let into = dir.path().join("exports");
    std::fs::create_dir(&into).unwrap();
    for (format, file) in [
        ("md", "lilith_chat_history.md"),
        ("jsonl", "lilith_chat_history.jsonl"),
        ("json", "lilith_chat_history.json"),
        ("conversations", "lilith_conversations.jsonl"),
    ] {
        let out = export(&config, &["--format", format, "-o", into.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{format}: {}", text(&out));
        let written = into.join(file);
        assert!(written.is_file(), "{format}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&written.display().to_string()));
    }
    let jsonl = std::fs::read_to_string(into.join("lilith_chat_history.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_and_until_keep_the_messages_of_those_days() {
    let (_fake, _dir, config) = backed_up().await;
    // 2023-11-15: 04:13, 10:13, 16:13, 22:13; 2023-11-16: four more.
    let jsonl = stdout(&export(
        &config,
        &[
            "--format",
            "jsonl",
            "--since",
            "2023-11-15",
            "--until",
            "2023-11-16",
        ],
    ));
    assert_eq!(jsonl.lines().count(), 8, "{jsonl}");
    let json = stdout(&export(&config, &["--since", "2023-11-16T22:13:20Z"]));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["message_count"], 2, "{json}");
    assert_eq!(doc["messages"].as_array().unwrap().len(), 2);
    assert_eq!(doc["date_range"]["earliest"], "2023-11-16T22:13:20.000Z");
    let md = stdout(&export(
        &config,
        &["--format", "md", "--until", "2023-11-14T22:13:20Z"],
    ));
    assert_eq!(md.matches("**You:**").count(), 1, "{md}");
    let out = export(&config, &["--since", "last week"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("RFC 3339"), "{}", text(&out));
}
