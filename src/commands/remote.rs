//! `chatkeep push`, and the remote side of `archive`, `verify --remote`
//! and `restore --remote`: offsite copies of the snapshots.

use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;

use super::{Fatal, exit};
use crate::archive::{ArchiveError, Identities, RestoreOptions};
use crate::config::{Config, PersonalitySlug};
use crate::remote::{self, PushOutcome, Remote, RemoteCheck, RemoteError};
use crate::words::size;

/// The configured personalities, or the named ones.
fn names(config: &Config, names: &[PersonalitySlug]) -> Vec<PersonalitySlug> {
    if names.is_empty() {
        config.personalities.iter().map(|p| p.name.clone()).collect()
    } else {
        names.to_vec()
    }
}

/// What a push printed: lines for standard output, and warnings.
#[derive(Default)]
pub struct PushLines {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub failed: usize,
}

/// Uploads to every remote what it lacks of each of `names`, after
/// `archive` made its snapshots; also what `push` runs. A failure is a
/// warning for the person (the local snapshot stands) and in the log.
pub async fn push_all(
    config: &Config,
    remotes: &[&crate::config::RemoteConfig],
    names: &[PersonalitySlug],
) -> PushLines {
    let mut lines = PushLines::default();
    // A personality without snapshots has nothing to upload.
    let names: Vec<&PersonalitySlug> = names
        .iter()
        .filter(|name| {
            crate::archive::archive_dir(config, name.as_str())
                .is_ok_and(|dir| crate::archive::manifest::Manifest::path(&dir).is_file())
        })
        .collect();
    // One store's trouble never keeps the others from their copy.
    for remote_config in remotes {
        let record =
            |outcome| remote::status::record(&config.archive.dir, &remote_config.name, outcome, Utc::now());
        let remote = match Remote::open(remote_config) {
            Ok(remote) => remote,
            Err(e) => {
                lines.failed += 1;
                lines.stderr.push(format!(
                    "warning: {}; nothing was uploaded to it",
                    crate::escape::controls(&e.to_string())
                ));
                record(Err(e.to_string()));
                continue;
            }
        };
        abort_stale(config, &remote, &mut lines).await;
        let mut held = 0;
        let mut first_error = None;
        for name in &names {
            let outcome = PushOutcome {
                remote: remote_config.name.clone(),
                result: remote::push_personality(&remote, config, name.as_str()).await,
            };
            match &outcome.result {
                Ok(report) if report.refused_plain.is_empty() => held += report.held as u64,
                Ok(report) => {
                    first_error.get_or_insert_with(|| {
                        format!(
                            "{name}: not encrypted, not uploaded: {}",
                            report.refused_plain.join(", ")
                        )
                    });
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| format!("{name}: {e}"));
                }
            }
            push_lines(name.as_str(), &outcome, &mut lines);
        }
        if !names.is_empty() || first_error.is_some() {
            record(first_error.map_or(Ok(held), Err));
        }
    }
    lines
}

/// Aborts the uploads to `remote` that earlier runs left unfinished,
/// before anything new goes up. Its trouble is a warning and never fails
/// the push: what stays recorded is tried again on the next one.
async fn abort_stale(config: &Config, remote: &Remote, lines: &mut PushLines) {
    let ledger = remote::uploads::Ledger::new(&config.storage.data_dir);
    let report = remote::uploads::abort_stale(remote, &ledger).await;
    let name = &remote.config.name;
    for upload in &report.aborted {
        lines.stdout.push(format!(
            "remote `{name}`: aborted the unfinished upload of {} (started {})",
            upload.key,
            upload.started.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    for failure in &report.failed {
        lines.stderr.push(format!(
            "warning: remote `{name}`: {}",
            crate::escape::controls(failure)
        ));
    }
}

/// The lines of one personality's push to one remote.
pub fn push_lines(name: &str, outcome: &PushOutcome, lines: &mut PushLines) {
    let remote = &outcome.remote;
    match &outcome.result {
        Ok(report) => {
            for (file, bytes) in &report.uploaded {
                lines.stdout.push(format!(
                    "{name}: uploaded {file} ({}) to remote `{remote}`",
                    size(*bytes)
                ));
            }
            if !report.removed.is_empty() {
                lines.stdout.push(format!(
                    "{name}: remote `{remote}`: retention removed {}",
                    report.removed.join(", ")
                ));
            }
            if report.uploaded.is_empty() && report.removed.is_empty() {
                lines.stdout.push(format!(
                    "{name}: remote `{remote}` is up to date ({})",
                    crate::words::count(report.held as u64, "snapshot")
                ));
            }
            if !report.refused_plain.is_empty() {
                lines.failed += 1;
                lines.stderr.push(format!(
                    "warning: {name}: remote `{remote}` has require_encryption = true, so {} (not \
                     encrypted) was not uploaded; set age_recipients in [archive] to encrypt snapshots",
                    report.refused_plain.join(", ")
                ));
            }
            tracing::debug!(
                personality = name,
                remote = %remote,
                uploaded = report.uploaded.len(),
                removed = report.removed.len(),
                held = report.held,
                "remote up to date"
            );
        }
        Err(e) => {
            lines.failed += 1;
            lines.stderr.push(format!(
                "warning: {name}: {}; the local archive is complete, and the next archive or \
                 `chatkeep push` uploads what the remote lacks",
                crate::escape::controls(&e.to_string())
            ));
        }
    }
}

/// `chatkeep push [NAME...] [--remote R]...`: uploads what each remote lacks.
pub async fn push(
    config: &Config,
    names_given: &[PersonalitySlug],
    remotes: &[String],
) -> Result<ExitCode, Fatal> {
    let remotes = chosen_remotes(config, remotes)?;
    let names = names(config, names_given);
    if names.is_empty() {
        return Err(Fatal::usage(format!(
            "no personality: name one, or add a [[personality]] to {}",
            config.source.display()
        )));
    }
    let lines = push_all(config, &remotes, &names).await;
    if lines.stdout.is_empty() && lines.stderr.is_empty() {
        println!("nothing to upload: no snapshots yet; `chatkeep archive` makes them");
    }
    print(&lines);
    Ok(if lines.failed > 0 {
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn print(lines: &PushLines) {
    for line in &lines.stdout {
        println!("{line}");
    }
    for line in &lines.stderr {
        eprintln!("{line}");
    }
}

fn chosen_remotes<'c>(
    config: &'c Config,
    wanted: &[String],
) -> Result<Vec<&'c crate::config::RemoteConfig>, Fatal> {
    let remotes = Remote::chosen(config, wanted).map_err(Fatal::usage)?;
    if remotes.is_empty() {
        return Err(Fatal::usage(format!(
            "no remote: add a [[remote]] to {}",
            config.source.display()
        )));
    }
    Ok(remotes)
}

pub(super) fn open(config: &Config, name: &str) -> Result<Remote, Fatal> {
    let remote = chosen_remotes(config, &[name.to_owned()])?[0];
    Remote::open(remote).map_err(Fatal::usage)
}

/// `chatkeep verify --remote R [NAME...] [--read-data[=PERCENT]]`.
pub async fn verify(
    config: &Config,
    names_given: &[PersonalitySlug],
    remote: &str,
    read_percent: u8,
) -> Result<ExitCode, Fatal> {
    let remote = open(config, remote)?;
    let names = names(config, names_given);
    let mut problems = 0;
    let mut snapshots = 0;
    for name in &names {
        match remote::verify_personality(&remote, name.as_str(), read_percent).await {
            Ok(check) => {
                problems += check.problem_count();
                snapshots += check.snapshots.len();
                print_check(&remote, name, &check);
            }
            Err(e) => {
                problems += 1;
                println!("{name}: {}", crate::escape::controls(&e.to_string()));
            }
        }
    }
    let whose = format!("remote `{}`", remote.config.name);
    let checked = format!("{} on {whose}", crate::words::count(snapshots as u64, "snapshot"));
    Ok(super::verify_ending(problems, &format!(" on {whose}"), &checked))
}

fn print_check(remote: &Remote, name: &PersonalitySlug, check: &RemoteCheck) {
    let at = |file: &str| format!("{}/{name}/{file}", remote.config.url());
    if check.snapshots.is_empty() {
        println!("{}: no snapshots", at(""));
    }
    for (entry, problems, read) in &check.snapshots {
        if !problems.is_empty() {
            for problem in problems {
                println!("{}: {}", at(&entry.file), crate::escape::controls(problem));
            }
        } else if *read {
            println!("{}: ok, size and SHA-256 of its data", at(&entry.file));
        } else {
            println!(
                "{}: ok, size (--read-data also checks its SHA-256)",
                at(&entry.file)
            );
        }
    }
    for file in &check.unlisted {
        println!(
            "{}: not in the manifest (left by an interrupted upload); the next push removes it",
            at(file)
        );
    }
}

/// `chatkeep restore NAME --remote R --snapshot TIME --to DIR`.
pub async fn restore(
    config: &Config,
    name: &PersonalitySlug,
    remote: &str,
    snapshot: &str,
    to: &Path,
    force: bool,
    identity: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    let remote = open(config, remote)?;
    let identities = identity.map(Identities::load).transpose().map_err(Fatal::usage)?;
    let options = RestoreOptions {
        snapshot,
        to,
        force,
        identity: identities.as_ref(),
    };
    match remote::restore_personality(&remote, config, name.as_str(), &options).await {
        Ok(report) => {
            println!(
                "restored {} file{} of {} from remote `{}` into {}",
                report.files.len(),
                if report.files.len() == 1 { "" } else { "s" },
                report.snapshot,
                remote.config.name,
                to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(RemoteError::Local(
            e @ (ArchiveError::SnapshotNotFound { .. }
            | ArchiveError::NeedIdentity { .. }
            | ArchiveError::UnsafeDir(_)),
        )) => Err(Fatal::usage(e)),
        Err(e) => Err(Fatal {
            code: exit::FAILED,
            message: e.to_string(),
        }),
    }
}

/// `chatkeep prune --remote R [NAME...] [--dry-run]`: the remote's retention
/// applied to what it holds, as `prune` does locally.
pub async fn prune(
    config: &Config,
    names_given: &[PersonalitySlug],
    remote: &str,
    dry_run: bool,
) -> Result<ExitCode, Fatal> {
    let remote = open(config, remote)?;
    let mut failed = 0;
    for name in &names(config, names_given) {
        match remote::prune_personality(&remote, config, name.as_str(), dry_run).await {
            Ok(report) => super::archive::print_prune(name, &report),
            Err(e) => {
                failed += 1;
                eprintln!("error: {name}: {}", crate::escape::controls(&e.to_string()));
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
