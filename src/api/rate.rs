//! The one token bucket every request of every worker draws from, with a
//! pause that a 429 imposes on all of them at once.
//!
//! The bucket is GCRA (`governor`), whose whole state is one time, the
//! "theoretical arrival time" (TAT): each token granted sets
//! `tat = max(tat, now) + period`, and a request may go when
//! `now >= tat - (burst - 1) * period`. A limiter made with
//! [`RateLimiter::resuming`] hands that time, as wall-clock time, to a
//! callback after every token, and starts from the time an earlier process
//! left: so a restarted process (a crash loop, a cron'd `chatkeep sync`, a
//! killed run started again) goes on with the tokens the last one left,
//! never with a full burst of its own. Where the time is kept is not this
//! module's business (the store keeps it in the data directory).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use tokio::time::Instant;

/// Requests per second and burst, shared by everything that talks to one account.
pub struct RateLimiter {
    bucket: Gcra<NotKeyed, InMemoryState, DefaultClock>,
    /// Waiters in line, first come first served. governor's own waiting
    /// is a race that the same task can win again and again (the one
    /// whose timer fires first), so one worker's walk could starve
    /// another's; tokio's mutex queues its waiters in order.
    line: tokio::sync::Mutex<()>,
    paused_until: Mutex<Option<Instant>>,
    /// Where each granted token is reported; `None` for a limiter that
    /// leaves nothing for the next process.
    recorder: Option<Recorder>,
}

/// The bucket's TAT in wall-clock time, kept beside governor's (which is on
/// a monotonic clock of this process only and cannot be read), and the
/// callback it is given to after every token.
struct Recorder {
    period: Duration,
    /// Never behind governor's own TAT: it starts where governor's does,
    /// and each token moves both the same way, this one reading the clock
    /// after governor did (a wall clock set back or forward meanwhile only
    /// moves it further ahead).
    tat: Mutex<SystemTime>,
    save: Box<dyn Fn(SystemTime) + Send + Sync>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("recorded", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A full bucket, recorded nowhere. `requests_per_second` must be
    /// positive and finite (the config checks).
    pub fn new(requests_per_second: f64, burst: u32) -> RateLimiter {
        let period = period(requests_per_second);
        RateLimiter {
            bucket: Gcra::direct(quota(period, burst)),
            line: tokio::sync::Mutex::new(()),
            paused_until: Mutex::new(None),
            recorder: None,
        }
    }

    /// A bucket that goes on from `saved_tat`, the TAT an earlier process
    /// recorded (`None`: a full bucket), and hands its TAT to `save` after
    /// every token granted, before the request goes out.
    ///
    /// The tokens left at `saved_tat` ([`tokens_left`]) are what the new
    /// bucket starts with, rounded down: it never starts with more than the
    /// old one had. A saved time in the past means a full bucket; one too
    /// far in the future (the clock was set back, or the rate lowered) an
    /// empty one, whose next token comes one period later, never later. The
    /// one way to start fuller than the old bucket was is a wall clock set
    /// forward between the two processes.
    pub fn resuming(
        requests_per_second: f64,
        burst: u32,
        saved_tat: Option<SystemTime>,
        save: impl Fn(SystemTime) + Send + Sync + 'static,
    ) -> RateLimiter {
        let period = period(requests_per_second);
        let burst = burst.max(1);
        let bucket = Gcra::direct(quota(period, burst));
        let now = SystemTime::now();
        let left = saved_tat.map_or(burst, |tat| tokens_left(tat, now, period, burst));
        let spent = burst - left;
        if let Some(spent) = NonZeroU32::new(spent) {
            // A fresh bucket always has `burst` tokens, so this succeeds.
            let taken = bucket.check_n(spent);
            debug_assert!(matches!(taken, Ok(Ok(()))), "{taken:?}");
        }
        tracing::debug!(tokens = left, burst, "rate limit bucket resumed");
        // Read after governor read its clock, so as not to fall behind it.
        let tat = later(SystemTime::now(), period.saturating_mul(spent));
        RateLimiter {
            bucket,
            line: tokio::sync::Mutex::new(()),
            paused_until: Mutex::new(None),
            recorder: Some(Recorder {
                period,
                tat: Mutex::new(tat),
                save: Box::new(save),
            }),
        }
    }

    /// Waits until a request may be sent: after any pause, and with a token.
    pub async fn acquire(&self) {
        let _turn = self.line.lock().await;
        loop {
            if let Some(until) = self.pause_deadline() {
                tokio::time::sleep_until(until).await;
            }
            self.bucket.until_ready().await;
            self.record();
            // A 429 seen by another worker while we waited wins over the token.
            if self.pause_deadline().is_none() {
                return;
            }
        }
    }

    /// Moves the recorded TAT as governor just moved its own, and saves it.
    /// Saving under the lock keeps the saves in order, so the last one
    /// saved is the latest TAT.
    fn record(&self) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let mut tat = recorder.tat.lock().unwrap_or_else(|p| p.into_inner());
        *tat = later((*tat).max(SystemTime::now()), recorder.period);
        (recorder.save)(*tat);
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

/// `time + by`, or `time` where that is past what the clock can show
/// (only with periods of centuries).
fn later(time: SystemTime, by: Duration) -> SystemTime {
    time.checked_add(by).unwrap_or(time)
}

/// The time between two tokens.
fn period(requests_per_second: f64) -> Duration {
    Duration::from_secs_f64(1.0 / requests_per_second).max(Duration::from_nanos(1))
}

fn quota(period: Duration, burst: u32) -> Quota {
    Quota::with_period(period)
        .expect("period is at least 1ns")
        .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst is at least 1"))
}

/// Tokens in a bucket of `burst` that gains one per `period` and whose TAT
/// is `tat`, at `now`: `(now + burst * period - tat) / period`, rounded
/// down, from 0 to `burst`. A TAT in the past is a full bucket.
pub fn tokens_left(tat: SystemTime, now: SystemTime, period: Duration, burst: u32) -> u32 {
    let Ok(ahead) = tat.duration_since(now) else {
        return burst;
    };
    let period = period.as_nanos().max(1);
    let capacity = period * u128::from(burst);
    let left = capacity.saturating_sub(ahead.as_nanos()) / period;
    u32::try_from(left).unwrap_or(burst).min(burst)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    impl RateLimiter {
        /// Takes every token there is now, without waiting, and counts them.
        fn take_all_now(&self) -> u32 {
            std::iter::from_fn(|| self.bucket.check().ok()).count() as u32
        }
    }

    /// A limiter resuming from `saved`, and the list of what it saves.
    fn resumed(
        rps: f64,
        burst: u32,
        saved: Option<SystemTime>,
    ) -> (RateLimiter, Arc<Mutex<Vec<SystemTime>>>) {
        let saves = Arc::new(Mutex::new(Vec::new()));
        let sink = saves.clone();
        let limiter = RateLimiter::resuming(rps, burst, saved, move |tat| sink.lock().unwrap().push(tat));
        (limiter, saves)
    }

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_workers_drawing_from_one_bucket_take_turns() {
        // Each worker asks for its next token as soon as it has one: with
        // waiters served in order, they alternate, so neither starves.
        let limiter = Arc::new(RateLimiter::new(50.0, 1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let (limiter, order) = (limiter.clone(), order.clone());
                tokio::spawn(async move {
                    for _ in 0..15 {
                        limiter.acquire().await;
                        order.lock().unwrap().push(worker);
                        // The request itself.
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let order = order.lock().unwrap();
        // After the first 20 tokens both have had a fair share.
        let first = order[..20].iter().filter(|&&w| w == 0).count();
        assert!(
            (7..=13).contains(&first),
            "worker 0 had {first} of the first 20: {order:?}"
        );
    }

    #[test]
    fn tokens_left_counts_whole_tokens_from_the_saved_time() {
        let period = Duration::from_millis(200);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let ms = Duration::from_millis;
        for (tat, left) in [
            (now - ms(3_600_000), 5),
            (now, 5),
            (now + ms(1), 4),
            (now + ms(200), 4),
            (now + ms(201), 3),
            (now + ms(600), 2),
            (now + ms(999), 0),
            (now + ms(1000), 0),
            (now + ms(86_400_000), 0),
        ] {
            assert_eq!(
                tokens_left(tat, now, period, 5),
                left,
                "{:?}",
                tat.duration_since(now)
            );
        }
        // No overflow at the extremes the config allows.
        assert_eq!(
            tokens_left(now, now, Duration::from_secs(1 << 40), u32::MAX),
            u32::MAX
        );
        assert_eq!(
            tokens_left(now + ms(1), now, Duration::from_nanos(1), u32::MAX),
            u32::MAX - 1_000_000
        );
    }

    #[test]
    fn a_saved_time_in_the_future_leaves_fewer_tokens() {
        // One token a second: none comes back while the test runs.
        let now = SystemTime::now();
        let second = Duration::from_secs(1);
        for (saved, tokens) in [
            (now + 5 * second, 0),
            (now + 3 * second, 2),
            (now + second / 2, 4),
        ] {
            let (limiter, _) = resumed(1.0, 5, Some(saved));
            assert_eq!(limiter.take_all_now(), tokens);
        }
    }

    #[test]
    fn a_saved_time_in_the_past_or_none_gives_a_full_bucket() {
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for saved in [Some(hour_ago), Some(SystemTime::UNIX_EPOCH), None] {
            let (limiter, saves) = resumed(1.0, 5, saved);
            assert_eq!(limiter.take_all_now(), 5, "{saved:?}");
            assert!(saves.lock().unwrap().is_empty());
        }
        assert_eq!(RateLimiter::new(1.0, 5).take_all_now(), 5);
    }

    #[tokio::test]
    async fn an_empty_saved_bucket_makes_the_first_request_wait_a_period() {
        // Five requests at 20/s just went out: the bucket is empty.
        let period = Duration::from_millis(50);
        let (limiter, _) = resumed(20.0, 5, Some(SystemTime::now() + 5 * period));
        let start = std::time::Instant::now();
        limiter.acquire().await;
        assert!(
            start.elapsed() >= period - Duration::from_millis(5),
            "{:?}",
            start.elapsed()
        );
        for _ in 0..3 {
            limiter.acquire().await;
        }
        // One a period from then on: no burst.
        assert!(
            start.elapsed() >= 4 * period - Duration::from_millis(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn every_token_is_saved_and_the_next_limiter_goes_on_from_the_last() {
        let period = Duration::from_millis(50);
        let before = SystemTime::now();
        let (first, saves) = resumed(20.0, 3, None);
        for _ in 0..3 {
            first.acquire().await;
        }
        let saved = saves.lock().unwrap().clone();
        assert_eq!(saved.len(), 3, "one save per token");
        // tat = max(tat, now) + period: a burst moves it one period a token.
        assert!(saved[0] >= before + period, "{saved:?}");
        assert_eq!(saved[1].duration_since(saved[0]).unwrap(), period);
        assert_eq!(saved[2].duration_since(saved[1]).unwrap(), period);
        // The burst is spent; the next process has to wait for a token.
        let (second, next_saves) = resumed(20.0, 3, saved.last().copied());
        let start = std::time::Instant::now();
        second.acquire().await;
        assert!(
            start.elapsed() >= period - Duration::from_millis(10),
            "{:?}",
            start.elapsed()
        );
        let next = next_saves.lock().unwrap().clone();
        assert_eq!(next.len(), 1);
        assert!(next[0] >= saved[2] + period, "{next:?} after {saved:?}");
    }
}
