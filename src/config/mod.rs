//! The configuration file: its TOML schema, its defaults, and validation
//! that says exactly where a file is wrong.
//!
//! Reading happens in two steps. The text is first parsed into toml's
//! spanned document tree ([`DeTable`]), which keeps the byte range of every
//! key, value and table header; each section is then read key by key from
//! that tree. Reading by hand rather than through `#[derive(Deserialize)]`
//! is what lets every rejection name the key in full (`service.timeout`),
//! say in a sentence what is expected, point at the line and column of the
//! offending key or value, and never repeat a cookie back.
//!
//! Reading goes on past the first problem, and the one nearest the top of
//! the file is reported, so that fixing a file from top to bottom meets the
//! problems in order.
//!
//! `config.example.toml` documents every key; a test below keeps it loadable.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::archive::retention::RetentionPolicy;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// `User-Agent` sent when the config names none.
pub const DEFAULT_USER_AGENT: &str = concat!("chatkeep/", env!("CARGO_PKG_VERSION"));
/// Name of the session cookie on current deployments.
pub const DEFAULT_COOKIE_NAME: &str = "__Secure-better-auth.session_token";
/// Name of the session cookie on legacy deployments.
pub const LEGACY_COOKIE_NAME: &str = "appSession";
/// Chat messages asked for per page when the config says nothing.
pub const DEFAULT_CHAT_PAGE_SIZE: u32 = 50;
/// Largest `chat_page_size` accepted.
pub const MAX_CHAT_PAGE_SIZE: u32 = 1000;
/// Default for `max_page_size` (raised to `chat_page_size` if that is larger).
pub const DEFAULT_MAX_PAGE_SIZE: u32 = 500;
/// Largest `max_page_size` accepted.
pub const MAX_MAX_PAGE_SIZE: u32 = 10_000;
/// Per-request timeout when the config says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a transient failure when the config says nothing.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// Largest `max_retries` accepted.
pub const MAX_MAX_RETRIES: u32 = 100;
/// First retry delay when the config says nothing.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Retry delay ceiling when the config says nothing (raised to
/// `initial_backoff` if that is larger).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(120);
/// Request rate when the config says nothing: what public clients used.
pub const DEFAULT_REQUESTS_PER_SECOND: f64 = 1.0;
/// Token bucket size when the config says nothing.
pub const DEFAULT_BURST: u32 = 1;
/// Longest personality slug accepted, in characters.
pub const MAX_SLUG_LEN: usize = 100;

/// Names at the top of the data directory that chatkeep uses itself, and
/// so no personality directory may take.
pub const RESERVED_NAMES: &[&str] = &[
    "status.json",
    "metrics.prom",
    "session_cookie.json",
    "archives",
    "rate_limit.state",
    "media",
    "search",
];
/// Memory pages walked per sync of one personality when the config says
/// nothing.
pub const DEFAULT_MAX_MEMORY_PAGES: u32 = 1000;
/// Largest `max_memory_pages` accepted.
pub const MAX_MAX_MEMORY_PAGES: u32 = 100_000;
/// How often a sync probes below the oldest stored message when the config
/// says nothing: once a day.
pub const DEFAULT_TAIL_CHECK: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest message count `refresh` accepts.
pub const MAX_REFRESH_MESSAGES: u32 = 1_000_000;
/// Sync schedule when the config says nothing: every 6 hours on the hour,
/// in the syntax of tokio-cron-scheduler (seconds first).
pub const DEFAULT_SCHEDULE: &str = "0 0 */6 * * *";
/// Shortest `interval` accepted. A sync of one personality makes at least
/// one request per section, six at the defaults, at one request per second
/// by default: ticks closer than this would mostly find the previous sync
/// still running and be skipped. A cron schedule can still tick every
/// second, for tests.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Set (to anything), lets a cron schedule run more often than
/// [`MIN_INTERVAL`]: for chatkeep's own test suite, which runs the real
/// daemon on per-second ticks to stay fast. Not documented for users.
pub const FAST_SCHEDULES_FOR_TESTS: &str = "CHATKEEP_TEST_FAST_SCHEDULES";
/// Longest `interval` accepted; rarer runs are better said with a cron
/// schedule.
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// `jitter` must be shorter than this.
pub const MAX_JITTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Sync jobs run at once when the config says nothing.
pub const DEFAULT_WORKERS: u32 = 2;
/// Largest `workers` accepted.
pub const MAX_WORKERS: u32 = 64;
/// Time allowed to stop cleanly when the config says nothing.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `shutdown_timeout` accepted.
pub const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Size at which the open chat log is sealed into a segment when the config
/// says nothing.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Smallest `segment_size` accepted: smaller segments would be a file or
/// more per sync, for no gain. (The store itself takes any size, which the
/// tests use.)
pub const MIN_SEGMENT_SIZE: u64 = 64 << 10;
/// Most bytes one walk may spool before its commit when the config says
/// nothing: a history of several million messages. A service that never
/// stops handing out older pages stops here instead of filling the disk.
pub const DEFAULT_MAX_WALK_SPOOL: u64 = 4 << 30;
/// Smallest `max_walk_spool` accepted: room for a few large pages.
pub const MIN_MAX_WALK_SPOOL: u64 = 1 << 20;
/// Personalities one discovery may add when the config says nothing.
pub const DEFAULT_MAX_PERSONALITIES: u32 = 100;
/// Largest `max_personalities` accepted.
pub const MAX_MAX_PERSONALITIES: u32 = 100_000;
/// Rolled log files kept when the config says nothing.
pub const DEFAULT_LOG_MAX_FILES: u32 = 14;
/// Largest `max_files` accepted: ten years of daily files.
pub const MAX_LOG_MAX_FILES: u32 = 3650;
/// The log levels `level` accepts, most severe first.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
/// Log level when the config says nothing.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Name of the archive directory inside the data directory when the config
/// names none; one of [`RESERVED_NAMES`].
pub const DEFAULT_ARCHIVE_DIR_NAME: &str = "archives";
/// Default of `[notify] timeout`: how long a hook or a ping may take.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most of `[notify] timeout`.
pub const MAX_NOTIFY_TIMEOUT: Duration = Duration::from_secs(3600);
/// The metrics file's name in the data directory, the default of
/// `[metrics] file`.
pub const DEFAULT_METRICS_FILE_NAME: &str = "metrics.prom";
/// Gzip level of snapshots when the config says nothing: zlib's own default,
/// the usual balance of time and size.
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 6;
/// Retention when the config says nothing: the last 7 snapshots, one a day
/// for 14 days, one a week for 8 weeks, one a month for a year.
pub const DEFAULT_RETENTION: RetentionPolicy = RetentionPolicy {
    keep_last: 7,
    keep_hourly: 0,
    keep_daily: 14,
    keep_weekly: 8,
    keep_monthly: 12,
    keep_yearly: 0,
};

/// The whole configuration, validated, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the service is and how to talk to it.
    pub service: ServiceConfig,
    /// Where backups are kept.
    pub storage: StorageConfig,
    /// The one global request budget shared by all workers.
    pub rate_limit: RateLimitConfig,
    /// What a sync backs up.
    pub sync: SyncConfig,
    /// Which personalities are found at each run besides the listed ones.
    pub discover: DiscoverConfig,
    /// How `chatkeep run` schedules and runs syncs.
    pub daemon: DaemonConfig,
    /// Where and how log lines are written.
    pub log: LogConfig,
    /// Snapshots: where, how compressed, how many kept, encrypted to whom.
    pub archive: ArchiveConfig,
    /// Who is told when a sync fails or recovers: hooks and a ping URL.
    pub notify: NotifyConfig,
    /// Where the metrics file goes and which group may read it.
    pub metrics: MetricsConfig,
    /// Which media messages and profiles point to are downloaded, and how.
    pub media: MediaConfig,
    /// The web view the daemon serves (`[serve]`); none without the table.
    pub serve: Option<ServeConfig>,
    /// The personalities to back up, in file order, no two alike.
    pub personalities: Vec<PersonalityConfig>,
    /// The S3-compatible stores that get a copy of each snapshot, in file
    /// order, no two of one name.
    pub remotes: Vec<RemoteConfig>,
    /// The file this came from, as given to [`Config::load`]; reloads read it
    /// again.
    pub source: PathBuf,
}

/// The `[service]` table: address, authentication and request behaviour.
///
/// `Debug` is written by hand so that extra cookie values never show.
#[derive(Clone, PartialEq)]
pub struct ServiceConfig {
    /// Scheme and host (and port) of the service, without a trailing slash;
    /// the API lives under `{base_url}/api`. `https://`, or `http://` to
    /// loopback, or to anywhere when `allow_insecure_http` says so.
    pub base_url: String,
    /// Lets `base_url` be `http://` to a host that is not this machine, so
    /// that the cookie travels unencrypted; warned about on every run (see
    /// [`ServiceConfig::insecure_http_warning`]).
    pub allow_insecure_http: bool,
    /// The deployment's word for a personality in paths (`shapes`,
    /// `personalities`, ...); `[a-z0-9_-]+`.
    pub jargon: String,
    /// Where the session cookie comes from.
    pub cookie: CookieSource,
    /// Name under which the session cookie is sent; an RFC 6265 token.
    pub cookie_name: String,
    /// Further cookies sent verbatim with every request (`connect.sid`,
    /// `_csrf`); names are RFC 6265 tokens, never `cookie_name`.
    pub extra_cookies: BTreeMap<String, String>,
    /// `limit` of an ordinary chat history request; `1..=1000`.
    pub chat_page_size: u32,
    /// Largest `limit` ever asked for, when a group of messages sharing one
    /// `ts` outgrows a page; `chat_page_size..=10000`.
    pub max_page_size: u32,
    /// Time allowed for one request; never zero.
    pub timeout: Duration,
    /// Retries of one request after transient failures; `0..=100`.
    pub max_retries: u32,
    /// Delay before the first retry, doubled for each next one; never zero.
    pub initial_backoff: Duration,
    /// Ceiling of the retry delay; at least `initial_backoff`.
    pub max_backoff: Duration,
    /// `User-Agent` header of every request.
    pub user_agent: String,
}

impl fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("base_url", &self.base_url)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("jargon", &self.jargon)
            .field("cookie", &self.cookie)
            .field("cookie_name", &self.cookie_name)
            .field("extra_cookies", &RedactedValues(&self.extra_cookies))
            .field("chat_page_size", &self.chat_page_size)
            .field("max_page_size", &self.max_page_size)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

impl ServiceConfig {
    /// The warning every run gives when `base_url` is `http://` to a host
    /// that is not this machine (which `allow_insecure_http` allowed), or
    /// `None`.
    pub fn insecure_http_warning(&self) -> Option<String> {
        read::sends_in_clear(&self.base_url).then(|| {
            format!(
                "service.base_url is {:?}, plain http:// to a host that is not this machine \
                 (allowed by allow_insecure_http): the session cookie and the chat history travel \
                 unencrypted; use https:// if the service offers it",
                self.base_url
            )
        })
    }
}

/// Shows the names of a cookie map and hides its values.
struct RedactedValues<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, Secret::REDACTED)))
            .finish()
    }
}

/// Where the session cookie is read from. The file and the variable are
/// read by the API client, not here, so that a rotated cookie can be picked
/// up without reloading the config.
///
/// `Debug` shows a file's path as [`shown_cookie_path`] does.
#[derive(Clone, PartialEq, Eq)]
pub enum CookieSource {
    /// A file holding the cookie (`cookie_file`); a relative path has been
    /// resolved against the config file's directory.
    File(PathBuf),
    /// The name of an environment variable holding the cookie (`cookie_env`).
    Env(String),
    /// The cookie itself, written in the config file (`cookie`).
    Inline(Secret),
}

impl fmt::Debug for CookieSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieSource::File(path) => f.debug_tuple("File").field(&shown_cookie_path(path)).finish(),
            CookieSource::Env(name) => f.debug_tuple("Env").field(name).finish(),
            CookieSource::Inline(secret) => f.debug_tuple("Inline").field(secret).finish(),
        }
    }
}

/// A value that must never be shown: `Debug` and `Display` print
/// `[redacted]`, and [`Secret::expose`] is the only way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What is shown in place of the value.
    pub const REDACTED: &'static str = "[redacted]";

    /// Wraps a value so that it no longer prints.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

/// The `[storage]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Root of the store; a relative path has been resolved against the
    /// config file's directory.
    pub data_dir: PathBuf,
    /// Bytes at which a personality's open chat log is sealed into an
    /// immutable segment; at least [`MIN_SEGMENT_SIZE`].
    pub segment_size: u64,
    /// Bytes one walk may spool before it is committed; a walk that
    /// reaches it stops with an error (its spool kept), at least
    /// [`MIN_MAX_WALK_SPOOL`].
    pub max_walk_spool: u64,
}

/// The `[rate_limit]` table: one token bucket for every request of every
/// worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Tokens added per second; finite and greater than 0.
    pub requests_per_second: f64,
    /// Bucket size: requests that may go out back to back; at least 1.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
            burst: DEFAULT_BURST,
        }
    }
}

/// One part of a personality that a sync can back up. The variants are in
/// the order a sync takes them, which is also the order every list of
/// sections in a [`Config`] is kept in: the profile comes first because it
/// says who owns the personality, which decides whether knowledge and
/// training can be fetched at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// The profile document: name, prompt, settings.
    Profile,
    /// The memories, walked page by page and merged by id.
    Memories,
    /// Knowledge entries; available to the owner only.
    Knowledge,
    /// Training examples; available to the owner only.
    Training,
    /// What the personality keeps about the account that backs it up.
    UserPersonalization,
    /// The chat history.
    Chat,
}

impl Section {
    /// Every section, in order.
    pub const fn all() -> [Section; 6] {
        [
            Section::Profile,
            Section::Memories,
            Section::Knowledge,
            Section::Training,
            Section::UserPersonalization,
            Section::Chat,
        ]
    }

    /// The section's name in the config file (`user_personalization`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Section::Profile => "profile",
            Section::Memories => "memories",
            Section::Knowledge => "knowledge",
            Section::Training => "training",
            Section::UserPersonalization => "user_personalization",
            Section::Chat => "chat",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[sync]` table: what one sync of a personality backs up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The sections backed up for a personality whose block names none of
    /// its own: never empty, no duplicates, in the order of [`Section::all`].
    pub sections: Vec<Section>,
    /// Safety cap on the memory pages walked in one sync of one
    /// personality, `1..=100000`; a walk that reaches it stops with a
    /// warning.
    pub max_memory_pages: u32,
    /// How often a sync also asks for history below the oldest stored
    /// message, where an earlier answer said history begins (the service
    /// may restore older history, and an empty answer can be wrong). Zero:
    /// at every sync. [`DEFAULT_TAIL_CHECK`] when not set.
    pub tail_check: Duration,
    /// How much of the newest history each sync reads again and compares
    /// with the store, for personalities whose block sets none of its own.
    pub refresh: Refresh,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            sections: Section::all().to_vec(),
            max_memory_pages: DEFAULT_MAX_MEMORY_PAGES,
            tail_check: DEFAULT_TAIL_CHECK,
            refresh: Refresh::FirstPage,
        }
    }
}

/// How much of the newest history a sync reads again and compares with
/// what the store holds, to catch what changed upstream after it was
/// stored: replies regenerated, messages deleted, messages that arrived
/// late. Written in the file as `"first-page"`, a count of messages
/// (`200` or `"200"`) or a span of history (`"1d"`); [`Refresh::to_string`]
/// writes it back in a form that reads back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Refresh {
    /// Only the first page, which every sync fetches anyway: no request
    /// beyond what finding new messages needs.
    #[default]
    FirstPage,
    /// The newest this many messages, `1..=`[`MAX_REFRESH_MESSAGES`].
    Messages(u32),
    /// Every message within this span of the newest one; longer than zero.
    Span(Duration),
}

impl Refresh {
    /// How the default is written in the file.
    pub const FIRST_PAGE: &'static str = "first-page";
}

impl fmt::Display for Refresh {
    /// `first-page`, the count (`200`) or the span (`1d`), as the file
    /// takes them in a string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refresh::FirstPage => f.write_str(Self::FIRST_PAGE),
            Refresh::Messages(count) => write!(f, "{count}"),
            Refresh::Span(span) => f.write_str(&format_duration(*span)),
        }
    }
}

impl FromStr for Refresh {
    type Err = String;

    /// Reads `"first-page"`, a count (`"200"`) or a span (`"1d"`).
    fn from_str(s: &str) -> Result<Refresh, String> {
        refresh_from_str(s).map_err(|reason| {
            let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
            format!("invalid refresh {s:?}{reason}; expected {REFRESH_FORMAT}")
        })
    }
}

const REFRESH_FORMAT: &str =
    "a number of messages such as 200, a span of history such as \"1d\", or \"first-page\"";

/// The refresh in `s`, or why it is not one (a clause, without the value),
/// when there is more to say than [`REFRESH_FORMAT`].
fn refresh_from_str(s: &str) -> Result<Refresh, Option<String>> {
    if s == Refresh::FIRST_PAGE {
        return Ok(Refresh::FirstPage);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return refresh_count(s.parse::<u64>().ok()).map_err(Some);
    }
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        let folded: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        let hint = format!("did you mean \"{}\"?", Refresh::FIRST_PAGE);
        return Err((folded == "firstpage").then_some(hint));
    }
    match duration_from_str(s).map_err(Some)? {
        span if span.is_zero() => Err(Some("a span of history must be longer than 0s".to_owned())),
        span => Ok(Refresh::Span(span)),
    }
}

/// `Messages(count)` if `count` is in range, else why not.
fn refresh_count(count: Option<u64>) -> Result<Refresh, String> {
    count
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=MAX_REFRESH_MESSAGES).contains(n))
        .map(Refresh::Messages)
        .ok_or_else(|| format!("a number of messages is from 1 to {MAX_REFRESH_MESSAGES}"))
}

impl Serialize for Refresh {
    /// A count as a TOML integer, the others as strings.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Refresh::Messages(count) => serializer.serialize_u32(*count),
            other => serializer.collect_str(other),
        }
    }
}

/// The `[discover]` table: personalities backed up besides the
/// `[[personality]]` blocks, looked up again at each run. One found this
/// way gets `[sync] sections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoverConfig {
    /// Also every personality the account owns
    /// (`/api/{jargon}?category=self`).
    pub owned: bool,
    /// Also every personality the account used recently
    /// (`/api/{jargon}?category=recent`).
    pub recent: bool,
    /// Most personalities one listing may name: a listing that names more
    /// is refused whole (the configured ones are still synced), so a
    /// broken or hostile service cannot make chatkeep create and walk
    /// thousands of directories.
    pub max_personalities: u32,
}

impl Default for DiscoverConfig {
    fn default() -> Self {
        DiscoverConfig {
            owned: false,
            recent: false,
            max_personalities: DEFAULT_MAX_PERSONALITIES,
        }
    }
}

/// When the daemon syncs a personality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A cron expression as written in the file, checked with the parser
    /// tokio-cron-scheduler 0.15 uses, set up as it sets it up: six fields,
    /// the first one seconds (`"0 0 */6 * * *"`), an optional seventh for
    /// the year, or a shorthand such as `"@daily"`; it fires at least once
    /// more after the time it was checked.
    Cron(String),
    /// A fixed period (`interval`): whole seconds, from [`MIN_INTERVAL`] to
    /// [`MAX_INTERVAL`].
    Interval(Duration),
}

/// The `[daemon]` table: how `chatkeep run` schedules and runs syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// When every personality without a schedule of its own is synced:
    /// `schedule` or `interval`, never both; [`DEFAULT_SCHEDULE`] if neither.
    pub schedule: Schedule,
    /// Each personality's run is delayed by a random time up to this, so
    /// that many personalities on one schedule do not start at once;
    /// shorter than [`MAX_JITTER`], zero for none.
    pub jitter: Duration,
    /// Sync jobs that may run at once; `1..=64`. All of them share the one
    /// request budget of `[rate_limit]`.
    pub workers: u32,
    /// Whether every personality is synced once when the daemon starts,
    /// besides its schedule.
    pub run_on_start: bool,
    /// Time running syncs are given to stop at a page boundary on SIGTERM
    /// or SIGINT; longer than zero, at most [`MAX_SHUTDOWN_TIMEOUT`].
    pub shutdown_timeout: Duration,
    /// When every personality is archived (a snapshot, then retention), as
    /// a cron expression checked as [`Schedule::Cron`] is; `None`: the
    /// daemon makes no snapshots.
    pub archive_schedule: Option<String>,
    /// When the daemon runs `chatkeep audit` (re-walks each personality's
    /// whole history and compares it with the backup), as a cron expression
    /// checked as [`Schedule::Cron`] is; `None`: never, the default.
    pub audit_schedule: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            schedule: Schedule::Cron(DEFAULT_SCHEDULE.to_owned()),
            jitter: Duration::ZERO,
            workers: DEFAULT_WORKERS,
            run_on_start: false,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            archive_schedule: None,
            audit_schedule: None,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The format's name in the config file.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[log]` table, honoured by every command that reads a config. Log
/// events always go to standard error (natively to the journal when that is
/// the journal, see `crate::logging`); these say where else, in what form,
/// and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A directory where log lines are also written, to files rolled over
    /// daily; a relative path has been resolved against the config file's
    /// directory. `None`: standard error only.
    pub dir: Option<PathBuf>,
    /// Rolled files kept in `dir`, `1..=3650`; older ones are deleted.
    pub max_files: u32,
    /// Text or JSON lines.
    pub format: LogFormat,
    /// The most detailed level logged: one of [`LOG_LEVELS`]. `RUST_LOG`,
    /// when set, overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            dir: None,
            max_files: DEFAULT_LOG_MAX_FILES,
            format: LogFormat::Text,
            level: DEFAULT_LOG_LEVEL.to_owned(),
        }
    }
}

/// The `[archive]` table: snapshots of each personality, their retention
/// and their encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Where snapshots go, one directory per personality below it; a
    /// relative path has been resolved against the config file's directory.
    /// Default: `<data_dir>/archives`. Never the data directory itself.
    pub dir: PathBuf,
    /// Gzip level, `1..=9`.
    pub compression_level: u32,
    /// Whether a run that finds nothing changed since the newest snapshot
    /// makes no new one.
    pub skip_unchanged: bool,
    /// Whether a snapshot carries the media files its history points to
    /// (those fetched), each once, as `media/<sha256>.<ext>`.
    pub media: bool,
    /// Which snapshots are kept (restic's `keep_*` rules).
    pub retention: RetentionPolicy,
    /// age X25519 public keys (`age1...`), each checked at load, that
    /// snapshots are encrypted to.
    pub age_recipients: Vec<String>,
    /// A file of further recipients, one a line (`#` comments), read at
    /// each snapshot; a relative path has been resolved against the config
    /// file's directory.
    pub age_recipients_file: Option<PathBuf>,
}

impl ArchiveConfig {
    /// The defaults, with snapshots under `<data_dir>/archives`.
    pub fn with_data_dir(data_dir: &Path) -> ArchiveConfig {
        ArchiveConfig {
            dir: data_dir.join(DEFAULT_ARCHIVE_DIR_NAME),
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            skip_unchanged: true,
            media: true,
            retention: DEFAULT_RETENTION,
            age_recipients: Vec::new(),
            age_recipients_file: None,
        }
    }

    /// True when snapshots are to be encrypted.
    pub fn encrypts(&self) -> bool {
        !self.age_recipients.is_empty() || self.age_recipients_file.is_some()
    }
}

/// The `[notify]` table: commands run when a personality's sync fails or
/// recovers, and a healthchecks.io-style URL pinged around each pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Run (without a shell) when a personality's sync ends in an error
    /// outcome (never `ok` or `interrupted`): the program, then its
    /// arguments. `None`: nothing is run.
    pub on_failure: Option<Vec<String>>,
    /// Run when a personality's sync ends `ok` and the one before it (not
    /// counting interrupted ones) had failed.
    pub on_recovery: Option<Vec<String>>,
    /// How long a hook may run before it is killed, and a ping may take;
    /// longer than zero, at most [`MAX_NOTIFY_TIMEOUT`].
    pub timeout: Duration,
    /// `<url>/start`, `<url>` and `<url>/fail` are requested when a pass
    /// begins, succeeds and fails; `http://` or `https://`, no trailing
    /// slash, no query. `None`: no pings.
    pub ping_url: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            on_failure: None,
            on_recovery: None,
            timeout: DEFAULT_NOTIFY_TIMEOUT,
            ping_url: None,
        }
    }
}

/// Default of `[media] max_file_size`.
pub const DEFAULT_MEDIA_MAX_FILE_SIZE: u64 = 100 * 1024 * 1024;
/// Default of `[media] requests_per_second`: as polite as the service's.
pub const DEFAULT_MEDIA_REQUESTS_PER_SECOND: f64 = 1.0;

/// The `[media]` table: the images, voice replies and avatars downloaded
/// beside the history (see `media`).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// Which kinds are downloaded, unless a `[[personality]]` says otherwise.
    pub kinds: MediaKinds,
    /// A larger file is refused (and recorded so), checked while it streams.
    pub max_file_size: u64,
    /// Bytes downloaded per run over all personalities; the rest waits
    /// for the next run. `None`: no limit.
    pub max_bytes_per_run: Option<u64>,
    /// The media hosts' own token bucket, apart from `[rate_limit]`'s.
    pub requests_per_second: f64,
    /// `None`: no bandwidth limit.
    pub max_bytes_per_second: Option<u64>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            kinds: MediaKinds::ALL,
            max_file_size: DEFAULT_MEDIA_MAX_FILE_SIZE,
            max_bytes_per_run: None,
            requests_per_second: DEFAULT_MEDIA_REQUESTS_PER_SECOND,
            max_bytes_per_second: None,
        }
    }
}

/// Which kinds of media are downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaKinds {
    /// Messages' `attachment_url`.
    pub attachments: bool,
    /// Messages' `voice_reply_url`.
    pub voice_replies: bool,
    /// The profile's avatar.
    pub avatars: bool,
}

impl MediaKinds {
    pub const ALL: MediaKinds = MediaKinds {
        attachments: true,
        voice_replies: true,
        avatars: true,
    };
    pub const NONE: MediaKinds = MediaKinds {
        attachments: false,
        voice_replies: false,
        avatars: false,
    };
    /// The names a `[[personality]]`'s `media` list takes.
    pub const NAMES: [&'static str; 3] = ["attachments", "voice_replies", "avatars"];

    pub fn any(self) -> bool {
        self.attachments || self.voice_replies || self.avatars
    }

    /// The names of the kinds on, in [`Self::NAMES`] order.
    pub fn names(self) -> Vec<&'static str> {
        let on = [self.attachments, self.voice_replies, self.avatars];
        Self::NAMES
            .into_iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect()
    }
}

/// The `[serve]` table: the web view the daemon serves beside its syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Where `chatkeep run` serves the web view (see [`crate::web`]).
    pub listen: std::net::SocketAddr,
    /// The file holding the token every request must give; required for
    /// an address beyond loopback.
    pub token_file: Option<PathBuf>,
}

/// The `[metrics]` table: where the daemon writes its Prometheus text file
/// and who may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The file; a relative path has been resolved against the config
    /// file's directory. Default: `<data_dir>/metrics.prom`.
    pub file: PathBuf,
    /// A group (a name, or a number) whose members may read the file: it is
    /// then written mode 0640 with that group instead of 0600. Only with a
    /// `file` outside the data directory, which stays private.
    pub group: Option<String>,
}

impl MetricsConfig {
    /// The defaults, the file in `data_dir`.
    pub fn with_data_dir(data_dir: &Path) -> MetricsConfig {
        MetricsConfig {
            file: data_dir.join(DEFAULT_METRICS_FILE_NAME),
            group: None,
        }
    }
}

/// One `[[personality]]` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalityConfig {
    /// The personality's slug, as in its URL.
    pub name: PersonalitySlug,
    /// The sections backed up for this personality instead of
    /// `[sync] sections`, under the same rules; `None` when not set.
    pub sections: Option<Vec<Section>>,
    /// A cron expression used for this personality instead of the
    /// `[daemon]` schedule, checked as [`Schedule::Cron`] is; `None` when
    /// not set.
    pub schedule: Option<String>,
    /// How often a sync of this personality probes below its oldest stored
    /// message, instead of `[sync] tail_check`; `None` when not set.
    pub tail_check: Option<Duration>,
    /// How much of this personality's newest history each sync reads
    /// again, instead of `[sync] refresh`; `None` when not set.
    pub refresh: Option<Refresh>,
    /// The kinds of media downloaded for this personality (`media =
    /// ["attachments", "avatars"]`, `[]` for none) instead of `[media]`'s;
    /// `None` when not set.
    pub media: Option<MediaKinds>,
}

/// A personality's slug (`lilith`): 1 to 100 characters of
/// `[A-Za-z0-9._-]`, not starting with `.`. The rules make it safe as a
/// single path component (no `/`, no NUL, not `.` or `..`, not hidden) and
/// as a URL path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonalitySlug(String);

impl PersonalitySlug {
    /// The slug as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a string is not a [`PersonalitySlug`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("a personality name cannot be empty")]
    Empty,
    #[error("a personality name has at most {MAX_SLUG_LEN} characters, this one has {0}")]
    TooLong(usize),
    #[error("a personality name cannot start with '.'")]
    LeadingDot,
    #[error("`{0}` is the name of one of chatkeep's own files in the data directory ({list}); a personality cannot use it", list = RESERVED_NAMES.join(", "))]
    Reserved(String),
    #[error("a personality name may only contain ASCII letters, digits, '.', '_' and '-', not {0:?}")]
    BadChar(char),
}

impl FromStr for PersonalitySlug {
    type Err = SlugError;

    fn from_str(s: &str) -> Result<Self, SlugError> {
        if s.is_empty() {
            return Err(SlugError::Empty);
        }
        let len = s.chars().count();
        if len > MAX_SLUG_LEN {
            return Err(SlugError::TooLong(len));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if let Some(bad) = s.chars().find(|&c| !allowed(c)) {
            return Err(SlugError::BadChar(bad));
        }
        // Covers "." and ".." too: neither may become a directory name.
        if s.starts_with('.') {
            return Err(SlugError::LeadingDot);
        }
        if RESERVED_NAMES.contains(&s) {
            return Err(SlugError::Reserved(s.to_owned()));
        }
        Ok(PersonalitySlug(s.to_owned()))
    }
}

impl fmt::Display for PersonalitySlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PersonalitySlug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for PersonalitySlug {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PersonalitySlug {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a configuration could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// No file was named, and none is at any of the places looked in
    /// (see [`ConfigLocation`]).
    #[error("{}", location::not_found_message(searched))]
    NotFound { searched: Vec<PathBuf> },
    /// The file was read but is not a valid configuration. `line` and
    /// `column` are 1-based; the column counts characters, not bytes.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => Config::from_toml_str(&text, path),
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let bytes = err.as_bytes();
                // The valid prefix is text, so lines and columns can be counted in it.
                let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
                Err(invalid(
                    path,
                    prefix,
                    valid,
                    "the file is not UTF-8 text; save it as UTF-8".to_owned(),
                ))
            }
        }
    }

    /// Parses and validates `text`, read from `source`. `source` names the
    /// file in error messages, and relative paths in the file are resolved
    /// against its directory (made absolute with the current directory if
    /// `source` itself is relative, so they stay right if the process later
    /// changes directory).
    pub fn from_toml_str(text: &str, source: &Path) -> Result<Config, ConfigError> {
        let document = DeTable::parse(text).map_err(|err| {
            let at = err.span().map_or(0, |span| span.start);
            let message = match err.span().and_then(|span| text.get(span)) {
                Some(key) if err.message() == "duplicate key" && !key.contains('\n') => {
                    format!("invalid TOML: duplicate key `{key}`")
                }
                _ => format!("invalid TOML: {}", err.message()),
            };
            invalid(source, text, at, message)
        })?;
        let mut reader = Reader {
            text,
            base_dir: base_dir(source),
            problems: Vec::new(),
        };
        let config = reader.config(document.get_ref(), source);
        // Unknown keys first, then the earliest problem in the file; on equal
        // positions, the first found.
        let first = reader.problems.iter().min_by_key(|p| (!p.unknown_key, p.at));
        if let Some(problem) = first {
            return Err(invalid(source, text, problem.at, problem.message.clone()));
        }
        let Some(config) = config else {
            return Err(invalid(
                source,
                text,
                0,
                "the configuration is not valid".to_owned(),
            ));
        };
        for warning in config.load_warnings() {
            tracing::warn!("{warning}");
        }
        Ok(config)
    }

    /// What loading warns about: secrets held inline (the session cookie,
    /// the remotes' keys). Logged as the config is read (which a daemon's
    /// reload sees), and again by `main` once logging is set up, which it
    /// is only after the first read.
    pub fn load_warnings(&self) -> Vec<String> {
        let cookie = matches!(self.service.cookie, CookieSource::Inline(_)).then(|| {
            format!(
                "service.cookie holds the session cookie inline in the config file {}; prefer \
                 cookie_file or cookie_env, and keep this file private",
                self.source.display()
            )
        });
        let remotes = self
            .remotes
            .iter()
            .filter(|r| matches!(r.credentials, RemoteCredentials::Inline { .. }))
            .map(|r| {
                format!(
                    "[[remote]] `{}` holds its access key inline in the config file {}; prefer \
                     access_key_id_file and secret_access_key_file, the environment or a systemd \
                     credential, and keep this file private",
                    r.name,
                    self.source.display()
                )
            });
        cookie.into_iter().chain(remotes).collect()
    }

    /// The `[[remote]]` of `name`.
    pub fn remote(&self, name: &str) -> Option<&RemoteConfig> {
        self.remotes.iter().find(|r| r.name == name)
    }

    /// The `[[personality]]` block of `name`. Names are compared ignoring
    /// ASCII case, as they are when the file is checked for duplicates, so
    /// at most one block matches.
    pub fn personality(&self, name: &PersonalitySlug) -> Option<&PersonalityConfig> {
        self.personalities
            .iter()
            .find(|p| p.name.as_str().eq_ignore_ascii_case(name.as_str()))
    }

    /// The sections to back up for `name`: those of its `[[personality]]`
    /// block if it sets any, else `[sync] sections`. A personality not in
    /// the config (one found by `[discover]`) gets `[sync] sections`.
    pub fn sections_for(&self, name: &PersonalitySlug) -> Vec<Section> {
        self.personality(name)
            .and_then(|p| p.sections.clone())
            .unwrap_or_else(|| self.sync.sections.clone())
    }

    /// When the daemon syncs `name`: the cron expression of its
    /// `[[personality]]` block if it sets one, else the `[daemon]` schedule
    /// (also for personalities not in the file).
    pub fn schedule_for(&self, name: &PersonalitySlug) -> Schedule {
        match self.personality(name).and_then(|p| p.schedule.clone()) {
            Some(cron) => Schedule::Cron(cron),
            None => self.daemon.schedule.clone(),
        }
    }

    /// How often a sync of `name` probes below its oldest stored message:
    /// its `[[personality]]` block's `tail_check` if it sets one, else
    /// `[sync] tail_check` (also for personalities not in the file).
    pub fn tail_check_for(&self, name: &PersonalitySlug) -> Duration {
        self.personality(name)
            .and_then(|p| p.tail_check)
            .unwrap_or(self.sync.tail_check)
    }

    /// Which kinds of media are downloaded for `name`: its
    /// `[[personality]]` block's `media` if it sets one, else `[media]`'s.
    pub fn media_kinds_for(&self, name: &PersonalitySlug) -> MediaKinds {
        self.personality(name)
            .and_then(|p| p.media)
            .unwrap_or(self.media.kinds)
    }

    /// How much of `name`'s newest history each sync reads again: its
    /// `[[personality]]` block's `refresh` if it sets one, else
    /// `[sync] refresh` (also for personalities not in the file).
    pub fn refresh_for(&self, name: &PersonalitySlug) -> Refresh {
        self.personality(name)
            .and_then(|p| p.refresh)
            .unwrap_or(self.sync.refresh)
    }

    /// The effective configuration, defaults filled in, as TOML that
    /// [`Config::from_toml_str`] reads back. An inline cookie and the values
    /// of extra cookies are shown as `[redacted]`; a path that is not UTF-8
    /// is shown lossily.
    pub fn to_redacted_toml(&self) -> String {
        let rendered = Rendered::from(self);
        let body = toml::to_string(&rendered)
            .unwrap_or_else(|err| format!("# cannot render the configuration: {err}\n"));
        format!(
            "# effective configuration read from {:?}; secrets are redacted\n\n{body}",
            self.source.display().to_string()
        )
    }
}

/// Parses a duration written as a whole number and a unit: `ms`, `s`, `m`,
/// `h` or `d` (`"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"7d"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    duration_from_str(s)
        .map_err(|reason| format!("invalid duration {s:?}: {reason}; expected {DURATION_FORMAT}"))
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest
/// unit that keeps it exact (`"2m"`, `"90s"`, `"1500ms"`). Durations are
/// whole milliseconds; anything finer is rounded up, so that a non-zero
/// duration never prints as `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, per) in [("d", DAY_MS), ("h", HOUR_MS), ("m", MINUTE_MS), ("s", SECOND_MS)] {
        if ms.is_multiple_of(u128::from(per)) {
            return format!("{}{unit}", ms / u128::from(per));
        }
    }
    format!("{ms}ms")
}

/// Parses a size in bytes: a whole number, alone or followed by a unit:
/// `B`, `KiB`, `MiB`, `GiB` or `TiB` (`"65536"`, `"512KiB"`, `"64MiB"`).
/// Decimal units (`MB`) are refused rather than guessed at.
pub fn parse_size(s: &str) -> Result<u64, String> {
    size_from_str(s).map_err(|reason| format!("invalid size {s:?}: {reason}; expected {SIZE_FORMAT}"))
}

/// Writes a size the way [`parse_size`] reads it, in the largest unit that
/// keeps it exact (`"64MiB"`, `"1536KiB"`, `"1000"`).
pub fn format_size(bytes: u64) -> String {
    SIZE_UNITS
        .iter()
        .rev()
        .find(|(_, per)| *per > 1 && bytes != 0 && bytes.is_multiple_of(*per))
        .map_or_else(
            || bytes.to_string(),
            |(unit, per)| format!("{}{unit}", bytes / per),
        )
}

const SIZE_UNITS: [(&str, u64); 5] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

const SIZE_FORMAT: &str = "a whole number of bytes, alone or followed by KiB, MiB or GiB, \
                           such as \"64MiB\"";

/// The size in `s`, or why it is not one (a clause, without the value).
fn size_from_str(s: &str) -> Result<u64, String> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    if number.is_empty() {
        return Err("it does not start with a number".to_owned());
    }
    if unit.starts_with(['.', ',']) {
        return Err("fractions are not supported; use a smaller unit, as in \"1536KiB\"".to_owned());
    }
    let per = match SIZE_UNITS.iter().find(|(name, _)| *name == unit) {
        Some((_, per)) => *per,
        None if unit.is_empty() => 1,
        None => {
            let lower = unit.to_ascii_lowercase();
            let binary = match lower.trim_end_matches('b') {
                "k" | "ki" => Some("KiB"),
                "m" | "mi" => Some("MiB"),
                "g" | "gi" => Some("GiB"),
                "t" | "ti" => Some("TiB"),
                _ => None,
            };
            return Err(match binary {
                Some(binary) => {
                    format!("{unit:?} is not a unit; did you mean \"{binary}\" (powers of 1024)?")
                }
                None => format!("{unit:?} is not a unit"),
            });
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per))
        .ok_or_else(|| "it is too large".to_owned())
}

const SECOND_MS: u64 = 1000;
const MINUTE_MS: u64 = 60 * SECOND_MS;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

const DURATION_FORMAT: &str = "a whole number followed by ms, s, m, h or d, such as \"500ms\", \"30s\" or \"2m\", \
     or several from the largest unit down, such as \"1h30m\"";

/// The duration in `s`, or why it is not one (a clause, without the value):
/// one or more parts, each a whole number and a unit, the units from the
/// largest down and each at most once (`"1h30m"`, `"2d12h"`, `"1m500ms"`).
fn duration_from_str(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut previous: Option<(&str, u64)> = None;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        if number.is_empty() {
            return Err(match previous {
                None => "it does not start with a number".to_owned(),
                Some((unit, _)) => format!("{unit:?} is not a unit"),
            });
        }
        if after.is_empty() {
            return Err("it has no unit".to_owned());
        }
        if after.starts_with(['.', ',']) {
            return Err("fractions are not supported; use a smaller unit, as in \"1500ms\"".to_owned());
        }
        let letters = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, next) = after.split_at(letters);
        let per = match unit {
            "ms" => 1,
            "s" => SECOND_MS,
            "m" => MINUTE_MS,
            "h" => HOUR_MS,
            "d" => DAY_MS,
            _ => return Err(format!("{unit:?} is not a unit")),
        };
        if let Some((before, before_per)) = previous
            && per >= before_per
        {
            return Err(format!(
                "{unit:?} comes after {before:?}; write the units from the largest down, each once"
            ));
        }
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(per))
            .and_then(|ms| ms.checked_add(total))
            .ok_or_else(|| "it is too long".to_owned())?;
        previous = Some((unit, per));
        rest = next;
    }
    Ok(Duration::from_millis(total))
}

mod cookie_path;
mod cron;
pub mod lenient;
mod location;
mod read;
pub mod remote;
mod render;
#[cfg(test)]
mod tests;

pub use cookie_path::{REDACTED_COOKIE_PATH, looks_like_cookie_value, shown_cookie_path};
pub use location::{ConfigLocation, SYSTEM_CONFIG};
use read::{Reader, base_dir, invalid};
pub use remote::{RemoteConfig, RemoteCredentials, RemoteRetry};
use render::Rendered;
