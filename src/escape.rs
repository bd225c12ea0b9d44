//! Text from the service, made safe to show.
//!
//! A message id, an error the service worded or a profile field can hold a
//! newline (which forges a log line in the journal), an ANSI escape (which
//! drives the terminal that shows it) or a bidirectional override (which
//! makes a line read as something else). Everything chatkeep writes for a
//! person (log lines, the terminal, `chatkeep status`) goes through
//! [`controls`] where it can carry such text; what chatkeep stores stays
//! exactly as received.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character written as an escape: `\n`, `\r`,
/// `\t`, and `\u{1b}` style for the rest (C0, DEL, C1) and for the Unicode
/// bidirectional controls. Unchanged (and not copied) when there are none.
pub fn controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// The characters that reorder text (embeddings, overrides, isolates, and
/// the implicit marks are left alone: they cannot hide anything).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_escapes_and_plain_text_is_not_copied() {
        assert!(matches!(controls("plain text, é, 漢字 😀"), Cow::Borrowed(_)));
        assert_eq!(
            controls("id\n2026-01-01 INFO forged\x1b[31mred\x1b[0m\t\r\u{7f}\u{85}"),
            "id\\n2026-01-01 INFO forged\\u{1b}[31mred\\u{1b}[0m\\t\\r\\u{7f}\\u{85}"
        );
        assert_eq!(controls("a\u{202e}evil\u{2066}"), "a\\u{202e}evil\\u{2066}");
        assert!(!controls("x\u{0}y").contains('\0'));
    }
}
