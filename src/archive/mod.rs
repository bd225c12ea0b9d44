//! Archives: point-in-time snapshots of each personality, their retention,
//! their verification and their restore.
//!
//! ```text
//! <archive dir>/<name>/
//!   manifest.json                        every snapshot, its SHA-256 and what it holds
//!   <name>-20260102T030405Z.tar.gz       profile, memories, knowledge, training,
//!                                        user personalization, chat history (export format)
//!   <name>-20260103T030405Z.tar.gz.age   the same, encrypted with age
//! ```
//!
//! Making snapshots and pruning them change the archive, and need the data
//! directory's lock ([`Store`]): [`archive_personality`] and
//! [`prune_personality`] take it as proof, so the daemon, which holds it,
//! calls them directly. Calls for one personality must not overlap (the
//! daemon runs them as that personality's job); calls for different ones
//! may. Verifying, restoring and a dry-run prune only read, and need no
//! lock.

pub mod encryption;
pub mod history;
pub mod live;
pub mod manifest;
pub mod prune;
pub mod rebuild;
pub mod restore;
pub mod retention;
pub mod snapshot;
pub mod verify;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

pub use encryption::{DecryptError, Identities, KeyError};
pub use live::LiveCheck;
pub use manifest::{Manifest, SnapshotEntry};
pub use prune::{PruneLine, PruneReport};
pub use rebuild::{RebuildOptions, RebuildReport, rebuild, rebuild_from_file};
pub use restore::{RestoreOptions, RestoreReport, restore, restore_file};
pub use verify::FileCheck;

use crate::config::Config;
use crate::export::ExportError;
use crate::store::{ChatStoreError, Store, StoreError, fsio, personality_dir};

/// Why an archive command failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no backup of `{name}` in {}; run `chatkeep sync {name}` first", data_dir.display())]
    NoBackup { name: String, data_dir: PathBuf },
    #[error("{}: {}{}", path.display(), fsio::explain(source), space_hint(source))]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chat(#[from] ChatStoreError),
    #[error("reading the chat history of `{name}`: {source}")]
    Export { name: String, source: ExportError },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "{} is not a manifest chatkeep can use: {reason}; move it away to start a new archive \
         (the snapshots stay readable with tar)",
        path.display()
    )]
    BadManifest { path: PathBuf, reason: String },
    #[error(
        "{what} changed while the snapshot was written, which chatkeep never does to committed \
         data; run `chatkeep verify`, then archive again"
    )]
    Changed { what: String },
    #[error("{file} did not pass the check after writing, so it was not kept: {}", problems.join("; "))]
    Unverified { file: String, problems: Vec<String> },
    #[error("{file} is damaged: {reason}")]
    Damaged { file: String, reason: String },
    #[error(
        "no snapshot of `{name}` matches {wanted:?}; {}",
        if available.is_empty() { "there are none yet".to_owned() } else { format!("there are: {}", available.join(", ")) }
    )]
    SnapshotNotFound {
        name: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("{file} is encrypted; give the age identity that decrypts it with --identity FILE")]
    NeedIdentity { file: String },
    #[error("cannot decrypt {file} with the identity in {}: {source}", identity.display())]
    Decrypt {
        file: String,
        identity: PathBuf,
        source: DecryptError,
    },
    #[error(
        "refusing to overwrite {}; restore into an empty directory, or add --force to replace them",
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    WouldOverwrite { paths: Vec<PathBuf> },
    #[error(
        "{file} holds a member {member:?} that is not one of its plain files; nothing more was \
         unpacked from it"
    )]
    UnsafeMember { file: String, member: String },
    /// Where a restore was asked to write is not safe to write in; nothing
    /// was written.
    #[error("{0}; nothing was written")]
    UnsafeDir(fsio::UnsafeDir),
    /// `restore --rebuild` found a store where it would build one.
    #[error(
        "{} already holds a backup of `{name}`; --rebuild replaces it only with --force (which \
         discards what it holds that the snapshot lacks; `chatkeep archive {name}` first keeps it)",
        path.display()
    )]
    LiveStore { name: String, path: PathBuf },
}

/// What else helps when a snapshot does not fit (after [`fsio::explain`]'s
/// general advice): nothing half-written was kept.
fn space_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => {
            "; the snapshot was not kept and the archive is as it was; lower the keep_* counts of \
             [archive], or point [archive] dir at a larger disk"
        }
        _ => "",
    }
}

/// What [`archive_personality`] did.
#[derive(Debug)]
pub struct ArchiveOutcome {
    /// The new snapshot, or `None` when nothing changed since the newest
    /// one (`skip_unchanged`).
    pub written: Option<WrittenSnapshot>,
    /// The newest snapshot after this run.
    pub newest: Option<SnapshotEntry>,
    /// Retention, applied after the snapshot.
    pub prune: PruneReport,
}

/// A snapshot just written.
#[derive(Debug)]
pub struct WrittenSnapshot {
    pub entry: SnapshotEntry,
    /// Bytes of documents and export put into it, before compression.
    pub payload_bytes: u64,
    pub elapsed: Duration,
}

/// Where the snapshots of `name` are: `<archive dir>/<name>`.
pub fn archive_dir(config: &Config, name: &str) -> Result<PathBuf, ArchiveError> {
    // The same rules as the data directory's: one plain path component.
    Ok(personality_dir(&config.archive.dir, name)?.path().to_owned())
}

/// Makes a snapshot of `name` now (unless nothing changed and
/// `skip_unchanged` is set), lists it in the manifest, then applies
/// retention. `store` is the data directory, held.
pub fn archive_personality(
    store: &Store,
    config: &Config,
    name: &str,
) -> Result<ArchiveOutcome, ArchiveError> {
    archive_personality_at(store, config, name, Utc::now())
}

/// [`archive_personality`] as if the time were `now`. The snapshot's time
/// is `now` to the second, or one second past the newest snapshot if that
/// is not earlier, so that times (and file names) stay unique and ordered.
pub fn archive_personality_at(
    store: &Store,
    config: &Config,
    name: &str,
    now: DateTime<Utc>,
) -> Result<ArchiveOutcome, ArchiveError> {
    let started = Instant::now();
    let source = store.personality(name)?;
    if !source.path().is_dir() {
        return Err(ArchiveError::NoBackup {
            name: name.to_owned(),
            data_dir: store.root().to_owned(),
        });
    }
    let dir = archive_dir(config, name)?;
    // The archive directory, then the personality's in it: made 0700, or
    // checked to be chatkeep's alone if they exist.
    for dir in [&config.archive.dir, &dir] {
        fsio::create_private_dir(dir).map_err(|source| ArchiveError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let mut manifest = Manifest::load(&dir, name)?;
    let recipients = encryption::load_recipients(&config.archive)?;
    let media_from = config.archive.media.then(|| store.root());
    let mut inputs = snapshot::Inputs::open(&source, media_from)?;
    let digest = inputs.digest(&recipients)?;
    // Unchanged only if the newest snapshot is still there to stand for it.
    let unchanged = config.archive.skip_unchanged
        && manifest.newest().is_some_and(|newest| {
            newest.content_digest == digest
                && std::fs::metadata(dir.join(&newest.file)).is_ok_and(|m| m.len() == newest.size)
        });
    let mut written = None;
    if unchanged {
        // At debug: `chatkeep archive` prints the outcome and the daemon
        // logs it, each once.
        tracing::debug!(
            personality = name,
            "nothing changed since the newest snapshot; none made"
        );
    } else {
        let time = snapshot_time(now, &manifest);
        let snapshot = snapshot::write(
            &dir,
            &mut inputs,
            time,
            config.archive.compression_level,
            &recipients,
            digest,
        )?;
        manifest.snapshots.push(snapshot.entry.clone());
        manifest.save(&dir)?;
        let elapsed = started.elapsed();
        tracing::debug!(
            personality = name,
            file = %snapshot.entry.file,
            bytes = snapshot.entry.size,
            payload_bytes = snapshot.payload_bytes,
            messages = snapshot.entry.message_count,
            seconds = elapsed.as_secs_f64(),
            "snapshot written"
        );
        written = Some(WrittenSnapshot {
            entry: snapshot.entry,
            payload_bytes: snapshot.payload_bytes,
            elapsed,
        });
    }
    let prune = prune::apply(&dir, name, &mut manifest, &config.archive.retention)?;
    log_prune(name, &prune);
    Ok(ArchiveOutcome {
        written,
        newest: manifest.newest().cloned(),
        prune,
    })
}

/// Applies retention to the snapshots of `name`, after deleting leftovers
/// of interrupted runs. `store` is the data directory, held.
pub fn prune_personality(_store: &Store, config: &Config, name: &str) -> Result<PruneReport, ArchiveError> {
    let dir = archive_dir(config, name)?;
    let mut manifest = Manifest::load(&dir, name)?;
    let report = prune::apply(&dir, name, &mut manifest, &config.archive.retention)?;
    log_prune(name, &report);
    Ok(report)
}

/// What [`prune_personality`] would do, changing nothing; needs no lock.
pub fn plan_prune(config: &Config, name: &str) -> Result<PruneReport, ArchiveError> {
    let dir = archive_dir(config, name)?;
    let manifest = Manifest::load(&dir, name)?;
    Ok(PruneReport {
        lines: prune::plan(&manifest, &config.archive.retention),
        leftovers: prune::leftovers(&dir, name, &manifest)?,
        dry_run: true,
    })
}

/// At debug, as the outcome: `chatkeep archive` and `prune` print each
/// removal, and the daemon logs them with the snapshot.
fn log_prune(name: &str, report: &PruneReport) {
    for line in report.lines.iter().filter(|l| !l.keep) {
        tracing::debug!(personality = name, file = %line.file, "snapshot removed by retention");
    }
    for file in &report.leftovers {
        tracing::debug!(personality = name, file = %file, "leftover of an interrupted run removed");
    }
}

/// `now` to the second, but later than every snapshot in `manifest`.
fn snapshot_time(now: DateTime<Utc>, manifest: &Manifest) -> DateTime<Utc> {
    let now = now.duration_trunc(TimeDelta::seconds(1)).unwrap_or(now);
    match manifest.newest() {
        Some(newest) if newest.time >= now => {
            tracing::warn!(
                newest = %newest.time,
                now = %now,
                "the newest snapshot is not older than now (two in one second, or the clock went \
                 back); this one is dated one second after it"
            );
            newest.time + TimeDelta::seconds(1)
        }
        _ => now,
    }
}

/// What `chatkeep verify` found for one personality.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Each snapshot checked, with what its check found.
    pub snapshots: Vec<(SnapshotEntry, FileCheck)>,
    /// The live store, when there is one.
    pub live: Option<LiveCheck>,
    /// Files in the archive directory that are no part of the archive.
    pub leftovers: Vec<String>,
    /// A problem that kept the snapshots from being checked at all.
    pub manifest_problem: Option<String>,
}

impl VerifyReport {
    pub fn problem_count(&self) -> usize {
        self.snapshots
            .iter()
            .map(|(_, c)| c.problems.len())
            .sum::<usize>()
            + self.live.as_ref().map_or(0, |l| l.problems.len())
            + usize::from(self.manifest_problem.is_some())
    }
}

/// Options of `chatkeep verify`.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Only the newest snapshot.
    pub latest: bool,
    /// Decrypts encrypted snapshots, whose content is otherwise not checked.
    pub identity: Option<&'a Identities>,
}

/// Checks the snapshots of `name` (all, or the newest) and its live store.
/// Reads only, without the lock, so it runs beside the daemon.
pub fn verify_personality(
    config: &Config,
    name: &str,
    options: &VerifyOptions,
) -> Result<VerifyReport, ArchiveError> {
    let mut report = VerifyReport::default();
    let source = personality_dir(&config.storage.data_dir, name)?;
    if source.path().is_dir() {
        let mut live = live::check_live(&source);
        live.problems
            .extend(live::check_media(&config.storage.data_dir, &source));
        report.live = Some(live);
    }
    let dir = archive_dir(config, name)?;
    let manifest = match Manifest::load(&dir, name) {
        Ok(manifest) => manifest,
        Err(e) => {
            report.manifest_problem = Some(e.to_string());
            return Ok(report);
        }
    };
    report.leftovers = prune::leftovers(&dir, name, &manifest)?;
    let mut entries: Vec<&SnapshotEntry> = manifest.snapshots.iter().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.time));
    if options.latest {
        entries.truncate(1);
    }
    for entry in entries {
        let path = dir.join(&entry.file);
        let check = match fsio::open_read(&path) {
            Ok(file) => verify::check_file(file, name, entry, options.identity, verify::Depth::Full),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A prune running beside may have just removed it.
                if !still_listed(&dir, name, &entry.file) {
                    continue;
                }
                FileCheck {
                    problems: vec!["missing: the manifest lists it, but the file is not there".to_owned()],
                    content_checked: false,
                }
            }
            Err(e) => FileCheck {
                problems: vec![format!("cannot open it: {e}")],
                content_checked: false,
            },
        };
        report.snapshots.push((entry.clone(), check));
    }
    Ok(report)
}

fn still_listed(dir: &Path, name: &str, file: &str) -> bool {
    Manifest::load(dir, name).map_or(true, |m| m.contains_file(file))
}
