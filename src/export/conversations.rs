//! `--format conversations`: the history split into conversations at
//! silences longer than a gap, as JSON Lines, one conversation a line:
//!
//! ```json
//! {"start":"2024-01-01T10:00:00.000Z","end":"2024-01-01T10:42:10.500Z","message_count":12,"summary":{"opening":"Hello","terms":["lantern"]},"ids":["a","b"],"messages":[{"id":"a"},{"id":"b"}]}
//! ```
//!
//! `start` and `end` are the dates of the first and last message,
//! `summary` its opening user line and most distinctive terms
//! ([`super::summary`]), `ids` and
//! `messages` are in history order, each id and message exactly as stored.
//! Conversations with fewer than `min_messages` messages are left out.
//!
//! The summary comes first, so that a reader can decide from the start of a
//! line whether it wants the rest; but a conversation's end and count are
//! known only once it is over, and nothing bounds its length (a chat that
//! never pauses for the gap is one conversation, however long). So nothing
//! is buffered: three cursors walk the same history in step. The first runs
//! ahead to where the conversation ends and learns its start, end and
//! count; the second then writes its ids, the third its messages. Each
//! holds one line at a time, so memory stays flat whatever the length of a
//! conversation, for the price of decompressing the history three times.

use std::io::{self, Write};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::summary::Summary;
use super::turn::Turn;
use super::{ExportError, ExportOptions, Lines};
use crate::message::{Message, Ts};
use crate::store::{ChatStore, ChatStoreError};

/// Silence that ends a conversation when nothing else is said.
pub const DEFAULT_GAP: Duration = Duration::from_secs(30 * 60);
/// Shortest conversation kept when nothing else is said: shorter ones are
/// mostly greetings and one-off questions, noise for the memory mining and
/// migrations this format is for.
pub const DEFAULT_MIN_MESSAGES: u64 = 5;

/// How the history is split into conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// A conversation ends where the next message comes more than this
    /// after the previous one. Measured in whole milliseconds, the precision
    /// of the dates written: a silence of exactly the gap does not split.
    pub gap: Duration,
    /// Conversations with fewer messages are left out.
    pub min_messages: u64,
}

impl Default for Split {
    fn default() -> Self {
        Split {
            gap: DEFAULT_GAP,
            min_messages: DEFAULT_MIN_MESSAGES,
        }
    }
}

/// What a conversations export wrote and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConversationCounts {
    /// Conversations written, and the messages in them.
    pub conversations: u64,
    pub messages: u64,
    /// Conversations left out for being shorter than the minimum, and the
    /// messages in them.
    pub skipped_conversations: u64,
    pub skipped_messages: u64,
}

/// One stored line's `id`, as stored.
#[derive(Deserialize)]
struct Id<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
}

/// The stored lines of the history, numbered from 1.
pub(crate) struct Cursor<'a> {
    lines: Lines<'a>,
    /// The number of the line last read.
    pub(crate) line: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(store: &ChatStore, options: &ExportOptions) -> Result<Cursor<'a>, ExportError> {
        Ok(Cursor {
            lines: Lines::new(store, options)?,
            line: 0,
        })
    }

    fn next(&mut self) -> Result<Option<String>, ExportError> {
        match self.lines.next() {
            Some(line) => {
                self.line += 1;
                Ok(Some(line.map_err(ChatStoreError::Read)?))
            }
            None => Ok(None),
        }
    }

    /// The next line of a conversation the first cursor has already read.
    pub(crate) fn next_known(&mut self) -> Result<String, ExportError> {
        self.next()?.ok_or_else(|| {
            ExportError::Write(io::Error::other(
                "the chat history changed while it was being exported; try again",
            ))
        })
    }

    /// Skips `count` lines the first cursor has already read.
    pub(crate) fn skip(&mut self, count: u64) -> Result<(), ExportError> {
        for _ in 0..count {
            self.next_known()?;
        }
        Ok(())
    }

    fn next_ts(&mut self) -> Result<Option<(Ts, String)>, ExportError> {
        let Some(line) = self.next()? else {
            return Ok(None);
        };
        if let Some(ts) = Message::stored_ts(&line) {
            return Ok(Some((ts, line)));
        }
        let (_, ts) = Message::stored_keys(&line).map_err(|e| ExportError::BadLine {
            line: self.line,
            reason: e.to_string(),
        })?;
        Ok(Some((ts, line)))
    }
}

/// One conversation, as the first cursor found it.
#[derive(Debug)]
pub(crate) struct Span {
    pub start: Ts,
    pub end: Ts,
    pub count: u64,
    /// Kept: at least the minimum number of messages.
    pub kept: bool,
    /// Empty unless the spans were asked to summarize.
    pub summary: Summary,
}

/// The conversations of a history, one after the other, found by a cursor
/// of their own that runs ahead of the cursors that write them: each is
/// known (its start, end, count and summary) before its first line is
/// written, for the price of reading the history once more.
pub(crate) struct Spans<'a> {
    ahead: Cursor<'a>,
    next_start: Option<(Ts, String)>,
    gap_ms: i128,
    min_messages: u64,
    expected: u64,
    counts: ConversationCounts,
    /// Whether to build each conversation's summary (which reads every
    /// message's text, not only its `ts`).
    summarize: bool,
}

impl<'a> Spans<'a> {
    pub(crate) fn new(
        store: &ChatStore,
        options: &ExportOptions,
        summarize: bool,
    ) -> Result<Spans<'a>, ExportError> {
        let mut ahead = Cursor::new(store, options)?;
        let next_start = ahead.next_ts()?;
        Ok(Spans {
            ahead,
            next_start,
            gap_ms: i128::try_from(options.split.gap.as_millis()).unwrap_or(i128::MAX),
            min_messages: options.split.min_messages,
            expected: options.expected_messages(store.state()),
            counts: ConversationCounts::default(),
            summarize,
        })
    }

    /// The next conversation; `None` after the last.
    pub(crate) fn next_span(&mut self) -> Result<Option<Span>, ExportError> {
        let Some((start, first)) = self.next_start.take() else {
            return Ok(None);
        };
        let mut summary = Summary::default();
        let summarize = self.summarize;
        let take = |summary: &mut Summary, text: &str, line: u64| -> Result<(), ExportError> {
            if !summarize {
                return Ok(());
            }
            let turn = Turn::parse(text, line)?;
            summary.add(turn.user.as_deref(), turn.reply.as_deref());
            Ok(())
        };
        take(&mut summary, &first, self.ahead.line)?;
        // Find where this conversation ends, and the first message of the next.
        let (mut end, mut count) = (start, 1u64);
        while let Some((ts, text)) = self.ahead.next_ts()? {
            if i128::from(ts.millis()) - i128::from(end.millis()) > self.gap_ms {
                self.next_start = Some((ts, text));
                break;
            }
            take(&mut summary, &text, self.ahead.line)?;
            if ts > end {
                end = ts;
            }
            count += 1;
        }
        let kept = count >= self.min_messages;
        if kept {
            self.counts.conversations += 1;
            self.counts.messages += count;
        } else {
            self.counts.skipped_conversations += 1;
            self.counts.skipped_messages += count;
        }
        Ok(Some(Span {
            start,
            end,
            count,
            kept,
            summary,
        }))
    }

    /// What was found, once every conversation is: checked against the
    /// count the store's state holds.
    pub(crate) fn finish(self) -> Result<ConversationCounts, ExportError> {
        let found = self.ahead.line + self.ahead.lines.outside;
        if found != self.expected {
            return Err(ExportError::CountMismatch {
                found,
                expected: self.expected,
            });
        }
        Ok(self.counts)
    }
}

/// Writes the conversations of `store` to `out`, split and selected as
/// `options` say.
pub fn write(
    store: &ChatStore,
    options: &ExportOptions,
    out: &mut impl Write,
) -> Result<ConversationCounts, ExportError> {
    let mut spans = Spans::new(store, options, true)?;
    let mut ids = Cursor::new(store, options)?;
    let mut messages = Cursor::new(store, options)?;
    while let Some(span) = spans.next_span()? {
        let count = span.count;
        if !span.kept {
            ids.skip(count)?;
            messages.skip(count)?;
            continue;
        }
        write!(
            out,
            "{{\"start\":\"{}\",\"end\":\"{}\",\"message_count\":{count},\"summary\":{},\"ids\":[",
            span.start.to_rfc3339(),
            span.end.to_rfc3339(),
            span.summary.to_json()
        )?;
        for i in 0..count {
            let line = ids.next_known()?;
            let id: Id = serde_json::from_str(&line).map_err(|e| ExportError::BadLine {
                line: ids.line,
                reason: e.to_string(),
            })?;
            out.write_all(if i == 0 { b"" } else { b"," })?;
            out.write_all(id.id.get().as_bytes())?;
        }
        out.write_all(b"],\"messages\":[")?;
        for i in 0..count {
            let line = messages.next_known()?;
            out.write_all(if i == 0 { b"" } else { b"," })?;
            out.write_all(line.as_bytes())?;
        }
        out.write_all(b"]}\n")?;
    }
    out.flush()?;
    spans.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Checkpoint;

    /// 2023-11-14T22:13:20Z.
    const T0: f64 = 1_700_000_000.0;
    const GAP: f64 = 1800.0;

    fn checkpoint() -> Checkpoint {
        Checkpoint::start(50)
    }

    /// A store holding `raws` (stored lines, oldest first), committed
    /// `per_commit` at a time, sealing at `segment_size`.
    fn store_of(dir: &std::path::Path, raws: &[String], per_commit: usize, segment_size: u64) -> ChatStore {
        let mut store = ChatStore::open_with(dir, segment_size).unwrap();
        for chunk in raws.chunks(per_commit) {
            let mut spool = store.open_walk().unwrap();
            let page: Vec<Message> = chunk
                .iter()
                .map(|r| Message::from_stored_line(r).unwrap())
                .collect();
            spool.append_page(&checkpoint(), &page).unwrap();
            store.commit(spool).unwrap();
        }
        store
    }

    /// Messages `m0`, `m1`... at `T0` plus each offset in seconds.
    fn at(offsets: &[f64]) -> Vec<String> {
        offsets
            .iter()
            .enumerate()
            .map(|(i, dt)| format!(r#"{{"id":"m{i}","ts":{},"reply":"r{i}"}}"#, T0 + dt))
            .collect()
    }

    fn export(store: &ChatStore, split: Split) -> (Vec<serde_json::Value>, ConversationCounts) {
        let mut out = Vec::new();
        let options = ExportOptions {
            split,
            ..ExportOptions::default()
        };
        let counts = write(store, &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect();
        (lines, counts)
    }

    fn ids_of(conversation: &serde_json::Value) -> Vec<String> {
        conversation["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect()
    }

    fn all(min_messages: u64) -> Split {
        Split {
            gap: DEFAULT_GAP,
            min_messages,
        }
    }

    fn options(min_messages: u64) -> ExportOptions {
        ExportOptions {
            split: all(min_messages),
            ..ExportOptions::default()
        }
    }

    #[test]
    fn a_silence_longer_than_the_gap_splits_and_one_equal_to_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let raws = at(&[
            0.0,
            60.0,
            60.0 + GAP,               // exactly the gap: same conversation
            60.0 + 2.0 * GAP + 0.001, // one millisecond more: a new one
            60.0 + 2.0 * GAP + 10.0,
            60.0 + 3.0 * GAP + 11.0, // the gap plus a second: a new one
        ]);
        let store = store_of(dir.path(), &raws, 2, u64::MAX);
        let (conversations, counts) = export(&store, all(1));
        let ids: Vec<Vec<String>> = conversations.iter().map(ids_of).collect();
        assert_eq!(ids, [vec!["m0", "m1", "m2"], vec!["m3", "m4"], vec!["m5"]]);
        assert_eq!(
            counts,
            ConversationCounts {
                conversations: 3,
                messages: 6,
                skipped_conversations: 0,
                skipped_messages: 0
            }
        );
        let first = &conversations[0];
        assert_eq!(first["start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(first["end"], "2023-11-14T22:44:20.000Z");
        assert_eq!(first["message_count"], 3);
        // No user text in these messages; r0, r1, r2 are too short for terms.
        assert_eq!(
            first["summary"],
            serde_json::json!({"opening": null, "terms": []})
        );
        assert_eq!(conversations[1]["start"], "2023-11-14T23:14:20.001Z");
        // The summary comes before the messages on each line.
        let mut out = Vec::new();
        write(&store, &options(1), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("{\"start\":\"2023-11-14T22:13:20.000Z\",\"end\":"),
            "{text}"
        );

        // A gap of a minute less splits every silence of 30 minutes.
        let split = Split {
            gap: Duration::from_secs(29 * 60),
            min_messages: 1,
        };
        let (conversations, _) = export(&store, split);
        assert_eq!(conversations.len(), 4);
    }

    #[test]
    fn conversations_shorter_than_the_minimum_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        // Conversations of 1, 5, 4 and 6 messages, a day apart.
        let mut offsets = Vec::new();
        for (day, size) in [1, 5, 4, 6].into_iter().enumerate() {
            offsets.extend((0..size).map(|i| day as f64 * 86_400.0 + f64::from(i) * 60.0));
        }
        let store = store_of(dir.path(), &at(&offsets), 3, u64::MAX);
        let (conversations, counts) = export(&store, all(DEFAULT_MIN_MESSAGES));
        let sizes: Vec<u64> = conversations
            .iter()
            .map(|c| c["message_count"].as_u64().unwrap())
            .collect();
        assert_eq!(sizes, [5, 6]);
        assert_eq!(ids_of(&conversations[0]), ["m1", "m2", "m3", "m4", "m5"]);
        assert_eq!(ids_of(&conversations[1])[0], "m10");
        assert_eq!(
            counts,
            ConversationCounts {
                conversations: 2,
                messages: 11,
                skipped_conversations: 2,
                skipped_messages: 5
            }
        );
        let (conversations, _) = export(&store, all(7));
        assert!(conversations.is_empty());
        let (conversations, _) = export(&store, all(1));
        assert_eq!(conversations.len(), 4);
    }

    #[test]
    fn ids_and_messages_are_written_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let raws: Vec<String> = [
            r#"{"id":"a","ts":1700000000.1,"x":{"n":2.50,"e":1e-7}}"#,
            r#"{"id":7,"ts":1700000001,"message":"emoji 👩‍👩‍👧 \"q\" \n"}"#,
            r#"{"ts":1700000002.120,"id":"c","big":123456789012345678901234567890}"#,
        ]
        .map(str::to_owned)
        .to_vec();
        let store = store_of(dir.path(), &raws, 3, u64::MAX);
        let mut out = Vec::new();
        write(&store, &options(1), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        // Ids keep their JSON type, messages their bytes.
        assert!(text.contains(r#""ids":["a",7,"c"],"messages":["#), "{text}");
        let expected_messages = raws.join(",");
        assert!(text.contains(&expected_messages), "{text}");
        assert!(text.ends_with("]}\n"));
        let conversation: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        let ids = conversation["ids"].as_array().unwrap();
        let messages = conversation["messages"].as_array().unwrap();
        assert_eq!(ids.len(), messages.len());
        for (id, message) in ids.iter().zip(messages) {
            assert_eq!(id, &message["id"]);
        }
        assert_eq!(conversation["start"], "2023-11-14T22:13:20.100Z");
        assert_eq!(conversation["end"], "2023-11-14T22:13:22.120Z");
    }

    #[test]
    fn conversations_stream_across_segments() {
        // Three conversations of 30 messages a minute apart, a day apart.
        let offsets: Vec<f64> = (0..90)
            .map(|i| f64::from(i / 30) * 86_400.0 + f64::from(i % 30) * 60.0)
            .collect();
        let raws = at(&offsets);
        let whole = tempfile::tempdir().unwrap();
        let whole = store_of(whole.path(), &raws, 7, u64::MAX);
        let split = tempfile::tempdir().unwrap();
        let split = store_of(split.path(), &raws, 7, 1);
        assert!(split.state().segments.len() >= 12, "{:?}", split.state().segments);
        let mut expected = Vec::new();
        let want = write(&whole, &options(1), &mut expected).unwrap();
        let mut got = Vec::new();
        let counts = write(&split, &options(1), &mut got).unwrap();
        assert_eq!(counts, want);
        assert_eq!(counts.conversations, 3);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn an_empty_history_has_no_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChatStore::open(dir.path()).unwrap();
        let (conversations, counts) = export(&store, Split::default());
        assert!(conversations.is_empty());
        assert_eq!(counts, ConversationCounts::default());
        assert_eq!(Split::default(), all(5));
        assert_eq!(Split::default().gap, Duration::from_secs(1800));
    }
}
