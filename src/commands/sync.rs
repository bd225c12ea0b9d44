//! `chatkeep sync`: one pass over the named (or all configured) personalities.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Access, Fatal, build_client, exit};
use crate::api::documents::Category;
use crate::api::{Account, ApiClient, ApiError};
use crate::config::{Config, PersonalitySlug};
use crate::control::{Job, Request};
use crate::media::{FetchOptions, MediaContext, MediaFetcher, MediaStore, RunBudget};
use crate::notify::{Notifier, PassResult};
use crate::progress::SyncProgress;
use crate::status::Outcome;
use crate::store::Store;
use crate::sync::{
    AccountCache, PersonalityReport, Plan, SyncContext, log_summary, summary, sync_personality,
};

/// Which personalities a pass covers besides the configured ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    /// Every personality the account owns (`sync --all`, `[discover] owned`).
    pub owned: bool,
    /// Every recently used personality (`[discover] recent`).
    pub recent: bool,
}

/// What a pass over several personalities ended with.
#[derive(Debug, Default)]
pub struct PassOutcome {
    pub reports: Vec<PersonalityReport>,
    /// An error before any personality (the account check failed).
    pub fatal: Option<ApiError>,
    /// A listing of `[discover]` (or `--all`) failed; the personalities
    /// named or configured were synced all the same.
    pub discovery: Option<ApiError>,
}

impl PassOutcome {
    pub fn auth_failed(&self) -> bool {
        matches!(self.fatal, Some(ApiError::Auth { .. }))
            || self.reports.iter().any(|r| r.outcome() == Outcome::AuthExpired)
    }

    pub fn all_ok(&self) -> bool {
        self.fatal.is_none()
            && self.discovery.is_none()
            && self.reports.iter().all(|r| r.outcome() == Outcome::Ok)
    }

    /// What the pass tells the ping URL: a failure if anything failed
    /// (interrupted syncs are no failure), and one line per personality
    /// with its outcome only, never an error's text.
    pub fn ping(&self) -> (PassResult, String) {
        let failed = self.fatal.is_some()
            || self.discovery.is_some()
            || self.reports.iter().any(|r| r.outcome().is_error());
        let mut body: Vec<String> = self
            .reports
            .iter()
            .map(|r| format!("{}: {}", r.name(), r.outcome().as_str()))
            .collect();
        if self.fatal.is_some() || self.discovery.is_some() {
            body.push("the account's personalities could not be listed".to_owned());
        }
        let result = if failed {
            PassResult::Failure
        } else {
            PassResult::Success
        };
        (result, body.join("\n"))
    }

    pub fn exit_code(&self) -> ExitCode {
        let outcome = |wanted: Outcome| self.reports.iter().any(|r| r.outcome() == wanted);
        let failed = self.fatal.is_some()
            || self.discovery.is_some()
            || self
                .reports
                .iter()
                .any(|r| !matches!(r.outcome(), Outcome::Ok | Outcome::Interrupted));
        ExitCode::from(if self.auth_failed() {
            exit::AUTH
        } else if failed {
            exit::FAILED
        } else if outcome(Outcome::Interrupted) {
            exit::INTERRUPTED
        } else {
            exit::OK
        })
    }
}

/// The personalities of a pass: the named ones, or every configured one,
/// plus, when asked, the ones the service lists for the account. A failed
/// listing comes back beside the personalities chosen without it.
async fn select(
    config: &Config,
    names: &[PersonalitySlug],
    selection: Selection,
    client: &ApiClient,
) -> (Vec<PersonalitySlug>, Option<ApiError>) {
    let mut chosen: Vec<PersonalitySlug> = if names.is_empty() {
        config.personalities.iter().map(|p| p.name.clone()).collect()
    } else {
        names.to_vec()
    };
    match discovered(config, selection, client, &chosen).await {
        Ok(found) => {
            chosen.extend(found);
            (chosen, None)
        }
        Err(e) => (chosen, Some(e)),
    }
}

/// The personalities the service lists, besides `chosen`.
async fn discovered(
    config: &Config,
    selection: Selection,
    client: &ApiClient,
    chosen: &[PersonalitySlug],
) -> Result<Vec<PersonalitySlug>, ApiError> {
    let mut found: Vec<PersonalitySlug> = Vec::new();
    let mut categories = Vec::new();
    if selection.owned {
        categories.push(Category::Owned);
    }
    if selection.recent {
        categories.push(Category::Recent);
    }
    for category in categories {
        for slug in client.list(category, config.discover.max_personalities).await? {
            match slug.parse::<PersonalitySlug>() {
                Ok(slug) if !chosen.contains(&slug) && !found.contains(&slug) => found.push(slug),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(slug = %slug.escape_debug(), error = %e, "skipping a listed personality whose name cannot be a directory")
                }
            }
        }
    }
    Ok(found)
}

/// Syncs each personality in turn and prints one summary line for each.
/// An auth failure or a bot wall stops the pass: no other personality can
/// succeed, and asking again is impolite.
pub async fn run_pass(
    config: &Config,
    names: &[PersonalitySlug],
    selection: Selection,
    cancel: &CancellationToken,
) -> Result<PassOutcome, Fatal> {
    let store = super::open_store(config)?;
    run_pass_in(config, store, names, selection, cancel).await
}

/// [`run_pass`] in a data directory already held.
pub async fn run_pass_in(
    config: &Config,
    store: Store,
    names: &[PersonalitySlug],
    selection: Selection,
    cancel: &CancellationToken,
) -> Result<PassOutcome, Fatal> {
    let client = build_client(config, &store)?;
    let mut outcome = PassOutcome::default();
    let (chosen, discovery) = select(config, names, selection, &client).await;
    if let Some(e) = discovery {
        tracing::error!(error = %e, "cannot list the account's personalities");
        // Nothing else can succeed after an auth failure; anything else
        // leaves the named and configured personalities to sync.
        if chosen.is_empty() || matches!(e, ApiError::Auth { .. }) {
            outcome.fatal = Some(e);
            return Ok(outcome);
        }
        outcome.discovery = Some(e);
    }
    if chosen.is_empty() {
        return Err(Fatal::usage(format!(
            "no personality to sync: name one, or add a [[personality]] to {}",
            config.source.display()
        )));
    }
    let account = AccountCache::default();
    let mut ctx = SyncContext::new(config, &client, &store, &account, cancel);
    // Media has its own client, bucket and budget; a store that cannot be
    // opened costs the run its media, never its history.
    let fetcher = MediaFetcher::new(FetchOptions::from_config(config));
    let budget = RunBudget::new(config.media.max_bytes_per_run);
    let media_store = match MediaStore::open(store.root()) {
        Ok(media_store) => Some(media_store),
        Err(e) => {
            tracing::warn!(error = %crate::store::fsio::explain(&e), "cannot open the media store; no media is downloaded this run");
            None
        }
    };
    ctx.media = media_store.as_ref().map(|media_store| MediaContext {
        fetcher: &fetcher,
        store: media_store,
        budget: &budget,
    });
    let notifier = Notifier::new(config, Some(client.cookie().token()));
    for name in chosen {
        let mut progress = SyncProgress::new(name.as_str());
        let plan = Plan::for_personality(config, &name);
        let was_failing = Notifier::was_failing(store.root(), name.as_str());
        let report = sync_personality(&ctx, name.as_str(), &plan, |p| progress.page(p)).await;
        progress.finish();
        notifier.personality_finished(&report, was_failing).await;
        for line in report_lines(&report) {
            println!("{line}");
        }
        log_summary(&report);
        let stop = report.cancelled
            || matches!(
                report.outcome(),
                Outcome::AuthExpired | Outcome::BotWall | Outcome::RateLimited
            );
        outcome.reports.push(report);
        if stop {
            break;
        }
    }
    Ok(outcome)
}

/// What `sync` prints of one personality: its summary line, then its
/// error and the chat's warnings, indented (control characters escaped:
/// they come from the service).
pub fn report_lines(report: &PersonalityReport) -> Vec<String> {
    let mut lines = vec![summary(report)];
    if let Some(e) = &report.status.error {
        lines.push(format!("  error: {}", crate::escape::controls(e)));
    }
    if let Some(chat) = &report.chat {
        for w in &chat.warnings {
            lines.push(format!("  warning: {}", crate::escape::controls(w)));
        }
    }
    lines
}

/// The account the cookie logs in to (for callers that have one already).
pub fn account_label(account: &Account) -> String {
    match &account.display_name {
        Some(name) => format!("{name} ({})", account.id),
        None => account.id.clone(),
    }
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

/// `chatkeep sync`: a pass in this process, or, while the daemon holds
/// the data directory, the daemon's (which pings and notifies as its own
/// runs do).
pub async fn run(
    config: &Config,
    names: &[PersonalitySlug],
    selection: Selection,
    lock_wait: Duration,
) -> Result<ExitCode, Fatal> {
    let cancel = cancel_on_signals();
    let store = match super::open_store_or_daemon(config, lock_wait, &cancel).await? {
        Access::Store(store) => store,
        Access::Daemon(daemon) => {
            let request = Request {
                job: Job::Sync,
                names: names.iter().map(|n| n.to_string()).collect(),
                all: selection.owned,
            };
            return daemon
                .run(&request, &cancel)
                .await
                .map_err(|e| Fatal::usage(format!("asking the daemon to sync: {e}")));
        }
    };
    // Pings carry no error text, so this notifier needs no cookie to cut out.
    let pings = Notifier::new(config, None);
    pings.ping_start().await;
    let outcome = match run_pass_in(config, store, names, selection, &cancel).await {
        Ok(outcome) => outcome,
        Err(fatal) => {
            pings
                .ping_end(PassResult::Failure, "chatkeep sync could not run; see its log")
                .await;
            return Err(fatal);
        }
    };
    let (result, body) = outcome.ping();
    pings.ping_end(result, &body).await;
    Ok(outcome.exit_code())
}
