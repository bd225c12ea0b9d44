//! Uploading what a remote lacks: the snapshots its retention keeps that
//! it does not list yet, each streamed (multipart, bounded memory), then
//! the manifest; then what its retention drops.

use std::collections::HashSet;
use std::path::Path;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use super::{Remote, RemoteError};
use crate::archive::snapshot::hex;
use crate::archive::{ArchiveError, Manifest, SnapshotEntry, archive_dir, prune};
use crate::config::Config;

/// Smallest part S3 accepts (but for the last one).
const MIN_PART_SIZE: u64 = 5 << 20;
/// Most parts S3 accepts in one upload.
const MAX_PARTS: u64 = 10_000;
/// Parts uploading at once: with the part being filled, memory holds at
/// most this many plus one parts, whatever the snapshot's size.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes read from the snapshot file at a time.
const READ_SIZE: usize = 1 << 20;

/// What [`push_personality`] did on one remote.
#[derive(Debug, Default)]
pub struct PushReport {
    /// Snapshots uploaded, with their sizes, oldest first.
    pub uploaded: Vec<(String, u64)>,
    /// Snapshots the remote already held whole.
    pub already: usize,
    /// Snapshots the remote's retention removed from it.
    pub removed: Vec<String>,
    /// Snapshots not uploaded because they are not encrypted and the
    /// remote has `require_encryption`.
    pub refused_plain: Vec<String>,
    /// Snapshots on the remote after this run.
    pub held: usize,
}

/// Brings the remote's copy of `name` up to date with the local archive:
/// uploads each snapshot the remote lacks and its retention keeps (each
/// followed by a manifest listing it), then drops what its retention does
/// not keep (manifest first, then the objects), with objects left by
/// interrupted runs.
pub async fn push_personality(
    remote: &Remote,
    config: &Config,
    name: &str,
) -> Result<PushReport, RemoteError> {
    let dir = archive_dir(config, name)?;
    let local = Manifest::load(&dir, name)?;
    let mut held = remote.manifest(name).await?;
    let objects = remote.objects(name).await?;
    // A listed snapshot whose object is gone or cut is no longer held.
    held.snapshots.retain(|e| objects.get(&e.file) == Some(&e.size));
    let mut report = PushReport::default();

    // Retention over what the remote holds and what it could get.
    let mut all = held.clone();
    for entry in &local.snapshots {
        if !all.contains_file(&entry.file) {
            all.snapshots.push(entry.clone());
        }
    }
    let policy = remote.config.retention.unwrap_or(config.archive.retention);
    let kept: HashSet<String> = prune::plan(&all, &policy)
        .into_iter()
        .filter(|line| line.keep)
        .map(|line| line.file)
        .collect();

    let mut missing: Vec<&SnapshotEntry> = local
        .snapshots
        .iter()
        .filter(|e| kept.contains(&e.file) && !held.contains_file(&e.file))
        .collect();
    missing.sort_by_key(|e| e.time);
    report.already = held.snapshots.iter().filter(|e| kept.contains(&e.file)).count();
    for entry in missing {
        if remote.config.require_encryption && !entry.encrypted {
            report.refused_plain.push(entry.file.clone());
            continue;
        }
        upload_snapshot(
            remote,
            &dir.join(&entry.file),
            &remote.key(name, &entry.file),
            entry,
        )
        .await?;
        held.snapshots.push(entry.clone());
        held.snapshots.sort_by_key(|e| e.time);
        remote.save_manifest(&held).await?;
        report.uploaded.push((entry.file.clone(), entry.size));
    }

    report.removed = drop_unkept(remote, name, &mut held, &kept, objects.keys()).await?;
    report.held = held.snapshots.len();
    Ok(report)
}

/// Takes out of `held` (the remote's manifest of `name`) what is not in
/// `kept`, saves it, then deletes each of `objects` it no longer lists:
/// what retention dropped, and what interrupted runs left. Returns the
/// deleted files, sorted.
async fn drop_unkept(
    remote: &Remote,
    name: &str,
    held: &mut Manifest,
    kept: &HashSet<String>,
    objects: impl Iterator<Item = &String>,
) -> Result<Vec<String>, RemoteError> {
    let before = held.snapshots.len();
    held.snapshots.retain(|e| kept.contains(&e.file));
    if held.snapshots.len() != before {
        remote.save_manifest(held).await?;
    }
    let mut removed = Vec::new();
    for file in objects.filter(|f| !held.contains_file(f)) {
        remote
            .store
            .delete(&remote.key(name, file))
            .await
            .map_err(|e| remote.error("deleting a snapshot retention dropped", e))?;
        removed.push(file.clone());
    }
    removed.sort();
    Ok(removed)
}

/// Applies the remote's retention (its keep_*, else `[archive]`'s) to what
/// it holds of `name`, uploading nothing; with `dry_run`, only says what
/// it would remove. Leftovers are the objects its manifest does not list.
pub async fn prune_personality(
    remote: &Remote,
    config: &Config,
    name: &str,
    dry_run: bool,
) -> Result<prune::PruneReport, RemoteError> {
    let mut held = remote.manifest(name).await?;
    let objects = remote.objects(name).await?;
    let policy = remote.config.retention.unwrap_or(config.archive.retention);
    let lines = prune::plan(&held, &policy);
    let mut leftovers: Vec<String> = objects
        .keys()
        .filter(|f| !held.contains_file(f))
        .cloned()
        .collect();
    leftovers.sort();
    if !dry_run {
        let kept: HashSet<String> = lines.iter().filter(|l| l.keep).map(|l| l.file.clone()).collect();
        drop_unkept(remote, name, &mut held, &kept, objects.keys()).await?;
    }
    Ok(prune::PruneReport {
        lines,
        leftovers,
        dry_run,
    })
}

/// The part size for a file of `size` bytes: S3's minimum, or more so that
/// the parts stay within S3's count.
fn part_size(size: u64) -> usize {
    let size = MIN_PART_SIZE.max(size.div_ceil(MAX_PARTS));
    usize::try_from(size).unwrap_or(usize::MAX)
}

/// Uploads the snapshot file at `path` to `key`, streaming, checking on
/// the way that it has the size and SHA-256 the manifest lists: a file
/// that does not is not completed on the remote (the upload is aborted).
///
/// The parts are driven here rather than by object_store's
/// `WriteMultipart`, whose `finish` reports the error of the abort that
/// follows a failed completion instead of the completion's own (a store
/// that refuses a part's size would be reported as refusing the key).
async fn upload_snapshot(
    remote: &Remote,
    path: &Path,
    key: &ObjectPath,
    entry: &SnapshotEntry,
) -> Result<(), RemoteError> {
    let io_err = |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
    let part_size = part_size(entry.size);
    let mut upload = remote
        .store
        .put_multipart(key)
        .await
        .map_err(|e| remote.error("starting an upload", e))?;
    let mut parts: JoinSet<object_store::Result<()>> = JoinSet::new();
    let result = async {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; READ_SIZE.min(part_size)];
        let mut part: Vec<u8> = Vec::with_capacity(part_size);
        let mut size = 0u64;
        let mut sent_any = false;
        loop {
            let n = file.read(&mut buf).await.map_err(io_err)?;
            let mut rest = &buf[..n];
            hasher.update(rest);
            size += n as u64;
            while !rest.is_empty() {
                let take = rest.len().min(part_size - part.len());
                part.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if part.len() == part_size {
                    // At most PARTS_IN_FLIGHT parts uploading, and this one.
                    while parts.len() >= PARTS_IN_FLIGHT {
                        wait_part(remote, &mut parts).await?;
                    }
                    let full = std::mem::replace(&mut part, Vec::with_capacity(part_size));
                    parts.spawn(upload.put_part(PutPayload::from(full)));
                    sent_any = true;
                }
            }
            if n == 0 {
                break;
            }
        }
        let sha256 = hex(&hasher.finalize());
        if size != entry.size || sha256 != entry.sha256 {
            return Err(RemoteError::Local(ArchiveError::Damaged {
                file: entry.file.clone(),
                reason: format!(
                    "the manifest says {} bytes with SHA-256 {}, the file has {size} bytes with {sha256}; \
                     it was not uploaded; run `chatkeep verify`",
                    entry.size, entry.sha256
                ),
            }));
        }
        if !part.is_empty() || !sent_any {
            parts.spawn(upload.put_part(PutPayload::from(part)));
        }
        while !parts.is_empty() {
            wait_part(remote, &mut parts).await?;
        }
        upload
            .complete()
            .await
            .map(drop)
            .map_err(|e| remote.error("completing an upload", e))
    }
    .await;
    if result.is_err() {
        parts.abort_all();
        // Best effort: a store that is gone keeps the parts until the
        // bucket's lifecycle rules (or a later abort) clear them.
        let _ = upload.abort().await;
    }
    result
}

/// Waits for one part upload to end.
async fn wait_part(
    remote: &Remote,
    parts: &mut JoinSet<object_store::Result<()>>,
) -> Result<(), RemoteError> {
    match parts.join_next().await {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(remote.error("uploading a part", e)),
        Some(Err(e)) => Err(RemoteError::Store {
            remote: remote.config.name.clone(),
            url: remote.config.url(),
            action: "uploading a part".to_owned(),
            message: e.to_string(),
        }),
    }
}
