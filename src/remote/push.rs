//! Uploading what a remote lacks: the snapshots its retention keeps that
//! it does not list yet, each streamed (multipart, bounded memory), then
//! the manifest; then what its retention drops.

use std::collections::HashSet;
use std::path::Path;

use chrono::Utc;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{MultipartId, ObjectStore, PutPayload};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use super::uploads::{Ledger, StartedUpload};
use super::{Remote, RemoteError};
use crate::archive::snapshot::hex;
use crate::archive::{ArchiveError, Manifest, SnapshotEntry, archive_dir, prune};
use crate::config::Config;

/// The size of every part but the last: above S3's smallest (5 MiB), and
/// the same for all, as some stores (R2) require.
const PART_SIZE: u64 = 8 << 20;
/// Most parts S3 accepts in one upload.
const MAX_PARTS: u64 = 10_000;
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
    let ledger = Ledger::new(&config.storage.data_dir);

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
            &ledger,
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

/// The part size for a file of `size` bytes: [`PART_SIZE`], or more so
/// that the parts stay within S3's count (a snapshot over 80 GB).
fn part_size(size: u64) -> usize {
    let size = PART_SIZE.max(size.div_ceil(MAX_PARTS));
    usize::try_from(size).unwrap_or(usize::MAX)
}

/// Uploads the snapshot file at `path` to `key`, streaming, checking on
/// the way that it has the size and SHA-256 the manifest lists: a file
/// that does not is not completed on the remote (the upload is aborted).
///
/// The upload is recorded in `ledger` before its first part is sent and
/// forgotten once it is completed or aborted, so that one cut short is
/// aborted by the next push (see [`super::uploads`]).
///
/// The parts are driven here, through object_store's `MultipartStore`,
/// rather than by its `WriteMultipart`: the upload id is needed for the
/// record, and `WriteMultipart::finish` reports the error of the abort
/// that follows a failed completion instead of the completion's own (a
/// store that refuses a part's size would be reported as refusing the key).
async fn upload_snapshot(
    remote: &Remote,
    ledger: &Ledger,
    path: &Path,
    key: &ObjectPath,
    entry: &SnapshotEntry,
) -> Result<(), RemoteError> {
    let io_err = |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
    let upload_id = remote
        .store
        .create_multipart(key)
        .await
        .map_err(|e| remote.error("starting an upload", e))?;
    let started = StartedUpload {
        remote: remote.config.name.clone(),
        bucket: remote.config.bucket.clone(),
        key: key.to_string(),
        upload_id,
        started: Utc::now(),
    };
    let _sending = match ledger.add(&started) {
        Ok(sending) => sending,
        Err(source) => {
            // Unrecorded, it could not be aborted after a crash: not sent.
            let _ = remote.store.abort_multipart(key, &started.upload_id).await;
            return Err(RemoteError::Local(ArchiveError::Io {
                path: ledger.path().to_owned(),
                source,
            }));
        }
    };
    let mut parts = JoinSet::new();
    let result = send_parts(remote, &mut file, key, &started.upload_id, entry, &mut parts)
        .await
        .map_err(|e| e.into_remote(path));
    let result = match result {
        Ok(ids) => remote
            .store
            .complete_multipart(key, &started.upload_id, ids)
            .await
            .map(drop)
            .map_err(|e| remote.error("completing an upload", e)),
        Err(e) => Err(e),
    };
    if result.is_err() {
        parts.abort_all();
        // A store that is gone keeps the parts: the record stays, and the
        // next push aborts the upload.
        if let Err(e) = remote.store.abort_multipart(key, &started.upload_id).await {
            tracing::warn!(
                remote = %remote.config.name,
                key = %started.key,
                error = %remote.error("aborting the upload", e),
                "the failed upload stays recorded; the next push aborts it"
            );
            return result;
        }
    }
    // Completed or aborted: nothing to abort later. A record that stays
    // (this write failed) is harmless: the store no longer knows the id,
    // and the next push forgets it.
    if let Err(e) = ledger.remove(&started) {
        tracing::warn!(file = %ledger.path().display(), error = %e, "cannot forget an ended upload");
    }
    result
}

/// Why [`send_parts`] stopped.
enum SendError {
    Read(std::io::Error),
    Remote(RemoteError),
}

impl SendError {
    fn into_remote(self, path: &Path) -> RemoteError {
        match self {
            SendError::Read(source) => RemoteError::Local(ArchiveError::Io {
                path: path.to_owned(),
                source,
            }),
            SendError::Remote(e) => e,
        }
    }
}

/// Reads `file` and sends it as the parts of the upload `id`: at most the
/// remote's `concurrency` uploading and one being filled, so memory holds
/// at most that many plus one parts whatever the file's size; each read
/// waits for the remote's `bandwidth_limit`. Returns the
/// parts' ids in order once every part is up, if the file has the size
/// and SHA-256 `entry` lists.
async fn send_parts(
    remote: &Remote,
    file: &mut tokio::fs::File,
    key: &ObjectPath,
    id: &MultipartId,
    entry: &SnapshotEntry,
    parts: &mut JoinSet<object_store::Result<(usize, PartId)>>,
) -> Result<Vec<PartId>, SendError> {
    let part_size = part_size(entry.size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_SIZE.min(part_size)];
    let mut part: Vec<u8> = Vec::with_capacity(part_size);
    let mut size = 0u64;
    let mut sent = 0usize;
    let mut ids: Vec<Option<PartId>> = Vec::new();
    let in_flight = remote.config.concurrency.max(1) as usize;
    let spawn = |parts: &mut JoinSet<_>, index: usize, bytes: Vec<u8>| {
        let (store, key, id) = (remote.store.clone(), key.clone(), id.clone());
        parts.spawn(async move {
            let part = store.put_part(&key, &id, index, PutPayload::from(bytes)).await?;
            Ok((index, part))
        });
    };
    loop {
        let n = file.read(&mut buf).await.map_err(SendError::Read)?;
        if let Some(pace) = &remote.pace {
            pace.take(n).await;
        }
        let mut rest = &buf[..n];
        hasher.update(rest);
        size += n as u64;
        while !rest.is_empty() {
            let take = rest.len().min(part_size - part.len());
            part.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if part.len() == part_size {
                while parts.len() >= in_flight {
                    wait_part(remote, parts, &mut ids).await?;
                }
                let full = std::mem::replace(&mut part, Vec::with_capacity(part_size));
                spawn(parts, sent, full);
                sent += 1;
            }
        }
        if n == 0 {
            break;
        }
    }
    let sha256 = hex(&hasher.finalize());
    if size != entry.size || sha256 != entry.sha256 {
        return Err(SendError::Remote(RemoteError::Local(ArchiveError::Damaged {
            file: entry.file.clone(),
            reason: format!(
                "the manifest says {} bytes with SHA-256 {}, the file has {size} bytes with {sha256}; \
                 it was not uploaded; run `chatkeep verify`",
                entry.size, entry.sha256
            ),
        })));
    }
    if !part.is_empty() || sent == 0 {
        spawn(parts, sent, part);
    }
    while !parts.is_empty() {
        wait_part(remote, parts, &mut ids).await?;
    }
    // Every part spawned has ended well, so each index has its id.
    ids.into_iter().collect::<Option<Vec<PartId>>>().ok_or_else(|| {
        SendError::Remote(RemoteError::Store {
            remote: remote.config.name.clone(),
            url: remote.config.url(),
            action: "uploading the parts".to_owned(),
            message: "a part's upload ended without an id".to_owned(),
        })
    })
}

/// Waits for one part upload to end, and keeps its id.
async fn wait_part(
    remote: &Remote,
    parts: &mut JoinSet<object_store::Result<(usize, PartId)>>,
    ids: &mut Vec<Option<PartId>>,
) -> Result<(), SendError> {
    match parts.join_next().await {
        None => Ok(()),
        Some(Ok(Ok((index, id)))) => {
            if ids.len() <= index {
                ids.resize(index + 1, None);
            }
            ids[index] = Some(id);
            Ok(())
        }
        Some(Ok(Err(e))) => Err(SendError::Remote(remote.error("uploading a part", e))),
        Some(Err(e)) => Err(SendError::Remote(RemoteError::Store {
            remote: remote.config.name.clone(),
            url: remote.config.url(),
            action: "uploading a part".to_owned(),
            message: e.to_string(),
        })),
    }
}
