//! The commands behind the CLI. `main.rs` parses arguments and calls these.

pub mod archive;
pub mod audit;
pub mod backup;
pub mod check_config;
pub mod cookie;
pub mod demo;
pub mod docs;
pub mod export;
pub mod forget;
pub mod import;
pub mod rebuild;
pub mod remote;
pub mod search;
pub mod serve;
pub mod serve_fake;
pub mod status;
pub mod sync;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::api::{ApiClient, ClientOptions, RateLimiter, SessionChange};
use crate::config::{Config, ConfigError, ConfigLocation, RateLimitConfig};
use crate::control::DaemonLink;
use crate::credentials;
use crate::store::{Store, StoreError};

/// Exit codes, as documented in `--help`.
pub mod exit {
    pub const OK: u8 = 0;
    /// A personality failed; the others were backed up.
    pub const FAILED: u8 = 1;
    /// Usage, config or data directory error: nothing was done.
    pub const USAGE: u8 = 2;
    /// The service refused the session cookie.
    pub const AUTH: u8 = 3;
    /// Stopped by Ctrl-C or SIGTERM, cleanly, with nothing else wrong: the
    /// next run resumes (128 + SIGINT, as shells report such a stop).
    pub const INTERRUPTED: u8 = 130;
}

/// An error that ends a command before it does anything, with its exit code.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub message: String,
}

impl Fatal {
    pub fn usage(message: impl std::fmt::Display) -> Fatal {
        Fatal {
            code: exit::USAGE,
            message: message.to_string(),
        }
    }

    pub fn report(&self) -> ExitCode {
        // On the journal, the line is filed at priority 3 (err), as
        // systemd reads a `<N>` prefix on a stream line (SyslogLevelPrefix=).
        let priority = if crate::logging::stderr_is_journal() {
            "<3>"
        } else {
            ""
        };
        eprintln!("{priority}error: {}", crate::escape::controls(&self.message));
        ExitCode::from(self.code)
    }
}

impl From<ConfigError> for Fatal {
    fn from(e: ConfigError) -> Self {
        Fatal::usage(e)
    }
}

pub fn load_config(location: &ConfigLocation) -> Result<Config, Fatal> {
    Ok(location.load()?)
}

/// Opens the data directory and takes its lock, for every command that
/// writes there (and the daemon). The data directory and the archive
/// directory, with their personality directories, must be chatkeep's
/// alone: one another user can write, or that is a symbolic link, is
/// refused here with exit 2, before anything is written (see
/// [`crate::store::check_private_tree`]). A missing archive directory is
/// made 0700 when the first snapshot needs it.
pub fn open_store(config: &Config) -> Result<Store, Fatal> {
    let data_dir = &config.storage.data_dir;
    let store = Store::open(data_dir).map_err(|e| unusable_dir(config, "storage.data_dir", data_dir, e))?;
    check_archives(config)?;
    Ok(store)
}

fn check_archives(config: &Config) -> Result<(), Fatal> {
    let archives = &config.archive.dir;
    if std::fs::symlink_metadata(archives).is_ok() {
        crate::store::check_private_tree(archives)
            .map_err(|e| unusable_dir(config, "archive.dir", archives, e))?;
    }
    Ok(())
}

/// What a command that can hand its work to the daemon got.
#[derive(Debug)]
pub enum Access {
    /// The data directory, held.
    Store(Store),
    /// The daemon holds it, and takes requests (see [`crate::control`]).
    Daemon(DaemonLink),
}

/// How often a command waiting for the data directory tries its lock.
const LOCK_POLL: Duration = Duration::from_secs(1);

/// [`open_store`], for `sync` and `archive`: when the daemon holds the
/// data directory, a link to it, so that it runs the job now; when another
/// command holds it (a timer's sync), waiting up to `lock_wait` for it to
/// finish (`--lock-wait`), as restic's `--retry-lock` and borgmatic's
/// `lock_wait` do. Ctrl-C while waiting ends with exit 130, nothing done.
pub async fn open_store_or_daemon(
    config: &Config,
    lock_wait: Duration,
    cancel: &CancellationToken,
) -> Result<Access, Fatal> {
    let data_dir = &config.storage.data_dir;
    let started = Instant::now();
    let mut said = false;
    loop {
        let e = match Store::open(data_dir) {
            Ok(store) => {
                check_archives(config)?;
                return Ok(Access::Store(store));
            }
            Err(e @ StoreError::Locked { .. }) => e,
            Err(e) => return Err(unusable_dir(config, "storage.data_dir", data_dir, e)),
        };
        if let Some(link) = DaemonLink::connect(data_dir).await {
            return Ok(Access::Daemon(link));
        }
        let waited = started.elapsed();
        if waited >= lock_wait {
            return Err(Fatal::usage(if lock_wait.is_zero() {
                format!("{e} (--lock-wait DURATION waits for it)")
            } else {
                format!(
                    "{e}; waited {} for it (--lock-wait)",
                    crate::config::format_duration(lock_wait)
                )
            }));
        }
        if !said {
            tracing::info!(
                data_dir = %data_dir.display(),
                "{e}; waiting up to {} for it",
                crate::config::format_duration(lock_wait)
            );
            said = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(LOCK_POLL.min(lock_wait - waited)) => {}
            _ = cancel.cancelled() => {
                return Err(Fatal {
                    code: exit::INTERRUPTED,
                    message: "stopped while waiting for the data directory; nothing was done".into(),
                });
            }
        }
    }
}

/// A directory the config names that cannot be used: the key, its value
/// and what to do. An error that already says it (a read-only data
/// directory) or is not the directory's fault (another process holds it)
/// is shown as it is.
fn unusable_dir(config: &Config, key: &str, dir: &Path, e: StoreError) -> Fatal {
    match e {
        StoreError::Io { .. } | StoreError::Unsafe(_) => Fatal::usage(format!(
            "{key} = \"{}\" cannot be used: {e}; fix that, or set {key} in {} to a directory \
             chatkeep can create or write (check it with `chatkeep check-config`)",
            dir.display(),
            config.source.display()
        )),
        e => Fatal::usage(e),
    }
}

/// The client for the configured account: its cookie (as the service last
/// rotated it, if it did) and the one rate limiter, which goes on from the
/// bucket the last process left in the data directory and leaves its own
/// there (see `rate_limiter`). Rotations during the run are saved in the
/// data directory. `store` says that this process holds the data directory.
pub fn build_client(config: &Config, store: &Store) -> Result<Arc<ApiClient>, Fatal> {
    let session = load_session(config)?;
    client_with(config, &session, rate_limiter(config, Some(store))).map(Arc::new)
}

/// The one token bucket of a process, with the configured rate and burst.
///
/// With the data directory held (`store`), the bucket starts with the
/// tokens the last process left in `<data_dir>/rate_limit.state` and
/// records its own there after every request: a process restarted in a
/// loop, or a cron'd `chatkeep sync`, does not get a full burst at every
/// start. A state file that cannot be opened leaves a full bucket, as
/// before there was one; it never fails the run. Without `store` (`cookie
/// set`, `cookie check`: one request each, beside a daemon maybe), the
/// bucket starts full and is recorded nowhere.
fn rate_limiter(config: &Config, store: Option<&Store>) -> Arc<RateLimiter> {
    let RateLimitConfig {
        requests_per_second,
        burst,
    } = config.rate_limit;
    let state = store.map(Store::rate_state).transpose().unwrap_or_else(|e| {
        tracing::debug!(error = %e, "cannot open the rate limit state; the bucket starts full");
        None
    });
    Arc::new(match state {
        Some(state) => {
            let saved = state.load();
            RateLimiter::resuming(requests_per_second, burst, saved, move |tat| state.save(tat))
        }
        None => RateLimiter::new(requests_per_second, burst),
    })
}

/// The session cookie a sync would send: the configured one or its saved
/// rotation. A cookie that cannot be read or is malformed ends the command
/// with exit 2 (a config error); one whose session the service ended, with
/// exit 3.
pub fn load_session(config: &Config) -> Result<credentials::Session, Fatal> {
    let session =
        credentials::load_session(&config.service, &config.storage.data_dir).map_err(|e| Fatal {
            // Only a session the service ended is its refusal; a cookie
            // that cannot be read or parsed is a config error.
            code: match e {
                credentials::CredentialError::Ended(_) => exit::AUTH,
                _ => exit::USAGE,
            },
            message: e.to_string(),
        })?;
    tracing::debug!(
        origin = %session.origin,
        name = session.cookie.name(),
        rotated = session.rotated,
        "session cookie loaded"
    );
    Ok(session)
}

/// A client that sends `session`'s cookie and saves in the data directory
/// what the service does to it (each rotation, or the end of the session),
/// as replacing the configured cookie. Its bucket starts
/// full and is recorded nowhere: for commands that do not hold the data
/// directory.
pub fn client_for(config: &Config, session: &credentials::Session) -> Result<ApiClient, Fatal> {
    client_with(config, session, rate_limiter(config, None))
}

fn client_with(
    config: &Config,
    session: &credentials::Session,
    limiter: Arc<RateLimiter>,
) -> Result<ApiClient, Fatal> {
    let service = &config.service;
    let options = ClientOptions {
        base_url: service.base_url.clone(),
        jargon: service.jargon.clone(),
        cookie: session.cookie.clone(),
        extra_cookies: service.extra_cookies.clone(),
        timeout: service.timeout,
        max_retries: service.max_retries,
        initial_backoff: service.initial_backoff,
        max_backoff: service.max_backoff,
        user_agent: service.user_agent.clone(),
    };
    if let Some(warning) = service.insecure_http_warning() {
        tracing::warn!("{warning}");
    }
    let mut client = ApiClient::new(options, limiter).map_err(Fatal::usage)?;
    let data_dir = config.storage.data_dir.clone();
    let replaces = session.configured.clone();
    client.on_session_change(move |change| match change {
        SessionChange::Rotated(cookie) => match credentials::rotated::save(&data_dir, cookie, &replaces) {
            Ok(path) => tracing::info!(
                path = %path.display(),
                "saved the rotated session cookie; later runs start from it"
            ),
            Err(e) => tracing::warn!(
                dir = %data_dir.display(),
                error = %e,
                "cannot save the rotated session cookie; this run uses it, but the next one starts \
                 from the configured cookie, which the service may no longer accept"
            ),
        },
        SessionChange::Ended(cookie) => {
            match credentials::rotated::save_ended(&data_dir, cookie.name(), &replaces) {
                Ok(path) => tracing::info!(
                    path = %path.display(),
                    "noted that the service ended the session; later runs send nothing until \
                     another cookie is set"
                ),
                Err(e) => tracing::warn!(
                    dir = %data_dir.display(),
                    error = %e,
                    "cannot note that the service ended the session; the next run sends the \
                     configured cookie again"
                ),
            }
        }
    });
    Ok(client)
}

/// The last line of a `verify` (on standard error) and its exit code: the
/// problems found `on` what was checked (`""`: the local backup), else all
/// good with what was checked in brackets.
pub fn verify_ending(problems: usize, on: &str, checked: &str) -> ExitCode {
    if problems > 0 {
        eprintln!(
            "verify: {} found{on}",
            crate::words::count(problems as u64, "problem")
        );
        ExitCode::from(exit::FAILED)
    } else {
        eprintln!("verify: all good ({checked})");
        ExitCode::SUCCESS
    }
}
