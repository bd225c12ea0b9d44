//! Checking snapshots and the live store, and saying exactly what is wrong.
//!
//! A snapshot is checked against its manifest entry: size and SHA-256 of
//! the file; then (unencrypted, or with an identity) the gzip stream to its
//! trailer, every tar member a plain file the manifest lists, every member
//! parsed as JSON, and the chat history's message count, `ts` order, time
//! range and (at [`Depth::Full`]) unique ids. The live store is checked by
//! decoding the whole chat log and comparing it with its state file.

use std::collections::HashSet;
use std::io::{self, BufReader, Read};

use flate2::read::GzDecoder;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

use super::encryption::Identities;
use super::manifest::SnapshotEntry;
use super::snapshot::{chat_member, hex};
use crate::message::{Message, MessageId, Ts};
use crate::store::{ChatStore, PersonalityDir};

/// Problems of one kind listed in full before the rest are only counted.
const SHOWN: usize = 3;

/// How much a chat history check may remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Constant memory: everything but id uniqueness. The check of a
    /// snapshot just written (its ids come from the store, where a sync
    /// keeps them unique).
    Stream,
    /// Also that no id appears twice, which keeps 20 bytes per message
    /// (20 MiB for a million): `chatkeep verify`.
    Full,
}

/// What checking one snapshot file found.
#[derive(Debug, Default)]
pub struct FileCheck {
    /// Each a sentence naming the part, what was expected and what was found.
    pub problems: Vec<String>,
    /// False when only the size and SHA-256 could be checked (encrypted, no
    /// identity given).
    pub content_checked: bool,
}

/// Checks the snapshot of personality `name` read from `file` against
/// `entry`. An encrypted one is decrypted with `identities` when given;
/// without, only its size and SHA-256 are checked.
pub fn check_file(
    file: impl Read,
    name: &str,
    entry: &SnapshotEntry,
    identities: Option<&Identities>,
    depth: Depth,
) -> FileCheck {
    let mut check = FileCheck::default();
    let mut hashing = HashingReader::new(BufReader::with_capacity(1 << 16, file));
    match (entry.encrypted, identities) {
        (false, _) => {
            check.content_checked = true;
            check_content(&mut hashing, name, entry, depth, &mut check.problems);
        }
        (true, Some(identities)) => match identities.decrypt(&mut hashing) {
            Ok(plain) => {
                check.content_checked = true;
                check_content(plain, name, entry, depth, &mut check.problems);
            }
            Err(e) => check.problems.push(format!(
                "cannot decrypt it with the identity in {}: {e}",
                identities.path().display()
            )),
        },
        (true, None) => {}
    }
    // Whatever the checks left unread still counts for the SHA-256.
    if let Err(e) = io::copy(&mut hashing, &mut io::sink()) {
        check.problems.insert(0, format!("cannot read the file: {e}"));
        return check;
    }
    let (size, sha256) = hashing.finish();
    let mut first = Vec::new();
    if size != entry.size {
        first.push(format!(
            "size: the manifest says {} bytes, the file has {size}",
            entry.size
        ));
    }
    if sha256 != entry.sha256 {
        first.push(format!(
            "SHA-256: the manifest says {}, the file has {sha256}",
            entry.sha256
        ));
    }
    check.problems.splice(0..0, first);
    check
}

/// The gzip stream of a snapshot: its tar, its members, its trailer.
fn check_content(
    plain: impl Read,
    name: &str,
    entry: &SnapshotEntry,
    depth: Depth,
    problems: &mut Vec<String>,
) {
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 16, plain)));
    let chat = chat_member(name);
    let mut seen: Vec<String> = Vec::new();
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!("cannot read the archive: {e}"));
            return;
        }
    };
    for member in entries {
        let mut member = match member {
            Ok(member) => member,
            Err(e) => {
                problems.push(format!(
                    "cannot read the archive after {} members: {e}",
                    seen.len()
                ));
                return;
            }
        };
        let file = member
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "(unreadable name)".to_owned());
        let kind = member.header().entry_type();
        if !kind.is_file() {
            problems.push(format!("member {file:?} is not a plain file ({kind:?})"));
            continue;
        }
        if !entry.members.contains(&file) {
            problems.push(format!("member {file:?} is not one the manifest lists"));
        }
        if seen.contains(&file) {
            problems.push(format!("member {file:?} appears twice"));
        }
        let parsed = if file == chat {
            check_history(&mut member, &file, entry, depth, problems)
        } else {
            serde_json::from_reader::<_, IgnoredAny>(BufReader::new(&mut member)).map(|_| ())
        };
        match parsed {
            Ok(()) => {}
            // The stream itself broke (damaged gzip or age data): nothing
            // after this point can be read.
            Err(e) if e.is_io() => {
                problems.push(format!(
                    "{file} cannot be read to its end, the archive is damaged: {e}"
                ));
                return;
            }
            Err(e) => problems.push(format!("{file} is not valid JSON: {e}")),
        }
        seen.push(file);
    }
    for missing in entry.members.iter().filter(|m| !seen.contains(m)) {
        problems.push(format!("{missing} is missing, though the manifest lists it"));
    }
    // tar stops at its end marker; the gzip trailer (CRC-32 and length)
    // is checked only when the stream is read to its end.
    if let Err(e) = io::copy(&mut archive.into_inner(), &mut io::sink()) {
        problems.push(format!("the gzip stream is damaged: {e}"));
    }
}

/// What a chat history member holds, gathered while it streams past.
#[derive(Default)]
struct History {
    depth_full: bool,
    count: u64,
    first: Option<f64>,
    last: Option<f64>,
    /// Messages whose `ts` is smaller than the one before: count, first one.
    disorder: u64,
    first_disorder: Option<(u64, f64, f64)>,
    /// Messages without a usable `id` or `ts`: count, first few.
    bad: u64,
    bad_shown: Vec<String>,
    /// Truncated SHA-256 of each id, with the message's number.
    ids: Vec<([u8; 16], u32)>,
    header_count: Option<u64>,
    header_range: Option<DateRange>,
    has_messages: bool,
}

#[derive(Deserialize)]
struct DateRange {
    earliest: Option<String>,
    latest: Option<String>,
}

/// The two keys of a message a check needs; the rest is skipped.
#[derive(Deserialize)]
struct Keys {
    id: Option<serde_json::Value>,
    ts: Option<serde_json::Number>,
}

/// Checks the chat history member. A JSON or read error is returned for
/// the caller to report; every other finding goes to `problems`.
fn check_history(
    member: impl Read,
    name: &str,
    entry: &SnapshotEntry,
    depth: Depth,
    problems: &mut Vec<String>,
) -> Result<(), serde_json::Error> {
    let mut history = History {
        depth_full: depth == Depth::Full,
        ..History::default()
    };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 16, member));
    de::Deserializer::deserialize_map(&mut de, HistoryVisitor(&mut history)).and_then(|()| de.end())?;
    if !history.has_messages {
        problems.push(format!("{name} has no \"messages\" list"));
    }
    let what = |n: u64| format!("{n} message{}", if n == 1 { "" } else { "s" });
    if entry.message_count != history.count {
        problems.push(format!(
            "{name}: the manifest says {}, the snapshot holds {}",
            what(entry.message_count),
            what(history.count)
        ));
    }
    match history.header_count {
        Some(n) if n != history.count => problems.push(format!(
            "{name}: its message_count says {}, it holds {}",
            what(n),
            what(history.count)
        )),
        Some(_) => {}
        None => problems.push(format!("{name} has no message_count")),
    }
    let shown = |ts: Option<f64>| ts.and_then(Ts::new).map(Ts::to_rfc3339);
    let (first, last) = (shown(history.first), shown(history.last));
    for (which, found, manifest) in [
        ("oldest", &first, &entry.first_message),
        ("newest", &last, &entry.last_message),
    ] {
        if found != manifest {
            problems.push(format!(
                "{name}: the {which} message is from {}, the manifest says {}",
                found.as_deref().unwrap_or("(none)"),
                manifest.as_deref().unwrap_or("(none)")
            ));
        }
    }
    if let Some(range) = &history.header_range
        && (range.earliest != first || range.latest != last)
    {
        problems.push(format!(
            "{name}: its date_range says {} to {}, its messages span {} to {}",
            range.earliest.as_deref().unwrap_or("null"),
            range.latest.as_deref().unwrap_or("null"),
            first.as_deref().unwrap_or("null"),
            last.as_deref().unwrap_or("null")
        ));
    }
    if let Some((n, before, ts)) = history.first_disorder {
        problems.push(format!(
            "{name}: messages are not oldest first: message {n} has ts {ts}, after {before} in \
             message {}; {} such place{}",
            n - 1,
            history.disorder,
            if history.disorder == 1 { "" } else { "s" }
        ));
    }
    if history.bad > 0 {
        problems.push(format!(
            "{name}: {} without a usable id or ts: {}",
            what(history.bad),
            history.bad_shown.join("; ")
        ));
    }
    if history.depth_full {
        duplicates(&mut history.ids, name, problems);
    }
    Ok(())
}

/// Reports ids that appear more than once.
fn duplicates(ids: &mut [([u8; 16], u32)], name: &str, problems: &mut Vec<String>) {
    ids.sort_unstable();
    let mut groups = 0u64;
    let mut shown = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i + 1;
        while j < ids.len() && ids[j].0 == ids[i].0 {
            j += 1;
        }
        if j - i > 1 {
            groups += 1;
            if shown.len() < SHOWN {
                let numbers: Vec<String> = ids[i..j].iter().map(|(_, n)| n.to_string()).collect();
                shown.push(format!("messages {}", numbers.join(", ")));
            }
        }
        i = j;
    }
    if groups > 0 {
        problems.push(format!(
            "{name}: {groups} {} more than once ({})",
            if groups == 1 { "id appears" } else { "ids appear" },
            shown.join("; ")
        ));
    }
}

impl History {
    fn message(&mut self, keys: Keys) {
        self.count += 1;
        let n = self.count;
        let ts = keys
            .ts
            .as_ref()
            .and_then(serde_json::Number::as_f64)
            .and_then(Ts::new);
        let id = match &keys.id {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(format!("s{s}")),
            Some(serde_json::Value::Number(v)) => Some(format!("n{v}")),
            _ => None,
        };
        let (Some(ts), Some(id)) = (ts, id) else {
            self.bad += 1;
            if self.bad_shown.len() < SHOWN {
                let part = if ts.is_none() { "ts" } else { "id" };
                self.bad_shown.push(format!("message {n} has no usable {part}"));
            }
            return;
        };
        let ts = ts.as_f64();
        if let Some(before) = self.last
            && ts < before
        {
            self.disorder += 1;
            self.first_disorder.get_or_insert((n, before, ts));
        }
        self.first.get_or_insert(ts);
        self.last = Some(ts);
        if self.depth_full
            && let Ok(number) = u32::try_from(n)
        {
            let digest = Sha256::digest(id.as_bytes());
            let mut short = [0u8; 16];
            short.copy_from_slice(&digest[..16]);
            self.ids.push((short, number));
        }
    }
}

/// Visits the export's top-level object, streaming `messages`.
struct HistoryVisitor<'a>(&'a mut History);

impl<'de> Visitor<'de> for HistoryVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(
            "the export object {shape_id, shape_name, message_count, date_range, export_date, messages}",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "message_count" => self.0.header_count = Some(map.next_value()?),
                "date_range" => self.0.header_range = Some(map.next_value()?),
                "messages" => {
                    self.0.has_messages = true;
                    map.next_value_seed(MessagesSeed(self.0))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `messages` list, one message at a time.
struct MessagesSeed<'a>(&'a mut History);

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of message objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(keys) = seq.next_element::<Keys>()? {
            self.0.message(keys);
        }
        Ok(())
    }
}

/// Counts and hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.len, hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// What checking the live store found.
#[derive(Debug, Default)]
pub struct LiveCheck {
    pub problems: Vec<String>,
    /// Messages decoded from the chat log.
    pub messages: u64,
}

/// Decodes the whole committed chat log of `dir` and compares it with the
/// state file: message count, oldest `ts`, newest `ts` and the ids there.
/// Reads only, without the lock.
pub fn check_live(dir: &PersonalityDir) -> LiveCheck {
    let mut check = LiveCheck::default();
    let chat = match ChatStore::open_read_only(dir.path()) {
        Ok(chat) => chat,
        Err(e) => {
            check.problems.push(format!("chat state: {e}"));
            return check;
        }
    };
    let log = chat.log_path().display().to_string();
    let lines = match chat.lines() {
        Ok(lines) => lines,
        Err(e) => {
            check.problems.push(format!("chat log: {e}"));
            return check;
        }
    };
    let mut oldest: Option<Ts> = None;
    let mut newest: Option<(Ts, HashSet<MessageId>)> = None;
    let mut disorder = 0u64;
    let mut bad = Vec::new();
    for line in lines {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                check.problems.push(format!(
                    "chat log {log}: cannot be decoded after {} messages: {e}",
                    check.messages
                ));
                return check;
            }
        };
        check.messages += 1;
        let message = match Message::from_stored_line(&line) {
            Ok(m) => m,
            Err(e) => {
                if bad.len() < SHOWN {
                    bad.push(format!("line {}: {e}", check.messages));
                }
                continue;
            }
        };
        oldest.get_or_insert(message.ts);
        match &mut newest {
            Some((ts, _)) if message.ts < *ts => disorder += 1,
            Some((ts, ids)) if message.ts == *ts => {
                ids.insert(message.id);
            }
            _ => newest = Some((message.ts, HashSet::from([message.id]))),
        }
    }
    if !bad.is_empty() {
        check
            .problems
            .push(format!("chat log {log}: unreadable messages: {}", bad.join("; ")));
    }
    if disorder > 0 {
        check.problems.push(format!(
            "chat log {log}: {disorder} message{} older than one before {}",
            if disorder == 1 { "" } else { "s" },
            if disorder == 1 { "it" } else { "them" }
        ));
    }
    let state = chat.state();
    if state.message_count != check.messages {
        check.problems.push(format!(
            "chat state: says {} messages, the chat log {log} holds {}",
            state.message_count, check.messages
        ));
    }
    if state.oldest != oldest {
        check.problems.push(format!(
            "chat state: says the oldest message is from {}, the log's is from {}",
            shown_ts(state.oldest),
            shown_ts(oldest)
        ));
    }
    let state_head = state
        .head
        .as_ref()
        .map(|h| (h.ts, h.ids.iter().cloned().collect::<HashSet<_>>()));
    if state_head != newest {
        let describe = |head: &Option<(Ts, HashSet<MessageId>)>| match head {
            Some((ts, ids)) => format!(
                "{} ({} id{})",
                ts.to_rfc3339(),
                ids.len(),
                if ids.len() == 1 { "" } else { "s" }
            ),
            None => "none".to_owned(),
        };
        check.problems.push(format!(
            "chat state: says the newest message is {}, the log's is {}",
            describe(&state_head),
            describe(&newest)
        ));
    }
    check
}

fn shown_ts(ts: Option<Ts>) -> String {
    ts.map(Ts::to_rfc3339).unwrap_or_else(|| "none".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    /// A snapshot of personality `x` whose chat history holds `messages`,
    /// and a manifest entry that agrees with it on the count and range.
    fn snapshot(messages: &[&str], first: &str, last: &str) -> (Vec<u8>, SnapshotEntry) {
        let history = format!(
            "{{\"shape_id\": \"\", \"shape_name\": \"x\", \"message_count\": {}, \
             \"date_range\": {{\"earliest\": \"{first}\", \"latest\": \"{last}\"}}, \
             \"export_date\": \"2026-01-01T00:00:00.000Z\", \"messages\": [{}]}}",
            messages.len(),
            messages.join(",")
        );
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, body) in [("x.json", "{}"), ("x_chat_history.json", history.as_str())] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o600);
            tar.append_data(&mut header, name, body.as_bytes()).unwrap();
        }
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        let entry = SnapshotEntry {
            file: "x-20260101T000000Z.tar.gz".into(),
            time: chrono::DateTime::UNIX_EPOCH,
            size: bytes.len() as u64,
            sha256: hex(&Sha256::digest(&bytes)),
            message_count: messages.len() as u64,
            first_message: Some(first.into()),
            last_message: Some(last.into()),
            content_digest: String::new(),
            encrypted: false,
            members: vec!["x.json".into(), "x_chat_history.json".into()],
        };
        (bytes, entry)
    }

    fn problems(bytes: &[u8], entry: &SnapshotEntry, depth: Depth) -> Vec<String> {
        check_file(bytes, "x", entry, None, depth).problems
    }

    #[test]
    fn a_sound_history_passes() {
        let (bytes, entry) = snapshot(
            &[
                r#"{"id":"a","ts":1}"#,
                r#"{"id":7,"ts":1,"x":[1]}"#,
                r#"{"id":"b","ts":2.5}"#,
            ],
            "1970-01-01T00:00:01.000Z",
            "1970-01-01T00:00:02.500Z",
        );
        assert_eq!(problems(&bytes, &entry, Depth::Full), Vec::<String>::new());
    }

    #[test]
    fn duplicate_ids_and_disorder_are_found() {
        let (bytes, entry) = snapshot(
            &[
                r#"{"id":"a","ts":1}"#,
                r#"{"id":"b","ts":3}"#,
                r#"{"id":"a","ts":2}"#,
                r#"{"ts":4}"#,
            ],
            "1970-01-01T00:00:01.000Z",
            "1970-01-01T00:00:02.000Z",
        );
        let found = problems(&bytes, &entry, Depth::Full);
        assert_eq!(
            found,
            [
                "x_chat_history.json: messages are not oldest first: message 3 has ts 2, after 3 in \
                 message 2; 1 such place",
                "x_chat_history.json: 1 message without a usable id or ts: message 4 has no usable id",
                "x_chat_history.json: 1 id appears more than once (messages 1, 3)",
            ]
        );
        // The constant-memory check leaves ids out.
        assert_eq!(problems(&bytes, &entry, Depth::Stream).len(), 2);
    }

    #[test]
    fn a_range_or_member_list_that_disagrees_is_named() {
        let (bytes, mut entry) = snapshot(
            &[r#"{"id":"a","ts":1}"#],
            "1970-01-01T00:00:01.000Z",
            "1970-01-01T00:00:01.000Z",
        );
        entry.last_message = Some("1970-01-01T00:00:09.000Z".into());
        entry.members.insert(1, "x_memories.json".into());
        assert_eq!(
            problems(&bytes, &entry, Depth::Full),
            [
                "x_chat_history.json: the newest message is from 1970-01-01T00:00:01.000Z, the \
                 manifest says 1970-01-01T00:00:09.000Z",
                "x_memories.json is missing, though the manifest lists it",
            ]
        );
    }
}
