//! `chatkeep sync`: one pass over the named (or all configured) personalities.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{Fatal, build_client, exit};
use crate::config::{Config, PersonalitySlug};
use crate::progress::SyncProgress;
use crate::store::Store;
use crate::sync::chat::WalkLimits;
use crate::sync::{PersonalityReport, SyncError, sync_personality};

/// What a pass over several personalities ended with.
#[derive(Debug, Default)]
pub struct PassOutcome {
    pub reports: Vec<PersonalityReport>,
    pub failures: Vec<(String, SyncError)>,
    pub auth_failed: bool,
    pub cancelled: bool,
}

impl PassOutcome {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(if self.auth_failed {
            exit::AUTH
        } else if !self.failures.is_empty() || self.cancelled {
            exit::FAILED
        } else {
            exit::OK
        })
    }
}

/// Chooses the personalities: the named ones, or every configured one.
pub fn select(config: &Config, names: &[PersonalitySlug]) -> Vec<PersonalitySlug> {
    if names.is_empty() {
        config.personalities.iter().map(|p| p.name.clone()).collect()
    } else {
        names.to_vec()
    }
}

/// Syncs each personality in turn and prints one summary line for each.
/// An auth failure stops the pass: no other personality can succeed.
pub async fn run_pass(
    config: &Config,
    names: &[PersonalitySlug],
    cancel: &CancellationToken,
) -> Result<PassOutcome, Fatal> {
    let store = Store::open(&config.storage.data_dir).map_err(Fatal::usage)?;
    let client = build_client(config)?;
    let limits = WalkLimits {
        page_size: config.service.chat_page_size,
        max_page_size: config.service.max_page_size,
    };
    let mut outcome = PassOutcome::default();
    for name in select(config, names) {
        let mut progress = SyncProgress::new(name.as_str());
        let result = sync_personality(&client, &store, name.as_str(), limits, cancel, |p| {
            progress.page(p)
        })
        .await;
        progress.finish();
        match result {
            Ok(report) => {
                println!("{report}");
                for w in &report.chat.warnings {
                    println!("  warning: {w}");
                }
                outcome.reports.push(report);
            }
            Err(SyncError::Cancelled) => {
                eprintln!("{name}: stopped; the next run resumes from the last checkpoint");
                outcome.cancelled = true;
                break;
            }
            Err(e) => {
                eprintln!("{name}: failed: {e}");
                tracing::error!(personality = name.as_str(), error = %e, "sync failed");
                let auth = e.is_auth();
                outcome.failures.push((name.to_string(), e));
                if auth {
                    outcome.auth_failed = true;
                    break;
                }
            }
        }
    }
    Ok(outcome)
}

/// Cancels on the first Ctrl-C or SIGTERM (the walk stops at its next page
/// boundary); a second Ctrl-C exits at once, which is safe because the
/// checkpoint is already on disk.
pub fn cancel_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("stopping at the next page boundary (press Ctrl-C again to quit now)");
        child.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    token
}

pub async fn run(config: &Config, names: &[PersonalitySlug]) -> Result<ExitCode, Fatal> {
    if select(config, names).is_empty() {
        return Err(Fatal::usage(format!(
            "no personality to sync: name one, or add a [[personality]] to {}",
            config.source.display()
        )));
    }
    let cancel = cancel_on_signals();
    let outcome = run_pass(config, names, &cancel).await?;
    Ok(outcome.exit_code())
}
