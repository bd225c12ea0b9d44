//! Joins the client and the store: one personality's sync, section by
//! section. A failed section fails only itself; an auth failure or a bot
//! wall stops the personality (nothing else can succeed, and asking again
//! is impolite). The chat walk keeps its checkpoint whatever happens.

pub mod audit;
pub mod chat;
pub mod memories;
pub mod reconcile;
pub mod walk;

use std::collections::BTreeMap;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::api::documents::{Document, entry_count};
use crate::api::{Account, ApiClient, ApiError, Profile};
use crate::config::{MediaKinds, Refresh, Section};
use crate::media::{MediaContext, MediaJob, MediaTotals};
use crate::status::{ChatTotals, Outcome, PersonalityStatus, SectionStatus};
use crate::store::{ChatStore, PersonalityDir, Store, StoreError};
use chat::{ChatOptions, ChatReport, ChatSyncError};
use walk::{ServicePages, WalkLimits, WalkProgress};

/// The logged-in account, asked for at most once per run (or per daemon
/// configuration), and only when a sync needs to know what it owns.
#[derive(Debug, Default)]
pub struct AccountCache {
    cell: tokio::sync::OnceCell<Account>,
}

impl AccountCache {
    pub async fn get(&self, client: &ApiClient) -> Result<&Account, ApiError> {
        self.cell.get_or_try_init(|| client.me()).await
    }
}

/// What a sync needs besides the personality's name.
pub struct SyncContext<'a> {
    pub client: &'a ApiClient,
    pub store: &'a Store,
    /// The account, to tell owned personalities.
    pub account: &'a AccountCache,
    pub limits: WalkLimits,
    pub max_memory_pages: u32,
    /// Size at which a chat log is sealed (`[storage] segment_size`).
    pub segment_size: u64,
    pub cancel: &'a CancellationToken,
    /// Where media is downloaded to, and with what; `None`: not at all.
    pub media: Option<MediaContext<'a>>,
}

impl<'a> SyncContext<'a> {
    /// What `config` sets for a run of `client` over `store`.
    pub fn new(
        config: &crate::config::Config,
        client: &'a ApiClient,
        store: &'a Store,
        account: &'a AccountCache,
        cancel: &'a CancellationToken,
    ) -> SyncContext<'a> {
        SyncContext {
            client,
            store,
            account,
            limits: WalkLimits::from_config(config),
            max_memory_pages: config.sync.max_memory_pages,
            segment_size: config.storage.segment_size,
            cancel,
            media: None,
        }
    }
}

/// What one personality's sync did: its status file, plus chat details.
#[derive(Debug, Clone)]
pub struct PersonalityReport {
    pub status: PersonalityStatus,
    pub chat: Option<ChatReport>,
    /// Stopped by a shutdown at a page boundary; the walk resumes next run.
    pub cancelled: bool,
    /// Every failure was transient (5xx, network, garbled body, 429): worth
    /// retrying before the next scheduled run.
    pub retryable: bool,
}

impl PersonalityReport {
    pub fn name(&self) -> &str {
        &self.status.personality
    }

    pub fn outcome(&self) -> Outcome {
        self.status.outcome
    }
}

/// Why a whole personality could not be synced.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

impl Stop {
    /// Failures after which no further request for this account helps.
    fn halts(&self) -> bool {
        matches!(
            self,
            Stop::Api(ApiError::Auth { .. } | ApiError::BotWall { .. } | ApiError::RateLimited { .. })
        )
    }

    fn is_transient(&self) -> bool {
        matches!(self, Stop::Api(e) if e.is_transient())
    }

    fn outcome(&self) -> Outcome {
        match self {
            Stop::Api(ApiError::Auth { .. }) => Outcome::AuthExpired,
            Stop::Api(ApiError::BotWall { .. }) => Outcome::BotWall,
            Stop::Api(ApiError::RateLimited { .. }) => Outcome::RateLimited,
            _ => Outcome::Failed,
        }
    }
}

/// What to back up of one personality, and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sections: Vec<Section>,
    /// How much of the newest chat history is compared with the store.
    pub refresh: Refresh,
    /// How often the history below the oldest message is probed.
    pub tail_check: std::time::Duration,
    /// Which kinds of media are downloaded after the chat.
    pub media: MediaKinds,
}

impl Plan {
    /// The plan the config gives `name`.
    pub fn for_personality(config: &crate::config::Config, name: &crate::config::PersonalitySlug) -> Plan {
        Plan {
            sections: config.sections_for(name),
            refresh: config.refresh_for(name),
            tail_check: config.tail_check_for(name),
            media: config.media_kinds_for(name),
        }
    }
}

/// Syncs the sections of one personality and writes its status file. The
/// caller reports it ([`summary`]): a terminal wants it on standard output,
/// the daemon in its log.
pub async fn sync_personality(
    ctx: &SyncContext<'_>,
    name: &str,
    plan: &Plan,
    on_page: impl FnMut(WalkProgress),
) -> PersonalityReport {
    let sections = &plan.sections;
    let started = Utc::now();
    let requests_before = ctx
        .client
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut run = Run {
        sections: Section::all()
            .into_iter()
            .map(|s| {
                let state = if sections.contains(&s) {
                    SectionStatus::NotAttempted
                } else {
                    SectionStatus::Skipped
                };
                (s, state)
            })
            .collect(),
        first_error: None,
        halt: None,
        chat: None,
        chat_totals: None,
        cancelled: false,
        personality_id: None,
        only_transient: true,
        unknown: false,
        media: None,
    };
    let dir = match ctx.store.personality(name) {
        Ok(dir) => Some(dir),
        Err(e) => {
            run.fail(None, Stop::Store(e));
            None
        }
    };
    // A name the service does not know, with nothing here before, leaves
    // nothing here after: no directory for `status` to list forever.
    let existed = dir.as_ref().is_some_and(|d| d.path().exists());
    if let Some(dir) = &dir {
        run.sync(ctx, dir, name, plan, on_page).await;
        // After the store's commit: the index never claims what the store
        // lacks. Skipped while shutting down (the next sync catches up).
        if !ctx.cancel.is_cancelled() && crate::search::has_history(dir.path()) {
            crate::search::index_after_commit(ctx.store, name).await;
        }
    }
    let status = run.status(name, started, ctx.client, requests_before);
    match &dir {
        Some(_) if run.unknown && !existed => {
            if let Err(e) = ctx.store.remove_personality(name) {
                tracing::warn!(personality = name, error = %e, "cannot remove the directory of an unknown name");
            }
        }
        Some(dir) => {
            if let Err(e) = status.clone().write(dir) {
                tracing::error!(personality = name, error = %e, "cannot write the status file");
            }
        }
        None => {}
    }
    PersonalityReport {
        retryable: run.first_error.is_some() && run.only_transient && !run.cancelled,
        status,
        chat: run.chat,
        cancelled: run.cancelled,
    }
}

/// The state of one personality's sync while it runs.
struct Run {
    sections: BTreeMap<Section, SectionStatus>,
    first_error: Option<String>,
    /// Set by a failure that stops the personality.
    halt: Option<Outcome>,
    chat: Option<ChatReport>,
    chat_totals: Option<ChatTotals>,
    cancelled: bool,
    personality_id: Option<String>,
    /// No failure so far was anything but transient.
    only_transient: bool,
    /// The service does not know the name and there is no backup of it:
    /// most likely a typo.
    unknown: bool,
    media: Option<MediaTotals>,
}

impl Run {
    fn wants(&self, s: Section) -> bool {
        self.halt.is_none() && self.sections.get(&s) == Some(&SectionStatus::NotAttempted)
    }

    fn fail(&mut self, section: Option<Section>, stop: Stop) {
        let message = stop.to_string();
        self.only_transient &= stop.is_transient();
        // A failure that stops the personality as its first error is shown
        // by the summary line (and the daemon's log of it): said once.
        if (stop.halts() || section.is_none()) && self.first_error.is_none() {
            tracing::debug!(section = section.map(Section::as_str), error = %message, "section failed");
        } else {
            tracing::warn!(section = section.map(Section::as_str), error = %message, "section failed");
        }
        if stop.halts() || section.is_none() {
            self.halt = Some(stop.outcome());
        }
        if let Some(s) = section {
            self.sections.insert(
                s,
                SectionStatus::Failed {
                    error: message.clone(),
                },
            );
        }
        self.first_error.get_or_insert(message);
    }

    fn record<T>(
        &mut self,
        section: Section,
        result: Result<T, Stop>,
        status: impl FnOnce(T) -> SectionStatus,
    ) {
        match result {
            Ok(v) => {
                self.sections.insert(section, status(v));
            }
            Err(stop) => self.fail(Some(section), stop),
        }
    }

    async fn sync(
        &mut self,
        ctx: &SyncContext<'_>,
        dir: &PersonalityDir,
        name: &str,
        plan: &Plan,
        on_page: impl FnMut(WalkProgress),
    ) {
        // The profile is always fetched: it turns the slug into the id.
        let profile = match ctx.client.profile(name).await {
            Ok(p) => p,
            Err(ApiError::NotFound { .. }) => {
                let message = if dir.holds_backup() {
                    format!(
                        "`{name}` was not found upstream (deleted or renamed?); its backup in {} is kept",
                        dir.path().display()
                    )
                } else {
                    self.unknown = true;
                    unknown_name(name, dir)
                };
                return self.fail(None, Stop::Other(message));
            }
            Err(e) => return self.fail(None, e.into()),
        };
        self.personality_id = Some(profile.id.to_string());
        let mut chat = match check_identity(dir, name, &profile, ctx.segment_size) {
            Ok(chat) => chat,
            Err(stop) => return self.fail(None, stop),
        };
        if self.wants(Section::Profile) {
            let mut doc = profile.raw.get().as_bytes().to_vec();
            doc.push(b'\n');
            let result = dir
                .save_versioned(&dir.document_path(""), &doc)
                .map_err(Stop::from);
            self.record(Section::Profile, result, |change| SectionStatus::Saved {
                change: change.as_str().into(),
                entries: None,
            });
        }
        if self.wants(Section::Memories) {
            let result = sync_memories(ctx, dir, &profile).await;
            self.record(Section::Memories, result, |s| s);
        }
        let needs_owner = self.wants(Section::Knowledge) || self.wants(Section::Training);
        let owner = if needs_owner {
            match ctx.account.get(ctx.client).await {
                Ok(account) => profile.user_id.as_deref() == Some(account.id.as_str()),
                Err(e) => return self.fail(None, e.into()),
            }
        } else {
            false
        };
        for (section, document, suffix) in [
            (Section::Knowledge, Document::Knowledge, "_knowledge"),
            (Section::Training, Document::Training, "_training"),
            (
                Section::UserPersonalization,
                Document::UserPersonalization,
                "_user_personalization",
            ),
        ] {
            if !self.wants(section) {
                continue;
            }
            // Non-owners get 403 for these, which means "not yours" here and
            // "session dead" everywhere else: do not ask.
            if document != Document::UserPersonalization && !owner {
                self.sections.insert(section, SectionStatus::NotAvailable);
                continue;
            }
            let result = sync_document(ctx, dir, &profile, document, suffix).await;
            self.record(section, result, |s| s);
        }
        if self.wants(Section::Chat) {
            let pages = ServicePages {
                client: ctx.client,
                id: &profile.id,
            };
            let options = ChatOptions {
                limits: ctx.limits,
                refresh: plan.refresh,
                tail_check: plan.tail_check,
            };
            match chat::sync_chat(&mut chat, &pages, options, ctx.cancel, on_page).await {
                Ok(report) => {
                    self.sections.insert(
                        Section::Chat,
                        SectionStatus::Chat {
                            new: report.new_messages,
                            total: report.total_messages,
                            requests: report.requests,
                            revised: report.revised,
                            deleted: report.deleted,
                        },
                    );
                    self.chat = Some(report);
                    if chat.state().imported_unverified {
                        self.verify_import(ctx, &mut chat, &pages).await;
                    }
                }
                // A clean stop, not a failure: the walk keeps its
                // checkpoint and the next sync resumes it.
                Err(ChatSyncError::Cancelled) => {
                    self.cancelled = true;
                    let spooled = match chat.walk_in_progress() {
                        Ok(walk) => walk.map_or(0, |w| w.spooled),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the interrupted walk's spool");
                            0
                        }
                    };
                    tracing::debug!(
                        spooled,
                        "chat walk stopped at a page boundary; the next run resumes it"
                    );
                    self.sections
                        .insert(Section::Chat, SectionStatus::Interrupted { spooled });
                }
                Err(ChatSyncError::Api(e)) => self.fail(Some(Section::Chat), e.into()),
                Err(e @ (ChatSyncError::Store(_) | ChatSyncError::SpoolLimit { .. })) => {
                    self.fail(Some(Section::Chat), Stop::Other(e.to_string()))
                }
            }
        }
        self.sync_media(ctx, dir, plan, &chat, &profile).await;
        let state = chat.state();
        let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.chat_totals = Some(ChatTotals {
            total: state.message_count,
            new: self.chat.as_ref().map_or(0, |c| c.new_messages),
            oldest: state.oldest.map(|t| t.to_rfc3339()),
            newest: state.head.as_ref().map(|h| h.ts.to_rfc3339()),
            revised: state.revised(),
            deleted_upstream: state.deleted_upstream(),
            beginning_confirmed_at: state.beginning.as_ref().map(|b| time(b.confirmed_at)),
            tail_probed_at: state.tail_probed_at.map(time),
        });
    }

    /// Compares an imported history with the service's, once, after
    /// `chatkeep import`: an audit that repairs (see `crate::import`).
    /// Its failure is a warning; the next sync tries again.
    async fn verify_import(&mut self, ctx: &SyncContext<'_>, chat: &mut ChatStore, pages: &ServicePages<'_>) {
        if ctx.cancel.is_cancelled() {
            return;
        }
        tracing::info!("comparing the imported history with the service's (once, after an import)");
        match audit::audit_chat(chat, pages, ctx.limits, true, ctx.cancel, |_| {}).await {
            Ok(report) => {
                let repaired = report.repaired.unwrap_or_default();
                tracing::info!(
                    replaced = repaired.revised,
                    stored = repaired.stored,
                    not_upstream = repaired.marked,
                    "imported history compared: the service's copies replace differing imported ones \
                     (kept as earlier versions), what the import lacked is stored, what the service no \
                     longer has is kept and marked"
                );
            }
            Err(ChatSyncError::Cancelled) => self.cancelled = true,
            Err(e) => tracing::warn!(
                error = %e,
                "the imported history was not compared with the service's; the next sync tries again"
            ),
        }
    }

    /// Downloads the media of what is stored, after the chat and the
    /// documents are safe. Its failures are warnings and counts in the
    /// status, never the backup's outcome: the history is whole without
    /// them, and they are tried again.
    async fn sync_media(
        &mut self,
        ctx: &SyncContext<'_>,
        dir: &PersonalityDir,
        plan: &Plan,
        chat: &ChatStore,
        profile: &Profile,
    ) {
        let Some(media) = ctx.media else { return };
        if self.cancelled || ctx.cancel.is_cancelled() || !plan.media.any() {
            return;
        }
        let job = MediaJob {
            fetcher: media.fetcher,
            store: media.store,
            budget: media.budget,
            dir: dir.path(),
            kinds: plan.media,
            cancel: ctx.cancel,
        };
        match crate::media::fetch_for_personality(&job, chat, Some(profile.raw.get())).await {
            // A history without media says nothing of it.
            Ok(totals) if totals.is_empty() => {}
            Ok(totals) => self.media = Some(totals),
            Err(e) => tracing::warn!(error = %e, "media not looked at"),
        }
    }

    fn status(
        &self,
        name: &str,
        started: chrono::DateTime<Utc>,
        client: &ApiClient,
        requests_before: u64,
    ) -> PersonalityStatus {
        let attempted: Vec<_> = self
            .sections
            .values()
            .filter(|s| !matches!(s, SectionStatus::Skipped | SectionStatus::NotAttempted))
            .collect();
        let failed = attempted
            .iter()
            .filter(|s| matches!(s, SectionStatus::Failed { .. }))
            .count();
        let outcome = match self.halt {
            Some(o) => o,
            None if failed == 0 && self.cancelled => Outcome::Interrupted,
            None if failed == 0 => Outcome::Ok,
            None if failed < attempted.len() => Outcome::Partial,
            None => Outcome::Failed,
        };
        let finished = Utc::now();
        PersonalityStatus {
            personality: name.to_owned(),
            personality_id: self.personality_id.clone(),
            last_started: started,
            last_finished: finished,
            outcome,
            error: self.first_error.clone(),
            sections: self
                .sections
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect(),
            requests: client.stats().requests.load(std::sync::atomic::Ordering::Relaxed) - requests_before,
            chat: self.chat_totals.clone(),
            last_success: (outcome == Outcome::Ok).then_some(finished),
            previous_outcome: None,
            media: self.media.clone(),
        }
    }
}

/// What a sync says of a name the service does not know and that has no
/// backup here. A directory an earlier run left (a status file, nothing
/// backed up) is named, with the command that removes it.
fn unknown_name(name: &str, dir: &PersonalityDir) -> String {
    let mut message = format!("no such personality `{name}` (check the spelling)");
    if dir.path().exists() {
        message.push_str(&format!(
            "; `chatkeep forget {name}` removes what an earlier run left in {}",
            dir.path().display()
        ));
    }
    message
}

/// What an audit of one personality ended with.
#[derive(Debug)]
pub struct AuditOutcome {
    pub name: String,
    pub result: Result<audit::AuditReport, String>,
    /// Set when the service refused the session, walled the client off or
    /// kept rate limiting: nothing else can succeed now.
    pub halt: Option<Outcome>,
    pub cancelled: bool,
}

/// Audits one personality: its whole history on the service against its
/// backup (see [`audit`]), repairing the backup when asked. The backup must
/// exist.
pub async fn audit_personality(
    ctx: &SyncContext<'_>,
    name: &str,
    repair: bool,
    on_page: impl FnMut(WalkProgress),
) -> AuditOutcome {
    let result = audit_inner(ctx, name, repair, on_page).await;
    // A repair commits to the store: its changes become findable.
    if repair && !ctx.cancel.is_cancelled() {
        crate::search::index_after_commit(ctx.store, name).await;
    }
    let (halt, cancelled) = match &result {
        Err(AuditStop::Sync(ChatSyncError::Cancelled)) => (None, true),
        Err(AuditStop::Sync(ChatSyncError::Api(e))) | Err(AuditStop::Stop(Stop::Api(e))) => {
            let stop = Stop::Api(e.clone());
            (stop.halts().then(|| stop.outcome()), false)
        }
        _ => (None, false),
    };
    AuditOutcome {
        name: name.to_owned(),
        result: result.map_err(|e| e.to_string()),
        halt,
        cancelled,
    }
}

#[derive(Debug, thiserror::Error)]
enum AuditStop {
    #[error(transparent)]
    Stop(#[from] Stop),
    #[error(transparent)]
    Sync(#[from] ChatSyncError),
}

async fn audit_inner(
    ctx: &SyncContext<'_>,
    name: &str,
    repair: bool,
    on_page: impl FnMut(WalkProgress),
) -> Result<audit::AuditReport, AuditStop> {
    let dir = ctx.store.personality(name).map_err(Stop::from)?;
    if !dir.path().is_dir() {
        return Err(Stop::Other(format!(
            "no backup of `{name}` in {}; run `chatkeep sync {name}` first",
            ctx.store.root().display()
        ))
        .into());
    }
    let profile = match ctx.client.profile(name).await {
        Ok(p) => p,
        Err(ApiError::NotFound { .. }) => {
            return Err(Stop::Other(format!(
                "`{name}` was not found upstream (deleted or renamed?); its backup in {} is kept",
                dir.path().display()
            ))
            .into());
        }
        Err(e) => return Err(Stop::Api(e).into()),
    };
    let mut chat = check_identity(&dir, name, &profile, ctx.segment_size)?;
    let pages = ServicePages {
        client: ctx.client,
        id: &profile.id,
    };
    Ok(audit::audit_chat(&mut chat, &pages, ctx.limits, repair, ctx.cancel, on_page).await?)
}

/// Opens the chat store and refuses to mix two personalities' histories
/// when a slug now names another personality.
fn check_identity(
    dir: &PersonalityDir,
    name: &str,
    profile: &Profile,
    segment_size: u64,
) -> Result<ChatStore, Stop> {
    let mut chat = dir.chat(segment_size).map_err(|e| Stop::Other(e.to_string()))?;
    if let Some(stored) = chat.state().personality_id.as_deref()
        && stored != profile.id.as_str()
    {
        return Err(Stop::Other(format!(
            "`{name}` now names personality {}, but its backup holds {stored}; \
             move {} aside to start a new backup, or fix the name in the config",
            profile.id,
            dir.path().display()
        )));
    }
    chat.set_personality_id(profile.id.as_str())
        .map_err(|e| Stop::Other(e.to_string()))?;
    Ok(chat)
}

async fn sync_memories(
    ctx: &SyncContext<'_>,
    dir: &PersonalityDir,
    profile: &Profile,
) -> Result<SectionStatus, Stop> {
    let fetched = memories::fetch(ctx.client, &profile.id, ctx.max_memory_pages).await?;
    let complete = fetched.complete;
    let path = dir.document_path("_memories");
    let stored = match dir.read_document(&path)? {
        Some(bytes) => memories::parse_stored(&bytes)
            .map_err(|e| Stop::Other(format!("{} is unreadable ({e}); move it aside", path.display())))?,
        None => Vec::new(),
    };
    if stored.is_empty() && fetched.newest_first.is_empty() {
        return Ok(SectionStatus::None);
    }
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (merged, counts) =
        memories::merge(stored, fetched, &now).map_err(|e| Stop::Api(ApiError::Contract(e)))?;
    let change = dir.save_versioned(&path, &memories::render(&merged))?;
    Ok(SectionStatus::Merged {
        change: change.as_str().into(),
        new: counts.new,
        changed: counts.changed,
        vanished: counts.vanished,
        upstream: counts.upstream,
        total: counts.total,
        complete,
    })
}

async fn sync_document(
    ctx: &SyncContext<'_>,
    dir: &PersonalityDir,
    profile: &Profile,
    document: Document,
    suffix: &str,
) -> Result<SectionStatus, Stop> {
    let Some(doc) = ctx.client.document(&profile.id, document).await? else {
        return Ok(SectionStatus::None);
    };
    let entries = (document != Document::UserPersonalization).then(|| entry_count(&doc));
    let mut bytes = doc.into_bytes();
    bytes.push(b'\n');
    let change = dir.save_versioned(&dir.document_path(suffix), &bytes)?;
    Ok(SectionStatus::Saved {
        change: change.as_str().into(),
        entries,
    })
}

/// One line saying what changed, for the terminal and the log; the error
/// that stopped anything is not in it ([`log_summary`] gives it as a field,
/// `sync` prints it on a line of its own).
pub fn summary(report: &PersonalityReport) -> String {
    let mut parts = Vec::new();
    for section in Section::all() {
        let Some(state) = report.status.sections.get(section.as_str()) else {
            continue;
        };
        let label = section.as_str().replace('_', " ");
        let text = match state {
            SectionStatus::Saved {
                change,
                entries: Some(n),
            } => format!(
                "{label} {} ({change})",
                crate::words::counted(*n, "entry", "entries")
            ),
            SectionStatus::Saved {
                change,
                entries: None,
            } => format!("{label} {change}"),
            SectionStatus::Merged {
                new, total, vanished, ..
            } => format!("{label} {new} new / {total} total / {vanished} vanished"),
            SectionStatus::Chat {
                new,
                total,
                requests,
                revised,
                deleted,
            } => {
                let mut text = format!("chat {new} new / {total} total");
                if *revised > 0 {
                    text.push_str(&format!(" / {revised} revised"));
                }
                if *deleted > 0 {
                    text.push_str(&format!(" / {deleted} gone upstream"));
                }
                format!("{text} ({})", crate::words::count(*requests, "request"))
            }
            SectionStatus::None => format!("{label}: none"),
            SectionStatus::NotAvailable => format!("{label}: not available to this account"),
            SectionStatus::Skipped => continue,
            SectionStatus::NotAttempted => format!("{label}: not attempted"),
            SectionStatus::Interrupted { spooled: 0 } => {
                format!("{label}: interrupted (the next run resumes it)")
            }
            SectionStatus::Interrupted { spooled } => format!(
                "{label}: interrupted, {} fetched and not stored yet (the next run resumes the walk and stores them)",
                crate::words::count(*spooled, "message")
            ),
            SectionStatus::Failed { .. } => format!("{label}: FAILED"),
        };
        parts.push(text);
    }
    if let Some(media) = &report.status.media {
        parts.push(media_summary(media));
    }
    let untouched = parts.iter().all(|p| p.ends_with(": not attempted"));
    match report.outcome() {
        // Said in words: `auth_expired` is the status files' name for it.
        Outcome::AuthExpired if untouched => format!(
            "{}: the service refused the session cookie; nothing was backed up",
            report.name()
        ),
        Outcome::AuthExpired => format!(
            "{}: the service refused the session cookie; {}",
            report.name(),
            parts.join("; ")
        ),
        outcome => format!("{}: {}; {}", report.name(), outcome.as_str(), parts.join("; ")),
    }
}

/// `media 3 new (1.2 MiB) / 40 stored / 2 pending / 1 failed / 3 gone`,
/// the zero counts left out (but the stored one).
fn media_summary(media: &MediaTotals) -> String {
    let mut text = format!("media {} new", media.fetched_now);
    if media.bytes_now > 0 {
        text.push_str(&format!(" ({})", crate::words::size(media.bytes_now)));
    }
    text.push_str(&format!(" / {} stored", media.fetched));
    for (n, label) in [
        (media.pending, "pending"),
        (media.failed, "failed"),
        (media.gone, "gone"),
        (media.refused, "refused"),
    ] {
        if n > 0 {
            text.push_str(&format!(" / {n} {label}"));
        }
    }
    text
}

/// Logs a personality's sync as one event, with the fields a log search
/// wants (`personality`, `outcome`, and `error` when something failed), at
/// the level its outcome deserves: INFO when everything was backed up or a
/// shutdown stopped it cleanly, WARN when some sections were and the others
/// will be tried again, ERROR when nothing could be (a failure, a refused
/// cookie, a bot wall, the rate limit).
pub fn log_summary(report: &PersonalityReport) {
    let line = summary(report);
    let name = report.name();
    let outcome = report.outcome().as_str();
    let error = report.status.error.as_deref().map(tracing::field::display);
    match report.outcome() {
        Outcome::Ok | Outcome::Interrupted => {
            tracing::info!(personality = name, outcome, error, "{line}")
        }
        Outcome::Partial => tracing::warn!(personality = name, outcome, error, "{line}"),
        Outcome::Failed | Outcome::AuthExpired | Outcome::BotWall | Outcome::RateLimited => {
            tracing::error!(personality = name, outcome, error, "{line}")
        }
    }
}
