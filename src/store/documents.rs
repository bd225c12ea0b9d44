//! Small documents (profile, memories, knowledge, training, user
//! personalization): the latest under the file name earlier tools used, and
//! every earlier content kept under `versions/` when it changes.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{PersonalityDir, StoreError, fsio};
use crate::config::Section;

/// The documents of a personality, by the suffix of their file name
/// (`<name><suffix>.json`), in the order a sync saves them; snapshots and
/// exports hold them in this order too.
pub const DOCUMENTS: [&str; 5] = [
    "",
    "_memories",
    "_knowledge",
    "_training",
    "_user_personalization",
];

/// The suffix of the document `section` is saved to; `None` for the chat
/// history, which is a log, not a document.
pub const fn document_suffix(section: Section) -> Option<&'static str> {
    match section {
        Section::Profile => Some(DOCUMENTS[0]),
        Section::Memories => Some(DOCUMENTS[1]),
        Section::Knowledge => Some(DOCUMENTS[2]),
        Section::Training => Some(DOCUMENTS[3]),
        Section::UserPersonalization => Some(DOCUMENTS[4]),
        Section::Chat => None,
    }
}

/// What saving a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocChange {
    Created,
    Updated,
    Unchanged,
}

impl DocChange {
    pub fn as_str(self) -> &'static str {
        match self {
            DocChange::Created => "created",
            DocChange::Updated => "updated",
            DocChange::Unchanged => "unchanged",
        }
    }
}

impl PersonalityDir {
    /// The file of a document, e.g. `lilith_memories.json` for suffix `_memories`.
    pub fn document_path(&self, suffix: &str) -> PathBuf {
        self.path().join(format!("{}{suffix}.json", self.name()))
    }

    pub fn versions_dir(&self) -> PathBuf {
        self.path().join("versions")
    }

    /// The stored document with `suffix`, open for reading; `None` if none
    /// was ever saved. A sync replaces a document by rename, so what is read
    /// from the open file is one whole version, never a mix of two.
    pub fn open_document(&self, suffix: &str) -> io::Result<Option<File>> {
        match fsio::open_read(&self.document_path(suffix)) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The stored content of a document, if any.
    pub fn read_document(&self, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        match fsio::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Replaces a document with `bytes`. A different earlier content is first
    /// kept as `versions/<stem>.<UTC time>.json` (a hard link, or a copy
    /// where links are not possible; either only as a new file), so nothing upstream ever changes away
    /// without a copy; the current file stays in place until the new one
    /// replaces it whole. If the write fails (a full disk), the new version
    /// entry is taken back and the document is as it was. A crash between
    /// the two leaves the current content in both places, which costs one
    /// duplicate entry in `versions/` and loses nothing.
    pub fn save_versioned(&self, path: &Path, bytes: &[u8]) -> Result<DocChange, StoreError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        fsio::create_private_dir(self.path()).map_err(io_err(self.path()))?;
        let kept = match self.read_document(path)? {
            Some(old) if old == bytes => return Ok(DocChange::Unchanged),
            Some(old) => {
                let versions = self.versions_dir();
                fsio::create_private_dir(&versions).map_err(io_err(&versions))?;
                let keep = version_path(&versions, path);
                // link(2) and the copy's exclusive create both fail if
                // `keep` exists; neither follows a link there.
                fs::hard_link(path, &keep)
                    .or_else(|_| fsio::write_new(&keep, &old))
                    .map_err(io_err(&keep))?;
                fsio::sync_dir(&versions).map_err(io_err(&versions))?;
                Some(keep)
            }
            None => None,
        };
        if let Err(source) = fsio::write_atomic(path, bytes) {
            if let Some(keep) = &kept {
                // Best effort: a leftover is a duplicate, never a loss.
                let _ = fsio::remove_durably(keep);
            }
            return Err(io_err(path)(source));
        }
        Ok(if kept.is_some() {
            DocChange::Updated
        } else {
            DocChange::Created
        })
    }
}

/// `versions/<stem>.<YYYYMMDDTHHMMSSZ>.json`, with `-N` if that one exists.
fn version_path(versions: &Path, current: &Path) -> PathBuf {
    let stem = current
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut candidate = versions.join(format!("{stem}.{stamp}.json"));
    let mut n = 1;
    while candidate.exists() {
        candidate = versions.join(format!("{stem}.{stamp}-{n}.json"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::super::personality_dir;
    use super::*;

    #[test]
    fn a_changed_document_keeps_every_earlier_version() {
        let root = tempfile::tempdir().unwrap();
        let dir = personality_dir(root.path(), "lilith").unwrap();
        let path = dir.document_path("_knowledge");
        assert_eq!(dir.save_versioned(&path, b"[1]").unwrap(), DocChange::Created);
        assert_eq!(dir.save_versioned(&path, b"[1]").unwrap(), DocChange::Unchanged);
        assert_eq!(dir.save_versioned(&path, b"[2]").unwrap(), DocChange::Updated);
        assert_eq!(dir.save_versioned(&path, b"[3]").unwrap(), DocChange::Updated);
        assert_eq!(fs::read(&path).unwrap(), b"[3]");
        let mut kept: Vec<Vec<u8>> = fs::read_dir(dir.versions_dir())
            .unwrap()
            .map(|e| fs::read(e.unwrap().path()).unwrap())
            .collect();
        kept.sort();
        assert_eq!(kept, vec![b"[1]".to_vec(), b"[2]".to_vec()]);
        assert!(path.ends_with("lilith/lilith_knowledge.json"));
    }

    #[test]
    fn a_failed_write_keeps_the_document_and_takes_its_version_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = personality_dir(root.path(), "lilith").unwrap();
        let path = dir.document_path("_training");
        dir.save_versioned(&path, b"[1]").unwrap();
        // The temp file of the next write cannot be made: a directory is in its way.
        let tmp = dir
            .path()
            .join(format!(".lilith_training.json.tmp-{}", std::process::id()));
        fs::create_dir(&tmp).unwrap();
        assert!(dir.save_versioned(&path, b"[2]").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"[1]");
        assert_eq!(fs::read_dir(dir.versions_dir()).unwrap().count(), 0);
        fs::remove_dir(&tmp).unwrap();
        assert_eq!(dir.save_versioned(&path, b"[2]").unwrap(), DocChange::Updated);
        assert_eq!(fs::read_dir(dir.versions_dir()).unwrap().count(), 1);
    }
}
