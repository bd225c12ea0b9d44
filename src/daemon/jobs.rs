//! Schedules, the worker pool and what happens around each sync: skip a
//! tick that finds the personality still running, retry a transient failure
//! with backoff before the next tick, write status and metrics, tell systemd.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::Semaphore;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::notify;
use super::schedules::{self, Changes, Fires};
use crate::api::ApiClient;
use crate::api::documents::Category;
use crate::commands::{Fatal, build_client};
use crate::config::{Config, PersonalitySlug, Schedule};
use crate::credentials;
use crate::media::{FetchOptions, MediaContext, MediaFetcher, MediaStore, RunBudget};
use crate::metrics::{self, Counters};
use crate::notify::{Notifier, PassResult};
use crate::status::{DaemonPersonality, DaemonStatus, Outcome, PersonalityStatus};
use crate::store::{Store, personality_dir};
use crate::sync::{
    AccountCache, PersonalityReport, Plan, SyncContext, audit_personality, log_summary, sync_personality,
};

/// Retries of a transient failure before waiting for the next tick.
const MAX_RETRIES: u32 = 3;
/// First retry delay; doubled for each next one.
const RETRY_BASE: Duration = Duration::from_secs(60);

/// What a configuration makes: the config, the account's client (and with
/// it the one token bucket), the worker pool. Replaced whole on reload;
/// running syncs finish with the one they started with.
pub struct Runtime {
    pub config: Arc<Config>,
    pub client: Arc<ApiClient>,
    /// `workers` permits: the limit on syncs at once.
    pub workers: Arc<Semaphore>,
    pub account: Arc<AccountCache>,
    /// Media downloads of this configuration: its own bucket and limits.
    pub media: Arc<MediaFetcher>,
}

impl Runtime {
    /// The runtime of `config`, for the daemon that holds `store`.
    pub fn new(config: Arc<Config>, store: &Store) -> Result<Runtime, Fatal> {
        let client = build_client(&config, store)?;
        let workers = Arc::new(Semaphore::new(config.daemon.workers as usize));
        let media = Arc::new(MediaFetcher::new(FetchOptions::from_config(&config)));
        Ok(Runtime {
            config,
            client,
            workers,
            account: Arc::new(AccountCache::default()),
            media,
        })
    }
}

/// A run asked for through the control socket, so that its asker can
/// tell its end from that of a run already going when it asked.
pub type RunId = u64;

/// How a run ended, as the command run by hand would have printed it.
#[derive(Debug, Clone)]
pub struct JobEnd {
    pub outcome: String,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl JobEnd {
    fn not_run(name: &str) -> JobEnd {
        JobEnd {
            outcome: Outcome::Interrupted.as_str().to_owned(),
            stdout: Vec::new(),
            stderr: vec![format!("{name}: not run: the daemon is stopping")],
        }
    }
}

/// A run that ended, for whoever asked for it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub run: RunId,
    pub name: String,
    pub end: JobEnd,
}

/// Where a personality stands in the daemon.
#[derive(Debug, Default, Clone)]
struct PersonalityState {
    /// Queued, waiting for a worker, or syncing.
    running: bool,
    /// Runs asked for while one was going, in order: each starts when the
    /// one before it ends (a request through the control socket means a
    /// run that starts after it was made).
    pending: Vec<(Trigger, RunId)>,
    last_outcome: Option<Outcome>,
    last_finished: Option<DateTime<Utc>>,
    retry_at: Option<DateTime<Utc>>,
    retries: u32,
}

/// Why a sync starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Schedule,
    Retry,
    Start,
    /// A snapshot, not a sync.
    Archive,
    /// An audit with repair, not a sync.
    Audit,
    /// Asked for through the control socket: at once, without jitter.
    Now,
}

/// Everything the scheduler's jobs and the workers share.
pub struct Shared {
    store: Arc<Store>,
    /// One for the daemon's life: its index is appended by every worker,
    /// through this one handle. `None` when it could not be opened.
    media_store: Option<MediaStore>,
    runtime: RwLock<Arc<Runtime>>,
    scheduler: JobScheduler,
    /// The scheduler's jobs: what each one fires, its id and the schedule
    /// it was made with. A reload replaces only the jobs whose schedule
    /// changed, so the others keep their next tick.
    jobs: Mutex<BTreeMap<Fires, (Uuid, Schedule)>>,
    personalities: Mutex<BTreeMap<String, PersonalityState>>,
    /// The personalities discovery found at the last tick of the default
    /// schedule; with the configured ones, what the daemon syncs.
    discovered: Mutex<BTreeSet<String>>,
    counters: Mutex<Counters>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    started: DateTime<Utc>,
    /// Each run asked for through the control socket, as it ends.
    finished: tokio::sync::broadcast::Sender<Arc<Finished>>,
    next_run: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Sets the schedules and starts the scheduler.
    pub async fn start(store: Arc<Store>, runtime: Runtime) -> Result<Arc<Shared>, JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        let media_store = match MediaStore::open(store.root()) {
            Ok(media_store) => Some(media_store),
            Err(e) => {
                tracing::warn!(error = %crate::store::fsio::explain(&e), "cannot open the media store; no media is downloaded");
                None
            }
        };
        let shared = Arc::new(Shared {
            media_store,
            store,
            runtime: RwLock::new(Arc::new(runtime)),
            scheduler,
            jobs: Mutex::new(BTreeMap::new()),
            personalities: Mutex::new(BTreeMap::new()),
            discovered: Mutex::new(BTreeSet::new()),
            counters: Mutex::new(Counters::default()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started: Utc::now(),
            finished: tokio::sync::broadcast::channel(1024).0,
            next_run: std::sync::atomic::AtomicU64::new(1),
        });
        let config = shared.runtime().config.clone();
        shared.reconcile_jobs(&config).await?;
        shared.scheduler.start().await?;
        if config.daemon.run_on_start {
            for slug in shared.configured_names(&config, true) {
                shared.enqueue(slug, Trigger::Start);
            }
        }
        shared.write_status().await;
        Ok(shared)
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn data_dir(&self) -> &Path {
        self.store.root()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Re-reads the config and the cookie. Keeps the running ones on error.
    pub async fn reload(self: &Arc<Self>, path: &Path) {
        let config = match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "config reload failed; keeping the running config");
                return;
            }
        };
        let old = self.runtime();
        if config.storage.data_dir != old.config.storage.data_dir {
            tracing::error!(
                "config reload: data_dir changed; that needs a restart; keeping the running config"
            );
            return;
        }
        let runtime = match Runtime::new(Arc::new(config), &self.store) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e.message, "config reload failed; keeping the running config");
                return;
            }
        };
        let mut changes = Changes::between(&old.config, &runtime.config);
        changes.cookie = runtime.client.cookie().token() != old.client.cookie().token();
        let config = runtime.config.clone();
        *self.runtime.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(runtime);
        if let Err(e) = self.reconcile_jobs(&config).await {
            tracing::error!(error = %e, "rescheduling after reload failed");
        }
        self.forget_unscheduled(&config);
        // The status file is current by the time the log says so.
        self.write_status().await;
        tracing::info!(
            personalities = config.personalities.len(),
            "config reloaded: {changes}"
        );
        if changes.touches_schedules() {
            self.log_schedule().await;
        }
    }

    /// Drops what the daemon holds of personalities it no longer syncs
    /// (removed from the config, not discovered): their pending retries and
    /// their place in the status. One still running finishes its sync and
    /// is dropped by the next reload.
    fn forget_unscheduled(&self, config: &Config) {
        let mut map = self.personalities.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|name, state| state.running || self.is_scheduled(config, name));
    }

    /// Whether `name` is synced under `config`: configured, or found by
    /// discovery at the last default tick while discovery is on.
    fn is_scheduled(&self, config: &Config, name: &str) -> bool {
        config.personalities.iter().any(|p| p.name.as_str() == name)
            || ((config.discover.owned || config.discover.recent)
                && self
                    .discovered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(name))
    }

    /// Logs each schedule and when it next fires; warns when nothing is to
    /// be synced.
    pub async fn log_schedule(&self) {
        let config = self.runtime().config.clone();
        let jobs: Vec<(Fires, Uuid, Schedule)> = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(fires, (id, schedule))| (fires.clone(), *id, schedule.clone()))
            .collect();
        let discovering = config.discover.owned || config.discover.recent;
        let mut scheduler = self.scheduler.clone();
        for (fires, id, schedule) in jobs {
            let next = scheduler.next_tick_for_job(id).await.ok().flatten();
            let next_run = next.map_or_else(
                || "unknown".to_owned(),
                |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
            let schedule = schedules::describe(&schedule);
            match fires {
                Fires::Sync(None) => {
                    let names = self.configured_names(&config, false);
                    if names.is_empty() && !discovering {
                        continue;
                    }
                    tracing::info!(
                        schedule,
                        next_run,
                        personalities = names.join(", "),
                        discovered = discovering,
                        "scheduled: the default schedule"
                    );
                }
                Fires::Sync(Some(name)) => tracing::info!(
                    personality = name,
                    schedule,
                    next_run,
                    "scheduled: a personality's own schedule"
                ),
                Fires::Archive => {
                    tracing::info!(schedule, next_run, "scheduled: snapshots of every personality")
                }
                Fires::Audit => tracing::info!(schedule, next_run, "scheduled: audits of every personality"),
            }
        }
        if config.personalities.is_empty() && !discovering {
            tracing::warn!(
                config = %config.source.display(),
                "no personality is configured and [discover] is off: nothing is scheduled; \
                 add a [[personality]] block to the config and reload"
            );
        }
    }

    /// Stops scheduling and waits up to `timeout` for running syncs.
    /// Returns whether they all finished.
    pub async fn stop(self: &Arc<Self>, timeout: Duration) -> bool {
        self.shutdown.cancel();
        let mut scheduler = self.scheduler.clone();
        if let Err(e) = scheduler.shutdown().await {
            tracing::warn!(error = %e, "scheduler shutdown");
        }
        self.tasks.close();
        let finished = tokio::time::timeout(timeout, self.tasks.wait()).await.is_ok();
        self.write_status().await;
        finished
    }

    /// Makes the scheduler's jobs those `config` wants: a job whose
    /// schedule is unchanged stays as it is (with its next tick), one whose
    /// schedule changed is replaced, one no longer wanted is removed.
    async fn reconcile_jobs(self: &Arc<Self>, config: &Config) -> Result<(), JobSchedulerError> {
        let wanted = schedules::wanted(config);
        let stale: Vec<(Fires, Uuid)> = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(fires, (_, schedule))| wanted.get(*fires) != Some(schedule))
            .map(|(fires, (id, _))| (fires.clone(), *id))
            .collect();
        for (fires, id) in stale {
            self.scheduler.remove(&id).await?;
            self.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(&fires);
        }
        for (fires, schedule) in wanted {
            if self
                .jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&fires)
            {
                continue;
            }
            let id = self.scheduler.add(self.job(&schedule, fires.clone())?).await?;
            self.jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(fires, (id, schedule));
        }
        Ok(())
    }

    fn job(self: &Arc<Self>, schedule: &Schedule, fires: Fires) -> Result<Job, JobSchedulerError> {
        let shared = Arc::downgrade(self);
        let fire = move |_id: Uuid, _scheduler: JobScheduler| {
            let shared = shared.clone();
            let fires = fires.clone();
            Box::pin(async move {
                if let Some(shared) = shared.upgrade() {
                    match fires {
                        Fires::Sync(only) => shared.tick(only).await,
                        Fires::Archive => shared.every_personality(Trigger::Archive).await,
                        Fires::Audit => shared.every_personality(Trigger::Audit).await,
                    }
                }
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        };
        match schedule {
            Schedule::Cron(expr) => Job::new_async(expr.as_str(), fire),
            Schedule::Interval(every) => Job::new_repeated_async(*every, fire),
        }
    }

    /// The archive or audit schedule fired: a snapshot or an audit of each
    /// configured personality, as that personality's job, so it never
    /// overlaps its sync.
    async fn every_personality(self: &Arc<Self>, trigger: Trigger) {
        let config = self.runtime().config.clone();
        for name in self.configured_names(&config, true) {
            self.enqueue(name, trigger);
        }
        self.write_status().await;
    }

    /// A schedule fired: queue its personalities.
    async fn tick(self: &Arc<Self>, only: Option<String>) {
        let runtime = self.runtime();
        self.refresh_cookie_if_changed(&runtime);
        let names = match only {
            Some(name) => vec![name],
            None => {
                let mut names = self.configured_names(&runtime.config, false);
                let found = self.discovered(&runtime).await;
                *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) = found.iter().cloned().collect();
                for slug in found {
                    if !names.contains(&slug)
                        && !runtime
                            .config
                            .personalities
                            .iter()
                            .any(|p| p.name.as_str() == slug)
                    {
                        names.push(slug);
                    }
                }
                names
            }
        };
        for name in names {
            self.enqueue(name, Trigger::Schedule);
        }
        self.write_status().await;
    }

    /// Personalities on the default schedule (or all of them).
    pub(super) fn configured_names(&self, config: &Config, all: bool) -> Vec<String> {
        config
            .personalities
            .iter()
            .filter(|p| all || p.schedule.is_none())
            .map(|p| p.name.to_string())
            .collect()
    }

    async fn discovered(&self, runtime: &Runtime) -> Vec<String> {
        let discover = &runtime.config.discover;
        let mut found = Vec::new();
        for (wanted, category) in [
            (discover.owned, Category::Owned),
            (discover.recent, Category::Recent),
        ] {
            if !wanted {
                continue;
            }
            match runtime.client.list(category, discover.max_personalities).await {
                Ok(slugs) => found.extend(slugs.into_iter().filter(|s| s.parse::<PersonalitySlug>().is_ok())),
                Err(e) => tracing::warn!(error = %e, "cannot list personalities for discovery"),
            }
        }
        found
    }

    /// After an auth failure the client sends nothing more; a new cookie in
    /// the configured source brings a new client.
    fn refresh_cookie_if_changed(&self, runtime: &Arc<Runtime>) {
        if !runtime.client.is_auth_dead() {
            return;
        }
        let Ok(session) =
            credentials::load_session(&runtime.config.service, &runtime.config.storage.data_dir)
        else {
            return;
        };
        // The same token is new news once the service had ended its
        // session: the person set it again (which `load_session` would
        // otherwise refuse).
        if session.cookie.token() == runtime.client.cookie().token() && !runtime.client.is_session_ended() {
            return;
        }
        let origin = session.origin;
        match Runtime::new(runtime.config.clone(), &self.store) {
            Ok(fresh) => {
                tracing::info!(%origin, "a new session cookie; resuming requests");
                *self.runtime.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
            }
            Err(e) => tracing::error!(error = %e.message, "cannot use the new cookie"),
        }
    }

    /// Starts a sync of `name` unless one is already queued or running.
    fn enqueue(self: &Arc<Self>, name: String, trigger: Trigger) {
        if self.shutdown.is_cancelled() {
            return;
        }
        {
            let mut map = self.personalities.lock().unwrap_or_else(|p| p.into_inner());
            let state = map.entry(name.clone()).or_default();
            if state.running {
                tracing::info!(personality = %name, ?trigger, "still running from an earlier start; skipping this one");
                return;
            }
            state.running = true;
            if trigger == Trigger::Retry {
                state.retry_at = None;
            }
        }
        self.spawn_run(name, trigger, None);
    }

    /// The personalities discovery found at the last tick of the default
    /// schedule (none while `[discover]` is off).
    pub fn discovered_names(&self) -> Vec<String> {
        let config = self.runtime().config.clone();
        if !(config.discover.owned || config.discover.recent) {
            return Vec::new();
        }
        let found = self.discovered.lock().unwrap_or_else(|p| p.into_inner());
        found.iter().cloned().collect()
    }

    /// The runs the control socket hears of, as they end.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Finished>> {
        self.finished.subscribe()
    }

    /// Runs `job` for `name` now, or right after the run it is in the
    /// middle of; `None` when the daemon is stopping. Asked twice for the
    /// same job while it waits, it runs once, for both.
    pub fn run_now(self: &Arc<Self>, name: &str, job: crate::control::Job) -> Option<RunId> {
        if self.shutdown.is_cancelled() {
            return None;
        }
        let trigger = match job {
            crate::control::Job::Sync => Trigger::Now,
            crate::control::Job::Archive => Trigger::Archive,
        };
        let run = self.next_run.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut map = self.personalities.lock().unwrap_or_else(|p| p.into_inner());
            let state = map.entry(name.to_owned()).or_default();
            if state.running {
                if let Some((_, waiting)) = state.pending.iter().find(|(t, _)| *t == trigger) {
                    return Some(*waiting);
                }
                tracing::info!(
                    personality = name,
                    ?trigger,
                    "asked to run now; starts when the running one ends"
                );
                state.pending.push((trigger, run));
                return Some(run);
            }
            state.running = true;
        }
        tracing::info!(personality = name, ?trigger, "asked to run now");
        self.spawn_run(name.to_owned(), trigger, Some(run));
        Some(run)
    }

    fn spawn_run(self: &Arc<Self>, name: String, trigger: Trigger, run: Option<RunId>) {
        let shared = self.clone();
        self.tasks.spawn(async move {
            let end = shared.run_one(&name, trigger).await;
            shared.done(name, run, end).await;
        });
    }

    /// A run of `name` ended: tells its asker, then starts the run asked
    /// for meanwhile, if any.
    async fn done(self: &Arc<Self>, name: String, run: Option<RunId>, end: JobEnd) {
        let (next, dropped) = {
            let mut map = self.personalities.lock().unwrap_or_else(|p| p.into_inner());
            let state = map.entry(name.clone()).or_default();
            if self.shutdown.is_cancelled() {
                state.running = false;
                (None, std::mem::take(&mut state.pending))
            } else if state.pending.is_empty() {
                state.running = false;
                (None, Vec::new())
            } else {
                (Some(state.pending.remove(0)), Vec::new())
            }
        };
        if let Some(run) = run {
            let _ = self.finished.send(Arc::new(Finished {
                run,
                name: name.clone(),
                end,
            }));
        }
        for (_, run) in dropped {
            let _ = self.finished.send(Arc::new(Finished {
                run,
                name: name.clone(),
                end: JobEnd::not_run(&name),
            }));
        }
        match next {
            Some((trigger, run)) => self.spawn_run(name, trigger, Some(run)),
            None => self.write_status().await,
        }
    }

    async fn run_one(self: &Arc<Self>, name: &str, trigger: Trigger) -> JobEnd {
        let runtime = self.runtime();
        let jitter = runtime.config.daemon.jitter;
        if trigger == Trigger::Schedule && !jitter.is_zero() {
            let delay = jitter.mul_f64(rand::rng().random_range(0.0..1.0));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => return JobEnd::not_run(name),
            }
        }
        let permit = tokio::select! {
            permit = runtime.workers.clone().acquire_owned() => permit,
            _ = self.shutdown.cancelled() => return JobEnd::not_run(name),
        };
        let Ok(permit) = permit else {
            return JobEnd::not_run(name);
        };
        if trigger == Trigger::Archive {
            return self.archive_one(&runtime, name).await;
        }
        let config = &runtime.config;
        let slug: Result<PersonalitySlug, _> = name.parse();
        let plan = match &slug {
            Ok(slug) => Plan::for_personality(config, slug),
            Err(e) => {
                return JobEnd {
                    outcome: Outcome::Failed.as_str().to_owned(),
                    stdout: Vec::new(),
                    stderr: vec![format!("error: {}", e)],
                };
            }
        };
        let mut ctx = SyncContext::new(
            config,
            &runtime.client,
            &self.store,
            &runtime.account,
            &self.shutdown,
        );
        // In the daemon, a run is one personality's sync.
        let budget = RunBudget::new(config.media.max_bytes_per_run);
        ctx.media = self.media_store.as_ref().map(|store| MediaContext {
            fetcher: &runtime.media,
            store,
            budget: &budget,
        });
        if trigger == Trigger::Audit {
            // Unattended, an audit is worth only with its repair.
            let outcome = audit_personality(&ctx, name, true, |_| {}).await;
            crate::commands::audit::log_outcome(&outcome);
            return JobEnd {
                outcome: "audited".to_owned(),
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
        }
        // The ping URL hears of each personality's sync as a pass of its
        // own: a start, then a success or a failure.
        let notifier = Notifier::new(config, Some(runtime.client.cookie().token()));
        notifier.ping_start().await;
        let was_failing = Notifier::was_failing(self.store.root(), name);
        let report = sync_personality(&ctx, name, &plan, |_| {}).await;
        self.finish(name, &report).await;
        // A hook may take up to its timeout: it does not hold a worker.
        drop(permit);
        notifier.personality_finished(&report, was_failing).await;
        let result = if report.outcome().is_error() {
            PassResult::Failure
        } else {
            PassResult::Success
        };
        notifier
            .ping_end(
                result,
                &format!("{}: {}", report.name(), report.outcome().as_str()),
            )
            .await;
        JobEnd {
            outcome: report.outcome().as_str().to_owned(),
            stdout: crate::commands::sync::report_lines(&report),
            stderr: Vec::new(),
        }
    }

    /// One snapshot (and retention) of `name`, off the async threads.
    async fn archive_one(self: &Arc<Self>, runtime: &Arc<Runtime>, name: &str) -> JobEnd {
        let store = self.store.clone();
        let config = runtime.config.clone();
        let who = name.to_owned();
        let result =
            tokio::task::spawn_blocking(move || crate::archive::archive_personality(&store, &config, &who))
                .await;
        let slug = name.parse::<PersonalitySlug>();
        let end = |outcome: &str, stdout: Vec<String>, stderr: Vec<String>| JobEnd {
            outcome: outcome.to_owned(),
            stdout,
            stderr,
        };
        let end = match result {
            Ok(Ok(outcome)) => {
                let prune = &outcome.prune;
                let removed: Vec<&str> = (prune.lines.iter())
                    .filter(|l| !l.keep)
                    .map(|l| l.file.as_str())
                    .chain(prune.leftovers.iter().map(String::as_str))
                    .collect();
                let removed = removed.join(" ");
                match &outcome.written {
                    Some(written) => tracing::info!(
                        personality = %name,
                        file = %written.entry.file,
                        size = written.entry.size,
                        removed = %removed,
                        "snapshot written"
                    ),
                    None => tracing::info!(
                        personality = %name,
                        removed = %removed,
                        "nothing changed since the newest snapshot; none written"
                    ),
                }
                let lines = match &slug {
                    Ok(slug) => crate::commands::archive::archived_lines(slug, &outcome),
                    Err(_) => Vec::new(),
                };
                end("ok", lines, Vec::new())
            }
            Ok(Err(crate::archive::ArchiveError::NoBackup { .. })) => {
                tracing::info!(personality = %name, "no backup to snapshot yet");
                end(
                    "no_backup",
                    vec![format!(
                        "{name}: skipped: no backup yet; `chatkeep sync {name}` makes one"
                    )],
                    Vec::new(),
                )
            }
            Ok(Err(e)) => {
                tracing::error!(personality = %name, error = %e, "snapshot failed");
                end("failed", Vec::new(), vec![format!("error: {name}: {e}")])
            }
            Err(e) => {
                tracing::error!(personality = %name, error = %e, "snapshot task failed");
                end(
                    "failed",
                    Vec::new(),
                    vec![format!("error: {name}: snapshot task failed: {e}")],
                )
            }
        };
        // Then the offsite copies: a remote's failure is a warning, and
        // the local snapshot's outcome stands.
        let mut end = end;
        let remotes: Vec<_> = runtime.config.remotes.iter().collect();
        if end.outcome == "ok"
            && !remotes.is_empty()
            && let Ok(slug) = slug
        {
            let lines = crate::commands::remote::push_all(&runtime.config, &remotes, &[slug]).await;
            for line in &lines.stderr {
                tracing::warn!(personality = %name, "{line}");
            }
            end.stdout.extend(lines.stdout);
            end.stderr.extend(lines.stderr);
        }
        // The status is written once the run is done (see `done`).
        end
    }

    async fn finish(self: &Arc<Self>, name: &str, report: &PersonalityReport) {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(&report.status);
        let retry = {
            let mut map = self.personalities.lock().unwrap_or_else(|p| p.into_inner());
            let state = map.entry(name.to_owned()).or_default();
            state.last_outcome = Some(report.outcome());
            state.last_finished = Some(report.status.last_finished);
            if report.outcome() == Outcome::Ok {
                state.retries = 0;
                None
            } else if report.retryable && state.retries < MAX_RETRIES && !self.shutdown.is_cancelled() {
                let delay = RETRY_BASE * 2u32.pow(state.retries);
                state.retries += 1;
                state.retry_at = chrono::Duration::from_std(delay).ok().map(|d| Utc::now() + d);
                Some((delay, state.retries))
            } else {
                None
            }
        };
        if let Some((delay, attempt)) = retry {
            tracing::info!(
                personality = name,
                attempt,
                delay_s = delay.as_secs(),
                "transient failure; retrying before the next scheduled run"
            );
            let shared = self.clone();
            let name = name.to_owned();
            self.tasks.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {
                        // A reload may have removed it meanwhile.
                        if shared.is_scheduled(&shared.runtime().config, &name) {
                            shared.enqueue(name, Trigger::Retry);
                        }
                    }
                    _ = shared.shutdown.cancelled() => {}
                }
            });
        }
        // One event per sync, at the level its outcome deserves.
        log_summary(report);
        self.write_status().await;
    }

    /// Rewrites `<data_dir>/status.json` and `metrics.prom`, and tells systemd.
    async fn write_status(&self) {
        let runtime = self.runtime();
        let config = &runtime.config;
        let mut next_runs: HashMap<Option<String>, Option<DateTime<Utc>>> = HashMap::new();
        let jobs: Vec<(Uuid, Option<String>)> = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(fires, (id, _))| match fires {
                Fires::Sync(only) => Some((*id, only.clone())),
                Fires::Archive | Fires::Audit => None,
            })
            .collect();
        let mut scheduler = self.scheduler.clone();
        for (id, only) in jobs {
            let next = if self.shutdown.is_cancelled() {
                None
            } else {
                scheduler.next_tick_for_job(id).await.ok().flatten()
            };
            next_runs.insert(only, next);
        }
        let states = self
            .personalities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut names: Vec<String> = config.personalities.iter().map(|p| p.name.to_string()).collect();
        // Besides the configured ones: those discovery found, and one
        // removed from the config while its sync still runs.
        names.extend(
            states
                .iter()
                .filter(|(k, state)| !names.contains(k) && (state.running || self.is_scheduled(config, k)))
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>(),
        );
        let mut personalities = BTreeMap::new();
        for name in &names {
            let state = states.get(name).cloned().unwrap_or_default();
            let own = config
                .personalities
                .iter()
                .find(|p| p.name.as_str() == name)
                .and_then(|p| p.schedule.as_ref());
            // A personality the daemon no longer syncs has no next run.
            let next_run = if self.is_scheduled(config, name) {
                next_runs.get(&own.map(|_| name.clone())).copied().flatten()
            } else {
                None
            };
            personalities.insert(
                name.clone(),
                DaemonPersonality {
                    next_run,
                    running: state.running,
                    last_outcome: state.last_outcome,
                    last_finished: state.last_finished,
                    retry_at: state.retry_at,
                },
            );
        }
        let status = DaemonStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: self.started,
            config: config.source.clone(),
            updated: Utc::now(),
            personalities,
        };
        let data_dir = self.store.root();
        if let Err(e) = status.write(data_dir) {
            tracing::error!(error = %e, "cannot write the daemon status file");
        }
        let statuses: Vec<PersonalityStatus> = names
            .iter()
            .filter_map(|n| personality_dir(data_dir, n).ok())
            .filter_map(|d| PersonalityStatus::read(&d))
            .collect();
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let remotes = crate::remote::status::read(&config.archive.dir);
        if let Err(e) = metrics::write_metrics(data_dir, &config.metrics, &statuses, &counters, &remotes) {
            tracing::error!(error = %e, file = %config.metrics.file.display(), "cannot write the metrics file");
        }
        notify::status(&status_line(&status));
    }
}

/// One line for `systemctl status`.
fn status_line(status: &DaemonStatus) -> String {
    let total = status.personalities.len();
    let running = status.personalities.values().filter(|p| p.running).count();
    let ok = status
        .personalities
        .values()
        .filter(|p| p.last_outcome == Some(Outcome::Ok))
        .count();
    let failed = status
        .personalities
        .values()
        .filter(|p| p.last_outcome.is_some_and(Outcome::is_error))
        .count();
    let next = status.personalities.values().filter_map(|p| p.next_run).min();
    let interrupted = status
        .personalities
        .values()
        .filter(|p| p.last_outcome == Some(Outcome::Interrupted))
        .count();
    let mut line = format!(
        "{}: {running} running, {ok} ok, {failed} not ok",
        crate::words::counted(total as u64, "personality", "personalities")
    );
    if interrupted > 0 {
        line.push_str(&format!(", {interrupted} interrupted"));
    }
    if let Some(next) = next {
        line.push_str(&format!("; next run {}", next.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    line
}
