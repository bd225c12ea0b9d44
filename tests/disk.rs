//! A full disk, a file size limit and a read-only data directory, with the
//! real binary. A sync that runs out of room fails naming the file and the
//! cause, leaves the previous store exactly as it was, and once there is
//! room again the next run completes with the ground truth. A read-only
//! data directory fails at start-up saying what to do.
//!
//! The file size limit is `prlimit --fsize` (util-linux), which chatkeep
//! turns into EFBIG errors rather than death by SIGXFSZ. "No space left" is
//! real: a small tmpfs mounted in a private mount namespace (`unshare
//! --mount`, then `nsenter` to run commands in it). Read-only is a
//! read-only bind mount in such a namespace, since chmod does not stop
//! root, as which the tests run; `chmod 0500` is tested too, with chatkeep
//! run as `nobody` (`setpriv`). These tests need root: `.ci/run` runs as
//! root and installs util-linux and mount if they are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chatkeep::config::Config;
use chatkeep::fake::{DocumentKind, FakeConfig, FakeService, PersonalitySpec};
use chatkeep::store::ChatStore;
use common::*;

const NAME: &str = "disk";

/// `chatkeep --config CONFIG ARGS`, run by `prefix` (e.g. prlimit, nsenter).
fn chatkeep_via(prefix: &[&str], config: &Path, args: &[&str]) -> Output {
    let (program, rest) = prefix.split_first().expect("a prefix");
    Command::new(program)
        .args(rest)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (util-linux): {e}"))
}

/// `chatkeep sync` with a file size limit of `bytes`.
fn sync_limited(config: &Path, bytes: u64) -> Output {
    chatkeep_via(&["prlimit", &format!("--fsize={bytes}")], config, &["sync"])
}

fn sync(config: &Path) -> Output {
    chatkeep(config).arg("sync").output().unwrap()
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
}

struct Setup {
    fake: FakeService,
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    config: Config,
}

/// A fake with `history` messages, a config for it, and one good sync.
async fn synced(history: usize) -> Setup {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, history)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    assert_code(&sync(&config_path), 0);
    Setup {
        fake,
        _dir: dir,
        config_path,
        config,
    }
}

fn log_len(config: &Config) -> u64 {
    ChatStore::open_read_only(&config.storage.data_dir.join(NAME))
        .unwrap()
        .state()
        .log_len
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_size_limit_hit_while_committing_keeps_the_store_and_the_next_run_completes() {
    let s = synced(3000).await;
    let before = export_lines(&s.config, NAME);
    // 60 new messages: a small spool, but the log may not grow at all.
    s.fake.append_messages(NAME, 60);
    let limit = log_len(&s.config) + 100;
    let out = sync_limited(&s.config_path, limit);
    assert_code(&out, 1);
    let all = text(&out);
    assert!(
        all.contains("chat.jsonl.gz: file too large"),
        "no clear message naming the log: {all}"
    );
    assert_eq!(
        export_lines(&s.config, NAME),
        before,
        "the committed history changed"
    );

    assert_code(&sync(&s.config_path), 0);
    assert_complete(&export_lines(&s.config, NAME), &s.fake, NAME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_size_limit_hit_by_the_walk_spool_keeps_the_checkpoint_and_the_next_run_resumes() {
    let s = synced(200).await;
    let before = export_lines(&s.config, NAME);
    s.fake.append_messages(NAME, 3000);
    let out = sync_limited(&s.config_path, 64 * 1024);
    assert_code(&out, 1);
    let all = text(&out);
    assert!(
        all.contains("walk-1.spool: file too large"),
        "no clear message naming the spool: {all}"
    );
    assert!(all.contains("raise it"), "no word on what to do: {all}");
    assert_eq!(
        export_lines(&s.config, NAME),
        before,
        "the committed history changed"
    );
    let store = ChatStore::open_read_only(&s.config.storage.data_dir.join(NAME)).unwrap();
    assert!(store.has_pending_walk(), "the walk's checkpoint is gone");

    s.fake.clear_requests();
    let out = sync(&s.config_path);
    assert_code(&out, 0);
    assert!(
        text(&out).contains("resuming an interrupted walk"),
        "{}",
        text(&out)
    );
    // A whole walk over 3000 new messages takes 61 pages.
    assert!(s.fake.chat_requests(NAME) < 60, "the walk restarted from the top");
    assert_complete(&export_lines(&s.config, NAME), &s.fake, NAME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_size_limit_hit_by_a_document_write_keeps_the_previous_document() {
    let s = synced(100).await;
    let path = s
        .config
        .storage
        .data_dir
        .join(NAME)
        .join(format!("{NAME}_knowledge.json"));
    let versions = s.config.storage.data_dir.join(NAME).join("versions");
    let previous = std::fs::read(&path).unwrap();
    let count = |dir: &Path| std::fs::read_dir(dir).map_or(0, |d| d.count());
    let versions_before = count(&versions);
    // A knowledge document of ~200 KiB; the limit is 64 KiB.
    let big: Vec<serde_json::Value> = (0..2000)
        .map(|i| serde_json::json!({"id": format!("k{i}"), "content": "lore ".repeat(20)}))
        .collect();
    s.fake
        .set_document(NAME, DocumentKind::Knowledge, Some(serde_json::json!(big)));
    let out = sync_limited(&s.config_path, 64 * 1024);
    assert_code(&out, 1);
    let all = text(&out);
    assert!(
        all.contains(&format!("{NAME}_knowledge.json: file too large")),
        "no clear message naming the document: {all}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        previous,
        "the previous document is gone"
    );
    assert_eq!(count(&versions), versions_before, "a stray version was left");

    assert_code(&sync(&s.config_path), 0);
    let now: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(now, serde_json::json!(big));
    assert_eq!(
        count(&versions),
        versions_before + 1,
        "the previous document was not kept"
    );
    assert_complete(&export_lines(&s.config, NAME), &s.fake, NAME);
}

/// A private mount namespace, alive as long as its `sleep` runs.
struct Namespace {
    sleeper: Child,
}

impl Namespace {
    fn new() -> Namespace {
        let sleeper = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) runs");
        let ns = Namespace { sleeper };
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{}/ns/mnt", ns.pid())).ok() == Some(ours.clone()) {
            assert!(
                Instant::now() < deadline,
                "unshare --mount did not make a namespace (the tests run as root)"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        ns
    }

    fn pid(&self) -> String {
        self.sleeper.id().to_string()
    }

    /// `nsenter -t PID -m`, to put before a command.
    fn enter(&self) -> Vec<String> {
        vec!["nsenter".into(), "-t".into(), self.pid(), "-m".into()]
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid(), "-m", "--"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        out
    }

    /// `path` as seen from inside the namespace.
    fn inside(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.pid(), path.display()))
    }

    fn chatkeep(&self, config: &Path, args: &[&str]) -> Output {
        let enter = self.enter();
        let prefix: Vec<&str> = enter.iter().map(String::as_str).collect();
        chatkeep_via(&prefix, config, args)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
    }
}

/// The config with its data directory as seen from inside `ns`.
fn seen_inside(config: &Config, ns: &Namespace) -> Config {
    let mut inside = config.clone();
    inside.storage.data_dir = ns.inside(&config.storage.data_dir);
    inside
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_space_left_on_the_device_keeps_the_store_and_the_next_run_completes() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, 500)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    let data = config.storage.data_dir.clone();
    std::fs::create_dir(&data).unwrap();
    let data_arg = data.to_str().unwrap();
    let ns = Namespace::new();
    ns.run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=16m,mode=0700",
        "chatkeep-test",
        data_arg,
    ]);
    let inside = seen_inside(&config, &ns);

    assert_code(&ns.chatkeep(&config_path, &["sync"]), 0);
    let before = export_lines(&inside, NAME);
    assert_eq!(before.len(), 500);
    assert!(
        !data.join(NAME).exists(),
        "the store went to the real directory, not to the tmpfs"
    );

    // Leave a few pages free, then bring 3000 new messages.
    let df = ns.run(&["df", "-B1", "--output=used", data_arg]);
    let used: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the bytes used");
    let size = format!("remount,size={}", used + 8 * 4096);
    ns.run(&["mount", "-o", &size, data_arg]);
    fake.append_messages(NAME, 3000);
    let out = ns.chatkeep(&config_path, &["sync"]);
    assert_code(&out, 1);
    let all = text(&out);
    assert!(all.contains(": no space left on the device"), "{all}");
    assert!(all.contains("free some space"), "no word on what to do: {all}");
    assert_eq!(
        export_lines(&inside, NAME),
        before,
        "the committed history changed"
    );

    ns.run(&["mount", "-o", "remount,size=64m", data_arg]);
    let out = ns.chatkeep(&config_path, &["sync"]);
    assert_code(&out, 0);
    assert_complete(&export_lines(&inside, NAME), &fake, NAME);
}

/// Runs chatkeep in a new mount namespace where `read_only` is a read-only
/// bind mount of itself.
fn chatkeep_with_read_only(read_only: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@""#)
        .arg(read_only)
        .arg(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("unshare (util-linux) runs")
}

fn assert_read_only_message(out: &Output, data: &Path) {
    assert_code(out, 2);
    let all = text(out);
    assert!(
        all.contains(&format!("data directory {} is not writable", data.display())),
        "{all}"
    );
    assert!(all.contains("Read-only file system"), "{all}");
    assert!(all.contains("storage.data_dir"), "no word on what to do: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_fails_at_start_up_saying_what_to_do() {
    let s = synced(100).await;
    let data = s.config.storage.data_dir.clone();
    let before = export_lines(&s.config, NAME);
    s.fake.append_messages(NAME, 10);
    s.fake.clear_requests();
    for args in [&["sync"][..], &["run"][..]] {
        let out = chatkeep_with_read_only(&data, &s.config_path, args);
        assert_read_only_message(&out, &data);
    }
    assert!(
        s.fake.requests().is_empty(),
        "it asked the service before failing"
    );
    // A data directory that does not exist yet, under a read-only parent.
    std::fs::remove_dir_all(&data).unwrap();
    let parent = data.parent().unwrap();
    let out = chatkeep_with_read_only(parent, &s.config_path, &["sync"]);
    assert_read_only_message(&out, &data);
    assert!(!data.exists());
    drop(before);
}

/// `chmod 0500` stops any user but root: as `nobody`, the same start-up
/// failure, from EACCES instead of EROFS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_without_write_permission_fails_at_start_up_saying_what_to_do() {
    use std::os::unix::fs::{PermissionsExt, chown};
    const NOBODY: u32 = 65534;
    let s = synced(20).await;
    let data = s.config.storage.data_dir.clone();
    let dir = data.parent().unwrap();
    for path in [dir.to_owned(), s.config_path.clone(), dir.join("cookie")] {
        chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode =
        |path: &Path, mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    let as_nobody = || {
        chatkeep_via(
            &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
            &s.config_path,
            &["sync"],
        )
    };
    // The data directory and all in it, owned by nobody but not writable
    // (a directory in it of another user's would be refused before any
    // write is tried).
    let owned = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(owned.success());
    let read_only = Command::new("chmod")
        .args(["-R", "a-w"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(read_only.success());
    mode(&data, 0o500);
    let out = as_nobody();
    assert_code(&out, 2);
    let all = text(&out);
    assert!(
        all.contains(&format!(
            "data directory {} is not writable (Permission denied",
            data.display()
        )),
        "{all}"
    );
    assert!(
        all.contains("make it writable by the user chatkeep runs as"),
        "{all}"
    );
    // A data directory still to be made, in a parent nobody cannot write.
    mode(&data, 0o700);
    std::fs::remove_dir_all(&data).unwrap();
    mode(dir, 0o500);
    let out = as_nobody();
    assert_code(&out, 2);
    assert!(
        text(&out).contains("is not writable (Permission denied"),
        "{}",
        text(&out)
    );
    mode(dir, 0o755);
    assert!(!data.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_runs_out_of_space_keeps_the_archives_and_the_next_one_completes() {
    let s = synced(3000).await;
    // A first snapshot, with room.
    assert_code(&chatkeep(&s.config_path).arg("archive").output().unwrap(), 0);
    let archives = s.config.storage.data_dir.join("archives").join(NAME);
    let manifest_before = std::fs::read(archives.join("manifest.json")).unwrap();
    let files_before: Vec<_> = std::fs::read_dir(&archives)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();

    // New messages, then a snapshot under a file size limit it cannot fit.
    s.fake.append_messages(NAME, 200);
    assert_code(&sync(&s.config_path), 0);
    let out = chatkeep_via(&["prlimit", "--fsize=4096"], &s.config_path, &["archive"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("file too large"), "no clear message: {all}");
    assert_eq!(
        std::fs::read(archives.join("manifest.json")).unwrap(),
        manifest_before,
        "the manifest changed"
    );
    let files_after: Vec<_> = std::fs::read_dir(&archives)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        files_after, files_before,
        "a partial snapshot or temp file was left"
    );
    assert_code(&chatkeep(&s.config_path).arg("verify").output().unwrap(), 0);

    // Space back: the next snapshot completes and verifies.
    assert_code(&chatkeep(&s.config_path).arg("archive").output().unwrap(), 0);
    assert_code(&chatkeep(&s.config_path).arg("verify").output().unwrap(), 0);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archives.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["snapshots"].as_array().map(Vec::len), Some(2));
}
