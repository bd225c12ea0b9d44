//! `chatkeep run`: the daemon. A cron scheduler fires sync jobs; a fixed
//! pool of workers runs them, every request drawing from the one token
//! bucket of the account's client; signals stop, reload or kill it.
//!
//! Process life:
//! - SIGTERM/SIGINT: stop scheduling, let running syncs stop at their next
//!   page boundary, write status, exit 0 within `shutdown_timeout`; a second
//!   SIGINT exits at once (safe: every checkpoint is on disk).
//! - SIGHUP: re-read and validate the config and the cookie; on error keep
//!   the running ones; personalities and schedules added or removed take
//!   effect without a restart. A schedule the reload leaves as it was keeps
//!   its next run (an `interval` countdown is not restarted); the log line
//!   says what changed.
//! - The control socket (`<data_dir>/.chatkeep.sock`): `chatkeep sync` and
//!   `chatkeep archive` ask the daemon to run now (see [`crate::control`]).

mod control;
mod jobs;
mod notify;
mod schedules;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;

use crate::commands::Fatal;
use crate::config::Config;
use jobs::{Runtime, Shared};

/// Runs the daemon until a signal stops it.
pub async fn run(config: Config) -> Result<ExitCode, Fatal> {
    // One daemon per data directory: a second one fails here, naming the first.
    let store = Arc::new(crate::commands::open_store(&config)?);
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| Fatal::usage(format!("cannot install signal handlers: {e}")))?;
    let config_path: PathBuf = config.source.clone();
    crate::metrics::warn_if_unreadable(&config.metrics);
    let web = match &config.serve {
        Some(serve) => {
            let location = crate::config::ConfigLocation {
                path: config_path.clone(),
                searched: Vec::new(),
            };
            Some(
                crate::commands::serve::bind(
                    &location,
                    config.clone(),
                    serve.listen,
                    serve.token_file.as_deref(),
                )
                .await?,
            )
        }
        None => None,
    };
    let runtime = Runtime::new(Arc::new(config), &store)?;
    let shared = Shared::start(store, runtime)
        .await
        .map_err(|e| Fatal::usage(format!("cannot start the scheduler: {e}")))?;
    // Removes the socket when the daemon ends.
    let _control = control::listen(&shared);
    notify::spawn_watchdog(shared.shutdown_token());
    if let Some((listener, state)) = web {
        let addr = state.listen;
        let stop = shared.shutdown_token();
        tokio::spawn(async move {
            if let Err(e) = crate::web::serve(listener, state, stop).await {
                tracing::error!("the web view on {addr} stopped: {e}");
            }
        });
        tracing::info!(
            "serving the web view read-only on http://{addr}/ ([serve]; a change to it needs a restart)"
        );
    }
    notify::ready();
    tracing::info!(config = %config_path.display(), pid = std::process::id(), "chatkeep daemon started");
    shared.log_schedule().await;

    while let Some(signal) = signals.next().await {
        match signal {
            SIGHUP => {
                notify::reloading();
                shared.reload(&config_path).await;
                notify::ready();
            }
            _ => break,
        }
    }

    notify::stopping();
    tracing::info!("stopping: no new syncs; running ones stop at their next page boundary");
    let timeout = shared.runtime().config.daemon.shutdown_timeout;
    tokio::select! {
        finished = shared.stop(timeout) => {
            if !finished {
                tracing::warn!(timeout_ms = timeout.as_millis() as u64, "syncs still running at the shutdown timeout; exiting anyway (their checkpoints are on disk)");
            }
        }
        Some(_) = signals.next() => {
            tracing::warn!("second signal: exiting at once (checkpoints are on disk)");
            std::process::exit(130);
        }
    }
    signals.handle().close();
    tracing::info!("chatkeep daemon stopped");
    Ok(ExitCode::SUCCESS)
}
