//! Politeness, measured where it matters: at the service.

mod common;

use std::time::Duration;

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
