//! Logging to systemd's journal through its native protocol: one datagram
//! per event, with a syslog priority (`journalctl -p warning` finds the
//! warnings) and the event's fields as journal fields (`journalctl
//! PERSONALITY=alice` finds one personality's lines).
//!
//! Written here rather than taken from the `tracing-journald` crate: that
//! crate sends to a fixed socket path, so the real binary could not be
//! tested against a socket a test listens on; this is the documented
//! protocol (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>) in a page of code.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Where journald listens for native messages.
const SOCKET: &str = "/run/systemd/journal/socket";

/// Replaces [`SOCKET`]; for tests only, which listen on a socket of their
/// own. Read only when standard error is the journal ([`stderr_is_journal`]).
pub const SOCKET_ENV: &str = "CHATKEEP_JOURNAL_SOCKET";

/// A value (the message, a field) longer than this is cut, so that the
/// datagram fits the kernel's default limit of about 200 KiB (journald
/// takes more). Log events are a line; only a pathological error text
/// comes near it.
const MAX_VALUE: usize = 32 * 1024;

/// Fields that would make the datagram longer than this are left out (they
/// are on MESSAGE, cut, all the same).
const MAX_DATAGRAM: usize = 160 * 1024;

/// Whether standard error is connected to the journal: systemd sets
/// `JOURNAL_STREAM` to the `device:inode` of the stream it gives a service
/// as standard error. A child that inherited the variable but whose
/// standard error was redirected (to a file, a pipe, a terminal) does not
/// match, and keeps text lines.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    match rustix::fs::fstat(std::io::stderr()) {
        Ok(stat) => dev.parse() == Ok(stat.st_dev) && ino.parse() == Ok(stat.st_ino),
        Err(_) => false,
    }
}

/// A `tracing` layer that sends each event to the journal.
pub struct JournalLayer {
    socket: UnixDatagram,
    path: PathBuf,
}

impl JournalLayer {
    /// An unbound datagram socket for the journal's socket (or the test's,
    /// [`SOCKET_ENV`]). Nothing is sent yet: a journal that is not there
    /// shows as events lost, as on standard error to a closed pipe.
    pub fn new() -> io::Result<Self> {
        let path = std::env::var_os(SOCKET_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SOCKET));
        Ok(JournalLayer {
            socket: UnixDatagram::unbound()?,
            path,
        })
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let payload = encode(*event.metadata().level(), &fields);
        // Nowhere to report a failure to log; the journal's own rate
        // limit drops events the same way.
        let _ = self.socket.send_to(&payload, &self.path);
    }
}

/// The syslog priority journald files an event under.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// An event's message and its other fields, as text. Control characters
/// are escaped as in the text format ([`crate::escape::controls`]), so
/// that `journalctl` shows the same words as a log file.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        let value = crate::escape::controls(&value).into_owned();
        if field.name() == "message" {
            self.message = value;
        } else {
            self.others.push((field_name(field.name()), value));
        }
    }
}

/// A journal field name for a `tracing` field: upper case, `[A-Z0-9_]`,
/// not starting with `_` or a digit (journald drops those), at most 64
/// characters. One that would shadow a field this layer sets or journald
/// reads (`MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, ...) gets `F_` in
/// front.
fn field_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' => c,
            _ => '_',
        })
        .collect();
    let reserved = matches!(
        out.as_str(),
        "MESSAGE" | "MESSAGE_ID" | "PRIORITY" | "SYSLOG_IDENTIFIER" | "SYSLOG_FACILITY" | "SYSLOG_PID"
    ) || out.starts_with("CODE_");
    if reserved || !out.starts_with(|c: char| c.is_ascii_uppercase()) {
        out.insert_str(0, "F_");
    }
    out.truncate(64);
    out
}

/// The datagram: `NAME=value\n` per field. Values are escaped and so hold
/// no newline; the length-prefixed form the protocol also allows is not
/// needed.
fn encode(level: Level, fields: &Fields) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, name: &str, value: &str) {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    let mut out = Vec::with_capacity(256);
    put(&mut out, "PRIORITY", &priority(level).to_string());
    put(&mut out, "SYSLOG_IDENTIFIER", "chatkeep");
    // The fields are on the message too, as in a text line: `journalctl`
    // shows MESSAGE only, and an error's text is what a person reads.
    let mut text = fields.message.clone();
    for (name, value) in &fields.others {
        text.push_str(&format!(" {}={value}", name.to_ascii_lowercase()));
    }
    put(&mut out, "MESSAGE", cut(&text));
    for (name, value) in &fields.others {
        if out.len() + name.len() + value.len().min(MAX_VALUE) > MAX_DATAGRAM {
            break;
        }
        put(&mut out, name, cut(value));
    }
    out
}

/// `text`, cut to at most [`MAX_VALUE`] bytes on a character boundary.
fn cut(text: &str) -> &str {
    let mut end = text.len().min(MAX_VALUE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_field_names_are_upper_case_and_never_shadow_ours() {
        assert_eq!(field_name("personality"), "PERSONALITY");
        assert_eq!(field_name("delay_s"), "DELAY_S");
        assert_eq!(field_name("message_id"), "F_MESSAGE_ID");
        assert_eq!(field_name("priority"), "F_PRIORITY");
        assert_eq!(field_name("_x"), "F__X");
        assert_eq!(field_name("r#type"), "R_TYPE");
    }

    #[test]
    fn a_huge_journal_event_still_fits_one_datagram() {
        let huge = "é".repeat(100 * 1024);
        let fields = Fields {
            message: huge.clone(),
            others: (0..8).map(|i| (format!("F{i}"), huge.clone())).collect(),
        };
        let datagram = encode(Level::ERROR, &fields);
        assert!(datagram.len() <= MAX_DATAGRAM + MAX_VALUE, "{}", datagram.len());
        let text = String::from_utf8(datagram).unwrap();
        assert!(text.contains("\nF0=é"));
    }

    #[test]
    fn journal_datagram_has_priority_message_and_fields() {
        let fields = Fields {
            message: "retrying".into(),
            others: vec![("PERSONALITY".into(), "alice".into())],
        };
        let text = String::from_utf8(encode(Level::WARN, &fields)).unwrap();
        assert_eq!(
            text,
            "PRIORITY=4\nSYSLOG_IDENTIFIER=chatkeep\nMESSAGE=retrying personality=alice\nPERSONALITY=alice\n"
        );
    }
}
