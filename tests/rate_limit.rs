//! Politeness, measured where it matters: at the service.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use chatkeep::commands::sync::{Selection, run_pass};
use chatkeep::fake::{FakeConfig, PersonalitySpec};
use common::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_per_second_burst_one_keeps_every_request_pair_200ms_apart() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("polite", 400)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = load(&write_config(dir.path(), &fake.base_url(), &["polite"], 5.0, ""));
    let outcome = run_pass(&config, &[], Selection::default(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.all_ok(), "{:?}", outcome.reports);
    let times: Vec<_> = fake.requests().iter().map(|r| r.at).collect();
    assert!(times.len() >= 9, "only {} requests", times.len());
    // 200 ms per token. Arrival times at the fake carry the scheduling
    // jitter of a loaded 2-core machine, so each gap gets 25 ms of slack,
    // and the whole run must take at least as long as the bucket allows.
    let period = Duration::from_millis(200);
    let slack = Duration::from_millis(25);
    let closest = times.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(closest + slack >= period, "two requests {closest:?} apart");
    let span = *times.last().unwrap() - times[0];
    assert!(
        span + slack >= period * (times.len() as u32 - 1),
        "{} requests in {span:?}",
        times.len()
    );
}

/// When a GCRA bucket of `burst` tokens, one back every `period`, that
/// let `times` through, would let the next request go.
fn next_allowed(times: &[Instant], period: Duration, burst: u32) -> Instant {
    let tat = times
        .iter()
        .fold(None, |tat: Option<Instant>, &t| {
            Some(tat.map_or(t, |tat| tat.max(t)) + period)
        })
        .expect("some requests");
    tat - period * (burst - 1)
}

/// A run killed with SIGKILL and started again at once (a crash loop under
/// systemd, a killed sync run again by hand) goes on with the bucket the
/// killed one left in the data directory: the service never sees a second
/// full burst. Measured at the fake, across both processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_restarted_after_kill_9_does_not_send_a_second_burst() {
    const RPS: u32 = 5;
    const BURST: u32 = 5;
    let period = Duration::from_secs(1) / RPS;
    // Arrival times carry the scheduling jitter of a loaded machine.
    let slack = Duration::from_millis(25);
    let fake = fake(
        FakeConfig::default(),
        vec![PersonalitySpec::new("restarted", 400)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["restarted"], RPS.into(), "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("burst = 1\n", &format!("burst = {BURST}\n")),
    )
    .unwrap();

    // The first run spends its burst at once, and is killed before the
    // bucket gives it another token (one period later).
    let mut first = chatkeep(&config)
        .arg("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.requests().len() < BURST as usize {
        assert!(Instant::now() < deadline, "the first run sent no burst");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let killed = fake.requests().len();

    // Started again at once, and left to finish.
    let second = tokio::task::spawn_blocking({
        let config = config.clone();
        move || chatkeep(&config).arg("sync").output().unwrap()
    })
    .await
    .unwrap();
    assert!(second.status.success(), "{}", common::text(&second));
    let state = std::fs::read_to_string(dir.path().join("data/rate_limit.state")).unwrap();
    assert_eq!(state.len(), 23, "{state:?}");

    let times: Vec<Instant> = fake.requests().iter().map(|r| r.at).collect();
    assert!(
        times.len() >= killed + 2 * BURST as usize,
        "{} requests after the restart: too few to show a burst",
        times.len() - killed
    );
    // A second full bucket would put up to 2 * BURST + RPS - 1 requests
    // in one second.
    let busiest = busiest_second(&times);
    assert!(
        busiest <= (RPS + BURST) as usize,
        "{busiest} requests in one second at {RPS}/s, burst {BURST}, across a restart"
    );
    // The restarted run waited for the token the killed one was owed.
    let allowed = next_allowed(&times[..killed], period, BURST);
    let first_after = times[killed];
    assert!(
        first_after + slack >= allowed,
        "the restarted run sent its first request {:?} before the bucket allowed",
        allowed - first_after
    );
}
