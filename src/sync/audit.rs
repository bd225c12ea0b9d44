//! The audit: the service's whole history walked again and compared with
//! the store, message by message.
//!
//! A sync compares only the newest part of the history; a regeneration or a
//! deletion deeper down, or a hole a glitch left long ago, shows only to an
//! audit. Its walk is a walk like any other (spooled, resumable, under the
//! one rate limit) into a spool of its own, `audit.spool`, so that syncs go
//! on beside an interrupted audit. Once the walk reached the (confirmed)
//! beginning, the spool is read oldest first and merged with the stored
//! history by `ts`, one tie group at a time, so memory does not grow with
//! the history. With `repair`, what differs goes through one commit:
//! missing messages stored in their place, changes as revisions, messages
//! gone upstream marked. Comparing again after that finds nothing, so an
//! audit cut short after its commit and run again changes nothing twice.
//!
//! An interrupted audit resumes only if nothing was committed to the
//! history since it began: pages walked before a sync are older than what
//! that sync stored, and comparing them would undo it (a regenerated reply
//! back to its old version, a deleted message unmarked). Otherwise it walks
//! again from the newest message.

use std::collections::HashMap;
use std::iter::Peekable;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::chat::{ChatReport, ChatSyncError};
use super::walk::{PageSource, Target, WalkLimits, WalkProgress, Walker};
use crate::message::{Message, MessageId, Ts};
use crate::store::{Beginning, ChatStore, ChatStoreError, Checkpoint, CommitSummary, Entry, Spool, WalkKind};

/// Holes listed in full before the rest are only counted.
const SHOWN_HOLES: usize = 10;

/// What an audit found (and, with `repair`, adopted).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// Messages the service returned.
    pub upstream: u64,
    /// Stored messages compared (those placed no later than the newest the
    /// audit's walk saw).
    pub stored: u64,
    /// On the service, not in the store.
    pub missing: u64,
    /// In both, but changed upstream since stored.
    pub changed: u64,
    /// In the store, no longer on the service, not yet marked.
    pub gone_upstream: u64,
    /// In the store, no longer on the service, already marked.
    pub marked_gone: u64,
    /// Marked gone, but the service has them again.
    pub back_upstream: u64,
    /// Runs of missing messages next to each other: the first few, and how
    /// many in all.
    pub holes: Vec<Hole>,
    pub hole_count: u64,
    /// Chat requests this run made (not counting an earlier interrupted run).
    pub requests: u64,
    /// The walk continued an interrupted audit.
    pub resumed: bool,
    /// What the repair changed, when asked to repair.
    pub repaired: Option<Repaired>,
}

/// Missing messages that lie next to each other in the service's history.
#[derive(Debug, Clone, Serialize)]
pub struct Hole {
    pub first: String,
    pub last: String,
    pub messages: u64,
}

/// What a repair changed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Repaired {
    pub stored: u64,
    pub revised: u64,
    pub marked: u64,
    pub unmarked: u64,
}

impl From<CommitSummary> for Repaired {
    fn from(s: CommitSummary) -> Repaired {
        Repaired {
            stored: s.added,
            revised: s.revised,
            marked: s.deleted,
            unmarked: s.returned,
        }
    }
}

impl AuditReport {
    /// Whether the store and the service differ (before any repair).
    pub fn differs(&self) -> bool {
        self.missing + self.changed + self.gone_upstream + self.back_upstream > 0
    }
}

/// Walks the whole history (or finishes an interrupted audit's walk) and
/// compares it with `store`; with `repair`, adopts what differs.
pub async fn audit_chat(
    store: &mut ChatStore,
    source: &impl PageSource,
    limits: WalkLimits,
    repair: bool,
    cancel: &CancellationToken,
    on_page: impl FnMut(WalkProgress),
) -> Result<AuditReport, ChatSyncError> {
    let mut walked = ChatReport::default();
    let commits = store.state().commits;
    let mut spool = store.open_audit_walk()?;
    if let Some(began) = spool.checkpoint().map(|cp| cp.store_commits)
        && began != Some(commits)
    {
        // Syncs committed since this audit began: what they stored is newer
        // than the pages walked before, which would undo it. Walk again.
        tracing::info!(
            "the backup changed since the interrupted audit began; its walk starts again from the newest \
             message"
        );
        spool.remove()?;
        spool = store.open_audit_walk()?;
    }
    let resumed = spool.checkpoint().is_some();
    let mut limits = limits;
    limits.larger_limit &= !store.state().larger_limit_refused;
    if !spool.is_done() {
        let checkpoint = spool.checkpoint().cloned().unwrap_or_else(|| Checkpoint {
            store_commits: Some(commits),
            ..Checkpoint::new(WalkKind::Audit, None, limits.ordinary())
        });
        let mut walker = Walker {
            source,
            limits,
            cancel,
            on_page,
            report: &mut walked,
        };
        walker.walk(&mut spool, checkpoint, &Target::Audit).await?;
    }
    let mut report = compare(store, &spool, repair)?;
    report.requests = walked.requests;
    report.resumed = resumed;
    spool.remove()?;
    Ok(report)
}

/// Compares the finished audit walk in `spool` with the store, and repairs.
fn compare(store: &mut ChatStore, spool: &Spool, repair: bool) -> Result<AuditReport, ChatStoreError> {
    let cp = spool.checkpoint().cloned();
    // What the store held when the comparison began; a repair's commit
    // does not change what this reads.
    let before = ChatStore::open_read_only(store.dir())?;
    let top = cp.as_ref().and_then(|c| c.high);
    let mut commit = if repair { Some(store.begin()?) } else { None };
    let mut report = AuditReport::default();
    let mut upstream = Upstream::new(spool).peekable();
    let mut stored = before.history_with_keys()?.peekable();
    let seen_at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut in_hole = false;
    loop {
        if let Some(Err(e)) = upstream.next_if(Result::is_err) {
            return Err(e);
        }
        if let Some(Err(e)) = stored.next_if(Result::is_err) {
            return Err(ChatStoreError::Read(e));
        }
        let next_up = upstream.peek().and_then(|m| m.as_ref().ok()).map(|m| m.ts);
        let next_stored = stored
            .peek()
            .and_then(|e| e.as_ref().ok())
            .and_then(|e| e.key.as_ref())
            .map(|k| k.position);
        let ts = match (next_up, next_stored) {
            (None, None) => break,
            (Some(u), Some(s)) => {
                if u < s {
                    u
                } else {
                    s
                }
            }
            (Some(t), None) | (None, Some(t)) => t,
        };
        let ups = take_group(&mut upstream, ts, |m| Some(m.ts))?;
        let kept = take_group(&mut stored, ts, |e| e.key.as_ref().map(|k| k.position))
            .map_err(ChatStoreError::Read)?;
        let mut by_id: HashMap<&MessageId, &Entry> = kept
            .iter()
            .filter_map(|e| e.key.as_ref().map(|k| (&k.id, e)))
            .collect();
        // Upstream in order: each one stored, changed, or missing.
        let mut once = std::collections::HashSet::new();
        for m in &ups {
            if !once.insert(&m.id) {
                continue;
            }
            report.upstream += 1;
            let Some(entry) = by_id.remove(&m.id) else {
                report.missing += 1;
                if !in_hole {
                    report.hole_count += 1;
                    if report.holes.len() < SHOWN_HOLES {
                        report.holes.push(Hole {
                            first: m.ts.to_rfc3339(),
                            last: m.ts.to_rfc3339(),
                            messages: 0,
                        });
                    }
                }
                in_hole = true;
                if report.hole_count as usize <= SHOWN_HOLES
                    && let Some(hole) = report.holes.last_mut()
                {
                    hole.last = m.ts.to_rfc3339();
                    hole.messages += 1;
                }
                if let Some(commit) = &mut commit {
                    commit.place(m)?;
                }
                continue;
            };
            in_hole = false;
            report.stored += 1;
            let position = entry.key.as_ref().map_or(ts, |k| k.position);
            if entry.deleted_upstream_at().is_some() {
                report.back_upstream += 1;
                if let Some(commit) = &mut commit {
                    commit.unmark(position, &m.id)?;
                }
            }
            if entry.message != m.raw {
                report.changed += 1;
                if let Some(commit) = &mut commit {
                    commit.revise(position, m, &seen_at)?;
                }
            }
        }
        // Stored, not returned: gone upstream, if the walk covered it.
        let covered = top.is_some_and(|top| ts <= top);
        for entry in by_id.into_values() {
            let Some(key) = &entry.key else { continue };
            if !covered {
                continue;
            }
            report.stored += 1;
            if entry.deleted_upstream_at().is_some() {
                report.marked_gone += 1;
            } else {
                report.gone_upstream += 1;
                if let Some(commit) = &mut commit {
                    commit.mark_deleted(key.position, &key.id, &seen_at)?;
                }
            }
        }
    }
    if let Some(mut commit) = commit {
        let now = Utc::now();
        let state = commit.state_mut();
        state.beginning = Some(Beginning {
            confirmed_at: now,
            oldest: state.oldest,
        });
        state.tail_probed_at = Some(now);
        // Whatever an import brought in has now been compared.
        state.imported_unverified = false;
        if let Some(inclusive) = cp.as_ref().and_then(|c| c.inclusive) {
            state.before_ts_inclusive = Some(inclusive);
        }
        report.repaired = Some(commit.finish(None)?.into());
    }
    Ok(report)
}

/// Takes the items at `ts` off the front of `items`.
fn take_group<T, E>(
    items: &mut Peekable<impl Iterator<Item = Result<T, E>>>,
    ts: Ts,
    key: impl Fn(&T) -> Option<Ts>,
) -> Result<Vec<T>, E> {
    let mut group = Vec::new();
    while let Some(next) = items.next_if(|item| match item {
        Ok(item) => key(item) == Some(ts),
        Err(_) => true,
    }) {
        group.push(next?);
    }
    Ok(group)
}

/// The audit spool's messages, oldest first, each id once.
struct Upstream<'a> {
    pages: Box<dyn Iterator<Item = Result<Vec<Message>, crate::store::SpoolError>> + 'a>,
    page: std::vec::IntoIter<Message>,
}

impl<'a> Upstream<'a> {
    fn new(spool: &'a Spool) -> Upstream<'a> {
        Upstream {
            pages: Box::new(spool.pages_oldest_first()),
            page: Vec::new().into_iter(),
        }
    }
}

impl Iterator for Upstream<'_> {
    type Item = Result<Message, ChatStoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(m) = self.page.next() {
                return Some(Ok(m));
            }
            match self.pages.next()? {
                Ok(mut page) => {
                    page.sort_by(|a, b| a.ts.total_cmp(&b.ts));
                    self.page = page.into_iter();
                }
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}
