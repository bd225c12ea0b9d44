//! The activity chart: messages per week over the whole history, as an
//! inline SVG (no script, no chart framework). Counting reads the chat log
//! once, with a scan for each line's `ts` rather than a parse; the counts
//! (one number per week) are kept until the history's state changes, so a
//! million-message history is read once per sync, not once per view.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::html::escape;
use crate::message::Message;
use crate::store::{ChatStore, ChatStoreError};

/// Messages per week, by the Monday that starts it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub weeks: BTreeMap<NaiveDate, u64>,
}

/// What a cached count was made from: a changed state makes it stale.
type Version = (u64, u64, usize, u64);

fn version(store: &ChatStore) -> Version {
    let s = store.state();
    (s.commits, s.message_count, s.segments.len(), s.log_len)
}

/// Counts per personality, each with the state it was made from.
#[derive(Default)]
pub struct Cache {
    counted: Mutex<HashMap<String, (Version, Activity)>>,
}

impl Cache {
    /// The activity of `name`'s history, counted again if it changed.
    pub fn get(&self, name: &str, store: &ChatStore) -> Result<Activity, ChatStoreError> {
        let now = version(store);
        if let Some((v, a)) = self.counted.lock().expect("not poisoned").get(name)
            && *v == now
        {
            return Ok(a.clone());
        }
        let activity = count(store)?;
        self.counted
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), (now, activity.clone()));
        Ok(activity)
    }
}

fn monday(t: DateTime<Utc>) -> NaiveDate {
    let day = t.date_naive();
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// Reads the chat log once.
pub fn count(store: &ChatStore) -> Result<Activity, ChatStoreError> {
    let mut weeks = BTreeMap::new();
    for line in store.lines()? {
        let line = line.map_err(ChatStoreError::Read)?;
        let ts = Message::stored_ts(&line).or_else(|| Message::stored_keys(&line).ok().map(|(_, ts)| ts));
        if let Some(t) =
            ts.and_then(|ts| DateTime::<Utc>::from_timestamp_millis((ts.as_f64() * 1000.0) as i64))
        {
            *weeks.entry(monday(t)).or_insert(0) += 1;
        }
    }
    Ok(Activity { weeks })
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
