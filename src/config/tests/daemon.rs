//! `[daemon]` and the schedules of `[[personality]]`.

use super::*;

/// MINIMAL with a `[daemon]` table holding `lines`, the first of them on
/// line 9.
fn with_daemon(lines: &str) -> String {
    format!("{MINIMAL}[daemon]\n{lines}\n")
}

fn slug(name: &str) -> PersonalitySlug {
    name.parse().expect("slug")
}

/// The reason given for rejecting `schedule = {expression:?}` in [daemon],
/// after the format it must have; asserts the position and the format.
#[track_caller]
fn cron_reason(expression: &str) -> String {
    let text = with_daemon(&format!("schedule = {expression:?}"));
    let (line, column, message) = rejection(&text);
    assert_eq!((line, column), (9, 12), "{message}");
    let prefix = format!(
        "daemon.schedule must be a cron expression of six fields, \"second minute hour \
         day-of-month month day-of-week\", and an optional seventh, year, such as \
         \"0 0 */6 * * *\" (every 6 hours, on the hour) or \"0 30 2 * * SUN\" (Sundays at \
         02:30); got {expression:?}: "
    );
    match message.strip_prefix(&prefix) {
        Some(reason) => reason.to_owned(),
        None => panic!("{message:?} does not start with {prefix:?}"),
    }
}

#[test]
fn cron_schedules_are_kept_as_written() {
    for expression in [
        "0 0 */6 * * *",
        "*/10 * * * * *",
        "0 30 2 * * SUN",
        "0 30 2 * * sun",
        "0 0 12 * * 1-5",
        "0 0 0 13 * FRI",
        "0 0 0 L * ?",
        "0 0 0 15W * *",
        "0 0 9 * * 5#2",
        "0 0 9 * JAN-MAR 5L",
        "0 0 0 1 1 * 4999",
        "@daily",
        "@HOURLY",
        " 0 0 * * * * ",
    ] {
        let text = with_daemon(&format!("schedule = {expression:?}"));
        let config = parse(&text).unwrap_or_else(|err| panic!("{expression}: {err}"));
        assert_eq!(config.daemon.schedule, Schedule::Cron(expression.to_owned()));
    }
}

#[test]
fn cron_rejections_say_which_part_is_wrong() {
    assert_eq!(
        cron_reason("0 */6 * * *"),
        "it has 5 fields, but the first field, seconds, cannot be left out; to run at \
         second 0, write \"0 0 */6 * * *\""
    );
    assert_eq!(
        cron_reason("0 0 25 * * *"),
        "the hour field \"25\" is not valid (number out of bounds); hours are 0-23, with * \
         for any, a-b for a range, a,b for a list and /n for a step"
    );
    for (expression, start) in [
        (
            "*/0 * * * * *",
            "the second field \"*/0\" is not valid (step cannot be zero)",
        ),
        (
            "0 60 * * * *",
            "the minute field \"60\" is not valid (number out of bounds)",
        ),
        ("0 0 0 32 * *", "the day-of-month field \"32\" is not valid"),
        ("0 0 0 * 13 *", "the month field \"13\" is not valid"),
        (
            "0 0 0 * * monday",
            "the day-of-week field \"monday\" is not valid (a character there is not allowed)",
        ),
        ("0 0 0 * * 8", "the day-of-week field \"8\" is not valid"),
        ("0 0 0 1 1 * 9999", "the year field \"9999\" is not valid"),
        ("0 0 x * * *", "the hour field \"x\" is not valid"),
        ("0 5-1 * * * *", "the minute field \"5-1\" is not valid"),
    ] {
        let reason = cron_reason(expression);
        assert!(reason.starts_with(start), "{expression}: {reason}");
    }
    for (expression, reason) in [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("daily", "it has 1 field"),
        ("* * * *", "it has 4 fields"),
        ("0 0 0 * * * * *", "it has 8 fields"),
        (
            "@reboot",
            "\"@reboot\" is not a shorthand; the shorthands are @yearly, @annually, @monthly, \
             @weekly, @daily and @hourly",
        ),
        (
            "@every 5m",
            "'@' only starts a shorthand, which stands alone: @yearly, @annually, @monthly, \
             @weekly, @daily and @hourly",
        ),
        // Parsed, but never due.
        (
            "0 0 0 30 2 *",
            "it matches no time from now on, so it would never run",
        ),
        (
            "0 0 0 1 1 * 2020",
            "it matches no time from now on, so it would never run",
        ),
    ] {
        assert_eq!(cron_reason(expression), reason, "{expression:?}");
    }
    assert_rejected(
        &with_daemon("schedule = 6"),
        9,
        12,
        "daemon.schedule must be a cron expression of six fields",
    );
}

#[test]
fn interval_replaces_the_schedule() {
    for (text, seconds) in [
        ("30m", 1800),
        ("10s", 10),
        ("10000ms", 10),
        ("365d", 365 * 86_400),
    ] {
        let config = parse(&with_daemon(&format!("interval = {text:?}"))).expect(text);
        assert_eq!(
            config.daemon.schedule,
            Schedule::Interval(Duration::from_secs(seconds))
        );
    }
}

#[test]
fn interval_is_checked() {
    for (text, message) in [
        (
            "9s",
            "daemon.interval must be at least 10s, got 9s: a sync makes several requests, so \
             ticks closer together would mostly find the last one still running",
        ),
        ("0s", "daemon.interval must be at least 10s, got 0s"),
        ("500ms", "daemon.interval must be at least 10s, got 500ms"),
        (
            "10500ms",
            "daemon.interval must be a whole number of seconds, as the scheduler counts in \
             seconds, got 10500ms",
        ),
        (
            "366d",
            "daemon.interval must be at most 365d, got 366d; for rarer runs, use a schedule",
        ),
        ("30", "daemon.interval must be a duration"),
    ] {
        let (line, column, got) = rejection(&with_daemon(&format!("interval = {text:?}")));
        assert_eq!((line, column), (9, 12), "{got}");
        assert!(
            got.starts_with(message),
            "{got:?} does not start with {message:?}"
        );
    }
}

#[test]
fn schedule_and_interval_exclude_each_other() {
    let (line, column, message) = rejection(&with_daemon(
        "schedule = \"0 0 * * * *\"\njitter = \"1s\"\ninterval = \"1h\"",
    ));
    assert_eq!((line, column), (11, 1));
    assert_eq!(
        message,
        "daemon.interval cannot be set together with daemon.schedule (line 9); set one of \
         them: schedule for a cron expression, or interval for a fixed period"
    );
    assert_rejected(
        &with_daemon("interval = \"1h\"\nschedule = \"0 0 * * * *\""),
        10,
        1,
        "daemon.schedule cannot be set together with daemon.interval (line 9)",
    );
}

#[test]
fn jitter_workers_run_on_start_and_shutdown_timeout_are_checked() {
    let config = parse(&with_daemon("jitter = \"23h\"\nshutdown_timeout = \"1ms\"")).expect("valid");
    assert_eq!(config.daemon.jitter, Duration::from_secs(23 * 3600));
    assert_eq!(config.daemon.shutdown_timeout, Duration::from_millis(1));
    let config = parse(&with_daemon("jitter = \"0s\"\nworkers = 1")).expect("valid");
    assert_eq!(config.daemon.jitter, Duration::ZERO);
    assert_eq!(config.daemon.workers, 1);
    for (line, column, message) in [
        (
            "jitter = \"24h\"",
            10,
            "daemon.jitter must be shorter than 24h, got 1d",
        ),
        (
            "jitter = \"2d\"",
            10,
            "daemon.jitter must be shorter than 24h, got 2d",
        ),
        ("jitter = 5", 10, "daemon.jitter must be a duration"),
        ("jitter = \"-1s\"", 10, "it does not start with a number"),
        (
            "workers = 0",
            11,
            "daemon.workers must be a whole number from 1 to 64, got 0",
        ),
        (
            "workers = 65",
            11,
            "daemon.workers must be a whole number from 1 to 64, got 65",
        ),
        (
            "run_on_start = \"yes\"",
            16,
            "daemon.run_on_start must be true or false, got \"yes\"",
        ),
        (
            "shutdown_timeout = \"0s\"",
            20,
            "daemon.shutdown_timeout must be longer than 0s",
        ),
        (
            "shutdown_timeout = \"601s\"",
            20,
            "daemon.shutdown_timeout must be at most 10m, got 601s",
        ),
    ] {
        assert_rejected(&with_daemon(line), 9, column, message);
    }
    assert_rejected(
        &with_daemon("worker = 2"),
        9,
        1,
        "unknown key `worker` in [daemon]; expected one of schedule, interval, jitter, \
         workers, run_on_start, shutdown_timeout, archive_schedule, audit_schedule",
    );
}

#[test]
fn personality_schedules_are_checked_like_daemon_schedules() {
    let text = format!("{MINIMAL}[[personality]]\nname = \"a\"\nschedule = \"@weekly\"\n");
    let config = parse(&text).expect("valid");
    assert_eq!(config.personalities[0].schedule.as_deref(), Some("@weekly"));
    let text = format!("{MINIMAL}[[personality]]\nname = \"a\"\nschedule = \"0 3 * * *\"\n");
    assert_rejected(
        &text,
        10,
        12,
        "personality.schedule must be a cron expression of six fields",
    );
    let (_, _, message) = rejection(&text);
    assert!(message.ends_with("write \"0 0 3 * * *\""), "{message}");
    // Found even when the name is wrong too, in file order.
    let text = format!("{MINIMAL}[[personality]]\nschedule = \"\"\nname = \"\"\n");
    assert_rejected(&text, 9, 12, "personality.schedule must be a cron expression");
}

#[test]
fn schedule_for_prefers_the_personality_schedule() {
    let text = format!(
        "{MINIMAL}[daemon]\ninterval = \"1h\"\n\
         [[personality]]\nname = \"lilith\"\nschedule = \"0 30 2 * * *\"\n\
         [[personality]]\nname = \"plain\"\n"
    );
    let config = parse(&text).expect("valid");
    let hourly = Schedule::Interval(Duration::from_secs(3600));
    let own = Schedule::Cron("0 30 2 * * *".into());
    assert_eq!(config.schedule_for(&slug("lilith")), own);
    assert_eq!(config.schedule_for(&slug("Lilith")), own);
    assert_eq!(config.schedule_for(&slug("plain")), hourly);
    assert_eq!(config.schedule_for(&slug("discovered")), hourly);
    let config = parse(MINIMAL).expect("valid");
    assert_eq!(
        config.schedule_for(&slug("x")),
        Schedule::Cron(DEFAULT_SCHEDULE.into())
    );
}

#[test]
fn daemon_renders_and_reads_back() {
    let config = parse(MINIMAL).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains(
            "[daemon]\nschedule = \"0 0 */6 * * *\"\njitter = \"0s\"\nworkers = 2\n\
             run_on_start = false\nshutdown_timeout = \"10s\"\n"
        ),
        "{rendered}"
    );
    let text = format!(
        "{MINIMAL}[daemon]\ninterval = \"90m\"\njitter = \"1500ms\"\nworkers = 8\n\
         run_on_start = true\nshutdown_timeout = \"2m\"\n\
         [[personality]]\nname = \"lilith\"\nschedule = \"0 0 0 * * MON\"\n"
    );
    let config = parse(&text).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(rendered.contains("interval = \"90m\"\n"), "{rendered}");
    assert!(!rendered.contains("schedule = \"0 0 */6"), "{rendered}");
    assert!(rendered.contains("schedule = \"0 0 0 * * MON\""), "{rendered}");
    assert_eq!(parse(&rendered).expect("reads back"), config);
}

#[test]
fn audit_schedule_is_a_cron_expression_with_no_default() {
    assert_eq!(parse(MINIMAL).expect("valid").daemon.audit_schedule, None);
    for expression in ["0 0 4 * * SUN", "@weekly", "0 30 3 1 * *"] {
        let config = parse(&with_daemon(&format!("audit_schedule = {expression:?}"))).expect(expression);
        assert_eq!(config.daemon.audit_schedule.as_deref(), Some(expression));
        // It changes nothing else.
        assert_eq!(config.daemon.schedule, Schedule::Cron(DEFAULT_SCHEDULE.into()));
        assert_eq!(config.daemon.archive_schedule, None);
    }
}

#[test]
fn audit_schedule_is_checked_like_the_other_schedules() {
    let (line, column, message) = rejection(&with_daemon("audit_schedule = \"0 4 * * SUN\""));
    assert_eq!((line, column), (9, 18), "{message}");
    assert!(
        message.starts_with("daemon.audit_schedule must be a cron expression of six fields"),
        "{message}"
    );
    assert!(
        message.ends_with(
            "got \"0 4 * * SUN\": it has 5 fields, but the first field, seconds, cannot be left \
             out; to run at second 0, write \"0 0 4 * * SUN\""
        ),
        "{message}"
    );
    assert_rejected(
        &with_daemon("jitter = \"1s\"\naudit_schedule = \"0 0 0 30 2 *\""),
        10,
        18,
        "it matches no time from now on, so it would never run",
    );
    assert_rejected(
        &with_daemon("audit_schedule = true"),
        9,
        18,
        "daemon.audit_schedule must be a cron expression of six fields",
    );
    assert_rejected(
        &with_daemon("audit = \"@weekly\""),
        9,
        1,
        "unknown key `audit` in [daemon]",
    );
}

#[test]
fn audit_schedule_renders_and_reads_back() {
    let rendered = parse(MINIMAL).expect("valid").to_redacted_toml();
    assert!(!rendered.contains("audit_schedule"), "{rendered}");
    let config = parse(&with_daemon(
        "archive_schedule = \"@daily\"\naudit_schedule = \"0 0 4 * * SUN\"",
    ))
    .expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains("archive_schedule = \"@daily\"\naudit_schedule = \"0 0 4 * * SUN\"\n"),
        "{rendered}"
    );
    assert_eq!(parse(&rendered).expect("reads back"), config);
}
