//! The short, fixed-seed form of the crash-and-fault campaign: a few hundred
//! SIGKILLs of the real binary amid faults, rotations and new messages, and
//! not one message lost or doubled. The long form:
//! `cargo bench --bench campaign -- --seeds N`.

#[path = "harness.rs"]
mod harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_sigkills_amid_faults_lose_and_double_nothing() {
    let mut total_kills = 0;
    let mut total_faults = 0;
    for seed in 1..=6u64 {
        let report = harness::run_seed(seed, 60).await;
        println!("{report}");
        total_kills += report.kills;
        total_faults += report.faults;
    }
    println!("campaign: 6 seeds, {total_kills} kills, {total_faults} faults, 0 lost");
    assert!(
        total_kills >= 200,
        "only {total_kills} runs were killed mid-way; the campaign must kill"
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
