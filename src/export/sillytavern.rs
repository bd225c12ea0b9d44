//! `--format sillytavern`: each conversation (the split of
//! `--format conversations`) as a chat file SillyTavern reads from its
//! `chats/<character>/` folder: JSON Lines, a header first, then one line
//! per turn.
//!
//! ```json
//! {"user_name":"You","character_name":"Lilith","create_date":"2023-11-14@22h13m20s","chat_metadata":{"chatkeep":{…}}}
//! {"name":"You","is_user":true,"is_system":false,"send_date":"2023-11-14T22:13:20.000Z","mes":"Hello","extra":{}}
//! {"name":"Lilith","is_user":false,"is_system":false,"send_date":"2023-11-14T22:13:20.000Z","mes":"Hi","extra":{},"swipe_id":1,"swipes":["Hey","Hi"],"swipe_info":[…]}
//! ```
//!
//! A stored message holds the user's `message` and the personality's
//! `reply`, so it becomes up to two lines: the user's (left out when it has
//! neither text nor attachment) and the personality's (left out when it has
//! no reply, voice reply or earlier reply). Replies the service replaced by
//! regenerating become the `swipes` before the current one, which
//! `swipe_id` points to. Texts are written as data, exactly: JSON escapes
//! what must be, nothing else changes. Fields of the message with no place
//! in SillyTavern's (its id, the voice reply, a non-image attachment) go to
//! `extra.chatkeep`; an image attachment to `extra.image`, where
//! SillyTavern shows it.
//!
//! Each file is written line by line as the history is read: one message is
//! held at a time, whatever the length of a conversation.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::conversations::{ConversationCounts, Cursor, Spans};
use super::turn::Turn;
use super::{ExportError, ExportOptions};
use crate::message::Ts;
use crate::store::ChatStore;

/// Who speaks in the chats.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// The user's name (SillyTavern's persona).
    pub user: &'a str,
    /// The personality's name, as the service shows it.
    pub character: &'a str,
}

/// Fills one file: called with the file's name and a function that writes
/// its content.
pub type Files<'f> = dyn FnMut(&str, &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> + 'f;

/// Writes each conversation of `store` kept by `options.split` as a chat
/// file through `files`, named `<character> - <start>.jsonl` (the start in
/// SillyTavern's style, `2023-11-14@22h13m20s000ms`, UTC).
pub fn write(
    store: &ChatStore,
    options: &ExportOptions,
    names: Names,
    files: &mut Files,
) -> Result<ConversationCounts, ExportError> {
    let mut spans = Spans::new(store, options, false)?;
    let mut cursor = Cursor::new(store, options)?;
    let stem = file_stem(names.character);
    while let Some(span) = spans.next_span()? {
        if !span.kept {
            cursor.skip(span.count)?;
            continue;
        }
        let name = format!("{stem} - {}.jsonl", humanized(span.start, true));
        let mut failed = None;
        files(&name, &mut |out| {
            let header = json!({
                "user_name": names.user,
                "character_name": names.character,
                "create_date": humanized(span.start, false),
                "chat_metadata": {
                    "chatkeep": {
                        "start": span.start.to_rfc3339(),
                        "end": span.end.to_rfc3339(),
                        "message_count": span.count,
                    }
                },
            });
            writeln!(out, "{header}")?;
            for _ in 0..span.count {
                let line = cursor.next_known().map_err(|e| keep(&mut failed, e))?;
                let turn = Turn::parse(&line, cursor.line).map_err(|e| keep(&mut failed, e))?;
                let id = id_of(&line);
                for message in lines_of(&turn, id, names) {
                    writeln!(out, "{message}")?;
                }
            }
            out.flush()
        })
        .map_err(|e| failed.take().unwrap_or(ExportError::Write(e)))?;
    }
    spans.finish()
}

/// Keeps an export error to return in place of the I/O error that carries
/// it out of a file's writer.
fn keep(slot: &mut Option<ExportError>, e: ExportError) -> io::Error {
    let message = e.to_string();
    *slot = Some(e);
    io::Error::other(message)
}

/// A stored message's `id`, as a JSON value (null when it has none).
fn id_of(line: &str) -> Value {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(default)]
        id: Value,
    }
    serde_json::from_str::<Id>(line).map_or(Value::Null, |i| i.id)
}

/// The user's line and the personality's, as there are.
fn lines_of(turn: &Turn, id: Value, names: Names) -> Vec<Value> {
    let date = turn.ts.map_or(String::new(), Ts::to_rfc3339);
    let mut lines = Vec::with_capacity(2);
    if turn.user.is_some() || turn.attachment.is_some() {
        let mut extra = serde_json::Map::new();
        let mut ours = serde_json::Map::new();
        ours.insert("id".into(), id.clone());
        if let Some(url) = &turn.attachment {
            if is_image(turn) {
                extra.insert("image".into(), url.as_str().into());
            } else {
                ours.insert("attachment_url".into(), url.as_str().into());
                if let Some(kind) = &turn.attachment_type {
                    ours.insert("attachment_type".into(), kind.as_str().into());
                }
            }
        }
        extra.insert("chatkeep".into(), ours.into());
        lines.push(json!({
            "name": names.user,
            "is_user": true,
            "is_system": false,
            "send_date": date,
            "mes": turn.user.as_deref().unwrap_or(""),
            "extra": extra,
        }));
    }
    if turn.reply.is_some() || turn.voice_reply.is_some() || !turn.regenerated.is_empty() {
        let reply = turn.reply.as_deref().unwrap_or("");
        let mut ours = serde_json::Map::new();
        ours.insert("id".into(), id);
        if let Some(url) = &turn.voice_reply {
            ours.insert("voice_reply_url".into(), url.as_str().into());
        }
        let mut line = json!({
            "name": names.character,
            "is_user": false,
            "is_system": false,
            "send_date": date,
            "mes": reply,
            "extra": { "chatkeep": ours },
        });
        if !turn.regenerated.is_empty() {
            let swipes: Vec<&str> = turn
                .regenerated
                .iter()
                .map(String::as_str)
                .chain([reply])
                .collect();
            let info: Vec<Value> = swipes
                .iter()
                .map(|_| json!({ "send_date": date, "extra": {} }))
                .collect();
            line["swipe_id"] = (swipes.len() - 1).into();
            line["swipes"] = swipes.into();
            line["swipe_info"] = info.into();
        }
        lines.push(line);
    }
    lines
}

/// Whether the attachment is an image SillyTavern can show inline.
fn is_image(turn: &Turn) -> bool {
    if turn.attachment_type.as_deref() == Some("image") {
        return true;
    }
    let url = turn.attachment.as_deref().unwrap_or_default();
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg" | "gif" | "webp"))
}

/// `2023-11-14@22h13m20s` (and `000ms` for file names), as SillyTavern
/// names chats, in UTC.
fn humanized(ts: Ts, with_millis: bool) -> String {
    let Some(at) = chrono::DateTime::from_timestamp_millis(ts.millis()) else {
        return ts.to_string();
    };
    let pattern = if with_millis {
        "%Y-%m-%d@%Hh%Mm%Ss%3fms"
    } else {
        "%Y-%m-%d@%Hh%Mm%Ss"
    };
    at.format(pattern).to_string()
}

/// The character's name as the start of a file name: letters, digits,
/// spaces, `-`, `_` and `.` kept (not leading dots), anything else `_`, at
/// most 64 characters; `chat` when nothing is left.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let stem = stem.trim().trim_start_matches('.');
    if stem.is_empty() {
        "chat".to_owned()
    } else {
        stem.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_cannot_leave_its_directory() {
        assert_eq!(file_stem("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_stem("Lady Lilith"), "Lady Lilith");
        assert_eq!(file_stem("..."), "chat");
        assert_eq!(file_stem("a/b\\c\0d"), "a_b_c_d");
    }

    #[test]
    fn dates_are_in_sillytaverns_style() {
        let ts = Ts::new(1_700_000_000.25).unwrap();
        assert_eq!(humanized(ts, false), "2023-11-14@22h13m20s");
        assert_eq!(humanized(ts, true), "2023-11-14@22h13m20s250ms");
    }
}
