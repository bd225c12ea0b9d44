//! Log output. Standard error carries the log: to systemd's journal
//! through its native protocol when standard error is the journal (a
//! service or a timer's unit; [`journal`]), with syslog priorities and the
//! events' fields as journal fields; elsewhere as text or JSON lines, one
//! event a line (colours only on a terminal). When `[log] dir` is set, daily
//! rolling files there too, in `[log] format`. Every command logs as `[log]`
//! says once its config is read; level from the config or flags, RUST_LOG
//! overrides both. What a command prints for a person (a table, an export)
//! goes to standard output and is not log.

mod journal;

use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

pub use journal::{SOCKET_ENV as JOURNAL_SOCKET_ENV, stderr_is_journal};

/// Keeps the file writer's background thread alive; drop it last.
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// What to say when `[log] dir` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnusableDir {
    /// A warning on standard error: the commands that back up, whose log
    /// someone will look for.
    Warn,
    /// Nothing: the commands that only read for a person (`status`,
    /// `export`), which root or a monitoring user may run beside the daemon
    /// on a log directory that is the daemon's and rightly not theirs.
    Skip,
}

/// Logging as `log` (the config's `[log]`) asks, or with the defaults for
/// commands that run without a config (the demo, a config that does not
/// load). When the log directory cannot be used the command logs to
/// standard error only, saying so or not as `unusable` asks.
///
/// The log directory is made (or checked) like the data directory: 0700,
/// ours, writable by nobody else. The files in it are tracing-appender's,
/// created with the process umask, which `main` sets to 0077: 0600.
pub fn init(log: Option<&LogConfig>, verbose: u8, quiet: bool, unusable: UnusableDir) -> LogGuard {
    let default = LogConfig::default();
    let log = log.unwrap_or(&default);
    let file = log.dir.as_ref().and_then(|dir| {
        let appender = crate::store::fsio::create_private_dir(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                tracing_appender::rolling::Builder::new()
                    .rotation(tracing_appender::rolling::Rotation::DAILY)
                    .filename_prefix("chatkeep")
                    .filename_suffix("log")
                    .max_log_files(log.max_files as usize)
                    .build(dir)
                    .map_err(|e| e.to_string())
            });
        match appender {
            Ok(appender) => Some(tracing_appender::non_blocking(appender)),
            Err(_) if unusable == UnusableDir::Skip => None,
            Err(e) => {
                eprintln!(
                    "warning: log.dir = \"{}\" cannot be used: {e}; set dir in [log] to a directory \
                     chatkeep can create and write, or remove it to log to standard error only \
                     (check it with `chatkeep check-config`); logging to standard error only",
                    dir.display()
                );
                None
            }
        }
    });
    install(level(verbose, quiet, &log.level), log.format, file)
}

fn level(verbose: u8, quiet: bool, configured: &str) -> String {
    match (quiet, verbose) {
        (true, _) => "warn".into(),
        (false, 0) => configured.into(),
        (false, 1) => "debug".into(),
        (false, _) => "trace".into(),
    }
}

fn install(
    level: String,
    format: LogFormat,
    file: Option<(
        tracing_appender::non_blocking::NonBlocking,
        tracing_appender::non_blocking::WorkerGuard,
    )>,
) -> LogGuard {
    // Dependencies stay quiet unless asked for by RUST_LOG.
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("warn,chatkeep={level}")))
    };
    let journal = journal::stderr_is_journal()
        .then(journal::JournalLayer::new)
        .and_then(Result::ok);
    let stderr: Box<dyn Layer<Registry> + Send + Sync> = match journal {
        // The journal stamps the time and keeps the fields; JSON would
        // only hide them in MESSAGE.
        Some(journal) => journal.with_filter(filter()).boxed(),
        None => {
            let stderr = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false);
            match format {
                LogFormat::Text => stderr.fmt_fields(escaped_fields()).with_filter(filter()).boxed(),
                LogFormat::Json => stderr.json().with_filter(filter()).boxed(),
            }
        }
    };
    let mut layers = vec![stderr];
    let guard = file.map(|(writer, guard)| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .with_target(false);
        layers.push(match format {
            LogFormat::Text => layer.fmt_fields(escaped_fields()).with_filter(filter()).boxed(),
            LogFormat::Json => layer.json().with_filter(filter()).boxed(),
        });
        guard
    });
    let _ = tracing_subscriber::registry().with(layers).try_init();
    LogGuard(guard)
}

/// The text format's fields and message with control characters escaped
/// ([`crate::escape::controls`]): a field can carry service text (a message
/// id in an error), and one line of the journal must stay one line. JSON
/// lines need nothing: JSON escapes them. The level's own colours are not
/// fields, so they stay.
fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer: &mut Writer<'_>, field, value| {
        let text = format!("{value:?}");
        let text = crate::escape::controls(&text);
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{field}={text}")
        }
    })
    .delimited(" ")
}

/// Logs the process's peak resident memory (Linux `VmHWM`) at debug level,
/// so the bounded-memory promise can be watched on a real run.
pub fn log_peak_memory() {
    let peak_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
    if let Some(kib) = peak_kib {
        tracing::debug!(peak_rss_kib = kib, "exiting");
    }
}
