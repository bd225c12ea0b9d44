//! Which snapshots a retention policy keeps, with restic's meaning of
//! `keep_last`, `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`
//! and `keep_yearly`. Pure: times in, decisions out.
//!
//! A minimal stand-in with the API of the full implementation, which
//! replaces this file.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

/// How many snapshots each rule keeps. Zero turns a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: 7,
            keep_hourly: 0,
            keep_daily: 14,
            keep_weekly: 8,
            keep_monthly: 12,
            keep_yearly: 0,
        }
    }
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The newest snapshot, kept by no rule.
    Newest,
    /// Every count is 0: nothing is removed.
    NoPolicy,
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Newest => "newest snapshot (always kept)",
            Reason::NoPolicy => "no retention policy (keep everything)",
            Reason::Last => "last",
            Reason::Hourly => "hourly",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::Yearly => "yearly",
        })
    }
}

/// What the policy says about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index of the snapshot in the `times` given to [`plan`].
    pub index: usize,
    pub time: DateTime<Utc>,
    pub keep: bool,
    /// Every rule that keeps it; empty when it goes.
    pub reasons: Vec<Reason>,
}

/// One decision per time, newest first. The newest is always kept; with
/// every count at 0, everything is.
pub fn plan(times: &[DateTime<Utc>], policy: &RetentionPolicy) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|a, b| times[*b].cmp(&times[*a]));
    type Bucket = fn(&DateTime<Utc>) -> i64;
    let rules: [(Reason, u32, Bucket); 6] = [
        (Reason::Last, policy.keep_last, |_| i64::MIN),
        (Reason::Hourly, policy.keep_hourly, |t| {
            t.timestamp().div_euclid(3600)
        }),
        (Reason::Daily, policy.keep_daily, |t| {
            t.timestamp().div_euclid(86_400)
        }),
        (Reason::Weekly, policy.keep_weekly, |t| {
            let week = t.iso_week();
            i64::from(week.year()) * 100 + i64::from(week.week())
        }),
        (Reason::Monthly, policy.keep_monthly, |t| {
            i64::from(t.year()) * 100 + i64::from(t.month())
        }),
        (Reason::Yearly, policy.keep_yearly, |t| i64::from(t.year())),
    ];
    let no_policy = rules.iter().all(|r| r.1 == 0);
    let mut left: Vec<u32> = rules.iter().map(|r| r.1).collect();
    let mut last_bucket: Vec<Option<i64>> = vec![None; rules.len()];
    let mut decisions = Vec::with_capacity(times.len());
    for (rank, &index) in order.iter().enumerate() {
        let time = times[index];
        let mut reasons = Vec::new();
        for (r, (reason, _, bucket)) in rules.iter().enumerate() {
            let b = if *reason == Reason::Last {
                rank as i64
            } else {
                bucket(&time)
            };
            if left[r] > 0 && last_bucket[r] != Some(b) {
                left[r] -= 1;
                last_bucket[r] = Some(b);
                reasons.push(*reason);
            }
        }
        if no_policy {
            reasons.push(Reason::NoPolicy);
        } else if rank == 0 && reasons.is_empty() {
            reasons.push(Reason::Newest);
        }
        decisions.push(Decision {
            index,
            time,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keep_last_keeps_the_newest_ones_and_no_policy_keeps_all() {
        let times: Vec<_> = (0..5)
            .map(|h| Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap())
            .collect();
        let policy = RetentionPolicy {
            keep_last: 2,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
        };
        let kept: Vec<usize> = plan(&times, &policy)
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.index)
            .collect();
        assert_eq!(kept, [4, 3]);
        let none = RetentionPolicy {
            keep_last: 0,
            ..policy
        };
        let kept: Vec<usize> = plan(&times, &none)
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.index)
            .collect();
        assert_eq!(kept, [4, 3, 2, 1, 0]);
    }
}
