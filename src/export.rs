//! The chat history in the formats people read and carry elsewhere: the
//! export JSON earlier tools wrote, JSON Lines, a Markdown transcript,
//! conversations, SillyTavern chats ([`sillytavern`]) and fine-tuning
//! examples ([`training`]). Streamed from the chat log, so a million
//! messages cost no more memory than a thousand. The personality itself
//! goes out as a character card ([`card`], [`png`]); the documents beside
//! it are exported as stored ([`parts`]).

pub mod card;
pub mod conversations;
mod markdown;
pub mod parts;
mod period;
pub mod png;
pub mod profile;
pub mod sillytavern;
pub mod summary;
pub mod training;
pub mod turn;

use std::fmt;
use std::io::{self, Write};

use crate::media::MediaView;
use crate::media::catalog::kind_field;
use crate::message::{Message, Ts};
use crate::store::{ChatState, ChatStore, ChatStoreError, Entry, History};
pub use conversations::{ConversationCounts, Split};
pub use parts::What;
pub use period::{Period, parse_since, parse_until};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `{shape_id, shape_name, message_count, date_range, export_date, messages}`
    Json,
    /// One message object per line, oldest first.
    Jsonl,
    /// A readable transcript: a heading per day, then one `HH:MM` line per
    /// message, under the personality's display name.
    #[value(alias = "md")]
    Markdown,
    /// One conversation per line, split at silences longer than `--gap`:
    /// `{start, end, message_count, summary, ids, messages}`.
    Conversations,
    /// SillyTavern chat files, one per conversation, into `-o DIR`.
    #[value(name = "sillytavern", alias = "st")]
    SillyTavern,
    /// OpenAI chat fine-tuning JSON Lines, one example per conversation,
    /// each at most `--max-chars` long.
    #[value(name = "openai")]
    OpenAi,
    /// A ShareGPT JSON array, one example per conversation, each at most
    /// `--max-chars` long.
    #[value(name = "sharegpt")]
    ShareGpt,
    /// The personality (profile, knowledge, training) as a Character Card
    /// V2; in a PNG with `--png AVATAR`.
    #[value(name = "character-card", alias = "card")]
    CharacterCard,
}

impl Format {
    /// Whether the format splits the history into conversations (`--gap`,
    /// `--min-messages`).
    pub fn splits(self) -> bool {
        matches!(
            self,
            Format::Conversations | Format::SillyTavern | Format::OpenAi | Format::ShareGpt
        )
    }

    /// The fine-tuning style, for the fine-tuning formats.
    pub fn training(self) -> Option<training::Style> {
        match self {
            Format::OpenAi => Some(training::Style::OpenAi),
            Format::ShareGpt => Some(training::Style::ShareGpt),
            _ => None,
        }
    }

    /// The shortest conversation kept when `--min-messages` is not given:
    /// every one for the chats carried to SillyTavern (a migration leaves
    /// nothing behind) and to fine-tuning (one exchange is an example),
    /// [`conversations::DEFAULT_MIN_MESSAGES`] otherwise.
    pub fn default_min_messages(self) -> u64 {
        match self {
            Format::SillyTavern | Format::OpenAi | Format::ShareGpt => 1,
            _ => conversations::DEFAULT_MIN_MESSAGES,
        }
    }

    /// The file an export of `name` goes to in a directory given as
    /// `--output`: `<name>_chat_history.<ext>`, as earlier tools named it
    /// (`<name>_conversations.jsonl` for conversations).
    pub fn file_name(self, name: &str) -> String {
        match self {
            Format::Json => format!("{name}_chat_history.json"),
            Format::Jsonl => format!("{name}_chat_history.jsonl"),
            Format::Markdown => format!("{name}_chat_history.md"),
            Format::Conversations => format!("{name}_conversations.jsonl"),
            // One file per conversation, named by its start, in the directory.
            Format::SillyTavern => format!("{name} - <start>.jsonl"),
            Format::OpenAi => format!("{name}_openai.jsonl"),
            Format::ShareGpt => format!("{name}_sharegpt.json"),
            Format::CharacterCard => format!("{name}.card.json"),
        }
    }
}

/// How an export shows the media messages point to (`--media`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MediaLinks {
    /// The service's URLs, the messages as received.
    #[default]
    Url,
    /// The files chatkeep fetched, copied to `media/` beside the export and
    /// named in each message's `_chatkeep.media`.
    Local,
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
            Written::Messages(n) => f.write_str(&crate::words::count(*n, "message")),
            Written::Conversations { counts, min_messages } => {
                write!(
                    f,
                    "{} ({}",
                    crate::words::count(counts.conversations, "conversation"),
                    crate::words::count(counts.messages, "message")
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
    /// The name the service shows (the profile's `name`), for the
    /// transcript; `shape_name` when `None`.
    pub display_name: Option<&'a str>,
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
    /// Only the messages placed in this period (`--since`, `--until`).
    pub period: Period,
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
    write_with_media(store, meta, format, options, None, out)
}

/// [`write_with`], showing what became of the media messages point to as
/// `media` says: with local links (`--media local`), each message gets
/// `"_chatkeep": {"media": {"attachment": "media/<hash>.<ext>", ...}}` for
/// its fetched files and the transcript links them; otherwise the JSON is
/// the service's alone and the transcript links the URLs, saying which are
/// gone.
pub fn write_with_media(
    store: &ChatStore,
    meta: &ExportMeta,
    format: Format,
    options: &ExportOptions,
    media: Option<&MediaView>,
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
    lines.media = media;
    match format {
        Format::Json => {
            let (count, range) = selected(store, options)?;
            let date_range = match range {
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
            writeln!(out, "  \"message_count\": {count},")?;
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
            let name = meta.display_name.unwrap_or(meta.shape_name);
            markdown::write(&mut lines, name, out)?;
        }
        Format::SillyTavern | Format::OpenAi | Format::ShareGpt | Format::CharacterCard => {
            return Err(ExportError::Write(io::Error::new(
                io::ErrorKind::InvalidInput,
                "this format needs more than the history: see export::sillytavern, training and card",
            )));
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
    // Those outside the period were read all the same: the whole history
    // is checked against the state.
    let found = lines.messages + lines.outside;
    if found != expected {
        return Err(ExportError::CountMismatch { found, expected });
    }
    Ok(Written::Messages(lines.messages))
}

/// How many messages an export writes, and the places of the first and
/// last.
fn selected(store: &ChatStore, options: &ExportOptions) -> Result<(u64, Option<(Ts, Ts)>), ExportError> {
    let state = store.state();
    let newest = state.newest();
    if options.period.is_all() && (!options.upstream_only || state.deleted_upstream() == 0) {
        return Ok((options.expected_messages(state), state.oldest.zip(newest)));
    }
    // Some are left out: the count and range of the others take a pass of
    // their own.
    let mut count = 0;
    let mut range: Option<(Ts, Ts)> = None;
    for entry in store.history_with_keys()? {
        let entry = entry.map_err(ChatStoreError::Read)?;
        if options.upstream_only && entry.deleted_upstream_at().is_some() {
            continue;
        }
        if let Some(key) = &entry.key {
            if !options.period.contains(key.position) {
                continue;
            }
            count += 1;
            range = Some(match range {
                None => (key.position, key.position),
                Some((first, last)) => (first, if key.position > last { key.position } else { last }),
            });
        }
    }
    Ok((count, range))
}

/// The lines an export writes, in order: each message's current version,
/// marked with a `_chatkeep` field of chatkeep's own where the backup knows
/// more than the message says (deleted upstream; placed by an earlier `ts`),
/// and, when asked, its earlier versions before it. No field of the
/// service's is changed.
pub struct Lines<'a> {
    history: History,
    options: ExportOptions,
    /// Where the media of messages are; local links are noted in
    /// `_chatkeep` when it says so.
    pub(crate) media: Option<&'a MediaView>,
    queue: std::collections::VecDeque<String>,
    /// Current versions yielded so far.
    pub messages: u64,
    /// Current versions read and left out for being outside the period.
    pub outside: u64,
}

impl<'a> Lines<'a> {
    pub fn new(store: &ChatStore, options: &ExportOptions) -> Result<Lines<'a>, ExportError> {
        // A period needs each message's place.
        let history = if options.period.is_all() {
            store.history()?
        } else {
            store.history_with_keys()?
        };
        Ok(Lines {
            history,
            options: *options,
            media: None,
            queue: std::collections::VecDeque::new(),
            messages: 0,
            outside: 0,
        })
    }

    /// The entries themselves (current versions, selected), for formats that
    /// show more than the JSON.
    pub(crate) fn entries(&mut self) -> impl Iterator<Item = io::Result<Entry>> + '_ {
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
            let position = entry.key.as_ref().map(|k| k.position);
            if position.is_some_and(|p| !self.options.period.contains(p)) {
                self.outside += 1;
                continue;
            }
            self.messages += 1;
            return Some(Ok(entry));
        }
    }
}

impl Iterator for Lines<'_> {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<io::Result<String>> {
        if let Some(line) = self.queue.pop_front() {
            return Some(Ok(line));
        }
        let entry = match self.next_entry()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        let media = self
            .media
            .filter(|m| m.is_local())
            .and_then(|m| local_media(m, &entry.message));
        let Some(story) = &entry.story else {
            return Some(Ok(match media {
                Some(media) => annotated(&entry.message, &[("media", media)]),
                None => entry.message,
            }));
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
        notes.extend(media.map(|media| ("media", media)));
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

/// `{"attachment": "media/<file>", "voice_reply": ...}`: the local paths of
/// the fetched files `message` points to, relative to the export's
/// directory; `None` when none is fetched.
fn local_media(media: &MediaView, message: &str) -> Option<String> {
    let mut links = serde_json::Map::new();
    for r in crate::media::refs::of_message(message) {
        if let Some(path) = media.local_path(&r.url) {
            links.insert(kind_field(r.kind).to_owned(), path.into());
        }
    }
    (!links.is_empty()).then(|| serde_json::Value::Object(links).to_string())
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
