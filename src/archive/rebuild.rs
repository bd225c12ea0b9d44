//! `restore NAME --rebuild`: a personality's store made again from a
//! snapshot, for when the data directory is lost. Without it a lost disk
//! means fetching everything from the service again (hours per million
//! messages), and whatever the service no longer has is gone.
//!
//! The snapshot holds each message's current version (marked where it is
//! gone upstream, or placed by an earlier `ts`), every earlier version in a
//! member of its own, the documents, and the media with the map of what
//! each URL became. That is the whole history: the chat log gets each
//! message's first version in its place, the overlay the later versions and
//! the deletion marks, as the lost store had them. What the snapshot does
//! not hold (earlier versions of documents, retry times of failed media,
//! what the service was learnt to honour) is learnt again by syncing.
//!
//! Crash-safe: everything is built in `<data_dir>/.rebuild/<name>`, checked
//! against the manifest's message count, and only then renamed into place;
//! a store it replaces (`--force`) is first renamed aside, and removed once
//! the new one is in place. A kill at any point leaves the old store or
//! the new one, never a mix; the next rebuild puts an old store left aside
//! back before it starts. Memory does not grow with the history: the
//! snapshot is read twice as a stream (the earlier versions come after the
//! current ones in it, so the first pass keeps them in a file beside).

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use serde::Deserialize;

use super::encryption::Identities;
use super::manifest::{Manifest, SnapshotEntry};
use super::restore::{check_digest, member_name};
use super::snapshot::{chat_member, media_map_member, media_member_hash, revisions_member};
use super::{ArchiveError, archive_dir};
use crate::config::Config;
use crate::media::{MediaKind, MediaRecord, MediaRef, MediaState, MediaStore, MediaUrl};
use crate::message::{Message, MessageId, Ts};
use crate::store::chat::Beginning;
use crate::store::{ChatStore, Store, fsio};

/// The directory in the data directory where rebuilds are staged.
pub const STAGING_DIR: &str = ".rebuild";

/// References handed to the media index at a time.
const REF_BATCH: usize = 1000;
/// Messages parsed ahead of the store's writer.
const CHANNEL: usize = 1024;

/// How to rebuild.
pub struct RebuildOptions<'a> {
    /// Replace a store that exists.
    pub force: bool,
    /// Needed for an encrypted snapshot.
    pub identity: Option<&'a Identities>,
}

/// What a rebuild made.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RebuildReport {
    pub snapshot: String,
    /// Messages in the rebuilt history.
    pub messages: u64,
    /// Messages with earlier versions, and those versions.
    pub revised: u64,
    pub revisions: u64,
    /// Messages marked gone upstream.
    pub deleted: u64,
    pub documents: usize,
    /// Media files put in the store (those it had already aside), and
    /// references recorded.
    pub media_files: u64,
    pub media_refs: u64,
    /// A store was there and has been replaced.
    pub replaced: bool,
    /// The newest message, where the next sync starts.
    pub head: Option<Ts>,
    /// Whether the snapshot knew the history's beginning to be confirmed.
    pub beginning_confirmed: bool,
}

/// Rebuilds the store of `name` from its local snapshot `snapshot`
/// (`latest`, a file name or a time). `store` is the data directory, held.
pub fn rebuild(
    store: &Store,
    config: &Config,
    name: &str,
    snapshot: &str,
    options: &RebuildOptions,
) -> Result<RebuildReport, ArchiveError> {
    let dir = archive_dir(config, name)?;
    let manifest = Manifest::load(&dir, name)?;
    let entry = manifest.entry(name, snapshot)?;
    rebuild_from_file(store, config, name, &dir.join(&entry.file), entry, options)
}

/// Rebuilds the store of `name` from the snapshot file at `path`, which
/// `entry` describes (a local one, or one downloaded from a remote).
pub fn rebuild_from_file(
    store: &Store,
    config: &Config,
    name: &str,
    path: &Path,
    entry: &SnapshotEntry,
    options: &RebuildOptions,
) -> Result<RebuildReport, ArchiveError> {
    if entry.encrypted && options.identity.is_none() {
        return Err(ArchiveError::NeedIdentity {
            file: entry.file.clone(),
        });
    }
    let live = store.personality(name)?;
    let staging = Staging::new(store.root(), name);
    staging.recover(live.path())?;
    if !options.force && holds_anything(live.path())? {
        return Err(ArchiveError::LiveStore {
            name: name.to_owned(),
            path: live.path().to_owned(),
        });
    }
    check_digest(path, entry)?;
    staging.clear()?;
    let source = Source {
        path,
        entry,
        identity: options.identity,
    };
    let mut report = RebuildReport {
        snapshot: entry.file.clone(),
        ..RebuildReport::default()
    };
    let media =
        MediaStore::open(store.root()).map_err(io_at(&store.root().join(crate::media::store::MEDIA_DIR)))?;
    let result = build(&staging, &source, name, config, &media, &mut report);
    if let Err(e) = result {
        let _ = staging.clear();
        return Err(e);
    }
    if let Some(map) = staging.has_map() {
        report.media_refs = record_media(&media, name, &map, entry)?;
    }
    report.replaced = staging.swap_in(live.path())?;
    staging.clear()?;
    // Empty now; the next rebuild makes it again.
    let _ = fs::remove_dir(&staging.root);
    Ok(report)
}

/// Where the snapshot is and how to open it.
struct Source<'a> {
    path: &'a Path,
    entry: &'a SnapshotEntry,
    identity: Option<&'a Identities>,
}

impl Source<'_> {
    fn damaged(&self, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Damaged {
            file: self.entry.file.clone(),
            reason: reason.into(),
        }
    }

    /// Reads the members in order, handing each (its checked name, its
    /// bytes) to `each`, which says whether to go on. Reading to the end
    /// checks the gzip trailer too.
    fn members(
        &self,
        mut each: impl FnMut(&str, &mut dyn Read) -> Result<bool, ArchiveError>,
    ) -> Result<(), ArchiveError> {
        let file = fsio::open_read(self.path).map_err(io_at(self.path))?;
        let file = BufReader::with_capacity(1 << 16, file);
        match self.identity {
            Some(identity) if self.entry.encrypted => {
                let plain = identity.decrypt(file).map_err(|source| ArchiveError::Decrypt {
                    file: self.entry.file.clone(),
                    identity: identity.path().to_owned(),
                    source,
                })?;
                self.read_tar(plain, &mut each)
            }
            _ => self.read_tar(file, &mut each),
        }
    }

    fn read_tar(
        &self,
        plain: impl Read,
        each: &mut dyn FnMut(&str, &mut dyn Read) -> Result<bool, ArchiveError>,
    ) -> Result<(), ArchiveError> {
        let mut archive = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 16, plain)));
        for member in archive.entries().map_err(|e| self.damaged(e.to_string()))? {
            let mut member = member.map_err(|e| self.damaged(e.to_string()))?;
            let raw = String::from_utf8_lossy(&member.path_bytes()).into_owned();
            let name = member_name(&raw)
                .filter(|n| self.entry.members.contains(n))
                .filter(|_| member.header().entry_type().is_file())
                .ok_or_else(|| ArchiveError::UnsafeMember {
                    file: self.entry.file.clone(),
                    member: raw.clone(),
                })?;
            if !each(&name, &mut member)? {
                return Ok(());
            }
            // What `each` left unread is skipped by the next entry.
        }
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| self.damaged(e.to_string()))?;
        Ok(())
    }
}

/// The staging area of one rebuild: `<data_dir>/.rebuild/<name>` and the
/// files beside it.
struct Staging {
    root: PathBuf,
    dir: PathBuf,
    name: String,
}

impl Staging {
    fn new(data_dir: &Path, name: &str) -> Staging {
        let root = data_dir.join(STAGING_DIR);
        Staging {
            dir: root.join(name),
            root,
            name: name.to_owned(),
        }
    }

    fn revisions(&self) -> PathBuf {
        self.root.join(format!("{}.revisions.jsonl", self.name))
    }

    fn map(&self) -> PathBuf {
        self.root.join(format!("{}.media.jsonl", self.name))
    }

    /// Where a store being replaced waits while the new one takes its name.
    fn aside(&self) -> PathBuf {
        self.root.join(format!("{}.old", self.name))
    }

    fn has_map(&self) -> Option<PathBuf> {
        let map = self.map();
        map.exists().then_some(map)
    }

    /// Puts back a store an interrupted swap left aside (its replacement
    /// never took its name), or removes one that was replaced.
    fn recover(&self, live: &Path) -> Result<(), ArchiveError> {
        let aside = self.aside();
        if fs::symlink_metadata(&aside).is_err() {
            return Ok(());
        }
        if fs::symlink_metadata(live).is_err() {
            tracing::warn!(
                path = %live.display(),
                "an earlier rebuild was interrupted while it replaced the store; the store it was replacing is put back"
            );
            fs::rename(&aside, live).map_err(io_at(live))?;
            sync_parent(live)?;
        } else {
            fs::remove_dir_all(&aside).map_err(io_at(&aside))?;
        }
        Ok(())
    }

    /// Removes what an earlier (or this, failed) rebuild left here, and
    /// makes the staging directory afresh, 0700.
    fn clear(&self) -> Result<(), ArchiveError> {
        for file in [self.revisions(), self.map()] {
            match fs::remove_file(&file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&file)(e)),
                _ => {}
            }
        }
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&self.dir)(e)),
            _ => {}
        }
        fsio::create_private_dir(&self.root).map_err(io_at(&self.root))
    }

    /// Renames the built store into `live`'s place, the store there (if
    /// any) aside first and removed after. Returns whether one was replaced.
    fn swap_in(&self, live: &Path) -> Result<bool, ArchiveError> {
        let replaced = fs::symlink_metadata(live).is_ok();
        let aside = self.aside();
        if replaced {
            fs::rename(live, &aside).map_err(io_at(live))?;
        }
        fs::rename(&self.dir, live).map_err(io_at(live))?;
        sync_parent(live)?;
        fsio::sync_dir(&self.root).map_err(io_at(&self.root))?;
        if replaced {
            fs::remove_dir_all(&aside).map_err(io_at(&aside))?;
        }
        Ok(replaced)
    }
}

fn sync_parent(path: &Path) -> Result<(), ArchiveError> {
    match path.parent() {
        Some(parent) => fsio::sync_dir(parent).map_err(io_at(parent)),
        None => Ok(()),
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether `dir` exists with anything in it.
fn holds_anything(dir: &Path) -> Result<bool, ArchiveError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_at(dir)(e)),
    }
}

/// Both passes over the snapshot, into the staging directory.
fn build(
    staging: &Staging,
    source: &Source,
    name: &str,
    config: &Config,
    media: &MediaStore,
    report: &mut RebuildReport,
) -> Result<(), ArchiveError> {
    fsio::create_private_dir(&staging.dir).map_err(io_at(&staging.dir))?;
    let chat = chat_member(name);
    let revisions = revisions_member(name);
    let map = media_map_member(name);
    // First pass: all but the chat history.
    source.members(|member, bytes| {
        if member == chat {
            return Ok(true);
        }
        let copy_to = |target: &Path, bytes: &mut dyn Read| {
            fsio::write_new_with(target, |f| io::copy(bytes, f).map(|_| ())).map_err(io_at(target))
        };
        if member == revisions {
            copy_to(&staging.revisions(), bytes)?;
        } else if member == map {
            copy_to(&staging.map(), bytes)?;
        } else if let Some(hash) = media_member_hash(member) {
            report.media_files += u64::from(store_media(media, member, hash, bytes, source)?);
        } else {
            copy_to(&staging.dir.join(member), bytes)?;
            report.documents += 1;
        }
        Ok(true)
    })?;
    // Second pass: the chat history, with the earlier versions beside it.
    let mut store = ChatStore::open_with(&staging.dir, config.storage.segment_size)?;
    let header = place_history(&mut store, source, &chat, &staging.revisions(), report)?;
    let state = store.state();
    if state.message_count != source.entry.message_count {
        return Err(source.damaged(format!(
            "its chat history holds {} messages, the manifest says {}",
            state.message_count, source.entry.message_count
        )));
    }
    report.messages = state.message_count;
    report.head = state.head.as_ref().map(|h| h.ts);
    report.deleted = state.deleted_upstream();
    report.beginning_confirmed = header.beginning.is_some();
    Ok(())
}

/// What the history's pass learnt besides the messages.
struct HistoryHeader {
    beginning: Option<Beginning>,
}

/// Streams the chat member (a parser thread hands over its messages) into
/// one commit of `store`: each message's first version appended in its
/// place, its later versions and its deletion mark to the overlay.
fn place_history(
    store: &mut ChatStore,
    source: &Source,
    chat: &str,
    revisions: &Path,
    report: &mut RebuildReport,
) -> Result<HistoryHeader, ArchiveError> {
    let mut earlier = EarlierVersions::open(revisions, source)?;
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel(CHANNEL);
        let parser = scope.spawn(move || {
            let mut header = None;
            let read = source.members(|member, bytes| {
                if member != chat {
                    return Ok(true);
                }
                let parsed = crate::import::parse_export(bytes, &sender, crate::import::MAX_MESSAGE_BYTES);
                header = Some(parsed.map_err(|reason| source.damaged(reason))?);
                Ok(false)
            });
            read.map(|()| header)
        });
        let mut commit = store.begin()?;
        let placed = place_all(&mut commit, receiver, &mut earlier, source, report);
        let parsed = parser
            .join()
            .unwrap_or_else(|_| Err(source.damaged("the parser thread panicked")));
        let shape_id = match (placed, parsed) {
            (Err(e), _) | (Ok(()), Err(e)) => return Err(e),
            (Ok(()), Ok(None)) => return Err(source.damaged(format!("it has no member {chat}"))),
            (Ok(()), Ok(Some(header))) => header.shape_id,
        };
        if let Some(left) = earlier.next_version()? {
            return Err(source.damaged(format!(
                "an earlier version of message {} at {} belongs to no message of its history",
                left.message.id.to_json(),
                left.position.to_rfc3339()
            )));
        }
        let entry = source.entry;
        let beginning = entry.beginning_confirmed_at.map(|confirmed_at| Beginning {
            confirmed_at,
            oldest: commit.state().oldest,
        });
        let state = commit.state_mut();
        state.personality_id = shape_id;
        state.beginning = beginning.clone();
        state.tail_probed_at = entry.tail_probed_at;
        commit.finish(None)?;
        Ok(HistoryHeader { beginning })
    })
}

fn place_all(
    commit: &mut crate::store::chat::Commit<'_>,
    receiver: mpsc::Receiver<Result<Message, String>>,
    earlier: &mut EarlierVersions,
    source: &Source,
    report: &mut RebuildReport,
) -> Result<(), ArchiveError> {
    let mut last: Option<Ts> = None;
    for incoming in receiver {
        let incoming = incoming.map_err(|reason| source.damaged(reason))?;
        let current = Noted::parse(&incoming.raw).map_err(|reason| source.damaged(reason))?;
        let position = current.position;
        if last.is_some_and(|last| position < last) {
            return Err(source.damaged(format!(
                "its chat history is not in order of place (message {} at {} comes after {})",
                current.message.id.to_json(),
                position.to_rfc3339(),
                last.map_or_else(String::new, Ts::to_rfc3339)
            )));
        }
        last = Some(position);
        let versions = earlier.of(position, &current.message.id)?;
        let first = versions.first().map_or(&current.message, |v| &v.message);
        if first.ts != position {
            return Err(source.damaged(format!(
                "message {} is placed at {}, but its first version says {}",
                current.message.id.to_json(),
                position.to_rfc3339(),
                first.ts.to_rfc3339()
            )));
        }
        commit.place(first)?;
        if !versions.is_empty() {
            report.revised += 1;
            report.revisions += versions.len() as u64;
        }
        for (i, version) in versions.iter().enumerate() {
            let next = versions.get(i + 1).map_or(&current.message, |v| &v.message);
            let seen_at = version.notes.superseded_at.as_deref().unwrap_or_default();
            commit.revise(position, next, seen_at)?;
        }
        if let Some(at) = &current.notes.deleted_upstream_at {
            commit.mark_deleted(position, &current.message.id, at)?;
        }
    }
    Ok(())
}

/// The earlier versions member, read beside the history: both are in the
/// order of the history, so each message's versions are the next lines.
struct EarlierVersions {
    lines: Option<io::Lines<BufReader<fs::File>>>,
    peeked: Option<Noted>,
    file: String,
}

impl EarlierVersions {
    fn open(path: &Path, source: &Source) -> Result<EarlierVersions, ArchiveError> {
        let lines = match fsio::open_read(path) {
            Ok(file) => Some(BufReader::with_capacity(1 << 16, file).lines()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_at(path)(e)),
        };
        Ok(EarlierVersions {
            lines,
            peeked: None,
            file: source.entry.file.clone(),
        })
    }

    fn next_version(&mut self) -> Result<Option<Noted>, ArchiveError> {
        if let Some(peeked) = self.peeked.take() {
            return Ok(Some(peeked));
        }
        let Some(line) = self.lines.as_mut().and_then(Iterator::next) else {
            return Ok(None);
        };
        let damaged = |reason: String| ArchiveError::Damaged {
            file: self.file.clone(),
            reason: format!("its earlier versions: {reason}"),
        };
        let line = line.map_err(|e| damaged(e.to_string()))?;
        let version = Noted::parse(&line).map_err(damaged)?;
        if version.notes.superseded_at.is_none() {
            return Err(damaged(format!(
                "the version of message {} has no superseded_at",
                version.message.id.to_json()
            )));
        }
        Ok(Some(version))
    }

    /// The earlier versions of the message at `position` with `id`,
    /// oldest first; those of an earlier message left over are an error.
    fn of(&mut self, position: Ts, id: &MessageId) -> Result<Vec<Noted>, ArchiveError> {
        let mut versions = Vec::new();
        while let Some(version) = self.next_version()? {
            if version.position == position && &version.message.id == id {
                versions.push(version);
                continue;
            }
            if version.position < position {
                return Err(ArchiveError::Damaged {
                    file: self.file.clone(),
                    reason: format!(
                        "an earlier version of message {} at {} belongs to no message of its history",
                        version.message.id.to_json(),
                        version.position.to_rfc3339()
                    ),
                });
            }
            self.peeked = Some(version);
            break;
        }
        Ok(versions)
    }
}

/// A message as an export writes it: the service's bytes, and chatkeep's
/// `_chatkeep` notes taken off the end.
struct Noted {
    message: Message,
    notes: Notes,
    /// Its place in the history: `position_ts` when noted, else its `ts`.
    position: Ts,
}

/// The notes a snapshot's messages may carry (see `export::annotated`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Notes {
    deleted_upstream_at: Option<String>,
    superseded_at: Option<String>,
    position_ts: Option<f64>,
    #[serde(rename = "media")]
    _media: Option<serde::de::IgnoredAny>,
}

/// The key an export's notes are under, with the object's opening brace.
const NOTES_KEY: &str = "\"_chatkeep\":{";

impl Noted {
    fn parse(line: &str) -> Result<Noted, String> {
        let (plain, notes) = split_notes(line);
        let message = Message::from_stored_line(&plain).map_err(|e| e.to_string())?;
        let position = match notes.position_ts {
            Some(ts) => {
                Ts::new(ts).ok_or_else(|| format!("message {} has position_ts {ts}", message.id.to_json()))?
            }
            None => message.ts,
        };
        Ok(Noted {
            message,
            notes,
            position,
        })
    }
}

/// `line` without the `_chatkeep` notes an export added as its last field,
/// and those notes: the exact inverse of `export::annotated`. A line whose
/// last field is not such notes is the service's own, unchanged.
fn split_notes(line: &str) -> (std::borrow::Cow<'_, str>, Notes) {
    let unchanged = || (std::borrow::Cow::Borrowed(line), Notes::default());
    let Some(at) = line.rfind(NOTES_KEY) else {
        return unchanged();
    };
    let Some(object) = line[at + NOTES_KEY.len() - 1..].strip_suffix('}') else {
        return unchanged();
    };
    let Ok(notes) = serde_json::from_str::<Notes>(object) else {
        return unchanged();
    };
    let before = &line[..at];
    let plain = match before.strip_suffix(',') {
        Some(body) => format!("{body}}}"),
        None if before.ends_with('{') => format!("{before}}}"),
        None => return unchanged(),
    };
    (std::borrow::Cow::Owned(plain), notes)
}

/// Puts the media member `name` in the store, unless it holds that file
/// already. Returns whether it was written.
fn store_media(
    media: &MediaStore,
    name: &str,
    hash: &str,
    bytes: &mut dyn Read,
    source: &Source,
) -> Result<bool, ArchiveError> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let target = media.path_of(file);
    if fs::symlink_metadata(&target).is_ok() {
        return Ok(false);
    }
    let ext = file.split_once('.').map_or("bin", |(_, ext)| ext);
    let dir = media.dir().to_owned();
    let mut part = media.begin().map_err(io_at(&dir))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = bytes.read(&mut buf).map_err(|e| source.damaged(e.to_string()))?;
        if n == 0 {
            break;
        }
        part.write(&buf[..n]).map_err(io_at(&dir))?;
    }
    let (found, _) = part.finish(ext).map_err(io_at(&dir))?;
    if found.as_str() != hash {
        let _ = fs::remove_file(media.path_of(&format!("{found}.{ext}")));
        return Err(source.damaged(format!("its member {name} has SHA-256 {found}")));
    }
    Ok(true)
}

/// One line of the media map member (see `Catalog::write_mapping`).
#[derive(Deserialize)]
struct MapLine {
    url: String,
    kind: MediaKind,
    #[serde(default)]
    message: Option<serde_json::Value>,
    state: String,
    file: Option<String>,
    size: Option<u64>,
    content_type: Option<String>,
    status: Option<u16>,
    limit: Option<u64>,
    reason: Option<String>,
}

impl MapLine {
    /// What the URL became, as a record of the index; `None` for what is
    /// to be tried again (failed, pending).
    fn state(&self) -> Option<MediaState> {
        Some(match self.state.as_str() {
            "fetched" => {
                let file = self.file.as_deref()?;
                let hash = media_member_hash(file)?;
                MediaState::Fetched {
                    hash: crate::media::MediaHash::try_from(hash.to_owned()).ok()?,
                    file: file.rsplit('/').next()?.to_owned(),
                    size: self.size?,
                    content_type: self.content_type.clone(),
                }
            }
            "gone" => MediaState::Gone { status: self.status? },
            "too_large" => MediaState::TooLarge { limit: self.limit? },
            "refused" => MediaState::Refused {
                reason: self.reason.clone()?,
            },
            _ => return None,
        })
    }
}

/// Gives the index the personality's references from the map at `path`
/// (its earlier ones dropped), and a record for each URL the index knows
/// nothing of yet. Returns how many references.
fn record_media(
    media: &MediaStore,
    name: &str,
    path: &Path,
    entry: &SnapshotEntry,
) -> Result<u64, ArchiveError> {
    let index_err = io_at(media.dir());
    media.forget(name).map_err(&index_err)?;
    let file = fsio::open_read(path).map_err(io_at(path))?;
    let at: DateTime<Utc> = entry.time;
    let mut batch = Vec::with_capacity(REF_BATCH);
    let mut count = 0;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io_at(path))?;
        let parsed: MapLine = serde_json::from_str(&line).map_err(|e| ArchiveError::Damaged {
            file: entry.file.clone(),
            reason: format!("its media map: {e}"),
        })?;
        let url = MediaUrl::new(parsed.url.clone());
        if let Some(state) = parsed.state()
            && media.get(&url).map_err(&index_err)?.is_none()
        {
            media
                .record(MediaRecord {
                    url: url.clone(),
                    at,
                    state,
                })
                .map_err(&index_err)?;
        }
        batch.push(MediaRef {
            url,
            kind: parsed.kind,
            message: parsed.message.map(|m| m.to_string()),
        });
        count += 1;
        if batch.len() >= REF_BATCH {
            media.add_refs(name, &batch).map_err(&index_err)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        media.add_refs(name, &batch).map_err(&index_err)?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::annotated;

    #[test]
    fn notes_come_off_exactly_as_the_export_put_them_on() {
        let message = r#"{"id":"m-1","ts":1700000000.5,"text":"caf\u00e9 \"_chatkeep\":{}"}"#;
        for notes in [
            vec![("deleted_upstream_at", "\"2026-01-01T00:00:00Z\"".to_owned())],
            vec![
                ("superseded_at", "\"2026-01-02T00:00:00Z\"".to_owned()),
                ("position_ts", "1700000000.5".to_owned()),
            ],
        ] {
            let line = annotated(message, &notes);
            let (plain, parsed) = split_notes(&line);
            assert_eq!(plain, message, "{line}");
            assert!(parsed.deleted_upstream_at.is_some() || parsed.superseded_at.is_some());
        }
        let empty = annotated("{}", &[("deleted_upstream_at", "\"x\"".to_owned())]);
        assert_eq!(split_notes(&empty).0, "{}");
        // Without notes, or with a last field of the service's own that
        // only looks like them, the line is the message.
        assert_eq!(split_notes(message).0, message);
        let own = r#"{"id":1,"ts":2,"_chatkeep":{"mood":"happy"}}"#;
        assert_eq!(split_notes(own).0, own);
    }

    #[test]
    fn a_place_noted_is_the_position() {
        let line = annotated(
            r#"{"id":7,"ts":1700000100}"#,
            &[("position_ts", "1700000000.25".to_owned())],
        );
        let noted = Noted::parse(&line).unwrap();
        assert_eq!(noted.position, Ts::new(1_700_000_000.25).unwrap());
        assert_eq!(noted.message.ts, Ts::new(1_700_000_100.0).unwrap());
        assert_eq!(noted.message.raw, r#"{"id":7,"ts":1700000100}"#);
    }
}
