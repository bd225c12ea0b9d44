//! The overlay: what happened to stored messages after the chat log first
//! took them. Upstream is not append-only (API.md): replies are
//! regenerated, messages deleted, and a message can turn up late below the
//! newest one. The chat log never changes below its committed length, so
//! these go here instead:
//!
//! - **revisions**: later versions of a message, with the time each was
//!   seen; the chat log keeps the first one;
//! - **deletion marks**: `deleted_upstream_at`, for a message the service no
//!   longer returns (it is kept, never removed);
//! - **late messages**: a message first stored below the newest one, in its
//!   place by `ts`, whose first version lives here (`first`) because the
//!   log only grows at its newest end.
//!
//! The file is `overlay-<n>.jsonl.gz`: one JSON object per message that has
//! any of these, sorted by position (the `ts` under which the message was
//! first stored) and then id, so that a reader merges it with the log in
//! one pass, in bounded memory. A commit that changes it writes the next
//! `n` whole (merging the old file with the changes, streamed), makes it
//! durable, and then names it in the state file: the old one stays valid
//! until that atomic write, and is removed after it.
//!
//! A record, as one line:
//! `{"ts":1712345678.123,"id":"m1","first":{…},"revisions":[{"seen_at":"2026-11-30T04:00:00Z","message":{…}}],"deleted_upstream_at":"2026-11-30T04:00:00Z"}`;
//! `first`, `revisions` and `deleted_upstream_at` appear only when they
//! apply. Messages are embedded exactly as stored.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::reader::FileRange;
use crate::message::{MessageId, Ts};

/// File name prefix of overlay files.
pub const OVERLAY_PREFIX: &str = "overlay-";
/// File name suffix of overlay files.
pub const OVERLAY_SUFFIX: &str = ".jsonl.gz";

/// The overlay file the state names, and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverlayRef {
    /// File name, in the personality's directory.
    pub file: String,
    /// Its length in bytes, which never changes.
    pub len: u64,
    /// Records (messages with any entry).
    pub records: u64,
    /// Messages stored late, whose first version is here.
    pub late: u64,
    /// Messages with at least one revision.
    pub revised: u64,
    /// Revisions in all (earlier versions kept besides the first).
    pub revisions: u64,
    /// Messages marked deleted upstream.
    pub deleted: u64,
    /// The latest place of a message stored late (one dated ahead of the
    /// clock, say, can lie beyond the chat log's head).
    #[serde(default)]
    pub newest_late: Option<Ts>,
}

/// The name of overlay file number `n`.
pub fn file_name(n: u64) -> String {
    format!("{OVERLAY_PREFIX}{n}{OVERLAY_SUFFIX}")
}

/// The number in an overlay file name, if it is one.
pub fn number_of(name: &str) -> Option<u64> {
    name.strip_prefix(OVERLAY_PREFIX)?
        .strip_suffix(OVERLAY_SUFFIX)?
        .parse()
        .ok()
}

/// A later version of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// When it was first seen (RFC 3339, UTC).
    pub seen_at: String,
    /// The message as the service sent it, compact.
    pub message: String,
}

/// Everything the overlay holds about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The `ts` under which the message was first stored: its place in the
    /// history, which a later version does not move.
    pub position: Ts,
    pub id: MessageId,
    /// The first version, when the message is not in the chat log.
    pub first: Option<String>,
    /// Later versions, oldest first.
    pub revisions: Vec<Revision>,
    /// When the service was first seen not to return it any more.
    pub deleted_upstream_at: Option<String>,
}

impl Record {
    fn empty(position: Ts, id: MessageId) -> Record {
        Record {
            position,
            id,
            first: None,
            revisions: Vec::new(),
            deleted_upstream_at: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.revisions.is_empty() && self.deleted_upstream_at.is_none()
    }

    /// The order of records in the file.
    pub fn cmp_key(&self, other: &Record) -> Ordering {
        key_order(self.position, &self.id, other.position, &other.id)
    }

    /// Writes the record as one line.
    pub fn write_line(&self, out: &mut impl Write) -> io::Result<()> {
        write!(out, "{{\"ts\":{},\"id\":{}", self.position, self.id.to_json())?;
        if let Some(first) = &self.first {
            write!(out, ",\"first\":{first}")?;
        }
        if !self.revisions.is_empty() {
            out.write_all(b",\"revisions\":[")?;
            for (n, r) in self.revisions.iter().enumerate() {
                if n > 0 {
                    out.write_all(b",")?;
                }
                let seen = serde_json::to_string(&r.seen_at).map_err(io::Error::other)?;
                write!(out, "{{\"seen_at\":{seen},\"message\":{}}}", r.message)?;
            }
            out.write_all(b"]")?;
        }
        if let Some(at) = &self.deleted_upstream_at {
            let at = serde_json::to_string(at).map_err(io::Error::other)?;
            write!(out, ",\"deleted_upstream_at\":{at}")?;
        }
        out.write_all(b"}\n")
    }

    /// Parses one line.
    pub fn parse(line: &str) -> Result<Record, String> {
        #[derive(Deserialize)]
        struct Text<'a> {
            ts: f64,
            #[serde(borrow)]
            id: &'a RawValue,
            #[serde(default, borrow)]
            first: Option<&'a RawValue>,
            #[serde(default, borrow)]
            revisions: Vec<RevisionText<'a>>,
            #[serde(default)]
            deleted_upstream_at: Option<String>,
        }
        #[derive(Deserialize)]
        struct RevisionText<'a> {
            seen_at: String,
            #[serde(borrow)]
            message: &'a RawValue,
        }
        let text: Text = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let position = Ts::new(text.ts).ok_or_else(|| format!("ts {} is not a message time", text.ts))?;
        let id =
            MessageId::from_json(text.id).ok_or("an id that is neither a non-empty string nor a number")?;
        let record = Record {
            position,
            id,
            first: text.first.map(|raw| raw.get().to_owned()),
            revisions: text
                .revisions
                .into_iter()
                .map(|r| Revision {
                    seen_at: r.seen_at,
                    message: r.message.get().to_owned(),
                })
                .collect(),
            deleted_upstream_at: text.deleted_upstream_at,
        };
        if record.is_empty() {
            return Err("a record with nothing in it".into());
        }
        Ok(record)
    }
}

/// The order of the overlay: position, then id.
pub fn key_order(a_ts: Ts, a_id: &MessageId, b_ts: Ts, b_id: &MessageId) -> Ordering {
    a_ts.total_cmp(&b_ts).then_with(|| a_id.cmp(b_id))
}

/// One change to the overlay, made by a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A message stored late, in its place: its first version.
    Late(String),
    /// A new version of a stored message.
    Revise(Revision),
    /// The service no longer returns it (first seen then).
    MarkDeleted(String),
    /// The service returns it again.
    Unmark,
}

/// A change to the message at `position` with `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed {
    pub position: Ts,
    pub id: MessageId,
    pub change: Change,
}

impl Keyed {
    fn apply(self, record: Option<Record>) -> Option<Record> {
        let Keyed { position, id, change } = self;
        let mut record = record.unwrap_or_else(|| Record::empty(position, id));
        match change {
            Change::Late(first) => {
                record.first.get_or_insert(first);
            }
            Change::Revise(revision) => record.revisions.push(revision),
            Change::MarkDeleted(at) => {
                record.deleted_upstream_at.get_or_insert(at);
            }
            Change::Unmark => record.deleted_upstream_at = None,
        }
        (!record.is_empty()).then_some(record)
    }
}

/// What a written overlay holds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub records: u64,
    pub late: u64,
    pub revised: u64,
    pub revisions: u64,
    pub deleted: u64,
    pub newest_late: Option<Ts>,
}

impl Counts {
    fn add(&mut self, r: &Record) {
        self.records += 1;
        self.late += u64::from(r.first.is_some());
        if r.first.is_some() {
            // Records come in order of place: the last late one is the latest.
            self.newest_late = Some(r.position);
        }
        self.revised += u64::from(!r.revisions.is_empty());
        self.revisions += r.revisions.len() as u64;
        self.deleted += u64::from(r.deleted_upstream_at.is_some());
    }

    pub fn into_ref(self, file: String, len: u64) -> OverlayRef {
        OverlayRef {
            file,
            len,
            records: self.records,
            late: self.late,
            revised: self.revised,
            revisions: self.revisions,
            deleted: self.deleted,
            newest_late: self.newest_late,
        }
    }
}

/// Writes `old` (sorted records) merged with `changes` to `out`, in order.
/// Changes to the same message apply in the order given. Returns what the
/// result holds. With `untyped_ids` (records written before ids had a
/// type), an old record under a string id takes the numeric id of the same
/// text when a change is for that one: the record was about it.
pub fn write_merged(
    old: impl Iterator<Item = io::Result<Record>>,
    mut changes: Vec<Keyed>,
    untyped_ids: bool,
    out: &mut impl Write,
) -> io::Result<Counts> {
    changes.sort_by(|a, b| key_order(a.position, &a.id, b.position, &b.id));
    let mut counts = Counts::default();
    let mut old = old.peekable();
    let mut changes = changes.into_iter().peekable();
    loop {
        // The next message in order: the old record's, or a change's.
        let (mut record, position, id) = match (old.peek(), changes.peek()) {
            (None, None) => break,
            (Some(Ok(r)), Some(c)) if key_order(c.position, &c.id, r.position, &r.id) == Ordering::Less => {
                (None, c.position, c.id.clone())
            }
            (None, Some(c)) => (None, c.position, c.id.clone()),
            (Some(_), _) => match old.next() {
                Some(Ok(mut r)) => {
                    if untyped_ids {
                        retype(&mut r, changes.peek(), old.peek());
                    }
                    let (position, id) = (r.position, r.id.clone());
                    (Some(r), position, id)
                }
                Some(Err(e)) => return Err(e),
                None => break,
            },
        };
        while let Some(c) = changes.next_if(|c| c.position == position && c.id == id) {
            record = c.apply(record);
        }
        if let Some(r) = record {
            counts.add(&r);
            r.write_line(out)?;
        }
    }
    Ok(counts)
}

/// Gives the untyped record `r` the numeric id of `change` when that is the
/// same text at the same place, unless the next old record already has it.
fn retype(r: &mut Record, change: Option<&Keyed>, next_old: Option<&io::Result<Record>>) {
    let same = |position: Ts, id: &MessageId| position == r.position && r.id.may_stand_for(id);
    if !change.is_some_and(|c| same(c.position, &c.id)) {
        return;
    }
    if let Some(Ok(next)) = next_old
        && same(next.position, &next.id)
    {
        return;
    }
    r.id = change.expect("checked above").id.clone();
}

/// The records of an overlay file, in order.
pub struct Records {
    lines: io::Lines<Box<dyn BufRead + Send>>,
    line: u64,
}

impl Records {
    /// Reads the first `len` bytes of `file` (the committed overlay).
    pub fn new(file: Arc<File>, len: u64) -> Records {
        let range = FileRange::new(file, len);
        let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, range));
        let reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 16, gz));
        Records {
            lines: reader.lines(),
            line: 0,
        }
    }

    /// No records at all.
    pub fn none() -> Records {
        let reader: Box<dyn BufRead + Send> = Box::new(BufReader::new(io::empty()));
        Records {
            lines: reader.lines(),
            line: 0,
        }
    }
}

impl Iterator for Records {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<io::Result<Record>> {
        let line = match self.lines.next()? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        self.line += 1;
        Some(Record::parse(&line).map_err(|reason| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("overlay record {} is unreadable: {reason}", self.line),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(t: f64) -> Ts {
        Ts::new(t).unwrap()
    }

    fn keyed(t: f64, id: &str, change: Change) -> Keyed {
        Keyed {
            position: ts(t),
            id: id.into(),
            change,
        }
    }

    fn revise(seen: &str, message: &str) -> Change {
        Change::Revise(Revision {
            seen_at: seen.into(),
            message: message.into(),
        })
    }

    fn merged(old: Vec<Record>, changes: Vec<Keyed>) -> (Vec<Record>, Counts) {
        let mut out = Vec::new();
        let counts = write_merged(old.into_iter().map(Ok), changes, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let records = text.lines().map(|l| Record::parse(l).unwrap()).collect();
        (records, counts)
    }

    #[test]
    fn records_round_trip_byte_for_byte() {
        let record = Record {
            position: ts(1712345678.123),
            id: "m\"1".into(),
            first: Some(r#"{"id":"m\"1","ts":1712345678.1230,"x":2.50}"#.into()),
            revisions: vec![Revision {
                seen_at: "2026-11-30T04:00:00Z".into(),
                message: r#"{"id":"m\"1","ts":1712345678.1230,"reply":"é\u0000"}"#.into(),
            }],
            deleted_upstream_at: Some("2026-12-01T00:00:00Z".into()),
        };
        let mut line = Vec::new();
        record.write_line(&mut line).unwrap();
        let line = String::from_utf8(line).unwrap();
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        assert_eq!(Record::parse(line.trim_end()).unwrap(), record);
    }

    #[test]
    fn a_numeric_id_is_written_as_a_number_and_read_back_as_one() {
        let record = Record {
            id: MessageId::number("7"),
            ..Record::empty(ts(1.0), "x".into())
        };
        let record = Record {
            deleted_upstream_at: Some("t".into()),
            ..record
        };
        let mut line = Vec::new();
        record.write_line(&mut line).unwrap();
        let line = String::from_utf8(line).unwrap();
        assert_eq!(line, "{\"ts\":1,\"id\":7,\"deleted_upstream_at\":\"t\"}\n");
        assert_eq!(Record::parse(line.trim_end()).unwrap(), record);
        assert!(Record::parse(r#"{"ts":1,"id":"","deleted_upstream_at":"t"}"#).is_err());
        assert!(Record::parse(r#"{"ts":1,"id":null,"deleted_upstream_at":"t"}"#).is_err());
    }

    #[test]
    fn changes_merge_into_sorted_records_and_empty_ones_vanish() {
        let (records, counts) = merged(
            Vec::new(),
            vec![
                keyed(5.0, "b", revise("t1", r#"{"v":1}"#)),
                keyed(2.0, "z", Change::Late(r#"{"late":1}"#.into())),
                keyed(5.0, "a", Change::MarkDeleted("t1".into())),
                keyed(5.0, "b", revise("t2", r#"{"v":2}"#)),
            ],
        );
        let keys: Vec<(f64, &str)> = records
            .iter()
            .map(|r| (r.position.as_f64(), r.id.as_str()))
            .collect();
        assert_eq!(keys, [(2.0, "z"), (5.0, "a"), (5.0, "b")]);
        assert_eq!(records[2].revisions.len(), 2, "in the order given");
        assert_eq!(records[2].revisions[1].message, r#"{"v":2}"#);
        assert_eq!(
            counts,
            Counts {
                records: 3,
                late: 1,
                revised: 1,
                revisions: 2,
                deleted: 1,
                newest_late: Some(ts(2.0)),
            }
        );
        // Unmarking the only entry of a record removes it; an earlier mark stays.
        let (records, counts) = merged(
            records,
            vec![
                keyed(5.0, "a", Change::Unmark),
                keyed(5.0, "b", Change::MarkDeleted("t3".into())),
                keyed(5.0, "b", Change::MarkDeleted("t4".into())),
                keyed(9.0, "c", Change::Unmark),
            ],
        );
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].deleted_upstream_at.as_deref(), Some("t3"));
        assert_eq!(counts.deleted, 1);
    }

    #[test]
    fn garbage_and_empty_records_are_refused() {
        assert!(Record::parse(r#"{"ts":1,"id":"a"}"#).is_err());
        assert!(Record::parse(r#"{"ts":-1,"id":"a","deleted_upstream_at":"x"}"#).is_err());
        assert!(Record::parse(r#"{"ts":1,"id":"","deleted_upstream_at":"x"}"#).is_err());
        assert!(Record::parse("not json").is_err());
    }

    #[test]
    fn overlay_file_names_carry_their_number() {
        assert_eq!(file_name(7), "overlay-7.jsonl.gz");
        assert_eq!(number_of("overlay-7.jsonl.gz"), Some(7));
        assert_eq!(number_of("overlay-x.jsonl.gz"), None);
        assert_eq!(number_of("chat.jsonl.gz"), None);
    }
}
