//! What one stored message says, as text: the user's `message`, the
//! personality's `reply`, the media it points to and the replies it
//! replaced by regenerating. The formats that speak in turns (SillyTavern,
//! fine-tuning, summaries) read a message through this, one at a time.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::ExportError;
use crate::message::Ts;

/// The fields read, each as raw JSON: the service sends text, but a stored
/// message keeps whatever it sent, and one field of another type must not
/// stop the export of a whole history.
#[derive(Deserialize)]
pub(super) struct Fields<'a> {
    pub ts: f64,
    #[serde(default, borrow)]
    pub message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub reply: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub attachment_url: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub attachment_type: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub voice_reply_url: Option<&'a RawValue>,
    /// Earlier replies the service replaced by regenerating, oldest first.
    #[serde(default, borrow)]
    pub regenerated_replies: Option<&'a RawValue>,
}

/// One stored message as turns of text. Empty texts are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// When it was sent; `None` for a `ts` out of range.
    pub ts: Option<Ts>,
    /// The user's text.
    pub user: Option<String>,
    /// The attachment's URL and type, as sent.
    pub attachment: Option<String>,
    pub attachment_type: Option<String>,
    /// The personality's current reply.
    pub reply: Option<String>,
    pub voice_reply: Option<String>,
    /// Earlier replies the service replaced by regenerating, oldest first.
    pub regenerated: Vec<String>,
}

impl Turn {
    /// Reads the stored line `line` (number `n` of the history, for the
    /// error).
    pub fn parse(line: &str, n: u64) -> Result<Turn, ExportError> {
        let m: Fields = serde_json::from_str(line).map_err(|e| ExportError::BadLine {
            line: n,
            reason: e.to_string(),
        })?;
        let text = |field| {
            shown(field)
                .filter(|t: &Cow<str>| !t.is_empty())
                .map(Cow::into_owned)
        };
        Ok(Turn {
            ts: Ts::new(m.ts),
            user: text(m.message),
            attachment: text(m.attachment_url),
            attachment_type: text(m.attachment_type),
            reply: text(m.reply),
            voice_reply: text(m.voice_reply_url),
            regenerated: regenerated(m.regenerated_replies)
                .into_iter()
                .map(Cow::into_owned)
                .collect(),
        })
    }
}

/// The regenerated replies: each string of an array as its text, any other
/// element (or a field that is not an array) as the JSON received; none for
/// null, a missing field or an empty array.
pub(super) fn regenerated(field: Option<&RawValue>) -> Vec<Cow<'_, str>> {
    let Some(raw) = field else {
        return Vec::new();
    };
    match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
        Ok(items) => items
            .into_iter()
            .filter_map(|item| shown(Some(item)))
            .filter(|t| !t.is_empty())
            .collect(),
        Err(_) => shown(Some(raw)).into_iter().collect(),
    }
}

/// A field as shown: a string as its text, anything else but null as the
/// JSON received.
pub(super) fn shown(field: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = field?.get();
    match serde_json::from_str::<Cow<str>>(raw) {
        Ok(text) => Some(text),
        Err(_) if raw == "null" => None,
        Err(_) => Some(Cow::Borrowed(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_as_its_texts_with_empty_ones_none() {
        let turn = Turn::parse(
            r#"{"id":"a","ts":1700000000.5,"message":"","reply":"<b>hi</b>\u0000","attachment_url":"https://c/x.png","attachment_type":"image","regenerated_replies":["old",""],"voice_reply_url":null}"#,
            1,
        )
        .unwrap();
        assert_eq!(turn.user, None);
        assert_eq!(turn.reply.as_deref(), Some("<b>hi</b>\u{0}"));
        assert_eq!(turn.attachment.as_deref(), Some("https://c/x.png"));
        assert_eq!(turn.attachment_type.as_deref(), Some("image"));
        assert_eq!(turn.voice_reply, None);
        assert_eq!(turn.regenerated, ["old"]);
        assert_eq!(turn.ts.map(Ts::millis), Some(1_700_000_000_500));
        assert!(matches!(
            Turn::parse("{\"id\":1}", 7),
            Err(ExportError::BadLine { line: 7, .. })
        ));
    }

    #[test]
    fn regenerated_replies_are_listed_as_text() {
        let raw: Box<RawValue> = serde_json::from_str(r#"["one","",{"a":1}]"#).unwrap();
        let got = regenerated(Some(&raw));
        assert_eq!(got, vec![Cow::Borrowed("one"), Cow::Borrowed(r#"{"a":1}"#)]);
        let null: Box<RawValue> = serde_json::from_str("null").unwrap();
        assert!(regenerated(Some(&null)).is_empty());
    }
}
