//! `chatkeep archive`, `prune`, `verify` and `restore`: snapshots made,
//! rotated, checked and unpacked.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Access, Fatal, exit};
use crate::archive::{
    self, ArchiveError, ArchiveOutcome, Identities, PruneReport, RestoreOptions, VerifyOptions, VerifyReport,
};
use crate::config::{Config, PersonalitySlug};
use crate::control::{Job, Request};
use crate::store::Store;
use crate::words::size;

/// The personalities a command covers: the named ones, or every configured
/// one. The flag says whether it was named.
fn chosen(config: &Config, names: &[PersonalitySlug]) -> Result<Vec<(PersonalitySlug, bool)>, Fatal> {
    if !names.is_empty() {
        return Ok(names.iter().map(|n| (n.clone(), true)).collect());
    }
    if config.personalities.is_empty() {
        return Err(Fatal::usage(format!(
            "no personality: name one, or add a [[personality]] to {}",
            config.source.display()
        )));
    }
    Ok(config
        .personalities
        .iter()
        .map(|p| (p.name.clone(), false))
        .collect())
}

/// `chatkeep archive [NAME...]`: a snapshot of each, then retention; or,
/// while the daemon holds the data directory, the daemon's.
pub async fn run_archive(
    config: &Config,
    names: &[PersonalitySlug],
    lock_wait: Duration,
) -> Result<ExitCode, Fatal> {
    chosen(config, names)?;
    let cancel = CancellationToken::new();
    let archiving = Arc::new(AtomicBool::new(false));
    stop_on_signals(cancel.clone(), archiving.clone());
    match super::open_store_or_daemon(config, lock_wait, &cancel).await? {
        Access::Store(store) => {
            archiving.store(true, Ordering::SeqCst);
            let code = archive_in(config, &store, names)?;
            // The uploads need no lock: they only read the archive.
            drop(store);
            let remotes: Vec<_> = config.remotes.iter().collect();
            if !remotes.is_empty() {
                let names: Vec<PersonalitySlug> =
                    chosen(config, names)?.into_iter().map(|(n, _)| n).collect();
                super::remote::print(&super::remote::push_all(config, &remotes, &names).await);
            }
            Ok(code)
        }
        Access::Daemon(daemon) => {
            let request = Request {
                job: Job::Archive,
                names: names.iter().map(|n| n.to_string()).collect(),
                all: false,
            };
            daemon
                .run(&request, &cancel)
                .await
                .map_err(|e| Fatal::usage(format!("asking the daemon for snapshots: {e}")))
        }
    }
}

/// Ctrl-C or SIGTERM: while waiting for the data directory or for the
/// daemon, `cancel`; once `archiving`, exit at once, as the default action
/// would: a snapshot is written under a temporary name and renamed when
/// whole, and the next run removes what an interrupted one left.
fn stop_on_signals(cancel: CancellationToken, archiving: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if archiving.load(Ordering::SeqCst) {
            eprintln!(
                "stopped; a snapshot being written was not completed, and the next run removes what it left"
            );
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
        cancel.cancel();
    });
}

/// `chatkeep archive [NAME...]` in this process.
pub fn archive(config: &Config, names: &[PersonalitySlug]) -> Result<ExitCode, Fatal> {
    chosen(config, names)?;
    let store = super::open_store(config)?;
    archive_in(config, &store, names)
}

fn archive_in(config: &Config, store: &Store, names: &[PersonalitySlug]) -> Result<ExitCode, Fatal> {
    let chosen = chosen(config, names)?;
    let mut failed = 0;
    for (name, named) in &chosen {
        match archive::archive_personality(store, config, name.as_str()) {
            Ok(outcome) => print_archived(name, &outcome),
            Err(ArchiveError::NoBackup { .. }) if !named => {
                println!("{name}: skipped: no backup yet; `chatkeep sync {name}` makes one");
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {name}: {}", crate::escape::controls(&e.to_string()));
            }
        }
    }
    Ok(exit_code(failed))
}

fn print_archived(name: &PersonalitySlug, outcome: &ArchiveOutcome) {
    for line in archived_lines(name, outcome) {
        println!("{line}");
    }
}

/// What `archive` prints of one personality's snapshot and retention.
pub fn archived_lines(name: &PersonalitySlug, outcome: &ArchiveOutcome) -> Vec<String> {
    let mut lines = Vec::new();
    match (&outcome.written, &outcome.newest) {
        (Some(written), _) => {
            let entry = &written.entry;
            lines.push(format!(
                "{name}: wrote {} ({}, {} from {} of data, {}) in {:.1} s",
                entry.file,
                crate::words::count(entry.message_count, "message"),
                size(entry.size),
                size(written.payload_bytes),
                if entry.encrypted {
                    "encrypted"
                } else {
                    "not encrypted"
                },
                written.elapsed.as_secs_f64()
            ));
        }
        (None, Some(newest)) => lines.push(format!(
            "{name}: nothing changed since {}; no new snapshot",
            newest.file
        )),
        (None, None) => {}
    }
    let prune = &outcome.prune;
    if prune.removed() > 0 || !prune.leftovers.is_empty() {
        let mut removed: Vec<&str> = prune
            .lines
            .iter()
            .filter(|l| !l.keep)
            .map(|l| l.file.as_str())
            .collect();
        removed.extend(prune.leftovers.iter().map(String::as_str));
        lines.push(format!(
            "{name}: retention keeps {}, removed {}",
            prune.kept(),
            removed.join(", ")
        ));
    }
    lines
}

/// `chatkeep prune [NAME...] [--dry-run]`.
pub fn prune(config: &Config, names: &[PersonalitySlug], dry_run: bool) -> Result<ExitCode, Fatal> {
    let chosen = chosen(config, names)?;
    // A dry run changes nothing, so it needs no lock and runs beside the daemon.
    let store = if dry_run {
        None
    } else {
        Some(super::open_store(config)?)
    };
    let mut failed = 0;
    for (name, _) in &chosen {
        let report = match &store {
            Some(store) => archive::prune_personality(store, config, name.as_str()),
            None => archive::plan_prune(config, name.as_str()),
        };
        match report {
            Ok(report) => print_prune(name, &report),
            Err(e) => {
                failed += 1;
                eprintln!("error: {name}: {}", crate::escape::controls(&e.to_string()));
            }
        }
    }
    Ok(exit_code(failed))
}

pub(super) fn print_prune(name: &PersonalitySlug, report: &PruneReport) {
    if report.lines.is_empty() && report.leftovers.is_empty() {
        println!("{name}: no snapshots");
        return;
    }
    let (keep, remove) = if report.dry_run {
        ("keep", "would remove")
    } else {
        ("keep", "removed")
    };
    println!(
        "{name}:{}",
        if report.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    for line in &report.lines {
        if line.keep {
            let reasons: Vec<String> = line.reasons.iter().map(|r| r.to_string()).collect();
            println!("  {keep:<12}  {}  {}", line.file, reasons.join(", "));
        } else {
            println!("  {remove:<12}  {}", line.file);
        }
    }
    for file in &report.leftovers {
        println!("  {remove:<12}  {file}  (left by an interrupted run)");
    }
    println!(
        "{name}: {} kept, {} {}",
        report.kept(),
        report.removed() + report.leftovers.len(),
        if report.dry_run { "to remove" } else { "removed" }
    );
}

/// `chatkeep verify [NAME...] [--latest] [--identity FILE]`.
pub fn verify(
    config: &Config,
    names: &[PersonalitySlug],
    latest: bool,
    identity: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    let chosen = chosen(config, names)?;
    let identities = identity.map(Identities::load).transpose().map_err(Fatal::usage)?;
    let options = VerifyOptions {
        latest,
        identity: identities.as_ref(),
    };
    let mut problems = 0;
    let mut snapshots = 0;
    for (name, named) in &chosen {
        match archive::verify_personality(config, name.as_str(), &options) {
            Ok(report) => {
                if *named && report.live.is_none() && report.snapshots.is_empty() {
                    problems += 1;
                    println!(
                        "{name}: no backup in {} and no snapshot in {}",
                        config.storage.data_dir.display(),
                        config.archive.dir.display()
                    );
                    continue;
                }
                snapshots += report.snapshots.len();
                problems += report.problem_count();
                print_verify(config, name, &report);
            }
            Err(e) => {
                problems += 1;
                println!("{name}: {}", crate::escape::controls(&e.to_string()));
            }
        }
    }
    let checked = format!(
        "{} and the live store{}",
        crate::words::count(snapshots as u64, "snapshot"),
        if chosen.len() == 1 { "" } else { "s" }
    );
    Ok(super::verify_ending(problems, "", &checked))
}

fn print_verify(config: &Config, name: &PersonalitySlug, report: &VerifyReport) {
    let source = config.storage.data_dir.join(name.as_str());
    match &report.live {
        Some(live) if live.problems.is_empty() => {
            println!(
                "{}: ok, {}",
                source.display(),
                crate::words::count(live.messages, "message")
            );
        }
        Some(live) => {
            for problem in &live.problems {
                println!("{}: {}", source.display(), crate::escape::controls(problem));
            }
        }
        None => println!("{}: no live backup", source.display()),
    }
    let dir = config.archive.dir.join(name.as_str());
    if let Some(problem) = &report.manifest_problem {
        println!("{}", crate::escape::controls(problem));
    }
    if report.snapshots.is_empty() && report.manifest_problem.is_none() {
        println!("{}: no snapshots", dir.display());
    }
    for (entry, check) in &report.snapshots {
        let path = dir.join(&entry.file);
        if !check.problems.is_empty() {
            for problem in &check.problems {
                println!("{}: {}", path.display(), crate::escape::controls(problem));
            }
        } else if check.content_checked {
            println!(
                "{}: ok, {}",
                path.display(),
                crate::words::count(entry.message_count, "message")
            );
        } else {
            println!(
                "{}: size and SHA-256 ok; encrypted, so its content was not checked \
                 (give the identity with --identity FILE to check it)",
                path.display()
            );
        }
    }
    for file in &report.leftovers {
        println!(
            "{}: not in the manifest (left by an interrupted run); the next archive or prune removes it",
            dir.join(file).display()
        );
    }
}

/// `chatkeep restore NAME --snapshot TIME --to DIR [--force] [--identity FILE]`.
pub fn restore(
    config: &Config,
    name: &PersonalitySlug,
    snapshot: &str,
    to: &Path,
    force: bool,
    identity: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    let identities = identity.map(Identities::load).transpose().map_err(Fatal::usage)?;
    let options = RestoreOptions {
        snapshot,
        to,
        force,
        identity: identities.as_ref(),
    };
    match archive::restore(config, name.as_str(), &options) {
        Ok(report) => {
            println!(
                "restored {} file{} of {} into {}",
                report.files.len(),
                if report.files.len() == 1 { "" } else { "s" },
                report.snapshot,
                to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (ArchiveError::SnapshotNotFound { .. }
            | ArchiveError::NeedIdentity { .. }
            | ArchiveError::UnsafeDir(_)),
        ) => Err(Fatal::usage(e)),
        Err(e) => Err(Fatal {
            code: exit::FAILED,
            message: e.to_string(),
        }),
    }
}

fn exit_code(failed: usize) -> ExitCode {
    if failed > 0 {
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
