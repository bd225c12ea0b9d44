//! `--since` and `--until`: the part of the history an export writes,
//! chosen by each message's place in it (the `ts` it was first stored
//! under), in UTC.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::message::Ts;

/// From `since` (inclusive) to before `before` (exclusive); all of the
/// history by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub since: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

impl Period {
    /// Whether it leaves anything out.
    pub fn is_all(&self) -> bool {
        self.since.is_none() && self.before.is_none()
    }

    /// Whether a message placed at `position` is in it, to the millisecond
    /// (the precision of the dates exports write).
    pub fn contains(&self, position: Ts) -> bool {
        let ms = position.millis();
        self.since.is_none_or(|since| ms >= since.timestamp_millis())
            && self.before.is_none_or(|before| ms < before.timestamp_millis())
    }
}

/// `--since`: a date (`2024-01-31`, from the start of that day, UTC) or an
/// RFC 3339 time (`2024-01-31T12:00:00Z`), inclusive.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    match parse(text)? {
        When::Day(day) => Ok(day.and_time(NaiveTime::MIN).and_utc()),
        When::Time(at) => Ok(at),
    }
}

/// `--until`: a date (`2024-01-31`, up to the end of that day, UTC) or an
/// RFC 3339 time, inclusive to the millisecond. Returned as the exclusive
/// bound just after it.
pub fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    match parse(text)? {
        When::Day(day) => day
            .succ_opt()
            .map(|next| next.and_time(NaiveTime::MIN).and_utc())
            .ok_or_else(|| format!("{text:?} is the last date there is")),
        When::Time(at) => Ok(at + chrono::Duration::milliseconds(1)),
    }
}

enum When {
    Day(NaiveDate),
    Time(DateTime<Utc>),
}

fn parse(text: &str) -> Result<When, String> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(When::Day(day));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| When::Time(at.with_timezone(&Utc)))
        .map_err(|_| {
            format!("{text:?} is not a date (2024-01-31) or an RFC 3339 time (2024-01-31T12:00:00Z)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Ts {
        let at = DateTime::parse_from_rfc3339(text).unwrap();
        Ts::new(at.timestamp_millis() as f64 / 1000.0).unwrap()
    }

    #[test]
    fn dates_cover_whole_days_and_times_are_inclusive() {
        let period = Period {
            since: Some(parse_since("2024-01-02").unwrap()),
            before: Some(parse_until("2024-01-03").unwrap()),
        };
        assert!(!period.contains(ts("2024-01-01T23:59:59.999Z")));
        assert!(period.contains(ts("2024-01-02T00:00:00Z")));
        assert!(period.contains(ts("2024-01-03T23:59:59.999Z")));
        assert!(!period.contains(ts("2024-01-04T00:00:00Z")));
        let exact = Period {
            since: Some(parse_since("2024-01-02T10:00:00+01:00").unwrap()),
            before: Some(parse_until("2024-01-02T09:30:00Z").unwrap()),
        };
        assert!(exact.contains(ts("2024-01-02T09:00:00Z")));
        assert!(exact.contains(ts("2024-01-02T09:30:00Z")));
        assert!(!exact.contains(ts("2024-01-02T09:30:00.001Z")));
        assert!(parse_since("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
