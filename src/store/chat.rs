//! The committed chat history of one personality: an append-only gzip log
//! (one gzip member per commit, oldest message first) and a small state file
//! that says how much of the log is committed and where the newest message is.
//!
//! Recovery is short because each state says what to do:
//! - log longer than `log_len`: a commit was cut short; truncate.
//! - a spool older than `next_walk`: already committed; delete it.
//! - the spool of `next_walk`, done: commit it; not done: resume the walk.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::fsio;
use super::spool::{Spool, SpoolError};
use crate::message::{Message, MessageId, Ts};

const STATE_FILE: &str = "chat_state.json";
const LOG_FILE: &str = "chat.jsonl.gz";
const STATE_FORMAT: u32 = 1;

/// The newest stored `ts` and every stored id at exactly that `ts`: a walk
/// stops when it reaches older messages, and uses the ids to tell new
/// messages that share the head's `ts` from stored ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub ts: Ts,
    pub ids: Vec<MessageId>,
}

impl Head {
    /// True if `m` is already in the store (everything older than the head
    /// is, and at the head's `ts` only the listed ids are).
    pub fn holds(&self, m: &Message) -> bool {
        m.ts < self.ts || (m.ts == self.ts && self.ids.contains(&m.id))
    }
}

/// The chat state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatState {
    pub format: u32,
    /// The personality's id (UUID) the history belongs to.
    pub personality_id: Option<String>,
    pub head: Option<Head>,
    pub oldest: Option<Ts>,
    pub message_count: u64,
    /// Committed length of the log in bytes; anything past it is a torn commit.
    pub log_len: u64,
    /// Generation of the next walk's spool; lower generations are committed.
    pub next_walk: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatStoreError {
    #[error("{}: {}", path.display(), fsio::explain(source))]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a chatkeep state file: {reason}")]
    BadState { path: PathBuf, reason: String },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(
        "chat log {path} is shorter ({actual} bytes) than its committed length ({expected}); it was changed outside chatkeep"
    )]
    LogTooShort {
        path: PathBuf,
        actual: u64,
        expected: u64,
    },
}

/// What a commit added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitSummary {
    pub added: u64,
}

/// One personality's chat history on disk.
#[derive(Debug)]
pub struct ChatStore {
    dir: PathBuf,
    state: ChatState,
}

impl ChatStore {
    /// Opens the history in `dir` (created 0700 if missing) and repairs what
    /// a crash may have left: a torn log tail, a committed spool. Only the
    /// holder of the data directory lock may do this.
    pub fn open(dir: &Path) -> Result<ChatStore, ChatStoreError> {
        fsio::create_private_dir(dir).map_err(|source| ChatStoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let store = ChatStore::open_read_only(dir)?;
        store.repair_log()?;
        store.remove_stale_spools()?;
        Ok(store)
    }

    /// Opens the committed history without changing anything, for readers
    /// that run beside a sync (export): they see the last commit, since the
    /// log never changes below the committed length.
    pub fn open_read_only(dir: &Path) -> Result<ChatStore, ChatStoreError> {
        let state_path = dir.join(STATE_FILE);
        let state = match fs::read(&state_path) {
            Ok(bytes) => {
                let state: ChatState =
                    serde_json::from_slice(&bytes).map_err(|e| ChatStoreError::BadState {
                        path: state_path.clone(),
                        reason: e.to_string(),
                    })?;
                if state.format != STATE_FORMAT {
                    return Err(ChatStoreError::BadState {
                        path: state_path,
                        reason: format!("format {} is not {STATE_FORMAT}", state.format),
                    });
                }
                state
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => ChatState {
                format: STATE_FORMAT,
                ..ChatState::default()
            },
            Err(source) => {
                return Err(ChatStoreError::Io {
                    path: state_path,
                    source,
                });
            }
        };
        Ok(ChatStore {
            dir: dir.to_owned(),
            state,
        })
    }

    pub fn state(&self) -> &ChatState {
        &self.state
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Records which personality id this history belongs to.
    pub fn set_personality_id(&mut self, id: &str) -> Result<(), ChatStoreError> {
        if self.state.personality_id.as_deref() != Some(id) {
            let mut next = self.state.clone();
            next.personality_id = Some(id.to_owned());
            self.save(next)?;
        }
        Ok(())
    }

    fn spool_path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("walk-{generation}.spool"))
    }

    /// Opens the spool of the current walk: new, or left by an interrupted run.
    pub fn open_walk(&self) -> Result<Spool, ChatStoreError> {
        Ok(Spool::open(&self.spool_path(self.state.next_walk))?)
    }

    /// True if an interrupted walk is waiting to be resumed or committed.
    pub fn has_pending_walk(&self) -> bool {
        self.spool_path(self.state.next_walk).exists()
    }

    /// Appends the spooled pages to the log in chronological order, then
    /// records the new head and length in one atomic state write, then
    /// deletes the spool. A crash at any point leaves a state from which
    /// [`ChatStore::open`] recovers to the same end result.
    pub fn commit(&mut self, spool: Spool) -> Result<CommitSummary, ChatStoreError> {
        let log_path = self.log_path();
        let io_err = |source| ChatStoreError::Io {
            path: log_path.clone(),
            source,
        };
        let mut next = self.state.clone();
        let mut added = 0u64;
        if spool.page_count() > 0 {
            let mut file = fsio::open_private_rw(&log_path).map_err(io_err)?;
            file.set_len(self.state.log_len).map_err(io_err)?;
            file.seek(SeekFrom::Start(self.state.log_len)).map_err(io_err)?;
            let mut gz = GzEncoder::new(BufWriter::with_capacity(1 << 16, &mut file), Compression::new(6));
            let mut newest: Option<Head> = self.state.head.clone();
            for page in spool.pages_oldest_first() {
                let mut page = page?;
                page.sort_by(|a, b| a.ts.total_cmp(&b.ts));
                for m in &page {
                    gz.write_all(m.raw.as_bytes()).map_err(io_err)?;
                    gz.write_all(b"\n").map_err(io_err)?;
                    advance_head(&mut newest, m);
                    if next.oldest.is_none_or(|o| m.ts < o) {
                        next.oldest = Some(m.ts);
                    }
                }
                added += page.len() as u64;
            }
            let mut writer = gz.finish().map_err(io_err)?;
            writer.flush().map_err(io_err)?;
            drop(writer);
            file.sync_data().map_err(io_err)?;
            next.log_len = file.stream_position().map_err(io_err)?;
            next.head = newest;
            next.message_count += added;
        }
        next.next_walk += 1;
        self.save(next)?;
        spool.remove()?;
        Ok(CommitSummary { added })
    }

    /// Streams the committed log, oldest message first, as stored lines.
    pub fn lines(&self) -> Result<impl Iterator<Item = io::Result<String>> + use<>, ChatStoreError> {
        let path = self.log_path();
        let file = match File::open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.state.log_len == 0 => None,
            Err(source) => return Err(ChatStoreError::Io { path, source }),
        };
        let reader: Box<dyn BufRead> = match file {
            Some(f) => Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(BufReader::with_capacity(1 << 16, f.take(self.state.log_len))),
            )),
            None => Box::new(io::empty()),
        };
        Ok(reader.lines())
    }

    fn save(&mut self, next: ChatState) -> Result<(), ChatStoreError> {
        let path = self.dir.join(STATE_FILE);
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| ChatStoreError::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        fsio::write_atomic(&path, &bytes).map_err(|source| ChatStoreError::Io { path, source })?;
        self.state = next;
        Ok(())
    }

    fn repair_log(&self) -> Result<(), ChatStoreError> {
        let path = self.log_path();
        let io_err = |source| ChatStoreError::Io {
            path: path.clone(),
            source,
        };
        let actual = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(e)),
        };
        if actual < self.state.log_len {
            return Err(ChatStoreError::LogTooShort {
                path,
                actual,
                expected: self.state.log_len,
            });
        }
        if actual > self.state.log_len {
            tracing::info!(path = %path.display(), committed = self.state.log_len, actual, "cutting an unfinished commit off the chat log");
            let file = fsio::open_private_rw(&path).map_err(io_err)?;
            file.set_len(self.state.log_len).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        Ok(())
    }

    fn remove_stale_spools(&self) -> Result<(), ChatStoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|source| ChatStoreError::Io {
            path: self.dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(generation) = name
                .to_str()
                .and_then(|n| n.strip_prefix("walk-"))
                .and_then(|n| n.strip_suffix(".spool"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if generation < self.state.next_walk {
                fsio::remove_durably(&entry.path()).map_err(|source| ChatStoreError::Io {
                    path: entry.path(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

fn advance_head(head: &mut Option<Head>, m: &Message) {
    match head {
        Some(h) if m.ts < h.ts => {}
        Some(h) if m.ts == h.ts => {
            if !h.ids.contains(&m.id) {
                h.ids.push(m.id.clone());
            }
        }
        _ => {
            *head = Some(Head {
                ts: m.ts,
                ids: vec![m.id.clone()],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::spool::Checkpoint;

    fn msg(id: &str, ts: f64) -> Message {
        Message::from_stored_line(&format!(r#"{{"id":"{id}","ts":{ts}}}"#)).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            cursor: None,
            limit: 50,
            boundary: None,
            inclusive: None,
            spooled: 0,
            requests: 0,
        }
    }

    fn ids(store: &ChatStore) -> Vec<String> {
        store
            .lines()
            .unwrap()
            .map(|l| {
                Message::from_stored_line(&l.unwrap())
                    .unwrap()
                    .id
                    .as_str()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn commits_append_in_chronological_order_and_move_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(dir.path()).unwrap();
        let mut spool = store.open_walk().unwrap();
        spool
            .append_page(&checkpoint(), &[msg("d", 4.0), msg("c", 3.0)])
            .unwrap();
        spool
            .append_page(&checkpoint(), &[msg("a", 1.0), msg("b", 3.0)])
            .unwrap();
        spool.mark_done(&checkpoint()).unwrap();
        assert_eq!(store.commit(spool).unwrap().added, 4);
        let mut spool = store.open_walk().unwrap();
        spool.append_page(&checkpoint(), &[msg("e", 4.0)]).unwrap();
        store.commit(spool).unwrap();

        let store = ChatStore::open(dir.path()).unwrap();
        let got = ids(&store);
        assert!(
            got == ["a", "c", "b", "d", "e"] || got == ["a", "b", "c", "d", "e"],
            "{got:?}"
        );
        let state = store.state();
        assert_eq!(state.message_count, 5);
        assert_eq!(state.oldest, Ts::new(1.0));
        let head = state.head.as_ref().unwrap();
        assert_eq!(head.ts, Ts::new(4.0).unwrap());
        assert_eq!(head.ids, vec![MessageId::from("d"), MessageId::from("e")]);
    }

    #[test]
    fn a_torn_commit_is_cut_and_the_spool_committed_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(dir.path()).unwrap();
        let mut spool = store.open_walk().unwrap();
        spool.append_page(&checkpoint(), &[msg("a", 1.0)]).unwrap();
        store.commit(spool).unwrap();
        let mut spool = store.open_walk().unwrap();
        spool.append_page(&checkpoint(), &[msg("b", 2.0)]).unwrap();
        spool.mark_done(&checkpoint()).unwrap();
        drop(spool);
        // A crash after part of the gzip member reached the log.
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(store.log_path())
            .unwrap();
        log.write_all(&[0x1f, 0x8b, 8, 0, 0]).unwrap();
        drop(log);

        let mut store = ChatStore::open(dir.path()).unwrap();
        assert_eq!(ids(&store), ["a"]);
        assert!(store.has_pending_walk());
        let spool = store.open_walk().unwrap();
        assert!(spool.is_done());
        store.commit(spool).unwrap();
        assert_eq!(ids(&store), ["a", "b"]);
    }

    #[test]
    fn a_spool_left_after_its_commit_is_not_applied_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(dir.path()).unwrap();
        let mut spool = store.open_walk().unwrap();
        spool.append_page(&checkpoint(), &[msg("a", 1.0)]).unwrap();
        let spool_path = dir.path().join("walk-0.spool");
        let saved = fs::read(&spool_path).unwrap();
        store.commit(spool).unwrap();
        // A crash between the state write and the spool deletion.
        fs::write(&spool_path, saved).unwrap();
        let store = ChatStore::open(dir.path()).unwrap();
        assert!(!spool_path.exists());
        assert!(!store.has_pending_walk());
        assert_eq!(ids(&store), ["a"]);
    }
}
