//! Writing one snapshot: a tar of the personality's documents and its chat
//! history in the export format, gzipped, optionally encrypted with age,
//! streamed into a temporary file that is checked, fsynced and renamed.
//!
//! The pipeline is `tar → gzip → [age] → SHA-256 → file`; nothing in it
//! holds more than a buffer, so a million messages cost no more memory
//! than ten.
//!
//! A tar header states its member's size before the data, and the export
//! is produced on the fly. Its size is therefore found by a first, counting
//! export (decompressing the log costs a fraction of compressing it, and
//! needs no temporary copy on disk); the second export streams into the
//! tar entry through a pipe, from a thread, and must come to exactly the
//! counted size, or the snapshot is abandoned. Both read the same committed
//! state, so they agree unless the store is changed behind chatkeep's back.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use age::x25519::Recipient;
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::manifest::{SnapshotEntry, file_name};
use super::{ArchiveError, verify};
use crate::export::{self, ExportError, ExportMeta, Format};
use crate::media::Catalog;
use crate::store::{ChatStore, PersonalityDir, fsio};

/// The documents a snapshot holds, in the order they are stored.
pub use crate::store::documents::DOCUMENTS;

/// Name of the chat history member: the export file earlier tools wrote.
pub fn chat_member(name: &str) -> String {
    format!("{name}_chat_history.json")
}

/// Name of the member holding the earlier versions of messages that
/// changed upstream (JSON Lines), present when there are any.
pub fn revisions_member(name: &str) -> String {
    format!("{name}_chat_revisions.jsonl")
}

/// Name of the member saying what each URL the personality points to
/// became (JSON Lines), present when it points to any.
pub fn media_map_member(name: &str) -> String {
    format!("{name}_media.jsonl")
}

/// The directory of the media members: `media/<sha256>.<ext>`, as the
/// store names its files.
pub const MEDIA_MEMBER_DIR: &str = "media";

/// Every member name a snapshot of `name` may hold, but the media files
/// (see [`media_member_hash`]).
pub fn known_members(name: &str) -> Vec<String> {
    let mut known: Vec<String> = DOCUMENTS
        .iter()
        .map(|suffix| format!("{name}{suffix}.json"))
        .collect();
    known.push(chat_member(name));
    known.push(revisions_member(name));
    known.push(media_map_member(name));
    known
}

/// The hash a media member's name says its bytes have, when `raw` is
/// exactly `media/<64 lower-case hex>.<an extension the store gives>`;
/// `None` for any other name. Nothing else under `media/` is ever a
/// member, so such a name is also safe to join to a directory.
pub fn media_member_hash(raw: &str) -> Option<&str> {
    let file = raw.strip_prefix(MEDIA_MEMBER_DIR)?.strip_prefix('/')?;
    let (hash, ext) = file.split_once('.')?;
    let hex = hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (hex && crate::media::fetch::is_stored_extension(ext)).then_some(hash)
}

/// Version of what goes into a snapshot; part of the content digest, so a
/// new layout makes a new snapshot even of unchanged content. Layout 2
/// added the revisions member and deletion marks in the chat history;
/// layout 3 the media files and the URL map.
const LAYOUT: &str = "chatkeep snapshot 3";

/// What one snapshot is made of, opened once: the digest and the archive
/// read the same open files and the same committed chat state, even while a
/// sync replaces documents (by rename) or appends to the log (past the
/// committed length).
pub struct Inputs {
    name: String,
    /// The personality's directory in the store.
    dir: PathBuf,
    /// Member name and open file of each document that exists.
    documents: Vec<(String, File)>,
    chat: ChatStore,
    /// The media the personality points to, when snapshots carry them
    /// and it points to any; and the URL map member's bytes.
    media: Option<Catalog>,
}

impl Inputs {
    /// The inputs of the personality in `dir`, with the media of
    /// `media_from` (the data directory) when given.
    pub fn open(dir: &PersonalityDir, media_from: Option<&Path>) -> Result<Inputs, ArchiveError> {
        let mut documents = Vec::new();
        for suffix in DOCUMENTS {
            match dir.open_document(suffix) {
                Ok(Some(file)) => documents.push((format!("{}{suffix}.json", dir.name()), file)),
                Ok(None) => {}
                Err(source) => {
                    return Err(ArchiveError::Io {
                        path: dir.document_path(suffix),
                        source,
                    });
                }
            }
        }
        let chat = ChatStore::open_read_only(dir.path())?;
        let media = match media_from {
            Some(data_dir) => {
                let catalog = Catalog::read(data_dir, dir.path()).map_err(|source| ArchiveError::Io {
                    path: data_dir.join(crate::media::store::MEDIA_DIR),
                    source,
                })?;
                (!catalog.is_empty()).then_some(catalog)
            }
            None => None,
        };
        Ok(Inputs {
            name: dir.name().to_owned(),
            dir: dir.path().to_owned(),
            documents,
            chat,
            media,
        })
    }

    /// The members a snapshot of these inputs holds, in order.
    pub fn members(&self) -> Result<Vec<String>, ArchiveError> {
        let mut members: Vec<String> = self.documents.iter().map(|(m, _)| m.clone()).collect();
        members.push(chat_member(&self.name));
        if self.chat.state().revised() > 0 {
            members.push(revisions_member(&self.name));
        }
        if let Some(catalog) = &self.media {
            members.push(media_map_member(&self.name));
            catalog
                .for_each_file(|_, file, _| -> io::Result<()> {
                    members.push(format!("{MEDIA_MEMBER_DIR}/{file}"));
                    Ok(())
                })
                .map_err(|source| self.media_error(source))?;
        }
        Ok(members)
    }

    fn media_error(&self, source: io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: self
                .media
                .as_ref()
                .map_or_else(PathBuf::new, |c| c.path_of(crate::media::store::INDEX_FILE)),
            source,
        }
    }

    pub fn message_count(&self) -> u64 {
        self.chat.state().message_count
    }

    /// SHA-256 over the layout version, each document's bytes, the
    /// committed chat state that identifies the history (count, oldest,
    /// newest `ts` and the ids there, personality id), the URL map (which
    /// names every media file by its hash, so a new file, or one
    /// fetched at last, makes a new snapshot) and the recipients.
    /// The log's byte length is left out: it is a storage detail, not
    /// content.
    pub fn digest(&mut self, recipients: &[Recipient]) -> Result<String, ArchiveError> {
        let mut hasher = Sha256::new();
        hasher.update(LAYOUT.as_bytes());
        for (member, file) in &mut self.documents {
            let mut doc = Sha256::new();
            let io_err = |source| ArchiveError::Io {
                path: self.dir.join(&*member),
                source,
            };
            let len = io::copy(file, &mut HashWriter(&mut doc)).map_err(io_err)?;
            file.rewind().map_err(io_err)?;
            hasher.update(format!("\n{member} {len} {}", hex(&doc.finalize())).as_bytes());
        }
        let state = self.chat.state();
        let mut head_ids: Vec<&str> = state
            .head
            .iter()
            .flat_map(|h| h.ids.iter().map(|id| id.as_str()))
            .collect();
        head_ids.sort_unstable();
        // The overlay file is replaced by every commit that changes a
        // message, and its name counts up: it stands for those changes.
        let chat = serde_json::json!({
            "personality_id": state.personality_id,
            "message_count": state.message_count,
            "oldest": state.oldest.map(|t| t.to_string()),
            "head": state.head.as_ref().map(|h| h.ts.to_string()),
            "head_ids": head_ids,
            "overlay": state.overlay.as_ref().map(|o| (&o.file, o.len)),
        });
        hasher.update(format!("\nchat {chat}").as_bytes());
        if let Some(catalog) = &self.media {
            let mut lines = Sha256::new();
            catalog
                .write_mapping(&mut HashWriter(&mut lines))
                .map_err(|source| self.media_error(source))?;
            hasher.update(format!("\nmedia {}", hex(&lines.finalize())).as_bytes());
        }
        let mut keys: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
        keys.sort_unstable();
        hasher.update(format!("\nrecipients {}", keys.join(",")).as_bytes());
        Ok(hex(&hasher.finalize()))
    }
}

/// A snapshot written and checked, ready to be listed in the manifest.
pub struct Written {
    pub entry: SnapshotEntry,
    /// Bytes put into the tar (documents and export), before compression.
    pub payload_bytes: u64,
}

/// Writes the snapshot of `inputs` taken at `time` into `dir`: a temporary
/// file, checked by reading it back (all of it when unencrypted, its
/// SHA-256 when encrypted), fsynced, renamed, the directory fsynced. On any
/// failure the temporary file is removed and nothing else changes.
pub fn write(
    dir: &Path,
    inputs: &mut Inputs,
    time: DateTime<Utc>,
    level: u32,
    recipients: &[Recipient],
    content_digest: String,
) -> Result<Written, ArchiveError> {
    let encrypted = !recipients.is_empty();
    let state = inputs.chat.state().clone();
    let mut entry = SnapshotEntry {
        file: file_name(&inputs.name, time, encrypted),
        time,
        size: 0,
        sha256: String::new(),
        message_count: state.message_count,
        first_message: state.oldest.map(|t| t.to_rfc3339()),
        last_message: state.newest().map(|t| t.to_rfc3339()),
        content_digest,
        encrypted,
        members: inputs.members()?,
        beginning_confirmed_at: state.beginning.as_ref().map(|b| b.confirmed_at),
        tail_probed_at: state.tail_probed_at,
    };
    let path = dir.join(&entry.file);
    let mut failure = None;
    let mut payload_bytes = 0;
    let result = fsio::write_atomic_with(&path, |file| {
        let mut fill = || -> Result<(), ArchiveError> {
            let started = std::time::Instant::now();
            let (size, sha256, payload) = stream(file, &path, inputs, time, level, recipients)?;
            entry.size = size;
            entry.sha256 = sha256;
            payload_bytes = payload;
            let written = started.elapsed();
            check_written(file, &inputs.name, &entry)?;
            tracing::debug!(
                file = %entry.file,
                write_seconds = written.as_secs_f64(),
                check_seconds = (started.elapsed() - written).as_secs_f64(),
                "snapshot streamed and read back"
            );
            Ok(())
        };
        fill().map_err(|e| {
            failure = Some(e);
            io::Error::other("the snapshot could not be written")
        })
    });
    match (result, failure) {
        (Ok(()), _) => Ok(Written { entry, payload_bytes }),
        (Err(_), Some(failure)) => Err(failure),
        (Err(source), None) => Err(ArchiveError::Io { path, source }),
    }
}

/// Streams the tar into `file`, the temporary file of `path`; returns its
/// size, its SHA-256 and the bytes of payload.
fn stream(
    file: &mut File,
    path: &Path,
    inputs: &mut Inputs,
    time: DateTime<Utc>,
    level: u32,
    recipients: &[Recipient],
) -> Result<(u64, String, u64), ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    };
    let hashing = Hashing::new(BufWriter::with_capacity(1 << 16, &mut *file));
    let sink = if recipients.is_empty() {
        Sink::Plain(hashing)
    } else {
        let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io_err(io::Error::other(e.to_string())))?;
        Sink::Age(encryptor.wrap_output(hashing).map_err(io_err)?)
    };
    let mut tar = tar::Builder::new(GzEncoder::new(sink, Compression::new(level)));
    let mut payload = 0;
    for (member, doc) in &mut inputs.documents {
        let size = doc
            .metadata()
            .map_err(|source| ArchiveError::Io {
                path: inputs.dir.join(&*member),
                source,
            })?
            .len();
        let mut exact = Exact::new(BufReader::with_capacity(1 << 16, &mut *doc), size);
        tar.append_data(&mut header(size, time), &*member, &mut exact)
            .map_err(io_err)?;
        if exact.has_more() {
            return Err(ArchiveError::Changed { what: member.clone() });
        }
        payload += size;
    }
    payload += append_chat(&mut tar, path, &inputs.chat, &inputs.name, time)?;
    if inputs.chat.state().revised() > 0 {
        let chat = &inputs.chat;
        let member = revisions_member(&inputs.name);
        payload += append_generated(&mut tar, path, &inputs.name, &member, time, |out| {
            export::write_earlier_versions(chat, &mut &mut *out).map(|_| ())
        })?;
    }
    if let Some(catalog) = &inputs.media {
        let member = media_map_member(&inputs.name);
        payload += append_generated(&mut tar, path, &inputs.name, &member, time, |out| {
            catalog.write_mapping(out).map_err(ExportError::Write)
        })?;
        catalog
            .for_each_file(|hash, file, _| -> Result<(), MediaStep> {
                payload += append_media(&mut tar, &catalog.path_of(file), hash.as_str(), file, time, path)
                    .map_err(MediaStep::Archive)?;
                Ok(())
            })
            .map_err(|e| match e {
                MediaStep::Index(source) => inputs.media_error(source),
                MediaStep::Archive(e) => e,
            })?;
    }
    let gz = tar.into_inner().map_err(io_err)?;
    let sink = gz.finish().map_err(io_err)?;
    let hashing = sink.finish().map_err(io_err)?;
    let (mut out, size, sha256) = hashing.into_parts();
    out.flush().map_err(io_err)?;
    Ok((size, sha256, payload))
}

/// What went wrong while the media index was walked: the index, or what
/// was done with a file it named.
enum MediaStep {
    Index(io::Error),
    Archive(ArchiveError),
}

impl From<io::Error> for MediaStep {
    fn from(e: io::Error) -> MediaStep {
        MediaStep::Index(e)
    }
}

/// Appends one media file of the store as `media/<file>`, streamed, and
/// checks that what went in hashes to its name; returns its size. A file
/// that does not is damaged in the store: the snapshot is abandoned
/// rather than carrying it under a name its bytes belie.
fn append_media<W: Write>(
    tar: &mut tar::Builder<W>,
    source: &Path,
    hash: &str,
    file: &str,
    time: DateTime<Utc>,
    path: &Path,
) -> Result<u64, ArchiveError> {
    let source_err = |source_err| ArchiveError::Io {
        path: source.to_owned(),
        source: source_err,
    };
    let mut opened = fsio::open_read(source).map_err(source_err)?;
    let size = opened.metadata().map_err(source_err)?.len();
    let mut hasher = Sha256::new();
    let mut exact = Exact::new(
        HashingRead {
            inner: BufReader::with_capacity(1 << 16, &mut opened),
            hasher: &mut hasher,
        },
        size,
    );
    let member = format!("{MEDIA_MEMBER_DIR}/{file}");
    tar.append_data(&mut header(size, time), &member, &mut exact)
        .map_err(|source| match source.kind() {
            io::ErrorKind::UnexpectedEof => ArchiveError::Changed { what: member.clone() },
            _ => ArchiveError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
    if exact.has_more() {
        return Err(ArchiveError::Changed { what: member });
    }
    drop(exact);
    let found = hex(&hasher.finalize());
    if found != hash {
        return Err(ArchiveError::Damaged {
            file: source.display().to_string(),
            reason: format!(
                "its content has SHA-256 {found}, not the {hash} its name says; the snapshot was \
                 not kept; run `chatkeep verify` to list every damaged media file"
            ),
        });
    }
    Ok(size)
}

/// Hashes what is read through it.
struct HashingRead<'a, R> {
    inner: R,
    hasher: &'a mut Sha256,
}

impl<R: Read> Read for HashingRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Appends the chat history in the export format; returns its size.
fn append_chat<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    chat: &ChatStore,
    name: &str,
    time: DateTime<Utc>,
) -> Result<u64, ArchiveError> {
    let shape_id = chat.state().personality_id.clone().unwrap_or_default();
    let meta = ExportMeta {
        shape_id: &shape_id,
        shape_name: name,
        display_name: None,
    };
    let member = chat_member(name);
    append_generated(tar, path, name, &member, time, |out| {
        export::write(chat, &meta, Format::Json, &mut &mut *out).map(|_| ())
    })
}

/// Appends member `member`, whose bytes `produce` writes (twice: once to
/// count them for the tar header, once into the tar through a pipe; both
/// read the same committed state); returns its size.
fn append_generated<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    member: &str,
    time: DateTime<Utc>,
    produce: impl Fn(&mut dyn Write) -> Result<(), ExportError> + Sync,
) -> Result<u64, ArchiveError> {
    let member = member.to_owned();
    let export_err = |source| ArchiveError::Export {
        name: name.to_owned(),
        source,
    };
    let started = std::time::Instant::now();
    let mut counted = Counting(0);
    produce(&mut counted).map_err(export_err)?;
    let size = counted.0;
    tracing::debug!(
        member,
        bytes = size,
        seconds = started.elapsed().as_secs_f64(),
        "member measured"
    );
    let (reader, writer) = io::pipe().map_err(|source| ArchiveError::Io {
        path: "a pipe".into(),
        source,
    })?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let mut out = BufWriter::with_capacity(1 << 16, writer);
            produce(&mut out).and_then(|()| out.flush().map_err(ExportError::Write))
        });
        let mut exact = Exact::new(reader, size);
        let appended = tar.append_data(&mut header(size, time), &member, &mut exact);
        let longer = appended.is_ok() && exact.has_more();
        // Closing the pipe ends a producer still writing (broken pipe).
        drop(exact);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(ExportError::Write(io::Error::other("the export thread panicked"))));
        if let Err(e) = produced {
            // A broken pipe means the tar side stopped first; its error is the cause.
            let broken_pipe = matches!(&e, ExportError::Write(io) if io.kind() == io::ErrorKind::BrokenPipe);
            if !(broken_pipe && appended.is_err()) {
                return Err(export_err(e));
            }
        }
        match appended {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ArchiveError::Changed { what: member }),
            Err(source) => Err(ArchiveError::Io {
                path: path.to_owned(),
                source,
            }),
            Ok(()) if longer => Err(ArchiveError::Changed { what: member }),
            Ok(()) => Ok(size),
        }
    })
}

/// Reads the finished temporary file back: all of it when unencrypted
/// (SHA-256, gzip, tar, every member parsed, counts and order), only its
/// SHA-256 when encrypted (the key to read it is not here).
fn check_written(file: &mut File, name: &str, entry: &SnapshotEntry) -> Result<(), ArchiveError> {
    file.rewind().map_err(|source| ArchiveError::Io {
        path: entry.file.clone().into(),
        source,
    })?;
    let check = verify::check_file(&*file, name, entry, None, verify::Depth::Stream);
    if check.problems.is_empty() {
        Ok(())
    } else {
        Err(ArchiveError::Unverified {
            file: entry.file.clone(),
            problems: check.problems,
        })
    }
}

/// The header of a member: a regular file, 0600, dated at the snapshot.
fn header(size: u64, time: DateTime<Utc>) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(u64::try_from(time.timestamp()).unwrap_or(0));
    header
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The end of the pipeline: plain, or through age.
enum Sink<W: Write> {
    Plain(Hashing<W>),
    Age(age::stream::StreamWriter<Hashing<W>>),
}

impl<W: Write> Sink<W> {
    /// Writes what age still holds (its last chunk and tag).
    fn finish(self) -> io::Result<Hashing<W>> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Age(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

/// Counts and hashes what passes through: the file's size and SHA-256,
/// known the moment it is written.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn into_parts(self) -> (W, u64, String) {
        (self.inner, self.len, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Feeds a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts bytes and drops them.
struct Counting(u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Yields exactly `left` bytes of `inner`: a source that ends sooner is an
/// `UnexpectedEof` error, and [`Exact::has_more`] tells one that goes on.
/// tar copies whatever its reader yields, whatever the header says, so
/// this is what keeps a header's size true.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, size: u64) -> Self {
        Exact { inner, left: size }
    }

    /// True if the source has bytes beyond the size.
    fn has_more(&mut self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match self.inner.read(&mut byte) {
                Ok(n) => return n > 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the source ended {} bytes early", self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
