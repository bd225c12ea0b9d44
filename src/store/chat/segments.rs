//! Sealed segments of the chat log.
//!
//! Once a commit leaves the open log `chat.jsonl.gz` at `segment_size`
//! bytes or more, the log is sealed: renamed, whole, to
//! `segments/chat-<first ts ms>-<last ts ms>.jsonl.gz`, and the next commit
//! starts a new open log. A sealed segment never changes again, so a history
//! of years is many closed files (friendly to rsync and object storage) plus
//! one small open one, and a sync never rewrites old data. Segments are
//! sealed whole, never split, so each holds whole commits and may be larger
//! than `segment_size` (the first sync of a long history is one segment).
//!
//! Sealing is two durable steps:
//! 1. **renamed**: `chat.jsonl.gz` is renamed to `segments/<name>` and both
//!    directories are fsynced. The name is a function of the state alone
//!    (the open log's span and the segments already sealed: see
//!    [`segment_name`]), so whoever reads the state knows where the open
//!    log went.
//! 2. **sealed**: one atomic state write appends the segment to `segments`
//!    and empties the open log (`log_len = 0`, no span).
//!
//! A crash between the two leaves the state of before the seal, its open
//! log under the segment's name: readers read it there, and
//! [`ChatStore::open`] does step 2. A crash before step 1 leaves a log that
//! the next commit seals; after step 2 there is nothing left to do. The
//! rename is atomic and the state is written only once it is durable, so no
//! other mix of files and state can arise. An open log written by format 1,
//! whose span the state does not hold, is read once and its span saved
//! first (step 0), so that step 1 can name it from the state too.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::marks::Mark;
use super::reader::Lines;
use super::{ChatState, ChatStore, ChatStoreError, cut_to};
use crate::message::{Message, Ts};
use crate::store::fsio;

/// The directory of sealed segments, inside the personality's directory.
pub const SEGMENT_DIR: &str = "segments";

/// One sealed segment, as the state lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// File name inside [`SEGMENT_DIR`].
    pub file: String,
    /// `ts` of its first (oldest) and last (newest) message.
    pub first: Ts,
    pub last: Ts,
    pub messages: u64,
    /// Its length in bytes, which never changes.
    pub len: u64,
    /// Where its newest gzip members start; kept for the last segment only
    /// (the one a sync's refreshed range may reach into).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
}

/// The first and last `ts` and the message count of a log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogSpan {
    pub first: Ts,
    pub last: Ts,
    pub messages: u64,
}

impl LogSpan {
    /// Counts the messages of `other` into `span`.
    pub fn merge(span: &mut Option<LogSpan>, other: LogSpan) {
        match span {
            Some(s) => {
                if other.first < s.first {
                    s.first = other.first;
                }
                if other.last > s.last {
                    s.last = other.last;
                }
                s.messages += other.messages;
            }
            None => *span = Some(other),
        }
    }

    /// Counts one more message at `ts` into `span`.
    pub fn extend(span: &mut Option<LogSpan>, ts: Ts) {
        match span {
            Some(s) => {
                if ts < s.first {
                    s.first = ts;
                }
                if ts > s.last {
                    s.last = ts;
                }
                s.messages += 1;
            }
            None => {
                *span = Some(LogSpan {
                    first: ts,
                    last: ts,
                    messages: 1,
                })
            }
        }
    }
}

/// The file name of a log with `span` sealed after `sealed`:
/// `chat-<first>-<last>.jsonl.gz`, the `ts` of its first and last message
/// in milliseconds, zero-padded to 13 digits so that names sort in time
/// order (until the year 2286). Two segments can share both only if both
/// lie wholly inside one millisecond; the later one then gets `-2`, `-3`...
pub fn segment_name(span: &LogSpan, sealed: &[Segment]) -> String {
    let base = format!("chat-{:013}-{:013}", span.first.millis(), span.last.millis());
    let mut name = format!("{base}.jsonl.gz");
    let mut n = 1;
    while sealed.iter().any(|s| s.file == name) {
        n += 1;
        name = format!("{base}-{n}.jsonl.gz");
    }
    name
}

/// Where the open log of `state` goes when it is sealed (and where it is if
/// a seal was cut short after its rename); `None` if its span is unknown.
pub(super) fn sealing_path(dir: &Path, state: &ChatState) -> Option<PathBuf> {
    let span = state.log_span.as_ref()?;
    Some(dir.join(SEGMENT_DIR).join(segment_name(span, &state.segments)))
}

impl ChatStore {
    /// The directory of sealed segments.
    pub fn segments_dir(&self) -> PathBuf {
        self.dir.join(SEGMENT_DIR)
    }

    pub fn segment_path(&self, segment: &Segment) -> PathBuf {
        self.segments_dir().join(&segment.file)
    }

    /// Seals the open log if it has reached the segment size.
    pub(super) fn seal_if_due(&mut self) -> Result<(), ChatStoreError> {
        if self.state.log_len == 0 || self.state.log_len < self.segment_size {
            return Ok(());
        }
        if self.state.log_span.is_none() {
            // Step 0: a format 1 log; learn its span.
            let Some(span) = self.scan_open_log()? else {
                return Ok(());
            };
            let mut next = self.state.clone();
            next.log_span = Some(span);
            self.save(next)?;
        }
        let Some(target) = sealing_path(&self.dir, &self.state) else {
            return Ok(());
        };
        let log = self.log_path();
        let segments = self.segments_dir();
        let io_err = |path: &Path, source| ChatStoreError::Io {
            path: path.to_owned(),
            source,
        };
        // A commit that failed earlier in this process may have left bytes
        // past the committed length; a segment holds exactly its commits.
        cut_to(&log, self.state.log_len)?;
        // Step 1.
        fsio::create_private_dir(&segments).map_err(|e| io_err(&segments, e))?;
        fs::rename(&log, &target).map_err(|e| io_err(&log, e))?;
        fsio::sync_dir(&segments).map_err(|e| io_err(&segments, e))?;
        fsio::sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        // Step 2.
        self.record_seal()
    }

    /// Does step 2 of a seal that a crash cut short after step 1: the open
    /// log is gone and the state's segment name is taken.
    pub(super) fn finish_seal(&mut self) -> Result<(), ChatStoreError> {
        if self.state.log_len == 0 || self.log_path().exists() {
            return Ok(());
        }
        // `open_log` found the log at this path, or the store would not
        // have opened.
        let Some(target) = sealing_path(&self.dir, &self.state) else {
            return Ok(());
        };
        tracing::info!(segment = %target.display(), "finishing a seal of the chat log that was cut short");
        cut_to(&target, self.state.log_len)?;
        self.record_seal()
    }

    /// Step 2: lists the renamed open log as a segment and starts an empty
    /// open log, in one atomic state write.
    fn record_seal(&mut self) -> Result<(), ChatStoreError> {
        let mut next = self.state.clone();
        let Some(span) = next.log_span.take() else {
            return Ok(());
        };
        let file = segment_name(&span, &next.segments);
        next.segments.push(Segment {
            file: file.clone(),
            first: span.first,
            last: span.last,
            messages: span.messages,
            len: next.log_len,
            marks: std::mem::take(&mut next.log_marks),
        });
        next.log_len = 0;
        self.save(next)?;
        self.log = None;
        tracing::info!(segment = %file, messages = span.messages, "sealed the chat log");
        Ok(())
    }

    /// Reads the open log for its span; `None` if it holds no message.
    fn scan_open_log(&self) -> Result<Option<LogSpan>, ChatStoreError> {
        let mut span = None;
        for (n, line) in Lines::open_log(self).enumerate() {
            let line = line.map_err(ChatStoreError::Read)?;
            let m = Message::from_stored_line(&line).map_err(|e| ChatStoreError::BadLog {
                path: self.log_path(),
                line: n as u64 + 1,
                reason: e.to_string(),
            })?;
            LogSpan::extend(&mut span, m.ts);
        }
        Ok(span)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::time::SystemTime;

    use flate2::read::MultiGzDecoder;

    use super::*;
    use crate::store::spool::Checkpoint;

    /// Never reached: nothing is sealed.
    const NEVER: u64 = u64::MAX;

    fn msg(n: u32) -> Message {
        // One message a minute, from 2023-11-14T22:13:20Z.
        let ts = 1_700_000_000.0 + f64::from(n) * 60.0;
        Message::from_stored_line(&format!(
            r#"{{"id":"m{n}","ts":{ts},"message":"hello {n}","reply":"hi"}}"#
        ))
        .unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint::start(50)
    }

    /// Commits messages `range` in one walk (two pages, newest first).
    fn commit(store: &mut ChatStore, range: std::ops::Range<u32>) {
        let mut spool = store.open_walk().unwrap();
        let mid = range.start + (range.end - range.start) / 2;
        let newer: Vec<Message> = (mid..range.end).rev().map(msg).collect();
        let older: Vec<Message> = (range.start..mid).rev().map(msg).collect();
        spool.append_page(&checkpoint(), &newer).unwrap();
        spool.append_page(&checkpoint(), &older).unwrap();
        spool.mark_done(&checkpoint()).unwrap();
        store.commit(spool).unwrap();
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

    fn expected(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|n| format!("m{n}")).collect()
    }

    /// The lines of one gzip file, read with nothing of chatkeep's.
    pub(in crate::store::chat) fn gunzip(path: &Path) -> Vec<String> {
        let file = fs::File::open(path).unwrap();
        BufReader::new(MultiGzDecoder::new(file))
            .lines()
            .map(Result::unwrap)
            .collect()
    }

    /// What `lines()` must be: every segment file in order, then the open log.
    fn concatenation(store: &ChatStore) -> Vec<String> {
        let mut all: Vec<String> = store
            .state()
            .segments
            .iter()
            .flat_map(|s| gunzip(&store.segment_path(s)))
            .collect();
        if store.state().log_len > 0 {
            all.extend(gunzip(&store.log_path()));
        }
        all
    }

    pub(in crate::store::chat) fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// The log length after committing `range` into a new store.
    fn log_len_of(range: std::ops::Range<u32>) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open_with(dir.path(), NEVER).unwrap();
        commit(&mut store, range);
        store.state().log_len
    }

    #[test]
    fn a_commit_that_brings_the_log_to_the_segment_size_seals_it() {
        let len = log_len_of(0..10);
        // One byte short: nothing is sealed.
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open_with(dir.path(), len + 1).unwrap();
        commit(&mut store, 0..10);
        assert!(store.state().segments.is_empty());
        assert_eq!(store.state().log_len, len);
        assert!(files_in(&store.segments_dir()).is_empty());

        // Exactly the size: sealed under its first and last ts.
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open_with(dir.path(), len).unwrap();
        commit(&mut store, 0..10);
        let state = store.state().clone();
        let name = "chat-1700000000000-1700000540000.jsonl.gz";
        assert_eq!(
            state.segments,
            [Segment {
                file: name.into(),
                first: msg(0).ts,
                last: msg(9).ts,
                messages: 10,
                len,
                marks: vec![Mark {
                    offset: 0,
                    first: msg(0).ts,
                    before: 0
                }],
            }]
        );
        assert_eq!((state.log_len, state.log_span), (0, None));
        assert_eq!(state.format, super::super::STATE_FORMAT);
        assert_eq!(files_in(&store.segments_dir()), [name]);
        assert!(!store.log_path().exists());
        assert_eq!(fs::metadata(store.segments_dir().join(name)).unwrap().len(), len);
        assert_eq!(ids(&store), expected(0..10));
        // The head, the oldest and the count keep their meaning.
        assert_eq!(state.message_count, 10);
        assert_eq!(state.oldest, Some(msg(0).ts));
        assert_eq!(state.head.unwrap().ts, msg(9).ts);
        // And so after a reopen.
        let store = ChatStore::open_with(dir.path(), len).unwrap();
        assert_eq!(
            store.state(),
            &ChatStore::open_read_only(dir.path()).unwrap().state
        );
        assert_eq!(ids(&store), expected(0..10));
    }

    #[test]
    fn lines_stream_the_segments_in_order_then_the_open_log() {
        let dir = tempfile::tempdir().unwrap();
        // About two commits of ten messages make a segment.
        let mut store = ChatStore::open_with(dir.path(), log_len_of(0..10) * 3 / 2).unwrap();
        for batch in 0..7 {
            commit(&mut store, batch * 10..batch * 10 + 10);
        }
        let state = store.state();
        assert_eq!(state.segments.len(), 3, "{:?}", state.segments);
        assert!(state.log_len > 0, "the last commit stays in the open log");
        assert_eq!(state.message_count, 70);
        let sealed: u64 = state.segments.iter().map(|s| s.messages).sum();
        assert_eq!(sealed + state.log_span.unwrap().messages, 70);
        let lines: Vec<String> = store.lines().unwrap().map(Result::unwrap).collect();
        assert_eq!(lines, concatenation(&store));
        assert_eq!(ids(&store), expected(0..70));
        // File names sort in time order, so `zcat segments/*` works too.
        let mut names: Vec<&str> = state.segments.iter().map(|s| s.file.as_str()).collect();
        let listed = names.clone();
        names.sort();
        assert_eq!(names, listed);
        assert_eq!(files_in(&store.segments_dir()), listed);
        for (i, s) in state.segments.iter().enumerate() {
            assert_eq!(
                s.file,
                format!("chat-{:013}-{:013}.jsonl.gz", s.first.millis(), s.last.millis())
            );
            let inside = gunzip(&store.segment_path(s));
            assert_eq!(inside.len() as u64, s.messages, "segment {i}");
        }
    }

    #[test]
    fn a_commit_after_sealing_writes_only_to_the_open_log() {
        let dir = tempfile::tempdir().unwrap();
        let len = log_len_of(0..10);
        let mut store = ChatStore::open_with(dir.path(), len).unwrap();
        commit(&mut store, 0..10);
        commit(&mut store, 10..20);
        let segments = store.state().segments.clone();
        assert_eq!(segments.len(), 2);
        // Every segment's bytes and modification time.
        let sealed = |store: &ChatStore| -> Vec<(Vec<u8>, SystemTime)> {
            segments
                .iter()
                .map(|s| {
                    let path = store.segment_path(s);
                    (
                        fs::read(&path).unwrap(),
                        fs::metadata(&path).unwrap().modified().unwrap(),
                    )
                })
                .collect()
        };
        let before = sealed(&store);
        // Commits that leave the open log below the size.
        let mut store = ChatStore::open_with(dir.path(), len * 4).unwrap();
        commit(&mut store, 20..22);
        commit(&mut store, 22..24);
        assert_eq!(store.state().segments, segments);
        assert!(before == sealed(&store), "a sealed segment changed");
        assert_eq!(gunzip(&store.log_path()).len(), 4);
        assert_eq!(ids(&store), expected(0..24));
    }

    /// Where a crash stops the seal of the second commit.
    #[derive(Debug, Clone, Copy)]
    enum Crash {
        /// After the commit, before the seal began.
        BeforeRename,
        /// After the rename (step 1), before the state write (step 2).
        AfterRename,
        /// As `AfterRename`, with a torn commit left past the committed
        /// length before the rename (a failed commit earlier in the run).
        AfterRenameWithTornTail,
    }

    /// Three commits, each of which seals; the second one's seal is cut
    /// short by `crash`, and the store is opened again for the third.
    fn history_with(crash: Option<Crash>) -> (tempfile::TempDir, ChatStore) {
        let dir = tempfile::tempdir().unwrap();
        let size = log_len_of(0..10).min(log_len_of(10..20));
        let mut store = ChatStore::open_with(dir.path(), size).unwrap();
        commit(&mut store, 0..10);
        match crash {
            None => commit(&mut store, 10..20),
            Some(crash) => {
                // The second commit, by a store that does not seal.
                let mut unsealed = ChatStore::open_with(dir.path(), NEVER).unwrap();
                commit(&mut unsealed, 10..20);
                let state = unsealed.state().clone();
                assert_eq!(state.segments.len(), 1);
                assert!(state.log_len >= size);
                if matches!(crash, Crash::AfterRenameWithTornTail) {
                    let mut log = fs::OpenOptions::new()
                        .append(true)
                        .open(unsealed.log_path())
                        .unwrap();
                    log.write_all(&[0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
                }
                if !matches!(crash, Crash::BeforeRename) {
                    let target = sealing_path(dir.path(), &state).unwrap();
                    fs::rename(unsealed.log_path(), &target).unwrap();
                    // A reader meanwhile finds the log under its new name.
                    let reader = ChatStore::open_read_only(dir.path()).unwrap();
                    assert_eq!(ids(&reader), expected(0..20), "{crash:?}: reader");
                }
            }
        }
        let mut store = ChatStore::open_with(dir.path(), size).unwrap();
        assert_eq!(ids(&store), expected(0..20), "{crash:?}: after the crash");
        commit(&mut store, 20..30);
        (dir, store)
    }

    #[test]
    fn a_seal_cut_short_at_any_step_ends_with_the_same_store() {
        let (_dir, reference) = history_with(None);
        let want = reference.state().clone();
        assert_eq!(want.segments.len(), 3);
        assert_eq!(ids(&reference), expected(0..30));
        for crash in [
            Crash::BeforeRename,
            Crash::AfterRename,
            Crash::AfterRenameWithTornTail,
        ] {
            let (dir, store) = history_with(Some(crash));
            let got = store.state();
            assert_eq!(got.segments, want.segments, "{crash:?}");
            assert_eq!(
                (got.message_count, &got.head, got.oldest, got.log_len),
                (want.message_count, &want.head, want.oldest, want.log_len),
                "{crash:?}"
            );
            assert_eq!(ids(&store), expected(0..30), "{crash:?}");
            assert_eq!(concatenation(&store), concatenation(&reference), "{crash:?}");
            let names: Vec<&str> = want.segments.iter().map(|s| s.file.as_str()).collect();
            assert_eq!(files_in(&dir.path().join(SEGMENT_DIR)), names, "{crash:?}");
            for s in &got.segments {
                let on_disk = fs::read(store.segment_path(s)).unwrap();
                assert_eq!(on_disk.len() as u64, s.len, "{crash:?}: {}", s.file);
            }
        }
    }

    #[test]
    fn a_format_1_store_is_read_and_its_log_sealed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open_with(dir.path(), NEVER).unwrap();
        commit(&mut store, 0..10);
        commit(&mut store, 10..20);
        let len = store.state().log_len;
        // The state as the previous version wrote it.
        let state_path = dir.path().join(super::super::STATE_FILE);
        let mut old: serde_json::Value = serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
        let object = old.as_object_mut().unwrap();
        object.remove("segments");
        object.remove("log_span");
        object.insert("format".into(), 1.into());
        fs::write(&state_path, serde_json::to_vec(&old).unwrap()).unwrap();

        let mut store = ChatStore::open_with(dir.path(), NEVER).unwrap();
        assert_eq!(store.state().format, 1);
        assert_eq!(store.state().log_span, None);
        assert_eq!(ids(&store), expected(0..20));
        // A commit onto a log of unknown span leaves it unknown...
        commit(&mut store, 20..25);
        assert_eq!(
            (store.state().format, store.state().log_span),
            (super::super::STATE_FORMAT, None)
        );
        // ...and the seal reads the log to name it.
        let mut store = ChatStore::open_with(dir.path(), len).unwrap();
        commit(&mut store, 25..27);
        let state = store.state();
        assert_eq!(state.segments.len(), 1);
        let segment = &state.segments[0];
        assert_eq!(
            (segment.first, segment.last, segment.messages),
            (msg(0).ts, msg(24).ts, 25)
        );
        assert_eq!(
            state.log_span,
            Some(LogSpan {
                first: msg(25).ts,
                last: msg(26).ts,
                messages: 2
            })
        );
        assert_eq!(ids(&store), expected(0..27));
    }

    #[test]
    fn a_state_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(super::super::STATE_FILE),
            br#"{"format":5,"message_count":0,"log_len":0,"next_walk":0}"#,
        )
        .unwrap();
        let err = ChatStore::open_read_only(dir.path()).unwrap_err();
        assert!(err.to_string().contains("format 5"), "{err}");
    }

    #[test]
    fn a_reader_keeps_its_snapshot_while_the_log_is_sealed_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        let len = log_len_of(0..10);
        let mut writer = ChatStore::open_with(dir.path(), NEVER).unwrap();
        commit(&mut writer, 0..5);
        let reader = ChatStore::open_read_only(dir.path()).unwrap();
        // The writer seals the log the reader holds and starts a new one.
        let mut writer = ChatStore::open_with(dir.path(), len).unwrap();
        commit(&mut writer, 5..15);
        commit(&mut writer, 15..17);
        assert_eq!(writer.state().segments.len(), 1);
        assert!(writer.log_path().exists());
        assert_eq!(reader.state().message_count, 5);
        assert_eq!(ids(&reader), expected(0..5));
        assert_eq!(
            ids(&ChatStore::open_read_only(dir.path()).unwrap()),
            expected(0..17)
        );
    }

    #[test]
    fn names_stay_unique_when_segments_share_a_millisecond() {
        let ts = msg(0).ts;
        let span = LogSpan {
            first: ts,
            last: ts,
            messages: 3,
        };
        let mut sealed = Vec::new();
        for want in [
            "chat-1700000000000-1700000000000.jsonl.gz",
            "chat-1700000000000-1700000000000-2.jsonl.gz",
            "chat-1700000000000-1700000000000-3.jsonl.gz",
        ] {
            let name = segment_name(&span, &sealed);
            assert_eq!(name, want);
            sealed.push(Segment {
                file: name,
                first: ts,
                last: ts,
                messages: 3,
                len: 1,
                marks: Vec::new(),
            });
        }
        let early = LogSpan {
            first: Ts::new(1.5).unwrap(),
            last: Ts::new(2.0).unwrap(),
            messages: 2,
        };
        assert_eq!(
            segment_name(&early, &[]),
            "chat-0000000001500-0000000002000.jsonl.gz"
        );
    }
}
