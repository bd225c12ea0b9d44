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

use crate::message::Ts;
use crate::store::{ChatStore, ChatStoreError};
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

/// Writes the whole history of `store` to `out` in `format`, conversations
/// split as [`Split::default`] says. Returns the number of messages written.
pub fn write(
    store: &ChatStore,
    meta: &ExportMeta,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    write_with(store, meta, format, &Split::default(), out).map(|w| w.messages())
}

/// Writes the whole history of `store` to `out` in `format`, conversations
/// split as `split` says.
pub fn write_with(
    store: &ChatStore,
    meta: &ExportMeta,
    format: Format,
    split: &Split,
    out: &mut impl Write,
) -> Result<Written, ExportError> {
    let state = store.state();
    let lines = store.lines()?;
    let mut count = 0u64;
    match format {
        Format::Json => {
            let date_range = match (state.oldest, state.head.as_ref()) {
                (Some(oldest), Some(head)) => serde_json::json!({
                    "earliest": oldest.to_rfc3339(),
                    "latest": head.ts.to_rfc3339(),
                }),
                _ => serde_json::json!({ "earliest": null, "latest": null }),
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
            writeln!(out, "  \"message_count\": {},", state.message_count)?;
            writeln!(out, "  \"date_range\": {date_range},")?;
            writeln!(out, "  \"export_date\": \"{export_date}\",")?;
            write!(out, "  \"messages\": [")?;
            for line in lines {
                let line = line.map_err(ChatStoreError::Read)?;
                out.write_all(if count == 0 { b"\n    " } else { b",\n    " })?;
                out.write_all(line.as_bytes())?;
                count += 1;
            }
            out.write_all(if count == 0 { b"]\n}\n" } else { b"\n  ]\n}\n" })?;
        }
        Format::Jsonl => {
            for line in lines {
                let line = line.map_err(ChatStoreError::Read)?;
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                count += 1;
            }
        }
        Format::Markdown => {
            writeln!(out, "# Chat history with {}\n", meta.shape_name)?;
            for line in lines {
                let line = line.map_err(ChatStoreError::Read)?;
                count += 1;
                write_markdown_message(out, meta.shape_name, &line, count)?;
            }
        }
        Format::Conversations => {
            // Reads the history with cursors of its own, and checks the count.
            let counts = conversations::write(store, split, out)?;
            return Ok(Written::Conversations {
                counts,
                min_messages: split.min_messages,
            });
        }
    }
    out.flush()?;
    if count != state.message_count {
        return Err(ExportError::CountMismatch {
            found: count,
            expected: state.message_count,
        });
    }
    Ok(Written::Messages(count))
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

fn write_markdown_message(out: &mut impl Write, name: &str, line: &str, n: u64) -> Result<(), ExportError> {
    let m: Transcript = serde_json::from_str(line).map_err(|e| ExportError::BadLine {
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
    Ok(())
}

/// Keeps multi-line texts inside their paragraph.
fn quote_block(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "  \n")
}
