//! A million-message personality: fast to start, small, served from both ends.

use std::time::{Duration, Instant};

use super::super::{FakeConfig, PersonalitySpec, format_ts};
use super::{id_and_ts, page, start};

const MESSAGES: usize = 1_000_000;

/// Resident memory of this process, from `/proc` (Linux), in KiB.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_million_messages_start_fast_stay_small_and_serve_the_oldest_end() {
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut big = PersonalitySpec::new("big", MESSAGES);
    big.tie_groups = vec![(500_000, 1_000)];
    let fake = start(FakeConfig::default(), vec![big]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(fake.history_heap_bytes("big") <= 16 * MESSAGES);
    assert_eq!(fake.message_count("big"), MESSAGES);

    // Message i has ts start + i minutes; before message 10 come 0..10.
    let start_ms = 1_700_000_000_000u64;
    let before = format_ts(start_ms + 10 * 60_000);
    let oldest_page = page(&fake, "big", 50, Some(&before)).await;
    assert_eq!(oldest_page.len(), 10);
    let (id, ts) = id_and_ts(oldest_page.last().expect("ten messages"));
    assert!(id.ends_with("-000000000000"), "{id}");
    assert_eq!(ts, format_ts(start_ms));

    let newest_page = page(&fake, "big", 500, None).await;
    assert_eq!(newest_page.len(), 500);
    let (id, _) = id_and_ts(&newest_page[0]);
    assert!(id.ends_with(&format!("{:012x}", MESSAGES - 1)), "{id}");

    // History that is not append-only stays small and served from both
    // ends: the edits keep no per-message state beyond the index.
    let newest_id = fake.regenerate_nth_newest("big", 0);
    let doomed: Vec<String> = newest_page[1..].iter().map(|m| id_and_ts(m).0).collect();
    let doomed: Vec<&str> = doomed.iter().map(String::as_str).collect();
    assert_eq!(fake.delete("big", &doomed), 499);
    fake.insert_older("big", 1_000);
    assert_eq!(fake.message_count("big"), MESSAGES + 501);
    assert!(fake.history_heap_bytes("big") <= 16 * MESSAGES);
    let newest = page(&fake, "big", 2, None).await;
    assert_eq!(id_and_ts(&newest[0]).0, newest_id);
    assert!(newest[0].contains("(take 2)"), "{}", newest[0]);
    assert!(
        id_and_ts(&newest[1])
            .0
            .ends_with(&format!("{:012x}", MESSAGES - 501))
    );
    let restored = page(&fake, "big", 50, Some(&format_ts(start_ms))).await;
    assert_eq!(restored.len(), 50);
    assert_eq!(id_and_ts(&restored[0]).1, format_ts(start_ms - 60_000));

    if let (Some(before), Some(after)) = (rss_before, rss_kib()) {
        let grown_mib = after.saturating_sub(before) / 1024;
        assert!(grown_mib < 40, "the fake grew the process by {grown_mib} MiB");
    }
}
