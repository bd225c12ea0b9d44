//! The long form of the crash-and-fault campaign (the short one runs in
//! `cargo test`): `cargo bench --bench campaign -- --seeds N [--kills K] [--first S]`.
//! Prints one line per seed and a total; panics on the first broken promise.

#[path = "../tests/campaign/harness.rs"]
mod harness;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seeds = arg("--seeds", 20);
    let kills = arg("--kills", 100) as u32;
    let first = arg("--first", 1000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = std::time::Instant::now();
    let mut total = harness::SeedReport::default();
    for seed in first..first + seeds {
        let report = runtime.block_on(harness::run_seed(seed, kills));
        println!("{report}");
        total.add(&report);
    }
    println!(
        "campaign: {seeds} seeds, {}, in {:.0} s",
        total.counts(),
        started.elapsed().as_secs_f64()
    );
}
