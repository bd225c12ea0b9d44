//! Reading the committed history: the sealed segments in order, then the
//! open log, as one stream of stored lines.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::ChatStore;
use crate::store::fsio;

const BUFFER: usize = 1 << 16;

/// A file of the history still to be read, from byte `start` (the start of
/// a gzip member) to its committed length.
enum Source {
    /// A sealed segment, opened only when its turn comes: it never changes
    /// and is never removed.
    Segment { path: PathBuf, start: u64, len: u64 },
    /// The open log, opened when the store was, so that a seal renaming it
    /// in the meantime does not matter.
    Open {
        path: PathBuf,
        file: Arc<File>,
        start: u64,
        len: u64,
    },
}

/// Where a partial read of the history starts: the `source`-th file (the
/// segments in order, then the open log), at byte `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Start {
    pub source: usize,
    pub offset: u64,
}

/// The stored lines of a whole history, oldest first.
pub(super) struct Lines {
    pending: VecDeque<Source>,
    current: Option<(PathBuf, io::Lines<Box<dyn BufRead + Send>>)>,
}

impl Lines {
    /// The whole history.
    pub(super) fn new(store: &ChatStore) -> Lines {
        Lines::from(store, Start { source: 0, offset: 0 })
    }

    /// The history from `start` on.
    pub(super) fn from(store: &ChatStore, start: Start) -> Lines {
        let mut pending: VecDeque<Source> = store
            .state
            .segments
            .iter()
            .map(|segment| Source::Segment {
                path: store.segment_path(segment),
                start: 0,
                len: segment.len,
            })
            .collect();
        if let Some(file) = &store.log {
            pending.push_back(Source::Open {
                path: store.log_path(),
                file: Arc::clone(file),
                start: 0,
                len: store.state.log_len,
            });
        }
        pending.drain(..start.source.min(pending.len()));
        if let Some(Source::Segment { start: s, .. } | Source::Open { start: s, .. }) = pending.front_mut() {
            *s = start.offset;
        }
        Lines {
            pending,
            current: None,
        }
    }

    /// The open log only.
    pub(super) fn open_log(store: &ChatStore) -> Lines {
        let mut lines = Lines::new(store);
        lines
            .pending
            .retain(|source| matches!(source, Source::Open { .. }));
        lines
    }
}

impl Iterator for Lines {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<io::Result<String>> {
        loop {
            if let Some((path, lines)) = &mut self.current {
                match lines.next() {
                    Some(Ok(line)) => return Some(Ok(line)),
                    Some(Err(e)) => return Some(Err(named(path, e))),
                    None => self.current = None,
                }
            }
            let (path, file, start, len) = match self.pending.pop_front()? {
                Source::Segment { path, start, len } => match fsio::open_read(&path) {
                    Ok(file) => (path, Arc::new(file), start, len),
                    Err(e) => return Some(Err(named(&path, e))),
                },
                Source::Open {
                    path,
                    file,
                    start,
                    len,
                } => (path, file, start, len),
            };
            let range = FileRange {
                file,
                pos: start.min(len),
                end: len,
            };
            let gz = MultiGzDecoder::new(BufReader::with_capacity(BUFFER, range));
            let reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(BUFFER, gz));
            self.current = Some((path, reader.lines()));
        }
    }
}

/// The first `end` bytes of a file, read by position, so that any number
/// of readers can share one handle.
pub(super) struct FileRange {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl FileRange {
    /// The first `len` bytes of `file`.
    pub(super) fn new(file: Arc<File>, len: u64) -> FileRange {
        FileRange {
            file,
            pos: 0,
            end: len,
        }
    }
}

impl Read for FileRange {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..want], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ends at byte {} of its committed {}", self.pos, self.end),
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

/// `e`, saying which file it is about.
fn named(path: &std::path::Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
