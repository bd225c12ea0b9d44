//! Retention: which snapshots stay, and the removal of the others.
//!
//! The manifest is the truth. A prune first writes the manifest without
//! the snapshots it removes (atomically), then deletes their files. Cut
//! short anywhere, it leaves either the old manifest with every file, or
//! the new one with some files it no longer lists; such files, and the
//! temporary files of an interrupted snapshot, are leftovers that the next
//! archive or prune of the personality deletes first. The newest snapshot
//! is never removed.

use std::fs;
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::ArchiveError;
use super::manifest::{MANIFEST_FILE, Manifest, parse_file_name};
use super::retention::{self, Reason, RetentionPolicy};
use crate::store::fsio;

/// What retention says about one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneLine {
    pub file: String,
    pub time: DateTime<Utc>,
    pub keep: bool,
    /// The rules that keep it; empty when it goes.
    pub reasons: Vec<Reason>,
}

/// What a prune did, or, for a dry run, would do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PruneReport {
    /// Every snapshot in the manifest, newest first.
    pub lines: Vec<PruneLine>,
    /// Files that are no part of the archive (snapshots no manifest entry
    /// lists, temporary files of interrupted runs): removed, or to be.
    pub leftovers: Vec<String>,
    pub dry_run: bool,
}

impl PruneReport {
    pub fn kept(&self) -> usize {
        self.lines.iter().filter(|l| l.keep).count()
    }

    pub fn removed(&self) -> usize {
        self.lines.iter().filter(|l| !l.keep).count()
    }
}

/// Retention's decision for each snapshot of `manifest`, newest first.
pub fn plan(manifest: &Manifest, policy: &RetentionPolicy) -> Vec<PruneLine> {
    // Newest first, whatever the manifest's order.
    let mut entries: Vec<_> = manifest.snapshots.iter().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.time));
    let times: Vec<DateTime<Utc>> = entries.iter().map(|e| e.time).collect();
    let mut lines: Vec<PruneLine> = retention::plan(&times, policy)
        .into_iter()
        .map(|d| PruneLine {
            file: entries[d.index].file.clone(),
            time: d.time,
            keep: d.keep,
            reasons: d.reasons,
        })
        .collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.time));
    // Retention keeps the newest; this makes sure of it whatever the rules.
    if let Some(newest) = lines.first_mut() {
        newest.keep = true;
    }
    lines
}

/// The leftovers in `dir`: files named as snapshots of `name` that the
/// manifest does not list, and temporary files (`.<file>.tmp-<pid>`) of
/// other processes (this one's may be in use).
pub fn leftovers(dir: &Path, name: &str, manifest: &Manifest) -> Result<Vec<String>, ArchiveError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ArchiveError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let own_pid = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let orphan = parse_file_name(name, &file).is_some() && !manifest.contains_file(&file);
        let temporary = file
            .strip_prefix('.')
            .and_then(|rest| rest.rsplit_once(".tmp-"))
            .is_some_and(|(target, pid)| {
                pid != own_pid
                    && pid.bytes().all(|b| b.is_ascii_digit())
                    && (target == MANIFEST_FILE || parse_file_name(name, target).is_some())
            });
        if orphan || temporary {
            found.push(file);
        }
    }
    found.sort();
    Ok(found)
}

/// Applies `policy` to the archive in `dir`: leftovers deleted, the
/// manifest rewritten without the snapshots retention removes, then their
/// files deleted.
pub fn apply(
    dir: &Path,
    name: &str,
    manifest: &mut Manifest,
    policy: &RetentionPolicy,
) -> Result<PruneReport, ArchiveError> {
    let leftovers = leftovers(dir, name, manifest)?;
    for file in &leftovers {
        remove(dir, file)?;
    }
    let lines = plan(manifest, policy);
    let gone: Vec<&str> = lines
        .iter()
        .filter(|l| !l.keep)
        .map(|l| l.file.as_str())
        .collect();
    if !gone.is_empty() {
        manifest.snapshots.retain(|e| !gone.contains(&e.file.as_str()));
        manifest.save(dir)?;
        for file in &gone {
            remove(dir, file)?;
        }
    }
    Ok(PruneReport {
        lines,
        leftovers,
        dry_run: false,
    })
}

fn remove(dir: &Path, file: &str) -> Result<(), ArchiveError> {
    let path = dir.join(file);
    fsio::remove_durably(&path).map_err(|source| ArchiveError::Io { path, source })
}
