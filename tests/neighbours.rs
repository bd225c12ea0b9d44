//! Other users on the same machine, with the real binary. chatkeep often
//! runs as root; a user who can write in a directory it writes in could
//! plant a symbolic link there and have root write through it. So the data
//! directory (and the archive and log directories) must be chatkeep's
//! alone, links in them are never followed, files are created with
//! `O_EXCL | O_NOFOLLOW`, a person's `export -o` and `restore --to` are
//! refused in a directory another user controls, the log files are private
//! whatever the umask, and the demo makes a directory of its own.
//!
//! The other user is `nobody` (`setpriv`, util-linux), so these tests need
//! root, as `.ci/run` runs them.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chatkeep::config::Config;
use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use common::*;

const NAME: &str = "neighbour";
const NOBODY: u32 = 65534;
const PRECIOUS: &[u8] = b"root's own file, which chatkeep must never write\n";

fn assert_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The permission bits of `path` (not following a link), in octal.
fn mode_of(path: &Path) -> String {
    format!("{:04o}", std::fs::symlink_metadata(path).unwrap().mode() & 0o7777)
}

/// Runs `args` as `nobody`, who must succeed.
fn as_nobody(args: &[&str]) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(out.status.success(), "as nobody, {args:?}: {}", text(&out));
}

/// `chatkeep --config CONFIG ARGS` as root.
fn run(config: &Path, args: &[&str]) -> Output {
    chatkeep(config).args(args).output().unwrap()
}

struct Setup {
    fake: FakeService,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    config: Config,
}

/// A fake with `history` messages, a config for it in a directory `nobody`
/// may enter (as a home directory would be), and one good sync.
async fn synced(history: usize) -> Setup {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, history)]).await;
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    assert_code(&run(&config_path, &["sync"]), 0);
    Setup {
        fake,
        dir,
        config_path,
        config,
    }
}

/// A file of root's outside everything chatkeep uses, readable by all.
fn victim() -> (tempfile::TempDir, PathBuf) {
    let outside = tempfile::tempdir().unwrap();
    set_mode(outside.path(), 0o755);
    let victim = outside.path().join("victim");
    std::fs::write(&victim, PRECIOUS).unwrap();
    set_mode(&victim, 0o644);
    (outside, victim)
}

/// A data directory and a personality's directory left open to everyone
/// for a while: `nobody` plants links to a file of root's where chatkeep
/// takes its lock, appends the chat log and replaces the status file. While
/// the directories stay open, chatkeep refuses them naming the `chmod`;
/// once closed as it says, the links left behind are never followed, and
/// each is reported as a link. The file they point to never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_another_user_planted_in_the_data_directory_are_never_followed() {
    let s = synced(50).await;
    let (_outside, victim) = victim();
    let data = s.config.storage.data_dir.clone();
    let personal = data.join(NAME);
    set_mode(&data, 0o777);
    set_mode(&personal, 0o777);
    let lock = data.join(".chatkeep.lock");
    let log = personal.join("chat.jsonl.gz");
    for link in [&lock, &log, &personal.join("status.json")] {
        as_nobody(&["ln", "-sfn", victim.to_str().unwrap(), link.to_str().unwrap()]);
        assert!(std::fs::symlink_metadata(link).unwrap().is_symlink());
    }
    s.fake.append_messages(NAME, 10);
    s.fake.clear_requests();

    // Open to all: refused, naming the command that closes each.
    for dir in [&data, &personal] {
        let out = run(&s.config_path, &["sync"]);
        assert_code(&out, 2);
        let all = text(&out);
        assert!(
            all.contains(&format!(
                "directory {} is writable by its group and others",
                dir.display()
            )) && all.contains(&format!("`chmod go-w {}`", dir.display())),
            "{all}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS, "{all}");
        let closed = Command::new("chmod").arg("go-w").arg(dir).status().unwrap();
        assert!(closed.success());
    }
    assert!(s.fake.requests().is_empty(), "it asked the service first");

    // Closed, with the links still there: each one is refused as a link.
    let out = run(&s.config_path, &["sync"]);
    assert_code(&out, 2);
    let all = text(&out);
    assert!(
        all.contains(&format!("{}: is a symbolic link", lock.display())) && all.contains("remove the link"),
        "{all}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS, "{all}");
    std::fs::remove_file(&lock).unwrap();
    let out = run(&s.config_path, &["sync"]);
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains(&format!("{}: is a symbolic link", log.display())),
        "{all}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS, "{all}");
    assert!(std::fs::symlink_metadata(&log).unwrap().is_symlink());
    let lock_now = std::fs::symlink_metadata(&lock).unwrap();
    assert!(lock_now.is_file() && lock_now.mode() & 0o777 == 0o600);
}

/// A data directory made 0777 (or any other user's) before chatkeep first
/// runs: refused at start-up, saying what to `chmod` or `chown`, before
/// anything is written in it or asked of the service. The archive
/// directory is held to the same rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_others_can_write_is_refused_saying_what_to_chmod() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, 20)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    set_mode(&data, 0o777);
    for args in [&["sync"][..], &["archive"][..], &["run"][..]] {
        let out = run(&config_path, args);
        assert_code(&out, 2);
        let all = text(&out);
        assert!(
            all.contains(&format!(
                "directory {} is writable by its group and others (mode 0777)",
                data.display()
            )) && all.contains(&format!("`chmod go-w {}`", data.display()))
                && all.contains("nothing was changed"),
            "{args:?}: {all}"
        );
    }
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    assert!(fake.requests().is_empty(), "it asked the service first");

    // Another user's data directory: the chown to make it chatkeep's.
    set_mode(&data, 0o700);
    chown(&data, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = run(&config_path, &["sync"]);
    assert_code(&out, 2);
    assert!(
        text(&out).contains(&format!("`chown -R 0 {}`", data.display())),
        "{}",
        text(&out)
    );
    chown(&data, Some(0), Some(0)).unwrap();

    // The archive directory (data/archives) open to all.
    assert_code(&run(&config_path, &["sync"]), 0);
    let archives = data.join("archives");
    std::fs::create_dir(&archives).unwrap();
    set_mode(&archives, 0o777);
    let out = run(&config_path, &["archive"]);
    assert_code(&out, 2);
    assert!(
        text(&out).contains(&format!("`chmod go-w {}`", archives.display())),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(&archives).unwrap().count(), 0);
}

/// `export -o` and `restore --to` write where a person asks, so the
/// directory must not be one another user controls: refused (exit 2,
/// nothing written) in one that `nobody` owns or that everyone can write.
/// A sticky directory like /tmp is fine: a link `nobody` planted under the
/// export's name is replaced, never written through, and a restore without
/// `--force` refuses to replace it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_restore_into_a_directory_another_user_controls_are_refused() {
    let s = synced(50).await;
    assert_code(&run(&s.config_path, &["archive"]), 0);
    let (_outside, victim) = victim();
    let theirs = s.dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let open = s.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    set_mode(&open, 0o777);

    for (dir, problem) in [
        (&theirs, "belongs to uid 65534".to_owned()),
        (&open, format!("`chmod go-w {}`", open.display())),
    ] {
        let out_file = dir.join("out.jsonl");
        let out = run(
            &s.config_path,
            &["export", NAME, "-f", "jsonl", "-o", out_file.to_str().unwrap()],
        );
        assert_code(&out, 2);
        let all = text(&out);
        assert!(
            all.contains(&format!("directory {} ", dir.display()))
                && all.contains(&problem)
                && all.contains("nothing was written"),
            "{all}"
        );
        let to = dir.join("restored");
        let out = run(
            &s.config_path,
            &[
                "restore",
                NAME,
                "--snapshot",
                "latest",
                "--to",
                to.to_str().unwrap(),
            ],
        );
        assert_code(&out, 2);
        let all = text(&out);
        assert!(
            all.contains(&problem) && all.contains("nothing was written"),
            "{all}"
        );
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0, "{all}");
    }

    // A sticky directory everyone can write, as /tmp.
    let sticky = s.dir.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    set_mode(&sticky, 0o1777);
    let out_file = sticky.join("out.jsonl");
    as_nobody(&["ln", "-s", victim.to_str().unwrap(), out_file.to_str().unwrap()]);
    let out = run(
        &s.config_path,
        &["export", NAME, "-f", "jsonl", "-o", out_file.to_str().unwrap()],
    );
    assert_code(&out, 0);
    assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS);
    let written = std::fs::symlink_metadata(&out_file).unwrap();
    assert!(written.is_file() && written.uid() == 0 && written.mode() & 0o777 == 0o600);
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().lines().count(),
        export_lines(&s.config, NAME).len()
    );
    let to = sticky.join("restored");
    let out = run(
        &s.config_path,
        &[
            "restore",
            NAME,
            "--snapshot",
            "latest",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_code(&out, 0);
    assert_eq!(mode_of(&to), "0700");
}

/// The daemon's log directory and files are private even when it is
/// started with the common umask 022 (from a shell, cron, a container),
/// where the log crate would make them 0755 and 0644.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_directory_and_files_are_private_under_umask_022() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, 20)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(
        dir.path(),
        &fake.base_url(),
        &[NAME],
        1000.0,
        "\n[daemon]\nrun_on_start = true\nschedule = \"0 0 0 1 1 *\"\n\n[log]\ndir = \"logs/daemon\"\n",
    );
    let logs = dir.path().join("logs/daemon");
    let mut daemon = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("--config")
        .arg(&config_path)
        .arg("run")
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let files = loop {
        let files: Vec<PathBuf> = std::fs::read_dir(&logs)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let synced = files.iter().any(|f| {
            std::fs::read_to_string(f).is_ok_and(|t| t.contains("outcome=\"ok\"") || t.contains("outcome=ok"))
        });
        if synced {
            break files;
        }
        assert!(Instant::now() < deadline, "no sync logged in {}", logs.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    let _ = daemon.wait();
    assert_eq!(mode_of(&logs), "0700", "the log directory");
    // The parent it had to make too.
    assert_eq!(mode_of(logs.parent().unwrap()), "0700");
    for file in &files {
        assert_eq!(mode_of(file), "0600", "{}", file.display());
    }
    // The data directory's files, made explicitly, are private as well.
    for entry in std::fs::read_dir(dir.path().join("data").join(NAME)).unwrap() {
        let path = entry.unwrap().path();
        let mode = mode_of(&path);
        assert!(mode.ends_with("00"), "{}: {mode}", path.display());
    }
}

/// `chatkeep demo` makes a new directory of its own, 0700, in `$TMPDIR`,
/// whose name nobody can guess: not one of the `chatkeep-demo-<time>`
/// directories another user made there in advance under the names the
/// demo used to take, which stay empty.
#[test]
fn the_demo_makes_a_fresh_private_directory() {
    let tmp = tempfile::tempdir().unwrap();
    set_mode(tmp.path(), 0o1777);
    let now = chrono::Utc::now();
    let mut planted = Vec::new();
    for s in 0..90 {
        let name = format!(
            "chatkeep-demo-{}",
            (now + chrono::TimeDelta::seconds(s)).format("%Y%m%dT%H%M%S")
        );
        let path = tmp.path().join(name);
        as_nobody(&["mkdir", "-m", "0777", path.to_str().unwrap()]);
        planted.push(path);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_code(&out, 0);
    for path in &planted {
        assert_eq!(
            std::fs::read_dir(path).unwrap().count(),
            0,
            "the demo used {}",
            path.display()
        );
    }
    let made: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !planted.contains(p))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let demo = &made[0];
    let name = demo.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("chatkeep-demo-"), "{name}");
    let meta = std::fs::symlink_metadata(demo).unwrap();
    assert!(meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o7777 == 0o700);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("config:       {}", demo.join("config.toml").display())),
        "{stdout}"
    );
    assert!(demo.join("data").is_dir());
    std::fs::remove_dir_all(demo).unwrap();
}
