//! Cron expressions, checked exactly as the daemon's scheduler reads them.
//!
//! tokio-cron-scheduler 0.15 parses schedules with croner 3's
//! [`CronParser`], with the seconds field required and day-of-month and
//! day-of-week combined with AND (`Job::new_async`, and again each time it
//! computes a cron job's next tick). Checking with the same parser set up
//! the same way means a schedule the config accepts is one the scheduler
//! accepts, and one it rejects is reported at load time, with its line,
//! rather than when the job is added.
//!
//! Beyond the parser, an expression that never fires (`"0 0 0 30 2 *"`,
//! a year in the past) is rejected: the scheduler would take it and
//! silently never run the job.

use chrono::Utc;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds};

/// What a cron expression is, for "must be ..." messages.
pub(super) const CRON_FORMAT: &str = "a cron expression of six fields, \
    \"second minute hour day-of-month month day-of-week\", and an optional seventh, year, \
    such as \"0 0 */6 * * *\" (every 6 hours, on the hour) or \"0 30 2 * * SUN\" \
    (Sundays at 02:30)";

/// The fields in order: name, and the values it takes.
const FIELDS: [(&str, &str); 7] = [
    ("second", "seconds are 0-59"),
    ("minute", "minutes are 0-59"),
    ("hour", "hours are 0-23"),
    (
        "day-of-month",
        "days of the month are 1-31, L (the last) or nW (the weekday nearest n)",
    ),
    ("month", "months are 1-12 or JAN-DEC"),
    (
        "day-of-week",
        "days of the week are 0-7 (0 and 7 are Sunday) or SUN-SAT, nL (the last n of the month) \
         or n#k (the k-th n of the month)",
    ),
    ("year", "years are 1-5000"),
];

/// The shorthands croner replaces by an expression.
const SHORTHANDS: &str = "@yearly, @annually, @monthly, @weekly, @daily and @hourly";

/// The parser, set up as tokio-cron-scheduler 0.15 sets it up.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
}

/// Why the scheduler could not run `expression`, if it could not: a clause
/// to follow "got ...: ".
pub(super) fn cron_problem(expression: &str) -> Option<String> {
    match parser().parse(expression) {
        Err(err) => Some(diagnose(expression, &err)),
        Ok(cron) if cron.find_next_occurrence(&Utc::now(), false).is_err() => {
            Some("it matches no time from now on, so it would never run".to_owned())
        }
        Ok(_) => None,
    }
}

/// Runs of a valid expression looked at for [`shortest_gap`]: enough for any
/// pattern that repeats within the hour to show its closest pair many
/// times over, cheap enough to check at every load.
const RUNS_CHECKED: usize = 1000;

/// The shortest time between two consecutive runs of `expression` among its
/// next [`RUNS_CHECKED`] runs, and when the first of those two is; `None`
/// when it does not parse or runs fewer than twice.
pub(super) fn shortest_gap(expression: &str) -> Option<(std::time::Duration, chrono::DateTime<Utc>)> {
    let cron = parser().parse(expression).ok()?;
    let mut at = cron.find_next_occurrence(&Utc::now(), false).ok()?;
    let mut shortest: Option<(std::time::Duration, chrono::DateTime<Utc>)> = None;
    for _ in 0..RUNS_CHECKED {
        let Ok(next) = cron.find_next_occurrence(&at, false) else {
            break;
        };
        let gap = (next - at).to_std().unwrap_or_default();
        if shortest.is_none_or(|(s, _)| gap < s) {
            shortest = Some((gap, at));
        }
        at = next;
    }
    shortest
}

/// Which part of a rejected expression is wrong, as precisely as can be
/// said: the number of fields, or the first field the parser rejects on
/// its own.
fn diagnose(expression: &str, err: &CronError) -> String {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.is_empty() {
        return "it is empty".to_owned();
    }
    if expression.contains('@') {
        return if fields.len() == 1 {
            format!(
                "{:?} is not a shorthand; the shorthands are {SHORTHANDS}",
                fields[0]
            )
        } else {
            format!("'@' only starts a shorthand, which stands alone: {SHORTHANDS}")
        };
    }
    match fields.len() {
        5 => format!(
            "it has 5 fields, but the first field, seconds, cannot be left out; \
             to run at second 0, write \"0 {}\"",
            fields.join(" ")
        ),
        6 | 7 => (0..fields.len())
            .find_map(|index| field_problem(&fields, index))
            .unwrap_or_else(|| reason(err)),
        1 => "it has 1 field".to_owned(),
        n => format!("it has {n} fields"),
    }
}

/// Why field `index` is wrong, if the parser rejects it among stars.
fn field_problem(fields: &[&str], index: usize) -> Option<String> {
    let alone: Vec<&str> = (0..fields.len())
        .map(|i| if i == index { fields[i] } else { "*" })
        .collect();
    let err = parser().parse(&alone.join(" ")).err()?;
    let (name, values) = FIELDS[index];
    Some(format!(
        "the {name} field {:?} is not valid ({}); {values}, with * for any, \
         a-b for a range, a,b for a list and /n for a step",
        fields[index],
        reason(&err)
    ))
}

/// croner's reason, as a clause.
fn reason(err: &CronError) -> String {
    match err {
        // croner's message quotes the field upper-cased, which would not
        // match what the person wrote.
        CronError::IllegalCharacters(_) => "a character there is not allowed".to_owned(),
        CronError::ComponentError(message) | CronError::InvalidPattern(message) => {
            message.trim_end_matches('.').to_lowercase()
        }
        other => other.to_string().trim_end_matches('.').to_lowercase(),
    }
}
