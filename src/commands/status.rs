//! `chatkeep status`: a table (or one JSON document) of each personality's
//! last sync and next run, read from the status files (and an unfinished
//! walk's spool) alone: no network and no lock, so it works beside a
//! running daemon. Its exit code makes it a health check: 0 when every
//! configured personality's last sync ended ok (or was interrupted by a
//! shutdown, and the one before it ended ok).
//!
//! It does not need a valid config: after a bad edit (which a running
//! daemon refuses on reload, keeping the config it has), `status` says the
//! file is invalid and reports all the same, from the data directory given
//! with `--data-dir` or read leniently from the file (see [`Sources`]).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Fatal, exit};
use crate::config::lenient::Hints;
use crate::config::{ConfigError, ConfigLocation};
use crate::status::{DaemonPersonality, DaemonStatus, Outcome, PersonalityStatus, is_reserved_name};
use crate::store::personality_dir;

/// Prints the status of the configured personalities, and of any other
/// personality directory in the data directory that has a status file.
/// `data_dir`, from `--data-dir`, replaces the config's.
pub fn run(location: &ConfigLocation, data_dir: Option<&Path>, json: bool) -> Result<ExitCode, Fatal> {
    let sources = Sources::find(location, data_dir)?;
    let report = Report::collect(sources, Utc::now())?;
    let text = if json {
        if let Some(problem) = &report.config_error {
            eprintln!("warning: {}", crate::escape::controls(&problem.sentence()));
        }
        let mut text = serde_json::to_string_pretty(&report)
            .map_err(|e| Fatal::usage(format!("cannot render the status as JSON: {e}")))?;
        text.push('\n');
        text
    } else {
        let colour =
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        report.render(colour)
    };
    // A reader that stops early (`| head -1`) is not a failure of the check.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            return Err(Fatal {
                code: exit::FAILED,
                message: format!("cannot write the status: {e}"),
            });
        }
    }
    Ok(if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

/// Where `status` reads, and which personalities count in its exit code.
///
/// With a valid config: its data directory (or `--data-dir`), its archive
/// directory and its personalities. With a config that cannot be loaded:
/// the data directory from `--data-dir`, else `[storage] data_dir` read
/// from the file as far as it parses ([`Hints`]); the personalities counted
/// are those the file still names, and those a running daemon schedules
/// (it keeps the config it last loaded). Without either directory, `status`
/// fails as before (exit 2), saying to pass `--data-dir`.
#[derive(Debug)]
pub struct Sources {
    pub data_dir: PathBuf,
    /// Where the snapshots are, if known.
    pub archive_dir: Option<PathBuf>,
    pub configured: Vec<String>,
    /// The configured remotes' names (none known without a valid config;
    /// those with a record are shown all the same).
    pub remotes: Vec<String>,
    /// Why the config could not be loaded, if it could not.
    pub config_error: Option<ConfigProblem>,
}

/// A config file `status` reported without.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigProblem {
    pub path: PathBuf,
    /// Where in the file (1-based; the column counts characters), when the
    /// file was read.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// How the data directory was found without it: `--data-dir`, or
    /// `[storage] data_dir` read from the file as far as it parses.
    pub data_dir_from: String,
}

impl ConfigProblem {
    fn sentence(&self) -> String {
        let at = match (self.line, self.column) {
            (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
            _ => String::new(),
        };
        format!(
            "the config file {} is invalid{at}: {}\n  this status is read from the data directory \
             given by {}; a running daemon keeps the config it last loaded. Fix the file, then \
             check it with `chatkeep check-config`.",
            self.path.display(),
            self.message,
            self.data_dir_from
        )
    }
}

impl Sources {
    /// Loads the config at `location` if it is valid; else finds the
    /// data directory without it (see [`Sources`]).
    pub fn find(location: &ConfigLocation, data_dir: Option<&Path>) -> Result<Sources, Fatal> {
        let config_path = &location.path;
        let error = match location.load() {
            Ok(config) => {
                return Ok(Sources {
                    data_dir: data_dir.map_or_else(|| config.storage.data_dir.clone(), Path::to_owned),
                    archive_dir: Some(config.archive.dir.clone()),
                    configured: config.personalities.iter().map(|p| p.name.to_string()).collect(),
                    remotes: config.remotes.iter().map(|r| r.name.clone()).collect(),
                    config_error: None,
                });
            }
            Err(e) => e,
        };
        let hints = match &error {
            ConfigError::Invalid { .. } => std::fs::read(config_path)
                .map(|bytes| Hints::read(&String::from_utf8_lossy(&bytes), config_path))
                .unwrap_or_default(),
            ConfigError::Read { .. } | ConfigError::NotFound { .. } => Hints::default(),
        };
        let (line, column, message) = match &error {
            ConfigError::Invalid {
                line,
                column,
                message,
                ..
            } => (Some(*line), Some(*column), message.clone()),
            ConfigError::Read { source, .. } => (None, None, format!("cannot read it: {source}")),
            // Terse: with --data-dir, no config may be the plan.
            ConfigError::NotFound { searched } => {
                let looked: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
                (
                    None,
                    None,
                    format!("there is none (looked for {})", looked.join(", then ")),
                )
            }
        };
        let (data_dir, from) = match (data_dir, &hints.data_dir) {
            (Some(dir), _) => (dir.to_owned(), "--data-dir".to_owned()),
            (None, Some(dir)) => (
                dir.clone(),
                "its [storage] data_dir, read from the file as far as it parses".to_owned(),
            ),
            (None, None) => {
                return Err(Fatal::usage(format!(
                    "{error}; `chatkeep status --data-dir DIR` reports from the data directory DIR \
                     without a valid config"
                )));
            }
        };
        Ok(Sources {
            archive_dir: hints.archive_dir(),
            configured: hints.personalities.iter().map(|p| p.to_string()).collect(),
            remotes: Vec::new(),
            config_error: Some(ConfigProblem {
                path: config_path.to_owned(),
                line,
                column,
                message,
                data_dir_from: from,
            }),
            data_dir,
        })
    }
}

/// Everything `chatkeep status` shows; serialised as is for `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When the report was made; ages are relative to it.
    pub now: DateTime<Utc>,
    pub data_dir: PathBuf,
    /// Every configured personality is healthy ([`Entry::healthy`]).
    /// Backups no longer in the config are shown but do not count: nothing
    /// would ever fix their last outcome.
    pub healthy: bool,
    /// The daemon, if it has ever written its status file here.
    pub daemon: Option<DaemonInfo>,
    pub personalities: Vec<Entry>,
    /// Each remote: the configured ones, and any other with a record.
    pub remotes: Vec<RemoteEntry>,
    /// The config file could not be loaded; the report is read without it.
    pub config_error: Option<ConfigProblem>,
}

/// The daemon status file's header, and whether its process is alive.
#[derive(Debug, Serialize)]
pub struct DaemonInfo {
    pub running: bool,
    pub pid: u32,
    pub version: String,
    pub started: DateTime<Utc>,
    pub config: PathBuf,
    pub updated: DateTime<Utc>,
}

/// What the last pushes to one `[[remote]]` came to.
#[derive(Debug, Serialize)]
pub struct RemoteEntry {
    pub name: String,
    #[serde(flatten)]
    pub status: crate::remote::status::RemoteStatus,
}

/// One personality's row.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub name: String,
    /// In the config; otherwise a backup left from an earlier config.
    pub configured: bool,
    /// The last sync ended ok, or was interrupted by a shutdown and the
    /// last one that finished ended ok (or none has finished yet).
    pub healthy: bool,
    /// How the last sync ended; none if it never ran or its status file is
    /// unreadable.
    pub outcome: Option<Outcome>,
    /// When the last sync was interrupted: how the last one that was not
    /// ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_outcome: Option<Outcome>,
    /// The last sync's first error, or why there is no outcome.
    pub error: Option<String>,
    pub last_started: Option<DateTime<Utc>>,
    /// When the last sync finished.
    pub last_run: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// Chat messages stored.
    pub messages: Option<u64>,
    /// A chat walk under way, or interrupted and waiting for the next sync:
    /// the messages it has fetched that are not stored yet (not counted in
    /// `messages`).
    pub spooled: Option<u64>,
    /// Chat messages the last sync added.
    pub new_last_run: Option<u64>,
    /// HTTP requests the last sync made.
    pub requests_last_run: Option<u64>,
    /// A sync runs now (only known while the daemon runs).
    pub running: bool,
    /// The next scheduled sync (only known while the daemon runs).
    pub next_run: Option<DateTime<Utc>>,
    /// A pending retry of a failed sync (only known while the daemon runs).
    pub retry_at: Option<DateTime<Utc>>,
    /// The newest snapshot, if any.
    pub last_archive: Option<DateTime<Utc>>,
    /// When a walk last confirmed where the chat history begins (none: not
    /// confirmed), and when the history below the oldest message was last
    /// probed, as of the last sync.
    pub beginning_confirmed_at: Option<DateTime<Utc>>,
    pub tail_probed_at: Option<DateTime<Utc>>,
    /// Stored messages that changed upstream (every version kept), and
    /// stored messages the service no longer returns (kept, marked).
    pub revised: Option<u64>,
    pub deleted_upstream: Option<u64>,
    /// The media of its messages and profile by state, as of the last sync
    /// that looked at them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::media::MediaTotals>,
    #[serde(skip)]
    unreadable: bool,
}

impl Report {
    /// Reads the status files under the data directory of `sources`.
    pub fn collect(sources: Sources, now: DateTime<Utc>) -> Result<Report, Fatal> {
        let Sources {
            data_dir,
            archive_dir,
            mut configured,
            remotes: configured_remotes,
            config_error,
        } = sources;
        let mut recorded = archive_dir
            .as_deref()
            .map(crate::remote::status::read)
            .unwrap_or_default();
        let mut remotes: Vec<RemoteEntry> = configured_remotes
            .iter()
            .map(|name| RemoteEntry {
                name: name.clone(),
                status: recorded.remove(name).unwrap_or_default(),
            })
            .collect();
        remotes.extend(
            recorded
                .into_iter()
                .map(|(name, status)| RemoteEntry { name, status }),
        );
        let daemon = DaemonStatus::read(&data_dir);
        let alive = daemon.as_ref().is_some_and(DaemonStatus::is_alive);
        let schedule = |name: &str| {
            daemon
                .as_ref()
                .filter(|_| alive)
                .and_then(|d| d.personalities.get(name).cloned())
                .unwrap_or_default()
        };
        // Without a valid config, what the running daemon schedules is the
        // config in force.
        if let Some(d) = daemon.as_ref().filter(|_| alive && config_error.is_some()) {
            for name in d.personalities.keys() {
                if !configured.contains(name) {
                    configured.push(name.clone());
                }
            }
        }
        let archives = archive_dir.as_deref();
        let mut personalities: Vec<Entry> = configured
            .iter()
            .map(|name| Entry::read(archives, &data_dir, name, true, schedule(name)))
            .collect();
        for name in unconfigured_backups(&data_dir, &configured)? {
            let sched = schedule(&name);
            personalities.push(Entry::read(archives, &data_dir, &name, false, sched));
        }
        Ok(Report {
            now,
            healthy: personalities.iter().filter(|e| e.configured).all(|e| e.healthy),
            data_dir,
            daemon: daemon.map(|d| DaemonInfo {
                running: alive,
                pid: d.pid,
                version: d.version,
                started: d.started,
                config: d.config,
                updated: d.updated,
            }),
            personalities,
            remotes,
            config_error,
        })
    }
}

/// Directories in the data directory that are not configured personalities
/// but hold a status file, sorted by name. A missing data directory holds
/// none; one that cannot be read is an error.
fn unconfigured_backups(data_dir: &Path, configured: &[String]) -> Result<Vec<String>, Fatal> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Fatal::usage(format!(
                "cannot read the data directory {}: {e}",
                data_dir.display()
            )));
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !configured.contains(name))
        // Hidden files, the lock and temporary files are not personalities;
        // `status.json` is a directory only if a personality has that name.
        .filter(|name| personality_dir(data_dir, name).is_ok_and(|d| d.path().join(STATUS_FILE).is_file()))
        .collect();
    names.sort();
    Ok(names)
}

const STATUS_FILE: &str = "status.json";

/// `media: 40 stored, 2 pending, 1 failed (retried later), 3 gone upstream, 1 refused`.
fn media_text(media: &crate::media::MediaTotals) -> String {
    let mut text = format!("media: {} stored", media.fetched);
    for (n, label) in [
        (media.pending, "pending"),
        (media.failed, "failed (retried later)"),
        (media.gone, "gone upstream"),
        (media.refused, "refused (too large, or not a public address)"),
    ] {
        if n > 0 {
            text.push_str(&format!(", {n} {label}"));
        }
    }
    text
}

impl Entry {
    fn read(
        archive_root: Option<&Path>,
        data_dir: &Path,
        name: &str,
        configured: bool,
        schedule: DaemonPersonality,
    ) -> Entry {
        let dir = personality_dir(data_dir, name);
        // The newest snapshot in the personality's manifest, if any.
        let last_archive = archive_root
            .and_then(|root| personality_dir(root, name).ok())
            .and_then(|d| crate::archive::manifest::Manifest::load(d.path(), name).ok())
            .and_then(|m| m.newest().map(|e| e.time));
        let status = dir.as_ref().ok().and_then(PersonalityStatus::read);
        // A file that exists but does not parse is not "never ran".
        let unreadable = status.is_none() && dir.as_ref().is_ok_and(|d| d.path().join(STATUS_FILE).exists());
        let error = match &status {
            Some(s) => s.error.clone(),
            None if unreadable => Some(format!(
                "the status file {} cannot be read",
                data_dir.join(name).join(STATUS_FILE).display()
            )),
            None => None,
        };
        let chat = status.as_ref().and_then(|s| s.chat.as_ref());
        // Read from the walk's spool, not the status file: it also counts a
        // walk running now or one a crash cut short.
        let spooled = dir
            .as_ref()
            .ok()
            .and_then(|d| crate::store::ChatStore::open_read_only(d.path()).ok())
            .and_then(|chat| chat.walk_in_progress().ok().flatten())
            .map(|walk| walk.spooled);
        Entry {
            name: name.to_owned(),
            configured,
            healthy: status.as_ref().is_some_and(PersonalityStatus::healthy),
            outcome: status.as_ref().map(|s| s.outcome),
            previous_outcome: status.as_ref().and_then(|s| s.previous_outcome),
            error,
            last_started: status.as_ref().map(|s| s.last_started),
            last_run: status.as_ref().map(|s| s.last_finished),
            last_success: status.as_ref().and_then(|s| s.last_success),
            messages: chat.map(|c| c.total),
            spooled,
            new_last_run: chat.map(|c| c.new),
            requests_last_run: status.as_ref().map(|s| s.requests),
            running: schedule.running,
            next_run: schedule.next_run,
            retry_at: schedule.retry_at,
            last_archive,
            beginning_confirmed_at: chat.and_then(|c| parse_time(c.beginning_confirmed_at.as_deref())),
            tail_probed_at: chat.and_then(|c| parse_time(c.tail_probed_at.as_deref())),
            revised: chat.map(|c| c.revised),
            deleted_upstream: chat.map(|c| c.deleted_upstream),
            media: status.as_ref().and_then(|s| s.media.clone()),
            unreadable,
        }
    }

    /// What the backup knows of the history beyond its count, or nothing
    /// before the first sync.
    fn history_text(&self, now: DateTime<Utc>) -> Option<String> {
        self.messages?;
        let mut text = match self.beginning_confirmed_at {
            Some(at) => format!("beginning of history confirmed {}", when(at, now)),
            None => "beginning of history not confirmed yet".to_owned(),
        };
        if let Some(at) = self.tail_probed_at {
            text.push_str(&format!(
                ", last probed below the oldest message {}",
                when(at, now)
            ));
        }
        let revised = self.revised.unwrap_or(0);
        let deleted = self.deleted_upstream.unwrap_or(0);
        if revised > 0 || deleted > 0 {
            text.push_str(&format!(
                "; {revised} changed upstream (every version kept), {deleted} gone upstream (kept, marked)"
            ));
        }
        Some(text)
    }

    /// What a chat walk that is not committed yet has fetched: a first
    /// backup shows 0 messages until its walk ends.
    fn walk_text(&self) -> Option<String> {
        let spooled = self.spooled.filter(|n| *n > 0)?;
        Some(if self.running {
            format!("fetching the chat history: {spooled} messages fetched so far, stored when the walk ends")
        } else {
            format!(
                "the chat history is still being fetched: {spooled} messages fetched, not stored yet \
                 (the next sync resumes the walk and stores them)"
            )
        })
    }

    fn outcome_text(&self) -> &'static str {
        match self.outcome {
            Some(o) => o.as_str(),
            None if self.unreadable => "unreadable",
            None => "never run",
        }
    }

    /// The next run, or a pending retry if it comes first.
    fn next_text(&self, now: DateTime<Utc>, daemon_running: bool) -> String {
        if !daemon_running {
            return DASH.to_owned();
        }
        if self.running {
            return "running now".to_owned();
        }
        match (self.retry_at, self.next_run) {
            (Some(retry), next) if next.is_none_or(|n| retry < n) => format!("retry {}", when(retry, now)),
            (_, Some(next)) => when(next, now),
            _ => DASH.to_owned(),
        }
    }
}

const DASH: &str = "—";

/// An RFC 3339 time from a status file.
fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text?.parse().ok()
}

impl Report {
    /// The table, then a line per problem, then the daemon's state.
    pub fn render(&self, colour: bool) -> String {
        if self.personalities.is_empty() {
            return format!(
                "{}no personality is configured and {} holds no backup\n",
                self.config_line(),
                self.data_dir.display()
            );
        }
        let daemon_running = self.daemon.as_ref().is_some_and(|d| d.running);
        let mut rows = vec![
            [
                "PERSONALITY",
                "LAST RUN (UTC)",
                "OUTCOME",
                "MESSAGES",
                "NEW",
                "NEXT RUN (UTC)",
                "LAST ARCHIVE",
            ]
            .map(str::to_owned),
        ];
        for e in &self.personalities {
            let number = |n: Option<u64>| n.map_or(DASH.to_owned(), |n| n.to_string());
            rows.push([
                e.name.clone(),
                e.last_run.map_or("never".to_owned(), |t| when(t, self.now)),
                e.outcome_text().to_owned(),
                number(e.messages),
                number(e.new_last_run),
                e.next_text(self.now, daemon_running),
                e.last_archive.map_or(DASH.to_owned(), |t| when(t, self.now)),
            ]);
        }
        let mut out = self.config_line();
        out.push_str(&table(&rows, colour));
        out.push('\n');
        out.push_str(&self.notes());
        out.push_str(&self.remote_lines());
        out.push_str(&self.daemon_line());
        out
    }

    /// A line per remote: its last successful upload and what it holds,
    /// and its last failure when that is newer.
    fn remote_lines(&self) -> String {
        let mut out = String::new();
        for r in &self.remotes {
            let s = &r.status;
            let mut line = match (s.last_success, s.snapshots) {
                (Some(at), snapshots) => format!(
                    "remote `{}`: last upload {}, {} there",
                    r.name,
                    when(at, self.now),
                    crate::words::count(snapshots.unwrap_or(0), "snapshot")
                ),
                (None, _) => format!("remote `{}`: no upload yet", r.name),
            };
            if let (true, Some(at), Some(error)) = (s.failing(), s.last_failure, &s.last_error) {
                line.push_str(&format!(
                    "; last failed {}: {}",
                    when(at, self.now),
                    crate::escape::controls(error)
                ));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// First of all, that the config file is invalid, if it is.
    fn config_line(&self) -> String {
        match &self.config_error {
            Some(problem) => format!("warning: {}\n\n", crate::escape::controls(&problem.sentence())),
            None => String::new(),
        }
    }

    fn notes(&self) -> String {
        let mut out = String::new();
        for e in &self.personalities {
            if let Some(history) = e.history_text(self.now) {
                out.push_str(&format!("{}: {history}\n", e.name));
            }
            if let Some(walk) = e.walk_text() {
                out.push_str(&format!("{}: {walk}\n", e.name));
            }
            if let Some(media) = &e.media {
                out.push_str(&format!("{}: {}\n", e.name, media_text(media)));
            }
            if let Some(error) = &e.error {
                let error = crate::escape::controls(error);
                out.push_str(&format!("{}: {}: {error}\n", e.name, e.outcome_text()));
            }
            if let Some(previous) = e.previous_outcome.filter(|o| o.is_error()) {
                out.push_str(&format!(
                    "{}: interrupted by a shutdown; the last sync that finished ended {}\n",
                    e.name,
                    previous.as_str()
                ));
            }
            if !e.configured {
                out.push_str(&format!(
                    "{}: not in the config (a backup from an earlier config; not counted in the exit code)\n",
                    e.name
                ));
            }
            if is_reserved_name(&e.name) {
                out.push_str(&format!(
                    "{}: this name clashes with chatkeep's own {} in the data directory; \
                     rename the personality in the config\n",
                    e.name,
                    self.data_dir.join(&e.name).display()
                ));
            }
        }
        out
    }

    fn daemon_line(&self) -> String {
        match &self.daemon {
            Some(d) if d.running => format!(
                "daemon: running, pid {}, chatkeep {}, started {}, config {}\n",
                d.pid,
                d.version,
                when(d.started, self.now),
                d.config.display()
            ),
            Some(d) => format!(
                "daemon: not running (pid {} is gone; its status was last updated {})\n",
                d.pid,
                when(d.updated, self.now)
            ),
            None => "daemon: not running (it has not written a status file here)\n".to_owned(),
        }
    }
}

/// Aligned columns: numbers (MESSAGES, NEW) to the right, the rest to the
/// left. With `colour`, the outcome is green when ok, yellow when
/// interrupted and red otherwise.
fn table(rows: &[[String; 7]], colour: bool) -> String {
    const RIGHT: [bool; 7] = [false, false, false, true, true, false, false];
    const OUTCOME: usize = 2;
    let width = |s: &str| s.chars().count();
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| width(&r[c])).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[c] - width(cell));
            let text = match (colour && i > 0 && c == OUTCOME, cell.as_str()) {
                (false, _) => cell.clone(),
                (true, "ok") => format!("\x1b[32m{cell}\x1b[0m"),
                (true, "interrupted") => format!("\x1b[33m{cell}\x1b[0m"),
                (true, _) => format!("\x1b[31m{cell}\x1b[0m"),
            };
            if c > 0 {
                line.push_str("  ");
            }
            if RIGHT[c] {
                line.push_str(&pad);
                line.push_str(&text);
            } else {
                line.push_str(&text);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `2024-05-01 12:00 (3h ago)`, or `(in 25m)` for a time to come.
fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let relative = if secs >= 0 {
        format!("{} ago", span(secs.unsigned_abs()))
    } else {
        format!("in {}", span(secs.unsigned_abs()))
    };
    format!("{} ({relative})", t.format("%Y-%m-%d %H:%M"))
}

/// A duration in its largest whole unit: `45s`, `12m`, `3h`, `2d`. Hours
/// run up to 48 so that "yesterday" reads as hours.
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn spans_use_the_largest_whole_unit() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (400 * 86_400, "400d"),
        ];
        for (secs, want) in cases {
            assert_eq!(span(secs), want, "{secs}s");
        }
    }

    #[test]
    fn times_are_utc_minutes_with_an_age_or_a_countdown() {
        let now = at("2024-05-01T15:10:59Z");
        assert_eq!(when(at("2024-05-01T12:00:30Z"), now), "2024-05-01 12:00 (3h ago)");
        assert_eq!(when(at("2024-05-01T15:35:59Z"), now), "2024-05-01 15:35 (in 25m)");
    }

    fn entry(name: &str, outcome: Option<Outcome>) -> Entry {
        Entry {
            name: name.into(),
            configured: true,
            healthy: outcome == Some(Outcome::Ok),
            outcome,
            previous_outcome: None,
            media: None,
            error: None,
            last_started: None,
            last_run: outcome.map(|_| at("2024-05-01T12:00:00Z")),
            last_success: None,
            messages: outcome.map(|_| 1234),
            spooled: None,
            new_last_run: outcome.map(|_| 5),
            requests_last_run: None,
            running: false,
            next_run: Some(at("2024-05-01T16:00:00Z")),
            retry_at: None,
            last_archive: None,
            beginning_confirmed_at: None,
            tail_probed_at: None,
            revised: None,
            deleted_upstream: None,
            unreadable: false,
        }
    }

    fn report(personalities: Vec<Entry>, daemon_running: bool) -> Report {
        Report {
            now: at("2024-05-01T15:00:00Z"),
            data_dir: "/var/lib/chatkeep".into(),
            healthy: false,
            daemon: Some(DaemonInfo {
                running: daemon_running,
                pid: 42,
                version: "0.1.0".into(),
                started: at("2024-05-01T09:00:00Z"),
                config: "/etc/chatkeep/config.toml".into(),
                updated: at("2024-05-01T14:59:00Z"),
            }),
            personalities,
            remotes: Vec::new(),
            config_error: None,
        }
    }

    #[test]
    fn the_table_is_aligned_and_plain_without_colour() {
        let mut failed = entry("a-much-longer-name", Some(Outcome::Failed));
        failed.error = Some("the service answered 500".into());
        failed.retry_at = Some(at("2024-05-01T15:05:00Z"));
        let mut running = entry("eve", None);
        running.running = true;
        let text = report(vec![entry("lilith", Some(Outcome::Ok)), failed, running], true).render(false);
        let want = "\
PERSONALITY         LAST RUN (UTC)             OUTCOME    MESSAGES  NEW  NEXT RUN (UTC)                  LAST ARCHIVE
lilith              2024-05-01 12:00 (3h ago)  ok             1234    5  2024-05-01 16:00 (in 1h)        —
a-much-longer-name  2024-05-01 12:00 (3h ago)  failed         1234    5  retry 2024-05-01 15:05 (in 5m)  —
eve                 never                      never run         —    —  running now                     —

lilith: beginning of history not confirmed yet
a-much-longer-name: beginning of history not confirmed yet
a-much-longer-name: failed: the service answered 500
daemon: running, pid 42, chatkeep 0.1.0, started 2024-05-01 09:00 (6h ago), config /etc/chatkeep/config.toml
";
        assert_eq!(text, want);
    }

    #[test]
    fn each_backup_says_whether_its_beginning_is_confirmed_and_what_changed_upstream() {
        let mut lilith = entry("lilith", Some(Outcome::Ok));
        lilith.beginning_confirmed_at = Some(at("2024-05-01T12:00:00Z"));
        lilith.tail_probed_at = Some(at("2024-05-01T14:00:00Z"));
        lilith.revised = Some(3);
        lilith.deleted_upstream = Some(12);
        let eve = entry("eve", Some(Outcome::Ok));
        let text = report(vec![lilith, eve, entry("new", None)], true).render(false);
        assert!(
            text.contains(
                "lilith: beginning of history confirmed 2024-05-01 12:00 (3h ago), last probed below the \
                 oldest message 2024-05-01 14:00 (1h ago); 3 changed upstream (every version kept), 12 gone \
                 upstream (kept, marked)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("eve: beginning of history not confirmed yet\n"),
            "{text}"
        );
        assert!(!text.contains("new: beginning"), "{text}");
    }

    #[test]
    fn without_a_running_daemon_there_is_no_next_run() {
        let text = report(vec![entry("lilith", Some(Outcome::Ok))], false).render(false);
        assert!(
            text.contains("ok           1234    5  —               —\n"),
            "{text}"
        );
        assert!(
            text.ends_with("daemon: not running (pid 42 is gone; its status was last updated 2024-05-01 14:59 (1m ago))\n"),
            "{text}"
        );
    }

    #[test]
    fn colour_marks_the_outcome_without_breaking_alignment() {
        let rows = report(
            vec![
                entry("lilith", Some(Outcome::Ok)),
                entry("eve", Some(Outcome::BotWall)),
            ],
            true,
        );
        let plain = rows.render(false);
        let coloured = rows.render(true);
        assert!(coloured.contains("\x1b[32mok\x1b[0m") && coloured.contains("\x1b[31mbot_wall\x1b[0m"));
        let stripped = coloured
            .replace("\x1b[32m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "");
        assert_eq!(stripped, plain);
        assert!(!plain.contains('\x1b'));
    }

    #[test]
    fn an_interrupted_walk_says_how_much_it_fetched_and_what_came_before() {
        let mut first = entry("first", Some(Outcome::Interrupted));
        (first.messages, first.new_last_run, first.spooled) = (Some(0), Some(0), Some(1618));
        let mut after_failure = entry("again", Some(Outcome::Interrupted));
        after_failure.previous_outcome = Some(Outcome::Failed);
        let mut running = entry("busy", Some(Outcome::Ok));
        (running.running, running.spooled) = (true, Some(40));
        let text = report(vec![first, after_failure, running], true).render(false);
        assert!(
            text.contains(
                "first: the chat history is still being fetched: 1618 messages fetched, not stored yet \
                 (the next sync resumes the walk and stores them)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("again: interrupted by a shutdown; the last sync that finished ended failed\n"),
            "{text}"
        );
        assert!(
            text.contains("busy: fetching the chat history: 40 messages fetched so far"),
            "{text}"
        );
        assert!(!text.contains("first: interrupted by"), "{text}");
        let coloured = report(vec![entry("x", Some(Outcome::Interrupted))], true).render(true);
        assert!(coloured.contains("\x1b[33minterrupted\x1b[0m"), "{coloured}");
    }
}
