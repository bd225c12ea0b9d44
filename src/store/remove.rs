//! Removing one personality's directory from the data directory: for
//! `chatkeep forget`, and for a sync of a name the service does not know
//! that would otherwise leave an empty backup behind.

use std::io;
use std::path::{Path, PathBuf};

use super::{PersonalityDir, Store, StoreError, fsio};

/// The status file a sync writes even when nothing was backed up.
const STATUS_FILE: &str = "status.json";

/// Prefix of the hidden name a directory is renamed to before it is
/// deleted. Hidden names are never personalities: `status` and the
/// start-up checks pass over them, and the next removal of the same name
/// finishes what a crash left.
const REMOVING_PREFIX: &str = ".removing-";

impl PersonalityDir {
    /// The directory holds a backup: anything besides a status file (a
    /// document, the chat log or its state, a walk's spool). A directory
    /// that is missing, or holds only the status file of a sync that never
    /// got past the profile, holds none.
    pub fn holds_backup(&self) -> bool {
        match std::fs::read_dir(self.path()) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .any(|e| e.file_name() != STATUS_FILE),
            // Unreadable is not empty: assume there is something to keep.
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        }
    }
}

impl Store {
    /// Removes the directory of `name` and everything in it, if it exists;
    /// says whether it did. The directory is first renamed to a hidden name
    /// (and the data directory fsynced), so a crash or a failure half way
    /// never leaves a partial backup under the personality's name; then the
    /// hidden copy is deleted. Only the data directory is touched: the
    /// archive directory and its snapshots are not. The caller holds the
    /// lock (a `&Store` says it does), so no sync writes there meanwhile.
    pub fn remove_personality(&self, name: &str) -> Result<bool, StoreError> {
        let dir = self.personality(name)?;
        let path = dir.path();
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(io_err(path)(io::Error::other(
                    "not a directory; chatkeep removes only the directories it made",
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(path)(e)),
        }
        let hidden = self.removing_path(name);
        // What an earlier, interrupted removal of the same name left.
        remove_tree(&hidden).map_err(io_err(&hidden))?;
        std::fs::rename(path, &hidden).map_err(io_err(path))?;
        fsio::sync_dir(self.root()).map_err(io_err(self.root()))?;
        remove_tree(&hidden).map_err(io_err(&hidden))?;
        fsio::sync_dir(self.root()).map_err(io_err(self.root()))?;
        Ok(true)
    }

    fn removing_path(&self, name: &str) -> PathBuf {
        self.root().join(format!("{REMOVING_PREFIX}{name}"))
    }
}

/// Deletes a directory tree if it exists (never following a symbolic link).
fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_the_whole_directory_and_nothing_beside_it() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let gone = data.path().join("gone");
        std::fs::create_dir_all(gone.join("segments")).unwrap();
        std::fs::write(gone.join("segments/chat-1-2.jsonl.gz"), b"x").unwrap();
        std::fs::write(gone.join("gone.json"), b"{}").unwrap();
        let kept = data.path().join("kept");
        std::fs::create_dir(&kept).unwrap();
        std::fs::write(kept.join("kept.json"), b"{}").unwrap();
        // An earlier removal of the same name that stopped half way.
        std::fs::create_dir(data.path().join(".removing-gone")).unwrap();

        assert!(store.personality("gone").unwrap().holds_backup());
        assert!(store.remove_personality("gone").unwrap());
        assert!(!gone.exists() && !data.path().join(".removing-gone").exists());
        assert!(kept.join("kept.json").is_file());
        assert!(
            !store.remove_personality("gone").unwrap(),
            "nothing left to remove"
        );
    }

    #[test]
    fn only_a_status_file_is_no_backup() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let dir = store.personality("typo").unwrap();
        assert!(!dir.holds_backup(), "missing");
        std::fs::create_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("status.json"), b"{}").unwrap();
        assert!(!dir.holds_backup(), "a status file alone");
        std::fs::write(dir.path().join("chat_state.json"), b"{}").unwrap();
        assert!(dir.holds_backup());
    }

    #[test]
    fn a_file_or_a_link_under_the_name_is_left_alone() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        std::fs::write(data.path().join("plain"), b"x").unwrap();
        assert!(store.remove_personality("plain").is_err());
        assert!(data.path().join("plain").is_file());
    }
}
