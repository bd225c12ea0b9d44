//! `chatkeep restore NAME --rebuild [--remote R]`: the personality's store
//! made again from a snapshot (see [`crate::archive::rebuild`]), so that a
//! lost data directory costs one incremental sync rather than the whole
//! history fetched again.

use std::path::Path;
use std::process::ExitCode;

use super::{Fatal, exit, open_store};
use crate::archive::{self, ArchiveError, Identities, RebuildOptions, RebuildReport};
use crate::config::{Config, PersonalitySlug};
use crate::remote::{self, RemoteError};

/// Rebuilds `name`'s store from `snapshot` of the local archive, or of
/// `remote`. Takes the data directory's lock: never beside a daemon or a
/// sync.
pub async fn run(
    config: &Config,
    name: &PersonalitySlug,
    snapshot: &str,
    remote: Option<&str>,
    force: bool,
    identity: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    let identities = identity.map(Identities::load).transpose().map_err(Fatal::usage)?;
    let store = open_store(config)?;
    let options = RebuildOptions {
        force,
        identity: identities.as_ref(),
    };
    let (result, from) = match remote {
        Some(remote) => {
            let remote = super::remote::open(config, remote)?;
            let result =
                remote::rebuild_personality(&remote, config, &store, name.as_str(), snapshot, &options).await;
            (result, format!(" from remote `{}`", remote.config.name))
        }
        None => (
            archive::rebuild(&store, config, name.as_str(), snapshot, &options).map_err(RemoteError::Local),
            String::new(),
        ),
    };
    match result {
        Ok(report) => {
            // The search index follows the new store (a warning if not).
            crate::search::index_after_commit(&store, name.as_str()).await;
            print_report(name, &report, &from, store.root());
            if config.personality(name).is_none() {
                eprintln!(
                    "note: `{name}` is not in a [[personality]] block of {}; add it there to sync it",
                    config.source.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(RemoteError::Local(
            e @ (ArchiveError::SnapshotNotFound { .. }
            | ArchiveError::NeedIdentity { .. }
            | ArchiveError::LiveStore { .. }),
        )) => Err(Fatal::usage(e)),
        Err(e) => Err(Fatal {
            code: exit::FAILED,
            message: e.to_string(),
        }),
    }
}

fn print_report(name: &PersonalitySlug, report: &RebuildReport, from: &str, data_dir: &Path) {
    use crate::words::count;
    println!(
        "{} the backup of {name} in {} from {}{from}: {}{}{}, {}",
        if report.replaced { "replaced" } else { "rebuilt" },
        data_dir.join(name.as_str()).display(),
        report.snapshot,
        count(report.messages, "message"),
        if report.revised > 0 {
            format!(
                " ({} with {})",
                count(report.revised, "revised message"),
                count(report.revisions, "earlier version")
            )
        } else {
            String::new()
        },
        if report.deleted > 0 {
            format!(", {} gone upstream", report.deleted)
        } else {
            String::new()
        },
        count(report.documents as u64, "document"),
    );
    if report.media_refs > 0 {
        println!(
            "media: {}, {} new in the store",
            count(report.media_refs, "reference"),
            count(report.media_files, "file")
        );
    }
    let beginning = if report.beginning_confirmed {
        "the beginning of its history is confirmed"
    } else {
        "the beginning of its history is not confirmed yet (the next sync probes for it)"
    };
    match report.head {
        Some(head) => println!(
            "next: `chatkeep sync {name}` fetches only what is newer than {}; {beginning}",
            head.to_rfc3339()
        ),
        None => println!("next: `chatkeep sync {name}` fetches its history; {beginning}"),
    }
}
