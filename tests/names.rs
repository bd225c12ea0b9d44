//! Names that would escape the data directory are refused wherever a name
//! comes in: the config file, the command line, the service's listings and
//! the `id` in a profile. Nothing is ever written outside the data
//! directory.

mod common;

use std::path::{Path, PathBuf};

use chatkeep::api::PersonalityId;
use chatkeep::fake::{FakeConfig, PersonalitySpec};
use common::*;

/// Every file and directory under `root`, relative to it.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_owned());
            if path.is_dir() {
                todo.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Only the config, the cookie and the data directory are in `dir`.
fn assert_nothing_outside_data(dir: &Path) {
    for path in tree(dir) {
        assert!(
            path.starts_with("data") || path == Path::new("config.toml") || path == Path::new("cookie"),
            "{} was written outside the data directory",
            path.display()
        );
    }
}

const TOO_LONG: usize = 101;

/// Names as TOML string literals, and what the message must say.
fn bad_names() -> Vec<(String, &'static str)> {
    vec![
        ("\"../x\"".into(), "not '/'"),
        ("\"a/b\"".into(), "not '/'"),
        ("\"..\"".into(), "cannot start with '.'"),
        ("\"a\\u0000b\"".into(), "not '\\0'"),
        (format!("\"{}\"", "x".repeat(TOO_LONG)), "at most 100 characters"),
        ("\"status.json\"".into(), "chatkeep's own files"),
    ]
}

#[test]
fn the_config_refuses_names_that_escape_the_data_directory() {
    for (name, says) in bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "http://127.0.0.1:9", &[], 1.0, "");
        let mut toml = std::fs::read_to_string(&path).unwrap();
        let line = toml.lines().count() + 3;
        toml.push_str(&format!("\n[[personality]]\nname = {name}\n"));
        std::fs::write(&path, toml).unwrap();
        for command in ["check-config", "sync"] {
            let out = chatkeep(&path).arg(command).output().unwrap();
            let all = text(&out);
            assert_eq!(out.status.code(), Some(2), "{name}: {all}");
            assert!(
                all.contains(&format!("{}:{line}:8: personality.name", path.display())),
                "{name}: no position in {all}"
            );
            assert!(all.contains(says), "{name}: `{says}` not in {all}");
        }
        assert!(
            !dir.path().join("data").exists(),
            "{name}: the data directory was made"
        );
    }
}

#[test]
fn the_command_line_refuses_names_that_escape_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["ok"], 1.0, "");
    let long = "x".repeat(TOO_LONG);
    for (args, says) in [
        (vec!["sync", "../x"], "not '/'"),
        (vec!["sync", "ok", "a/b"], "not '/'"),
        (vec!["sync", ".."], "cannot start with '.'"),
        (vec!["sync", long.as_str()], "at most 100 characters"),
        (vec!["sync", "archives"], "chatkeep's own files"),
        (vec!["export", "../../etc/passwd"], "not '/'"),
        (vec!["export", "."], "cannot start with '.'"),
    ] {
        let out = chatkeep(&config).args(&args).output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {all}");
        assert!(all.contains("invalid value"), "{args:?}: {all}");
        assert!(all.contains(says), "{args:?}: `{says}` not in {all}");
    }
    // Arguments cannot carry NUL at all; the config and the client refuse it.
    assert!(!dir.path().join("data").exists(), "the data directory was made");
}

#[test]
fn the_client_refuses_personality_ids_that_could_change_a_path() {
    for bad in [
        "../../etc",
        "..",
        ".",
        "a/b",
        "a\\b",
        "a\0b",
        "%2e%2e%2f",
        "a?b=c",
        "a#b",
        "é",
        "",
        &"x".repeat(129),
    ] {
        assert!(PersonalityId::new(bad).is_none(), "{bad:?} accepted");
    }
    assert!(PersonalityId::new(&"x".repeat(128)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_whose_id_escapes_the_data_directory_is_refused() {
    for bad_id in ["../../etc", "a/b", "..", "%2e%2e", "a\u{0}b", &"x".repeat(200)] {
        let mut spec = PersonalitySpec::new("host", 20);
        spec.id = bad_id.to_owned();
        let fake = fake(FakeConfig::default(), vec![spec]).await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &fake.base_url(), &["host"], 10_000.0, "");
        let out = chatkeep(&config).arg("sync").output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{bad_id:?}: {all}");
        assert!(
            all.contains("profile of host has an `id` that could change a request path"),
            "{bad_id:?}: {all}"
        );
        // Only the profile was asked for: no path was built from the id.
        let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths, ["/api/shapes/username/host"], "{bad_id:?}");
        assert_nothing_outside_data(dir.path());
        assert!(
            !dir.path().join("data/host/chat_state.json").exists(),
            "{bad_id:?}: a chat store was made"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_personalities_whose_names_escape_are_skipped() {
    let specs = vec![
        PersonalitySpec::new("good", 20),
        PersonalitySpec::new("../evil", 20),
        PersonalitySpec::new("a/b", 20),
        PersonalitySpec::new(".hidden", 20),
    ];
    let fake = fake(FakeConfig::default(), specs).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &[], 10_000.0, "");
    let out = chatkeep(&config).args(["sync", "--all"]).output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(
        all.matches("skipping a listed personality whose name cannot be a directory")
            .count(),
        3,
        "{all}"
    );
    assert_nothing_outside_data(dir.path());
    let personalities: Vec<PathBuf> = tree(&dir.path().join("data"))
        .into_iter()
        .filter(|p| p.components().count() == 1 && dir.path().join("data").join(p).is_dir())
        // The search index has its directory beside the personalities'.
        .filter(|p| p != Path::new(chatkeep::search::INDEX_DIR))
        .collect();
    assert_eq!(personalities, [PathBuf::from("good")]);
    assert_complete(&export_lines(&load(&config), "good"), &fake, "good");
}
