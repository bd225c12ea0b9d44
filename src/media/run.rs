//! One personality's turn: find the URLs its stored messages and profile
//! point to, list the new ones in the media index, and download
//! those not stored yet: first the URLs seen for the first time (signed
//! links may expire soon), in the order their messages were stored, newest
//! first, then those whose retry time came, within the run's byte budget.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::MediaUrl;
use super::fetch::{FetchError, MediaFetcher};
use super::index::{MediaRecord, MediaState, Order, RefPage};
use super::refs::{self, MediaKind, MediaRef};
use super::store::MediaStore;
use crate::config::MediaKinds;
use crate::store::{ChatStore, fsio};

/// The file of a personality's directory that listed its references in
/// chatkeep 0.1; taken into the index at the personality's next sync.
pub const LEGACY_REFS_FILE: &str = "media_refs.jsonl";
/// Which state of the chat history the references were last read from.
pub const SCANNED_FILE: &str = "media_refs.scanned";

/// The first retry waits for the next run; then an hour, doubling, at
/// most a week.
const FIRST_BACKOFF: chrono::Duration = chrono::Duration::hours(1);
const MAX_BACKOFF: chrono::Duration = chrono::Duration::days(7);

/// What a personality's media looks like after its turn (counted by
/// distinct URL), and what this turn did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MediaTotals {
    pub fetched: u64,
    /// Never tried yet (the run's budget ran out, or it was cancelled).
    pub pending: u64,
    /// Failed, to be tried again.
    pub failed: u64,
    /// 404 or 410.
    pub gone: u64,
    /// Too large, or refused on principle: not tried again.
    pub refused: u64,
    /// Downloaded by this run.
    #[serde(default)]
    pub fetched_now: u64,
    #[serde(default)]
    pub bytes_now: u64,
    /// The first failure of this run, for the summary and the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl MediaTotals {
    /// No URL at all: nothing worth a word in a summary or a status.
    pub fn is_empty(&self) -> bool {
        self.fetched + self.pending + self.failed + self.gone + self.refused == 0
    }
}

/// What a run shares between personalities: the byte budget left, and
/// when it started (a URL that failed since is not tried again in it, by
/// another personality that links it too).
#[derive(Debug)]
pub struct RunBudget {
    left: AtomicU64,
    started: DateTime<Utc>,
}

impl RunBudget {
    /// `None`: no limit.
    pub fn new(max_bytes_per_run: Option<u64>) -> RunBudget {
        RunBudget {
            left: AtomicU64::new(max_bytes_per_run.unwrap_or(u64::MAX)),
            started: Utc::now(),
        }
    }

    fn exhausted(&self) -> bool {
        self.left.load(Ordering::Relaxed) == 0
    }

    fn spend(&self, bytes: u64) {
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(bytes))
            });
    }
}

/// Why a personality's media could not be looked at at all.
#[derive(Debug, thiserror::Error)]
pub enum MediaRunError {
    #[error("{}: {}", path.display(), fsio::explain(source))]
    Io { path: PathBuf, source: io::Error },
    #[error("reading the chat history: {0}")]
    History(String),
}

/// The chat history a scan for references read, as far as telling what a
/// later commit added goes. Commits add messages at the top (newer than
/// the head: the common case), below the oldest (older history found), or
/// in the overlay (late messages, revisions, deletion marks; a new overlay
/// file each time). Only the first can be read alone, from the head on;
/// the others are rare and cost a whole scan.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Scanned {
    commits: u64,
    message_count: u64,
    log_len: u64,
    oldest: Option<crate::message::Ts>,
    newest: Option<crate::message::Ts>,
    overlay: Option<String>,
}

impl Scanned {
    fn of(chat: &ChatStore) -> Scanned {
        let state = chat.state();
        Scanned {
            commits: state.commits,
            message_count: state.message_count,
            log_len: state.log_len,
            oldest: state.oldest,
            newest: state.newest(),
            overlay: state.overlay.as_ref().map(|o| o.file.clone()),
        }
    }

    /// Where to read from to see all that `now` adds to this scan: the
    /// head this scan saw, when the commits since only added newer
    /// messages; `None` when only a whole scan will do.
    fn newer_only(&self, now: &Scanned) -> Option<crate::message::Ts> {
        let same_below = self.oldest == now.oldest && self.overlay == now.overlay;
        let grew = now.message_count >= self.message_count;
        match (self.newest, now.newest) {
            (Some(then), Some(head)) if same_below && grew && head >= then => Some(then),
            _ => None,
        }
    }
}

/// What a sync needs to fetch media: the process's fetcher and store, and
/// the run's budget.
#[derive(Debug, Clone, Copy)]
pub struct MediaContext<'a> {
    pub fetcher: &'a MediaFetcher,
    pub store: &'a MediaStore,
    pub budget: &'a RunBudget,
}

/// Everything one personality's turn needs.
pub struct MediaJob<'a> {
    pub fetcher: &'a MediaFetcher,
    pub store: &'a MediaStore,
    pub budget: &'a RunBudget,
    /// The personality's directory.
    pub dir: &'a Path,
    pub kinds: MediaKinds,
    pub cancel: &'a CancellationToken,
}

/// Finds, records and downloads the media of one personality. Errors of
/// single downloads are recorded in the index and counted, not returned.
/// Memory does not grow with the number of references: they go to the
/// index in batches as the history is read, and come back a page at a time.
pub async fn fetch_for_personality(
    job: &MediaJob<'_>,
    chat: &ChatStore,
    profile: Option<&str>,
) -> Result<MediaTotals, MediaRunError> {
    let wanted = |kind: MediaKind| match kind {
        MediaKind::Attachment => job.kinds.attachments,
        MediaKind::Voice => job.kinds.voice_replies,
        MediaKind::Avatar => job.kinds.avatars,
    };
    let name = personality_of(job.dir);
    let index_error = |source| MediaRunError::Io {
        path: job.store.dir().join(super::store::INDEX_FILE),
        source,
    };
    job.store
        .import_legacy_refs(&name, &job.dir.join(LEGACY_REFS_FILE))
        .map_err(index_error)?;
    let listed_before = job.store.last_seq(&name).map_err(index_error)?;
    // The history is read again only as far as a commit changed it since
    // the last scan (see [`Scanned`]): a sync that stored nothing costs
    // nothing, one that stored k new messages costs about k.
    let scanned_path = job.dir.join(SCANNED_FILE);
    let now_scanned = Scanned::of(chat);
    let before: Option<Scanned> = fsio::read(&scanned_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let unchanged = before.as_ref() == Some(&now_scanned);
    let mut batch = RefBatch {
        store: job.store,
        personality: &name,
        refs: Vec::new(),
    };
    if !unchanged {
        let history_err = |e: &dyn std::fmt::Display| MediaRunError::History(e.to_string());
        match before.as_ref().and_then(|b| b.newer_only(&now_scanned)) {
            Some(from) => {
                let recent = chat.recent(from, 0).map_err(|e| history_err(&e))?;
                for entry in recent.entries {
                    batch
                        .extend(refs::of_message(&entry.message))
                        .map_err(index_error)?;
                }
            }
            None => {
                let lines = chat.lines().map_err(|e| history_err(&e))?;
                for line in lines {
                    let line = line.map_err(|e| history_err(&e))?;
                    batch.extend(refs::of_message(&line)).map_err(index_error)?;
                }
            }
        }
    }
    batch
        .extend(profile.and_then(refs::of_profile))
        .map_err(index_error)?;
    batch.flush().map_err(index_error)?;
    if !unchanged {
        let text = serde_json::to_vec(&now_scanned).map_err(|e| MediaRunError::History(e.to_string()))?;
        fsio::write_atomic(&scanned_path, &text).map_err(|source| MediaRunError::Io {
            path: scanned_path.clone(),
            source,
        })?;
    }
    let mut totals = MediaTotals::default();
    // First what this run listed, newest message first (its link is the
    // likeliest to be fresh), then the backlog, first come first served.
    let passes = [
        (listed_before, i64::MAX, Order::Newest),
        (0, listed_before, Order::Oldest),
    ];
    'passes: for (above, up_to, order) in passes {
        let (mut above, mut up_to) = (above, up_to);
        loop {
            let page = RefPage {
                above,
                up_to,
                order,
                limit: PAGE,
            };
            let page = job.store.refs_page(&name, page).map_err(index_error)?;
            let Some(last) = page.last() else { break };
            match order {
                Order::Oldest => above = last.seq,
                Order::Newest => up_to = last.seq - 1,
            }
            for r in page.iter().filter(|r| wanted(r.reference.kind)) {
                if job.cancel.is_cancelled() || job.budget.exhausted() {
                    break 'passes;
                }
                if !fetch_one(job, &r.reference.url, &mut totals).await? {
                    break 'passes;
                }
            }
        }
    }
    let kinds: Vec<MediaKind> = [MediaKind::Attachment, MediaKind::Voice, MediaKind::Avatar]
        .into_iter()
        .filter(|k| wanted(*k))
        .collect();
    let counts = job.store.counts(&name, &kinds).map_err(index_error)?;
    totals.fetched = counts.fetched;
    totals.pending = counts.pending;
    totals.failed = counts.failed;
    totals.gone = counts.gone;
    totals.refused = counts.refused;
    Ok(totals)
}

/// References read per query.
const PAGE: usize = 256;

/// The personality whose directory is `dir`: its name.
fn personality_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// References found in the history, handed to the index a thousand at a
/// time (each batch one transaction).
struct RefBatch<'a> {
    store: &'a MediaStore,
    personality: &'a str,
    refs: Vec<MediaRef>,
}

impl RefBatch<'_> {
    fn extend(&mut self, refs: impl IntoIterator<Item = MediaRef>) -> io::Result<()> {
        self.refs.extend(refs);
        if self.refs.len() >= 1000 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.store.add_refs(self.personality, &self.refs)?;
        self.refs.clear();
        Ok(())
    }
}

/// Downloads `url` if it is due, and records what became of it; `false`
/// when the run was cancelled meanwhile.
async fn fetch_one(
    job: &MediaJob<'_>,
    url: &MediaUrl,
    totals: &mut MediaTotals,
) -> Result<bool, MediaRunError> {
    let index_error = |source| MediaRunError::Io {
        path: job.store.dir().join(super::store::INDEX_FILE),
        source,
    };
    // Another personality's sync may be downloading it: wait for its
    // end, then read what it recorded, rather than ask twice.
    let _claim = loop {
        if let Some(claim) = job.store.claim(url) {
            break claim;
        }
        tokio::select! {
            _ = job.cancel.cancelled() => return Ok(false),
            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
        }
    };
    let previous = job.store.get(url).map_err(index_error)?;
    // A URL recorded in this run (listed twice, or by another
    // personality) is not asked again in it.
    let due = match &previous {
        None => true,
        Some(record) => record.at < job.budget.started && record.state.is_due(Utc::now()),
    };
    if !due {
        return Ok(true);
    }
    let attempts = match previous.map(|r| r.state) {
        Some(MediaState::Failed { attempts, .. }) => attempts,
        _ => 0,
    };
    let state = match job.fetcher.fetch(url, job.store, job.cancel).await {
        Ok(fetched) => {
            totals.fetched_now += 1;
            totals.bytes_now += fetched.size;
            job.budget.spend(fetched.size);
            tracing::debug!(url = %url, hash = %fetched.hash, size = fetched.size, "media stored");
            MediaState::Fetched {
                hash: fetched.hash,
                file: fetched.file,
                size: fetched.size,
                content_type: fetched.content_type,
            }
        }
        Err(FetchError::Cancelled) => return Ok(false),
        // Expected of old links: said, but not as a warning.
        Err(e @ FetchError::Gone { .. }) => {
            tracing::info!(error = %e, "media gone");
            failure_state(e, attempts, Utc::now())
        }
        Err(e) => {
            tracing::warn!(error = %e, "media not stored");
            totals.first_error.get_or_insert_with(|| e.to_string());
            failure_state(e, attempts, Utc::now())
        }
    };
    let record = MediaRecord {
        url: url.clone(),
        at: Utc::now(),
        state,
    };
    job.store.record(record).map_err(index_error)?;
    Ok(true)
}

/// The state a failed download leaves.
fn failure_state(e: FetchError, attempts: u32, now: DateTime<Utc>) -> MediaState {
    match e {
        FetchError::Gone { status, .. } => MediaState::Gone { status },
        FetchError::TooLarge { limit, .. } => MediaState::TooLarge { limit },
        FetchError::Refused { reason, .. } => MediaState::Refused { reason },
        other => {
            let attempts = attempts + 1;
            MediaState::Failed {
                attempts,
                next_retry: now + backoff(attempts),
                error: other.to_string(),
            }
        }
    }
}

/// How long after its `attempts`-th failure a URL is tried again: at the
/// next run after the first (a blip), then an hour, doubling, at most a week.
fn backoff(attempts: u32) -> chrono::Duration {
    if attempts <= 1 {
        return chrono::Duration::zero();
    }
    let doublings = (attempts - 2).min(20);
    (FIRST_BACKOFF * 2i32.pow(doublings)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(oldest: f64, newest: f64, count: u64, overlay: Option<&str>) -> Scanned {
        Scanned {
            commits: count,
            message_count: count,
            log_len: count * 10,
            oldest: crate::message::Ts::new(oldest),
            newest: crate::message::Ts::new(newest),
            overlay: overlay.map(str::to_owned),
        }
    }

    #[test]
    fn only_messages_newer_than_the_head_are_read_alone() {
        let then = scanned(10.0, 20.0, 5, None);
        // New messages at the top: read from the old head on.
        assert_eq!(
            then.newer_only(&scanned(10.0, 30.0, 8, None)),
            crate::message::Ts::new(20.0)
        );
        // Older history below, a new overlay, or no scan yet: all of it.
        assert_eq!(then.newer_only(&scanned(5.0, 30.0, 9, None)), None);
        assert_eq!(
            then.newer_only(&scanned(10.0, 30.0, 8, Some("overlay-2.jsonl.gz"))),
            None
        );
        let empty = Scanned {
            newest: None,
            oldest: None,
            ..scanned(0.0, 0.0, 0, None)
        };
        assert_eq!(empty.newer_only(&then), None);
    }

    #[test]
    fn backoff_lets_the_next_run_retry_then_doubles_from_an_hour_to_a_week() {
        assert_eq!(backoff(1), chrono::Duration::zero());
        assert_eq!(backoff(2), chrono::Duration::hours(1));
        assert_eq!(backoff(3), chrono::Duration::hours(2));
        assert_eq!(backoff(40), chrono::Duration::days(7));
    }
}
