//! Reading `[daemon]`, and the cron expressions it shares with
//! `[[personality]]`.

use super::super::cron::{CRON_FORMAT, cron_problem, shortest_gap};
use super::*;

impl Reader<'_> {
    pub(super) fn daemon(&mut self, section: Table<'_, '_>) -> Option<DaemonConfig> {
        self.check_keys(&section, DAEMON_KEYS);
        let schedule = self.schedule(&section);
        let jitter = self.optional(section.get("jitter"), Duration::ZERO, read_jitter);
        let workers = self.optional(section.get("workers"), DEFAULT_WORKERS, |f| {
            f.integer(1, MAX_WORKERS)
        });
        let run_on_start = self.optional(section.get("run_on_start"), false, |f| f.boolean());
        let shutdown_timeout = self.optional(
            section.get("shutdown_timeout"),
            DEFAULT_SHUTDOWN_TIMEOUT,
            read_shutdown_timeout,
        );
        let archive_schedule =
            self.optional(section.get("archive_schedule"), None, |f| read_cron(f).map(Some));
        let audit_schedule = self.optional(section.get("audit_schedule"), None, |f| read_cron(f).map(Some));
        Some(DaemonConfig {
            schedule: schedule?,
            jitter: jitter?,
            workers: workers?,
            run_on_start: run_on_start?,
            shutdown_timeout: shutdown_timeout?,
            archive_schedule: archive_schedule?,
            audit_schedule: audit_schedule?,
        })
    }

    /// `schedule` or `interval`, not both; the default schedule if neither.
    fn schedule(&mut self, section: &Table<'_, '_>) -> Option<Schedule> {
        match (section.get("schedule"), section.get("interval")) {
            (Some(schedule), Some(interval)) => {
                let (first, second) = if schedule.key_at < interval.key_at {
                    (schedule, interval)
                } else {
                    (interval, schedule)
                };
                let message = format!(
                    "{} cannot be set together with {} (line {}); set one of them: schedule \
                     for a cron expression, or interval for a fixed period",
                    second.name,
                    first.name,
                    self.line_of(first.key_at)
                );
                self.problem(second.key_at, message);
                None
            }
            (Some(schedule), None) => self.keep(read_cron(&schedule)).map(Schedule::Cron),
            (None, Some(interval)) => self.keep(read_interval(&interval)).map(Schedule::Interval),
            (None, None) => Some(Schedule::Cron(DEFAULT_SCHEDULE.to_owned())),
        }
    }
}

/// A cron expression the scheduler accepts, that fires at least once more
/// and never sooner than [`MIN_INTERVAL`] after its previous run (as
/// `interval` may not), kept as written.
pub(super) fn read_cron(field: &Field<'_, '_>) -> Result<String, Problem> {
    let text = field.string(CRON_FORMAT)?;
    if let Some(reason) = cron_problem(text) {
        return Err(field.reject(format!(
            "{} must be {CRON_FORMAT}; got {}: {reason}",
            field.name,
            shown(field.value.get_ref())
        )));
    }
    let fast_allowed = std::env::var_os(crate::config::FAST_SCHEDULES_FOR_TESTS).is_some();
    if let Some((gap, at)) = shortest_gap(text).filter(|(gap, _)| *gap < MIN_INTERVAL && !fast_allowed) {
        return Err(field.reject(format!(
            "{} must not run more often than every {} (the shortest interval), got {}, which \
             runs at {} and again {} later; a sync makes several requests, so runs closer \
             together would mostly find the last one still running. Set the seconds field \
             to one value (\"0 */5 * * * *\": every 5 minutes)",
            field.name,
            format_duration(MIN_INTERVAL),
            shown(field.value.get_ref()),
            at.format("%Y-%m-%d %H:%M:%S UTC"),
            format_duration(gap)
        )));
    }
    Ok(text.to_owned())
}

/// Whole seconds from [`MIN_INTERVAL`] to [`MAX_INTERVAL`].
fn read_interval(field: &Field<'_, '_>) -> Result<Duration, Problem> {
    let interval = field.any_duration()?;
    let shown = format_duration(interval);
    if interval < MIN_INTERVAL {
        return Err(field.reject(format!(
            "{} must be at least {}, got {shown}: a sync makes several requests, so \
             ticks closer together would mostly find the last one still running",
            field.name,
            format_duration(MIN_INTERVAL)
        )));
    }
    if interval.subsec_nanos() != 0 {
        return Err(field.reject(format!(
            "{} must be a whole number of seconds, as the scheduler counts in seconds, \
             got {shown}",
            field.name
        )));
    }
    if interval > MAX_INTERVAL {
        return Err(field.reject(format!(
            "{} must be at most {}, got {shown}; for rarer runs, use a schedule",
            field.name,
            format_duration(MAX_INTERVAL)
        )));
    }
    Ok(interval)
}

/// Zero or more, shorter than [`MAX_JITTER`].
fn read_jitter(field: &Field<'_, '_>) -> Result<Duration, Problem> {
    let jitter = field.any_duration()?;
    if jitter >= MAX_JITTER {
        return Err(field.reject(format!(
            // MAX_JITTER, which format_duration would call "1d".
            "{} must be shorter than 24h, got {}",
            field.name,
            format_duration(jitter)
        )));
    }
    Ok(jitter)
}

/// Longer than zero, at most [`MAX_SHUTDOWN_TIMEOUT`].
fn read_shutdown_timeout(field: &Field<'_, '_>) -> Result<Duration, Problem> {
    let timeout = field.duration()?;
    if timeout > MAX_SHUTDOWN_TIMEOUT {
        return Err(field.reject(format!(
            "{} must be at most {}, got {}",
            field.name,
            format_duration(MAX_SHUTDOWN_TIMEOUT),
            format_duration(timeout)
        )));
    }
    Ok(timeout)
}
