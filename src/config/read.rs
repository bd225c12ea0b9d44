//! Reading the spanned TOML tree key by key, so every rejection can say
//! where it is and what is expected.

use super::*;

mod archive;
mod daemon;
mod log;
mod media;
mod notify;
mod remote;
mod serve;
mod sync;

use daemon::read_cron;
use sync::{read_refresh, read_sections};

// ---------------------------------------------------------------------------
// Reading the document tree
// ---------------------------------------------------------------------------

const TOP_KEYS: &[&str] = &[
    "service",
    "storage",
    "rate_limit",
    "sync",
    "discover",
    "daemon",
    "log",
    "archive",
    "notify",
    "metrics",
    "media",
    "personality",
    "remote",
    "serve",
];
/// How messages list the tables of [`TOP_KEYS`].
const TOP_TABLES: &str = "[service], [storage], [rate_limit], [sync], [discover], [daemon], [log], [archive], \
     [notify], [metrics], [media], [serve], [[personality]] and [[remote]]";
pub(super) const SERVE_KEYS: &[&str] = &["listen", "token_file"];
pub(super) const SERVICE_KEYS: &[&str] = &[
    "base_url",
    "allow_insecure_http",
    "jargon",
    "cookie_file",
    "cookie_env",
    "cookie",
    "cookie_name",
    "extra_cookies",
    "chat_page_size",
    "max_page_size",
    "timeout",
    "max_retries",
    "initial_backoff",
    "max_backoff",
    "user_agent",
];
pub(super) const STORAGE_KEYS: &[&str] = &["data_dir", "segment_size", "max_walk_spool"];
pub(super) const RATE_LIMIT_KEYS: &[&str] = &["requests_per_second", "burst"];
pub(super) const SYNC_KEYS: &[&str] = &["sections", "max_memory_pages", "tail_check", "refresh"];
pub(super) const DISCOVER_KEYS: &[&str] = &["owned", "recent", "max_personalities"];
pub(super) const DAEMON_KEYS: &[&str] = &[
    "schedule",
    "interval",
    "jitter",
    "workers",
    "run_on_start",
    "shutdown_timeout",
    "archive_schedule",
    "audit_schedule",
];
pub(super) const LOG_KEYS: &[&str] = &["dir", "max_files", "format", "level"];
pub(super) const ARCHIVE_KEYS: &[&str] = &[
    "dir",
    "compression_level",
    "skip_unchanged",
    "media",
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "age_recipients",
    "age_recipients_file",
];
pub(super) const NOTIFY_KEYS: &[&str] = &["on_failure", "on_recovery", "timeout", "ping_url"];
pub(super) const METRICS_KEYS: &[&str] = &["file", "group"];
pub(super) const PERSONALITY_KEYS: &[&str] =
    &["name", "sections", "schedule", "tail_check", "refresh", "media"];
pub(super) const MEDIA_KEYS: &[&str] = &[
    "attachments",
    "voice_replies",
    "avatars",
    "max_file_size",
    "max_bytes_per_run",
    "requests_per_second",
    "max_bytes_per_second",
];
pub(super) const REMOTE_KEYS: &[&str] = &[
    "name",
    "url",
    "endpoint",
    "region",
    "allow_insecure_http",
    "access_key_id_file",
    "secret_access_key_file",
    "access_key_id",
    "secret_access_key",
    "require_encryption",
    "concurrency",
    "bandwidth_limit",
    "max_retries",
    "initial_backoff",
    "max_backoff",
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
];
const COOKIE_KEYS: &[&str] = &["cookie_file", "cookie_env", "cookie"];

type Value<'i> = Spanned<DeValue<'i>>;

/// A rejection found while reading: where it is (a byte offset) and what
/// to tell the person.
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) at: usize,
    pub(super) message: String,
    /// An unknown key is reported before anything else: a misspelt key
    /// also makes the intended one look missing, and the misspelling is
    /// what the person must fix.
    pub(super) unknown_key: bool,
}

/// State of one read: the text (to name lines in messages), the directory
/// relative paths start from, and the problems found so far.
pub(super) struct Reader<'t> {
    pub(super) text: &'t str,
    pub(super) base_dir: PathBuf,
    pub(super) problems: Vec<Problem>,
}

/// One key of the file and its value, with the dotted name messages use.
struct Field<'a, 'i> {
    name: String,
    key_at: usize,
    value: &'a Value<'i>,
}

/// A table of the file being read.
struct Table<'a, 'i> {
    /// Prefix of key names in messages: `service` gives `service.timeout`.
    name: &'static str,
    /// How messages name the table itself: `[service]`.
    header: &'static str,
    /// Where the table starts: its header, or the first key of a dotted or
    /// inline table. Problems of the table as a whole point here.
    at: usize,
    table: &'a DeTable<'i>,
}

impl<'t> Reader<'t> {
    fn problem(&mut self, at: usize, message: String) {
        self.problems.push(Problem {
            at,
            message,
            unknown_key: false,
        });
    }

    /// The value of a check that passed; a failed one is recorded.
    fn keep<T>(&mut self, result: Result<T, Problem>) -> Option<T> {
        result.map_err(|problem| self.problems.push(problem)).ok()
    }

    fn line_of(&self, at: usize) -> usize {
        line_column(self.text, at).0
    }

    pub(super) fn config(&mut self, document: &DeTable<'_>, source: &Path) -> Option<Config> {
        let root = Table {
            name: "",
            header: "the top level",
            at: 0,
            table: document,
        };
        self.check_keys(&root, TOP_KEYS);
        let service = self.table(&root, "service", "[service]", true);
        let service = service.ok().flatten().and_then(|s| self.service(s));
        let storage = self.table(&root, "storage", "[storage]", true);
        let storage = storage.ok().flatten().and_then(|s| self.storage(s));
        let rate_limit = self.optional_table(&root, "rate_limit", "[rate_limit]", Self::rate_limit);
        let sync = self.optional_table(&root, "sync", "[sync]", Self::sync);
        let discover = self.optional_table(&root, "discover", "[discover]", Self::discover);
        let daemon = self.optional_table(&root, "daemon", "[daemon]", Self::daemon);
        let log = self.optional_table(&root, "log", "[log]", Self::log);
        let data_dir = storage.as_ref().map(|s| s.data_dir.as_path());
        let archive = match self.table(&root, "archive", "[archive]", false) {
            Ok(section) => self.archive(section, data_dir),
            Err(()) => None,
        };
        let notify = self.optional_table(&root, "notify", "[notify]", Self::notify);
        let metrics = match self.table(&root, "metrics", "[metrics]", false) {
            Ok(section) => self.metrics(section, data_dir),
            Err(()) => None,
        };
        let media = self.optional_table(&root, "media", "[media]", Self::media);
        let serve = match self.table(&root, "serve", "[serve]", false) {
            Ok(Some(section)) => self.serve(section),
            Ok(None) => Some(None),
            Err(()) => None,
        };
        let personalities = self.personalities(&root);
        let remotes = self.remotes(&root);
        Some(Config {
            service: service?,
            storage: storage?,
            rate_limit: rate_limit?,
            sync: sync?,
            discover: discover?,
            daemon: daemon?,
            log: log?,
            archive: archive?,
            notify: notify?,
            metrics: metrics?,
            media: media?,
            serve: serve?,
            personalities: personalities?,
            remotes: remotes?,
            source: source.to_owned(),
        })
    }

    /// The sub-table `key` of `parent`: `Ok(None)` if absent (a problem if
    /// `required`), `Err` (with a problem recorded) if not a table.
    fn table<'a, 'i>(
        &mut self,
        parent: &Table<'a, 'i>,
        key: &'static str,
        header: &'static str,
        required: bool,
    ) -> Result<Option<Table<'a, 'i>>, ()> {
        let Some(field) = parent.get(key) else {
            if required {
                let what = match key {
                    "service" => "which says where the service is and how to log in to it",
                    _ => "which says where backups are kept (data_dir)",
                };
                self.problem(parent.at, format!("missing table {header}, {what}"));
            }
            return Ok(None);
        };
        let Some(table) = field.value.get_ref().as_table() else {
            self.problem(
                field.at(),
                format!(
                    "{key} must be a table, written as a line {header} followed by its keys, \
                     got {}",
                    shown(field.value.get_ref())
                ),
            );
            return Err(());
        };
        let section = Table {
            name: key,
            header,
            at: field.at(),
            table,
        };
        Ok(Some(section))
    }

    /// The optional table `key` of `root` as `read` makes it, or its default
    /// when absent.
    fn optional_table<'a, 'i, T: Default>(
        &mut self,
        root: &Table<'a, 'i>,
        key: &'static str,
        header: &'static str,
        read: impl FnOnce(&mut Self, Table<'a, 'i>) -> Option<T>,
    ) -> Option<T> {
        match self.table(root, key, header, false) {
            Ok(Some(table)) => read(self, table),
            Ok(None) => Some(T::default()),
            Err(()) => None,
        }
    }

    /// Records a problem for each key of `section` not in `known`.
    fn check_keys(&mut self, section: &Table<'_, '_>, known: &[&str]) {
        for (key, value) in section.table.iter() {
            let key_text: &str = key.get_ref();
            if known.contains(&key_text) {
                continue;
            }
            let message = if section.name.is_empty() {
                let what = if value.get_ref().is_table() {
                    format!("unknown table [{key_text}]")
                } else {
                    format!("unknown key `{key_text}` at the top level")
                };
                format!("{what}; expected the tables {TOP_TABLES}")
            } else {
                format!(
                    "unknown key `{key_text}` in {}; expected one of {}",
                    section.header,
                    known.join(", ")
                )
            };
            self.problems.push(Problem {
                at: key.span().start,
                message,
                unknown_key: true,
            });
        }
    }

    /// The field `key` of `section`, or a problem saying it is missing.
    fn required<'a, 'i>(
        &mut self,
        section: &Table<'a, 'i>,
        key: &str,
        example: &str,
    ) -> Option<Field<'a, 'i>> {
        let field = section.get(key);
        if field.is_none() {
            self.problem(
                section.at,
                format!("missing key `{key}` in {}; {example}", section.header),
            );
        }
        field
    }

    /// The value of an optional field: `default` when absent, `None` (with
    /// a problem recorded) when present but invalid.
    fn optional<T>(
        &mut self,
        field: Option<Field<'_, '_>>,
        default: T,
        read: impl FnOnce(&Field<'_, '_>) -> Result<T, Problem>,
    ) -> Option<T> {
        match field {
            None => Some(default),
            Some(field) => {
                let result = read(&field);
                self.keep(result)
            }
        }
    }

    fn service(&mut self, section: Table<'_, '_>) -> Option<ServiceConfig> {
        self.check_keys(&section, SERVICE_KEYS);
        let base_url_field = self.required(
            &section,
            "base_url",
            "set it to the service's address, such as base_url = \"https://shapes.inc\"",
        );
        let allow_insecure_http = self.optional(section.get("allow_insecure_http"), false, |f| f.boolean());
        let base_url = base_url_field.and_then(|f| {
            let url = read_base_url(&f).and_then(|url| match allow_insecure_http {
                Some(false) if sends_in_clear(&url) => Err(f.reject(insecure_http_refusal(&f.name, &url))),
                _ => Ok(url),
            });
            self.keep(url)
        });
        let jargon = self
            .required(
                &section,
                "jargon",
                "set it to the word the service uses for a personality in its paths, \
                 such as jargon = \"shapes\"",
            )
            .and_then(|f| self.keep(read_jargon(&f)));
        let cookie = self.cookie_source(&section);
        let cookie_name = self.optional(
            section.get("cookie_name"),
            DEFAULT_COOKIE_NAME.to_owned(),
            read_cookie_name,
        );
        let extra_cookies = self.extra_cookies(&section, cookie_name.as_deref());
        let chat_page_size = self.optional(section.get("chat_page_size"), DEFAULT_CHAT_PAGE_SIZE, |f| {
            f.integer(1, MAX_CHAT_PAGE_SIZE)
        });
        let max_page_size = self.max_page_size(&section, chat_page_size);
        let timeout = self.optional(section.get("timeout"), DEFAULT_TIMEOUT, |f| f.duration());
        let max_retries = self.optional(section.get("max_retries"), DEFAULT_MAX_RETRIES, |f| {
            f.integer(0, MAX_MAX_RETRIES)
        });
        let initial_backoff = self.optional(section.get("initial_backoff"), DEFAULT_INITIAL_BACKOFF, |f| {
            f.duration()
        });
        let max_backoff = self.max_backoff(&section, initial_backoff);
        let user_agent = self.optional(
            section.get("user_agent"),
            DEFAULT_USER_AGENT.to_owned(),
            read_user_agent,
        );
        Some(ServiceConfig {
            base_url: base_url?,
            allow_insecure_http: allow_insecure_http?,
            jargon: jargon?,
            cookie: cookie?,
            cookie_name: cookie_name?,
            extra_cookies: extra_cookies?,
            chat_page_size: chat_page_size?,
            max_page_size: max_page_size?,
            timeout: timeout?,
            max_retries: max_retries?,
            initial_backoff: initial_backoff?,
            max_backoff: max_backoff?,
            user_agent: user_agent?,
        })
    }

    /// Exactly one of `cookie_file`, `cookie_env` and `cookie`.
    fn cookie_source(&mut self, section: &Table<'_, '_>) -> Option<CookieSource> {
        let mut given: Vec<Field<'_, '_>> = COOKIE_KEYS.iter().filter_map(|key| section.get(key)).collect();
        given.sort_by_key(|field| field.key_at);
        match given.as_slice() {
            [] => {
                self.problem(
                    section.at,
                    "[service] has no session cookie: set one of cookie_file (a file holding it), \
                     cookie_env (an environment variable holding it) or cookie (the cookie itself)"
                        .to_owned(),
                );
                None
            }
            [field] => {
                let result = match field.name.as_str() {
                    "service.cookie_file" => field.path(&self.base_dir).map(CookieSource::File),
                    "service.cookie_env" => read_cookie_env(field).map(CookieSource::Env),
                    _ => read_inline_cookie(field).map(CookieSource::Inline),
                };
                self.keep(result)
            }
            [first, second, ..] => {
                let message = format!(
                    "{} cannot be set together with {} (line {}); set exactly one of \
                     cookie_file, cookie_env or cookie",
                    second.name,
                    first.name,
                    self.line_of(first.key_at)
                );
                self.problem(second.key_at, message);
                None
            }
        }
    }

    fn extra_cookies(
        &mut self,
        section: &Table<'_, '_>,
        cookie_name: Option<&str>,
    ) -> Option<BTreeMap<String, String>> {
        let Some(field) = section.get("extra_cookies") else {
            return Some(BTreeMap::new());
        };
        let Some(table) = field.value.get_ref().as_table() else {
            let message = format!(
                "service.extra_cookies must be a table of cookie names and values, such as \
                 extra_cookies = {{ \"connect.sid\" = \"...\" }}, got {}",
                kind(field.value.get_ref())
            );
            self.problem(field.at(), message);
            return None;
        };
        let mut cookies = BTreeMap::new();
        let mut valid = true;
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            let name_problem = if !is_token(name) {
                Some(format!(
                    "service.extra_cookies: {name:?} is not a cookie name; a cookie name is \
                     made of letters, digits and !#$%&'*+-.^_`|~"
                ))
            } else if Some(name) == cookie_name {
                Some(format!(
                    "service.extra_cookies cannot set `{name}`: that is the session cookie \
                     (cookie_name), which comes from cookie_file, cookie_env or cookie"
                ))
            } else {
                None
            };
            if let Some(message) = name_problem {
                valid = false;
                self.problem(key.span().start, message);
            }
            // Never repeat the value: it is a credential.
            let value_problem = match value.get_ref().as_str() {
                Some(text) if is_cookie_value(text) => {
                    cookies.insert(name.to_owned(), text.to_owned());
                    None
                }
                Some(_) => Some(format!(
                    "service.extra_cookies: the value of `{name}` is not usable in a Cookie \
                     header; it must not contain control characters, line breaks or ';' \
                     (the value is not shown here)"
                )),
                None => Some(format!(
                    "service.extra_cookies: the value of `{name}` must be a string, got {}",
                    kind(value.get_ref())
                )),
            };
            if let Some(message) = value_problem {
                valid = false;
                self.problem(value.span().start, message);
            }
        }
        valid.then_some(cookies)
    }

    /// `max_page_size`, defaulting to the larger of 500 and `chat_page_size`.
    fn max_page_size(&mut self, section: &Table<'_, '_>, chat_page_size: Option<u32>) -> Option<u32> {
        let Some(field) = section.get("max_page_size") else {
            return chat_page_size.map(|chat| chat.max(DEFAULT_MAX_PAGE_SIZE));
        };
        let max = self.keep(field.integer(1, MAX_MAX_PAGE_SIZE))?;
        match chat_page_size {
            Some(chat) if max < chat => {
                let message = format!(
                    "service.max_page_size must be at least service.chat_page_size ({chat}), \
                     got {max}"
                );
                self.problem(field.at(), message);
                None
            }
            _ => Some(max),
        }
    }

    /// `max_backoff`, defaulting to the larger of 2m and `initial_backoff`.
    fn max_backoff(&mut self, section: &Table<'_, '_>, initial: Option<Duration>) -> Option<Duration> {
        let Some(field) = section.get("max_backoff") else {
            return initial.map(|initial| initial.max(DEFAULT_MAX_BACKOFF));
        };
        let max = self.keep(field.duration())?;
        match initial {
            Some(initial) if max < initial => {
                self.problem(
                    field.at(),
                    format!(
                        "service.max_backoff must be at least service.initial_backoff ({}), got {}",
                        format_duration(initial),
                        format_duration(max)
                    ),
                );
                None
            }
            _ => Some(max),
        }
    }

    fn storage(&mut self, section: Table<'_, '_>) -> Option<StorageConfig> {
        self.check_keys(&section, STORAGE_KEYS);
        let field = self.required(
            &section,
            "data_dir",
            "set it to the directory that holds the backups, \
             such as data_dir = \"/var/lib/chatkeep\"",
        )?;
        let data_dir = field.path(&self.base_dir);
        let data_dir = self.keep(data_dir);
        let segment_size = self.optional(section.get("segment_size"), DEFAULT_SEGMENT_SIZE, |f| {
            f.size(MIN_SEGMENT_SIZE)
        });
        let max_walk_spool = self.optional(section.get("max_walk_spool"), DEFAULT_MAX_WALK_SPOOL, |f| {
            f.size(MIN_MAX_WALK_SPOOL)
        });
        Some(StorageConfig {
            data_dir: data_dir?,
            segment_size: segment_size?,
            max_walk_spool: max_walk_spool?,
        })
    }

    fn rate_limit(&mut self, section: Table<'_, '_>) -> Option<RateLimitConfig> {
        self.check_keys(&section, RATE_LIMIT_KEYS);
        let requests_per_second = self.optional(
            section.get("requests_per_second"),
            DEFAULT_REQUESTS_PER_SECOND,
            |f| f.positive_number(),
        );
        let burst = self.optional(section.get("burst"), DEFAULT_BURST, |f| f.integer(1, u32::MAX));
        Some(RateLimitConfig {
            requests_per_second: requests_per_second?,
            burst: burst?,
        })
    }

    /// The `[[personality]]` blocks, checked for duplicates.
    fn personalities(&mut self, root: &Table<'_, '_>) -> Option<Vec<PersonalityConfig>> {
        let Some(field) = root.get("personality") else {
            return Some(Vec::new());
        };
        let Some(blocks) = field.value.get_ref().as_array() else {
            let message = if field.value.get_ref().is_table() {
                "personality must be written [[personality]], with double brackets, \
                 one block per personality"
                    .to_owned()
            } else {
                format!(
                    "personality must be a list of [[personality]] blocks, got {}",
                    shown(field.value.get_ref())
                )
            };
            self.problem(field.at(), message);
            return None;
        };
        let mut personalities = Vec::with_capacity(blocks.len());
        let mut seen: HashMap<String, (usize, String)> = HashMap::new();
        let mut valid = true;
        for block in blocks.iter() {
            let Some(table) = block.get_ref().as_table() else {
                valid = false;
                let message = format!(
                    "each personality must be a table with a name, such as \
                     {{ name = \"lilith\" }}, got {}",
                    shown(block.get_ref())
                );
                self.problem(block.span().start, message);
                continue;
            };
            let section = Table {
                name: "personality",
                header: "[[personality]]",
                at: block.span().start,
                table,
            };
            self.check_keys(&section, PERSONALITY_KEYS);
            // Read before the name, so that their problems are found even
            // when the name is missing or wrong.
            let sections = self.optional(section.get("sections"), None, |f| read_sections(f).map(Some));
            let schedule = self.optional(section.get("schedule"), None, |f| read_cron(f).map(Some));
            let tail_check = self.optional(section.get("tail_check"), None, |f| f.any_duration().map(Some));
            let refresh = self.optional(section.get("refresh"), None, |f| read_refresh(f).map(Some));
            let media = self.optional(section.get("media"), None, |f| media::read_kinds(f).map(Some));
            let Some(name_field) = self.required(
                &section,
                "name",
                "set it to the personality's slug, such as name = \"lilith\"",
            ) else {
                valid = false;
                continue;
            };
            let Some(name) = self.keep(read_slug(&name_field)) else {
                valid = false;
                continue;
            };
            // Case is ignored: on a case-insensitive file system two such
            // names would share one directory of the store.
            let folded = name.as_str().to_ascii_lowercase();
            if let Some((first_at, first_name)) = seen.get(&folded) {
                valid = false;
                let line = self.line_of(*first_at);
                let first = if *first_name == name.as_str() {
                    format!("line {line}")
                } else {
                    format!("line {line} as `{first_name}`, and names are compared ignoring case")
                };
                let message = format!(
                    "personality `{name}` is listed twice: it is already at {first}; \
                     list each personality once"
                );
                self.problem(name_field.at(), message);
                continue;
            }
            seen.insert(folded, (name_field.at(), name.as_str().to_owned()));
            let (Some(sections), Some(schedule), Some(tail_check), Some(refresh), Some(media)) =
                (sections, schedule, tail_check, refresh, media)
            else {
                valid = false;
                continue;
            };
            personalities.push(PersonalityConfig {
                name,
                sections,
                schedule,
                tail_check,
                refresh,
                media,
            });
        }
        valid.then_some(personalities)
    }
}

impl<'a, 'i> Table<'a, 'i> {
    fn get(&self, key: &str) -> Option<Field<'a, 'i>> {
        let (key_span, value) = self.table.get_key_value(key)?;
        Some(Field {
            name: format!("{}.{key}", self.name),
            key_at: key_span.span().start,
            value,
        })
    }
}

impl Field<'_, '_> {
    /// Where the value starts.
    fn at(&self) -> usize {
        self.value.span().start
    }

    fn reject(&self, message: String) -> Problem {
        self.reject_at(self.at(), message)
    }

    /// A problem with a part of the value, such as one item of an array.
    fn reject_at(&self, at: usize, message: String) -> Problem {
        Problem {
            at,
            message,
            unknown_key: false,
        }
    }

    /// "`name` must be `expected`, got `the value`".
    fn expected(&self, expected: &str) -> Problem {
        let got = shown(self.value.get_ref());
        self.reject(format!("{} must be {expected}, got {got}", self.name))
    }

    fn string(&self, expected: &str) -> Result<&str, Problem> {
        self.value
            .get_ref()
            .as_str()
            .ok_or_else(|| self.expected(expected))
    }

    fn integer(&self, min: u32, max: u32) -> Result<u32, Problem> {
        let expected = if max == u32::MAX {
            format!("a whole number of at least {min}")
        } else {
            format!("a whole number from {min} to {max}")
        };
        let Some(integer) = self.value.get_ref().as_integer() else {
            return Err(self.expected(&expected));
        };
        i128::from_str_radix(integer.as_str(), integer.radix())
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| self.expected(&expected))
    }

    fn boolean(&self) -> Result<bool, Problem> {
        match self.value.get_ref() {
            DeValue::Boolean(boolean) => Ok(*boolean),
            _ => Err(self.expected("true or false")),
        }
    }

    fn positive_number(&self) -> Result<f64, Problem> {
        const EXPECTED: &str = "a number greater than 0";
        let number = match self.value.get_ref() {
            DeValue::Integer(integer) => i128::from_str_radix(integer.as_str(), integer.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(float) => float.as_str().parse::<f64>().ok(),
            _ => None,
        };
        number
            .filter(|n| n.is_finite() && *n > 0.0)
            .ok_or_else(|| self.expected(EXPECTED))
    }

    /// A duration longer than zero.
    fn duration(&self) -> Result<Duration, Problem> {
        let duration = self.any_duration()?;
        if duration.is_zero() {
            return Err(self.reject(format!("{} must be longer than 0s", self.name)));
        }
        Ok(duration)
    }

    /// A duration, zero included.
    fn any_duration(&self) -> Result<Duration, Problem> {
        let expected = format!("a duration, {DURATION_FORMAT}");
        let text = self.string(&expected)?;
        duration_from_str(text).map_err(|reason| {
            let got = shown(self.value.get_ref());
            self.reject(format!("{} must be {expected}; got {got}: {reason}", self.name))
        })
    }

    /// A size in bytes of at least `min`: a whole number of bytes, or a
    /// string as [`parse_size`] reads it.
    fn size(&self, min: u64) -> Result<u64, Problem> {
        let expected = format!("a size of at least {}: {SIZE_FORMAT}", format_size(min));
        let size = match self.value.get_ref() {
            DeValue::Integer(integer) => i128::from_str_radix(integer.as_str(), integer.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| self.expected(&expected))?,
            DeValue::String(text) => size_from_str(text).map_err(|reason| {
                let got = shown(self.value.get_ref());
                self.reject(format!("{} must be {expected}; got {got}: {reason}", self.name))
            })?,
            _ => return Err(self.expected(&expected)),
        };
        if size < min {
            return Err(self.expected(&expected));
        }
        Ok(size)
    }

    /// A path, resolved against `base_dir` when relative.
    fn path(&self, base_dir: &Path) -> Result<PathBuf, Problem> {
        let text = self.string("a path")?;
        if text.is_empty() {
            return Err(self.reject(format!("{} must be a path, got an empty string", self.name)));
        }
        if text.contains('\0') {
            return Err(self.reject(format!(
                "{} must be a path, and a path cannot contain a NUL character",
                self.name
            )));
        }
        if text == "~" || text.starts_with("~/") {
            return Err(self.reject(format!(
                "{} starts with `~`, which is not expanded here; write the full path",
                self.name
            )));
        }
        Ok(resolve(base_dir, Path::new(text)))
    }
}

// ---------------------------------------------------------------------------
// Checks of single values
// ---------------------------------------------------------------------------

fn read_base_url(field: &Field<'_, '_>) -> Result<String, Problem> {
    const EXPECTED: &str = "the service's address: http:// or https://, a host and \
                            an optional port, no path, such as \"https://shapes.inc\"";
    let text = field.string(EXPECTED)?;
    let lower = text.to_ascii_lowercase();
    let Some(scheme) = ["https://", "http://"].into_iter().find(|s| lower.starts_with(s)) else {
        return Err(field.expected(EXPECTED));
    };
    let authority = &text[scheme.len()..];
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains('@') {
        // Whatever precedes '@' may be a password: do not repeat the value.
        return Err(field.reject(format!(
            "{} must not contain a user name or password (the value is not shown here); \
             expected {EXPECTED}",
            field.name
        )));
    }
    let reason = if authority.is_empty() {
        Some("it has no host".to_owned())
    } else if authority.contains(['/', '?', '#']) {
        Some(
            "it has a path, query or fragment after the host; \
             the API is found under {base_url}/api by itself"
                .to_owned(),
        )
    } else {
        authority_problem(authority)
    };
    match reason {
        Some(reason) => Err(field.reject(format!(
            "{} must be {EXPECTED}; got {}: {reason}",
            field.name,
            shown(field.value.get_ref())
        ))),
        None => Ok(format!("{scheme}{authority}")),
    }
}

/// Whether requests to `base_url` (as [`read_base_url`] makes it) would
/// carry the cookie unencrypted across a network: `http://` to a host that
/// is not this machine. Loopback is `localhost`, `127.0.0.0/8` and `::1`
/// written as such; any other spelling (`127.1`, a name that resolves to
/// 127.0.0.1) counts as remote, which errs on the safe side.
pub(super) fn sends_in_clear(base_url: &str) -> bool {
    let Some(authority) = base_url
        .get(.."http://".len())
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|scheme| &base_url[scheme.len()..])
    else {
        return false;
    };
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => authority.split(':').next().unwrap_or(authority),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
        || host
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    !loopback
}

/// Why an `http://` base_url to another machine is refused, and what to do.
fn insecure_http_refusal(name: &str, url: &str) -> String {
    format!(
        "{name} is {url:?}: plain http:// to a host that is not this machine, so the session cookie \
         (and the chat history) would travel unencrypted, readable by anyone on the way; use https://, \
         or, only for a service reached over a network you trust, set allow_insecure_http = true in \
         [service]"
    )
}

/// Why `host[:port]` is not one, if it is not.
fn authority_problem(authority: &str) -> Option<String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Some("an IPv6 address in [ ] is not closed".to_owned());
        };
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Some("the IPv6 address in [ ] is not valid".to_owned());
        }
        if after.is_empty() {
            return None;
        }
        let Some(port) = after.strip_prefix(':') else {
            return Some("only a port may follow the IPv6 address".to_owned());
        };
        (None, Some(port))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Some("it has no host".to_owned());
        }
        if let Some(bad) = host
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Some(format!("{bad:?} cannot appear in a host name"));
        }
    }
    match port {
        Some(port)
            if !port.bytes().all(|b| b.is_ascii_digit()) || !matches!(port.parse::<u16>(), Ok(1..)) =>
        {
            Some("the port must be a number from 1 to 65535".to_owned())
        }
        _ => None,
    }
}

fn read_jargon(field: &Field<'_, '_>) -> Result<String, Problem> {
    const EXPECTED: &str = "the word the service uses for a personality in its paths, \
                            in lowercase letters, digits, '_' and '-', such as \"shapes\"";
    let text = field.string(EXPECTED)?;
    let valid = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(field.expected(EXPECTED))
    }
}

fn read_cookie_name(field: &Field<'_, '_>) -> Result<String, Problem> {
    const EXPECTED: &str = "a cookie name (letters, digits and !#$%&'*+-.^_`|~), such as \
                            \"__Secure-better-auth.session_token\" or \"appSession\"";
    let text = field.string(EXPECTED)?;
    if is_token(text) {
        Ok(text.to_owned())
    } else {
        Err(field.expected(EXPECTED))
    }
}

/// The name of an environment variable. The value is never repeated in a
/// message: a person may have pasted the cookie itself here by mistake.
fn read_cookie_env(field: &Field<'_, '_>) -> Result<String, Problem> {
    let valid_name = |s: &str| {
        s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    match field.value.get_ref().as_str() {
        Some(text) if valid_name(text) => Ok(text.to_owned()),
        _ => Err(field.reject(format!(
            "{} must be the name of an environment variable holding the cookie (letters, \
             digits and '_', not starting with a digit), such as \"CHATKEEP_COOKIE\"; the \
             value given is not one, and is not shown here in case it is the cookie itself",
            field.name
        ))),
    }
}

/// The inline cookie. The value is never repeated in a message.
fn read_inline_cookie(field: &Field<'_, '_>) -> Result<Secret, Problem> {
    match field.value.get_ref().as_str() {
        Some(text) if !text.trim().is_empty() && !text.chars().any(char::is_control) => Ok(Secret::new(text)),
        _ => Err(field.reject(format!(
            "{} must be the session cookie as a non-empty string without control characters or \
             line breaks (got {}; the value is not shown here)",
            field.name,
            kind(field.value.get_ref())
        ))),
    }
}

fn read_user_agent(field: &Field<'_, '_>) -> Result<String, Problem> {
    const EXPECTED: &str = "a non-empty string without control characters";
    let text = field.string(EXPECTED)?;
    if text.trim().is_empty() || text.chars().any(char::is_control) {
        return Err(field.expected(EXPECTED));
    }
    Ok(text.to_owned())
}

fn read_slug(field: &Field<'_, '_>) -> Result<PersonalitySlug, Problem> {
    let text = field.string("the personality's slug as in its URL, such as \"lilith\"")?;
    text.parse().map_err(|err: SlugError| {
        let got = shown(field.value.get_ref());
        field.reject(format!(
            "{} must be the personality's slug as in its URL, got {got}: {err}",
            field.name
        ))
    })
}

/// An RFC 6265 cookie name (an RFC 2616 token).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A cookie value that can be sent verbatim without breaking the header.
fn is_cookie_value(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || c == ';')
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// How a value is shown after "got": strings quoted and cut short, other
/// scalars as written, arrays and tables by kind.
fn shown(value: &DeValue<'_>) -> String {
    const MAX_CHARS: usize = 60;
    match value {
        DeValue::String(text) if text.chars().count() > MAX_CHARS => {
            let cut: String = text.chars().take(MAX_CHARS).collect();
            format!("{cut:?}...")
        }
        DeValue::String(text) => format!("{text:?}"),
        DeValue::Integer(integer) => integer.to_string(),
        DeValue::Float(float) => float.to_string(),
        DeValue::Boolean(boolean) => boolean.to_string(),
        DeValue::Datetime(datetime) => datetime.to_string(),
        DeValue::Array(_) | DeValue::Table(_) => kind(value).to_owned(),
    }
}

/// What kind of value this is, for messages that must not show it.
fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The directory relative paths in the file at `source` start from.
pub(super) fn base_dir(source: &Path) -> PathBuf {
    let dir = source.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

/// `path` if absolute, else `base_dir/path`, without `.` components.
/// `..` is kept: removing it without looking at the disk would be wrong
/// across symbolic links.
pub(super) fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    let joined = base_dir.join(path);
    let mut resolved = PathBuf::new();
    for component in joined.components() {
        if component != Component::CurDir {
            resolved.push(component);
        }
    }
    resolved
}

/// 1-based line and column of byte offset `at`; the column counts
/// characters. An offset past the end is taken as the end.
pub(super) fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = text.get(..at).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |line| line.chars().count()) + 1;
    (line, column)
}

pub(super) fn invalid(path: &Path, text: &str, at: usize, message: String) -> ConfigError {
    let (line, column) = line_column(text, at);
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}
