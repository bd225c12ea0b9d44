//! `chatkeep forget NAME`: removes the backup of a personality that is no
//! longer wanted (a typo's leftover, or one removed from the config), after
//! a confirmation. Never one still in the config, never beside a daemon or
//! a sync (it takes the data directory's lock), never a snapshot.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use super::{Fatal, exit, open_store};
use crate::config::{Config, PersonalitySlug};
use crate::status::PersonalityStatus;

/// Removes `<data_dir>/<name>` after a confirmation: `yes`, or a y/N
/// answer on a terminal. Without either, nothing is removed (exit 2);
/// declined at the prompt, nothing is removed (exit 1).
pub fn run(config: &Config, name: &PersonalitySlug, yes: bool) -> Result<ExitCode, Fatal> {
    if let Some(configured) = config.personality(name) {
        return Err(Fatal::usage(format!(
            "`{}` is configured in a [[personality]] block of {}; remove it from the config first \
             (and reload the daemon, if one runs), then forget it",
            configured.name,
            config.source.display()
        )));
    }
    // The lock: no daemon, sync or archive runs while the directory goes.
    let store = open_store(config)?;
    let dir = store.personality(name.as_str()).map_err(Fatal::usage)?;
    if std::fs::symlink_metadata(dir.path()).is_err() {
        return Err(Fatal::usage(format!(
            "no backup of `{name}` in {}; nothing to forget",
            store.root().display()
        )));
    }
    let snapshots = snapshots_note(&config.archive.dir, name.as_str());
    let what = match PersonalityStatus::read(&dir).and_then(|s| s.chat) {
        Some(chat) => format!(
            "{} chat messages and the documents backed up with them",
            chat.total
        ),
        None if dir.holds_backup() => "everything backed up of it".to_owned(),
        None => "no backup, only the status of a sync that found nothing".to_owned(),
    };
    if !yes {
        let question = format!("Remove {} ({what})? {snapshots}. [y/N] ", dir.path().display());
        if !confirmed(&question)? {
            eprintln!("nothing removed");
            return Ok(ExitCode::from(exit::FAILED));
        }
    }
    store.remove_personality(name.as_str()).map_err(Fatal::usage)?;
    // Its list of media references goes with it; the files stay (another
    // personality may link them). A personality of the same name later
    // starts with a list of its own.
    let forgotten =
        crate::media::MediaStore::open(store.root()).and_then(|media| media.forget(name.as_str()));
    if let Err(e) = forgotten {
        eprintln!(
            "warning: could not drop what `{name}` linked from the media index ({})",
            crate::store::fsio::explain(&e)
        );
    }
    // Its messages leave the search index; if that fails, the next sync or
    // search drops them (the index covers no history that is not here).
    let has_index = crate::search::index_dir(store.root()).exists();
    let dropped = || {
        let mut index = crate::search::Indexer::open(&store)?;
        index.forget(name.as_str())?;
        index.finish()
    };
    if let Err(e) = has_index.then(dropped).unwrap_or(Ok(())) {
        eprintln!("warning: could not drop `{name}` from the search index ({e})");
    }
    println!(
        "forgot `{name}`: removed {} ({what}). {snapshots}.",
        dir.path().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What becomes of the personality's snapshots: always kept.
fn snapshots_note(archive_root: &Path, name: &str) -> String {
    let dir = archive_root.join(name);
    let count = std::fs::read_dir(&dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.contains(".tar.gz")))
            .count()
    });
    match count {
        0 => format!("Snapshots are not touched (none in {})", dir.display()),
        1 => format!(
            "Its snapshot in {} is kept; remove it by hand if it is unwanted too",
            dir.display()
        ),
        n => format!(
            "Its {n} snapshots in {} are kept; remove them by hand if they are unwanted too",
            dir.display()
        ),
    }
}

/// Asks `question` on the terminal; only `y` or `yes` confirms. Without a
/// terminal there is nobody to ask: the caller must pass `--yes`.
fn confirmed(question: &str) -> Result<bool, Fatal> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Fatal::usage(
            "not confirmed: standard input is not a terminal to ask on; pass --yes to remove \
             the backup without asking",
        ));
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Fatal::usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
