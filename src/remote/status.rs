//! What each remote's last uploads came to, for `status`, `status --json`
//! and the metrics: `<archive dir>/.remotes.json`, one record per remote,
//! replaced atomically after each push. A dot name: no personality's
//! directory can take it. Messages in it come from [`super::RemoteError`],
//! which never holds a key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::fsio;

pub const STATUS_FILE: &str = ".remotes.json";

/// One remote's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteStatus {
    /// When a push to it last ended with every personality up to date.
    pub last_success: Option<DateTime<Utc>>,
    /// Snapshots it held after that push, all personalities together.
    pub snapshots: Option<u64>,
    /// When a push to it last failed, and the first error of that push.
    pub last_failure: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl RemoteStatus {
    /// The last push failed (none succeeded since).
    pub fn failing(&self) -> bool {
        match (self.last_failure, self.last_success) {
            (Some(failure), Some(success)) => failure > success,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

pub fn path(archive_dir: &Path) -> PathBuf {
    archive_dir.join(STATUS_FILE)
}

/// Every remote's record, by name; none when the file is missing or unreadable.
pub fn read(archive_dir: &Path) -> BTreeMap<String, RemoteStatus> {
    fsio::read(&path(archive_dir))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Records how a push to `remote` ended: the snapshots it then held, or
/// its first error. A failure to write the record is logged, never the
/// push's failure.
pub fn record(archive_dir: &Path, remote: &str, outcome: Result<u64, String>, now: DateTime<Utc>) {
    let mut all = read(archive_dir);
    let entry = all.entry(remote.to_owned()).or_default();
    match outcome {
        Ok(snapshots) => {
            entry.last_success = Some(now);
            entry.snapshots = Some(snapshots);
        }
        Err(error) => {
            entry.last_failure = Some(now);
            entry.last_error = Some(error);
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&all).unwrap_or_default();
    bytes.push(b'\n');
    let written =
        fsio::create_private_dir(archive_dir).and_then(|()| fsio::write_atomic(&path(archive_dir), &bytes));
    if let Err(e) = written {
        tracing::warn!(file = %path(archive_dir).display(), error = %e, "cannot record the remote's status");
    }
}
