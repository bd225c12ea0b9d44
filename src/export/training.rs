//! `--format openai` and `--format sharegpt`: the history as examples to
//! fine-tune a model on the personality's style, one example per
//! conversation (the split of `--format conversations`), split further so
//! that no example is longer than `--max-chars`.
//!
//! - `openai`: chat fine-tuning JSON Lines, one example a line:
//!   `{"messages":[{"role":"system","content":…},{"role":"user","content":…},{"role":"assistant","content":…},…]}`
//! - `sharegpt`: one JSON array, one example per element (on a line of its
//!   own): `[{"conversations":[{"from":"system","value":…},{"from":"human","value":…},{"from":"gpt","value":…}]},…]`
//!
//! Each stored message is one exchange: the user's turn, then the
//! personality's, so turns alternate and every example ends with the
//! personality speaking. An exchange needs both sides: a message with no
//! reply, or with neither user text nor attachment, is left out (and
//! counted). A message whose user sent only an attachment gets the user
//! turn `[attachment: <type>]` (`[attachment]` without a type), so the reply
//! keeps its context. The current reply is used; regenerated ones are not.
//! The system turn, when the profile has a prompt, starts every example.
//!
//! An example is held in memory until it is written, and it is at most
//! `max_chars` long; so memory is bounded by `--max-chars`, whatever the
//! length of a conversation. An exchange too long to fit in an example on
//! its own (with the system turn) is left out, and counted.

use std::fmt;
use std::io::Write;

use serde_json::json;

use super::conversations::{Cursor, Spans};
use super::turn::Turn;
use super::{ExportError, ExportOptions};
use crate::store::ChatStore;

/// `--max-chars` when not given: well under the context of the models
/// commonly fine-tuned, and of OpenAI's per-example limit.
pub const DEFAULT_MAX_CHARS: usize = 32_000;

/// Which fine-tuning format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    OpenAi,
    ShareGpt,
}

impl Style {
    fn open(self) -> &'static str {
        match self {
            Style::OpenAi => "{\"messages\":[",
            Style::ShareGpt => "{\"conversations\":[",
        }
    }

    /// One turn: `who` is "system", "user" or "assistant".
    fn turn(self, who: &str, text: &str) -> String {
        match self {
            Style::OpenAi => json!({ "role": who, "content": text }).to_string(),
            Style::ShareGpt => {
                let from = match who {
                    "user" => "human",
                    "assistant" => "gpt",
                    other => other,
                };
                json!({ "from": from, "value": text }).to_string()
            }
        }
    }
}

/// What a fine-tuning export wrote and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainingCounts {
    /// Examples written (lines for openai, elements for sharegpt).
    pub examples: u64,
    /// Conversations they came from.
    pub conversations: u64,
    /// Exchanges written.
    pub exchanges: u64,
    /// Messages left out: without a reply; without user text or
    /// attachment; too long for an example on their own.
    pub no_reply: u64,
    pub no_user: u64,
    pub too_long: u64,
    /// Conversations shorter than `--min-messages`, left out.
    pub skipped_conversations: u64,
}

/// "5 examples from 2 conversations (16 exchanges; left out: 1 message
/// without a reply, ...)".
impl fmt::Display for TrainingCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::words::count;
        write!(
            f,
            "{} from {} ({}",
            count(self.examples, "example"),
            count(self.conversations, "conversation"),
            count(self.exchanges, "exchange")
        )?;
        let left_out = [
            (self.no_reply, "without a reply"),
            (self.no_user, "without user text or attachment"),
            (self.too_long, "longer than --max-chars"),
        ];
        let mut first = true;
        for (n, why) in left_out.into_iter().filter(|(n, _)| *n > 0) {
            let lead = if first { "; left out: " } else { ", " };
            write!(f, "{lead}{} {why}", count(n, "message"))?;
            first = false;
        }
        if self.skipped_conversations > 0 {
            write!(
                f,
                "; {} shorter than --min-messages left out",
                count(self.skipped_conversations, "conversation")
            )?;
        }
        f.write_str(")")
    }
}

/// Writes the fine-tuning examples of `store` in `style` to `out`, each
/// starting with the system turn `system` (when there is one), none longer
/// than `max_chars` characters.
pub fn write(
    store: &ChatStore,
    options: &ExportOptions,
    style: Style,
    system: Option<&str>,
    max_chars: usize,
    out: &mut impl Write,
) -> Result<TrainingCounts, ExportError> {
    let mut head = style.open().to_owned();
    if let Some(system) = system {
        head.push_str(&style.turn("system", system));
    }
    // "]}" closes an example.
    let bare = head.chars().count() + 2;
    if bare >= max_chars {
        return Err(ExportError::Write(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "--max-chars {max_chars} leaves no room for a single exchange: an example with the \
                 system prompt alone is {bare} characters long"
            ),
        )));
    }
    let mut spans = Spans::new(store, options, false)?;
    let mut cursor = Cursor::new(store, options)?;
    let mut counts = TrainingCounts::default();
    let mut examples = Examples {
        style,
        out,
        head: &head,
        bare,
        max_chars,
        current: String::new(),
        current_chars: 0,
        written: 0,
    };
    if style == Style::ShareGpt {
        examples.out.write_all(b"[")?;
    }
    while let Some(span) = spans.next_span()? {
        if !span.kept {
            cursor.skip(span.count)?;
            counts.skipped_conversations += 1;
            continue;
        }
        let before = examples.written;
        for _ in 0..span.count {
            let line = cursor.next_known()?;
            let turn = Turn::parse(&line, cursor.line)?;
            let Some(reply) = turn.reply.as_deref() else {
                counts.no_reply += 1;
                continue;
            };
            let user = match (&turn.user, &turn.attachment_type, &turn.attachment) {
                (Some(text), _, _) => text.clone(),
                (None, Some(kind), Some(_)) => format!("[attachment: {kind}]"),
                (None, None, Some(_)) => "[attachment]".to_owned(),
                (None, _, None) => {
                    counts.no_user += 1;
                    continue;
                }
            };
            let exchange = format!(
                ",{},{}",
                style.turn("user", &user),
                style.turn("assistant", reply)
            );
            if examples.add(&exchange)? {
                counts.exchanges += 1;
            } else {
                counts.too_long += 1;
            }
        }
        examples.finish_example()?;
        if examples.written > before {
            counts.conversations += 1;
        }
    }
    counts.examples = examples.written;
    let out = examples.out;
    if style == Style::ShareGpt {
        out.write_all(if counts.examples == 0 { b"]\n" } else { b"\n]\n" })?;
    }
    out.flush()?;
    spans.finish()?;
    Ok(counts)
}

/// The example being filled, and where finished ones go.
struct Examples<'a, W: Write> {
    style: Style,
    out: &'a mut W,
    /// How an example starts (its system turn included), and its length
    /// with the closing `]}`, in characters.
    head: &'a str,
    bare: usize,
    max_chars: usize,
    /// The exchanges of the example being filled, each starting with `,`.
    current: String,
    current_chars: usize,
    written: u64,
}

impl<W: Write> Examples<'_, W> {
    /// Adds an exchange to the example being filled, or to a new one when
    /// it would make it too long; `false` when it is too long for any.
    fn add(&mut self, exchange: &str) -> Result<bool, ExportError> {
        // Without a system turn, the first exchange goes without its comma.
        let alone = if self.has_system() {
            exchange
        } else {
            &exchange[1..]
        };
        if self.bare + alone.chars().count() > self.max_chars {
            return Ok(false);
        }
        let (text, chars) = if self.current.is_empty() {
            (alone, alone.chars().count())
        } else {
            (exchange, exchange.chars().count())
        };
        if !self.current.is_empty() && self.bare + self.current_chars + chars > self.max_chars {
            self.finish_example()?;
            return self.add(exchange);
        }
        self.current.push_str(text);
        self.current_chars += chars;
        Ok(true)
    }

    fn has_system(&self) -> bool {
        !self.head.ends_with('[')
    }

    /// Writes the example being filled, if it holds an exchange.
    fn finish_example(&mut self) -> Result<(), ExportError> {
        if self.current.is_empty() {
            return Ok(());
        }
        if self.style == Style::ShareGpt {
            self.out
                .write_all(if self.written == 0 { b"\n" } else { b",\n" })?;
        }
        self.out.write_all(self.head.as_bytes())?;
        self.out.write_all(self.current.as_bytes())?;
        self.out.write_all(b"]}")?;
        if self.style == Style::OpenAi {
            self.out.write_all(b"\n")?;
        }
        self.written += 1;
        self.current.clear();
        self.current_chars = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples<'a>(out: &'a mut Vec<u8>, head: &'a str, max_chars: usize) -> Examples<'a, Vec<u8>> {
        Examples {
            style: Style::OpenAi,
            out,
            head,
            bare: head.chars().count() + 2,
            max_chars,
            current: String::new(),
            current_chars: 0,
            written: 0,
        }
    }

    #[test]
    fn an_example_is_closed_before_it_grows_past_the_limit() {
        let style = Style::OpenAi;
        let head = format!("{}{}", style.open(), style.turn("system", "S"));
        let exchange = format!(",{},{}", style.turn("user", "é"), style.turn("assistant", "ü"));
        let per = exchange.chars().count();
        let max = head.chars().count() + 2 + 2 * per;
        let mut out = Vec::new();
        let mut ex = examples(&mut out, &head, max);
        for _ in 0..5 {
            assert!(ex.add(&exchange).unwrap());
        }
        let too_long = format!(
            ",{},{}",
            style.turn("user", &"x".repeat(max)),
            style.turn("assistant", "y")
        );
        assert!(!ex.add(&too_long).unwrap());
        ex.finish_example().unwrap();
        assert_eq!(ex.written, 3);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].chars().count(), max, "two exchanges fill a line exactly");
        for line in lines {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["messages"][0]["role"], "system");
        }
    }

    #[test]
    fn without_a_system_turn_the_first_exchange_has_no_comma() {
        let head = Style::ShareGpt.open();
        let exchange = format!(
            ",{},{}",
            Style::ShareGpt.turn("user", "a"),
            Style::ShareGpt.turn("assistant", "b")
        );
        let mut out = Vec::new();
        let mut ex = examples(&mut out, head, 1000);
        ex.style = Style::ShareGpt;
        ex.add(&exchange).unwrap();
        ex.add(&exchange).unwrap();
        ex.finish_example().unwrap();
        let text = String::from_utf8(out).unwrap();
        let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let turns = value["conversations"].as_array().unwrap();
        assert_eq!(turns.len(), 4);
        assert_eq!(turns[0], serde_json::json!({"from": "human", "value": "a"}));
        assert_eq!(turns[3]["from"], "gpt");
    }
}
