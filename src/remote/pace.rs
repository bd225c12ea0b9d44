//! A remote's `bandwidth_limit`: the bytes of its uploads are let through
//! no faster than the limit, counted over every upload to it in this
//! process, as the media downloads' `max_bytes_per_second` is.
//!
//! The pace is kept where the snapshot is read, before a part is filled:
//! a part goes to the store at the link's speed once it is full, so the
//! limit holds on average over a part (8 MiB), not at each instant.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// When the bytes let through so far will have taken their time.
pub struct Pace {
    bytes_per_second: u64,
    free_at: Mutex<Instant>,
}

impl Pace {
    /// A pace of `bytes_per_second`; `None` for none (0 included).
    pub fn new(bytes_per_second: Option<u64>) -> Option<Pace> {
        let bytes_per_second = bytes_per_second.filter(|r| *r > 0)?;
        Some(Pace {
            bytes_per_second,
            free_at: Mutex::new(Instant::now()),
        })
    }

    /// Waits as long as `bytes` take at the limit, after those before them.
    pub async fn take(&self, bytes: usize) {
        let until = {
            let mut free_at = self.free_at.lock().await;
            let start = (*free_at).max(Instant::now());
            *free_at = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
            *free_at
        };
        tokio::time::sleep_until(until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_take_their_time_at_the_limit_one_after_another() {
        let pace = Pace::new(Some(10 << 20)).unwrap();
        let start = Instant::now();
        pace.take(512 << 10).await;
        let first = start.elapsed();
        assert!(first >= Duration::from_millis(50), "{first:?}");
        for _ in 0..3 {
            pace.take(1 << 20).await;
        }
        let all = start.elapsed();
        assert!(
            all >= Duration::from_millis(350) && all < Duration::from_secs(2),
            "{all:?}"
        );
        assert!(Pace::new(None).is_none() && Pace::new(Some(0)).is_none());
    }
}
