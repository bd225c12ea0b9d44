//! `chatkeep import`: adopting a backup made by the earlier export script
//! (per personality `<name>.json`, `<name>_memories.json`,
//! `<name>_knowledge.json`, `<name>_training.json`,
//! `<name>_user_personalization.json` and `<name>_chat_history.json` in
//! the export format of DESIGN.md), so that a million messages need not be
//! fetched again and what the service no longer has is kept.
//!
//! The chat history is read as a stream: a parser thread hands messages one
//! at a time through a bounded channel, and they are merged with the stored
//! history by `ts`, one tie group at a time (as the audit merges its walk),
//! so memory does not grow with either. What the store lacks goes in
//! through one commit, as a sync's would; nothing is written before the
//! whole file has been read and found sound, so a broken file changes
//! nothing. A message the store already holds is left as stored: the
//! store's copy came from the service, the file's from a script known to
//! corrupt text.
//!
//! The earlier script concatenated response chunks as strings (multi-byte
//! UTF-8 split across chunks became U+FFFD) and lost or doubled messages
//! that shared a `ts`. So imported messages are counted, the corrupted and
//! the doubled reported, and the state notes that an import is
//! unverified: the next sync then audits the history, which puts the
//! service's copy of each message in place of a differing imported one (the
//! imported one kept as an earlier version), stores the tie members the
//! script lost, and marks imported messages the service no longer has
//! (kept).

use std::io::{self, BufReader, Read};
use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::message::{Message, MessageId, Ts};
use crate::store::{ChatStore, ChatStoreError, PersonalityDir, fsio};

/// The longest message accepted (a hostile file's "message" of gigabytes
/// is refused before it is held).
pub(crate) const MAX_MESSAGE_BYTES: u64 = 16 << 20;
/// The largest document accepted (profile, memories, ...).
const MAX_DOCUMENT_BYTES: u64 = 256 << 20;
/// Messages parsed ahead of the merge.
const CHANNEL: usize = 1024;

/// The documents of the earlier layout, by the suffix their file names and
/// the store's share.
pub const DOCUMENT_SUFFIXES: [&str; 5] = [
    "",
    "_memories",
    "_knowledge",
    "_training",
    "_user_personalization",
];

/// Why an import was refused or failed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not what the earlier script wrote, or is hostile.
    #[error("{}: {reason}; nothing was imported", path.display())]
    Refused { path: PathBuf, reason: String },
    #[error("{}: {}; nothing was imported", path.display(), fsio::explain(source))]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Chat(#[from] ChatStoreError),
    #[error(transparent)]
    Backup(#[from] crate::store::StoreError),
}

/// The files an import takes, found under the path given.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub chat: Option<PathBuf>,
    /// `(suffix, path)`.
    pub documents: Vec<(&'static str, PathBuf)>,
}

impl Sources {
    /// The earlier layout's files for `name` in `path` (a directory: the
    /// personality's own, or the one above it holding `<name>/`), or `path`
    /// itself as the chat history.
    pub fn find(name: &str, path: &Path) -> Result<Sources, ImportError> {
        let meta = std::fs::metadata(path).map_err(|source| ImportError::Io {
            path: path.to_owned(),
            source,
        })?;
        if meta.is_file() {
            return Ok(Sources {
                chat: Some(path.to_owned()),
                documents: Vec::new(),
            });
        }
        let dirs = [path.to_owned(), path.join(name)];
        for dir in &dirs {
            let mut found = Sources::default();
            let chat = dir.join(format!("{name}_chat_history.json"));
            if chat.is_file() {
                found.chat = Some(chat);
            }
            for suffix in DOCUMENT_SUFFIXES {
                let doc = dir.join(format!("{name}{suffix}.json"));
                if doc.is_file() {
                    found.documents.push((suffix, doc));
                }
            }
            if found.chat.is_some() || !found.documents.is_empty() {
                return Ok(found);
            }
        }
        Err(ImportError::Refused {
            path: path.to_owned(),
            reason: format!(
                "no backup of `{name}` here: looked for {name}_chat_history.json, {name}.json, \
                 {name}_memories.json, ... in it and in {name}/ below it"
            ),
        })
    }
}

/// What an import of a chat history found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChatImport {
    /// Messages in the file.
    pub read: u64,
    /// Stored by the import: the backup lacked them.
    pub added: u64,
    /// Already in the backup (left as stored).
    pub already: u64,
    /// In the file twice or more (same `ts` and id): taken once.
    pub doubled: u64,
    /// Holding U+FFFD, the mark of text the earlier script split inside a
    /// character. Of those added, the next sync puts the service's copy in
    /// place where it still has the message.
    pub corrupted: u64,
    /// The file's `shape_id`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape_id: Option<String>,
}

/// The file of a personality's directory that lists its imports.
pub const IMPORTS_FILE: &str = "imports.jsonl";

/// Appends `record` (one import) to the personality's `imports.jsonl`,
/// durably.
pub fn record(dir: &PersonalityDir, record: &serde_json::Value) -> io::Result<()> {
    let path = dir.path().join(IMPORTS_FILE);
    let io_err = |source: io::Error| {
        io::Error::new(
            source.kind(),
            format!("{}: {}", path.display(), fsio::explain(&source)),
        )
    };
    let mut line = serde_json::to_vec(record).map_err(|e| io_err(io::Error::other(e)))?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode_private()
        .open(&path)
        .map_err(io_err)?;
    io::Write::write_all(&mut file, &line).map_err(io_err)?;
    file.sync_data().map_err(io_err)?;
    fsio::sync_dir(dir.path()).map_err(io_err)
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// What became of each document file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentImport {
    /// Stored: the backup had none.
    Stored,
    /// The backup has its own (from the service): left as it is.
    Kept,
}

/// Document files read and found to be JSON, ready to store.
#[derive(Debug)]
pub struct CheckedDocuments(Vec<(&'static str, Vec<u8>)>);

/// Reads the documents of `sources`: each must be JSON (any shape: the
/// service's documents are kept as they came), all before any is stored.
pub fn check_documents(sources: &Sources) -> Result<CheckedDocuments, ImportError> {
    let mut checked = Vec::new();
    for (suffix, path) in &sources.documents {
        let refused = |reason: String| ImportError::Refused {
            path: path.clone(),
            reason,
        };
        let io_err = |source| ImportError::Io {
            path: path.clone(),
            source,
        };
        let file = fsio::open_read(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len > MAX_DOCUMENT_BYTES {
            return Err(refused(format!(
                "{len} bytes, more than any document of the service ({} MiB)",
                MAX_DOCUMENT_BYTES >> 20
            )));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        serde_json::from_slice::<IgnoredAny>(&bytes).map_err(|e| refused(format!("not JSON: {e}")))?;
        checked.push((*suffix, bytes));
    }
    Ok(CheckedDocuments(checked))
}

/// Adopts the checked documents the backup lacks.
pub fn store_documents(
    dir: &PersonalityDir,
    checked: CheckedDocuments,
) -> Result<Vec<(String, DocumentImport)>, ImportError> {
    let mut done = Vec::new();
    for (suffix, bytes) in checked.0 {
        let target = dir.document_path(suffix);
        let name = format!("{}{suffix}.json", dir.name());
        if dir.read_document(&target)?.is_some() {
            done.push((name, DocumentImport::Kept));
            continue;
        }
        dir.save_versioned(&target, &bytes)?;
        done.push((name, DocumentImport::Stored));
    }
    Ok(done)
}

/// Merges the chat history in `path` (the export format, oldest message
/// first) into `chat`, through one commit.
pub fn import_chat(chat: &mut ChatStore, path: &Path) -> Result<ChatImport, ImportError> {
    let file = fsio::open_read(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    let refused = |reason: String| ImportError::Refused {
        path: path.to_owned(),
        reason,
    };
    let (sender, receiver) = mpsc::sync_channel(CHANNEL);
    let parser = std::thread::spawn(move || {
        parse_export(
            BufReader::with_capacity(1 << 16, file),
            &sender,
            MAX_MESSAGE_BYTES,
        )
    });
    let mut messages = Incoming { receiver, last: None }.peekable();
    let merged = merge(chat, &mut messages);
    // Dropping the channel ends a parser still reading (a refusal mid-way).
    drop(messages);
    let parsed = parser
        .join()
        .unwrap_or_else(|_| Err("the parser thread panicked".to_owned()));
    match (merged, parsed) {
        (Ok((report, commit)), Ok(header)) => {
            let mut report = report;
            if let (Some(stored), Some(id)) = (chat.state().personality_id.clone(), header.shape_id.as_ref())
                && &stored != id
            {
                return Err(refused(format!(
                    "it is the history of personality {id}, the backup holds {stored}'s"
                )));
            }
            report.shape_id = header.shape_id.clone();
            commit.finish(chat, header.shape_id)?;
            Ok(report)
        }
        (Err(MergeError::Store(e)), _) => Err(e.into()),
        (Ok((_, pending)), Err(reason)) => {
            pending.discard();
            Err(refused(reason))
        }
        (Err(MergeError::File(reason)), _) => Err(refused(reason)),
    }
}

/// The top-level fields of the export besides its messages.
#[derive(Debug, Default)]
pub(crate) struct Header {
    pub(crate) shape_id: Option<String>,
}

/// Parses the export in `reader`, sending each message as it comes; the
/// header when done. A message longer than `max_message` bytes is refused.
pub(crate) fn parse_export(
    reader: impl Read,
    out: &mpsc::SyncSender<Result<Message, String>>,
    max_message: u64,
) -> Result<Header, String> {
    let limited = Limited {
        inner: reader,
        since_mark: 0,
        max: max_message,
    };
    let mut de = serde_json::Deserializer::from_reader(limited);
    let visitor = ExportVisitor { out };
    let header = serde::Deserializer::deserialize_map(&mut de, visitor).map_err(|e| describe_json(&e))?;
    de.end().map_err(|e| describe_json(&e))?;
    Ok(header)
}

fn describe_json(e: &serde_json::Error) -> String {
    if e.is_eof() {
        return format!("the file ends before its JSON does (truncated?): {e}");
    }
    if let Some(io) = e.io_error_kind()
        && io == io::ErrorKind::InvalidData
    {
        return e.to_string();
    }
    format!("not the earlier script's export format: {e}")
}

/// A reader that refuses to hand more than `max` bytes between two marks:
/// the parser marks after each message, so one message (or one header
/// field) larger than that is refused before it is held.
struct Limited<R> {
    inner: R,
    since_mark: u64,
    max: u64,
}

thread_local! {
    static MARK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if MARK.with(|m| m.replace(false)) {
            self.since_mark = 0;
        }
        if self.since_mark > self.max {
            let limit = if self.max >= 1 << 20 {
                format!("{} MiB", self.max >> 20)
            } else {
                format!("{} bytes", self.max)
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a message (or field) longer than {limit}: not one the service gives"),
            ));
        }
        let n = self.inner.read(buf)?;
        self.since_mark += n as u64;
        Ok(n)
    }
}

struct ExportVisitor<'a> {
    out: &'a mpsc::SyncSender<Result<Message, String>>,
}

impl<'de> Visitor<'de> for ExportVisitor<'_> {
    type Value = Header;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with `messages`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        let mut messages = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "messages" => {
                    map.next_value_seed(MessagesSeed { out: self.out })?;
                    messages = true;
                }
                "shape_id" => {
                    let id: Option<serde_json::Value> = map.next_value()?;
                    header.shape_id = match id {
                        Some(serde_json::Value::String(s)) => Some(s),
                        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    };
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            MARK.with(|m| m.set(true));
        }
        if !messages {
            return Err(serde::de::Error::missing_field("messages"));
        }
        Ok(header)
    }
}

struct MessagesSeed<'a> {
    out: &'a mpsc::SyncSender<Result<Message, String>>,
}

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            MARK.with(|m| m.set(true));
            let message = Message::from_raw(&raw, index).map_err(|e| e.to_string());
            let failed = message.is_err();
            if self.out.send(message).is_err() || failed {
                // The merge stopped (or will, at this error): read no more.
                return Err(serde::de::Error::custom("import stopped"));
            }
            index += 1;
        }
        Ok(())
    }
}

/// The parser's messages, checked to come oldest first.
struct Incoming {
    receiver: mpsc::Receiver<Result<Message, String>>,
    last: Option<Ts>,
}

impl Iterator for Incoming {
    type Item = Result<Message, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.receiver.recv().ok()?;
        Some(next.and_then(|m| {
            if self.last.is_some_and(|last| m.ts < last) {
                return Err(format!(
                    "the messages are not oldest first (one of {} comes after one of {}); the earlier \
                     script wrote them in order",
                    m.ts.to_rfc3339(),
                    self.last.map_or_else(String::new, |t| t.to_rfc3339())
                ));
            }
            self.last = Some(m.ts);
            Ok(m)
        }))
    }
}

enum MergeError {
    File(String),
    Store(ChatStoreError),
}

impl From<ChatStoreError> for MergeError {
    fn from(e: ChatStoreError) -> MergeError {
        MergeError::Store(e)
    }
}

/// The messages to add, gathered during the merge and written by one
/// commit once the whole file was read.
struct Pending {
    /// A spool of what to add, oldest first (`import.spool` in the chat
    /// directory): memory does not grow with it. Removed when done; one a
    /// kill left is replaced by the next import.
    path: PathBuf,
    writer: Option<io::BufWriter<std::fs::File>>,
    count: u64,
}

/// The spool's name in the personality's directory.
const SPOOL: &str = "import.spool";

impl Drop for Pending {
    fn drop(&mut self) {
        self.writer = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Pending {
    fn discard(self) {}

    fn finish(mut self, chat: &mut ChatStore, shape_id: Option<String>) -> Result<(), ChatStoreError> {
        self.commit(chat, shape_id)
    }

    fn commit(&mut self, chat: &mut ChatStore, shape_id: Option<String>) -> Result<(), ChatStoreError> {
        let io_err = |e| ChatStoreError::Io {
            path: self.path.clone(),
            source: e,
        };
        if let Some(mut writer) = self.writer.take() {
            io::Write::flush(&mut writer).map_err(io_err)?;
        }
        if self.count == 0 && (shape_id.is_none() || chat.state().personality_id.is_some()) {
            return Ok(());
        }
        let reader = BufReader::new(fsio::open_read(&self.path).map_err(io_err)?);
        let mut commit = chat.begin()?;
        for line in io::BufRead::lines(reader) {
            let line = line.map_err(io_err)?;
            let m = Message::from_stored_line(&line).map_err(|e| io_err(io::Error::other(e.to_string())))?;
            commit.place(&m)?;
        }
        let state = commit.state_mut();
        if state.personality_id.is_none() {
            state.personality_id = shape_id;
        }
        if self.count > 0 {
            state.imported_unverified = true;
        }
        commit.finish(None)?;
        Ok(())
    }
}

/// Reads the file's messages beside the stored history, oldest first, and
/// lists what the store lacks.
fn merge(chat: &ChatStore, incoming: &mut Peekable<Incoming>) -> Result<(ChatImport, Pending), MergeError> {
    let spool_err = |e: io::Error| {
        MergeError::Store(ChatStoreError::Io {
            path: chat.dir().to_owned(),
            source: e,
        })
    };
    let path = chat.dir().join(SPOOL);
    let _ = std::fs::remove_file(&path);
    let writer = io::BufWriter::with_capacity(1 << 16, fsio::create_new_private(&path).map_err(spool_err)?);
    let mut pending = Pending {
        path,
        writer: Some(writer),
        count: 0,
    };
    let mut report = ChatImport::default();
    let mut stored = chat.history_with_keys()?.peekable();
    while let Some(first) = incoming.next() {
        let first = first.map_err(MergeError::File)?;
        let ts = first.ts;
        let mut group = vec![first];
        while let Some(next) = incoming.next_if(|m| m.as_ref().is_ok_and(|m| m.ts == ts) || m.is_err()) {
            group.push(next.map_err(MergeError::File)?);
        }
        // The stored messages up to this `ts`: those below it were not in
        // the file (nothing to do), those at it are the ids to compare.
        let mut here: Vec<MessageId> = Vec::new();
        while let Some(entry) = stored.next_if(|e| match e {
            Ok(e) => e.key.as_ref().is_none_or(|k| k.position <= ts),
            Err(_) => true,
        }) {
            let entry = entry.map_err(|e| MergeError::Store(ChatStoreError::Read(e)))?;
            if let Some(key) = entry.key
                && key.position == ts
            {
                here.push(key.id);
            }
        }
        let mut seen: Vec<MessageId> = Vec::new();
        for m in group {
            report.read += 1;
            if seen.contains(&m.id) {
                report.doubled += 1;
                continue;
            }
            seen.push(m.id.clone());
            let corrupted = m.raw.contains('\u{FFFD}') || m.raw.to_ascii_lowercase().contains("\\ufffd");
            if here.contains(&m.id) {
                report.already += 1;
                continue;
            }
            if corrupted {
                report.corrupted += 1;
            }
            report.added += 1;
            pending.count += 1;
            let writer = pending.writer.as_mut().expect("open until finish");
            io::Write::write_all(writer, m.raw.as_bytes()).map_err(spool_err)?;
            io::Write::write_all(writer, b"\n").map_err(spool_err)?;
        }
    }
    Ok((report, pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Result<Message, String>>, Result<Header, String>) {
        let (sender, receiver) = mpsc::sync_channel(CHANNEL);
        let header = parse_export(text.as_bytes(), &sender, MAX_MESSAGE_BYTES);
        drop(sender);
        (receiver.into_iter().collect(), header)
    }

    #[test]
    fn a_pretty_printed_export_gives_its_messages_minified_and_its_shape_id() {
        let text = "{\n  \"shape_id\": \"p-1\",\n  \"shape_name\": \"aria\",\n  \"messages\": [\n    {\n      \"id\": \"a\",\n      \"ts\": 1712345678.10,\n      \"message\": \"hi  there\"\n    },\n    {\"id\": 2, \"ts\": 1712345679}\n  ],\n  \"export_date\": \"x\"\n}";
        let (messages, header) = parse(text);
        assert_eq!(header.unwrap().shape_id.as_deref(), Some("p-1"));
        let messages: Vec<Message> = messages.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            messages[0].raw,
            r#"{"id":"a","ts":1712345678.10,"message":"hi  there"}"#
        );
        assert_eq!(messages[1].id.as_str(), "2");
    }

    #[test]
    fn broken_or_hostile_exports_are_refused() {
        for (text, expect) in [
            (r#"{"messages": [{"id": "a", "ts": 1}"#, "truncated"),
            (r#"{"messages": [{"id": "a"}]}"#, "`ts`"),
            (r#"{"messages": [{"id": [1], "ts": 1}]}"#, "`id`"),
            (r#"{"messages": {"id": "a"}}"#, "array"),
            (r#"{"shape_id": "x"}"#, "messages"),
            (r#"[1, 2]"#, "export format"),
        ] {
            let (messages, header) = parse(text);
            let error = messages
                .into_iter()
                .find_map(Result::err)
                .or(header.err())
                .unwrap_or_else(|| panic!("{text} was taken"));
            assert!(error.contains(expect), "{text}: {error}");
        }
    }

    #[test]
    fn a_message_larger_than_the_limit_is_refused_before_it_is_held() {
        // A small limit here (the test binary's memory is measured by
        // other tests); tests/import.rs refuses a 17 MiB message for real.
        let huge = "x".repeat(64 << 10);
        let text = format!(
            r#"{{"messages": [{{"id": "a", "ts": 1}}, {{"id": "b", "ts": 2, "message": "{huge}"}}]}}"#
        );
        let (sender, receiver) = mpsc::sync_channel(CHANNEL);
        let error = parse_export(text.as_bytes(), &sender, 16 << 10).unwrap_err();
        drop(sender);
        assert_eq!(receiver.into_iter().count(), 1, "the first message came through");
        assert!(error.contains("longer than 16384 bytes"), "{error}");
    }
}
