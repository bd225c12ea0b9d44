//! The media index: one JSON line per event in the life of a URL (fetched,
//! failed, gone, refused), appended and fsynced, never rewritten. The last
//! line for a URL is its state. A crash mid-append leaves a line without
//! its newline, which the next open cuts off: a record is either whole or
//! absent, and a file is recorded only after it was renamed into place.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{MediaHash, MediaUrl};
use crate::store::fsio;

/// What became of a URL, as its last record says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MediaState {
    /// Stored as `file` (`<hash>.<ext>` in the store).
    Fetched {
        hash: MediaHash,
        file: String,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
    /// Not stored this time; tried again from `next_retry` on.
    Failed {
        attempts: u32,
        next_retry: DateTime<Utc>,
        error: String,
    },
    /// The host answered 404 or 410: the message keeps its URL, nothing
    /// more is asked.
    Gone { status: u16 },
    /// Larger than `max_file_size` (at the time): not stored, not retried.
    TooLarge { limit: u64 },
    /// Never fetched: not http(s), an address on the host's own network,
    /// too many redirects.
    Refused { reason: String },
}

impl MediaState {
    /// Whether a run should (try to) fetch the URL at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        matches!(self, MediaState::Failed { next_retry, .. } if *next_retry <= now)
    }
}

/// One line of the index.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MediaRecord {
    pub url: MediaUrl,
    /// When this happened.
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub state: MediaState,
}

/// The index file, open for appending, and the last record of each URL.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    /// `None` until the first record: a data directory without media gets
    /// no `media/` at all.
    file: Option<File>,
    latest: HashMap<MediaUrl, MediaRecord>,
}

impl Index {
    /// Opens (creating) the index at `path`, cutting off a torn last line.
    /// Lines that do not parse (written by a newer chatkeep, say) are
    /// skipped, not fatal: the worst outcome is a file fetched again.
    pub fn open(path: &Path) -> io::Result<Index> {
        let mut file = match fsio::open_read(path) {
            Ok(_) => fsio::open_private_rw(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Index {
                    path: path.to_owned(),
                    file: None,
                    latest: HashMap::new(),
                });
            }
            Err(e) => return Err(e),
        };
        let mut latest = HashMap::new();
        let mut whole = 0u64;
        {
            let mut reader = io::BufReader::new(&file);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader.read_line(&mut line)?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                whole += n as u64;
                match serde_json::from_str::<MediaRecord>(&line) {
                    Ok(record) => {
                        latest.insert(record.url.clone(), record);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipped an unreadable line of the media index")
                    }
                }
            }
        }
        if file.metadata()?.len() != whole {
            tracing::info!(path = %path.display(), "cut an unfinished record off the media index");
            file.set_len(whole)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok(Index {
            path: path.to_owned(),
            file: Some(file),
            latest,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, url: &MediaUrl) -> Option<&MediaRecord> {
        self.latest.get(url)
    }

    /// Every URL's last record.
    pub fn records(&self) -> impl Iterator<Item = &MediaRecord> {
        self.latest.values()
    }

    /// Appends `record` durably; it is the URL's state from now on.
    pub fn append(&mut self, record: MediaRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(&record).map_err(io::Error::other)?;
        line.push(b'\n');
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(dir) = self.path.parent() {
                    fsio::create_private_dir(dir)?;
                }
                let file = fsio::open_private_rw(&self.path)?;
                if let Some(dir) = self.path.parent() {
                    fsio::sync_dir(dir)?;
                }
                self.file.insert(file)
            }
        };
        file.write_all(&line)?;
        file.sync_data()?;
        self.latest.insert(record.url.clone(), record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(url: &str, state: MediaState) -> MediaRecord {
        MediaRecord {
            url: MediaUrl::new(url),
            at: Utc::now(),
            state,
        }
    }

    #[test]
    fn the_last_record_wins_and_a_torn_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        let mut index = Index::open(&path).unwrap();
        index
            .append(record("https://a/1", MediaState::Gone { status: 404 }))
            .unwrap();
        let failed = MediaState::Failed {
            attempts: 1,
            next_retry: Utc::now(),
            error: "x".into(),
        };
        index.append(record("https://a/2", failed.clone())).unwrap();
        index
            .append(record("https://a/2", MediaState::TooLarge { limit: 5 }))
            .unwrap();
        drop(index);
        let before = std::fs::metadata(&path).unwrap().len();
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"url":"https://a/3","at":"#).unwrap();
        let index = Index::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
        assert_eq!(index.records().count(), 2);
        assert_eq!(
            index.get(&MediaUrl::new("https://a/2")).unwrap().state,
            MediaState::TooLarge { limit: 5 }
        );
        assert!(failed.is_due(Utc::now()));
    }
}
