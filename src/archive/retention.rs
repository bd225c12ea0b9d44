//! Which archive snapshots to keep: restic's `forget --keep-*` rules, as pure
//! logic over snapshot times, so that `chatkeep prune --dry-run` can say which
//! rule keeps each snapshot and the daemon can rotate after each snapshot.
//!
//! # The rules
//!
//! Snapshots are walked newest first. Each rule keeps snapshots until its
//! count is used up, and a snapshot is kept if any rule keeps it:
//!
//! - `keep_last n`: the `n` newest snapshots.
//! - `keep_hourly n`, `keep_daily n`, `keep_weekly n`, `keep_monthly n`,
//!   `keep_yearly n`: for the last `n` hours, days, weeks, months or years
//!   *that have a snapshot*, the newest snapshot of each. A bucket without a
//!   snapshot is not counted, so a week of downtime does not shorten a
//!   `keep_daily` history. Buckets are calendar buckets in UTC (hour `:00` to
//!   `:59`, day `00:00` to `23:59`, ...). Weeks are ISO 8601 weeks, Monday to
//!   Sunday, named by their ISO year: 2027-01-03, a Sunday, is in `2026-W53`,
//!   while `keep_yearly` puts it in the calendar year 2027.
//! - While a calendar rule still has count left when the walk reaches the
//!   oldest snapshot, the oldest snapshot is kept too, even when a newer
//!   snapshot already holds its bucket ([`Reason::Oldest`]). restic does this
//!   since 0.16 (restic issue #3624): a young archive keeps its first
//!   snapshot until the policy has enough buckets to replace it.
//!
//! This is what restic 0.16 and later does for these options (its
//! `ApplyPolicy`), with two chatkeep decisions on top:
//!
//! - A policy with every count at 0 keeps everything ([`Reason::NoPolicy`]);
//!   restic refuses to run with an empty policy, and a prune that deletes all
//!   archives is never what was meant.
//! - The newest snapshot is never removed ([`Reason::Newest`]). Every rule
//!   with a count of 1 or more keeps the newest snapshot anyway (it opens the
//!   first bucket of every rule), so this reason only shows if the rules
//!   change; it is a promise, checked after the rules run, not a rule.
//!
//! Snapshots with the same time are ordered by their index in the input, the
//! lower index counting as newer (a stable sort, as restic's): with
//! `keep_last 1` and two snapshots at the same newest time, the first one in
//! the input is kept.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

/// The `[archive] keep_*` settings. Each count is how many snapshots (for
/// `keep_last`) or buckets (for the calendar rules) that rule keeps; 0 turns
/// the rule off. Missing keys deserialize as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionPolicy {
    /// Keep the `n` newest snapshots.
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last `n` hours with snapshots.
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the last `n` days with snapshots.
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the last `n` ISO weeks with snapshots.
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the last `n` months with snapshots.
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the last `n` years with snapshots.
    pub keep_yearly: u32,
}

impl RetentionPolicy {
    /// True when no rule is on: such a policy keeps every snapshot.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Why a snapshot is kept. A kept snapshot has one reason per rule that keeps
/// it, in the order last, hourly, daily, weekly, monthly, yearly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Kept by `keep_last`; the 1-based rank among the newest snapshots.
    Last(u32),
    /// The newest snapshot of this hour, e.g. `2026-11-25 14h` (UTC).
    Hourly(String),
    /// The newest snapshot of this day, e.g. `2026-11-25`.
    Daily(String),
    /// The newest snapshot of this ISO week, e.g. `2026-W48`.
    Weekly(String),
    /// The newest snapshot of this month, e.g. `2026-11`.
    Monthly(String),
    /// The newest snapshot of this year, e.g. `2026`.
    Yearly(String),
    /// The oldest snapshot, kept because the calendar rule inside still had
    /// count left (see the module documentation). Always wraps an
    /// `Hourly`, `Daily`, `Weekly`, `Monthly` or `Yearly` reason, whose bucket
    /// a newer kept snapshot already holds.
    Oldest(Box<Reason>),
    /// The newest snapshot, which is never removed, kept by no rule.
    Newest,
    /// The policy is empty, so everything is kept.
    NoPolicy,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last(rank) => write!(f, "last {rank}"),
            Reason::Hourly(bucket) => write!(f, "hourly {bucket}"),
            Reason::Daily(bucket) => write!(f, "daily {bucket}"),
            Reason::Weekly(bucket) => write!(f, "weekly {bucket}"),
            Reason::Monthly(bucket) => write!(f, "monthly {bucket}"),
            Reason::Yearly(bucket) => write!(f, "yearly {bucket}"),
            Reason::Oldest(rule) => write!(f, "oldest snapshot, {rule} (rule not yet filled)"),
            Reason::Newest => f.write_str("newest snapshot (always kept)"),
            Reason::NoPolicy => f.write_str("no retention policy (keep everything)"),
        }
    }
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index of the snapshot in the slice given to [`plan`].
    pub index: usize,
    /// The snapshot's time.
    pub time: DateTime<Utc>,
    /// Whether the snapshot stays; `keep == !reasons.is_empty()`.
    pub keep: bool,
    /// Why it stays; empty when it is removed.
    pub reasons: Vec<Reason>,
}

/// One decision per snapshot, newest first (ties in input order).
pub fn plan(times: &[DateTime<Utc>], policy: &RetentionPolicy) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    // `sort_by` is stable: equal times stay in input order.
    order.sort_by(|&a, &b| times[b].cmp(&times[a]));

    if policy.is_empty() {
        return order
            .into_iter()
            .map(|index| Decision {
                index,
                time: times[index],
                keep: true,
                reasons: vec![Reason::NoPolicy],
            })
            .collect();
    }

    let mut last_left = policy.keep_last;
    let mut calendars = Period::ALL.map(|period| Counter::new(period, policy));
    let oldest = order.len().saturating_sub(1);
    let mut decisions: Vec<Decision> = order
        .into_iter()
        .enumerate()
        .map(|(position, index)| {
            let time = times[index];
            let mut reasons = Vec::new();
            if last_left > 0 {
                last_left -= 1;
                reasons.push(Reason::Last(policy.keep_last - last_left));
            }
            for counter in &mut calendars {
                reasons.extend(counter.offer(time, position == oldest));
            }
            Decision {
                index,
                time,
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect();
    keep_newest(&mut decisions);
    decisions
}

/// The chatkeep promise on top of the rules: the newest snapshot stays.
/// `decisions` is newest first.
fn keep_newest(decisions: &mut [Decision]) {
    if let Some(newest) = decisions.first_mut()
        && !newest.keep
    {
        newest.keep = true;
        newest.reasons.push(Reason::Newest);
    }
}

/// The calendar rules, in the order their reasons are listed.
#[derive(Debug, Clone, Copy)]
enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    fn count(self, policy: &RetentionPolicy) -> u32 {
        match self {
            Period::Hourly => policy.keep_hourly,
            Period::Daily => policy.keep_daily,
            Period::Weekly => policy.keep_weekly,
            Period::Monthly => policy.keep_monthly,
            Period::Yearly => policy.keep_yearly,
        }
    }

    /// The name of the bucket holding `time`; two times share a bucket
    /// exactly when their names are equal.
    fn bucket(self, time: DateTime<Utc>) -> String {
        match self {
            Period::Hourly => time.format("%Y-%m-%d %Hh").to_string(),
            Period::Daily => time.format("%Y-%m-%d").to_string(),
            Period::Weekly => {
                let week = time.iso_week();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Period::Monthly => time.format("%Y-%m").to_string(),
            Period::Yearly => time.format("%Y").to_string(),
        }
    }

    fn reason(self, bucket: String) -> Reason {
        match self {
            Period::Hourly => Reason::Hourly(bucket),
            Period::Daily => Reason::Daily(bucket),
            Period::Weekly => Reason::Weekly(bucket),
            Period::Monthly => Reason::Monthly(bucket),
            Period::Yearly => Reason::Yearly(bucket),
        }
    }
}

/// One calendar rule during the walk: how many buckets it may still open,
/// and the bucket it opened last. Snapshots come newest first and buckets
/// follow time, so a bucket's snapshots are contiguous and "not the last
/// bucket" means "a bucket not seen yet".
struct Counter {
    period: Period,
    left: u32,
    last_bucket: Option<String>,
}

impl Counter {
    fn new(period: Period, policy: &RetentionPolicy) -> Self {
        Counter {
            period,
            left: period.count(policy),
            last_bucket: None,
        }
    }

    /// Offers the next (older) snapshot; returns the reason if this rule
    /// keeps it.
    fn offer(&mut self, time: DateTime<Utc>, is_oldest: bool) -> Option<Reason> {
        if self.left == 0 {
            return None;
        }
        let bucket = self.period.bucket(time);
        let new_bucket = self.last_bucket.as_ref() != Some(&bucket);
        if !new_bucket && !is_oldest {
            return None;
        }
        self.left -= 1;
        self.last_bucket = Some(bucket.clone());
        let reason = self.period.reason(bucket);
        Some(if new_bucket {
            reason
        } else {
            Reason::Oldest(Box::new(reason))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveDateTime};

    /// Every rule off, for `..NONE` in the cases below.
    const NONE: RetentionPolicy = RetentionPolicy {
        keep_last: 0,
        keep_hourly: 0,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        keep_yearly: 0,
    };

    /// `"2026-11-25 14:30"` in UTC.
    fn t(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
            .unwrap_or_else(|e| panic!("bad test time {s:?}: {e}"))
            .and_utc()
    }

    fn times(list: &[&str]) -> Vec<DateTime<Utc>> {
        list.iter().map(|s| t(s)).collect()
    }

    /// One snapshot a day at `hour`:00 from `first` to `last`, oldest first.
    fn daily(first: &str, last: &str, hour: u32) -> Vec<DateTime<Utc>> {
        let parse = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        parse(first)
            .iter_days()
            .take_while(|day| *day <= parse(last))
            .map(|day| day.and_hms_opt(hour, 0, 0).unwrap().and_utc())
            .collect()
    }

    /// The kept snapshots, newest first, as `"<time>  <reason>, <reason>"`.
    fn kept(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| {
                let reasons: Vec<String> = d.reasons.iter().map(Reason::to_string).collect();
                format!("{}  {}", d.time.format("%Y-%m-%d %H:%M"), reasons.join(", "))
            })
            .collect()
    }

    /// What holds for every plan: one decision per snapshot, newest first
    /// with ties in input order, `keep` iff there is a reason, newest kept.
    fn check_invariants(times: &[DateTime<Utc>], decisions: &[Decision]) {
        assert_eq!(decisions.len(), times.len());
        let mut seen = vec![false; times.len()];
        for d in decisions {
            assert!(!seen[d.index], "index {} decided twice", d.index);
            seen[d.index] = true;
            assert_eq!(d.time, times[d.index]);
            assert_eq!(d.keep, !d.reasons.is_empty(), "{d:?}");
        }
        for pair in decisions.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                a.time > b.time || (a.time == b.time && a.index < b.index),
                "{pair:?}"
            );
        }
        if let Some(newest) = decisions.first() {
            assert!(newest.keep, "the newest snapshot must be kept");
        }
    }

    struct Case {
        name: &'static str,
        policy: RetentionPolicy,
        times: Vec<DateTime<Utc>>,
        /// The kept snapshots, newest first; every other one is removed.
        kept: &'static [&'static str],
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "empty policy keeps everything",
                policy: NONE,
                times: times(&["2026-11-24 10:00", "2026-11-25 10:00", "2026-11-25 10:00"]),
                kept: &[
                    "2026-11-25 10:00  no retention policy (keep everything)",
                    "2026-11-25 10:00  no retention policy (keep everything)",
                    "2026-11-24 10:00  no retention policy (keep everything)",
                ],
            },
            Case {
                name: "keep_last alone, unsorted input",
                policy: RetentionPolicy { keep_last: 3, ..NONE },
                times: times(&[
                    "2026-11-20 10:00",
                    "2026-11-25 10:00",
                    "2026-11-21 10:00",
                    "2026-11-24 10:00",
                    "2026-11-22 10:00",
                ]),
                kept: &[
                    "2026-11-25 10:00  last 1",
                    "2026-11-24 10:00  last 2",
                    "2026-11-22 10:00  last 3",
                ],
            },
            Case {
                name: "keep_last larger than the archive keeps all",
                policy: RetentionPolicy {
                    keep_last: 10,
                    ..NONE
                },
                times: times(&["2026-11-24 10:00", "2026-11-25 10:00"]),
                kept: &["2026-11-25 10:00  last 1", "2026-11-24 10:00  last 2"],
            },
            Case {
                name: "keep_hourly alone: the newest of each hour",
                policy: RetentionPolicy {
                    keep_hourly: 3,
                    ..NONE
                },
                times: times(&[
                    "2026-11-25 14:10",
                    "2026-11-25 14:50",
                    "2026-11-25 13:59",
                    "2026-11-25 12:00",
                    "2026-11-25 12:30",
                    "2026-11-25 10:05",
                ]),
                kept: &[
                    "2026-11-25 14:50  hourly 2026-11-25 14h",
                    "2026-11-25 13:59  hourly 2026-11-25 13h",
                    "2026-11-25 12:30  hourly 2026-11-25 12h",
                ],
            },
            Case {
                name: "keep_daily alone, several snapshots the same day",
                policy: RetentionPolicy {
                    keep_daily: 2,
                    ..NONE
                },
                times: times(&[
                    "2026-11-25 09:00",
                    "2026-11-25 18:00",
                    "2026-11-25 23:59",
                    "2026-11-24 12:00",
                    "2026-11-24 00:00",
                    "2026-11-23 08:00",
                ]),
                kept: &[
                    "2026-11-25 23:59  daily 2026-11-25",
                    "2026-11-24 12:00  daily 2026-11-24",
                ],
            },
            Case {
                name: "days without a snapshot are not counted",
                policy: RetentionPolicy {
                    keep_daily: 3,
                    ..NONE
                },
                times: times(&[
                    "2026-11-25 03:00",
                    "2026-11-24 03:00",
                    "2026-11-20 03:00",
                    "2026-11-19 03:00",
                    "2026-11-18 03:00",
                ]),
                kept: &[
                    "2026-11-25 03:00  daily 2026-11-25",
                    "2026-11-24 03:00  daily 2026-11-24",
                    "2026-11-20 03:00  daily 2026-11-20",
                ],
            },
            Case {
                name: "keep_weekly: Sunday ends an ISO week, Monday starts one",
                policy: RetentionPolicy {
                    keep_weekly: 2,
                    ..NONE
                },
                times: times(&[
                    "2026-11-23 08:00", // Monday, W48
                    "2026-11-28 08:00", // Saturday, W48
                    "2026-11-29 23:59", // Sunday, W48
                    "2026-11-30 00:00", // Monday, W49
                ]),
                kept: &[
                    "2026-11-30 00:00  weekly 2026-W49",
                    "2026-11-29 23:59  weekly 2026-W48",
                ],
            },
            Case {
                name: "keep_weekly at year ends: weeks 52, 53 and 1 of ISO years",
                policy: RetentionPolicy {
                    keep_weekly: 10,
                    ..NONE
                },
                times: times(&[
                    "2025-12-28 12:00", // Sunday, 2025-W52
                    "2025-12-29 12:00", // Monday, 2026-W01
                    "2026-01-01 12:00", // Thursday, 2026-W01
                    "2026-12-31 12:00", // Thursday, 2026-W53
                    "2027-01-03 12:00", // Sunday, 2026-W53
                    "2027-01-04 12:00", // Monday, 2027-W01
                ]),
                kept: &[
                    "2027-01-04 12:00  weekly 2027-W01",
                    "2027-01-03 12:00  weekly 2026-W53",
                    "2026-01-01 12:00  weekly 2026-W01",
                    "2025-12-28 12:00  weekly 2025-W52",
                ],
            },
            Case {
                name: "keep_yearly counts calendar years, not ISO years",
                policy: RetentionPolicy {
                    keep_yearly: 3,
                    ..NONE
                },
                times: times(&[
                    "2025-12-28 12:00",
                    "2025-12-29 12:00",
                    "2026-01-01 12:00",
                    "2026-12-31 12:00",
                    "2027-01-03 12:00",
                    "2027-01-04 12:00",
                ]),
                kept: &[
                    "2027-01-04 12:00  yearly 2027",
                    "2026-12-31 12:00  yearly 2026",
                    "2025-12-29 12:00  yearly 2025",
                ],
            },
            Case {
                name: "keep_monthly alone, a month without snapshots",
                policy: RetentionPolicy {
                    keep_monthly: 3,
                    ..NONE
                },
                times: times(&[
                    "2026-11-30 10:00",
                    "2026-11-01 10:00",
                    "2026-10-15 10:00",
                    "2026-08-31 10:00",
                    "2026-08-01 10:00",
                    "2026-07-01 10:00",
                ]),
                kept: &[
                    "2026-11-30 10:00  monthly 2026-11",
                    "2026-10-15 10:00  monthly 2026-10",
                    "2026-08-31 10:00  monthly 2026-08",
                ],
            },
            Case {
                name: "keep_yearly alone, around new year",
                policy: RetentionPolicy {
                    keep_yearly: 2,
                    ..NONE
                },
                times: times(&[
                    "2026-06-01 10:00",
                    "2026-01-01 00:00",
                    "2025-12-31 23:59",
                    "2024-05-05 10:00",
                ]),
                kept: &["2026-06-01 10:00  yearly 2026", "2025-12-31 23:59  yearly 2025"],
            },
            Case {
                // restic forum, "Help with forget policy" (2024): four
                // snapshots in January 2024 and --keep-monthly 4 keep two.
                name: "restic: the oldest snapshot stays while a rule is not filled",
                policy: RetentionPolicy {
                    keep_monthly: 4,
                    ..NONE
                },
                times: times(&[
                    "2024-01-02 13:42",
                    "2024-01-03 01:04",
                    "2024-01-04 20:09",
                    "2024-01-04 20:20",
                ]),
                kept: &[
                    "2024-01-04 20:20  monthly 2024-01",
                    "2024-01-02 13:42  oldest snapshot, monthly 2024-01 (rule not yet filled)",
                ],
            },
            Case {
                // restic docs, "Removing snapshots according to a policy": a
                // backup every Sunday for 12 weeks, then --keep-daily 4.
                name: "restic: twelve Sundays and keep_daily 4",
                policy: RetentionPolicy {
                    keep_daily: 4,
                    ..NONE
                },
                times: (0..12)
                    .map(|week| t("2019-09-01 11:00") + chrono::Duration::weeks(week))
                    .collect(),
                kept: &[
                    "2019-11-17 11:00  daily 2019-11-17",
                    "2019-11-10 11:00  daily 2019-11-10",
                    "2019-11-03 11:00  daily 2019-11-03",
                    "2019-10-27 11:00  daily 2019-10-27",
                ],
            },
            Case {
                name: "last 2 + daily 7 + weekly 4 + monthly 12 over daily snapshots",
                policy: RetentionPolicy {
                    keep_last: 2,
                    keep_daily: 7,
                    keep_weekly: 4,
                    keep_monthly: 12,
                    ..NONE
                },
                // 2026-11-25 is a Wednesday in 2026-W48.
                times: daily("2026-09-01", "2026-11-25", 3),
                kept: &[
                    "2026-11-25 03:00  last 1, daily 2026-11-25, weekly 2026-W48, monthly 2026-11",
                    "2026-11-24 03:00  last 2, daily 2026-11-24",
                    "2026-11-23 03:00  daily 2026-11-23",
                    "2026-11-22 03:00  daily 2026-11-22, weekly 2026-W47",
                    "2026-11-21 03:00  daily 2026-11-21",
                    "2026-11-20 03:00  daily 2026-11-20",
                    "2026-11-19 03:00  daily 2026-11-19",
                    "2026-11-15 03:00  weekly 2026-W46",
                    "2026-11-08 03:00  weekly 2026-W45",
                    "2026-10-31 03:00  monthly 2026-10",
                    "2026-09-30 03:00  monthly 2026-09",
                    "2026-09-01 03:00  oldest snapshot, monthly 2026-09 (rule not yet filled)",
                ],
            },
            Case {
                name: "hourly 2 + daily 2 + yearly 2 over a few snapshots",
                policy: RetentionPolicy {
                    keep_hourly: 2,
                    keep_daily: 2,
                    keep_yearly: 2,
                    ..NONE
                },
                times: times(&[
                    "2025-06-01 10:00",
                    "2026-11-24 22:00",
                    "2026-11-25 08:10",
                    "2026-11-25 08:40",
                    "2026-11-25 09:15",
                ]),
                kept: &[
                    "2026-11-25 09:15  hourly 2026-11-25 09h, daily 2026-11-25, yearly 2026",
                    "2026-11-25 08:40  hourly 2026-11-25 08h",
                    "2026-11-24 22:00  daily 2026-11-24",
                    "2025-06-01 10:00  yearly 2025",
                ],
            },
        ]
    }

    #[test]
    fn table_of_cases() {
        for case in cases() {
            let decisions = plan(&case.times, &case.policy);
            check_invariants(&case.times, &decisions);
            assert_eq!(kept(&decisions), case.kept, "case: {}", case.name);
        }
    }

    /// restic docs: "suppose you make one backup every day for 100 years.
    /// Then forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12
    /// --keep-yearly 75 would keep the most recent 7 daily snapshots and 4
    /// last-day-of-the-week ones (since the 7 dailies already include 1
    /// weekly). Additionally, 12 or 11 last-day-of-the-month snapshots [...]
    /// And finally 75 or 74 last-day-of-the-year snapshots". Ending on a
    /// Sunday that is also 31 December makes each "or" exact: 7 + 4 + 11 + 74.
    #[test]
    fn restic_hundred_years_of_daily_snapshots() {
        let times = daily("1924-01-01", "2023-12-31", 12); // 2023-12-31 is a Sunday
        let policy = RetentionPolicy {
            keep_daily: 7,
            keep_weekly: 5,
            keep_monthly: 12,
            keep_yearly: 75,
            ..NONE
        };
        let decisions = plan(&times, &policy);
        check_invariants(&times, &decisions);
        let kept: Vec<&Decision> = decisions.iter().filter(|d| d.keep).collect();
        assert_eq!(kept.len(), 7 + 4 + 11 + 74);

        let first_reason_is = |pred: fn(&Reason) -> bool| -> Vec<String> {
            kept.iter()
                .filter(|d| pred(&d.reasons[0]))
                .map(|d| d.time.format("%Y-%m-%d").to_string())
                .collect()
        };
        assert_eq!(first_reason_is(|r| matches!(r, Reason::Daily(_))).len(), 7);
        assert_eq!(
            first_reason_is(|r| matches!(r, Reason::Weekly(_))),
            ["2023-12-24", "2023-12-17", "2023-12-10", "2023-12-03"]
        );
        let monthly = first_reason_is(|r| matches!(r, Reason::Monthly(_)));
        assert_eq!(monthly.len(), 11);
        assert_eq!(
            (monthly[0].as_str(), monthly[10].as_str()),
            ("2023-11-30", "2023-01-31")
        );
        let yearly = first_reason_is(|r| matches!(r, Reason::Yearly(_)));
        let expected: Vec<String> = (1949..=2022).rev().map(|y| format!("{y}-12-31")).collect();
        assert_eq!(yearly, expected);
    }

    #[test]
    fn ties_are_ordered_by_input_index() {
        let same = "2026-11-25 10:00";
        let times = times(&["2026-11-24 10:00", same, same, "2026-11-23 10:00"]);
        for policy in [
            RetentionPolicy { keep_last: 1, ..NONE },
            RetentionPolicy {
                keep_daily: 1,
                ..NONE
            },
            RetentionPolicy {
                keep_yearly: 1,
                ..NONE
            },
        ] {
            let decisions = plan(&times, &policy);
            check_invariants(&times, &decisions);
            let order: Vec<usize> = decisions.iter().map(|d| d.index).collect();
            assert_eq!(order, [1, 2, 0, 3]);
            let kept: Vec<usize> = decisions.iter().filter(|d| d.keep).map(|d| d.index).collect();
            assert_eq!(kept, [1], "{policy:?}");
        }
    }

    /// Every rule with a count of 1 or more keeps the newest snapshot, so
    /// `Newest` never shows with today's rules: it is the guarantee behind
    /// them, tested on its own below.
    #[test]
    fn every_rule_keeps_the_newest_itself() {
        let times = times(&["2026-11-25 10:00", "2026-11-25 11:00", "2025-01-01 00:00"]);
        for n in [1, 2, 100] {
            let rules = [
                (RetentionPolicy { keep_last: n, ..NONE }, "last 1"),
                (
                    RetentionPolicy {
                        keep_hourly: n,
                        ..NONE
                    },
                    "hourly 2026-11-25 11h",
                ),
                (
                    RetentionPolicy {
                        keep_daily: n,
                        ..NONE
                    },
                    "daily 2026-11-25",
                ),
                (
                    RetentionPolicy {
                        keep_weekly: n,
                        ..NONE
                    },
                    "weekly 2026-W48",
                ),
                (
                    RetentionPolicy {
                        keep_monthly: n,
                        ..NONE
                    },
                    "monthly 2026-11",
                ),
                (
                    RetentionPolicy {
                        keep_yearly: n,
                        ..NONE
                    },
                    "yearly 2026",
                ),
            ];
            for (policy, reason) in rules {
                let decisions = plan(&times, &policy);
                check_invariants(&times, &decisions);
                let newest = &decisions[0];
                assert_eq!(newest.index, 1);
                let reasons: Vec<String> = newest.reasons.iter().map(Reason::to_string).collect();
                assert_eq!(reasons, [reason], "{policy:?}");
            }
        }
    }

    #[test]
    fn the_newest_is_kept_when_no_rule_keeps_it() {
        let removed = |index, time| Decision {
            index,
            time: t(time),
            keep: false,
            reasons: Vec::new(),
        };
        let mut decisions = vec![removed(1, "2026-11-25 10:00"), removed(0, "2026-11-24 10:00")];
        keep_newest(&mut decisions);
        assert!(decisions[0].keep);
        assert_eq!(decisions[0].reasons, [Reason::Newest]);
        assert_eq!(decisions[1], removed(0, "2026-11-24 10:00"));

        // A newest snapshot some rule keeps gets no extra reason.
        let mut decisions = vec![Decision {
            keep: true,
            reasons: vec![Reason::Last(1)],
            ..removed(0, "2026-11-25 10:00")
        }];
        keep_newest(&mut decisions);
        assert_eq!(decisions[0].reasons, [Reason::Last(1)]);

        keep_newest(&mut []);
    }

    #[test]
    fn no_snapshots_no_decisions() {
        assert_eq!(plan(&[], &RetentionPolicy { keep_last: 3, ..NONE }), []);
        assert_eq!(plan(&[], &NONE), []);
    }

    #[test]
    fn is_empty_only_with_every_count_zero() {
        assert!(RetentionPolicy::default().is_empty());
        assert!(NONE.is_empty());
        assert!(
            !RetentionPolicy {
                keep_yearly: 1,
                ..NONE
            }
            .is_empty()
        );
        assert!(!RetentionPolicy { keep_last: 1, ..NONE }.is_empty());
    }

    #[test]
    fn reasons_read_as_documented() {
        let cases = [
            (Reason::Last(2), "last 2"),
            (Reason::Hourly("2026-11-25 14h".into()), "hourly 2026-11-25 14h"),
            (Reason::Daily("2026-11-25".into()), "daily 2026-11-25"),
            (Reason::Weekly("2026-W48".into()), "weekly 2026-W48"),
            (Reason::Monthly("2026-11".into()), "monthly 2026-11"),
            (Reason::Yearly("2026".into()), "yearly 2026"),
            (
                Reason::Oldest(Box::new(Reason::Daily("2026-11-25".into()))),
                "oldest snapshot, daily 2026-11-25 (rule not yet filled)",
            ),
            (Reason::Newest, "newest snapshot (always kept)"),
            (Reason::NoPolicy, "no retention policy (keep everything)"),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }

    #[test]
    fn policy_reads_from_toml_with_missing_keys_as_zero() {
        let policy: RetentionPolicy = toml::from_str("keep_daily = 7\nkeep_weekly = 4\n").unwrap();
        assert_eq!(
            policy,
            RetentionPolicy {
                keep_daily: 7,
                keep_weekly: 4,
                ..NONE
            }
        );
        let empty: RetentionPolicy = toml::from_str("").unwrap();
        assert!(empty.is_empty());
    }
}
