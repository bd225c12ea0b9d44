//! The committed chat history of one personality: sealed gzip segments
//! (see [`segments`]), then an open append-only gzip log (one gzip member per
//! commit, oldest message first), and a small state file that says which
//! segments there are, how much of the open log is committed and where the
//! newest message is.
//!
//! Besides the log, an overlay file (see [`overlay`]) holds what happened
//! to messages after the log took them: later versions, deletion marks and
//! messages stored late below the newest one. [`History`] reads the two
//! merged. `docs/FORMAT.md` describes every file.
//!
//! Recovery is short because each state says what to do:
//! - open log gone, its segment name taken (a seal was cut short after its
//!   rename): record the segment.
//! - log longer than `log_len`: a commit was cut short; truncate.
//! - a segment or overlay file the state does not name: written by a
//!   commit that was cut short (or left behind by one that finished);
//!   delete it.
//! - a spool older than `next_walk`: already committed; delete it.
//! - the spool of `next_walk`, done: commit it; not done: resume the walk.

pub mod commit;
mod history;
pub mod marks;
pub mod members;
pub mod overlay;
#[cfg(test)]
mod overlay_tests;
mod reader;
mod segments;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::fsio;
use super::spool::{self, Spool, SpoolError, WalkInProgress};
use crate::config::DEFAULT_SEGMENT_SIZE;
use crate::message::{MessageId, Ts};
pub use commit::{Commit, CommitSummary};
pub use history::{Entry, History, Key, Recent, Story, Version};
pub use marks::Mark;
pub use overlay::OverlayRef;
pub use segments::{LogSpan, SEGMENT_DIR, Segment};

const STATE_FILE: &str = "chat_state.json";
const LOG_FILE: &str = "chat.jsonl.gz";
/// Spool of an audit's walk, beside the sync walks' `walk-<n>.spool`.
const AUDIT_SPOOL: &str = "audit.spool";
/// The state format written. Format 2 added `segments` and `log_span`;
/// format 3 the overlay, marks, and what is known of the beginning of
/// history; format 4 ids with their JSON type (a numeric id is a number in
/// the overlay). Older states are still read (what they lack is empty).
/// Programs that know only older formats refuse newer ones: they would drop
/// what they do not know on their next write.
const STATE_FORMAT: u32 = 4;
/// The state formats read.
const READ_FORMATS: [u32; 4] = [1, 2, 3, STATE_FORMAT];
/// The first format whose overlay writes a numeric id as a number.
const TYPED_IDS_FORMAT: u32 = 4;
/// Times a reader re-reads the state when a commit lands while it opens
/// the history.
const SNAPSHOT_TRIES: u32 = 5;

/// The newest `ts` in the chat log and every id stored at exactly that
/// `ts`: a sync's walk stops at a page that reaches below it (its commit
/// then compares what it got with the store), and a message as new as it
/// is appended after it. Never a message dated ahead of the clock (see
/// `commit::FUTURE_TOLERANCE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub ts: Ts,
    pub ids: Vec<MessageId>,
}

/// What is known of where the service's history begins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beginning {
    /// When an empty answer, asked for twice, showed that the history
    /// begins below the oldest message then stored.
    pub confirmed_at: DateTime<Utc>,
    /// That oldest message's `ts` (`None`: the history was empty).
    pub oldest: Option<Ts>,
}

/// The chat state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatState {
    pub format: u32,
    /// The personality's id (UUID) the history belongs to.
    pub personality_id: Option<String>,
    pub head: Option<Head>,
    pub oldest: Option<Ts>,
    pub message_count: u64,
    /// The sealed segments, oldest first; the open log continues after the
    /// last one. Empty in a format 1 state.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Committed length of the open log in bytes; anything past it is a
    /// torn commit.
    pub log_len: u64,
    /// First and last `ts` and message count of the open log, which name it
    /// when it is sealed. `None` when the open log is empty, or when it was
    /// written before chatkeep kept this (format 1); it is then read once,
    /// when it is sealed.
    #[serde(default)]
    pub log_span: Option<LogSpan>,
    /// Generation of the next walk's spool; lower generations are committed.
    pub next_walk: u64,
    /// Where the newest gzip members of the open log start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_marks: Vec<Mark>,
    /// The overlay file and what it holds; `None`: no message has changed
    /// since the log took it.
    #[serde(default)]
    pub overlay: Option<OverlayRef>,
    /// Where the history was seen to begin; `None`: not confirmed (no walk
    /// has reached the beginning since this was kept, or one found older
    /// messages below it since).
    #[serde(default)]
    pub beginning: Option<Beginning>,
    /// When a sync last asked for messages below the oldest stored one.
    #[serde(default)]
    pub tail_probed_at: Option<DateTime<Utc>>,
    /// The service answered a `limit` of the page size plus one with an
    /// error: walks ask for the page size only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub larger_limit_refused: bool,
    /// Whether the service's `before_ts` is at-or-older, once seen.
    #[serde(default)]
    pub before_ts_inclusive: Option<bool>,
    /// Commits made to this history (counted since format 3): an audit
    /// interrupted before a commit cannot trust its pages after it.
    #[serde(default)]
    pub commits: u64,
    /// The overlay holds records written before ids had a type, where a
    /// numeric id is a string: a record whose string id matches no message
    /// stands for the numeric id of the same text. Kept for good once set,
    /// since those records are carried over as they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overlay_ids_untyped: bool,
    /// Messages were imported from files (`chatkeep import`) and not yet
    /// compared with the service: the next sync audits the history, which
    /// replaces each imported message by the service's copy where they
    /// differ (the imported one kept as an earlier version).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported_unverified: bool,
}

impl ChatState {
    /// Messages placed in the history that the service no longer returns.
    pub fn deleted_upstream(&self) -> u64 {
        self.overlay.as_ref().map_or(0, |o| o.deleted)
    }

    /// Messages with later versions.
    pub fn revised(&self) -> u64 {
        self.overlay.as_ref().map_or(0, |o| o.revised)
    }

    /// The newest place in the history: the head, or a message stored late
    /// beyond it (one dated ahead of the clock).
    pub fn newest(&self) -> Option<Ts> {
        let head = self.head.as_ref().map(|h| h.ts);
        let late = self.overlay.as_ref().and_then(|o| o.newest_late);
        match (head, late) {
            (Some(h), Some(l)) if l > h => Some(l),
            (Some(h), _) => Some(h),
            (None, late) => late,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChatStoreError {
    #[error("{}: {}", path.display(), fsio::explain(source))]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a chatkeep state file: {reason}")]
    BadState { path: PathBuf, reason: String },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(
        "chat log {path} is shorter ({actual} bytes) than its committed length ({expected}); it was changed outside chatkeep"
    )]
    LogTooShort {
        path: PathBuf,
        actual: u64,
        expected: u64,
    },
    #[error("chat log {path}: message {line} is unreadable: {reason}")]
    BadLog {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("reading the chat history: {0}")]
    Read(io::Error),
    #[error("the chat history in {path} kept changing while it was being opened; try again")]
    Busy { path: PathBuf },
}

/// One personality's chat history on disk.
#[derive(Debug)]
pub struct ChatStore {
    dir: PathBuf,
    state: ChatState,
    /// The open log as `state` describes it, held open so that a seal
    /// (which renames the file) cannot take it from under a reader; `None`
    /// while the open log is empty.
    log: Option<Arc<File>>,
    /// The overlay file `state` names, held open for the same reason.
    overlay: Option<Arc<File>>,
    /// A commit that leaves the open log at least this long seals it.
    segment_size: u64,
}

impl ChatStore {
    /// Opens the history in `dir` (created 0700 if missing) with the default
    /// segment size. See [`ChatStore::open_with`].
    pub fn open(dir: &Path) -> Result<ChatStore, ChatStoreError> {
        ChatStore::open_with(dir, DEFAULT_SEGMENT_SIZE)
    }

    /// Opens the history in `dir` (created 0700 if missing) and repairs what
    /// a crash may have left: a seal cut short, a torn log tail, a committed
    /// spool. Commits seal the open log once it is `segment_size` bytes or
    /// longer (any size from 1 byte works; the config asks for 64 KiB at
    /// least). Only the holder of the data directory lock may do this.
    pub fn open_with(dir: &Path, segment_size: u64) -> Result<ChatStore, ChatStoreError> {
        fsio::create_private_dir(dir).map_err(|source| ChatStoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut store = ChatStore::open_read_only(dir)?;
        store.segment_size = segment_size.max(1);
        store.finish_seal()?;
        store.repair_log()?;
        store.remove_unnamed_files()?;
        store.remove_stale_spools()?;
        Ok(store)
    }

    /// Opens the committed history without changing anything, for readers
    /// that run beside a sync (export). They see the last commit: sealed
    /// segments never change, the open log never changes below its
    /// committed length, and the open log is opened between two reads of an
    /// unchanged state, so the handle belongs to that state even if a seal
    /// renames the file a moment later.
    pub fn open_read_only(dir: &Path) -> Result<ChatStore, ChatStoreError> {
        let state_path = dir.join(STATE_FILE);
        for _ in 0..SNAPSHOT_TRIES {
            let bytes = read_state_bytes(&state_path)?;
            let state = parse_state(&state_path, bytes.as_deref())?;
            let log = open_log(dir, &state)?;
            // A commit may replace the overlay (and remove the old file)
            // between the two reads of the state: then try again.
            let overlay = match open_overlay(dir, &state) {
                Ok(overlay) => overlay,
                Err(_) if read_state_bytes(&state_path)? != bytes => continue,
                Err(e) => return Err(e),
            };
            if read_state_bytes(&state_path)? == bytes {
                let mut store = ChatStore {
                    dir: dir.to_owned(),
                    state,
                    log,
                    overlay,
                    segment_size: DEFAULT_SEGMENT_SIZE,
                };
                store.type_head_ids()?;
                return Ok(store);
            }
        }
        Err(ChatStoreError::Busy { path: dir.to_owned() })
    }

    pub fn state(&self) -> &ChatState {
        &self.state
    }

    /// A state from before ids had a type holds a numeric head id as a
    /// string: the ids are taken again from the log's newest messages (in
    /// memory; the next commit writes them).
    fn type_head_ids(&mut self) -> Result<(), ChatStoreError> {
        let Some(head) = &self.state.head else {
            return Ok(());
        };
        let untyped = head.ids.iter().any(|id| id.untyped_number().is_some());
        if self.state.format >= TYPED_IDS_FORMAT || !untyped {
            return Ok(());
        }
        let ts = head.ts;
        let ids: Vec<MessageId> = self
            .recent(ts, 0)?
            .entries
            .into_iter()
            .filter(|e| !e.story.as_ref().is_some_and(|s| s.late))
            .filter_map(|e| e.key)
            .filter(|k| k.position == ts)
            .map(|k| k.id)
            .collect();
        if !ids.is_empty()
            && let Some(head) = &mut self.state.head
        {
            head.ids = ids;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Records which personality id this history belongs to.
    pub fn set_personality_id(&mut self, id: &str) -> Result<(), ChatStoreError> {
        if self.state.personality_id.as_deref() != Some(id) {
            let mut next = self.state.clone();
            next.personality_id = Some(id.to_owned());
            self.save(next)?;
        }
        Ok(())
    }

    fn spool_path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("walk-{generation}.spool"))
    }

    /// Opens the spool of the current walk: new, or left by an interrupted run.
    pub fn open_walk(&self) -> Result<Spool, ChatStoreError> {
        Ok(Spool::open(&self.spool_path(self.state.next_walk))?)
    }

    /// True if an interrupted walk is waiting to be resumed or committed.
    pub fn has_pending_walk(&self) -> bool {
        self.spool_path(self.state.next_walk).exists()
    }

    /// Where the current walk stands (none when there is no walk), read
    /// without changing anything: a reader beside a sync sees how many
    /// messages the walk has fetched that are not stored yet.
    pub fn walk_in_progress(&self) -> Result<Option<WalkInProgress>, ChatStoreError> {
        Ok(spool::peek(&self.spool_path(self.state.next_walk))?)
    }

    /// Opens the spool of an audit's walk: new, or left by an interrupted
    /// audit.
    pub fn open_audit_walk(&self) -> Result<Spool, ChatStoreError> {
        Ok(Spool::open(&self.dir.join(AUDIT_SPOOL))?)
    }

    /// True if an interrupted audit is waiting to be resumed.
    pub fn has_pending_audit(&self) -> bool {
        self.dir.join(AUDIT_SPOOL).exists()
    }

    /// The records of the current overlay, in order.
    pub(crate) fn overlay_records(&self) -> overlay::Records {
        match (&self.overlay, &self.state.overlay) {
            (Some(file), Some(o)) => overlay::Records::new(Arc::clone(file), o.len),
            _ => overlay::Records::none(),
        }
    }

    /// Streams the committed history, oldest message first, as stored
    /// lines: the sealed segments in order, then the open log. One file is
    /// open and decompressed at a time (besides the held open log), so
    /// memory does not grow with the history.
    pub fn lines(&self) -> Result<impl Iterator<Item = io::Result<String>> + use<>, ChatStoreError> {
        Ok(reader::Lines::new(self))
    }

    /// Replaces the state file atomically (in the current format).
    fn save(&mut self, mut next: ChatState) -> Result<(), ChatStoreError> {
        next.format = STATE_FORMAT;
        // Only the last segment's marks are ever read (see `recent`).
        let last = next.segments.len().saturating_sub(1);
        for segment in &mut next.segments[..last] {
            segment.marks.clear();
        }
        let path = self.dir.join(STATE_FILE);
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| ChatStoreError::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        fsio::write_atomic(&path, &bytes).map_err(|source| ChatStoreError::Io { path, source })?;
        self.state = next;
        Ok(())
    }

    /// Cuts an unfinished commit off the open log. (A log shorter than its
    /// committed length was already refused by [`open_log`].)
    fn repair_log(&self) -> Result<(), ChatStoreError> {
        let path = self.log_path();
        if cut_to(&path, self.state.log_len)? {
            tracing::info!(path = %path.display(), committed = self.state.log_len, "cut an unfinished commit off the chat log");
        }
        Ok(())
    }

    /// Removes segment and overlay files the state does not name (see the
    /// module doc), and a new segment a commit did not get to name.
    fn remove_unnamed_files(&self) -> Result<(), ChatStoreError> {
        let named_overlay = self.state.overlay.as_ref().map(|o| o.file.as_str());
        let io_err = |path: &Path, source| ChatStoreError::Io {
            path: path.to_owned(),
            source,
        };
        let entries = fs::read_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if overlay::number_of(name).is_some() && Some(name) != named_overlay {
                tracing::info!(file = name, "removing an overlay file no commit named");
                fsio::remove_durably(&entry.path()).map_err(|e| io_err(&entry.path(), e))?;
            }
        }
        let segments = self.segments_dir();
        let entries = match fs::read_dir(&segments) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&segments, e)),
        };
        let sealing = segments::sealing_path(&self.dir, &self.state);
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let listed = self.state.segments.iter().any(|s| s.file == name);
            let chat_file = name.starts_with("chat-") && name.ends_with(".jsonl.gz");
            let unnamed = (chat_file && !listed && sealing.as_deref() != Some(path.as_path()))
                || name == commit::PREPEND_TMP;
            if unnamed {
                tracing::info!(file = name, "removing a segment no commit named");
                fsio::remove_durably(&path).map_err(|e| io_err(&path, e))?;
            }
        }
        Ok(())
    }

    fn remove_stale_spools(&self) -> Result<(), ChatStoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|source| ChatStoreError::Io {
            path: self.dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(generation) = name
                .to_str()
                .and_then(|n| n.strip_prefix("walk-"))
                .and_then(|n| n.strip_suffix(".spool"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if generation < self.state.next_walk {
                fsio::remove_durably(&entry.path()).map_err(|source| ChatStoreError::Io {
                    path: entry.path(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

fn read_state_bytes(path: &Path) -> Result<Option<Vec<u8>>, ChatStoreError> {
    match fsio::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ChatStoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The state in `bytes`, or a new store's state if there is no file.
fn parse_state(path: &Path, bytes: Option<&[u8]>) -> Result<ChatState, ChatStoreError> {
    let Some(bytes) = bytes else {
        return Ok(ChatState {
            format: STATE_FORMAT,
            ..ChatState::default()
        });
    };
    let bad = |reason: String| ChatStoreError::BadState {
        path: path.to_owned(),
        reason,
    };
    let mut state: ChatState = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if !READ_FORMATS.contains(&state.format) {
        return Err(bad(format!(
            "format {} is not one this chatkeep reads ({READ_FORMATS:?}); is it from a newer version?",
            state.format
        )));
    }
    if state.format < TYPED_IDS_FORMAT && state.overlay.is_some() {
        state.overlay_ids_untyped = true;
    }
    Ok(state)
}

/// The open log that `state` describes, or `None` if it is empty. If the
/// file is gone because a seal renamed it and has not yet recorded that,
/// the renamed file is the open log.
fn open_log(dir: &Path, state: &ChatState) -> Result<Option<Arc<File>>, ChatStoreError> {
    if state.log_len == 0 {
        return Ok(None);
    }
    let path = dir.join(LOG_FILE);
    let io_err = |path: &Path, source| ChatStoreError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match fsio::open_read(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match segments::sealing_path(dir, state).map(|sealed| fsio::open_read(&sealed)) {
                Some(Ok(file)) => file,
                _ => {
                    return Err(ChatStoreError::LogTooShort {
                        path,
                        actual: 0,
                        expected: state.log_len,
                    });
                }
            }
        }
        Err(source) => return Err(io_err(&path, source)),
    };
    let actual = file.metadata().map_err(|e| io_err(&path, e))?.len();
    if actual < state.log_len {
        return Err(ChatStoreError::LogTooShort {
            path,
            actual,
            expected: state.log_len,
        });
    }
    Ok(Some(Arc::new(file)))
}

/// The overlay file `state` names, if any; it must hold at least its
/// committed length.
fn open_overlay(dir: &Path, state: &ChatState) -> Result<Option<Arc<File>>, ChatStoreError> {
    let Some(overlay) = &state.overlay else {
        return Ok(None);
    };
    let path = dir.join(&overlay.file);
    let file = fsio::open_read(&path).map_err(|source| ChatStoreError::Io {
        path: path.clone(),
        source,
    })?;
    let actual = file
        .metadata()
        .map_err(|source| ChatStoreError::Io {
            path: path.clone(),
            source,
        })?
        .len();
    if actual < overlay.len {
        return Err(ChatStoreError::LogTooShort {
            path,
            actual,
            expected: overlay.len,
        });
    }
    Ok(Some(Arc::new(file)))
}

/// Truncates `path`, if it exists and is longer, to `len`, durably. True if
/// it cut anything.
fn cut_to(path: &Path, len: u64) -> Result<bool, ChatStoreError> {
    let io_err = |source| ChatStoreError::Io {
        path: path.to_owned(),
        source,
    };
    let actual = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(e)),
    };
    if actual <= len {
        return Ok(false);
    }
    let file = fsio::open_private_rw(path).map_err(io_err)?;
    file.set_len(len).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::store::spool::Checkpoint;
    use std::io::Write;

    fn msg(id: &str, ts: f64) -> Message {
        Message::from_stored_line(&format!(r#"{{"id":"{id}","ts":{ts}}}"#)).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint::start(50)
    }

    fn ids(store: &ChatStore) -> Vec<String> {
        store
            .lines()
            .unwrap()
            .map(|l| {
                Message::from_stored_line(&l.unwrap())
                    .unwrap()
                    .id
                    .as_str()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn commits_append_in_chronological_order_and_move_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(dir.path()).unwrap();
        let mut spool = store.open_walk().unwrap();
        spool
            .append_page(&checkpoint(), &[msg("d", 4.0), msg("c", 3.0)])
            .unwrap();
        spool
            .append_page(&checkpoint(), &[msg("a", 1.0), msg("b", 3.0)])
            .unwrap();
        spool.mark_done(&checkpoint()).unwrap();
        assert_eq!(store.commit(spool).unwrap().added, 4);
        let mut spool = store.open_walk().unwrap();
        spool.append_page(&checkpoint(), &[msg("e", 4.0)]).unwrap();
        store.commit(spool).unwrap();

        let store = ChatStore::open(dir.path()).unwrap();
        let got = ids(&store);
        assert!(
            got == ["a", "c", "b", "d", "e"] || got == ["a", "b", "c", "d", "e"],
            "{got:?}"
        );
        let state = store.state();
        assert_eq!(state.message_count, 5);
        assert_eq!(state.oldest, Ts::new(1.0));
        let head = state.head.as_ref().unwrap();
        assert_eq!(head.ts, Ts::new(4.0).unwrap());
        assert_eq!(head.ids, vec![MessageId::from("d"), MessageId::from("e")]);
    }

    #[test]
    fn a_torn_commit_is_cut_and_the_spool_committed_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(dir.path()).unwrap();
        let mut spool = store.open_walk().unwrap();
        spool.append_page(&checkpoint(), &[msg("a", 1.0)]).unwrap();
        store.commit(spool).unwrap();
        let mut spool = store.open_walk().unwrap();
        spool.append_page(&checkpoint(), &[msg("b", 2.0)]).unwrap();
        spool.mark_done(&checkpoint()).unwrap();
        drop(spool);
        // A crash after part of the gzip member reached the log.
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(store.log_path())
            .unwrap();
        log.write_all(&[0x1f, 0x8b, 8, 0, 0]).unwrap();
        drop(log);

        let mut store = ChatStore::open(dir.path()).unwrap();
        assert_eq!(ids(&store), ["a"]);
        assert!(store.has_pending_walk());
        let spool = store.open_walk().unwrap();
        assert!(spool.is_done());
        store.commit(spool).unwrap();
        assert_eq!(ids(&store), ["a", "b"]);
    }

    #[test]
    fn a_spool_left_after_its_commit_is_not_applied_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(dir.path()).unwrap();
        let mut spool = store.open_walk().unwrap();
        spool.append_page(&checkpoint(), &[msg("a", 1.0)]).unwrap();
        let spool_path = dir.path().join("walk-0.spool");
        let saved = fs::read(&spool_path).unwrap();
        store.commit(spool).unwrap();
        // A crash between the state write and the spool deletion.
        fs::write(&spool_path, saved).unwrap();
        let store = ChatStore::open(dir.path()).unwrap();
        assert!(!spool_path.exists());
        assert!(!store.has_pending_walk());
        assert_eq!(ids(&store), ["a"]);
    }
}
