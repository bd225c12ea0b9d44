//! The activity chart (messages per week over the whole history, as an
//! inline SVG: no script, no chart framework), and the scans it comes from.
//!
//! A page view needs, per file of the log, where each gzip member starts
//! (for the transcript: [`Starts`]) and how many messages fall in each week
//! (for the chart). Both come from one read of the file
//! ([`ChatStore::scan_members`]), kept per file: a sealed segment never
//! changes, so a million-message history is read once per server, and
//! after a sync only the open log again.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::html::escape;
use super::transcript::Starts;
use crate::store::chat::marks::Mark;
use crate::store::{ChatStore, ChatStoreError};

/// Messages per week, by the Monday that starts it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub weeks: BTreeMap<NaiveDate, u64>,
}

/// What one read of one file found.
#[derive(Debug)]
struct FileScan {
    marks: Vec<Mark>,
    weeks: BTreeMap<NaiveDate, u64>,
}

/// The scans of every personality's files, by (personality, file name,
/// committed length).
#[derive(Default)]
pub struct Cache {
    files: Mutex<HashMap<(String, String, u64), Arc<FileScan>>>,
}

impl Cache {
    /// Where the members of `name`'s history start and its activity,
    /// reading the files not read yet (or changed since).
    pub fn get(&self, name: &str, store: &ChatStore) -> Result<(Starts, Activity), ChatStoreError> {
        let files = store.files();
        let mut starts = Starts::default();
        let mut activity = Activity::default();
        let mut current = Vec::new();
        for file in &files {
            let key = (name.to_owned(), file.name.clone(), file.len);
            let cached = self.files.lock().expect("not poisoned").get(&key).cloned();
            let scan = match cached {
                Some(scan) => scan,
                None => {
                    let mut weeks = BTreeMap::new();
                    let marks = store.scan_members(file, |ts| {
                        if let Some(t) = DateTime::<Utc>::from_timestamp_millis((ts.as_f64() * 1000.0) as i64)
                        {
                            *weeks.entry(monday(t)).or_insert(0) += 1;
                        }
                    })?;
                    let scan = Arc::new(FileScan { marks, weeks });
                    self.files
                        .lock()
                        .expect("not poisoned")
                        .insert(key.clone(), scan.clone());
                    scan
                }
            };
            starts
                .members
                .extend(scan.marks.iter().map(|m| (file.source, *m)));
            for (week, n) in &scan.weeks {
                *activity.weeks.entry(*week).or_insert(0) += n;
            }
            current.push(key);
        }
        // What this personality's files no longer are goes.
        self.files
            .lock()
            .expect("not poisoned")
            .retain(|key, _| key.0 != name || current.contains(key));
        Ok((starts, activity))
    }
}

fn monday(t: DateTime<Utc>) -> NaiveDate {
    let day = t.date_naive();
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The chart: one bar per week from the first to the last, each a link to
/// the transcript at that week, with its count as a tooltip.
pub fn svg(activity: &Activity, transcript: &str) -> String {
    let (Some(first), Some(last)) = (activity.weeks.keys().next(), activity.weeks.keys().next_back()) else {
        return "<p class=\"muted\">No messages yet.</p>".to_owned();
    };
    let weeks = ((*last - *first).num_days() / 7 + 1) as usize;
    let most = activity.weeks.values().copied().max().unwrap_or(1).max(1);
    let (width, height) = (800.0_f64, 120.0_f64);
    let bar = width / weeks as f64;
    let mut out = format!(
        "<svg class=\"activity\" viewBox=\"0 0 {width} {}\" role=\"img\" aria-label=\"Messages per week, {} to {}\">",
        height + 16.0,
        first,
        last
    );
    for (week, n) in &activity.weeks {
        let i = (*week - *first).num_days() / 7;
        let h = (*n as f64 / most as f64 * height).max(1.0);
        let _ = write!(
            out,
            "<a href=\"{}?date={week}\"><rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{h:.2}\">\
             <title>week of {week}: {n} message{}</title></rect></a>",
            escape(transcript),
            i as f64 * bar,
            height - h,
            (bar * 0.9).max(0.5),
            if *n == 1 { "" } else { "s" }
        );
    }
    let _ = write!(
        out,
        "<text x=\"0\" y=\"{}\" font-size=\"11\">{first}</text>\
         <text x=\"{width}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{last}</text></svg>",
        height + 14.0,
        height + 14.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_and_bars_scale_to_the_busiest() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(monday(t("2026-11-29T23:00:00Z")).to_string(), "2026-11-23");
        assert_eq!(monday(t("2026-11-30T00:00:00Z")).to_string(), "2026-11-30");
        let mut activity = Activity::default();
        activity.weeks.insert(monday(t("2026-11-02T10:00:00Z")), 4);
        activity.weeks.insert(monday(t("2026-11-23T10:00:00Z")), 2);
        let svg = svg(&activity, "/p/a/chat");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("height=\"120.00\""), "{svg}");
        assert!(svg.contains("height=\"60.00\""), "{svg}");
        assert!(svg.contains("href=\"/p/a/chat?date=2026-11-23\""), "{svg}");
    }
}
