//! HTML made safe by construction: every piece of text from the store (a
//! message, a profile field, an error the service worded) goes through
//! [`escape`] on its way into a page, and pages carry no script at all, so
//! a message holding `<script>` or `<img onerror>` is shown as the text it
//! is. The Content-Security-Policy the server sends backs this up.

use std::fmt::Write as _;

/// `text` with `&`, `<`, `>`, `"` and `'` as character references, and
/// every control character but newline and tab as U+FFFD (a page must not
/// carry what a terminal would act on, nor a NUL a browser may mangle).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A path or query component percent-encoded: everything but unreserved
/// characters.
pub fn url_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A whole page: `title` (text, escaped here) and `body` (HTML built from
/// escaped parts). The style sheet is a file of its own: the policy allows
/// no inline style or script.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{} · chatkeep</title>\n<link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n\
         <body>\n<header><a class=\"home\" href=\"/\">chatkeep</a>\n\
         <form class=\"search\" action=\"/search\" method=\"get\" role=\"search\">\
         <input type=\"search\" name=\"q\" placeholder=\"Search every history\" aria-label=\"Search\">\
         </form></header>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        escape(title)
    )
}

/// `<time>` for a UTC time, readable and machine-readable.
pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        t.format("%Y-%m-%d %H:%M UTC")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_controls_become_text() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"<img src=x onerror=alert(1)>\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;&lt;img src=x onerror=alert(1)&gt;&quot;"
        );
        assert_eq!(escape("a\u{1b}[31m\u{0}b\nc"), "a\u{FFFD}[31m\u{FFFD}b\nc");
        assert_eq!(escape("café 日本 🙂"), "café 日本 🙂");
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(url_component("a b/ü?&"), "a%20b%2F%C3%BC%3F%26");
    }
}
