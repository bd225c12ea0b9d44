//! `manifest.json`: the list of one personality's snapshots, the truth
//! every other step goes by. A snapshot file is part of the archive once
//! it is listed here and no longer once it is not; a file that looks like
//! a snapshot but is not listed is a leftover of an interrupted run.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ArchiveError;
use crate::store::fsio;

pub const MANIFEST_FILE: &str = "manifest.json";
const FORMAT: u32 = 1;
/// Extension of an unencrypted snapshot.
pub const PLAIN_EXT: &str = ".tar.gz";
/// Extension of an age-encrypted snapshot.
pub const ENCRYPTED_EXT: &str = ".tar.gz.age";
/// The UTC time in a snapshot's file name.
const STAMP: &str = "%Y%m%dT%H%M%SZ";

/// Every snapshot of one personality, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub personality: String,
    pub snapshots: Vec<SnapshotEntry>,
}

/// One snapshot: its file and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// File name in the personality's archive directory.
    pub file: String,
    /// When it was taken (whole seconds, UTC); also in the file name, and
    /// unique within the manifest.
    pub time: DateTime<Utc>,
    /// Size of the file in bytes.
    pub size: u64,
    /// SHA-256 of the file, lowercase hex (of the encrypted file when
    /// encrypted: it can be checked without the key).
    pub sha256: String,
    /// Messages in its chat history.
    pub message_count: u64,
    /// `ts` of the oldest and newest message, as the export's `date_range`
    /// writes them; `None` without messages.
    pub first_message: Option<String>,
    pub last_message: Option<String>,
    /// SHA-256 over what the snapshot was made from (documents, committed
    /// chat state, recipients): equal digests mean equal content, which is
    /// how `skip_unchanged` tells that nothing changed.
    pub content_digest: String,
    /// Encrypted with age.
    pub encrypted: bool,
    /// The file names inside it, in order.
    pub members: Vec<String>,
    /// What the chat state knew of the service's history when it was
    /// taken, which its files do not say: when a walk confirmed where the
    /// history begins, and when the last probe below the oldest message
    /// ran. `restore --rebuild` gives them back to the rebuilt store, so
    /// that its next sync is as incremental as the lost store's would have
    /// been. Absent in manifests written before they were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beginning_confirmed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_probed_at: Option<DateTime<Utc>>,
}

impl Manifest {
    pub fn empty(name: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            personality: name.to_owned(),
            snapshots: Vec::new(),
        }
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// The manifest in `dir`; an empty one if there is none yet.
    pub fn load(dir: &Path, name: &str) -> Result<Manifest, ArchiveError> {
        let path = Manifest::path(dir);
        let bytes = match fsio::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Manifest::empty(name)),
            Err(source) => return Err(ArchiveError::Io { path, source }),
        };
        Manifest::parse(&bytes, name).map_err(|reason| ArchiveError::BadManifest { path, reason })
    }

    /// A manifest of `name` from its JSON (a file's, or a remote's copy),
    /// checked as [`Manifest::load`] checks it; the reason it is not one.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if manifest.format != FORMAT {
            return Err(format!(
                "format {} is not {FORMAT}; it was written by another chatkeep version",
                manifest.format
            ));
        }
        if manifest.personality != name {
            return Err(format!(
                "it lists snapshots of `{}`, not of `{name}`",
                manifest.personality
            ));
        }
        for entry in &manifest.snapshots {
            if parse_file_name(name, &entry.file).is_none() {
                return Err(format!(
                    "{:?} is not the name of a snapshot of `{name}`",
                    entry.file
                ));
            }
        }
        Ok(manifest)
    }

    /// The manifest as its file holds it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and lists cannot fail.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Replaces the manifest in `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), ArchiveError> {
        let path = Manifest::path(dir);
        fsio::write_atomic(&path, &self.to_json()).map_err(|source| ArchiveError::Io { path, source })
    }

    /// The most recent snapshot.
    pub fn newest(&self) -> Option<&SnapshotEntry> {
        self.snapshots.iter().max_by_key(|e| e.time)
    }

    pub fn contains_file(&self, file: &str) -> bool {
        self.snapshots.iter().any(|e| e.file == file)
    }

    /// The snapshot `wanted` names: `latest`, its file name, the time in its
    /// file name (`20260102T030405Z`) or that time in RFC 3339
    /// (`2026-01-02T03:04:05Z`).
    pub fn find(&self, wanted: &str) -> Option<&SnapshotEntry> {
        let wanted = wanted.trim();
        if wanted == "latest" {
            return self.newest();
        }
        let time = NaiveDateTime::parse_from_str(wanted, STAMP)
            .ok()
            .map(|t| t.and_utc())
            .or_else(|| {
                DateTime::parse_from_rfc3339(wanted)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            });
        self.snapshots
            .iter()
            .find(|e| e.file == wanted || Some(e.time) == time)
    }

    /// [`Manifest::find`], or the error that names what there is.
    pub fn entry(&self, name: &str, wanted: &str) -> Result<&SnapshotEntry, ArchiveError> {
        self.find(wanted).ok_or_else(|| ArchiveError::SnapshotNotFound {
            name: name.to_owned(),
            wanted: wanted.to_owned(),
            available: self.snapshots.iter().map(|e| e.file.clone()).collect(),
        })
    }
}

/// `<name>-<UTC time>.tar.gz`, or `.tar.gz.age` when encrypted.
pub fn file_name(name: &str, time: DateTime<Utc>, encrypted: bool) -> String {
    let ext = if encrypted { ENCRYPTED_EXT } else { PLAIN_EXT };
    format!("{name}-{}{ext}", time.format(STAMP))
}

/// The time and encryption of a file named as [`file_name`] names
/// snapshots of `name`; `None` for any other file.
pub fn parse_file_name(name: &str, file: &str) -> Option<(DateTime<Utc>, bool)> {
    let rest = file.strip_prefix(name)?.strip_prefix('-')?;
    let (stamp, encrypted) = match rest.strip_suffix(ENCRYPTED_EXT) {
        Some(stamp) => (stamp, true),
        None => (rest.strip_suffix(PLAIN_EXT)?, false),
    };
    if stamp.len() != 16 {
        return None;
    }
    let time = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?.and_utc();
    Some((time, encrypted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn file_names_round_trip_and_other_files_are_not_snapshots() {
        let time = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let plain = file_name("a-b", time, false);
        assert_eq!(plain, "a-b-20260102T030405Z.tar.gz");
        assert_eq!(parse_file_name("a-b", &plain), Some((time, false)));
        let age = file_name("a-b", time, true);
        assert_eq!(parse_file_name("a-b", &age), Some((time, true)));
        // A personality whose name extends another's is not taken for it.
        assert_eq!(parse_file_name("a", &plain), None);
        for other in [
            "manifest.json",
            ".a-b-20260102T030405Z.tar.gz.tmp-12",
            "a-b-20260102T030405Z.tar",
            "a-b-2026010T030405Z.tar.gz",
            "a-b-20261302T030405Z.tar.gz",
        ] {
            assert_eq!(parse_file_name("a-b", other), None, "{other}");
        }
    }

    #[test]
    fn snapshots_are_found_by_file_time_or_latest() {
        let mut manifest = Manifest::empty("x");
        for day in [1, 3, 2] {
            let time = Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap();
            manifest.snapshots.push(SnapshotEntry {
                file: file_name("x", time, false),
                time,
                size: 0,
                sha256: String::new(),
                message_count: 0,
                first_message: None,
                last_message: None,
                content_digest: String::new(),
                encrypted: false,
                members: Vec::new(),
                beginning_confirmed_at: None,
                tail_probed_at: None,
            });
        }
        let day = |e: Option<&SnapshotEntry>| e.map(|e| e.file.clone());
        assert_eq!(
            day(manifest.find("latest")),
            Some("x-20260103T000000Z.tar.gz".into())
        );
        assert_eq!(
            day(manifest.find("20260102T000000Z")),
            Some("x-20260102T000000Z.tar.gz".into())
        );
        assert_eq!(
            day(manifest.find("2026-01-01T00:00:00Z")),
            Some("x-20260101T000000Z.tar.gz".into())
        );
        assert_eq!(
            day(manifest.find("x-20260101T000000Z.tar.gz")),
            Some("x-20260101T000000Z.tar.gz".into())
        );
        assert_eq!(manifest.find("20260104T000000Z"), None);
    }
}
