//! `--format markdown`: a transcript to read. One heading per day (UTC),
//! then each message as a line starting with its time, `HH:MM`:
//!
//! ```markdown
//! # Chat history with Lilith
//!
//! Times are UTC.
//!
//! ## 2023-11-14
//!
//! **22:13** **You:** Hello
//!
//! **Lilith:** Hi there
//!
//! *Earlier reply, regenerated:* Hi
//! ```
//!
//! Written as the history is read: only the day of the previous message is
//! remembered, so memory stays flat whatever the length of the history.

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};

use super::turn::Fields;
use super::turn::{regenerated, shown};
use super::{ExportError, Lines};
use crate::media::{MediaKind, MediaState, MediaUrl, MediaView};
use crate::message::Ts;
use crate::store::{ChatStoreError, Entry};

/// Writes the transcript of every entry `lines` yields, under the name
/// `name` (the personality's display name).
pub(super) fn write(lines: &mut Lines, name: &str, out: &mut impl Write) -> Result<(), ExportError> {
    writeln!(out, "# Chat history with {name}\n")?;
    writeln!(out, "Times are UTC.\n")?;
    let mut day: Option<NaiveDate> = None;
    let mut n = 0;
    let media = lines.media;
    for entry in lines.entries() {
        let entry = entry.map_err(ChatStoreError::Read)?;
        n += 1;
        write_message(out, name, &entry, n, &mut day, media)?;
    }
    Ok(())
}

fn write_message(
    out: &mut impl Write,
    name: &str,
    entry: &Entry,
    n: u64,
    day: &mut Option<NaiveDate>,
    media: Option<&MediaView>,
) -> Result<(), ExportError> {
    let m: Fields = serde_json::from_str(&entry.message).map_err(|e| ExportError::BadLine {
        line: n,
        reason: e.to_string(),
    })?;
    let when = Ts::new(m.ts).and_then(|ts| DateTime::<Utc>::from_timestamp_millis(ts.millis()));
    let this_day = when.map(|w| w.date_naive());
    if this_day != *day || n == 1 {
        match this_day {
            Some(d) => writeln!(out, "## {}\n", d.format("%Y-%m-%d"))?,
            None => writeln!(out, "## Undated\n")?,
        }
        *day = this_day;
    }
    // The time starts the message's first line, whichever that is.
    let mut stamp = Some(match when {
        Some(w) => format!("**{}** ", w.format("%H:%M")),
        None => format!("**{}** ", m.ts),
    });
    let mut line = |out: &mut dyn Write, text: String| -> std::io::Result<()> {
        writeln!(out, "{}{text}\n", stamp.take().unwrap_or_default())
    };
    if let Some(text) = shown(m.message).filter(|t| !t.is_empty()) {
        line(out, format!("**You:** {}", quote_block(&text)))?;
    }
    if let Some(url) = shown(m.attachment_url) {
        line(out, media_line(&url, MediaKind::Attachment, media))?;
    }
    if let Some(text) = shown(m.reply).filter(|t| !t.is_empty()) {
        line(out, format!("**{name}:** {}", quote_block(&text)))?;
    }
    if let Some(url) = shown(m.voice_reply_url) {
        line(out, media_line(&url, MediaKind::Voice, media))?;
    }
    for earlier in regenerated(m.regenerated_replies) {
        line(
            out,
            format!("*Earlier reply, regenerated:* {}", quote_block(&earlier)),
        )?;
    }
    if let Some(stamp) = stamp.take() {
        // Neither text nor link: the message still has its line.
        writeln!(out, "{}\n", stamp.trim_end())?;
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

/// The line of an attachment or voice reply: an image embedded, anything
/// else linked, to the local file when the export has one, else to the
/// URL; a URL the host answered 404 or 410 for is said to be gone. Only
/// http(s) URLs become links (a `javascript:` one would run in a
/// rendered page); each target is percent-encoded so that no `)`, space,
/// newline or `<` in it ends the link early.
fn media_line(url: &str, kind: MediaKind, media: Option<&MediaView>) -> String {
    let (label, title) = match kind {
        MediaKind::Voice => ("voice reply", "Voice reply"),
        _ => ("attachment", "Attachment"),
    };
    let media_url = MediaUrl::new(url);
    if let Some(path) = media.and_then(|m| m.local_path(&media_url)) {
        let bang = if kind == MediaKind::Attachment && is_image(&path) {
            "!"
        } else {
            ""
        };
        return format!("{bang}[{label}]({})", link_target(&path));
    }
    let target = link_target(url);
    let is_web = ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    });
    let state = media.and_then(|m| m.state(&media_url));
    if let Some(MediaState::Gone { status }) = state {
        return format!("*{title}, gone from the service (HTTP {status}):* `{target}`");
    }
    if !is_web {
        return format!("*{title}:* `{target}`");
    }
    let image = match state {
        Some(MediaState::Fetched { file, .. }) => is_image(&file),
        _ => is_image(url.split(['?', '#']).next().unwrap_or_default()),
    };
    let bang = if kind == MediaKind::Attachment && image {
        "!"
    } else {
        ""
    };
    format!("{bang}[{label}]({target})")
}

/// Whether a file name or path ends in an image's extension.
fn is_image(path: &str) -> bool {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(
        ext.as_deref(),
        Some("png" | "jpg" | "jpeg" | "gif" | "webp" | "avif" | "heic" | "svg")
    )
}

/// `url` as a Markdown link target: every byte outside a conservative set
/// of URL characters percent-encoded, so brackets, parentheses, spaces,
/// quotes, backticks, backslashes and line breaks cannot end the link (or
/// a code span) or start markup; `%` stays, for what is already encoded.
fn link_target(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~:/?#@!$&*+,;=%".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keeps multi-line texts inside their paragraph.
fn quote_block(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "  \n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_media_url_cannot_break_out_of_its_link() {
        let hostile = "https://c/a.png) [click](https://evil)\n# x <b>`\\";
        let line = media_line(hostile, MediaKind::Attachment, None);
        assert_eq!(
            line,
            "[attachment](https://c/a.png%29%20%5Bclick%5D%28https://evil%29%0A#%20x%20%3Cb%3E%60%5C)"
        );
        assert_eq!(
            media_line("javascript:alert(1)", MediaKind::Voice, None),
            "*Voice reply:* `javascript:alert%281%29`"
        );
        assert_eq!(
            media_line("https://c/v.mp3?sig=1", MediaKind::Voice, None),
            "[voice reply](https://c/v.mp3?sig=1)"
        );
    }
}
