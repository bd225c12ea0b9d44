//! The content-addressed files, `<data_dir>/media/<sha256>.<ext>`, and the
//! index beside them. A download is written to `.part-<pid>-<n>` in the
//! same directory, hashed as it is written, fsynced, then renamed to its
//! hash's name: a file with a hash name is always whole. A kill
//! mid-download leaves only a `.part-` file, which the next open removes.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use super::index::{Index, MediaRecord, NumberedRef, RefPage, StateCounts};
use super::refs::{MediaKind, MediaRef};
use super::{MediaHash, MediaUrl};
use crate::store::fsio;

/// The directory under the data directory.
pub const MEDIA_DIR: &str = "media";
pub use super::index::INDEX_FILE;
const PART_PREFIX: &str = ".part-";

/// The media store of one data directory. Shared by every personality's
/// sync of a process (the daemon's workers too): the index is behind a
/// lock, downloads write distinct temporary files.
#[derive(Debug)]
pub struct MediaStore {
    dir: PathBuf,
    index: Mutex<Index>,
    next_part: AtomicU64,
    /// URLs being downloaded now, so that two workers whose personalities
    /// link the same file do not both fetch it.
    in_flight: Mutex<HashSet<MediaUrl>>,
}

/// The right to download a URL, held while it is downloaded.
#[derive(Debug)]
pub struct Claim<'a> {
    store: &'a MediaStore,
    url: MediaUrl,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.store
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.url);
    }
}

impl MediaStore {
    /// Opens `<data_dir>/media` if it exists (it is made, 0700, with the
    /// first download), removes what killed downloads left, and reads the
    /// index. The caller holds the data directory's lock, so no other
    /// process is downloading here.
    pub fn open(data_dir: &Path) -> io::Result<MediaStore> {
        let dir = data_dir.join(MEDIA_DIR);
        let index = Index::open(&dir)?;
        let store = MediaStore {
            index: Mutex::new(index),
            next_part: AtomicU64::new(0),
            in_flight: Mutex::new(HashSet::new()),
            dir,
        };
        if store.dir.exists() {
            fsio::check_private_dir(&store.dir).map_err(io::Error::other)?;
            store.remove_parts()?;
        }
        Ok(store)
    }

    /// Removes the temporary files of downloads a kill interrupted.
    fn remove_parts(&self) -> io::Result<()> {
        let dir = &self.dir;
        let mut removed = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(PART_PREFIX) {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed unfinished media downloads of an earlier run");
            fsio::sync_dir(dir)?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a stored file (`file` as its record names it).
    pub fn path_of(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last record of `url`, if any.
    pub fn get(&self, url: &MediaUrl) -> io::Result<Option<MediaRecord>> {
        self.index().get(url)
    }

    /// Adds the references of `personality` not listed yet; how many were new.
    pub fn add_refs(&self, personality: &str, refs: &[MediaRef]) -> io::Result<u64> {
        self.index().add_refs(personality, refs)
    }

    /// The number of the last reference of `personality`; 0 for none.
    pub fn last_seq(&self, personality: &str) -> io::Result<i64> {
        self.index().last_seq(personality)
    }

    /// A page of the references of `personality`.
    pub fn refs_page(&self, personality: &str, page: RefPage) -> io::Result<Vec<NumberedRef>> {
        self.index().refs_page(personality, page)
    }

    /// The states of the distinct URLs that references of `kinds` make.
    pub fn counts(&self, personality: &str, kinds: &[MediaKind]) -> io::Result<StateCounts> {
        self.index().counts(personality, kinds)
    }

    /// Takes in a personality's `media_refs.jsonl` of an earlier version.
    pub fn import_legacy_refs(&self, personality: &str, legacy: &Path) -> io::Result<()> {
        self.index().import_legacy_refs(personality, legacy)
    }

    /// Drops the references of a forgotten personality.
    pub fn forget(&self, personality: &str) -> io::Result<u64> {
        self.index().forget(personality)
    }

    /// Claims `url` for a download; `None` while another task has it.
    pub fn claim(&self, url: &MediaUrl) -> Option<Claim<'_>> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        in_flight.insert(url.clone()).then(|| Claim {
            store: self,
            url: url.clone(),
        })
    }

    /// Records what became of a URL, durably.
    pub fn record(&self, record: MediaRecord) -> io::Result<()> {
        self.index().record(&record)
    }

    /// Starts a download: a new temporary file in the store's directory.
    pub fn begin(&self) -> io::Result<Part> {
        fsio::create_private_dir(&self.dir)?;
        let n = self.next_part.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{PART_PREFIX}{}-{n}", std::process::id()));
        let file = fsio::create_new_private(&path)?;
        Ok(Part {
            dir: self.dir.clone(),
            path,
            file: Some(file),
            hasher: Sha256::new(),
            len: 0,
        })
    }
}

/// A download being written. Dropped unfinished, its file is removed.
#[derive(Debug)]
pub struct Part {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    len: u64,
}

impl Part {
    /// Appends `bytes`; the hash is of what was written.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("download already finished"))?;
        file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fsyncs the file, names it `<hash>.<ext>` and fsyncs the directory.
    /// The same content already stored under that name is replaced by
    /// identical bytes, which changes nothing.
    pub fn finish(mut self, ext: &str) -> io::Result<(MediaHash, String)> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("download already finished"))?;
        file.sync_all()?;
        drop(file);
        let hash = MediaHash::from_digest(&std::mem::take(&mut self.hasher).finalize());
        let name = format!("{hash}.{ext}");
        fs::rename(&self.path, self.dir.join(&name))?;
        fsio::sync_dir(&self.dir)?;
        Ok((hash, name))
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: the next open removes it otherwise.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_download_takes_its_hash_as_name_and_an_abandoned_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path()).unwrap();
        let mut part = store.begin().unwrap();
        part.write(b"hello ").unwrap();
        part.write(b"world").unwrap();
        let (hash, name) = part.finish("png").unwrap();
        assert_eq!(
            hash.as_str(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(std::fs::read(store.path_of(&name)).unwrap(), b"hello world");
        let mut abandoned = store.begin().unwrap();
        abandoned.write(b"half").unwrap();
        drop(abandoned);
        let names: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(PART_PREFIX)), "{names:?}");
    }

    #[test]
    fn what_a_killed_download_left_is_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path()).unwrap();
        let mut part = store.begin().unwrap();
        part.write(b"partial").unwrap();
        // A kill: neither finished nor dropped.
        std::mem::forget(part);
        drop(store);
        let store = MediaStore::open(dir.path()).unwrap();
        let left = std::fs::read_dir(store.dir()).unwrap().count();
        assert_eq!(left, 0, "nothing is left");
    }
}
