//! Every gzip member of a chat log file, found by reading it once: what a
//! reader that pages through a long history at random (the web view) keeps
//! in memory to start anywhere within one member (at most
//! [`marks::MEMBER_MESSAGES`] messages) of any place. The state keeps only
//! a few marks per file ([`marks::MAX_MARKS`]); this finds them all.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use flate2::bufread::GzDecoder;

use super::marks::Mark;
use super::reader::{FileRange, Start};
use super::{ChatStore, ChatStoreError, History};
use crate::message::{Message, Ts};
use crate::store::fsio;

/// One file of the history, as [`ChatStore::files`] lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFile {
    /// Its position among the files (the segments, then the open log).
    pub source: usize,
    /// Its name, and committed length: a sealed segment never changes, so
    /// the two identify what was scanned.
    pub name: String,
    pub len: u64,
}

/// A reader that counts what it has handed out.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl ChatStore {
    /// The files of the committed history, oldest first.
    pub fn files(&self) -> Vec<LogFile> {
        let mut files: Vec<LogFile> = self
            .state
            .segments
            .iter()
            .enumerate()
            .map(|(source, s)| LogFile {
                source,
                name: s.file.clone(),
                len: s.len,
            })
            .collect();
        if self.log.is_some() && self.state.log_len > 0 {
            files.push(LogFile {
                source: files.len(),
                name: super::LOG_FILE.to_owned(),
                len: self.state.log_len,
            });
        }
        files
    }

    /// Reads `file` once and lists where each of its gzip members starts,
    /// with its first message's `ts` and the messages before it in the file.
    /// Also hands each message's `ts` to `each` (one pass for whoever
    /// counts them too).
    pub fn scan_members(
        &self,
        file: &LogFile,
        mut each: impl FnMut(Ts),
    ) -> Result<Vec<Mark>, ChatStoreError> {
        let (path, handle) = if file.source < self.state.segments.len() {
            let path = self.segment_path(&self.state.segments[file.source]);
            let handle = fsio::open_read(&path).map_err(|e| io_err(&path, e))?;
            (path, Arc::new(handle))
        } else {
            let handle: Arc<File> = self
                .log
                .clone()
                .ok_or_else(|| io_err(&self.log_path(), io::Error::other("the open log is not open")))?;
            (self.log_path(), handle)
        };
        let mut reader = BufReader::with_capacity(
            1 << 16,
            Counting {
                inner: FileRange::new(handle, file.len),
                read: 0,
            },
        );
        let mut marks = Vec::new();
        let mut before = 0u64;
        loop {
            let offset = reader.get_ref().read - reader.buffer().len() as u64;
            if offset >= file.len {
                break;
            }
            let mut first = None;
            let mut lines = BufReader::new(GzDecoder::new(&mut reader)).lines();
            let mut n = 0u64;
            for line in &mut lines {
                let line = line.map_err(|e| io_err(&path, e))?;
                let ts =
                    Message::stored_ts(&line).or_else(|| Message::stored_keys(&line).ok().map(|(_, ts)| ts));
                if let Some(ts) = ts {
                    first.get_or_insert(ts);
                    each(ts);
                }
                n += 1;
            }
            drop(lines);
            if let Some(first) = first {
                marks.push(Mark {
                    offset,
                    first,
                    before,
                });
            }
            if n == 0 && reader.get_ref().read - reader.buffer().len() as u64 == offset {
                // Nothing consumed: not a gzip member; stop rather than loop.
                break;
            }
            before += n;
        }
        Ok(marks)
    }

    /// The history from `mark` of the file at `source` (one that
    /// [`ChatStore::scan_members`] found), entries with their keys.
    pub fn history_from_member(&self, source: usize, mark: &Mark) -> History {
        History::new(
            self,
            Start {
                source,
                offset: mark.offset,
            },
            Some(mark.first),
            true,
        )
    }
}

fn io_err(path: &std::path::Path, source: io::Error) -> ChatStoreError {
    ChatStoreError::Io {
        path: path.to_owned(),
        source,
    }
}
