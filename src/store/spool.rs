//! The walk spool: pages fetched during a backward walk but not yet
//! committed to the chat log, each followed by the checkpoint to resume from.
//!
//! It is append-only. Every record carries a CRC, so a record torn by a crash
//! is detected on open and cut off; the last whole record says where the walk
//! stands. One fsync per page is the whole cost of resumability.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsio;
use crate::message::{Message, MessageError, MessageId, Ts};

const MAGIC: &[u8; 4] = b"CKW1";
const HEADER_LEN: u64 = 13;
const KIND_PAGE: u8 = 1;
const KIND_DONE: u8 = 2;
/// A record larger than this is corruption, not a page.
const MAX_RECORD: u32 = 256 * 1024 * 1024;

/// Messages that share the walk's current boundary `ts`: the next page is
/// asked so that it includes them again, and these ids are dropped from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "BoundaryFile", into = "BoundaryFile")]
pub struct Boundary {
    pub ts: Ts,
    pub ids: Vec<MessageId>,
}

/// A boundary as a checkpoint holds it. One written before ids had a type
/// holds a numeric id as a string: read back, a string that is a number
/// stands for both, so a walk resumed across an upgrade drops the repeat
/// whichever it was.
#[derive(Serialize, Deserialize)]
struct BoundaryFile {
    ts: Ts,
    ids: Vec<MessageId>,
    #[serde(default)]
    typed_ids: bool,
}

impl From<BoundaryFile> for Boundary {
    fn from(file: BoundaryFile) -> Boundary {
        let mut ids = file.ids;
        if !file.typed_ids {
            let numbers: Vec<MessageId> = ids.iter().filter_map(MessageId::untyped_number).collect();
            ids.extend(numbers);
        }
        Boundary { ts: file.ts, ids }
    }
}

impl From<Boundary> for BoundaryFile {
    fn from(b: Boundary) -> BoundaryFile {
        BoundaryFile {
            ts: b.ts,
            ids: b.ids,
            typed_ids: true,
        }
    }
}

/// What a walk is for, which decides where it stops and how its pages are
/// committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalkKind {
    /// From the newest message down to stored history (and through the
    /// refreshed range): what every sync does.
    #[default]
    Top,
    /// Below the oldest stored message, for older history.
    Tail,
    /// The whole history, to compare with the store.
    Audit,
}

/// Why a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalkEnd {
    /// An empty answer, asked for twice (or once, for a probe below a
    /// confirmed beginning): the history begins here.
    Beginning,
    /// It reached stored history and covered the refreshed range.
    Reached,
    /// A probe below the oldest message found nothing the store lacks.
    NothingFound,
}

/// Everything needed to continue a walk after a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `before_ts` of the next request; `None` asks for the newest page.
    pub cursor: Option<Ts>,
    /// `limit` of the next request (grows only to swallow a large tie group).
    pub limit: u32,
    pub boundary: Option<Boundary>,
    /// The server's `before_ts` semantics, once a page has revealed them.
    pub inclusive: Option<bool>,
    /// Messages spooled so far in this walk.
    pub spooled: u64,
    /// Chat requests made so far in this walk.
    pub requests: u64,
    #[serde(default)]
    pub kind: WalkKind,
    /// The answer at `cursor` was empty once; the next one confirms it.
    #[serde(default)]
    pub empty_once: bool,
    /// The oldest and newest `ts` of any message received in this walk.
    #[serde(default)]
    pub low: Option<Ts>,
    #[serde(default)]
    pub high: Option<Ts>,
    /// A tail walk received a message the store lacks.
    #[serde(default)]
    pub found: bool,
    /// The longest page received: a shorter answer to that `limit` holds
    /// everything left below the cursor.
    #[serde(default)]
    pub longest_page: u32,
    /// A page shorter than the page size came: it held everything below
    /// its cursor, so the walk saw the bottom of the history.
    #[serde(default)]
    pub bottom: bool,
    /// Set on the walk's last record.
    #[serde(default)]
    pub ended: Option<WalkEnd>,
    /// An audit's walk: the history's commit count when it began. Pages
    /// walked before a later commit are older than what that commit stored.
    #[serde(default)]
    pub store_commits: Option<u64>,
}

impl Checkpoint {
    /// Where every sync's walk starts: the newest page, at `limit`.
    pub fn start(limit: u32) -> Checkpoint {
        Checkpoint::new(WalkKind::Top, None, limit)
    }

    /// A walk of `kind` from `cursor` (`None`: the newest page) at `limit`.
    pub fn new(kind: WalkKind, cursor: Option<Ts>, limit: u32) -> Checkpoint {
        Checkpoint {
            cursor,
            limit,
            boundary: None,
            inclusive: None,
            spooled: 0,
            requests: 0,
            kind,
            empty_once: false,
            low: None,
            high: None,
            found: false,
            longest_page: 0,
            bottom: false,
            ended: None,
            store_commits: None,
        }
    }
}

/// An open spool file.
#[derive(Debug)]
pub struct Spool {
    file: File,
    path: PathBuf,
    len: u64,
    /// Offset of every page record that holds messages, oldest write first.
    pages: Vec<u64>,
    last: Option<Checkpoint>,
    done: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("walk spool {}: {}", path.display(), fsio::explain(source))]
    Io { path: PathBuf, source: io::Error },
    #[error("walk spool {path}: record at byte {offset} is unreadable: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

impl Spool {
    /// Opens the spool at `path`, creating it if missing. A torn last record
    /// (a crash mid-append) is truncated away.
    pub fn open(path: &Path) -> Result<Spool, SpoolError> {
        let io_err = |source| SpoolError::Io {
            path: path.to_owned(),
            source,
        };
        let file = fsio::open_private_rw(path).map_err(io_err)?;
        let mut spool = Spool {
            file,
            path: path.to_owned(),
            len: 0,
            pages: Vec::new(),
            last: None,
            done: false,
        };
        let file_len = spool.file.metadata().map_err(io_err)?.len();
        let mut reader = BufReader::new(&spool.file);
        let mut offset = 0u64;
        while offset < file_len {
            match read_record(&mut reader) {
                Ok((kind, payload)) => {
                    let (checkpoint, has_messages) =
                        split_checkpoint(&payload).map_err(|reason| SpoolError::Corrupt {
                            path: path.to_owned(),
                            offset,
                            reason,
                        })?;
                    if has_messages {
                        spool.pages.push(offset);
                    }
                    spool.done = kind == KIND_DONE;
                    spool.last = Some(checkpoint);
                    offset += HEADER_LEN + payload.len() as u64;
                }
                // Anything unreadable at the tail is a write the crash cut short.
                Err(_) => break,
            }
        }
        drop(reader);
        if offset < file_len {
            tracing::info!(path = %path.display(), offset, "cutting a torn record off the walk spool");
            spool.file.set_len(offset).map_err(io_err)?;
            spool.file.sync_all().map_err(io_err)?;
        }
        spool.len = offset;
        Ok(spool)
    }

    /// The checkpoint of the last whole record, if any.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.last.as_ref()
    }

    /// True when the walk finished and only the commit is left.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes written to the spool.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// Number of page records holding messages.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Appends one page of new messages and the checkpoint after it, durably.
    pub fn append_page(&mut self, checkpoint: &Checkpoint, messages: &[Message]) -> Result<(), SpoolError> {
        let offset = self.len;
        self.append(KIND_PAGE, checkpoint, messages)?;
        if !messages.is_empty() {
            self.pages.push(offset);
        }
        Ok(())
    }

    /// Appends the walk's last page and the mark that the walk is complete,
    /// as one record: were they two, a crash between them would resume from
    /// a checkpoint that predates the last page and spool it a second time.
    pub fn append_last_page(
        &mut self,
        checkpoint: &Checkpoint,
        messages: &[Message],
    ) -> Result<(), SpoolError> {
        let offset = self.len;
        self.append(KIND_DONE, checkpoint, messages)?;
        if !messages.is_empty() {
            self.pages.push(offset);
        }
        self.done = true;
        Ok(())
    }

    /// Records that the walk is complete, durably.
    pub fn mark_done(&mut self, checkpoint: &Checkpoint) -> Result<(), SpoolError> {
        self.append_last_page(checkpoint, &[])
    }

    fn append(&mut self, kind: u8, checkpoint: &Checkpoint, messages: &[Message]) -> Result<(), SpoolError> {
        let mut payload = serde_json::to_vec(checkpoint).map_err(|e| self.io_err(io::Error::other(e)))?;
        payload.push(b'\n');
        for m in messages {
            payload.extend_from_slice(m.raw.as_bytes());
            payload.push(b'\n');
        }
        let mut crc = flate2::Crc::new();
        crc.update(&payload);
        let mut record = Vec::with_capacity(HEADER_LEN as usize + payload.len());
        record.extend_from_slice(MAGIC);
        record.push(kind);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc.sum().to_le_bytes());
        record.extend_from_slice(&payload);
        let result = (|| {
            self.file.seek(SeekFrom::Start(self.len))?;
            self.file.write_all(&record)?;
            self.file.sync_data()
        })();
        if let Err(e) = result {
            // Leave no half record behind for this process's next append.
            let _ = self.file.set_len(self.len);
            return Err(self.io_err(e));
        }
        self.len += record.len() as u64;
        self.last = Some(checkpoint.clone());
        Ok(())
    }

    /// Reads the spooled pages, most recently fetched (oldest messages) first,
    /// which is chronological order for a backward walk. One page is in
    /// memory at a time.
    pub fn pages_oldest_first(&self) -> impl Iterator<Item = Result<Vec<Message>, SpoolError>> + '_ {
        self.pages.iter().rev().map(move |&offset| self.read_page(offset))
    }

    fn read_page(&self, offset: u64) -> Result<Vec<Message>, SpoolError> {
        let corrupt = |reason: String| SpoolError::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        };
        let mut file = &self.file;
        file.seek(SeekFrom::Start(offset)).map_err(|e| self.io_err(e))?;
        let (_, payload) = read_record(&mut BufReader::new(file)).map_err(corrupt)?;
        let text = std::str::from_utf8(&payload).map_err(|e| corrupt(e.to_string()))?;
        text.lines()
            .skip(1)
            .map(|line| Message::from_stored_line(line).map_err(|e: MessageError| corrupt(e.to_string())))
            .collect()
    }

    /// Deletes the spool file (after a commit made it redundant).
    pub fn remove(self) -> Result<(), SpoolError> {
        let path = self.path.clone();
        drop(self.file);
        fsio::remove_durably(&path).map_err(|source| SpoolError::Io { path, source })
    }

    fn io_err(&self, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// Where an unfinished walk stands, as a reader beside it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkInProgress {
    pub kind: WalkKind,
    /// Messages the walk has fetched and spooled, not yet stored.
    pub spooled: u64,
    /// The walk finished; only its commit is left.
    pub done: bool,
}

/// Reads where the walk spooled at `path` stands from its last whole
/// record, without changing the file: for readers (`status`, `export`)
/// that run beside the walk appending to it. `None` when there is no spool
/// or no whole record in it yet. Only record headers are read up to the
/// last record, so a long walk's spool costs little.
pub fn peek(path: &Path) -> Result<Option<WalkInProgress>, SpoolError> {
    let io_err = |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let file_len = file.metadata().map_err(io_err)?.len();
    // The offsets of the records the file holds whole, by their headers.
    let mut offsets = Vec::new();
    let mut offset = 0u64;
    let mut header = [0u8; HEADER_LEN as usize];
    while offset + HEADER_LEN <= file_len {
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        file.read_exact(&mut header).map_err(io_err)?;
        let len = u64::from(u32::from_le_bytes([header[5], header[6], header[7], header[8]]));
        if &header[..4] != MAGIC || offset + HEADER_LEN + len > file_len {
            break;
        }
        offsets.push(offset);
        offset += HEADER_LEN + len;
    }
    // A torn or unreadable tail is a write cut short: the record before
    // it says where the walk stands.
    for &offset in offsets.iter().rev() {
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let Ok((kind, payload)) = read_record(&mut BufReader::new(&file)) else {
            continue;
        };
        let Ok((checkpoint, _)) = split_checkpoint(&payload) else {
            continue;
        };
        return Ok(Some(WalkInProgress {
            kind: checkpoint.kind,
            spooled: checkpoint.spooled,
            done: kind == KIND_DONE,
        }));
    }
    Ok(None)
}

fn read_record(reader: &mut impl Read) -> Result<(u8, Vec<u8>), String> {
    let mut header = [0u8; HEADER_LEN as usize];
    reader
        .read_exact(&mut header)
        .map_err(|e| format!("header: {e}"))?;
    if &header[..4] != MAGIC {
        return Err("bad magic".into());
    }
    let kind = header[4];
    let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    let want_crc = u32::from_le_bytes([header[9], header[10], header[11], header[12]]);
    if len > MAX_RECORD || !(kind == KIND_PAGE || kind == KIND_DONE) {
        return Err("impossible header".into());
    }
    let mut payload = vec![0u8; len as usize];
    reader
        .read_exact(&mut payload)
        .map_err(|e| format!("payload: {e}"))?;
    let mut crc = flate2::Crc::new();
    crc.update(&payload);
    if crc.sum() != want_crc {
        return Err("checksum mismatch".into());
    }
    Ok((kind, payload))
}

fn split_checkpoint(payload: &[u8]) -> Result<(Checkpoint, bool), String> {
    let end = payload
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no checkpoint line")?;
    let checkpoint = serde_json::from_slice(&payload[..end]).map_err(|e| format!("checkpoint: {e}"))?;
    Ok((checkpoint, payload.len() > end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn msg(id: &str, ts: f64) -> Message {
        let raw = format!(r#"{{"id":"{id}","ts":{ts}}}"#);
        Message::from_stored_line(&raw).unwrap()
    }

    fn checkpoint(spooled: u64) -> Checkpoint {
        Checkpoint {
            spooled,
            requests: spooled,
            ..Checkpoint::new(WalkKind::Top, Ts::new(10.0), 50)
        }
    }

    #[test]
    fn a_boundary_from_before_typed_ids_drops_a_repeat_of_either_type() {
        let legacy: Boundary = serde_json::from_str(r#"{"ts":5,"ids":["7","a"]}"#).unwrap();
        assert_eq!(
            legacy.ids,
            vec![MessageId::from("7"), MessageId::from("a"), MessageId::number("7")]
        );
        let written = serde_json::to_string(&legacy).unwrap();
        let again: Boundary = serde_json::from_str(&written).unwrap();
        assert_eq!(
            again, legacy,
            "a boundary written now is read as written: {written}"
        );
        let typed = Boundary {
            ts: Ts::new(5.0).unwrap(),
            ids: vec![MessageId::from("7")],
        };
        let read: Boundary = serde_json::from_str(&serde_json::to_string(&typed).unwrap()).unwrap();
        assert_eq!(read, typed, "no number is added to a typed boundary");
    }

    #[test]
    fn pages_come_back_oldest_first_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("walk.spool");
        let mut spool = Spool::open(&path).unwrap();
        spool.append_page(&checkpoint(1), &[msg("b", 2.0)]).unwrap();
        spool.append_page(&checkpoint(1), &[]).unwrap();
        spool.append_page(&checkpoint(2), &[msg("a", 1.0)]).unwrap();
        drop(spool);
        let spool = Spool::open(&path).unwrap();
        assert_eq!(spool.checkpoint().unwrap().spooled, 2);
        assert!(!spool.is_done());
        let pages: Vec<_> = spool.pages_oldest_first().map(|p| p.unwrap()).collect();
        assert_eq!(pages, vec![vec![msg("a", 1.0)], vec![msg("b", 2.0)]]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_last_whole_checkpoint_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("walk.spool");
        let mut spool = Spool::open(&path).unwrap();
        spool.append_page(&checkpoint(1), &[msg("b", 2.0)]).unwrap();
        let good_len = std::fs::metadata(&path).unwrap().len();
        spool.append_page(&checkpoint(2), &[msg("a", 1.0)]).unwrap();
        drop(spool);
        // Simulate a crash in the middle of the second append.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(good_len + 7).unwrap();
        let mut spool = Spool::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(spool.checkpoint().unwrap().spooled, 1);
        spool.mark_done(&checkpoint(1)).unwrap();
        drop(spool);
        let spool = Spool::open(&path).unwrap();
        assert!(spool.is_done());
        assert_eq!(spool.page_count(), 1);
    }

    #[test]
    fn the_last_page_and_the_end_of_the_walk_are_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("walk.spool");
        let mut spool = Spool::open(&path).unwrap();
        spool.append_page(&checkpoint(1), &[msg("b", 2.0)]).unwrap();
        let before_last = std::fs::metadata(&path).unwrap().len();
        spool.append_last_page(&checkpoint(2), &[msg("a", 1.0)]).unwrap();
        drop(spool);
        let spool = Spool::open(&path).unwrap();
        assert!(spool.is_done());
        assert_eq!(spool.page_count(), 2);
        // Cut anywhere inside that record: the walk is not done, and the
        // checkpoint is the one from before the last page, so that page is
        // fetched again rather than kept twice.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(before_last + 20).unwrap();
        let spool = Spool::open(&path).unwrap();
        assert!(!spool.is_done());
        assert_eq!((spool.page_count(), spool.checkpoint().unwrap().spooled), (1, 1));
    }

    #[test]
    fn a_flipped_byte_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("walk.spool");
        let mut spool = Spool::open(&path).unwrap();
        spool.append_page(&checkpoint(1), &[msg("b", 2.0)]).unwrap();
        drop(spool);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let spool = Spool::open(&path).unwrap();
        assert!(spool.checkpoint().is_none());
        assert_eq!(spool.page_count(), 0);
    }

    #[test]
    fn peek_reads_the_last_whole_checkpoint_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("walk.spool");
        assert_eq!(peek(&path).unwrap(), None, "no spool");
        let mut spool = Spool::open(&path).unwrap();
        assert_eq!(peek(&path).unwrap(), None, "no record yet");
        spool.append_page(&checkpoint(3), &[msg("b", 2.0)]).unwrap();
        let good_len = std::fs::metadata(&path).unwrap().len();
        spool.append_page(&checkpoint(7), &[msg("a", 1.0)]).unwrap();
        let want = |spooled, done| {
            Some(WalkInProgress {
                kind: WalkKind::Top,
                spooled,
                done,
            })
        };
        assert_eq!(peek(&path).unwrap(), want(7, false));
        // A record torn mid-write (or still being written): the one before.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(good_len + 20).unwrap();
        assert_eq!(peek(&path).unwrap(), want(3, false));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            good_len + 20,
            "untouched"
        );
        // A whole record with a flipped byte is not trusted either.
        drop(spool);
        file.set_len(good_len).unwrap();
        let mut spool = Spool::open(&path).unwrap();
        spool.mark_done(&checkpoint(3)).unwrap();
        assert_eq!(peek(&path).unwrap(), want(3, true));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(peek(&path).unwrap(), want(3, false));
    }
}
