//! Snapshots, retention, verify, restore and encryption: the store synced
//! from the fake service over loopback, then archived by the library (with
//! chosen times) or by the real binary.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use chatkeep::archive::{self, ArchiveOutcome, Manifest};
use chatkeep::commands::sync::{Selection, run_pass};
use chatkeep::config::Config;
use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use chatkeep::store::{Store, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use common::*;
use tokio_util::sync::CancellationToken;

/// Keeps every snapshot: retention out of the way.
const KEEP_ALL: &str = "skip_unchanged = false\nkeep_last = 1000\n";

/// A synced store of `personalities` and a config whose `[archive]` holds
/// `archive`.
struct Backup {
    fake: FakeService,
    dir: tempfile::TempDir,
    /// The config file without its `[archive]` table.
    base: String,
    path: PathBuf,
    config: Config,
}

async fn backup(personalities: &[(&str, usize)], archive: &str) -> Backup {
    let specs = personalities
        .iter()
        .map(|(name, n)| PersonalitySpec::new(*name, *n))
        .collect();
    let fake = fake(FakeConfig::default(), specs).await;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<&str> = personalities.iter().map(|(n, _)| *n).collect();
    let path = write_config(dir.path(), &fake.base_url(), &names, 10_000.0, "");
    let base = fs::read_to_string(&path).unwrap();
    let mut backup = Backup {
        fake,
        dir,
        base,
        config: load(&path),
        path,
    };
    backup.set_archive(archive);
    backup.sync().await;
    backup
}

impl Backup {
    /// Replaces the `[archive]` table of the config.
    fn set_archive(&mut self, archive: &str) {
        fs::write(&self.path, format!("{}\n[archive]\n{archive}\n", self.base)).unwrap();
        self.config = load(&self.path);
    }

    async fn sync(&self) {
        let outcome = run_pass(&self.config, &[], Selection::default(), &CancellationToken::new())
            .await
            .unwrap();
        assert!(outcome.all_ok(), "{:?}", outcome.reports);
    }

    fn data(&self, name: &str) -> PathBuf {
        self.config.storage.data_dir.join(name)
    }

    fn archives(&self, name: &str) -> PathBuf {
        self.config.archive.dir.join(name)
    }

    fn manifest(&self, name: &str) -> Manifest {
        Manifest::load(&self.archives(name), name).unwrap()
    }

    /// The snapshot files and others in the archive directory, sorted.
    fn files(&self, name: &str) -> Vec<String> {
        let mut files: Vec<String> = fs::read_dir(self.archives(name))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    }

    /// The data directory, held. Another test's thread forking a child
    /// while this test's previous hold was still open gives the child a
    /// copy of the lock until it execs; so a refusal is tried again.
    fn store(&self) -> Store {
        for _ in 0..50 {
            match Store::open(&self.config.storage.data_dir) {
                Ok(store) => return store,
                Err(StoreError::Locked { .. }) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the data directory stays locked")
    }

    /// A snapshot by the library, as the daemon makes them, dated `time`.
    fn snapshot_at(&self, name: &str, time: DateTime<Utc>) -> ArchiveOutcome {
        archive::archive_personality_at(&self.store(), &self.config, name, time).unwrap()
    }

    /// The binary, tried again while the data directory is refused as held
    /// by this test process, which it is not (see [`Backup::store`]).
    fn run(&self, args: &[&str]) -> Output {
        let held_by_us = format!("in use by another chatkeep process (pid {})", std::process::id());
        for _ in 0..50 {
            let out = self.run_once(args);
            if !String::from_utf8_lossy(&out.stderr).contains(&held_by_us) {
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the data directory stays locked")
    }

    fn run_once(&self, args: &[&str]) -> Output {
        chatkeep(&self.path).args(args).output().unwrap()
    }
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, hour, 0, 0).unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The export with its `export_date` line taken out.
fn without_export_date(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("\"export_date\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_holds_exactly_what_the_store_holds() {
    let b = backup(&[("aria", 300), ("bramble", 20)], "").await;
    let out = b.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("aria: wrote aria-"), "{}", text(&out));
    // Each result once: printed, not logged as well.
    let file = b.manifest("aria").snapshots[0].file.clone();
    assert_eq!(text(&out).matches(&file).count(), 1, "{}", text(&out));
    let again = b.run(&["archive", "aria"]);
    assert_eq!(
        text(&again).matches("nothing changed").count(),
        1,
        "{}",
        text(&again)
    );

    for (name, messages) in [("aria", 300), ("bramble", 20)] {
        let manifest = b.manifest(name);
        let [entry] = manifest.snapshots.as_slice() else {
            panic!("{manifest:?}")
        };
        assert!(entry.file.starts_with(&format!("{name}-")) && entry.file.ends_with(".tar.gz"));
        assert_eq!(entry.message_count, messages);
        assert!(!entry.encrypted);
        let snapshot = b.archives(name).join(&entry.file);
        assert_eq!(fs::metadata(&snapshot).unwrap().len(), entry.size);
        assert_eq!((mode(&snapshot), mode(&b.archives(name))), (0o600, 0o700));

        // Unpacked, every document is byte-equal to the store's and the chat
        // history is what `chatkeep export` writes.
        let to = b.dir.path().join(format!("restored-{name}"));
        let out = b.run(&[
            "restore",
            name,
            "--snapshot",
            "latest",
            "--to",
            to.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let suffixes = [
            "",
            "_memories",
            "_knowledge",
            "_training",
            "_user_personalization",
        ];
        for suffix in suffixes {
            let file = format!("{name}{suffix}.json");
            assert_eq!(
                fs::read(to.join(&file)).unwrap(),
                fs::read(b.data(name).join(&file)).unwrap(),
                "{file}"
            );
        }
        let export = b.dir.path().join(format!("{name}.export.json"));
        let out = b.run(&["export", name, "-o", export.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let archived = fs::read_to_string(to.join(format!("{name}_chat_history.json"))).unwrap();
        let exported = fs::read_to_string(&export).unwrap();
        assert_eq!(without_export_date(&archived), without_export_date(&exported));
        let history: serde_json::Value = serde_json::from_str(&archived).unwrap();
        assert_eq!(history["message_count"], messages);
        assert_eq!(
            history["date_range"]["earliest"].as_str(),
            entry.first_message.as_deref()
        );
        assert_eq!(
            history["date_range"]["latest"].as_str(),
            entry.last_message.as_deref()
        );
        let mut members: Vec<String> = fs::read_dir(&to)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        members.sort();
        let mut listed = entry.members.clone();
        listed.sort();
        assert_eq!(members, listed);
        assert_eq!(listed.len(), 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_store_makes_no_new_snapshot() {
    let b = backup(&[("aria", 60)], "").await;
    let first = b.snapshot_at("aria", at(1, 0));
    assert!(first.written.is_some());
    let again = b.snapshot_at("aria", at(1, 1));
    assert!(again.written.is_none());
    assert_eq!(again.newest.unwrap().time, at(1, 0));
    let out = b.run(&["archive", "aria"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("nothing changed since aria-20260101T000000Z.tar.gz"),
        "{}",
        text(&out)
    );
    assert_eq!(b.manifest("aria").snapshots.len(), 1);

    // New messages are a change.
    b.fake.append_messages("aria", 5);
    b.sync().await;
    let changed = b.snapshot_at("aria", at(1, 2));
    assert_eq!(changed.written.unwrap().entry.message_count, 65);
    assert_eq!(b.manifest("aria").snapshots.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_newest_snapshot_is_made_again_though_nothing_changed() {
    let b = backup(&[("aria", 10)], "").await;
    let first = b.snapshot_at("aria", at(1, 0)).written.unwrap().entry;
    fs::remove_file(b.archives("aria").join(&first.file)).unwrap();
    let again = b.snapshot_at("aria", at(1, 1));
    assert_eq!(again.written.unwrap().entry.time, at(1, 1));
}

#[test]
fn a_long_name_and_an_empty_history_round_trip() {
    // 100 characters, the longest slug: member names pass tar's 100-byte
    // field and need GNU long names.
    let name = "n".repeat(100);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "http://127.0.0.1:9", &[&name], 1.0, "");
    let config = load(&path);
    let source = config.storage.data_dir.join(&name);
    fs::create_dir_all(&source).unwrap();
    let profile = source.join(format!("{name}.json"));
    let personalization = source.join(format!("{name}_user_personalization.json"));
    fs::write(&profile, b"{\"name\": \"n\"}\n").unwrap();
    fs::write(&personalization, b"[]").unwrap();
    {
        let store = Store::open(&config.storage.data_dir).unwrap();
        let outcome = archive::archive_personality(&store, &config, &name).unwrap();
        let entry = outcome.written.unwrap().entry;
        assert_eq!((entry.message_count, entry.first_message), (0, None));
        assert_eq!(entry.members.len(), 3);
    }
    let out = chatkeep(&path).args(["verify", "--latest"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let to = dir.path().join("restored");
    let out = chatkeep(&path)
        .args([
            "restore",
            &name,
            "--snapshot",
            "latest",
            "--to",
            to.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read(to.join(format!("{name}_user_personalization.json"))).unwrap(),
        b"[]"
    );
    let history: serde_json::Value =
        serde_json::from_slice(&fs::read(to.join(format!("{name}_chat_history.json"))).unwrap()).unwrap();
    assert_eq!(history["message_count"], 0);
    assert_eq!(history["messages"], serde_json::json!([]));
    assert_eq!(history["date_range"]["earliest"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_unchanged_off_makes_a_snapshot_every_time_with_unique_times() {
    let b = backup(&[("aria", 10)], KEEP_ALL).await;
    b.snapshot_at("aria", at(1, 0));
    b.snapshot_at("aria", at(1, 0));
    let times: Vec<_> = b.manifest("aria").snapshots.iter().map(|e| e.time).collect();
    assert_eq!(times, [at(1, 0), at(1, 0) + chrono::TimeDelta::seconds(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_is_applied_after_each_snapshot() {
    let b = backup(
        &[("aria", 10)],
        "skip_unchanged = false\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
    )
    .await;
    for hour in 0..5 {
        b.snapshot_at("aria", at(1, hour));
    }
    let times: Vec<_> = b.manifest("aria").snapshots.iter().map(|e| e.time).collect();
    assert_eq!(times, [at(1, 3), at(1, 4)]);
    assert_eq!(
        b.files("aria"),
        [
            "aria-20260101T030000Z.tar.gz",
            "aria-20260101T040000Z.tar.gz",
            "manifest.json"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_daily_keeps_the_newest_of_each_day() {
    let mut b = backup(&[("aria", 10)], KEEP_ALL).await;
    for time in [at(1, 10), at(1, 12), at(2, 9), at(3, 8), at(3, 20)] {
        b.snapshot_at("aria", time);
    }
    b.set_archive("keep_last = 0\nkeep_daily = 2\nkeep_weekly = 0\nkeep_monthly = 0\n");
    let out = b.run(&["prune", "aria"]);
    assert!(out.status.success(), "{}", text(&out));
    let times: Vec<_> = b.manifest("aria").snapshots.iter().map(|e| e.time).collect();
    assert_eq!(times, [at(2, 9), at(3, 20)], "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_dry_run_lists_what_it_would_do_and_changes_nothing() {
    let mut b = backup(&[("aria", 10)], KEEP_ALL).await;
    for hour in 0..4 {
        b.snapshot_at("aria", at(1, hour));
    }
    let files = b.files("aria");
    let manifest = fs::read(b.archives("aria").join("manifest.json")).unwrap();
    b.set_archive("keep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n");

    let out = b.run(&["prune", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = stdout(&out);
    assert!(said.contains("dry run"), "{said}");
    assert!(
        said.contains("keep          aria-20260101T030000Z.tar.gz  last"),
        "{said}"
    );
    for hour in 0..3 {
        assert!(
            said.contains(&format!("would remove  aria-20260101T0{hour}0000Z.tar.gz")),
            "{said}"
        );
    }
    assert!(said.contains("aria: 1 kept, 3 to remove"), "{said}");
    assert_eq!(b.files("aria"), files);
    assert_eq!(
        fs::read(b.archives("aria").join("manifest.json")).unwrap(),
        manifest
    );

    let out = b.run(&["prune"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("aria: 1 kept, 3 removed"), "{}", text(&out));
    assert_eq!(b.files("aria"), ["aria-20260101T030000Z.tar.gz", "manifest.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_cut_short_after_the_manifest_leaves_a_state_the_next_run_accepts() {
    let b = backup(&[("aria", 10)], KEEP_ALL).await;
    for hour in 0..3 {
        b.snapshot_at("aria", at(1, hour));
    }
    // Killed after writing the manifest without two snapshots, before
    // deleting their files; and a snapshot cut short before its rename.
    let dir = b.archives("aria");
    let mut manifest = b.manifest("aria");
    manifest.snapshots.retain(|e| e.time == at(1, 2));
    manifest.save(&dir).unwrap();
    // 4194305 is above Linux's largest pid: no live process has it.
    let temp = ".aria-20260101T030000Z.tar.gz.tmp-4194305";
    fs::write(dir.join(temp), b"half a snapshot").unwrap();

    let out = b.run(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = stdout(&out);
    assert!(
        said.contains("aria-20260101T000000Z.tar.gz: not in the manifest"),
        "{said}"
    );
    assert!(said.contains(&format!("{temp}: not in the manifest")), "{said}");

    let out = b.run(&["prune"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("(left by an interrupted run)"),
        "{}",
        text(&out)
    );
    assert_eq!(b.files("aria"), ["aria-20260101T020000Z.tar.gz", "manifest.json"]);
    let out = b.run(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stdout(&out).contains("not in the manifest"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_each_damaged_snapshot_and_what_is_wrong() {
    let b = backup(&[("aria", 200)], KEEP_ALL).await;
    for day in 1..=5 {
        b.snapshot_at("aria", at(day, 0));
    }
    let out = b.run(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&out).matches(": ok, 200 messages").count(),
        6,
        "{}",
        text(&out)
    );

    let dir = b.archives("aria");
    let file = |day: u32| dir.join(format!("aria-202601{day:02}T000000Z.tar.gz"));
    // 1: one flipped byte.
    let mut bytes = fs::read(file(1)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(file(1), &bytes).unwrap();
    // 2: truncated.
    let bytes = fs::read(file(2)).unwrap();
    fs::write(file(2), &bytes[..bytes.len() / 2]).unwrap();
    // 3: gone.
    fs::remove_file(file(3)).unwrap();
    // 4: the manifest disagrees about the message count.
    let mut manifest = b.manifest("aria");
    let entry = manifest
        .snapshots
        .iter_mut()
        .find(|e| e.time == at(4, 0))
        .unwrap();
    entry.message_count = 201;
    manifest.save(&dir).unwrap();

    let out = b.run(&["verify", "aria"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = stdout(&out);
    let line = |day: u32, needle: &str| {
        let prefix = format!("{}: ", file(day).display());
        assert!(
            said.lines().any(|l| l.starts_with(&prefix) && l.contains(needle)),
            "no line {prefix}...{needle} in:\n{said}"
        );
    };
    line(1, "SHA-256: the manifest says");
    line(
        2,
        &format!(
            "size: the manifest says {} bytes, the file has {}",
            bytes.len(),
            bytes.len() / 2
        ),
    );
    line(2, "SHA-256");
    line(3, "missing: the manifest lists it, but the file is not there");
    line(
        4,
        "aria_chat_history.json: the manifest says 201 messages, the snapshot holds 200",
    );
    line(5, "ok, 200 messages");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("problems found"),
        "{}",
        text(&out)
    );

    // --latest checks only the newest, which is sound.
    let out = b.run(&["verify", "--latest"]);
    assert!(out.status.success(), "{}", text(&out));

    // The live store against its state.
    let state_path = b.data("aria").join("chat_state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    state["message_count"] = 199.into();
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = b.run(&["verify", "--latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("chat state: says 199 messages, the chat log"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_snapshots_round_trip_with_the_identity_and_only_with_it() {
    let mut b = backup(&[("aria", 120)], "").await;
    let key = b.dir.path().join("key.txt");
    let public = identity_file(&key);
    let other = b.dir.path().join("other.txt");
    identity_file(&other);
    b.set_archive(&format!("age_recipients = [\"{public}\"]\n"));
    let key = key.to_str().unwrap();
    let other = other.to_str().unwrap();

    let out = b.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    let entry = b.manifest("aria").snapshots[0].clone();
    assert!(
        entry.encrypted && entry.file.ends_with(".tar.gz.age"),
        "{entry:?}"
    );
    let snapshot = b.archives("aria").join(&entry.file);
    let bytes = fs::read(&snapshot).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        !bytes.windows(9).any(|w| w == b"aria.json"),
        "plaintext in the file"
    );

    // Without the identity: the SHA-256 only, and saying so.
    let out = b.run(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("size and SHA-256 ok; encrypted, so its content was not checked"),
        "{}",
        text(&out)
    );
    // With it: everything.
    let out = b.run(&["verify", "--identity", key]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(".tar.gz.age: ok, 120 messages"),
        "{}",
        text(&out)
    );
    // With another: a clear failure.
    let out = b.run(&["verify", "--identity", other]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "cannot decrypt it with the identity in {other}: none of the identities given can decrypt it"
        )),
        "{}",
        text(&out)
    );

    let to = b.dir.path().join("restored");
    let to_str = to.to_str().unwrap();
    let out = b.run(&["restore", "aria", "--snapshot", "latest", "--to", to_str]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is encrypted; give the age identity"),
        "{}",
        text(&out)
    );
    let out = b.run(&[
        "restore",
        "aria",
        "--snapshot",
        "latest",
        "--to",
        to_str,
        "--identity",
        other,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("none of the identities given can decrypt it; it was encrypted to other recipients"),
        "{}",
        text(&out)
    );
    assert!(!to.join("aria.json").exists());
    let out = b.run(&[
        "restore",
        "aria",
        "--snapshot",
        &entry.file,
        "--to",
        to_str,
        "--identity",
        key,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read(to.join("aria_memories.json")).unwrap(),
        fs::read(b.data("aria").join("aria_memories.json")).unwrap()
    );
    let history: serde_json::Value =
        serde_json::from_slice(&fs::read(to.join("aria_chat_history.json")).unwrap()).unwrap();
    assert_eq!(history["messages"].as_array().unwrap().len(), 120);

    // An identity file that is not one fails before anything is read.
    fs::write(b.dir.path().join("bad.txt"), "AGE-SECRET-KEY-1NOTAKEY\n").unwrap();
    let out = b.run(&[
        "verify",
        "--identity",
        b.dir.path().join("bad.txt").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("cannot read the age identity file"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("NOTAKEY"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_to_overwrite_without_force() {
    let b = backup(&[("aria", 30)], "").await;
    b.snapshot_at("aria", at(1, 0));
    let to = b.dir.path().join("restored");
    fs::create_dir(&to).unwrap();
    fs::write(to.join("aria.json"), b"mine").unwrap();
    let to_str = to.to_str().unwrap();

    let out = b.run(&[
        "restore",
        "aria",
        "--snapshot",
        "20260101T000000Z",
        "--to",
        to_str,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refusing to overwrite"), "{}", text(&out));
    assert!(text(&out).contains(&to.join("aria.json").display().to_string()));
    assert_eq!(fs::read(to.join("aria.json")).unwrap(), b"mine");
    assert!(
        !to.join("aria_chat_history.json").exists(),
        "a refused restore wrote something"
    );

    let out = b.run(&[
        "restore",
        "aria",
        "--snapshot",
        "2026-01-01T00:00:00Z",
        "--to",
        to_str,
        "--force",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("restored 6 files of aria-20260101T000000Z.tar.gz"),
        "{}",
        text(&out)
    );
    assert_eq!(
        fs::read(to.join("aria.json")).unwrap(),
        fs::read(b.data("aria").join("aria.json")).unwrap()
    );

    let out = b.run(&[
        "restore",
        "aria",
        "--snapshot",
        "20250101T000000Z",
        "--to",
        to_str,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "no snapshot of `aria` matches \"20250101T000000Z\"; there are: aria-20260101T000000Z.tar.gz"
        ),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_never_writes_outside_the_target_directory() {
    let b = backup(&[("aria", 5)], "").await;
    b.snapshot_at("aria", at(1, 0));
    // Replace the snapshot with one whose member climbs out, and list it
    // truthfully, SHA-256 and all: only the member name is hostile.
    let dir = b.archives("aria");
    let mut manifest = b.manifest("aria");
    let entry = &mut manifest.snapshots[0];
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..10].copy_from_slice(b"../evil.sh");
    header.set_size(3);
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, &b"hi\n"[..]).unwrap();
    let bytes = tar.into_inner().unwrap().finish().unwrap();
    fs::write(dir.join(&entry.file), &bytes).unwrap();
    entry.size = bytes.len() as u64;
    entry.sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    manifest.save(&dir).unwrap();

    let to = b.dir.path().join("deep/restored");
    let out = b.run(&[
        "restore",
        "aria",
        "--snapshot",
        "latest",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("holds a member \"../evil.sh\" that is not one of its plain files"),
        "{}",
        text(&out)
    );
    assert!(!b.dir.path().join("deep/evil.sh").exists());
    assert!(!b.dir.path().join("evil.sh").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_can_archive_while_it_holds_the_data_directory() {
    let b = backup(&[("aria", 40)], "").await;
    let store = b.store();
    let outcome = archive::archive_personality(&store, &b.config, "aria").unwrap();
    assert_eq!(outcome.written.unwrap().entry.message_count, 40);
    let report = archive::prune_personality(&store, &b.config, "aria").unwrap();
    assert_eq!((report.kept(), report.removed()), (1, 0));
    // The command line is refused meanwhile, naming the holder.
    let out = b.run_once(&["archive"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("in use by another chatkeep process"),
        "{}",
        text(&out)
    );
    // Reading needs no lock.
    let out = b.run(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = b.run(&["prune", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    drop(store);
    // A personality that was never synced is no snapshot, and no failure
    // unless named.
    let mut config_text = fs::read_to_string(&b.path).unwrap();
    config_text = config_text.replace("[archive]", "[[personality]]\nname = \"newcomer\"\n\n[archive]");
    fs::write(&b.path, config_text).unwrap();
    let out = b.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("newcomer: skipped: no backup yet"),
        "{}",
        text(&out)
    );
    let out = b.run(&["archive", "newcomer"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no backup of `newcomer`"), "{}", text(&out));
}
