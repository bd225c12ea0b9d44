//! A chat message as chatkeep keeps it: the exact JSON the service sent
//! (whitespace removed), plus the two fields the sync logic needs.
//!
//! Only `id` and `ts` are ever parsed; every other field stays as raw text,
//! so unknown fields survive and floats are never re-rounded.

use std::cmp::Ordering;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

/// A message timestamp: seconds since the epoch, as the service's JSON float.
///
/// Used only for ordering and cursors; the stored message keeps the `ts`
/// text exactly as received.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Ts(f64);

impl Ts {
    /// The earliest timestamp a message can carry.
    pub const EPOCH: Ts = Ts(0.0);

    /// A timestamp, if it is one a message can carry: finite and not negative.
    pub fn new(secs: f64) -> Option<Ts> {
        (secs.is_finite() && secs >= 0.0).then_some(Ts(secs))
    }

    pub fn as_f64(self) -> f64 {
        self.0
    }

    /// The smallest timestamp strictly greater than this one. As a
    /// `before_ts`, it makes a server of either semantics (`<` or `<=`)
    /// answer with this timestamp's messages included.
    pub fn next_up(self) -> Ts {
        Ts(self.0.next_up())
    }

    /// The largest timestamp strictly smaller than this one.
    pub fn next_down(self) -> Ts {
        Ts(self.0.next_down())
    }

    /// Milliseconds since the epoch, rounded, for display.
    pub fn millis(self) -> i64 {
        (self.0 * 1000.0).round() as i64
    }

    /// RFC 3339 with milliseconds and `Z`, the export format's date style.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.millis())
            .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| self.to_string())
    }

    pub fn total_cmp(&self, other: &Ts) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Shortest text that parses back to the same `f64` (Rust's `Display`), so a
/// cursor sent as `before_ts` means exactly the value computed.
impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A message id as the service gives it: a JSON string or a JSON number,
/// and the two are different ids. `"123"` and `123` are two messages, as
/// they are to the service; a number keeps the text it was sent as.
///
/// Ordered by text first, so the order of string ids is the order of their
/// text (the overlay's order, since before ids had a type).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    text: String,
    number: bool,
}

impl MessageId {
    /// A numeric id, from its JSON text.
    pub fn number(text: &str) -> MessageId {
        MessageId {
            text: text.to_owned(),
            number: true,
        }
    }

    /// The id from the JSON value `raw`: a non-empty string, or a number.
    pub fn from_json(raw: &RawValue) -> Option<MessageId> {
        let text = raw.get();
        if text.starts_with('"') {
            match serde_json::from_str::<String>(text) {
                Ok(s) if !s.is_empty() => Some(MessageId::from(s.as_str())),
                _ => None,
            }
        } else {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Number(_)) => Some(MessageId::number(text.trim())),
                _ => None,
            }
        }
    }

    /// The id as JSON: a string quoted and escaped, a number as it came.
    pub fn to_json(&self) -> String {
        if self.number {
            self.text.clone()
        } else {
            serde_json::to_string(&self.text).expect("a string serializes")
        }
    }

    /// The text of the id (a number's digits, a string's characters), for
    /// messages to a person; not an identity, since `"7"` and `7` share it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_number(&self) -> bool {
        self.number
    }

    /// Files written before ids had a type hold a numeric id as a string:
    /// the numeric id a string id of such a file may stand for, if its text
    /// is a JSON number.
    pub fn untyped_number(&self) -> Option<MessageId> {
        let numeric = serde_json::from_str::<serde_json::Number>(&self.text).is_ok();
        (!self.number && numeric).then(|| MessageId::number(&self.text))
    }

    /// Whether this string id, read from a file written before ids had a
    /// type, may stand for the numeric id `typed`: the same text.
    pub fn may_stand_for(&self, typed: &MessageId) -> bool {
        !self.number && typed.number && self.text == typed.text
    }
}

impl From<&str> for MessageId {
    fn from(s: &str) -> Self {
        MessageId {
            text: s.to_owned(),
            number: false,
        }
    }
}

/// Written as the JSON value it was received as. Files written before ids
/// had a type hold every id as a string; those read back as string ids.
impl serde::Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.number {
            let raw = RawValue::from_string(self.text.clone()).map_err(serde::ser::Error::custom)?;
            raw.serialize(serializer)
        } else {
            serializer.serialize_str(&self.text)
        }
    }
}

impl<'de> serde::Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        MessageId::from_json(&raw)
            .ok_or_else(|| serde::de::Error::custom("a message id is a non-empty string or a number"))
    }
}

/// One stored message: its compact raw JSON and the keys the walk needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub ts: Ts,
    /// The object exactly as received, minus insignificant whitespace; one line.
    pub raw: String,
}

/// Why a message or a page breaks the service's contract.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    #[error("the answer is not a JSON array of messages: {0}")]
    NotAnArray(String),
    #[error("message {index} is not a JSON object")]
    NotAnObject { index: usize },
    #[error("message {index} has no `{field}`")]
    Missing { index: usize, field: &'static str },
    #[error("message {index} has an `id` that is neither a string nor a number")]
    BadId { index: usize },
    #[error("message {index} has a `ts` that is not a number of seconds (got {got})")]
    BadTs { index: usize, got: String },
}

#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    ts: Option<&'a RawValue>,
}

impl Message {
    /// Parses one stored line back into a message. A stored line is
    /// already compact (chatkeep stores nothing else), so it is kept as it
    /// is rather than minified again.
    pub fn from_stored_line(line: &str) -> Result<Message, MessageError> {
        let raw: &RawValue =
            serde_json::from_str(line).map_err(|e| MessageError::NotAnArray(e.to_string()))?;
        let (id, ts) = keys(raw.get(), 0)?;
        Ok(Message {
            id,
            ts,
            raw: raw.get().to_owned(),
        })
    }

    /// A message as a JSON document other than a service page holds it (an
    /// earlier tool's export, pretty-printed perhaps): minified, its keys
    /// checked. `index` names it in errors.
    pub fn from_raw(raw: &RawValue, index: usize) -> Result<Message, MessageError> {
        let text = raw.get();
        let (id, ts) = keys(text, index)?;
        Ok(Message {
            id,
            ts,
            raw: minify(text),
        })
    }

    /// The id and `ts` of a stored line, without copying it.
    pub fn stored_keys(line: &str) -> Result<(MessageId, Ts), MessageError> {
        keys(line, 0)
    }

    /// The `ts` of a stored line, found by one scan of its top level (a
    /// stored line is one compact object): what a reader merging the
    /// history needs of every line, at a fraction of a parse. `None` when
    /// the key is not there as plain `"ts"` (written with escapes, say);
    /// [`Message::stored_keys`] then parses it.
    pub fn stored_ts(line: &str) -> Option<Ts> {
        let bytes = line.as_bytes();
        let mut depth = 0usize;
        let mut expect_key = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    let start = i + 1;
                    i = string_end(bytes, start)?;
                    if depth == 1 && expect_key {
                        expect_key = false;
                        if &bytes[start..i] == b"ts" && bytes.get(i + 1) == Some(&b':') {
                            let value = i + 2;
                            let len = bytes[value..].iter().position(|&c| c == b',' || c == b'}')?;
                            return ts_text_to_f64(&line[value..value + len]).and_then(Ts::new);
                        }
                    }
                }
                b'{' | b'[' => {
                    depth += 1;
                    expect_key = bytes[i] == b'{' && depth == 1;
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                b',' if depth == 1 => expect_key = true,
                _ => {}
            }
            i += 1;
        }
        None
    }
}

/// The index of the quote that ends the JSON string whose text starts at
/// `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The `id` and `ts` of the JSON object `text` (message `index` of a page).
fn keys(text: &str, index: usize) -> Result<(MessageId, Ts), MessageError> {
    if !text.trim_start().starts_with('{') {
        return Err(MessageError::NotAnObject { index });
    }
    let keys: Keys = serde_json::from_str(text).map_err(|_| MessageError::NotAnObject { index })?;
    let id_raw = keys.id.ok_or(MessageError::Missing { index, field: "id" })?;
    let id = MessageId::from_json(id_raw).ok_or(MessageError::BadId { index })?;
    let ts_raw = keys.ts.ok_or(MessageError::Missing { index, field: "ts" })?;
    // `str::parse` rounds correctly; the text is the JSON number itself.
    let ts = ts_text_to_f64(ts_raw.get())
        .and_then(Ts::new)
        .ok_or_else(|| MessageError::BadTs {
            index,
            got: truncate(ts_raw.get(), 40),
        })?;
    Ok((id, ts))
}

/// Parses a chat-history answer: a JSON array of message objects.
pub fn parse_page(body: &[u8]) -> Result<Vec<Message>, MessageError> {
    let items: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| MessageError::NotAnArray(e.to_string()))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| Message::from_raw(raw, i))
        .collect()
}

/// The deepest nesting of arrays and objects accepted in an answer: the
/// recursion limit of serde_json, so that every stored message can be read
/// back with it (and with most other JSON tools) without overflowing a stack.
pub const MAX_JSON_DEPTH: usize = 128;

/// True if `json` nests arrays and objects more than `max` deep. Iterative,
/// so any depth is measured in constant stack; brackets inside strings do
/// not count. Meant for text already known to be JSON.
pub fn nested_deeper_than(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Removes whitespace outside strings. JSON strings cannot hold raw control
/// characters, so the result is one line and every value is byte-identical.
pub fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// A JSON number's text as `f64`, or `None` if the text is not a number
/// (a string, `true`, an object). Rust's parser also takes `inf` or `+1`,
/// which JSON does not, so the first character is checked too.
fn ts_text_to_f64(text: &str) -> Option<f64> {
    let first = text.as_bytes().first()?;
    if !(first.is_ascii_digit() || *first == b'-') {
        return None;
    }
    text.parse().ok()
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_string_content_and_number_text() {
        let raw = "{ \"a\" : \"x  y\\\" \\\\\" ,\n \"ts\": 1712345678.10 }";
        assert_eq!(minify(raw), "{\"a\":\"x  y\\\" \\\\\",\"ts\":1712345678.10}");
    }

    #[test]
    fn page_keeps_raw_bytes_and_parses_keys() {
        let body = br#"[{"id":"a","ts":1712345678.1,"x":{"n":2.50}},{"id":7,"ts":1}]"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page[0].raw, r#"{"id":"a","ts":1712345678.1,"x":{"n":2.50}}"#);
        assert_eq!(page[0].ts.as_f64(), 1712345678.1);
        assert_eq!(page[1].id.as_str(), "7");
    }

    #[test]
    fn a_number_id_and_a_string_id_are_two_ids_and_a_number_keeps_its_text() {
        let body = br#"[{"id":7,"ts":1},{"id":"7","ts":1},{"id":7.0,"ts":1},{"id":123456789012345678901234567890,"ts":1},{"id":123456789012345678901234567891,"ts":1}]"#;
        let ids: Vec<MessageId> = parse_page(body).unwrap().into_iter().map(|m| m.id).collect();
        let distinct: std::collections::HashSet<&MessageId> = ids.iter().collect();
        assert_eq!(distinct.len(), 5, "{ids:?}");
        assert_eq!(ids[0].to_json(), "7");
        assert_eq!(ids[1].to_json(), r#""7""#);
        assert_eq!(ids[2].to_json(), "7.0");
        assert_eq!(ids[3].to_json(), "123456789012345678901234567890");
        // Stored and read back (checkpoints, state): the type survives.
        let text = serde_json::to_string(&ids).unwrap();
        assert_eq!(
            text,
            r#"[7,"7",7.0,123456789012345678901234567890,123456789012345678901234567891]"#
        );
        assert_eq!(serde_json::from_str::<Vec<MessageId>>(&text).unwrap(), ids);
        // Files from before ids had a type hold strings: string ids.
        let legacy: MessageId = serde_json::from_str(r#""7""#).unwrap();
        assert!(!legacy.is_number());
        for bad in [r#""""#, "null", "[7]", "{}", "true"] {
            assert!(serde_json::from_str::<MessageId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contract_breaches_are_named() {
        assert!(matches!(
            parse_page(br#"[{"ts":1}]"#),
            Err(MessageError::Missing { field: "id", .. })
        ));
        assert!(matches!(
            parse_page(br#"[{"id":"a"}]"#),
            Err(MessageError::Missing { field: "ts", .. })
        ));
        assert!(matches!(
            parse_page(br#"[{"id":"a","ts":"1"}]"#),
            Err(MessageError::BadTs { .. })
        ));
        assert!(matches!(
            parse_page(br#"[{"id":"a","ts":-1}]"#),
            Err(MessageError::BadTs { .. })
        ));
        assert!(matches!(
            parse_page(br#"{"items":[]}"#),
            Err(MessageError::NotAnArray(_))
        ));
        assert!(matches!(
            parse_page(b"[1]"),
            Err(MessageError::NotAnObject { .. })
        ));
    }

    #[test]
    fn nesting_depth_is_measured_outside_strings_without_recursion() {
        assert!(!nested_deeper_than(br#"[{"a":[1]}]"#, 3));
        assert!(nested_deeper_than(br#"[{"a":[[1]]}]"#, 3));
        assert!(!nested_deeper_than(br#"[{"a":"[[[[\"[[[["}]"#, 2));
        let deep = [vec![b'['; 1_000_000], vec![b']'; 1_000_000]].concat();
        assert!(nested_deeper_than(&deep, MAX_JSON_DEPTH));
        assert!(!nested_deeper_than(&deep, 1_000_000));
    }

    #[test]
    fn deeply_nested_pages_parse_without_overflowing_the_stack() {
        // The rejection is the client's (it sees every answer); the parsers
        // themselves must still survive such input.
        let depth = 200_000;
        let mut body = br#"[{"id":"a","ts":1,"x":"#.to_vec();
        body.extend(std::iter::repeat_n(b'[', depth));
        body.extend(std::iter::repeat_n(b']', depth));
        body.extend_from_slice(b"}]");
        let page = parse_page(&body).unwrap();
        assert_eq!(page[0].raw.len(), body.len() - 2);
        let mut bad_id = br#"[{"ts":1,"id":"#.to_vec();
        bad_id.extend(std::iter::repeat_n(b'[', depth));
        bad_id.extend(std::iter::repeat_n(b']', depth));
        bad_id.extend_from_slice(b"}]");
        assert!(matches!(parse_page(&bad_id), Err(MessageError::BadId { .. })));
    }

    #[test]
    fn the_scanned_ts_is_the_parsed_one_and_nested_or_escaped_keys_do_not_fool_it() {
        for line in [
            r#"{"id":"a","ts":1712345678.123,"x":{"ts":5}}"#,
            r#"{"x":{"ts":5},"list":[{"ts":6}],"id":"a","ts":7.5}"#,
            r#"{"s":"\"ts\":9,","ts":8,"id":"a"}"#,
            r#"{"id":"a","reply":"a \\\" quote","ts":1e3}"#,
            r#"{"ts":2,"id":7}"#,
        ] {
            let parsed = Message::stored_keys(line).unwrap().1;
            assert_eq!(Message::stored_ts(line), Some(parsed), "{line}");
        }
        // Not there as plain text: the caller parses.
        assert_eq!(Message::stored_ts(r#"{"t\u0073":3,"id":"a"}"#), None);
        assert_eq!(
            Message::stored_keys(r#"{"t\u0073":3,"id":"a"}"#).unwrap().1,
            Ts::new(3.0).unwrap()
        );
        assert_eq!(Message::stored_ts(r#"{"id":"a","ts":"1"}"#), None);
    }

    #[test]
    fn cursor_text_round_trips() {
        let ts = Ts::new(1712345678.123).unwrap().next_up();
        let back: f64 = ts.to_string().parse().unwrap();
        assert_eq!(back, ts.as_f64());
        assert!(ts.as_f64() > 1712345678.123);
    }

    #[test]
    fn rfc3339_has_millis() {
        assert_eq!(Ts::new(0.5).unwrap().to_rfc3339(), "1970-01-01T00:00:00.500Z");
    }
}
