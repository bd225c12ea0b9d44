//! `restore NAME --rebuild`: a personality's store made again from a local
//! snapshot, for a lost data directory. The real binary against the fake
//! service; the remote case is in tests/remote.rs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use chatkeep::fake::{FakeConfig, FakeMediaConfig, PersonalitySpec};
use chatkeep::store::ChatStore;
use common::*;

const NAME: &str = "aria";

fn run(config: &Path, args: &[&str]) -> Output {
    chatkeep(config).args(args).output().unwrap()
}

/// Everything the backup of NAME says, as a user reads it back: the chat
/// history with every earlier version (jsonl --revisions), the documents
/// byte for byte, and the media files it links.
fn readback(config: &Path, dir: &Path, label: &str) -> Vec<(String, Vec<u8>)> {
    let out_dir = dir.join(format!("readback-{label}"));
    fs::create_dir(&out_dir).unwrap();
    let out = run(
        config,
        &[
            "export",
            NAME,
            "--what",
            "all",
            "--format",
            "jsonl",
            "--revisions",
            "--media",
            "local",
            "-o",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let files = tree(&out_dir);
    fs::remove_dir_all(&out_dir).unwrap();
    files
}

fn state(data: &Path) -> chatkeep::store::ChatState {
    ChatStore::open_read_only(&data.join(NAME))
        .unwrap()
        .state()
        .clone()
}

/// The parts of the chat state a rebuild must give back: what the history
/// holds and where the next sync starts.
fn essentials(s: &chatkeep::store::ChatState) -> impl PartialEq + std::fmt::Debug {
    (
        s.personality_id.clone(),
        s.head.clone(),
        s.oldest,
        s.message_count,
        s.beginning.clone(),
        s.tail_probed_at,
        s.overlay.as_ref().map(|o| (o.revised, o.revisions, o.deleted)),
    )
}

/// A synced backup of NAME (with media) whose history has changed upstream
/// (regenerated replies, a deletion), archived.
async fn changed_and_archived(messages: usize) -> (chatkeep::fake::FakeService, tempfile::TempDir, PathBuf) {
    let fake = fake(
        FakeConfig {
            media: Some(FakeMediaConfig::default()),
            ..FakeConfig::default()
        },
        vec![PersonalitySpec::new(NAME, messages)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let mut toml = fs::read_to_string(&path).unwrap();
    toml.push_str("\n[media]\nrequests_per_second = 1000\n");
    fs::write(&path, toml).unwrap();
    let config = load(&path);
    assert!(pass(&config).await.all_ok());
    fake.regenerate_nth_newest(NAME, 0);
    fake.regenerate_nth_newest(NAME, 3);
    fake.regenerate_nth_newest(NAME, 3);
    fake.delete_nth_newest(NAME, 5);
    assert!(pass(&config).await.all_ok());
    let out = run(&path, &["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    (fake, dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_rebuilt_from_a_snapshot_reads_back_as_the_lost_one_version_for_version() {
    let (fake, dir, config) = changed_and_archived(180).await;
    let data = dir.path().join("data");
    let before = state(&data);
    let overlay = before.overlay.clone().expect("the history changed upstream");
    assert!(overlay.revised >= 2 && overlay.deleted >= 1, "{overlay:?}");
    let readback_before = readback(&config, dir.path(), "before");
    assert!(
        readback_before.iter().any(|(n, _)| n.starts_with("media/")),
        "the backup has media: {:?}",
        readback_before.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );

    // The store and the media store lost; the archive kept (another disk).
    fs::remove_dir_all(data.join(NAME)).unwrap();
    fs::remove_dir_all(data.join("media")).unwrap();
    let out = run(&config, &["restore", NAME, "--rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("rebuilt the backup of aria"), "{said}");
    assert!(
        said.contains(&format!("{} messages", before.message_count)),
        "{said}"
    );
    assert!(said.contains("fetches only what is newer than"), "{said}");
    assert_eq!(essentials(&state(&data)), essentials(&before));
    assert!(
        readback(&config, dir.path(), "after") == readback_before,
        "the rebuilt backup reads back otherwise than the lost one"
    );
    // Nothing left of the staging.
    let staging: Vec<_> = fs::read_dir(data.join(".rebuild"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(staging.is_empty(), "{staging:?}");

    // The next sync, with nothing new upstream, adds nothing and finds the
    // history as it is.
    let out = run(&config, &["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(state(&data).message_count, before.message_count);
    assert_complete(
        &export_lines(&load(&config), NAME)
            .into_iter()
            .filter(|l| !l.contains("deleted_upstream_at"))
            .collect::<Vec<_>>(),
        &fake,
        NAME,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_store_is_replaced_only_with_force_and_an_encrypted_snapshot_needs_its_identity() {
    let (fake, dir, config) = changed_and_archived(60).await;
    let data = dir.path().join("data");
    let snapshot_state = state(&data);
    let archived = readback(&config, dir.path(), "archived");
    // The live store moves on past the snapshot.
    fake.append_messages(NAME, 7);
    assert!(run(&config, &["sync"]).status.success());
    let live = readback(&config, dir.path(), "live");

    let out = run(&config, &["restore", NAME, "--rebuild"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds a backup of `aria`"),
        "{}",
        text(&out)
    );
    assert!(
        readback(&config, dir.path(), "refused") == live,
        "a refused rebuild changed the store"
    );

    let out = run(&config, &["restore", NAME, "--rebuild", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("replaced the backup of aria"),
        "{}",
        text(&out)
    );
    assert_eq!(essentials(&state(&data)), essentials(&snapshot_state));
    assert!(readback(&config, dir.path(), "replaced") == archived);

    // Encrypted: refused without the identity, rebuilt with it.
    let key = dir.path().join("key.txt");
    let recipient = identity_file(&key);
    let mut toml = fs::read_to_string(&config).unwrap();
    toml.push_str(&format!("\n[archive]\nage_recipients = [\"{recipient}\"]\n"));
    fs::write(&config, toml).unwrap();
    let out = run(&config, &["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&config, &["restore", NAME, "--rebuild", "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--identity"),
        "{}",
        text(&out)
    );
    let out = run(
        &config,
        &[
            "restore",
            NAME,
            "--rebuild",
            "--force",
            "--identity",
            key.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(readback(&config, dir.path(), "decrypted") == archived);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_at_any_point_leaves_the_old_store_or_the_new_one() {
    let (fake, dir, config) = changed_and_archived(2000).await;
    let data = dir.path().join("data");
    let archived = readback(&config, dir.path(), "archived");
    fake.append_messages(NAME, 9);
    assert!(run(&config, &["sync"]).status.success());
    let live = readback(&config, dir.path(), "live");
    assert!(live != archived);
    let pristine = dir.path().join("pristine");
    copy_dir(&data, &pristine);
    let reset = || {
        fs::remove_dir_all(&data).unwrap();
        copy_dir(&pristine, &data);
    };
    let rebuild = || {
        let mut cmd: Command = chatkeep(&config);
        cmd.args(["restore", NAME, "--rebuild", "--force"]);
        cmd
    };
    // How long a whole rebuild takes, to kill it at points through it.
    let start = Instant::now();
    let out = rebuild().output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let whole = start.elapsed();

    let mut killed = 0;
    for step in 0..8u32 {
        reset();
        let mut child = rebuild().spawn().unwrap();
        std::thread::sleep(whole.mul_f64(f64::from(step) / 8.0));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
            killed += 1;
        }
        let got = readback(&config, dir.path(), "killed");
        assert!(
            got == live || got == archived,
            "after a kill at {step}/8 of a rebuild ({status}), the store is neither the old nor the new one"
        );
        // Whatever the kill left, the next rebuild completes.
        let out = rebuild().output().unwrap();
        assert!(out.status.success(), "after a kill at {step}/8: {}", text(&out));
        assert!(readback(&config, dir.path(), "again") == archived);
    }
    assert!(
        killed >= 4,
        "only {killed} of 8 rebuilds were killed before they ended (a whole one takes {whole:?})"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}
