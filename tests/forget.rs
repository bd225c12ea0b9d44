//! Stray and unwanted personality backups: `chatkeep forget NAME`, and a
//! sync of a name the service does not know, which must leave nothing
//! behind. The real binary, against the fake service where a sync is run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use chatkeep::fake::{FakeConfig, PersonalitySpec};
use common::*;

/// A config naming `names`, its data directory `<dir>/data` (not created).
/// Nothing listens at the service's address: forget needs no network.
fn setup(names: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", names, 1.0, "");
    let data = dir.path().join("data");
    (dir, config, data)
}

/// A backup of `name` as a sync leaves one, and a snapshot of it in the
/// default archive directory.
fn backup(data: &Path, name: &str) -> PathBuf {
    let dir = data.join(name);
    std::fs::create_dir_all(dir.join("segments")).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), "{}\n").unwrap();
    std::fs::write(dir.join("chat_state.json"), "{}\n").unwrap();
    std::fs::write(dir.join("segments/chat-1-2.jsonl.gz"), "x").unwrap();
    let snapshots = data.join("archives").join(name);
    std::fs::create_dir_all(&snapshots).unwrap();
    let snapshot = snapshots.join(format!("{name}-20260102T030405Z.tar.gz"));
    std::fs::write(&snapshot, "not really a tarball").unwrap();
    snapshot
}

/// `forget` with `args`, standard input not a terminal.
fn forget(config: &Path, args: &[&str]) -> Output {
    chatkeep(config)
        .arg("forget")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn forget_is_refused_while_the_name_is_configured() {
    let (_dir, config, data) = setup(&["lilith"]);
    backup(&data, "lilith");
    let out = forget(&config, &["lilith", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("`lilith` is configured") && all.contains("remove it from the config first"),
        "{all}"
    );
    assert!(data.join("lilith/lilith.json").is_file(), "the backup is gone");
}

#[test]
fn forget_without_a_terminal_needs_yes() {
    let (_dir, config, data) = setup(&["lilith"]);
    backup(&data, "old-friend");
    let out = forget(&config, &["old-friend"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("pass --yes"), "{}", text(&out));
    assert!(
        data.join("old-friend/old-friend.json").is_file(),
        "removed unasked"
    );
}

#[test]
fn forget_with_yes_removes_the_backup_and_keeps_the_snapshots() {
    let (_dir, config, data) = setup(&["lilith"]);
    backup(&data, "lilith");
    let snapshot = backup(&data, "old-friend");
    let out = forget(&config, &["old-friend", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("forgot `old-friend`")
            && stdout.contains("snapshot in")
            && stdout.contains("is kept"),
        "{stdout}"
    );
    assert!(!data.join("old-friend").exists(), "{}", text(&out));
    assert!(snapshot.is_file(), "a snapshot was touched");
    assert!(
        data.join("lilith/lilith.json").is_file(),
        "another backup was touched"
    );
    let hidden: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".removing"))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");

    // Nothing left to forget.
    let again = forget(&config, &["old-friend", "--yes"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("nothing to forget"), "{}", text(&again));
}

#[test]
fn forget_is_refused_while_the_data_directory_is_held() {
    let (_dir, config, data) = setup(&["lilith"]);
    backup(&data, "old-friend");
    let held = chatkeep::store::Store::open(&data).unwrap();
    let out = forget(&config, &["old-friend", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "in use by another chatkeep process (pid {})",
            std::process::id()
        )),
        "{}",
        text(&out)
    );
    assert!(data.join("old-friend/old-friend.json").is_file());
    drop(held);
}

#[test]
fn forget_is_in_the_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("forget"), "{help}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .args(["forget", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--yes") && help.contains("Snapshots"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_of_an_unknown_name_says_check_the_spelling_and_leaves_nothing() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 5)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
    let data = dir.path().join("data");

    let out = chatkeep(&config).args(["sync", "otherone"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("no such personality `otherone` (check the spelling)"),
        "{all}"
    );
    assert!(!all.contains("not found upstream"), "{all}");
    assert!(!data.join("otherone").exists(), "a directory was left: {all}");

    // `status` does not list it.
    let sync = chatkeep(&config).arg("sync").output().unwrap();
    assert!(sync.status.success(), "{}", text(&sync));
    let status = chatkeep(&config).arg("status").output().unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(!text(&status).contains("otherone"), "{}", text(&status));

    // What an earlier version left (a status file and nothing else) is
    // named, with the command that removes it.
    std::fs::create_dir_all(data.join("otherone")).unwrap();
    std::fs::write(data.join("otherone/status.json"), "{}").unwrap();
    let out = chatkeep(&config).args(["sync", "otherone"]).output().unwrap();
    assert!(
        text(&out).contains("check the spelling") && text(&out).contains("chatkeep forget otherone"),
        "{}",
        text(&out)
    );
    let out = forget(&config, &["otherone", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!data.join("otherone").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_no_longer_upstream_is_kept_and_said_so() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 5)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
    let data = dir.path().join("data");
    backup(&data, "gone");
    let out = chatkeep(&config).args(["sync", "gone"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("`gone` was not found upstream (deleted or renamed?); its backup in"),
        "{}",
        text(&out)
    );
    assert!(data.join("gone/gone.json").is_file());
    assert!(data.join("gone/status.json").is_file());
}

/// On a terminal (`script`, from Debian's essential bsdutils, gives one),
/// forget asks and only a yes removes. Fails, naming it, where `script` is
/// missing (`.ci/run` installs it).
#[test]
fn forget_on_a_terminal_asks_and_only_yes_removes() {
    let script = Path::new("/usr/bin/script");
    assert!(
        script.exists(),
        "this test needs /usr/bin/script (bsdutils) to give forget a terminal"
    );
    let (_dir, config, data) = setup(&["lilith"]);
    backup(&data, "old-friend");
    let answer = |reply: &str| {
        let command = format!(
            "'{}' --config '{}' forget old-friend",
            env!("CARGO_BIN_EXE_chatkeep"),
            config.display()
        );
        let mut child = std::process::Command::new(script)
            .args(["-qec", &command, "/dev/null"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), reply.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = answer("n\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("[y/N]") && text(&out).contains("nothing removed"),
        "{}",
        text(&out)
    );
    assert!(data.join("old-friend/old-friend.json").is_file());
    let out = answer("y\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!data.join("old-friend").exists(), "{}", text(&out));
}
