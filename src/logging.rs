//! Log output: `tracing` to standard error (colours only on a terminal;
//! journald keeps the rest) and, when `[log] dir` is set, daily rolling
//! files there. Level from the config or flags; RUST_LOG overrides both.

use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// Keeps the file writer's background thread alive; drop it last.
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// Logging for commands that run before (or without) a config.
pub fn init(verbose: u8, quiet: bool) -> LogGuard {
    install(level(verbose, quiet, "info"), LogFormat::Text, None)
}

/// Logging as the config asks, for the daemon. Errors in setting up the log
/// directory are reported on standard error and the daemon logs there only.
///
/// The log directory is made (or checked) like the data directory: 0700,
/// ours, writable by nobody else. The files in it are tracing-appender's,
/// created with the process umask, which `main` sets to 0077: 0600.
pub fn init_with(log: &LogConfig, verbose: u8, quiet: bool) -> LogGuard {
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
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let stderr: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => stderr.fmt_fields(escaped_fields()).with_filter(filter()).boxed(),
        LogFormat::Json => stderr.json().with_filter(filter()).boxed(),
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
