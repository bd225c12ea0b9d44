//! Reading a remote: checking its snapshots against its manifest, and
//! restoring one.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Remote, RemoteError};
use crate::archive::snapshot::hex;
use crate::archive::{
    ArchiveError, RebuildOptions, RebuildReport, RestoreOptions, RestoreReport, SnapshotEntry,
    rebuild_from_file, restore_file,
};
use crate::config::Config;
use crate::store::fsio;

/// What `verify --remote` found for one personality on one remote.
#[derive(Debug, Default)]
pub struct RemoteCheck {
    /// Each listed snapshot, what was wrong with it, and whether its data
    /// was read (downloaded and hashed) or only its size compared.
    pub snapshots: Vec<(SnapshotEntry, Vec<String>, bool)>,
    /// Snapshot objects the manifest does not list: left by an interrupted
    /// upload, which the next push removes. Not taken for snapshots.
    pub unlisted: Vec<String>,
}

impl RemoteCheck {
    pub fn problem_count(&self) -> usize {
        self.snapshots.iter().map(|(_, p, _)| p.len()).sum()
    }
}

/// Checks the snapshots the remote lists for `name`: each object is there
/// with the manifest's size (from one listing); `read_percent` of them
/// (chosen at random, at least one when above 0) are downloaded and their
/// SHA-256 compared with the manifest's.
pub async fn verify_personality(
    remote: &Remote,
    name: &str,
    read_percent: u8,
) -> Result<RemoteCheck, RemoteError> {
    let manifest = remote.manifest(name).await?;
    let objects = remote.objects(name).await?;
    let mut check = RemoteCheck::default();
    let mut entries: Vec<&SnapshotEntry> = manifest.snapshots.iter().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.time));
    let to_read = read_set(entries.len(), read_percent);
    for (i, entry) in entries.into_iter().enumerate() {
        let mut problems = Vec::new();
        let read = to_read.contains(&i);
        match objects.get(&entry.file) {
            None => problems.push("missing: the manifest lists it, but the object is not there".to_owned()),
            Some(&size) if size != entry.size => problems.push(format!(
                "the object has {size} bytes, the manifest says {}",
                entry.size
            )),
            Some(_) if read => {
                let (size, sha256) = hash_object(remote, &remote.key(name, &entry.file)).await?;
                if size != entry.size || sha256 != entry.sha256 {
                    problems.push(format!(
                        "its data has {size} bytes with SHA-256 {sha256}, the manifest says {} bytes \
                         with {}",
                        entry.size, entry.sha256
                    ));
                }
            }
            Some(_) => {}
        }
        check.snapshots.push((entry.clone(), problems, read));
    }
    check.unlisted = objects
        .keys()
        .filter(|f| !manifest.contains_file(f))
        .cloned()
        .collect();
    check.unlisted.sort();
    Ok(check)
}

/// Which of `count` snapshots to read: `percent` of them, at random, at
/// least one unless `percent` is 0.
fn read_set(count: usize, percent: u8) -> Vec<usize> {
    let wanted = (count * usize::from(percent.min(100))).div_ceil(100);
    let mut all: Vec<usize> = (0..count).collect();
    all.shuffle(&mut rand::rng());
    all.truncate(wanted);
    all
}

/// Downloads `key`, streaming, and returns its size and SHA-256.
async fn hash_object(remote: &Remote, key: &ObjectPath) -> Result<(u64, String), RemoteError> {
    let mut stream = remote
        .store
        .get(key)
        .await
        .map_err(|e| remote.error("downloading a snapshot", e))?
        .into_stream();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| remote.error("downloading a snapshot", e))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Restores a snapshot of `name` from the remote, as a local restore does:
/// the snapshot is downloaded into a private directory in the archive
/// directory, checked against the remote's manifest, unpacked into
/// `options.to`, and the download removed.
pub async fn restore_personality(
    remote: &Remote,
    config: &Config,
    name: &str,
    options: &RestoreOptions<'_>,
) -> Result<RestoreReport, RemoteError> {
    fsio::check_output_path(options.to).map_err(ArchiveError::UnsafeDir)?;
    let (download, entry) =
        download(remote, config, name, options.snapshot, options.identity.is_some()).await?;
    Ok(restore_file(&download.file, &entry, options)?)
}

/// A snapshot of `name` the remote's manifest lists, downloaded into a
/// private directory in the archive directory (removed with the value),
/// and its entry. An encrypted one is refused without an identity, before
/// it is downloaded.
async fn download(
    remote: &Remote,
    config: &Config,
    name: &str,
    snapshot: &str,
    have_identity: bool,
) -> Result<(Downloaded, SnapshotEntry), RemoteError> {
    let manifest = remote.manifest(name).await?;
    let entry = manifest.entry(name, snapshot)?.clone();
    if entry.encrypted && !have_identity {
        return Err(ArchiveError::NeedIdentity {
            file: entry.file.clone(),
        }
        .into());
    }
    let dir = Download::create(config, &remote.config.name)?;
    let file = dir.dir.join(&entry.file);
    fetch(remote, &remote.key(name, &entry.file), &file).await?;
    Ok((Downloaded { _dir: dir, file }, entry))
}

/// A downloaded snapshot file, removed (with its directory) when dropped.
struct Downloaded {
    _dir: Download,
    file: PathBuf,
}

/// Rebuilds the store of `name` in the data directory `store` (held) from
/// a snapshot on the remote, downloaded as for a restore.
pub async fn rebuild_personality(
    remote: &Remote,
    config: &Config,
    store: &crate::store::Store,
    name: &str,
    snapshot: &str,
    options: &RebuildOptions<'_>,
) -> Result<RebuildReport, RemoteError> {
    let (download, entry) = download(remote, config, name, snapshot, options.identity.is_some()).await?;
    Ok(rebuild_from_file(
        store,
        config,
        name,
        &download.file,
        &entry,
        options,
    )?)
}

/// Downloads `key` into the new file `path`.
async fn fetch(remote: &Remote, key: &ObjectPath, path: &Path) -> Result<(), RemoteError> {
    let io_err = |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    };
    let mut stream = remote
        .store
        .get(key)
        .await
        .map_err(|e| remote.error("downloading a snapshot", e))?
        .into_stream();
    let file = fsio::create_new_private(path).map_err(io_err)?;
    let mut file = tokio::fs::File::from_std(file);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| remote.error("downloading a snapshot", e))?;
        file.write_all(&chunk).await.map_err(io_err)?;
    }
    file.flush().await.map_err(io_err)?;
    Ok(())
}

/// A private directory for a download, in the archive directory (so on a
/// disk meant for snapshots), removed with what it holds when dropped.
struct Download {
    dir: PathBuf,
}

impl Download {
    fn create(config: &Config, remote: &str) -> Result<Download, ArchiveError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| ArchiveError::Io { path, source }
        };
        fsio::create_private_dir(&config.archive.dir).map_err(io_err(&config.archive.dir))?;
        let dir = config
            .archive
            .dir
            .join(format!(".download-{remote}-{}", std::process::id()));
        // One left by an earlier run of the same pid is no use.
        let _ = std::fs::remove_dir_all(&dir);
        fsio::create_private_dir(&dir).map_err(io_err(&dir))?;
        Ok(Download { dir })
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
