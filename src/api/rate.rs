//! The one token bucket every request of every worker draws from, with a
//! pause that a 429 imposes on all of them at once.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use tokio::time::Instant;

/// Requests per second and burst, shared by everything that talks to one account.
pub struct RateLimiter {
    bucket: Gcra<NotKeyed, InMemoryState, DefaultClock>,
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `requests_per_second` must be positive and finite (the config checks).
    pub fn new(requests_per_second: f64, burst: u32) -> RateLimiter {
        let period = Duration::from_secs_f64(1.0 / requests_per_second).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("period is at least 1ns")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst is at least 1"));
        RateLimiter {
            bucket: Gcra::direct(quota),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a request may be sent: after any pause, and with a token.
    pub async fn acquire(&self) {
        loop {
            if let Some(until) = self.pause_deadline() {
                tokio::time::sleep_until(until).await;
            }
            self.bucket.until_ready().await;
            // A 429 seen by another worker while we waited wins over the token.
            if self.pause_deadline().is_none() {
                return;
            }
        }
    }

    /// Stops every request for `wait` (a 429's Retry-After). Pauses only extend.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    fn pause_deadline(&self) -> Option<Instant> {
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        match *paused {
            Some(until) if until > Instant::now() => Some(until),
            _ => {
                *paused = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_one_spaces_requests_by_the_period() {
        let limiter = RateLimiter::new(20.0, 1);
        let start = std::time::Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // First is free, four more need 4 * 50ms.
        assert!(
            start.elapsed() >= Duration::from_millis(195),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_pause_holds_every_request() {
        let limiter = RateLimiter::new(1000.0, 10);
        limiter.pause_for(Duration::from_millis(150));
        let start = std::time::Instant::now();
        limiter.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_millis(140),
            "{:?}",
            start.elapsed()
        );
    }
}
