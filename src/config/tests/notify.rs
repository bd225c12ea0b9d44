//! `[notify]` and `[metrics]`.

use super::*;

/// MINIMAL with a `[notify]` table holding `lines`, the first of them on
/// line 9.
fn with_notify(lines: &str) -> String {
    format!("{MINIMAL}[notify]\n{lines}\n")
}

/// MINIMAL with a `[metrics]` table holding `lines`, the first of them on
/// line 9.
fn with_metrics(lines: &str) -> String {
    format!("{MINIMAL}[metrics]\n{lines}\n")
}

#[test]
fn notify_table_is_read() {
    let config = parse(MINIMAL).expect("valid");
    assert_eq!(config.notify, NotifyConfig::default());
    assert_eq!(config.notify.timeout, DEFAULT_NOTIFY_TIMEOUT);
    let config = parse(&with_notify(
        "on_failure = [\"/bin/alert\", \"--to\", \"ops\"]\non_recovery = [\"ok-hook\"]\n\
         timeout = \"5s\"\nping_url = \"https://hc-ping.com/abc/\"",
    ))
    .expect("valid");
    assert_eq!(
        config.notify,
        NotifyConfig {
            on_failure: Some(vec!["/bin/alert".into(), "--to".into(), "ops".into()]),
            on_recovery: Some(vec!["ok-hook".into()]),
            timeout: Duration::from_secs(5),
            // The trailing slash is dropped: /start and /fail are appended.
            ping_url: Some("https://hc-ping.com/abc".into()),
        }
    );
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains("[notify]\non_failure = [\"/bin/alert\", \"--to\", \"ops\"]"),
        "{rendered}"
    );
    let again = Config::from_toml_str(&rendered, Path::new("/etc/chatkeep/config.toml")).expect("reads back");
    assert_eq!(again.notify, config.notify);
}

#[test]
fn notify_table_is_checked() {
    for (text, line, column, message) in [
        (
            "on_failure = \"alert\"",
            9,
            14,
            "notify.on_failure must be a command as a list of strings, the program first",
        ),
        (
            "on_failure = []",
            9,
            14,
            "notify.on_failure must be a command as a list of strings",
        ),
        (
            "on_recovery = [\"\"]",
            9,
            16,
            "notify.on_recovery: the first word is the program",
        ),
        (
            "on_recovery = [\"a\", 1]",
            9,
            21,
            "notify.on_recovery: each word of the command is a string",
        ),
        ("timeout = \"0s\"", 9, 11, "notify.timeout must be longer than 0s"),
        ("timeout = \"2h\"", 9, 11, "notify.timeout must be at most 1h"),
        (
            "ping_url = \"hc-ping.com/x\"",
            9,
            12,
            "notify.ping_url must be an http:// or https:// URL",
        ),
        (
            "ping_url = \"https://hc-ping.com/x?a=1\"",
            9,
            12,
            "notify.ping_url must be",
        ),
        (
            "ping_url = \"https://u:p@hc-ping.com/x\"",
            9,
            12,
            "notify.ping_url must be",
        ),
        (
            "\n\non_falure = [\"x\"]",
            11,
            1,
            "unknown key `on_falure` in [notify]; expected one of on_failure",
        ),
    ] {
        let (l, c, m) = rejection(&with_notify(text));
        assert_eq!((l, c), (line, column), "{text}: {m}");
        assert!(m.starts_with(message), "{text}: {m}");
    }
}

#[test]
fn metrics_table_is_read() {
    let config = parse(MINIMAL).expect("valid");
    assert_eq!(
        config.metrics.file,
        PathBuf::from("/var/lib/chatkeep/metrics.prom")
    );
    assert_eq!(config.metrics.group, None);
    let config = parse(&with_metrics(
        "file = \"textfile/chatkeep.prom\"\ngroup = \"prometheus\"",
    ))
    .expect("valid");
    assert_eq!(
        config.metrics.file,
        PathBuf::from("/etc/chatkeep/textfile/chatkeep.prom")
    );
    assert_eq!(config.metrics.group.as_deref(), Some("prometheus"));
    let config = parse(&with_metrics("file = \"/srv/m.prom\"\ngroup = \"1234\"")).expect("valid");
    assert_eq!(config.metrics.group.as_deref(), Some("1234"));
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains("[metrics]\nfile = \"/srv/m.prom\"\ngroup = \"1234\""),
        "{rendered}"
    );
}

#[test]
fn metrics_table_is_checked() {
    for (text, line, column, message) in [
        (
            "file = \"\"",
            9,
            8,
            "metrics.file must be a path, got an empty string",
        ),
        (
            "file = \"/srv/m.prom\"\ngroup = \"a b\"",
            10,
            9,
            "metrics.group must be a group name",
        ),
        (
            "file = \"/srv/m.prom\"\ngroup = 12",
            10,
            9,
            "metrics.group must be a group name",
        ),
        // The data directory stays 0700: a group could not reach the file.
        (
            "group = \"prometheus\"",
            9,
            9,
            "metrics.group lets another user read the metrics, but the metrics file /var/lib/chatkeep/metrics.prom is in the data directory",
        ),
        (
            "file = \"/var/lib/chatkeep/sub/m.prom\"\ngroup = \"prometheus\"",
            10,
            9,
            "metrics.group lets another user read",
        ),
        (
            "mode = \"0644\"",
            9,
            1,
            "unknown key `mode` in [metrics]; expected one of file, group",
        ),
    ] {
        let (l, c, m) = rejection(&with_metrics(text));
        assert_eq!((l, c), (line, column), "{text}: {m}");
        assert!(m.starts_with(message), "{text}: {m}");
    }
}
