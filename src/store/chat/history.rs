//! The history as it stands: the chat log merged with the overlay, one
//! [`Entry`] per message in the order of their places (`ts` as first
//! stored), each with its current version, its earlier ones and its
//! deletion mark.
//!
//! Both inputs are sorted by place, so the merge is one pass holding only
//! the overlay records of the current `ts` (a tie group). Without an
//! overlay the log's lines pass through unparsed, as fast as before there
//! was one.

use std::collections::VecDeque;
use std::io;
use std::iter::Peekable;

use super::overlay::{Record, Records};
use super::reader::{Lines, Start};
use super::{ChatStore, ChatStoreError, marks};
use crate::message::{Message, MessageId, Ts};

/// Problems a reader lists in full before it only counts them.
const SHOWN: usize = 3;

/// One message of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The current version: one compact JSON object, as the service sent it.
    pub message: String,
    /// Its place and id; `None` when the reader had no need to parse them
    /// (keys not asked for, and nothing in the overlay about it).
    pub key: Option<Key>,
    /// What happened to it after it was first stored; `None` for most.
    pub story: Option<Box<Story>>,
}

/// Where a message sits in the history and which it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The `ts` under which it was first stored.
    pub position: Ts,
    pub id: MessageId,
}

/// The overlay's part of an entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Story {
    /// Earlier versions, oldest first.
    pub earlier: Vec<Version>,
    /// When the service was first seen not to return it any more.
    pub deleted_upstream_at: Option<String>,
    /// Stored late, through the overlay, rather than in the chat log.
    pub late: bool,
}

/// An earlier version of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub message: String,
    /// When the version after it was first seen.
    pub superseded_at: String,
}

impl Entry {
    pub fn deleted_upstream_at(&self) -> Option<&str> {
        self.story.as_ref()?.deleted_upstream_at.as_deref()
    }

    pub fn earlier(&self) -> &[Version] {
        self.story.as_ref().map_or(&[], |s| &s.earlier)
    }

    /// Builds an entry from its versions, oldest first (at least one).
    fn from_versions(key: Key, first: String, record: Record, late: bool) -> Entry {
        let mut earlier = Vec::with_capacity(record.revisions.len());
        let mut current = first;
        for revision in record.revisions {
            earlier.push(Version {
                message: std::mem::replace(&mut current, revision.message),
                superseded_at: revision.seen_at,
            });
        }
        Entry {
            message: current,
            key: Some(key),
            story: Some(Box::new(Story {
                earlier,
                deleted_upstream_at: record.deleted_upstream_at,
                late,
            })),
        }
    }
}

/// The merged history, oldest place first.
pub struct History {
    base: Lines,
    records: Peekable<Records>,
    /// Whether every line is parsed (an overlay to merge, or keys wanted).
    parse: bool,
    /// Whether every entry gets its key (else only those the overlay
    /// touches).
    keys: bool,
    /// Overlay records below this are skipped, and records at it without a
    /// message in the log are not anomalies: a partial read starts here.
    from: Option<Ts>,
    /// The `ts` of the last log message, and the overlay records at it that
    /// no log message has claimed yet.
    group_ts: Option<Ts>,
    group: Vec<Record>,
    ready: VecDeque<io::Result<Entry>>,
    base_done: bool,
    line: u64,
    anomalies: Vec<String>,
    anomaly_count: u64,
    /// The overlay holds records from before ids had a type.
    untyped_ids: bool,
}

impl History {
    pub(super) fn new(store: &ChatStore, start: Start, from: Option<Ts>, keys: bool) -> History {
        let records = match (&store.overlay, &store.state.overlay) {
            (Some(file), Some(overlay)) => Records::new(file.clone(), overlay.len),
            _ => Records::none(),
        };
        History {
            base: Lines::from(store, start),
            parse: keys || store.overlay.is_some(),
            keys,
            records: records.peekable(),
            from,
            group_ts: None,
            group: Vec::new(),
            ready: VecDeque::new(),
            base_done: false,
            line: 0,
            anomalies: Vec::new(),
            anomaly_count: 0,
            untyped_ids: store.state.overlay_ids_untyped,
        }
    }

    /// Overlay records that match no message: counted, the first few named.
    /// Complete once the iterator is exhausted.
    pub fn anomalies(&self) -> (u64, &[String]) {
        (self.anomaly_count, &self.anomalies)
    }

    fn anomaly(&mut self, text: String) {
        self.anomaly_count += 1;
        if self.anomalies.len() < SHOWN {
            self.anomalies.push(text);
        }
    }

    /// A record no log message claimed: a late message, or an anomaly.
    fn alone(&mut self, record: Record) {
        if self.from.is_some_and(|from| record.position <= from) && record.first.is_none() {
            return;
        }
        let key = Key {
            position: record.position,
            id: record.id.clone(),
        };
        match record.first.clone() {
            Some(first) => {
                let entry = Entry::from_versions(key, first, record, true);
                self.ready.push_back(Ok(entry));
            }
            None => {
                self.anomaly(format!(
                    "overlay record for message {} at ts {} matches no stored message",
                    key.id.as_str(),
                    key.position
                ));
                // Its later versions are kept all the same.
                let mut record = record;
                if !record.revisions.is_empty() {
                    let first = record.revisions.remove(0).message;
                    self.ready
                        .push_back(Ok(Entry::from_versions(key, first, record, true)));
                }
            }
        }
    }

    fn next_record(&mut self) -> Option<Record> {
        loop {
            match self.records.next()? {
                Ok(record) if self.from.is_some_and(|from| record.position < from) => continue,
                Ok(record) => return Some(record),
                Err(e) => {
                    self.ready.push_back(Err(e));
                    return None;
                }
            }
        }
    }

    /// Settles everything placed before `ts`, and gathers the records at it.
    fn advance_to(&mut self, ts: Option<Ts>) {
        for record in std::mem::take(&mut self.group) {
            self.alone(record);
        }
        loop {
            let before = match (self.records.peek(), ts) {
                (Some(Ok(r)), Some(ts)) => r.position < ts,
                (Some(_), None) => true,
                (None, _) => false,
                (Some(Err(_)), _) => true,
            };
            if !before {
                break;
            }
            let Some(record) = self.next_record() else { break };
            self.alone(record);
        }
        if let Some(ts) = ts {
            while self
                .records
                .peek()
                .is_some_and(|r| r.as_ref().is_ok_and(|r| r.position == ts))
            {
                if let Some(record) = self.next_record() {
                    self.group.push(record);
                }
            }
        }
        self.group_ts = ts;
    }

    fn merge(&mut self, line: String) -> io::Result<Entry> {
        let unreadable = |e: crate::message::MessageError, n: u64| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("chat log message {n} is unreadable: {e}"),
            )
        };
        // Most lines need only their `ts` to be placed: the id matters at a
        // `ts` the overlay has records for, or to a reader that wants keys.
        let ts = match Message::stored_ts(&line) {
            Some(ts) => ts,
            None => {
                Message::stored_keys(&line)
                    .map_err(|e| unreadable(e, self.line))?
                    .1
            }
        };
        if self.group_ts != Some(ts) {
            self.advance_to(Some(ts));
        }
        if self.group.is_empty() && !self.keys {
            return Ok(Entry {
                message: line,
                key: None,
                story: None,
            });
        }
        let (id, _) = Message::stored_keys(&line).map_err(|e| unreadable(e, self.line))?;
        let key = Key { position: ts, id };
        let exact = self.group.iter().position(|r| r.id == key.id);
        // A record written before ids had a type names a numeric id as a
        // string of the same text.
        let untyped = || self.group.iter().position(|r| r.id.may_stand_for(&key.id));
        let Some(at) = exact.or_else(|| self.untyped_ids.then(untyped).flatten()) else {
            return Ok(Entry {
                message: line,
                key: Some(key),
                story: None,
            });
        };
        let record = self.group.swap_remove(at);
        if record.first.is_some() {
            self.anomaly(format!(
                "message {} at ts {} is both in the chat log and stored late in the overlay",
                key.id.as_str(),
                key.position
            ));
        }
        Ok(Entry::from_versions(key, line, record, false))
    }
}

impl Iterator for History {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        loop {
            if let Some(ready) = self.ready.pop_front() {
                return Some(ready);
            }
            if self.base_done {
                return None;
            }
            match self.base.next() {
                None => {
                    self.base_done = true;
                    self.advance_to(None);
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(line)) => {
                    self.line += 1;
                    if !self.parse {
                        return Some(Ok(Entry {
                            message: line,
                            key: None,
                            story: None,
                        }));
                    }
                    let entry = self.merge(line);
                    self.ready.push_back(entry);
                }
            }
        }
    }
}

/// The newest part of the history, in memory, keys parsed.
#[derive(Debug)]
pub struct Recent {
    /// Entries in order of place.
    pub entries: Vec<Entry>,
    /// Every stored message placed after this `ts` is in `entries`; at it,
    /// some may not be. `None`: the whole history is.
    pub complete_above: Option<Ts>,
}

impl ChatStore {
    /// The merged history, oldest place first. Lines are parsed only when
    /// there is an overlay to merge.
    pub fn history(&self) -> Result<History, ChatStoreError> {
        Ok(History::new(self, Start { source: 0, offset: 0 }, None, false))
    }

    /// As [`ChatStore::history`], with every entry's key parsed.
    pub fn history_with_keys(&self) -> Result<History, ChatStoreError> {
        Ok(History::new(self, Start { source: 0, offset: 0 }, None, true))
    }

    /// The ids of the messages placed at the oldest `ts`.
    pub fn oldest_ids(&self) -> Result<Vec<MessageId>, ChatStoreError> {
        let Some(oldest) = self.state.oldest else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        for entry in self.history_with_keys()? {
            let entry = entry.map_err(ChatStoreError::Read)?;
            match entry.key {
                Some(key) if key.position == oldest => ids.push(key.id),
                _ => break,
            }
        }
        Ok(ids)
    }

    /// Every stored message placed at `from` or later, and perhaps some
    /// before it, keys parsed, streamed from the nearest mark (see
    /// [`marks`]): what the search index reads after an append, at a cost
    /// that follows the range, not the history.
    pub fn history_from(&self, from: Ts) -> Result<History, ChatStoreError> {
        let (start, first) = self.recent_start(from, 0);
        Ok(History::new(self, start, first, true))
    }

    /// At least every stored message placed at `below` or newer, and at
    /// least the newest `at_least` ones, read from the nearest mark (see
    /// [`marks`]), so the cost follows the range, not the history.
    pub fn recent(&self, below: Ts, at_least: u64) -> Result<Recent, ChatStoreError> {
        let (start, first) = self.recent_start(below, at_least);
        let history = History::new(self, start, first, true);
        let mut entries = Vec::new();
        for entry in history {
            entries.push(entry.map_err(ChatStoreError::Read)?);
        }
        Ok(Recent {
            entries,
            complete_above: first,
        })
    }

    /// Where [`ChatStore::recent`] starts reading, and the `ts` of the first
    /// message there (`None`: at the very beginning).
    fn recent_start(&self, below: Ts, at_least: u64) -> (Start, Option<Ts>) {
        let state = &self.state;
        let open = state.segments.len();
        // Messages from each candidate start to the end; an open log of
        // unknown span (format 1) counts as none, which only reads more.
        let open_messages = state.log_span.map_or(0, |s| s.messages);
        if state.log_len > 0
            && let Some(span) = &state.log_span
        {
            if let Some(mark) = marks::start_for(&state.log_marks, span.messages, below, at_least) {
                let start = Start {
                    source: open,
                    offset: mark.offset,
                };
                return (start, Some(mark.first));
            }
            if span.first < below && span.messages >= at_least {
                return (
                    Start {
                        source: open,
                        offset: 0,
                    },
                    Some(span.first),
                );
            }
        }
        let mut after = open_messages;
        for (index, segment) in state.segments.iter().enumerate().rev() {
            let total = after + segment.messages;
            let needed = at_least.saturating_sub(after);
            if let Some(mark) = marks::start_for(&segment.marks, segment.messages, below, needed) {
                return (
                    Start {
                        source: index,
                        offset: mark.offset,
                    },
                    Some(mark.first),
                );
            }
            if index > 0 && segment.first < below && total >= at_least {
                return (
                    Start {
                        source: index,
                        offset: 0,
                    },
                    Some(segment.first),
                );
            }
            after = total;
        }
        (Start { source: 0, offset: 0 }, None)
    }
}
