//! Commits a finished walk: what the service returned, compared with what
//! is stored.
//!
//! A walk spools every message it receives. Its commit sorts each one out:
//! newer than everything stored, appended; older than everything stored,
//! a new first segment; stored already, compared byte for byte (a change is
//! a new revision, never an overwrite); not stored but placed among stored
//! messages, stored late in its place. A stored message inside the
//! refreshed range that the walk covered and did not return is marked
//! deleted upstream, never removed; one that comes back loses its mark.
//!
//! Only the newest part of the store takes part (see `ChatStore::recent`):
//! memory and reading follow the refreshed range and the pages walked, not
//! the history.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::Refresh;
use crate::message::{MessageId, Ts};
use crate::store::{
    Beginning, ChatStore, ChatStoreError, Checkpoint, Commit, CommitSummary, Entry, Spool, WalkEnd, WalkKind,
};

/// How a top walk's commit is judged.
#[derive(Debug, Clone, Copy)]
pub struct Refreshed {
    pub refresh: Refresh,
    /// The page size: the default refreshed range is the newest page.
    pub page_size: u32,
}

/// What the walk learnt of the service besides messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Learnt {
    pub larger_limit_refused: bool,
}

/// Commits a finished walk of any kind a sync makes.
pub fn commit_walk(
    store: &mut ChatStore,
    spool: Spool,
    refreshed: Refreshed,
    learnt: Learnt,
    now: DateTime<Utc>,
) -> Result<CommitSummary, ChatStoreError> {
    let Some(cp) = spool.checkpoint().cloned() else {
        // A walk that never got a page: nothing to do but retire its spool.
        return store.begin()?.finish(Some(spool));
    };
    match cp.kind {
        WalkKind::Tail => commit_tail(store, spool, &cp, learnt, now),
        WalkKind::Top | WalkKind::Audit => commit_top(store, spool, &cp, refreshed, learnt, now),
    }
}

/// The stored messages a top walk is compared with.
struct Compared {
    /// Stored entries placed where the store is read completely.
    entries: Vec<Entry>,
    by_id: HashMap<MessageId, usize>,
    /// Where the refreshed range begins among them.
    refresh_low: Ts,
}

impl Compared {
    fn read(store: &ChatStore, cp: &Checkpoint, refreshed: Refreshed) -> Result<Compared, ChatStoreError> {
        let state = store.state();
        // No head but late messages: everything stored is dated ahead of
        // the clock, and must be compared all the same, or each sync would
        // store it again.
        let Some(top) = state.head.as_ref().map(|h| h.ts).or_else(|| state.newest()) else {
            return Ok(Compared {
                entries: Vec::new(),
                by_id: HashMap::new(),
                refresh_low: Ts::EPOCH,
            });
        };
        let at_least = match refreshed.refresh {
            Refresh::FirstPage => u64::from(refreshed.page_size),
            Refresh::Messages(n) => u64::from(n.max(refreshed.page_size)),
            Refresh::Span(_) => u64::from(refreshed.page_size),
        };
        let span_low = match refreshed.refresh {
            Refresh::Span(span) => Ts::new(top.as_f64() - span.as_secs_f64()),
            _ => None,
        };
        // Everything the walk received must find its stored copy, if any.
        let below = [cp.low, span_low, Some(top)]
            .into_iter()
            .flatten()
            .min_by(|a, b| a.total_cmp(b))
            .unwrap_or(top);
        let recent = store.recent(below, at_least)?;
        let complete_above = recent.complete_above;
        let usable = |e: &Entry| {
            let position = e.key.as_ref().map(|k| k.position);
            complete_above.is_none_or(|f| position.is_some_and(|p| p > f))
        };
        let entries: Vec<Entry> = recent.entries.into_iter().filter(usable).collect();
        let by_id = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.key.as_ref().map(|k| (k.id.clone(), i)))
            .collect();
        let newest_n = entries
            .len()
            .checked_sub(at_least as usize)
            .and_then(|i| entries.get(i))
            .and_then(|e| e.key.as_ref())
            .map(|k| k.position);
        // Fewer stored than the range asks for: the range is all of them.
        let all_read = complete_above.map_or(Ts::EPOCH, Ts::next_up);
        let refresh_low = match refreshed.refresh {
            Refresh::Span(_) => span_low.unwrap_or(Ts::EPOCH),
            _ => newest_n.unwrap_or(all_read),
        };
        Ok(Compared {
            entries,
            by_id,
            refresh_low,
        })
    }
}

/// A top walk (or an audit's): every message compared with the store.
fn commit_top(
    store: &mut ChatStore,
    spool: Spool,
    cp: &Checkpoint,
    refreshed: Refreshed,
    learnt: Learnt,
    now: DateTime<Utc>,
) -> Result<CommitSummary, ChatStoreError> {
    let compared = Compared::read(store, cp, refreshed)?;
    let seen_at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut seen = vec![false; compared.entries.len()];
    let mut commit = store.begin()?;
    for page in spool.pages_oldest_first() {
        let mut page = page?;
        page.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        for m in &page {
            if let Some(&i) = compared.by_id.get(&m.id) {
                seen[i] = true;
                let entry = &compared.entries[i];
                let Some(key) = &entry.key else { continue };
                if entry.deleted_upstream_at().is_some() {
                    commit.unmark(key.position, &key.id)?;
                }
                if entry.message != m.raw {
                    commit.revise(key.position, m, &seen_at)?;
                }
            } else {
                commit.place(m)?;
            }
        }
    }
    // What the walk covered, inside the refreshed range, and did not get.
    let covered = |position: Ts| {
        cp.ended == Some(WalkEnd::Beginning) || cp.bottom || cp.low.is_some_and(|low| position > low)
    };
    let in_range = |position: Ts| position >= compared.refresh_low;
    for (entry, seen) in compared.entries.iter().zip(seen) {
        let Some(key) = &entry.key else { continue };
        if !seen && covered(key.position) && in_range(key.position) && entry.deleted_upstream_at().is_none() {
            commit.mark_deleted(key.position, &key.id, &seen_at)?;
        }
    }
    finish(commit, spool, cp, learnt, now)
}

/// A walk below the oldest message: what the store lacks goes first.
fn commit_tail(
    store: &mut ChatStore,
    spool: Spool,
    cp: &Checkpoint,
    learnt: Learnt,
    now: DateTime<Utc>,
) -> Result<CommitSummary, ChatStoreError> {
    let oldest = store.state().oldest;
    let known = store.oldest_ids()?;
    let mut commit = store.begin()?;
    for page in spool.pages_oldest_first() {
        let mut page = page?;
        page.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        for m in &page {
            let lacking = oldest.is_none_or(|o| m.ts < o || (m.ts == o && !known.contains(&m.id)));
            if lacking {
                commit.prepend(m)?;
            }
        }
    }
    commit.state_mut().tail_probed_at = Some(now);
    finish(commit, spool, cp, learnt, now)
}

/// Records what the walk learnt in the state the commit writes, then
/// finishes the commit.
fn finish(
    mut commit: Commit<'_>,
    spool: Spool,
    cp: &Checkpoint,
    learnt: Learnt,
    now: DateTime<Utc>,
) -> Result<CommitSummary, ChatStoreError> {
    let older = commit.summary().older;
    let state = commit.state_mut();
    if let Some(inclusive) = cp.inclusive {
        state.before_ts_inclusive = Some(inclusive);
    }
    state.larger_limit_refused |= learnt.larger_limit_refused;
    match cp.ended {
        Some(WalkEnd::Beginning) => {
            state.beginning = Some(Beginning {
                confirmed_at: now,
                oldest: state.oldest,
            });
            state.tail_probed_at = Some(now);
        }
        // Older messages than the oldest turned up without a walk to the
        // beginning: where it was confirmed, it is not.
        _ if older > 0 => state.beginning = None,
        _ => {}
    }
    commit.finish(Some(spool))
}
