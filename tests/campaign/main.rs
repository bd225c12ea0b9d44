//! The short, fixed-seed form of the crash-and-fault campaign: a few hundred
//! SIGKILLs of the real binary amid faults (empty answers included),
//! rotations, new messages and a history edited upstream (regenerations,
//! deletions, older history, resets), and not one message lost or doubled.
//! The long form: `cargo bench --bench campaign -- --seeds N`.

#[path = "harness.rs"]
mod harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_sigkills_amid_faults_and_edits_upstream_lose_and_double_nothing() {
    let started = std::time::Instant::now();
    let mut total = harness::SeedReport::default();
    for seed in 1..=6u64 {
        let report = harness::run_seed(seed, 60).await;
        println!("{report}");
        total.add(&report);
    }
    println!(
        "campaign: 6 seeds, {}, in {:.0} s",
        total.counts(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        total.kills >= 200,
        "only {} runs were killed mid-way; the campaign must kill",
        total.kills
    );
    // The edits and the empty answers must happen, and reach the backup.
    assert!(
        total.revised > 0 && total.marked_deleted > 0 && total.older_found > 0,
        "the campaign's edits upstream left no trace in the backup: {}",
        total.counts()
    );
    assert!(
        total.empty_answers > 0 && total.double_lies > 0,
        "no empty answer, or no confirmed one, was served: {}",
        total.counts()
    );
}

#[test]
fn the_rate_check_allows_one_bucket_in_any_second_whatever_the_processes() {
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Sliding windows, half-open: 0, 500 and 999 share one; 1000 does not.
    let times = [at(0), at(500), at(999), at(1000), at(1500)];
    assert_eq!(harness::worst_second(&times, 1, 1), (3, 2));
    assert_eq!(harness::worst_second(&[at(0), at(2000)], 1, 1), (1, 2));
    assert_eq!(harness::worst_second(&[at(0), at(999)], 1, 1), (2, 2));
    assert_eq!(harness::worst_second(&[], 1, 1), (0, 2));
    // However many processes ran: they share one bucket through the state
    // file, so a restart brings no second burst.
    assert_eq!(harness::worst_second(&[at(0), at(500), at(700)], 1, 1), (3, 2));
}
