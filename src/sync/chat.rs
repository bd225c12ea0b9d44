//! Brings a personality's stored chat history up to date with the service.
//!
//! A sync finishes and commits any walk an earlier run left (see
//! [`walk`](super::walk)), then walks from the newest message down to stored
//! history (and through the refreshed range), and now and then probes below
//! the oldest stored message for older history. Each walk's commit compares
//! what came back with the store ([`reconcile`](super::reconcile)).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::reconcile::{self, Learnt, Refreshed};
use super::walk::{PageSource, Target, WalkLimits, WalkProgress, Walker};
use crate::api::ApiError;
use crate::config::{Refresh, format_size};
use crate::store::{ChatState, ChatStore, ChatStoreError, Checkpoint, CommitSummary, SpoolError, WalkKind};

/// How a personality's chat is synced.
#[derive(Debug, Clone, Copy)]
pub struct ChatOptions {
    pub limits: WalkLimits,
    /// How much of the newest history is compared with the store.
    pub refresh: Refresh,
    /// How often the history below the oldest stored message is probed;
    /// zero: at every sync.
    pub tail_check: Duration,
}

/// What a chat sync did.
#[derive(Debug, Clone, Default)]
pub struct ChatReport {
    /// Messages stored for the first time.
    pub new_messages: u64,
    pub total_messages: u64,
    /// Of the new ones: placed below the newest stored (late), and older
    /// than everything stored before.
    pub late: u64,
    pub older: u64,
    /// Stored messages that changed upstream (a new revision each).
    pub revised: u64,
    /// Stored messages newly marked deleted upstream, and marked ones back.
    pub deleted: u64,
    pub returned: u64,
    /// Chat requests made by this run (not counting an earlier interrupted run).
    pub requests: u64,
    /// True when the run continued a walk an earlier run left unfinished.
    pub resumed: bool,
    /// True when the run probed below the oldest stored message.
    pub probed_tail: bool,
    /// Empty answers that turned out not to be the beginning of history.
    pub glitches: u64,
    /// The service refused a limit of the page size plus one.
    pub larger_limit_refused: bool,
    /// Messages a tie group larger than the largest page may have hidden.
    pub warnings: Vec<String>,
}

impl ChatReport {
    fn add(&mut self, commit: CommitSummary) {
        self.new_messages += commit.added;
        self.late += commit.late;
        self.older += commit.older;
        self.revised += commit.revised;
        self.deleted += commit.deleted;
        self.returned += commit.returned;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChatSyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] ChatStoreError),
    #[error("stopped at a page boundary; the walk resumes from its checkpoint on the next run")]
    Cancelled,
    #[error(
        "this walk has spooled {} ({messages} messages) without reaching the stored history or the \
         beginning, the most [storage] max_walk_spool = {} allows; it stops here and keeps them. If the \
         history really is this large, raise max_walk_spool, and the next run goes on from here; to give \
         the walk up instead, delete this personality's walk-*.spool (nothing stored is touched)",
        format_size(*spooled),
        format_size(*limit)
    )]
    SpoolLimit { spooled: u64, messages: u64, limit: u64 },
}

impl From<SpoolError> for ChatSyncError {
    fn from(e: SpoolError) -> Self {
        ChatSyncError::Store(e.into())
    }
}

/// Brings the stored history up to date with the service: finishes a walk
/// an earlier run left, walks from the top, and probes below the oldest
/// message when `tail_check` says it is time.
pub async fn sync_chat(
    store: &mut ChatStore,
    source: &impl PageSource,
    options: ChatOptions,
    cancel: &CancellationToken,
    mut on_page: impl FnMut(WalkProgress),
) -> Result<ChatReport, ChatSyncError> {
    let mut report = ChatReport::default();
    let mut limits = options.limits;
    limits.larger_limit &= !store.state().larger_limit_refused;
    let mut run = Run {
        store,
        options,
        walker: Walker {
            source,
            limits,
            cancel,
            on_page: &mut on_page,
            report: &mut report,
        },
    };
    let pending = run.store.open_walk()?.checkpoint().map(|cp| cp.kind);
    if let Some(kind) = pending {
        // It began in an earlier run, so messages may have arrived above it
        // since: the walk from the top below picks them up.
        tracing::info!(kind = ?kind, "resuming an interrupted walk");
        run.walker.report.resumed = true;
        run.walk_and_commit(kind).await?;
    }
    run.walk_and_commit(WalkKind::Top).await?;
    let probed = pending == Some(WalkKind::Tail);
    if !probed && tail_due(run.store.state(), options.tail_check, Utc::now()) {
        run.walk_and_commit(WalkKind::Tail).await?;
    }
    report.total_messages = store.state().message_count;
    Ok(report)
}

/// Whether a probe below the oldest message is due.
pub fn tail_due(state: &ChatState, every: Duration, now: DateTime<Utc>) -> bool {
    if state.oldest.is_none() {
        return false;
    }
    match state.tail_probed_at {
        None => true,
        Some(at) => now.signed_duration_since(at).to_std().unwrap_or(Duration::ZERO) >= every,
    }
}

/// One sync's walks, and what they share.
struct Run<'a, P, F> {
    store: &'a mut ChatStore,
    options: ChatOptions,
    walker: Walker<'a, P, F>,
}

impl<P: PageSource, F: FnMut(WalkProgress)> Run<'_, P, F> {
    /// One walk of `kind` (resumed, or new) and its commit.
    async fn walk_and_commit(&mut self, kind: WalkKind) -> Result<(), ChatSyncError> {
        let mut spool = self.store.open_walk()?;
        let checkpoint = match spool.checkpoint() {
            Some(cp) => cp.clone(),
            None => self.start(kind),
        };
        if checkpoint.kind == WalkKind::Tail {
            self.walker.report.probed_tail = true;
        }
        if !spool.is_done() {
            let target = self.target(checkpoint.kind)?;
            self.walker.walk(&mut spool, checkpoint, &target).await?;
        }
        let refreshed = Refreshed {
            refresh: self.options.refresh,
            page_size: self.walker.limits.page_size,
        };
        let learnt = Learnt {
            larger_limit_refused: self.walker.report.larger_limit_refused,
        };
        let summary = reconcile::commit_walk(self.store, spool, refreshed, learnt, Utc::now())?;
        if let Some(latest) = summary.future_latest {
            let warning = format!(
                "{} message{} dated more than {} ahead of this machine's clock (the latest {}): stored in \
                 place, but not taken as the newest message, so later syncs still stop at the true one; \
                 check the clock if this repeats",
                summary.future,
                if summary.future == 1 { " is" } else { "s are" },
                crate::config::format_duration(crate::store::FUTURE_TOLERANCE),
                latest.to_rfc3339()
            );
            tracing::warn!("{warning}");
            self.walker.report.warnings.push(warning);
        }
        self.walker.report.add(summary);
        Ok(())
    }

    /// Where a new walk of `kind` starts.
    fn start(&self, kind: WalkKind) -> Checkpoint {
        let state = self.store.state();
        let cursor = match kind {
            WalkKind::Tail => state.oldest.map(|oldest| {
                // At-or-older would return the oldest stored messages again.
                if state.before_ts_inclusive == Some(true) {
                    oldest.next_down()
                } else {
                    oldest
                }
            }),
            WalkKind::Top | WalkKind::Audit => None,
        };
        Checkpoint::new(kind, cursor, self.walker.limits.ordinary())
    }

    /// Where a walk of `kind` stops, from the store as it is.
    fn target(&self, kind: WalkKind) -> Result<Target, ChatSyncError> {
        let state = self.store.state();
        Ok(match (kind, state.oldest) {
            (WalkKind::Tail, Some(oldest)) => Target::Tail {
                oldest,
                known: self.store.oldest_ids()?,
                confirm: state.beginning.is_none(),
            },
            (WalkKind::Audit, _) => Target::Audit,
            _ => {
                let head = state.head.clone();
                let (refresh_messages, refresh_below) = match self.options.refresh {
                    Refresh::FirstPage => (0, None),
                    Refresh::Messages(n) => (u64::from(n), None),
                    Refresh::Span(span) => (
                        0,
                        head.as_ref()
                            .and_then(|h| crate::message::Ts::new(h.ts.as_f64() - span.as_secs_f64())),
                    ),
                };
                Target::Top {
                    head,
                    refresh_messages,
                    refresh_below,
                }
            }
        })
    }
}
