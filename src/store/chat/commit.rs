//! A commit: the one atomic step that changes a personality's history.
//!
//! A [`Commit`] gathers what a walk (or an audit) found: messages newer than
//! the newest stored (appended to the open log), messages older than the
//! oldest stored (a new segment placed first), and changes to the overlay
//! (late messages, revisions, deletion marks). [`Commit::finish`] makes each
//! of those durable in a file the current state does not name yet, then
//! writes the state once, atomically: that write is the commit. A crash
//! before it leaves the old state and some unnamed bytes, which
//! [`ChatStore::open`] removes (the log past its committed length, a segment
//! or overlay file the state does not list); after it, only files the new
//! state no longer needs remain, removed the same way.

use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::marks::{self, MEMBER_MESSAGES, Mark};
use super::overlay::{self, Change, Keyed, Records, Revision};
use super::segments::segment_name;
use super::{ChatState, ChatStore, ChatStoreError, Head, LogSpan, Segment};
use crate::message::{Message, MessageId, Ts};
use crate::store::fsio;
use crate::store::spool::Spool;

/// Overlay changes held in memory before they are merged into a new
/// overlay file mid-commit (an audit that marks a whole history).
const FLUSH_CHANGES: usize = 50_000;
/// How far ahead of this machine's clock a message may be dated and still
/// become the newest stored one. A message dated later (a skewed or hostile
/// `ts`, up to `1e308`) is stored in its place all the same, through the
/// overlay, but never as the head: walks stop at the head, and one far in
/// the future would make every later sync take every new message for one
/// already stored.
pub const FUTURE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Name of the segment a commit writes before it knows its span.
pub(super) const PREPEND_TMP: &str = ".prepend.tmp";

/// What a commit changed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommitSummary {
    /// Messages stored for the first time (appended, prepended or late).
    pub added: u64,
    /// Of those, stored below the newest stored message through the overlay.
    pub late: u64,
    /// Of those, older than everything stored before (a new first segment).
    pub older: u64,
    /// New versions of stored messages.
    pub revised: u64,
    /// Messages newly marked deleted upstream.
    pub deleted: u64,
    /// Marked messages the service returns again.
    pub returned: u64,
    /// New messages dated beyond [`FUTURE_TOLERANCE`] ahead of the clock,
    /// and the latest of their dates.
    pub future: u64,
    pub future_latest: Option<Ts>,
}

/// A commit in progress; see the module doc. Dropping it without
/// [`Commit::finish`] changes nothing the state names.
pub struct Commit<'s> {
    store: &'s mut ChatStore,
    next: ChatState,
    appender: Option<MemberWriter>,
    prepender: Option<MemberWriter>,
    changes: Vec<Keyed>,
    /// Overlay files this commit wrote, the last one current.
    written_overlays: Vec<(String, overlay::Counts, u64)>,
    next_overlay: u64,
    summary: CommitSummary,
    /// The latest `ts` that may become the head (the clock plus the
    /// tolerance).
    horizon: Ts,
}

impl ChatStore {
    /// Starts a commit. A log that reached the segment size in an earlier
    /// run whose seal never began is sealed first.
    pub fn begin(&mut self) -> Result<Commit<'_>, ChatStoreError> {
        self.seal_if_due()?;
        let next = self.state.clone();
        let next_overlay = next
            .overlay
            .as_ref()
            .and_then(|o| overlay::number_of(&o.file))
            .map_or(0, |n| n + 1);
        Ok(Commit {
            store: self,
            next,
            appender: None,
            prepender: None,
            changes: Vec::new(),
            written_overlays: Vec::new(),
            next_overlay,
            summary: CommitSummary::default(),
            horizon: horizon(),
        })
    }

    /// Commits a walk's spool as new messages: every spooled message is
    /// appended, in order. For a store whose walks spool only what is newer
    /// than the head (tests of the log itself); a sync compares first.
    pub fn commit(&mut self, spool: Spool) -> Result<CommitSummary, ChatStoreError> {
        let mut commit = self.begin()?;
        for page in spool.pages_oldest_first() {
            let mut page = page?;
            page.sort_by(|a, b| a.ts.total_cmp(&b.ts));
            for m in &page {
                commit.append(m)?;
            }
        }
        commit.finish(Some(spool))
    }
}

impl Commit<'_> {
    /// The state as it will be written.
    pub fn state(&self) -> &ChatState {
        &self.next
    }

    /// What the commit has changed so far.
    pub fn summary(&self) -> CommitSummary {
        self.summary
    }

    /// Adds a message newer than (or as new as) every stored one. Calls come
    /// in order of `ts`.
    pub fn append(&mut self, m: &Message) -> Result<(), ChatStoreError> {
        let writer = match &mut self.appender {
            Some(writer) => writer,
            None => {
                let state = &self.store.state;
                // An open log of unknown span (format 1) stays unmarked: its
                // messages before the commit are not counted.
                let known = state.log_len == 0 || state.log_span.is_some();
                let before = state
                    .log_span
                    .filter(|_| state.log_len > 0)
                    .map_or(0, |s| s.messages);
                let marks = if known {
                    state.log_marks.clone()
                } else {
                    Vec::new()
                };
                let path = self.store.log_path();
                let writer = MemberWriter::append_to(&path, state.log_len, before, marks, known)
                    .map_err(|e| io_err(&path, e))?;
                self.appender.insert(writer)
            }
        };
        writer.write(m).map_err(|e| io_err(&writer.path, e))?;
        advance_head(&mut self.next.head, m);
        self.count_new(m.ts);
        Ok(())
    }

    /// Adds a message older than (or as old as) every stored one. Calls
    /// come in order of `ts`; together they become a new first segment.
    pub fn prepend(&mut self, m: &Message) -> Result<(), ChatStoreError> {
        let writer = match &mut self.prepender {
            Some(writer) => writer,
            None => {
                let dir = self.store.segments_dir();
                fsio::create_private_dir(&dir).map_err(|e| io_err(&dir, e))?;
                let tmp = dir.join(PREPEND_TMP);
                let writer = MemberWriter::create(&tmp).map_err(|e| io_err(&tmp, e))?;
                self.prepender.insert(writer)
            }
        };
        writer.write(m).map_err(|e| io_err(&writer.path, e))?;
        self.summary.older += 1;
        if self.next.head.is_none() {
            advance_head(&mut self.next.head, m);
        }
        self.count_new(m.ts);
        Ok(())
    }

    /// Stores a message the store lacks in its place, judged by the store as
    /// it was when the commit began: newer than (or as new as) every stored
    /// message, appended; older than every one, prepended; between, stored
    /// late. Calls come in order of `ts`.
    pub fn place(&mut self, m: &Message) -> Result<(), ChatStoreError> {
        if m.ts > self.horizon {
            self.summary.future += 1;
            if self.summary.future_latest.is_none_or(|t| m.ts > t) {
                self.summary.future_latest = Some(m.ts);
            }
            return self.late(m);
        }
        let state = &self.store.state;
        if state.head.as_ref().is_none_or(|h| m.ts >= h.ts) {
            self.append(m)
        } else if state.oldest.is_some_and(|o| m.ts < o) {
            self.prepend(m)
        } else {
            self.late(m)
        }
    }

    /// Stores a message in its place below the newest stored one, through
    /// the overlay.
    pub fn late(&mut self, m: &Message) -> Result<(), ChatStoreError> {
        self.summary.late += 1;
        self.count_new(m.ts);
        self.change(m.ts, m.id.clone(), Change::Late(m.raw.clone()))
    }

    /// Records a new version of the stored message at `position`.
    pub fn revise(&mut self, position: Ts, m: &Message, seen_at: &str) -> Result<(), ChatStoreError> {
        self.summary.revised += 1;
        let revision = Revision {
            seen_at: seen_at.to_owned(),
            message: m.raw.clone(),
        };
        self.change(position, m.id.clone(), Change::Revise(revision))
    }

    /// Marks the stored message at `position` as no longer returned.
    pub fn mark_deleted(&mut self, position: Ts, id: &MessageId, at: &str) -> Result<(), ChatStoreError> {
        self.summary.deleted += 1;
        self.change(position, id.clone(), Change::MarkDeleted(at.to_owned()))
    }

    /// Clears the deletion mark of a message the service returns again.
    pub fn unmark(&mut self, position: Ts, id: &MessageId) -> Result<(), ChatStoreError> {
        self.summary.returned += 1;
        self.change(position, id.clone(), Change::Unmark)
    }

    /// Anything else the state records (beginning, probes, what the service
    /// honours), written with the commit.
    pub fn state_mut(&mut self) -> &mut ChatState {
        &mut self.next
    }

    fn count_new(&mut self, ts: Ts) {
        self.summary.added += 1;
        self.next.message_count += 1;
        if self.next.oldest.is_none_or(|o| ts < o) {
            self.next.oldest = Some(ts);
        }
    }

    fn change(&mut self, position: Ts, id: MessageId, change: Change) -> Result<(), ChatStoreError> {
        self.changes.push(Keyed { position, id, change });
        if self.changes.len() >= FLUSH_CHANGES {
            self.flush_overlay()?;
        }
        Ok(())
    }

    /// Merges the gathered changes into a new overlay file (not yet named
    /// by any state).
    fn flush_overlay(&mut self) -> Result<(), ChatStoreError> {
        let changes = std::mem::take(&mut self.changes);
        let file = overlay::file_name(self.next_overlay);
        self.next_overlay += 1;
        let path = self.store.dir.join(&file);
        let old = match self.written_overlays.last() {
            Some((name, _, len)) => {
                let path = self.store.dir.join(name);
                let f = fsio::open_read(&path).map_err(|e| io_err(&path, e))?;
                Records::new(Arc::new(f), *len)
            }
            None => self.store.overlay_records(),
        };
        let untyped_ids = self.store.state.overlay_ids_untyped;
        let mut counts = overlay::Counts::default();
        fsio::write_atomic_with(&path, |f| {
            let mut gz = GzEncoder::new(BufWriter::with_capacity(1 << 16, &mut *f), Compression::new(6));
            counts = overlay::write_merged(old, changes, untyped_ids, &mut gz)?;
            gz.finish()?.flush()
        })
        .map_err(|e| io_err(&path, e))?;
        let len = fs::metadata(&path).map_err(|e| io_err(&path, e))?.len();
        self.written_overlays.push((file, counts, len));
        Ok(())
    }

    /// Makes everything durable, then writes the state (the commit), then
    /// removes what the new state no longer needs: the spool of the walk
    /// committed, if any, and the previous overlay file. Seals the open log
    /// if it has reached the segment size.
    pub fn finish(mut self, spool: Option<Spool>) -> Result<CommitSummary, ChatStoreError> {
        let mut log = None;
        if let Some(writer) = self.appender.take() {
            let path = writer.path.clone();
            let finished = writer.finish().map_err(|e| io_err(&path, e))?;
            let span_known = self.store.state.log_len == 0 || self.store.state.log_span.is_some();
            let mut span = self.store.state.log_span.filter(|_| self.store.state.log_len > 0);
            if let Some(new) = finished.span {
                LogSpan::merge(&mut span, new);
            }
            self.next.log_len = finished.len;
            self.next.log_span = span.filter(|_| span_known);
            self.next.log_marks = finished.marks;
            log = Some(Arc::new(finished.file));
        }
        if let Some(writer) = self.prepender.take() {
            let tmp = writer.path.clone();
            let finished = writer.finish().map_err(|e| io_err(&tmp, e))?;
            if let Some(span) = finished.span {
                let name = segment_name(&span, &self.next.segments);
                let dir = self.store.segments_dir();
                let target = dir.join(&name);
                fs::rename(&tmp, &target).map_err(|e| io_err(&tmp, e))?;
                fsio::sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
                self.next.segments.insert(
                    0,
                    Segment {
                        file: name,
                        first: span.first,
                        last: span.last,
                        messages: span.messages,
                        len: finished.len,
                        marks: finished.marks,
                    },
                );
            }
        }
        if !self.changes.is_empty() {
            self.flush_overlay()?;
        }
        let old_overlay = self.store.state.overlay.as_ref().map(|o| o.file.clone());
        if let Some((file, counts, len)) = self.written_overlays.last().cloned() {
            self.next.overlay = (counts.records > 0).then(|| counts.into_ref(file, len));
        }
        if spool.is_some() {
            self.next.next_walk += 1;
        }
        self.next.commits += 1;
        let Commit {
            store,
            next,
            written_overlays,
            summary,
            ..
        } = self;
        store.save(next)?;
        if let Some(file) = log {
            store.log = Some(file);
        }
        let current = store.state.overlay.as_ref().map(|o| o.file.clone());
        store.overlay = match &current {
            Some(name) => Some(Arc::new(
                fsio::open_read(&store.dir.join(name)).map_err(|e| io_err(&store.dir.join(name), e))?,
            )),
            None => None,
        };
        // Everything but the current overlay is garbage now.
        for name in old_overlay
            .into_iter()
            .chain(written_overlays.into_iter().map(|w| w.0))
        {
            if Some(&name) != current.as_ref() {
                let path = store.dir.join(&name);
                fsio::remove_durably(&path).map_err(|e| io_err(&path, e))?;
            }
        }
        if let Some(spool) = spool {
            spool.remove()?;
        }
        store.seal_if_due()?;
        Ok(summary)
    }
}

/// The clock plus [`FUTURE_TOLERANCE`], as a `ts`.
fn horizon() -> Ts {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ts::new((now + FUTURE_TOLERANCE).as_secs_f64()).unwrap_or(Ts::EPOCH)
}

fn io_err(path: &Path, source: io::Error) -> ChatStoreError {
    ChatStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Moves the head to `m` when it is newer, or adds it to the head's ids.
pub(super) fn advance_head(head: &mut Option<Head>, m: &Message) {
    match head {
        Some(h) if m.ts < h.ts => {}
        Some(h) if m.ts == h.ts => {
            if !h.ids.contains(&m.id) {
                h.ids.push(m.id.clone());
            }
        }
        _ => {
            *head = Some(Head {
                ts: m.ts,
                ids: vec![m.id.clone()],
            })
        }
    }
}

/// Writes messages into a chat log file as gzip members of at most
/// [`MEMBER_MESSAGES`] messages, marking where each starts.
struct MemberWriter {
    file: File,
    path: PathBuf,
    encoder: Option<GzEncoder<BufWriter<File>>>,
    in_member: usize,
    /// Messages in the file before this writer's first.
    before: u64,
    written: u64,
    marks: Vec<Mark>,
    track_marks: bool,
    span: Option<LogSpan>,
}

/// A finished [`MemberWriter`].
struct Finished {
    file: File,
    len: u64,
    marks: Vec<Mark>,
    /// First and last `ts` and count of what this writer wrote.
    span: Option<LogSpan>,
}

impl MemberWriter {
    /// Continues the file at `path` after its first `len` bytes (anything
    /// past them is a torn commit, cut away).
    fn append_to(
        path: &Path,
        len: u64,
        before: u64,
        marks: Vec<Mark>,
        track_marks: bool,
    ) -> io::Result<MemberWriter> {
        let mut file = fsio::open_private_rw(path)?;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        Ok(MemberWriter {
            file,
            path: path.to_owned(),
            encoder: None,
            in_member: 0,
            before,
            written: 0,
            marks,
            track_marks,
            span: None,
        })
    }

    /// A new, empty file at `path` (replacing any).
    fn create(path: &Path) -> io::Result<MemberWriter> {
        MemberWriter::append_to(path, 0, 0, Vec::new(), true)
    }

    fn write(&mut self, m: &Message) -> io::Result<()> {
        if self.encoder.is_none() || self.in_member >= MEMBER_MESSAGES {
            self.finish_member()?;
            let offset = self.file.stream_position()?;
            if self.track_marks {
                marks::push(
                    &mut self.marks,
                    Mark {
                        offset,
                        first: m.ts,
                        before: self.before + self.written,
                    },
                );
            }
            let out = BufWriter::with_capacity(1 << 16, self.file.try_clone()?);
            self.encoder = Some(GzEncoder::new(out, Compression::new(6)));
        }
        if let Some(encoder) = &mut self.encoder {
            encoder.write_all(m.raw.as_bytes())?;
            encoder.write_all(b"\n")?;
        }
        self.in_member += 1;
        self.written += 1;
        LogSpan::extend(&mut self.span, m.ts);
        Ok(())
    }

    fn finish_member(&mut self) -> io::Result<()> {
        if let Some(encoder) = self.encoder.take() {
            encoder.finish()?.flush()?;
        }
        self.in_member = 0;
        Ok(())
    }

    fn finish(mut self) -> io::Result<Finished> {
        self.finish_member()?;
        self.file.sync_data()?;
        let len = self.file.stream_position()?;
        Ok(Finished {
            file: self.file,
            len,
            marks: self.marks,
            span: self.span,
        })
    }
}
