//! The chat history in the formats people read and carry elsewhere: the
//! export JSON earlier tools wrote, JSON Lines, a Markdown transcript, and
//! conversations. Streamed from the chat log, so a million messages cost no
//! more memory than a thousand.

pub mod conversations;

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::message::{Message, Ts};
use crate::store::{ChatState, ChatStore, ChatStoreError, Entry, History};
pub use conversations::{ConversationCounts, Split};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `{shape_id, shape_name, message_count, date_range, export_date, messages}`
    Json,
    /// One message object per line, oldest first.
    Jsonl,
    /// A readable transcript.
    Markdown,
    /// One conversation per line, split at silences longer than `--gap`:
    /// `{start, end, message_count, ids, messages}`.
    Conversations,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Every message (json, jsonl, markdown).
    Messages(u64),
    /// The conversations kept, and those left out.
    Conversations {
        counts: ConversationCounts,
        min_messages: u64,
    },
}

impl Written {
    /// Messages written.
    pub fn messages(&self) -> u64 {
        match self {
            Written::Messages(n) => *n,
            Written::Conversations { counts, .. } => counts.messages,
        }
    }
}

/// "1234 messages", or "12 conversations (340 messages; 3 shorter than 5
/// messages left out)".
impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Written::Messages(n) => write!(f, "{n} messages"),
            Written::Conversations { counts, min_messages } => {
                write!(
                    f,
                    "{} conversations ({} messages",
                    counts.conversations, counts.messages
                )?;
                if counts.skipped_conversations > 0 {
                    write!(
                        f,
                        "; {} shorter than {min_messages} messages left out",
                        counts.skipped_conversations
                    )?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Who the history belongs to, for the export header.
#[derive(Debug, Clone)]
pub struct ExportMeta<'a> {
    pub shape_id: &'a str,
    pub shape_name: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] ChatStoreError),
    #[error("writing the export: {0}")]
    Write(#[from] io::Error),
    #[error("the chat log holds {found} messages but its state says {expected}; run `chatkeep verify`")]
    CountMismatch { found: u64, expected: u64 },
    #[error("stored message {line} is unreadable: {reason}")]
    BadLine { line: u64, reason: String },
}

/// What an export writes besides each message's current version, and what
/// it leaves out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// How `conversations` splits the history.
    pub split: Split,
    /// Leave out the messages the service no longer returns (what the
    /// service shows today); by default they are written, marked.
    pub upstream_only: bool,
    /// Also write every earlier version of each message, just before it
    /// (`jsonl` only).
    pub revisions: bool,
}

impl ExportOptions {
    /// Current versions the export writes of a store in `state`.
    pub fn expected_messages(&self, state: &ChatState) -> u64 {
        let left_out = if self.upstream_only {
            state.deleted_upstream()
        } else {
            0
        };
        state.message_count.saturating_sub(left_out)
    }
}

/// Writes the whole history of `store` to `out` in `format`, with the
/// default options. Returns the number of messages written.
pub fn write(
    store: &ChatStore,
    meta: &ExportMeta,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    write_with(store, meta, format, &ExportOptions::default(), out).map(|w| w.messages())
}

/// Writes the whole history of `store` to `out` in `format`, as `options`
/// say.
pub fn write_with(
    store: &ChatStore,
    meta: &ExportMeta,
    format: Format,
    options: &ExportOptions,
    out: &mut impl Write,
) -> Result<Written, ExportError> {
    if options.revisions && format != Format::Jsonl {
        return Err(ExportError::Write(io::Error::new(
            io::ErrorKind::InvalidInput,
            "earlier versions (--revisions) are written by --format jsonl only",
        )));
    }
    let state = store.state();
    let expected = options.expected_messages(state);
    let mut lines = Lines::new(store, options)?;
    match format {
        Format::Json => {
            let date_range = match range(store, options)? {
                Some((oldest, newest)) => serde_json::json!({
                    "earliest": oldest.to_rfc3339(),
                    "latest": newest.to_rfc3339(),
                }),
                None => serde_json::json!({ "earliest": null, "latest": null }),
            };
            let export_date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            writeln!(out, "{{")?;
            writeln!(
                out,
                "  \"shape_id\": {},",
                serde_json::to_string(meta.shape_id).map_err(io::Error::other)?
            )?;
            writeln!(
                out,
                "  \"shape_name\": {},",
                serde_json::to_string(meta.shape_name).map_err(io::Error::other)?
            )?;
            writeln!(out, "  \"message_count\": {expected},")?;
            writeln!(out, "  \"date_range\": {date_range},")?;
            writeln!(out, "  \"export_date\": \"{export_date}\",")?;
            write!(out, "  \"messages\": [")?;
            let mut first = true;
            for line in lines.by_ref() {
                let line = line.map_err(ChatStoreError::Read)?;
                out.write_all(if first { b"\n    " } else { b",\n    " })?;
                out.write_all(line.as_bytes())?;
                first = false;
            }
            out.write_all(if first { b"]\n}\n" } else { b"\n  ]\n}\n" })?;
        }
        Format::Jsonl => {
            for line in lines.by_ref() {
                let line = line.map_err(ChatStoreError::Read)?;
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        Format::Markdown => {
            writeln!(out, "# Chat history with {}\n", meta.shape_name)?;
            let mut n = 0;
            for entry in lines.entries() {
                let entry = entry.map_err(ChatStoreError::Read)?;
                n += 1;
                write_markdown_message(out, meta.shape_name, &entry, n)?;
            }
        }
        Format::Conversations => {
            // Reads the history with cursors of its own, and checks the count.
            let counts = conversations::write(store, options, out)?;
            return Ok(Written::Conversations {
                counts,
                min_messages: options.split.min_messages,
            });
        }
    }
    out.flush()?;
    let count = lines.messages;
    if count != expected {
        return Err(ExportError::CountMismatch {
            found: count,
            expected,
        });
    }
    Ok(Written::Messages(count))
}

/// The places of the first and last message an export writes.
fn range(store: &ChatStore, options: &ExportOptions) -> Result<Option<(Ts, Ts)>, ExportError> {
    let state = store.state();
    let newest = state.newest();
    if !options.upstream_only || state.deleted_upstream() == 0 {
        return Ok(state.oldest.zip(newest));
    }
    // Some are left out: the range of the others takes a pass of its own.
    let mut range: Option<(Ts, Ts)> = None;
    for entry in store.history_with_keys()? {
        let entry = entry.map_err(ChatStoreError::Read)?;
        if entry.deleted_upstream_at().is_some() {
            continue;
        }
        if let Some(key) = &entry.key {
            range = Some(match range {
                None => (key.position, key.position),
                Some((first, last)) => (first, if key.position > last { key.position } else { last }),
            });
        }
    }
    Ok(range)
}

/// The lines an export writes, in order: each message's current version,
/// marked with a `_chatkeep` field of chatkeep's own where the backup knows
/// more than the message says (deleted upstream; placed by an earlier `ts`),
/// and, when asked, its earlier versions before it. No field of the
/// service's is changed.
pub struct Lines {
    history: History,
    options: ExportOptions,
    queue: std::collections::VecDeque<String>,
    /// Current versions yielded so far.
    pub messages: u64,
}

impl Lines {
    pub fn new(store: &ChatStore, options: &ExportOptions) -> Result<Lines, ExportError> {
        Ok(Lines {
            history: store.history()?,
            options: *options,
            queue: std::collections::VecDeque::new(),
            messages: 0,
        })
    }

    /// The entries themselves (current versions, selected), for formats that
    /// show more than the JSON.
    fn entries(&mut self) -> impl Iterator<Item = io::Result<Entry>> + '_ {
        std::iter::from_fn(move || self.next_entry())
    }

    fn next_entry(&mut self) -> Option<io::Result<Entry>> {
        loop {
            let entry = match self.history.next()? {
                Ok(entry) => entry,
                Err(e) => return Some(Err(e)),
            };
            if self.options.upstream_only && entry.deleted_upstream_at().is_some() {
                continue;
            }
            self.messages += 1;
            return Some(Ok(entry));
        }
    }
}

impl Iterator for Lines {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<io::Result<String>> {
        if let Some(line) = self.queue.pop_front() {
            return Some(Ok(line));
        }
        let entry = match self.next_entry()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        let Some(story) = &entry.story else {
            return Some(Ok(entry.message));
        };
        let position = entry.key.as_ref().map(|k| k.position);
        if self.options.revisions {
            for version in &story.earlier {
                let mut notes = vec![("superseded_at", json_string(&version.superseded_at))];
                notes.extend(moved(&version.message, position));
                self.queue.push_back(annotated(&version.message, &notes));
            }
        }
        let mut notes = Vec::new();
        if let Some(at) = &story.deleted_upstream_at {
            notes.push(("deleted_upstream_at", json_string(at)));
        }
        if !story.earlier.is_empty() {
            notes.extend(moved(&entry.message, position));
        }
        self.queue.push_back(annotated(&entry.message, &notes));
        self.queue.pop_front().map(Ok)
    }
}

/// Writes every earlier version of every message, in the order of their
/// places, one JSON line each, marked `"_chatkeep": {"superseded_at": ...}`:
/// what `jsonl --revisions` adds to the current versions, on its own (the
/// snapshot member beside the chat history). Returns how many.
pub fn write_earlier_versions(store: &ChatStore, out: &mut impl Write) -> Result<u64, ExportError> {
    let mut written = 0;
    if store.state().revised() == 0 {
        return Ok(0);
    }
    for entry in store.history()? {
        let entry = entry.map_err(ChatStoreError::Read)?;
        let position = entry.key.as_ref().map(|k| k.position);
        for version in entry.earlier() {
            let mut notes = vec![("superseded_at", json_string(&version.superseded_at))];
            notes.extend(moved(&version.message, position));
            out.write_all(annotated(&version.message, &notes).as_bytes())?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(written)
}

/// `position_ts`, when a version's `ts` is not its place in the history (a
/// later version came with another `ts`; the message keeps its place).
fn moved(message: &str, position: Option<Ts>) -> Option<(&'static str, String)> {
    let (_, ts) = Message::stored_keys(message).ok()?;
    let position = position?;
    (ts != position).then(|| ("position_ts", position.to_string()))
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "null".to_owned())
}

/// `message` (a compact JSON object) with `"_chatkeep": {notes}` added last;
/// unchanged when there are no notes.
pub fn annotated(message: &str, notes: &[(&str, String)]) -> String {
    if notes.is_empty() {
        return message.to_owned();
    }
    let fields: Vec<String> = notes.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    let note = format!("\"_chatkeep\":{{{}}}", fields.join(","));
    let body = message.trim_end().strip_suffix('}').unwrap_or(message);
    let sep = if body.trim_end().ends_with('{') { "" } else { "," };
    format!("{body}{sep}{note}}}")
}

/// The fields a transcript shows. Each is taken as raw JSON: the service
/// sends text, but a stored message keeps whatever it sent, and one field
/// of another type must not stop the export of a whole history.
#[derive(Deserialize)]
struct Transcript<'a> {
    ts: f64,
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    reply: Option<&'a RawValue>,
    #[serde(default, borrow)]
    attachment_url: Option<&'a RawValue>,
    #[serde(default, borrow)]
    voice_reply_url: Option<&'a RawValue>,
}

/// A field as shown: a string as its text, anything else but null as the
/// JSON received.
fn shown(field: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = field?.get();
    match serde_json::from_str::<Cow<str>>(raw) {
        Ok(text) => Some(text),
        Err(_) if raw == "null" => None,
        Err(_) => Some(Cow::Borrowed(raw)),
    }
}

fn write_markdown_message(
    out: &mut impl Write,
    name: &str,
    entry: &Entry,
    n: u64,
) -> Result<(), ExportError> {
    let m: Transcript = serde_json::from_str(&entry.message).map_err(|e| ExportError::BadLine {
        line: n,
        reason: e.to_string(),
    })?;
    let when = Ts::new(m.ts).map(Ts::to_rfc3339).unwrap_or_default();
    writeln!(out, "### {when}\n")?;
    if let Some(text) = shown(m.message).filter(|t| !t.is_empty()) {
        writeln!(out, "**You:** {}\n", quote_block(&text))?;
    }
    if let Some(url) = shown(m.attachment_url) {
        writeln!(out, "*Attachment:* <{url}>\n")?;
    }
    if let Some(text) = shown(m.reply).filter(|t| !t.is_empty()) {
        writeln!(out, "**{name}:** {}\n", quote_block(&text))?;
    }
    if let Some(url) = shown(m.voice_reply_url) {
        writeln!(out, "*Voice reply:* <{url}>\n")?;
    }
    let earlier = entry.earlier().len();
    if earlier > 0 {
        let versions = if earlier == 1 { "version" } else { "versions" };
        writeln!(
            out,
            "*Changed upstream since first backed up; {earlier} earlier {versions} kept \
             (`chatkeep export --format jsonl --revisions`).*\n"
        )?;
    }
    if let Some(at) = entry.deleted_upstream_at() {
        writeln!(
            out,
            "*No longer on the service since {at}; kept in the backup.*\n"
        )?;
    }
    Ok(())
}

/// Keeps multi-line texts inside their paragraph.
fn quote_block(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "  \n")
}
