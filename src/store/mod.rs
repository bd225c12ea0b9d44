//! The on-disk layout. Knows files, nothing of HTTP.
//!
//! ```text
//! <data_dir>/
//!   .chatkeep.lock            one process per data directory
//!   .chatkeep.sock            the daemon's control socket, while it runs (see crate::control)
//!   rate_limit.state          the token bucket, left for the next process (see rate_state)
//!   .removing-<name>/         a personality directory being removed (see remove)
//!   <name>/
//!     <name>.json             the profile, as last fetched
//!     chat_state.json         the sealed segments, committed length of the open log, head
//!     segments/
//!       chat-<first ms>-<last ms>.jsonl.gz   sealed chat log segments, never changed again
//!     chat.jsonl.gz           the open chat log: what came after the last segment
//!     walk-<n>.spool          an unfinished walk, if any
//!     media_refs.scanned      the chat state the history was last read from for media
//!                             links (see media::run)
//!   media/                    the media of every personality (see media::store), made
//!                             with the first download
//!     <sha256>.<ext>          a downloaded file, named by the hash of its bytes:
//!                             stored once however many messages or personalities link it
//!     index.sqlite            what became of each URL (fetched, failed, gone, refused),
//!                             and the URLs each personality's messages and profile
//!                             point to (see media::index)
//!     .part-<pid>-<n>         a download under way; removed at the next start if left
//! ```
//!
//! Media is shared rather than kept per personality: the same avatar or
//! picture linked from two personalities is one download and one file, and
//! the index's per-personality list keeps which messages point to it. Forgetting a
//! personality leaves its media files in `media/` (another may link them).

pub mod chat;
pub mod documents;
pub mod fsio;
pub mod rate_state;
mod remove;
pub mod spool;

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

pub use chat::commit::FUTURE_TOLERANCE;
pub use chat::{
    Beginning, ChatState, ChatStore, ChatStoreError, Commit, CommitSummary, Entry, Head, History, Key,
    LogSpan, Recent, SEGMENT_DIR, Segment, Story, Version,
};
pub use documents::DocChange;
pub use rate_state::{RATE_STATE_FILE, RateStateFile};
pub use spool::{Boundary, Checkpoint, Spool, SpoolError, WalkEnd, WalkInProgress, WalkKind};

const LOCK_FILE: &str = ".chatkeep.lock";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory inside the data directory (or the directory
    /// itself) could not be read or written.
    #[error("{}: {}", path.display(), fsio::explain(source))]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "data directory {path} is in use by another chatkeep process (pid {holder}); stop it or wait for it to finish"
    )]
    Locked { path: PathBuf, holder: String },
    /// Found at start-up, before anything is asked of the service.
    #[error(
        "data directory {path} is not writable ({source}): make it writable by the user chatkeep runs as \
         (under systemd, it must be among ReadWritePaths=), remount its file system read-write, or set \
         storage.data_dir in the config to a writable directory; nothing was changed"
    )]
    ReadOnly { path: PathBuf, source: io::Error },
    #[error("`{0}` cannot be used as a directory name inside the data directory")]
    BadName(String),
    /// The data directory, one of its personality directories, or the
    /// archive directory is not chatkeep's alone (see [`fsio::check_private_dir`]).
    #[error("{0}; nothing was changed")]
    Unsafe(fsio::UnsafeDir),
}

/// The data directory, held exclusively for as long as this value lives.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    _lock: File,
}

impl Store {
    /// Opens (creating, 0700) the data directory and takes its lock. A second
    /// process fails here with the holder's pid. A data directory, or a
    /// directory in it, that another user can write (or that is a symbolic
    /// link, or another user's) is refused here, before anything is written
    /// in it (see [`check_private_tree`]).
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        // Creating the directory or its lock file is the first write: a
        // read-only or foreign data directory shows here, before any request.
        let not_writable = |path: &Path| {
            let path = path.to_owned();
            move |source: io::Error| match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly {
                    path: root.to_owned(),
                    source,
                },
                _ => StoreError::Io { path, source },
            }
        };
        fsio::create_private_dir(root).map_err(|e| match fsio::into_unsafe_dir(e) {
            Ok(found) => StoreError::Unsafe(found),
            Err(e) => not_writable(root)(e),
        })?;
        check_private_tree(root)?;
        let lock_path = root.join(LOCK_FILE);
        let mut lock = fsio::open_private_rw(&lock_path).map_err(not_writable(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::Locked {
                    path: root.to_owned(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    path: lock_path,
                    source,
                });
            }
        }
        let write_pid = |lock: &mut File| -> io::Result<()> {
            lock.set_len(0)?;
            lock.rewind()?;
            writeln!(lock, "{}", std::process::id())?;
            lock.sync_data()
        };
        write_pid(&mut lock).map_err(|source| StoreError::Io {
            path: lock_path,
            source,
        })?;
        Ok(Store {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The token bucket's state file, for the one rate limiter of the
    /// process that holds the data directory (a `&Store` says it does).
    pub fn rate_state(&self) -> Result<RateStateFile, StoreError> {
        RateStateFile::open(&self.root).map_err(|source| StoreError::Io {
            path: self.root.join(RATE_STATE_FILE),
            source,
        })
    }

    /// The directory of one personality. Names that could escape the data
    /// directory are refused even though the config already validates them.
    pub fn personality(&self, name: &str) -> Result<PersonalityDir, StoreError> {
        personality_dir(&self.root, name)
    }
}

/// Checks `root` (the data directory, or the archive directory) and each
/// directory in it that chatkeep could use (a personality's, `archives`)
/// with [`fsio::check_private_dir`], so that one another user can write is
/// refused at start-up rather than when its personality's turn comes.
/// Entries whose names chatkeep never uses (`lost+found` of a mount point)
/// are left alone; a symbolic link under a usable name is refused. Deeper
/// directories (`segments/`, `versions/`) are checked when they are used.
pub fn check_private_tree(root: &Path) -> Result<(), StoreError> {
    fsio::check_private_dir(root).map_err(StoreError::Unsafe)?;
    let entries = std::fs::read_dir(root).map_err(|source| StoreError::Io {
        path: root.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let usable = entry.file_name().to_str().is_some_and(usable_name);
        let dir_or_link = entry.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink());
        if usable && dir_or_link {
            fsio::check_private_dir(&entry.path()).map_err(StoreError::Unsafe)?;
        }
    }
    Ok(())
}

/// The characters and shape of a name that can become a directory in the
/// data directory (its reserved names aside).
fn usable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Where a personality's files live, without taking the lock: for readers
/// such as `export` that may run beside a daemon.
pub fn personality_dir(root: &Path, name: &str) -> Result<PersonalityDir, StoreError> {
    // Same rules as the config's slugs, checked again: this is the one
    // place a name becomes a path.
    let safe = !crate::config::RESERVED_NAMES.contains(&name) && usable_name(name);
    if !safe {
        return Err(StoreError::BadName(name.escape_debug().to_string()));
    }
    Ok(PersonalityDir {
        name: name.to_owned(),
        path: root.join(name),
    })
}

/// One personality's directory.
#[derive(Debug, Clone)]
pub struct PersonalityDir {
    name: String,
    path: PathBuf,
}

impl PersonalityDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chat history, sealing its open log at `segment_size` bytes.
    pub fn chat(&self, segment_size: u64) -> Result<ChatStore, ChatStoreError> {
        ChatStore::open_with(&self.path, segment_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_store_on_the_same_directory_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        match err {
            StoreError::Locked { holder, .. } => assert_eq!(holder, std::process::id().to_string()),
            other => panic!("unexpected {other:?}"),
        }
        drop(first);
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn names_that_escape_the_data_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "../x",
            "a/b",
            "",
            ".",
            "..",
            "a\0b",
            &"x".repeat(101),
            "status.json",
            "metrics.prom",
            RATE_STATE_FILE,
        ] {
            assert!(personality_dir(dir.path(), bad).is_err(), "{bad:?} accepted");
        }
        assert!(personality_dir(dir.path(), "lilith-2.0_x").is_ok());
    }
}
