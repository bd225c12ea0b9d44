//! The multipart uploads chatkeep started and has not seen end:
//! `<data dir>/.remote-uploads.json`, so that one cut short (chatkeep
//! killed, the machine off, the store gone while the abort was sent) is
//! aborted on the next push to its remote instead of keeping its parts on
//! the store, billed and invisible, for ever.
//!
//! object_store cannot list a bucket's multipart uploads, so chatkeep
//! remembers its own: an upload is recorded (the file replaced atomically
//! and fsynced) as soon as the store has given it an id and before any
//! part is sent, and its record is removed once it is completed or
//! aborted. A push first aborts every upload recorded for its remote; an
//! abort that fails leaves the record for the next push. What a kill
//! between the store's answer and the record leaves (one request's
//! window) only a bucket lifecycle rule (`AbortIncompleteMultipartUpload`)
//! clears.
//!
//! A record holds the remote's name, the bucket, the object key, the
//! upload id the store gave and when it started: no credential. The file
//! is 0600, as every file chatkeep writes. A dot name: no personality's
//! directory can take it.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::Remote;
use crate::store::fsio;

pub const UPLOADS_FILE: &str = ".remote-uploads.json";

/// One multipart upload chatkeep started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedUpload {
    /// The `[[remote]]` it went to.
    pub remote: String,
    /// The bucket it went to, which a remote's `url` may since name another.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// The id the store gave the upload.
    pub upload_id: String,
    pub started: DateTime<Utc>,
}

/// The file of started uploads. Each change reads it, changes it and
/// replaces it whole; one process-wide lock orders the changes of this
/// process, and the data directory's lock keeps other chatkeep processes
/// out.
pub struct Ledger {
    path: PathBuf,
}

/// Held while the file is read and replaced.
static CHANGING: Mutex<()> = Mutex::new(());

/// The upload ids this process is sending: recorded, but not stale. The
/// daemon's snapshots of several personalities may push to one remote at
/// once, and one push must not abort another's upload. (Another process
/// cannot be uploading: commands and the daemon hold the data directory's
/// lock.)
static SENDING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// An upload this process is sending, for as long as it lives.
pub struct Sending(String);

impl Drop for Sending {
    fn drop(&mut self) {
        sending().remove(&self.0);
    }
}

fn sending() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    SENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ledger {
    /// The ledger of the data directory `data_dir`.
    pub fn new(data_dir: &Path) -> Ledger {
        Ledger {
            path: data_dir.join(UPLOADS_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every recorded upload; none when there is no file.
    pub fn all(&self) -> io::Result<Vec<StartedUpload>> {
        let bytes = match fsio::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("is not a list of started uploads ({e}); move it away"),
            )
        })
    }

    /// The uploads recorded for the remote `remote`.
    pub fn of(&self, remote: &str) -> io::Result<Vec<StartedUpload>> {
        Ok(self.all()?.into_iter().filter(|u| u.remote == remote).collect())
    }

    /// Records `upload`, durably, before it returns; until the returned
    /// guard is dropped, [`abort_stale`] leaves it alone.
    pub fn add(&self, upload: &StartedUpload) -> io::Result<Sending> {
        sending().insert(upload.upload_id.clone());
        let guard = Sending(upload.upload_id.clone());
        self.change(|all| all.push(upload.clone()))?;
        Ok(guard)
    }

    /// Forgets `upload` (completed or aborted), durably.
    pub fn remove(&self, upload: &StartedUpload) -> io::Result<()> {
        self.change(|all| all.retain(|u| u != upload))
    }

    fn change(&self, edit: impl FnOnce(&mut Vec<StartedUpload>)) -> io::Result<()> {
        let _turn = CHANGING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all = self.all()?;
        edit(&mut all);
        let mut bytes = serde_json::to_vec_pretty(&all).map_err(io::Error::other)?;
        bytes.push(b'\n');
        if let Some(dir) = self.path.parent() {
            fsio::create_private_dir(dir)?;
        }
        fsio::write_atomic(&self.path, &bytes)
    }
}

/// What aborting a remote's recorded uploads came to.
#[derive(Debug, Default)]
pub struct StaleReport {
    /// The uploads aborted (or that the store no longer knows).
    pub aborted: Vec<StartedUpload>,
    /// What could not be done, one message each, for a warning; the
    /// uploads stay recorded (but for one in another bucket, forgotten).
    pub failed: Vec<String>,
}

/// Aborts each upload recorded for `remote` that this process is not
/// sending: the store drops its parts,
/// and the record goes. One the store does not know (404: completed, or
/// aborted already, before chatkeep could forget it) is forgotten too. An
/// abort that fails stays recorded, for the next push. Never fails: what
/// went wrong is in the report.
pub async fn abort_stale(remote: &Remote, ledger: &Ledger) -> StaleReport {
    let mut report = StaleReport::default();
    let name = &remote.config.name;
    let recorded = match ledger.of(name) {
        Ok(recorded) => recorded,
        Err(e) => {
            report.failed.push(format!(
                "cannot read the record of unfinished uploads {}: {}",
                ledger.path().display(),
                fsio::explain(&e)
            ));
            return report;
        }
    };
    for upload in recorded {
        if sending().contains(&upload.upload_id) {
            continue;
        }
        if upload.bucket != remote.config.bucket {
            // This client cannot reach the other bucket; keeping the record
            // would warn on every push for nothing.
            report.failed.push(format!(
                "the unfinished upload {} of {} in bucket `{}` (started {}) cannot be aborted: the \
                 remote's url now names bucket `{}`; it is forgotten, and its parts stay there \
                 until the bucket's lifecycle rules clear them",
                upload.upload_id, upload.key, upload.bucket, upload.started, remote.config.bucket
            ));
            forget(ledger, &upload, &mut report);
            continue;
        }
        let key = ObjectPath::from(upload.key.as_str());
        match remote.store.abort_multipart(&key, &upload.upload_id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                tracing::info!(
                    remote = %name,
                    key = %upload.key,
                    started = %upload.started,
                    "aborted an unfinished upload"
                );
                forget(ledger, &upload, &mut report);
                report.aborted.push(upload);
            }
            Err(e) => {
                let e = remote.error("aborting an unfinished upload", e);
                tracing::warn!(
                    remote = %name,
                    key = %upload.key,
                    error = %e,
                    "cannot abort an unfinished upload; it stays recorded and is tried again on the next push"
                );
                report.failed.push(format!(
                    "the unfinished upload of {} (started {}) could not be aborted, and is tried \
                     again on the next push: {e}",
                    upload.key, upload.started
                ));
            }
        }
    }
    report
}

fn forget(ledger: &Ledger, upload: &StartedUpload, report: &mut StaleReport) {
    if let Err(e) = ledger.remove(upload) {
        report.failed.push(format!(
            "cannot update {}: {}",
            ledger.path().display(),
            fsio::explain(&e)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn upload(remote: &str, id: &str) -> StartedUpload {
        StartedUpload {
            remote: remote.into(),
            bucket: "backups".into(),
            key: format!("host/aria/aria-{id}.tar.gz"),
            upload_id: id.into(),
            started: Utc::now(),
        }
    }

    #[test]
    fn uploads_are_recorded_by_remote_and_forgotten_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        assert_eq!(ledger.all().unwrap(), []);
        let (a, b, c) = (upload("offsite", "1"), upload("offsite", "2"), upload("lan", "3"));
        for u in [&a, &b, &c] {
            drop(ledger.add(u).unwrap());
        }
        assert_eq!(ledger.of("offsite").unwrap(), [a.clone(), b.clone()]);
        assert_eq!(ledger.of("lan").unwrap(), std::slice::from_ref(&c));
        ledger.remove(&a).unwrap();
        assert_eq!(Ledger::new(dir.path()).all().unwrap(), [b, c]);
        let mode = std::fs::metadata(ledger.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_file_that_is_not_a_ledger_is_an_error_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        std::fs::write(ledger.path(), "not json").unwrap();
        assert!(ledger.add(&upload("offsite", "1")).is_err());
        assert!(
            !sending().contains("1"),
            "an upload not recorded is not being sent"
        );
        assert_eq!(std::fs::read(ledger.path()).unwrap(), b"not json");
    }
}
