use super::read::{
    ARCHIVE_KEYS, DAEMON_KEYS, DISCOVER_KEYS, LOG_KEYS, MEDIA_KEYS, METRICS_KEYS, NOTIFY_KEYS,
    PERSONALITY_KEYS, RATE_LIMIT_KEYS, REMOTE_KEYS, SERVICE_KEYS, STORAGE_KEYS, SYNC_KEYS, line_column,
};
use super::*;

mod archive;
mod daemon;
mod log;
mod media;
mod notify;
mod remote;
mod storage;
mod sync;

/// A complete config with no optional key; lines 1 to 7.
const MINIMAL: &str = "\
[service]
base_url = \"https://shapes.inc\"
jargon = \"shapes\"
cookie_file = \"/etc/chatkeep/cookie\"

[storage]
data_dir = \"/var/lib/chatkeep\"
";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("/etc/chatkeep/config.toml"))
}

/// MINIMAL with `lines` added to [service], the first of them on line 5.
fn with_service(lines: &str) -> String {
    MINIMAL.replacen("\n\n[storage]", &format!("\n{lines}\n\n[storage]"), 1)
}

/// The line, column and message of the rejection of `text`.
#[track_caller]
fn rejection(text: &str) -> (usize, usize, String) {
    match Config::from_toml_str(text, Path::new("config.toml")) {
        Err(ConfigError::Invalid {
            path,
            line,
            column,
            message,
        }) => {
            assert_eq!(path, Path::new("config.toml"));
            (line, column, message)
        }
        other => panic!("expected a rejection of:\n{text}\ngot {other:?}"),
    }
}

/// Asserts where `text` is rejected and that the message holds `needle`.
#[track_caller]
fn assert_rejected(text: &str, line: usize, column: usize, needle: &str) {
    let (got_line, got_column, message) = rejection(text);
    assert_eq!((got_line, got_column), (line, column), "position of: {message}");
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
}

#[test]
fn minimal_config_gets_every_default() {
    let config = parse(MINIMAL).expect("minimal config");
    let service = &config.service;
    assert_eq!(service.base_url, "https://shapes.inc");
    assert_eq!(service.jargon, "shapes");
    assert_eq!(
        service.cookie,
        CookieSource::File(PathBuf::from("/etc/chatkeep/cookie"))
    );
    assert_eq!(service.cookie_name, "__Secure-better-auth.session_token");
    assert!(service.extra_cookies.is_empty());
    assert_eq!(service.chat_page_size, 50);
    assert_eq!(service.max_page_size, 500);
    assert_eq!(service.timeout, Duration::from_secs(30));
    assert_eq!(service.max_retries, 5);
    assert_eq!(service.initial_backoff, Duration::from_secs(1));
    assert_eq!(service.max_backoff, Duration::from_secs(120));
    assert_eq!(service.user_agent, DEFAULT_USER_AGENT);
    assert!(DEFAULT_USER_AGENT.starts_with("chatkeep/"));
    assert_eq!(config.storage.data_dir, PathBuf::from("/var/lib/chatkeep"));
    assert_eq!(config.storage.segment_size, 64 * 1024 * 1024);
    assert_eq!(config.rate_limit.requests_per_second, 1.0);
    assert_eq!(config.rate_limit.burst, 1);
    assert_eq!(config.sync, SyncConfig::default());
    assert_eq!(config.sync.sections, Section::all());
    assert_eq!(config.sync.max_memory_pages, 1000);
    assert_eq!(config.sync.tail_check, Duration::from_secs(86_400));
    assert_eq!(config.sync.refresh, Refresh::FirstPage);
    assert!(!config.discover.owned);
    assert!(!config.discover.recent);
    assert_eq!(config.daemon, DaemonConfig::default());
    assert_eq!(config.daemon.schedule, Schedule::Cron("0 0 */6 * * *".into()));
    assert_eq!(config.daemon.jitter, Duration::ZERO);
    assert_eq!(config.daemon.workers, 2);
    assert!(!config.daemon.run_on_start);
    assert_eq!(config.daemon.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(config.daemon.archive_schedule, None);
    assert_eq!(config.daemon.audit_schedule, None);
    assert_eq!(config.log, LogConfig::default());
    assert_eq!(config.log.dir, None);
    assert_eq!(config.log.max_files, 14);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, "info");
    assert!(config.personalities.is_empty());
    assert_eq!(config.source, PathBuf::from("/etc/chatkeep/config.toml"));
}

#[test]
fn every_key_is_read() {
    let text = "\
[service]
base_url = \"HTTP://127.0.0.1:8080/\"
allow_insecure_http = true
jargon = \"personalities\"
cookie_env = \"CHATKEEP_COOKIE\"
cookie_name = \"appSession\"
extra_cookies = { \"connect.sid\" = \"s%3Aabc.def\", _csrf = \"xyz\" }
chat_page_size = 100
max_page_size = 2000
timeout = \"1500ms\"
max_retries = 0
initial_backoff = \"10ms\"
max_backoff = \"1h\"
user_agent = \"test-agent/1\"

[storage]
data_dir = \"/srv/backup\"
segment_size = \"1GiB\"

[rate_limit]
requests_per_second = 5
burst = 3

[sync]
sections = [\"chat\", \"profile\"]
max_memory_pages = 100000
tail_check = \"0s\"
refresh = \"12h\"

[discover]
owned = true
recent = true

[daemon]
interval = \"45m\"
jitter = \"90s\"
workers = 64
run_on_start = true
shutdown_timeout = \"10m\"
archive_schedule = \"0 30 3 * * *\"
audit_schedule = \"0 0 4 * * SUN\"

[log]
dir = \"/var/log/chatkeep\"
max_files = 3650
format = \"json\"
level = \"trace\"

[archive]
dir = \"/mnt/offsite\"
compression_level = 9
skip_unchanged = false
media = false
keep_last = 1
keep_hourly = 2
keep_daily = 3
keep_weekly = 4
keep_monthly = 5
keep_yearly = 6
age_recipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]
age_recipients_file = \"recipients.txt\"

[[personality]]
name = \"lilith\"
sections = [\"user_personalization\"]
schedule = \"0 15 3 * * MON-FRI\"
tail_check = \"6h\"
refresh = 200

[[personality]]
name = \"Some.Other_one-2\"
";
    let config = parse(text).expect("full config");
    let service = &config.service;
    assert_eq!(service.base_url, "http://127.0.0.1:8080");
    assert!(service.allow_insecure_http);
    assert_eq!(service.jargon, "personalities");
    assert_eq!(service.cookie, CookieSource::Env("CHATKEEP_COOKIE".into()));
    assert_eq!(service.cookie_name, LEGACY_COOKIE_NAME);
    let extra: Vec<_> = service.extra_cookies.iter().collect();
    assert_eq!(
        extra,
        [
            (&"_csrf".to_owned(), &"xyz".to_owned()),
            (&"connect.sid".to_owned(), &"s%3Aabc.def".to_owned())
        ]
    );
    assert_eq!(service.chat_page_size, 100);
    assert_eq!(service.max_page_size, 2000);
    assert_eq!(service.timeout, Duration::from_millis(1500));
    assert_eq!(service.max_retries, 0);
    assert_eq!(service.initial_backoff, Duration::from_millis(10));
    assert_eq!(service.max_backoff, Duration::from_secs(3600));
    assert_eq!(service.user_agent, "test-agent/1");
    assert_eq!(config.storage.segment_size, 1 << 30);
    assert_eq!(config.rate_limit.requests_per_second, 5.0);
    assert_eq!(config.rate_limit.burst, 3);
    assert_eq!(config.sync.sections, [Section::Profile, Section::Chat]);
    assert_eq!(config.sync.max_memory_pages, 100_000);
    assert_eq!(config.sync.tail_check, Duration::ZERO);
    assert_eq!(config.sync.refresh, Refresh::Span(Duration::from_secs(12 * 3600)));
    assert_eq!(
        config.discover,
        DiscoverConfig {
            owned: true,
            recent: true,
            max_personalities: DEFAULT_MAX_PERSONALITIES,
        }
    );
    let names: Vec<&str> = config.personalities.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["lilith", "Some.Other_one-2"]);
    assert_eq!(
        config.personalities[0].sections,
        Some(vec![Section::UserPersonalization])
    );
    assert_eq!(config.personalities[1].sections, None);
    assert_eq!(
        config.personalities[0].schedule.as_deref(),
        Some("0 15 3 * * MON-FRI")
    );
    assert_eq!(config.personalities[1].schedule, None);
    assert_eq!(
        config.personalities[0].tail_check,
        Some(Duration::from_secs(6 * 3600))
    );
    assert_eq!(config.personalities[0].refresh, Some(Refresh::Messages(200)));
    assert_eq!(config.personalities[1].tail_check, None);
    assert_eq!(config.personalities[1].refresh, None);
    assert_eq!(
        config.daemon,
        DaemonConfig {
            schedule: Schedule::Interval(Duration::from_secs(45 * 60)),
            jitter: Duration::from_secs(90),
            workers: 64,
            run_on_start: true,
            shutdown_timeout: Duration::from_secs(600),
            archive_schedule: Some("0 30 3 * * *".into()),
            audit_schedule: Some("0 0 4 * * SUN".into()),
        }
    );
    assert_eq!(
        config.archive,
        ArchiveConfig {
            dir: PathBuf::from("/mnt/offsite"),
            compression_level: 9,
            skip_unchanged: false,
            media: false,
            retention: RetentionPolicy {
                keep_last: 1,
                keep_hourly: 2,
                keep_daily: 3,
                keep_weekly: 4,
                keep_monthly: 5,
                keep_yearly: 6,
            },
            age_recipients: vec!["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into()],
            age_recipients_file: Some(PathBuf::from("/etc/chatkeep/recipients.txt")),
        }
    );
    assert_eq!(
        config.log,
        LogConfig {
            dir: Some(PathBuf::from("/var/log/chatkeep")),
            max_files: 3650,
            format: LogFormat::Json,
            level: "trace".into(),
        }
    );
}

#[test]
fn example_config_loads_and_lists_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let config = Config::load(&path).expect("config.example.toml is valid");
    assert_eq!(config.service.base_url, "https://shapes.inc");
    assert_eq!(config.personalities.len(), 1);
    assert_eq!(config.service.timeout, DEFAULT_TIMEOUT);

    let text = std::fs::read_to_string(&path).expect("readable");
    let tables = [
        "[service]",
        "[storage]",
        "[rate_limit]",
        "[sync]",
        "[discover]",
        "[daemon]",
        "[log]",
        "[archive]",
        "[notify]",
        "[metrics]",
        "[media]",
        "[[personality]]",
        "# [[remote]]",
    ];
    for table in tables {
        assert!(text.contains(table), "the example lacks {table}");
    }
    let keys = [
        SERVICE_KEYS,
        STORAGE_KEYS,
        RATE_LIMIT_KEYS,
        SYNC_KEYS,
        DISCOVER_KEYS,
        DAEMON_KEYS,
        LOG_KEYS,
        ARCHIVE_KEYS,
        NOTIFY_KEYS,
        METRICS_KEYS,
        MEDIA_KEYS,
        PERSONALITY_KEYS,
        REMOTE_KEYS,
    ];
    for key in keys.concat() {
        let set = text.lines().any(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            line.starts_with(&format!("{key} = "))
        });
        assert!(set, "the example does not show {key}");
    }
}

/// Keys the example shows commented out although they have no default:
/// the cookie sources other than the one set, and settings that are
/// examples of their kind.
const EXAMPLE_KEYS_WITHOUT_DEFAULT: &[&str] = &[
    "cookie_env",
    "cookie",
    "extra_cookies",
    "name",
    "interval",
    "dir",
    "archive_schedule",
    "audit_schedule",
    "age_recipients",
    "age_recipients_file",
    "on_failure",
    "on_recovery",
    "ping_url",
    "group",
    "max_bytes_per_run",
    "max_bytes_per_second",
];

/// The header of the example's `[[remote]]` block, commented out as all
/// of the block is: a remote needs a store, so the example has none.
const EXAMPLE_REMOTE_HEADER: &str = "# [[remote]]";

/// The example config, and for each commented-out setting in it, its line
/// number (0-based), whether it shows a default, and the setting itself.
/// The settings of `[[personality]]` blocks are overrides, never defaults.
/// The commented-out `[[remote]]` block, the last in the file, is left
/// out: its settings belong to a table the file does not have until the
/// block is uncommented whole (see [`example_remote_block`]).
fn example_settings() -> (String, Vec<(usize, bool, String)>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).expect("readable");
    let mut in_personality = false;
    let mut settings = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line == EXAMPLE_REMOTE_HEADER {
            break;
        }
        in_personality |= line == "[[personality]]";
        let Some(setting) = line.strip_prefix("# ").filter(|rest| rest.contains(" = ")) else {
            continue;
        };
        let key = setting.split(" = ").next().unwrap_or_default();
        let is_default = !in_personality && !EXAMPLE_KEYS_WITHOUT_DEFAULT.contains(&key);
        settings.push((number, is_default, setting.to_owned()));
    }
    (text, settings)
}

/// `text` with the given lines replaced.
fn with_lines(text: &str, replaced: &[(usize, &str)]) -> String {
    text.lines()
        .enumerate()
        .map(|(number, line)| {
            let line = replaced
                .iter()
                .find(|(n, _)| *n == number)
                .map_or(line, |(_, setting)| setting);
            format!("{line}\n")
        })
        .collect()
}

#[test]
fn every_commented_key_of_the_example_is_valid_uncommented() {
    // Uncommenting the defaults must give the same config.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let (text, settings) = example_settings();
    let defaults: Vec<(usize, &str)> = settings
        .iter()
        .filter(|(_, is_default, _)| *is_default)
        .map(|(number, _, setting)| (*number, setting.as_str()))
        .collect();
    assert!(defaults.len() > 10, "{defaults:?}");
    let uncommented = with_lines(&text, &defaults);
    let commented = Config::from_toml_str(&text, &path).expect("example");
    let explicit = Config::from_toml_str(&uncommented, &path).expect("uncommented");
    let mut expected = commented.clone();
    expected.service.user_agent = "chatkeep/0.1.0".into();
    assert_eq!(explicit, expected);
}

#[test]
fn every_commented_key_without_a_default_is_valid_alone() {
    // The other cookie sources conflict with cookie_file, and the commented
    // personality's name needs its commented header.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let (text, settings) = example_settings();
    let commented = Config::from_toml_str(&text, &path).expect("example");
    let mut tried = 0;
    for (number, _, setting) in settings.iter().filter(|(_, is_default, _)| !is_default) {
        // metrics.group needs a metrics.file outside data_dir (see
        // tests/notify.rs).
        if setting.starts_with("cookie") || setting.starts_with("name") || setting.starts_with("group") {
            continue;
        }
        let uncommented = with_lines(&text, &[(*number, setting)]);
        let config =
            Config::from_toml_str(&uncommented, &path).unwrap_or_else(|err| panic!("{setting}: {err}"));
        assert_ne!(config, commented, "{setting} changes nothing");
        tried += 1;
    }
    assert!(tried >= 2, "{settings:?}");
}

/// The example's commented-out `[[remote]]` block: its header's line
/// number (0-based), then each setting's line number and the setting.
fn example_remote_block(text: &str) -> (usize, Vec<(usize, String)>) {
    let header = text
        .lines()
        .position(|line| line == EXAMPLE_REMOTE_HEADER)
        .expect("the example has a commented [[remote]] block");
    let settings = text
        .lines()
        .enumerate()
        .skip(header + 1)
        .filter_map(|(number, line)| {
            let setting = line.strip_prefix("# ").filter(|rest| rest.contains(" = "))?;
            Some((number, setting.to_owned()))
        })
        .collect();
    (header, settings)
}

/// Remote keys the example shows with their defaults.
const EXAMPLE_REMOTE_DEFAULTS: &[&str] = &[
    "region",
    "allow_insecure_http",
    "require_encryption",
    "concurrency",
    "max_retries",
    "initial_backoff",
    "max_backoff",
];

#[test]
fn the_example_remote_block_is_valid_uncommented_whole_with_either_pair_of_keys() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let (text, _) = example_settings();
    let (header, settings) = example_remote_block(&text);
    let key = |setting: &str| setting.split(" = ").next().unwrap_or_default().to_owned();
    for remote_key in REMOTE_KEYS {
        assert!(
            settings.iter().any(|(_, s)| key(s) == *remote_key),
            "the example's [[remote]] lacks {remote_key}"
        );
    }
    let uncommented = |keep: &dyn Fn(&str) -> bool| {
        let mut lines = vec![(header, "[[remote]]")];
        lines.extend(
            settings
                .iter()
                .filter(|(_, s)| keep(&key(s)))
                .map(|(n, s)| (*n, s.as_str())),
        );
        let config = Config::from_toml_str(&with_lines(&text, &lines), &path)
            .unwrap_or_else(|err| panic!("the example's [[remote]] uncommented: {err}"));
        let [remote] = config.remotes.as_slice() else {
            panic!("{:?}", config.remotes)
        };
        remote.clone()
    };
    let inline = ["access_key_id", "secret_access_key"];
    let with_files = uncommented(&|k| !inline.contains(&k));
    assert!(matches!(with_files.credentials, RemoteCredentials::Files { .. }));
    assert_eq!(with_files.bandwidth_limit, Some(10 << 20));
    assert_eq!(with_files.retention.map(|r| r.keep_last), Some(30));
    let with_inline = uncommented(&|k| !k.ends_with("_file"));
    assert!(matches!(
        with_inline.credentials,
        RemoteCredentials::Inline { .. }
    ));
    // The lines that show defaults change nothing.
    let bare = uncommented(&|k| k == "name" || k == "url");
    let defaults = uncommented(&|k| k == "name" || k == "url" || EXAMPLE_REMOTE_DEFAULTS.contains(&k));
    assert_eq!(defaults, bare);
    // And every other line does change something.
    for (_, setting) in &settings {
        let k = key(setting);
        if ["name", "url"].contains(&k.as_str()) || EXAMPLE_REMOTE_DEFAULTS.contains(&k.as_str()) {
            continue;
        }
        // A key alone, but for the keys that go in pairs.
        let partner = |k: &str| match k {
            "access_key_id_file" => Some("secret_access_key_file"),
            "secret_access_key_file" => Some("access_key_id_file"),
            "access_key_id" => Some("secret_access_key"),
            "secret_access_key" => Some("access_key_id"),
            _ => None,
        };
        let alone =
            uncommented(&|other| ["name", "url", k.as_str()].contains(&other) || partner(&k) == Some(other));
        assert_ne!(alone, bare, "{setting} changes nothing");
    }
}

#[test]
fn syntax_errors_point_into_the_text() {
    assert_rejected(
        "[service]\nbase_url = \n",
        2,
        12,
        "invalid TOML: string values must be quoted",
    );
    assert_rejected(
        "[service]\njargon = \"a\"\njargon = \"b\"\n",
        3,
        1,
        "invalid TOML: duplicate key `jargon`",
    );
    assert_rejected("[service]\n[service]\n", 2, 2, "duplicate key `service`");
}

#[test]
fn unknown_keys_are_named_with_their_table() {
    let text = "[service]\nbase_url = \"https://shapes.inc\"\ncookie_flie = \"/x\"\n";
    let (line, column, message) = rejection(text);
    assert_eq!((line, column), (3, 1));
    assert_eq!(
        message,
        "unknown key `cookie_flie` in [service]; expected one of base_url, allow_insecure_http, jargon, \
             cookie_file, cookie_env, cookie, cookie_name, extra_cookies, chat_page_size, \
             max_page_size, timeout, max_retries, initial_backoff, max_backoff, user_agent"
    );
    assert_rejected(
        &format!("{MINIMAL}[storage.x]\n"),
        8,
        10,
        "unknown key `x` in [storage]; expected one of data_dir",
    );
    assert_rejected(
        &format!("{MINIMAL}\n[ratelimit]\nburst = 2\n"),
        9,
        2,
        "unknown table [ratelimit]; expected the tables [service], [storage], \
             [rate_limit], [sync], [discover], [daemon], [log], [archive], [notify], [metrics], [media], [serve], [[personality]] and [[remote]]",
    );
    assert_rejected(
        &format!("verbose = true\n{MINIMAL}"),
        1,
        1,
        "unknown key `verbose` at the top level",
    );
    assert_rejected(
        &format!("{MINIMAL}[[personality]]\nname = \"a\"\nslug = \"b\"\n"),
        10,
        1,
        "unknown key `slug` in [[personality]]; expected one of name, sections, schedule",
    );
}

#[test]
fn missing_tables_and_keys_point_at_their_table() {
    assert_rejected("[storage]\ndata_dir = \"/x\"\n", 1, 1, "missing table [service]");
    let no_storage = MINIMAL.replace("[storage]\ndata_dir = \"/var/lib/chatkeep\"\n", "");
    assert_rejected(&no_storage, 1, 1, "missing table [storage]");
    let no_url = MINIMAL.replace("base_url = \"https://shapes.inc\"\n", "");
    assert_rejected(&no_url, 1, 1, "missing key `base_url` in [service]");
    let no_jargon = MINIMAL.replace("jargon = \"shapes\"\n", "");
    assert_rejected(&no_jargon, 1, 1, "missing key `jargon` in [service]");
    let no_dir = MINIMAL.replace("data_dir = \"/var/lib/chatkeep\"\n", "");
    assert_rejected(&no_dir, 6, 1, "missing key `data_dir` in [storage]");
    assert_rejected(
        &format!("{MINIMAL}\n[[personality]]\n"),
        9,
        1,
        "missing key `name` in [[personality]]",
    );
    assert_rejected(
        &format!("storage = \"/x\"\n{no_storage}"),
        1,
        11,
        "storage must be a table, written as a line [storage] followed by its keys, \
             got \"/x\"",
    );
}

#[test]
fn the_earliest_problem_is_reported() {
    let text = format!("{}\n[rate_limit]\nburst = 0\n", with_service("timeout = 5"));
    assert_rejected(&text, 5, 11, "service.timeout must be a duration");
}

#[test]
fn wrong_types_say_what_is_expected() {
    assert_rejected(
        &with_service("chat_page_size = \"fifty\""),
        5,
        18,
        "service.chat_page_size must be a whole number from 1 to 1000, got \"fifty\"",
    );
    assert_rejected(
        &with_service("timeout = 30"),
        5,
        11,
        "service.timeout must be a duration, a whole number followed by ms, s, m, h or d, \
             such as \"500ms\", \"30s\" or \"2m\", \
         or several from the largest unit down, such as \"1h30m\", got 30",
    );
    assert_rejected(
        &with_service("max_retries = 1.5"),
        5,
        15,
        "service.max_retries must be a whole number from 0 to 100, got 1.5",
    );
    assert_rejected(
        &with_service("user_agent = [\"a\"]"),
        5,
        14,
        "service.user_agent must be a non-empty string without control characters, \
             got an array",
    );
    assert_rejected(
        &with_service("extra_cookies = \"a=b\""),
        5,
        17,
        "service.extra_cookies must be a table of cookie names and values",
    );
    assert_rejected(
        &format!("{MINIMAL}[[personality]]\nname = 7\n"),
        9,
        8,
        "personality.name must be the personality's slug as in its URL, such as \
             \"lilith\", got 7",
    );
    assert_rejected(
        &format!("{MINIMAL}[personality]\nname = \"a\"\n"),
        8,
        1,
        "personality must be written [[personality]], with double brackets",
    );
}

#[test]
fn impossible_numbers_are_rejected() {
    for (line, column, message) in [
        (
            "chat_page_size = 0",
            18,
            "must be a whole number from 1 to 1000, got 0",
        ),
        ("chat_page_size = 1001", 18, "from 1 to 1000, got 1001"),
        ("chat_page_size = -5", 18, "from 1 to 1000, got -5"),
        ("max_page_size = 10001", 17, "from 1 to 10000, got 10001"),
        ("max_retries = 101", 15, "from 0 to 100, got 101"),
        ("max_retries = 99999999999999999999", 15, "from 0 to 100"),
    ] {
        assert_rejected(&with_service(line), 5, column, message);
    }
    let text = with_service("chat_page_size = 100\nmax_page_size = 99");
    assert_rejected(
        &text,
        6,
        17,
        "service.max_page_size must be at least service.chat_page_size (100), got 99",
    );
    // Without max_page_size, the default grows to fit chat_page_size.
    let config = parse(&with_service("chat_page_size = 800")).expect("valid");
    assert_eq!(config.service.max_page_size, 800);
}

#[test]
fn rate_limit_is_checked() {
    let text = format!("{MINIMAL}[rate_limit]\nrequests_per_second = -1\n");
    let err = Config::from_toml_str(&text, Path::new("config.toml")).expect_err("negative");
    assert_eq!(
        err.to_string(),
        "config.toml:9:23: rate_limit.requests_per_second must be a number greater than 0, \
             got -1"
    );
    for value in ["0", "0.0", "nan", "inf", "-inf", "\"1\"", "true"] {
        let text = format!("{MINIMAL}[rate_limit]\nrequests_per_second = {value}\n");
        let expected = format!("must be a number greater than 0, got {value}");
        assert_rejected(&text, 9, 23, &expected);
    }
    let text = format!("{MINIMAL}[rate_limit]\nrequests_per_second = 0.25\n");
    let config = parse(&text).expect("fraction");
    assert_eq!(config.rate_limit.requests_per_second, 0.25);
    assert_eq!(config.rate_limit.burst, 1);
    let text = format!("{MINIMAL}[rate_limit]\nburst = 0\n");
    assert_rejected(
        &text,
        9,
        9,
        "rate_limit.burst must be a whole number of at least 1, got 0",
    );
    let text = format!("{MINIMAL}[rate_limit]\nburst = 4294967296\n");
    assert_rejected(&text, 9, 9, "at least 1, got 4294967296");
}

#[test]
fn durations_are_checked() {
    assert_rejected(
        &with_service("timeout = \"0s\""),
        5,
        11,
        "service.timeout must be longer than 0s",
    );
    assert_rejected(
        &with_service("initial_backoff = \"0ms\""),
        5,
        19,
        "service.initial_backoff must be longer than 0s",
    );
    assert_rejected(
        &with_service("timeout = \"30\""),
        5,
        11,
        "got \"30\": it has no unit",
    );
    assert_rejected(
        &with_service("timeout = \"1.5s\""),
        5,
        11,
        "fractions are not supported",
    );
    assert_rejected(
        &with_service("initial_backoff = \"5s\"\nmax_backoff = \"4s\""),
        6,
        15,
        "service.max_backoff must be at least service.initial_backoff (5s), got 4s",
    );
    // Without max_backoff, the default grows to fit initial_backoff.
    let config = parse(&with_service("initial_backoff = \"5m\"")).expect("valid");
    assert_eq!(config.service.max_backoff, Duration::from_secs(300));
}

#[test]
fn base_url_is_checked_and_normalised() {
    for (url, normalised) in [
        ("https://shapes.inc/", "https://shapes.inc"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("https://my_host.internal", "https://my_host.internal"),
    ] {
        let config = parse(&MINIMAL.replace("https://shapes.inc", url)).expect(url);
        assert_eq!(config.service.base_url, normalised);
    }
    for (url, reason) in [
        ("shapes.inc", "http:// or https://"),
        ("ftp://shapes.inc", "http:// or https://"),
        ("https://", "it has no host"),
        ("https://shapes.inc/api", "path, query or fragment"),
        ("https://shapes.inc//", "path, query or fragment"),
        ("https://shapes.inc?x=1", "path, query or fragment"),
        ("https://shapes inc", "' ' cannot appear in a host name"),
        (
            "https://shapes.inc:0",
            "the port must be a number from 1 to 65535",
        ),
        (
            "https://shapes.inc:99999",
            "the port must be a number from 1 to 65535",
        ),
        ("https://:80", "it has no host"),
        ("http://[::1", "not closed"),
    ] {
        let text = MINIMAL.replace("https://shapes.inc", url);
        assert_rejected(&text, 2, 12, reason);
    }
    let text = MINIMAL.replace("https://shapes.inc", "https://me:hunter2@shapes.inc");
    let (_, _, message) = rejection(&text);
    assert!(message.contains("user name or password"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn plain_http_is_refused_unless_to_loopback_or_allowed() {
    for loopback in [
        "http://localhost:3000",
        "http://LOCALHOST",
        "http://127.0.0.1:8080",
        "http://127.255.0.9",
        "http://[::1]:8080",
    ] {
        let config = parse(&MINIMAL.replace("https://shapes.inc", loopback)).expect(loopback);
        assert_eq!(config.service.insecure_http_warning(), None, "{loopback}");
    }
    for remote in [
        "http://shapes.inc",
        "http://192.168.1.10:3000",
        "http://[::2]",
        "http://localhost.evil.example",
        "http://128.0.0.1",
        "HTTP://shapes.inc",
    ] {
        let text = MINIMAL.replace("https://shapes.inc", remote);
        assert_rejected(&text, 2, 12, "plain http:// to a host that is not this machine");
        let (_, _, message) = rejection(&text);
        assert!(
            message.contains("use https://") && message.contains("allow_insecure_http = true"),
            "{message}"
        );

        let allowed = with_service("allow_insecure_http = true").replace("https://shapes.inc", remote);
        let config = parse(&allowed).expect(remote);
        assert!(config.service.allow_insecure_http);
        let warning = config.service.insecure_http_warning().expect(remote);
        assert!(
            warning.contains("unencrypted") && warning.contains("allow_insecure_http"),
            "{warning}"
        );
    }
    // Saying false is the same as saying nothing.
    let text = with_service("allow_insecure_http = false").replace("https://shapes.inc", "http://shapes.inc");
    assert_rejected(&text, 2, 12, "allow_insecure_http = true");
    // https needs nothing, and the flag changes nothing there.
    let config = parse(&with_service("allow_insecure_http = true")).expect("https");
    assert_eq!(config.service.insecure_http_warning(), None);
    assert!(!parse(MINIMAL).unwrap().service.allow_insecure_http);
    assert_rejected(
        &with_service("allow_insecure_http = \"yes\""),
        5,
        23,
        "service.allow_insecure_http",
    );
}

#[test]
fn a_cookie_file_path_that_looks_like_a_cookie_is_never_shown() {
    let token = "Xk9fQ2mLr7TzW4bNc8VdH1sJ6yPqA3eU.aB3dEf9hIjKlMnOpQrStUvWxYz0123";
    let text = MINIMAL.replace("/etc/chatkeep/cookie", &format!("/etc/chatkeep/{token}"));
    let config = parse(&text).expect("a path is a path");
    for shown in [
        config.to_redacted_toml(),
        format!("{config:?}"),
        format!("{config:#?}"),
    ] {
        assert!(!shown.contains(token), "the cookie-like path was shown");
        assert!(shown.contains(REDACTED_COOKIE_PATH), "{shown}");
    }
    let config = parse(MINIMAL).unwrap();
    assert!(config.to_redacted_toml().contains("/etc/chatkeep/cookie"));
}

#[test]
fn jargon_and_cookie_name_are_checked() {
    for jargon in ["", "Shapes", "sha pes", "shapes/x"] {
        let text = MINIMAL.replace("\"shapes\"", &format!("{jargon:?}"));
        assert_rejected(&text, 3, 10, "service.jargon must be the word the service uses");
    }
    for name in ["", "a b", "a;b", "a=b", "é"] {
        let text = with_service(&format!("cookie_name = {name:?}"));
        assert_rejected(&text, 5, 15, "service.cookie_name must be a cookie name");
    }
}

#[test]
fn exactly_one_cookie_source() {
    let text = with_service("cookie_env = \"CHATKEEP_COOKIE\"");
    let (line, column, message) = rejection(&text);
    assert_eq!((line, column), (5, 1));
    assert_eq!(
        message,
        "service.cookie_env cannot be set together with service.cookie_file (line 4); \
             set exactly one of cookie_file, cookie_env or cookie"
    );
    let three = with_service("cookie = \"tok\"\ncookie_env = \"X\"");
    assert_rejected(&three, 5, 1, "service.cookie cannot be set together with");
    let none = MINIMAL.replace("cookie_file = \"/etc/chatkeep/cookie\"\n", "");
    assert_rejected(&none, 1, 1, "[service] has no session cookie");
}

#[test]
fn cookie_values_never_appear_in_messages() {
    let secret = "tok3n-s3cret";
    let bad = [
        // Pasted into the wrong key.
        (format!("cookie_env = \"{secret};x\""), 4, 14),
        (
            format!("cookie_env = \"X\"\nextra_cookies = {{ _csrf = \"{secret}\\n\" }}"),
            5,
            27,
        ),
        (
            format!(
                "cookie_env = \"X\"\n\
                     extra_cookies = {{ \"{DEFAULT_COOKIE_NAME}\" = \"{secret}\" }}"
            ),
            5,
            19,
        ),
    ];
    for (lines, line, column) in bad {
        let text = MINIMAL.replace("cookie_file = \"/etc/chatkeep/cookie\"", &lines);
        let (got_line, got_column, message) = rejection(&text);
        assert_eq!((got_line, got_column), (line, column), "{message}");
        assert!(!message.contains(secret), "{message}");
    }
    let text = MINIMAL.replace(
        "cookie_file = \"/etc/chatkeep/cookie\"",
        &format!("cookie = \"{secret}\\u0007\""),
    );
    let (line, column, message) = rejection(&text);
    assert_eq!((line, column), (4, 10));
    assert!(!message.contains(secret), "{message}");
    assert!(message.contains("service.cookie must be the session cookie"));
}

#[test]
fn debug_output_hides_cookies() {
    let secret = "tok3n-s3cret";
    let text = MINIMAL.replace(
        "cookie_file = \"/etc/chatkeep/cookie\"",
        &format!("cookie = \"{secret}\"\nextra_cookies = {{ _csrf = \"{secret}2\" }}"),
    );
    let config = parse(&text).expect("inline cookie is allowed");
    let CookieSource::Inline(cookie) = &config.service.cookie else {
        panic!("expected an inline cookie");
    };
    assert_eq!(cookie.expose(), secret);
    let debug = format!("{config:?} {config:#?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("Inline([redacted])"), "{debug}");
    assert!(debug.contains("\"_csrf\": \"[redacted]\""), "{debug}");
}

#[test]
fn secret_never_prints() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert_eq!(format!("{secret:#?}"), "[redacted]");
    assert_eq!(secret.to_string(), "[redacted]");
    assert_eq!(secret.expose(), "hunter2");
}

#[test]
fn personality_names_are_checked() {
    let text = format!("{MINIMAL}[[personality]]\nname = \"../x\"\n");
    assert_rejected(
        &text,
        9,
        8,
        "personality.name must be the personality's slug as in its URL, got \"../x\": \
             a personality name may only contain ASCII letters, digits, '.', '_' and '-', \
             not '/'",
    );
    let text = format!("{MINIMAL}[[personality]]\nname = \"lilith\"\n\n[[personality]]\nname = \"Lilith\"\n");
    assert_rejected(
        &text,
        12,
        8,
        "personality `Lilith` is listed twice: it is already at line 9 as `lilith`, \
             and names are compared ignoring case; list each personality once",
    );
    let text = format!("personality = [{{ name = \"a\" }}, {{ name = \"a\" }}]\n{MINIMAL}");
    assert_rejected(
        &text,
        1,
        41,
        "personality `a` is listed twice: it is already at line 1; list each personality once",
    );
    let text = format!("personality = [\"a\"]\n{MINIMAL}");
    assert_rejected(&text, 1, 16, "each personality must be a table with a name");
}

#[test]
fn slugs_are_validated() {
    let long = "a".repeat(MAX_SLUG_LEN + 1);
    let rejected = [
        ("../x", SlugError::BadChar('/')),
        ("a/b", SlugError::BadChar('/')),
        ("a\0b", SlugError::BadChar('\0')),
        ("", SlugError::Empty),
        (long.as_str(), SlugError::TooLong(101)),
        (".hidden", SlugError::LeadingDot),
        (".", SlugError::LeadingDot),
        ("..", SlugError::LeadingDot),
        ("a b", SlugError::BadChar(' ')),
        ("café", SlugError::BadChar('é')),
        ("status.json", SlugError::Reserved("status.json".into())),
        // The token bucket's state file.
        ("rate_limit.state", SlugError::Reserved("rate_limit.state".into())),
    ];
    for (text, error) in rejected {
        assert_eq!(text.parse::<PersonalitySlug>(), Err(error), "{text:?}");
    }
    for text in ["lilith", "a", "A.b_c-9", "x.", &"z".repeat(MAX_SLUG_LEN)] {
        let slug: PersonalitySlug = text.parse().expect(text);
        assert_eq!(slug.as_str(), text);
        assert_eq!(slug.to_string(), text);
    }
    let nul = SlugError::BadChar('\0').to_string();
    assert!(nul.ends_with("not '\\0'"), "{nul}");
}

#[test]
fn slugs_serialize_as_strings_and_deserialize_with_checks() {
    #[derive(Serialize, Deserialize)]
    struct Holder {
        name: PersonalitySlug,
    }
    let holder = Holder {
        name: "lilith".parse().expect("slug"),
    };
    let text = toml::to_string(&holder).expect("serialize");
    assert_eq!(text, "name = \"lilith\"\n");
    let back: Holder = toml::from_str(&text).expect("deserialize");
    assert_eq!(back.name.as_str(), "lilith");
    let err = toml::from_str::<Holder>("name = \"a/b\"").err().expect("invalid");
    assert!(err.message().contains("not '/'"), "{err}");
}

#[test]
fn parse_duration_reads_every_unit() {
    for (text, expected) in [
        ("0s", Duration::ZERO),
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("2m", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
        ("7d", Duration::from_secs(7 * 86_400)),
        ("007s", Duration::from_secs(7)),
        ("1h30m", Duration::from_secs(5400)),
        ("2d12h", Duration::from_secs(60 * 3600)),
        ("1m500ms", Duration::from_millis(60_500)),
        ("1h0m5s", Duration::from_secs(3605)),
    ] {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
    for (text, reason) in [
        ("", "it is empty"),
        ("s", "it does not start with a number"),
        ("-1s", "it does not start with a number"),
        (" 1s", "it does not start with a number"),
        ("30", "it has no unit"),
        ("1.5s", "fractions are not supported"),
        ("30 s", "\" s\" is not a unit"),
        ("30S", "\"S\" is not a unit"),
        ("1w", "\"w\" is not a unit"),
        (
            "30m1h",
            "\"h\" comes after \"m\"; write the units from the largest down",
        ),
        ("1m1m", "\"m\" comes after \"m\""),
        ("1h30", "it has no unit"),
        ("1h 30m", "\"h \" is not a unit"),
        ("99999999999999999999s", "it is too long"),
        ("18446744073709551615d", "it is too long"),
    ] {
        let err = parse_duration(text).expect_err(text);
        assert!(err.contains(reason), "{text}: {err}");
        assert!(err.contains("expected a whole number followed by"), "{err}");
    }
}

#[test]
fn format_duration_is_the_inverse() {
    for (duration, text) in [
        (Duration::ZERO, "0s"),
        (Duration::from_millis(1500), "1500ms"),
        (Duration::from_secs(30), "30s"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_secs(120), "2m"),
        (Duration::from_secs(3600), "1h"),
        (Duration::from_secs(86_400 * 2), "2d"),
        (Duration::from_nanos(1), "1ms"),
        (Duration::from_micros(1500), "2ms"),
    ] {
        assert_eq!(format_duration(duration), text);
    }
    for text in ["1ms", "999ms", "1001ms", "59s", "61m", "25h", "3d"] {
        let duration = parse_duration(text).expect(text);
        assert_eq!(format_duration(duration), text);
    }
}

#[test]
fn relative_paths_start_at_the_config_directory() {
    let text = MINIMAL
        .replace("/var/lib/chatkeep", "./data")
        .replace("/etc/chatkeep/cookie", "secrets/../cookie");
    let config = parse(&text).expect("valid");
    assert_eq!(config.storage.data_dir, PathBuf::from("/etc/chatkeep/data"));
    assert_eq!(
        config.service.cookie,
        CookieSource::File(PathBuf::from("/etc/chatkeep/secrets/../cookie"))
    );

    // A relative config path is made absolute with the current directory.
    let config = Config::from_toml_str(&text, Path::new("conf/config.toml")).expect("valid");
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(config.storage.data_dir, cwd.join("conf/data"));
    let config = Config::from_toml_str(&text, Path::new("config.toml")).expect("valid");
    assert_eq!(config.storage.data_dir, cwd.join("data"));
    assert_eq!(config.source, PathBuf::from("config.toml"));

    let home = MINIMAL.replace("/var/lib/chatkeep", "~/backups");
    assert_rejected(&home, 7, 12, "storage.data_dir starts with `~`");
    let empty = MINIMAL.replace("/var/lib/chatkeep", "");
    assert_rejected(
        &empty,
        7,
        12,
        "storage.data_dir must be a path, got an empty string",
    );
}

#[test]
fn redacted_toml_hides_secrets_and_reads_back() {
    let secret = "tok3n-s3cret";
    let text = format!(
        "{}[[personality]]\nname = \"lilith\"\n[[personality]]\nname = \"b\"\n",
        MINIMAL.replace(
            "cookie_file = \"/etc/chatkeep/cookie\"",
            &format!(
                "cookie = \"{secret}\"\nextra_cookies = {{ _csrf = \"{secret}2\" }}\n\
                     chat_page_size = 20\ntimeout = \"90s\""
            ),
        )
    );
    let config = parse(&text).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(!rendered.contains(secret), "{rendered}");
    assert!(rendered.contains("cookie = \"[redacted]\""), "{rendered}");
    assert!(rendered.contains("timeout = \"90s\""), "{rendered}");
    assert!(rendered.contains("max_backoff = \"2m\""), "{rendered}");

    let back = parse(&rendered).expect("the rendering reads back");
    let mut expected = config.clone();
    expected.service.cookie = CookieSource::Inline(Secret::new("[redacted]"));
    for value in expected.service.extra_cookies.values_mut() {
        *value = "[redacted]".into();
    }
    assert_eq!(back, expected);

    // Without personalities, cookies or secrets it reads back unchanged.
    let config = parse(MINIMAL).expect("valid");
    let back = parse(&config.to_redacted_toml()).expect("reads back");
    assert_eq!(back, config);
}

#[test]
fn load_reports_unreadable_and_non_utf8_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let err = Config::load(&missing).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }));
    let message = err.to_string();
    assert!(message.starts_with(&format!("cannot read config file {}: ", missing.display())));

    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"[service]\njargon = \"caf\xe9\"\n").expect("write");
    match Config::load(&latin1) {
        Err(ConfigError::Invalid {
            line,
            column,
            message,
            ..
        }) => {
            assert_eq!((line, column), (2, 14));
            assert!(message.contains("not UTF-8"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }

    let good = dir.path().join("config.toml");
    std::fs::write(&good, MINIMAL.replace("/var/lib/chatkeep", "data")).expect("write");
    let config = Config::load(&good).expect("valid");
    assert_eq!(config.storage.data_dir, dir.path().join("data"));
    assert_eq!(config.source, good);
}

#[test]
fn columns_count_characters() {
    let text = "a = \"é\"\nbé = 1\n";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 8), (1, 8));
    assert_eq!(line_column(text, 10), (2, 2));
    let inside_e = text.find('é').expect("é") + 1;
    assert_eq!(line_column(text, inside_e), (1, 6));
    assert_eq!(line_column(text, 999), (3, 1));
    assert_eq!(line_column("a\r\nb", 3), (2, 1));
}
