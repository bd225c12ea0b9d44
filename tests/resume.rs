//! Crash safety and resumability with the real binary: SIGKILL in the middle
//! of a long walk, several times, then finish.

mod common;

use std::time::{Duration, Instant};

use chatkeep::fake::{FakeConfig, PersonalitySpec};
use common::*;

const MESSAGES: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_walk_resumes_from_the_checkpoint_and_ends_identical() {
    // The reference: one uninterrupted run.
    let reference_fake = fake(
        FakeConfig::default(),
        vec![PersonalitySpec::new("long", MESSAGES)],
    )
    .await;
    let reference_dir = tempfile::tempdir().unwrap();
    let reference_config = write_config(
        reference_dir.path(),
        &reference_fake.base_url(),
        &["long"],
        10_000.0,
        "",
    );
    let out = chatkeep(&reference_config).arg("sync").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let uninterrupted = reference_fake.chat_requests("long");
    let reference_export = export_lines(&load(&reference_config), "long");
    assert_eq!(reference_export.len(), MESSAGES);

    // The same history, killed at several points of the walk.
    let fake = fake(
        FakeConfig::default(),
        vec![PersonalitySpec::new("long", MESSAGES)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Slow enough to be caught mid-walk: ~61 pages at 40 requests/s.
    let config = write_config(dir.path(), &fake.base_url(), &["long"], 40.0, "");
    let kill_points = [5, 19, 37];
    let mut killed = 0;
    for point in kill_points {
        let mut child = chatkeep(&config)
            .arg("sync")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while fake.chat_requests("long") < point && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // SIGKILL: no chance to clean up.
        child.kill().unwrap();
        child.wait().unwrap();
        killed += 1;
        assert!(
            dir.path().join("data/long/walk-0.spool").exists(),
            "a walk checkpoint is on disk"
        );
    }
    let before_last = fake.chat_requests("long");
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let last_run = fake.chat_requests("long") - before_last;
    let total = fake.chat_requests("long");

    // Each kill may cost the one page in flight, nothing more; and the run
    // that finishes a resumed walk asks once more from the top for messages
    // that arrived since the walk began (one request here: none did).
    assert!(
        total <= uninterrupted + killed + 1,
        "{total} chat requests over {} runs; an uninterrupted run needs {uninterrupted}",
        killed + 1
    );
    assert!(
        last_run < uninterrupted - 30,
        "the last run resumed instead of restarting ({last_run} requests)"
    );
    assert_eq!(
        export_lines(&load(&config), "long"),
        reference_export,
        "export differs from an uninterrupted run's"
    );
    assert!(
        !dir.path().join("data/long/walk-0.spool").exists(),
        "the spool is gone after commit"
    );
}
