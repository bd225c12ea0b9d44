//! `chatkeep import NAME PATH`: adopts a backup written by the earlier
//! export script (see `crate::import`).

use std::path::Path;
use std::process::ExitCode;

use super::{Fatal, exit, open_store};
use crate::config::{Config, PersonalitySlug};
use crate::import::{self, DocumentImport, ImportError, Sources};

/// Imports what `path` holds of `name` into the data directory, under its
/// lock. Exit 0 when imported, 1 when a file was refused (nothing changed),
/// 2 for a usage error (no such files, the directory held by another).
pub fn run(config: &Config, name: &PersonalitySlug, path: &Path, json: bool) -> Result<ExitCode, Fatal> {
    let failed = |e: ImportError| Fatal {
        code: exit::FAILED,
        message: e.to_string(),
    };
    let sources = Sources::find(name.as_str(), path).map_err(|e| Fatal::usage(e.to_string()))?;
    let store = open_store(config)?;
    let dir = store.personality(name.as_str()).map_err(Fatal::usage)?;
    // Every document is read and checked before anything is stored: a
    // broken one changes nothing, the history included.
    let documents = import::check_documents(&sources).map_err(failed)?;
    let chat = match &sources.chat {
        Some(history) => {
            let mut chat = dir
                .chat(config.storage.segment_size)
                .map_err(|e| failed(e.into()))?;
            Some(import::import_chat(&mut chat, history).map_err(failed)?)
        }
        None => None,
    };
    let documents = import::store_documents(&dir, documents).map_err(failed)?;
    if chat.is_some() {
        // The imported messages become findable; a failure is a warning,
        // and the next sync or search catches up.
        crate::search::index_after_commit_blocking(&store, name.as_str());
    }
    // What was imported, when and from where: the backup's own record of
    // which of its contents came from files rather than the service.
    let record = serde_json::json!({
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "from": path.canonicalize().unwrap_or_else(|_| path.to_owned()),
        "chat": chat,
        "documents": documents.iter().map(|(file, what)| (file.clone(), what)).collect::<std::collections::BTreeMap<_, _>>(),
    });
    if let Err(e) = import::record(&dir, &record) {
        eprintln!(
            "warning: the import is done, but not listed in {}: {e}",
            import::IMPORTS_FILE
        );
    }
    if json {
        let report = serde_json::json!({
            "personality": name.as_str(),
            "chat": chat,
            "documents": documents.iter().map(|(file, what)| (file.clone(), what)).collect::<std::collections::BTreeMap<_, _>>(),
        });
        println!("{report:#}");
    } else {
        if let Some(chat) = &chat {
            println!(
                "imported `{name}`'s chat history: {} messages read, {} added to the backup, {} already in it \
                 (left as stored), {} doubled in the file (taken once)",
                chat.read, chat.added, chat.already, chat.doubled
            );
            if chat.corrupted > 0 {
                println!(
                    "{} added messages hold U+FFFD, text the earlier script broke inside a character",
                    chat.corrupted
                );
            }
            if chat.added > 0 {
                println!(
                    "the next `chatkeep sync {name}` compares the imported history with the service's: its \
                     copy replaces a differing imported message (the imported one kept as an earlier \
                     version), and messages the service no longer has are kept"
                );
            }
        }
        for (file, what) in &documents {
            match what {
                DocumentImport::Stored => println!("imported {file}"),
                DocumentImport::Kept => {
                    println!("kept the backup's own {file} (from the service); the imported one was not used")
                }
            }
        }
    }
    if config.personality(name).is_none() {
        eprintln!(
            "note: `{name}` is not in a [[personality]] block of {}; add it there so that syncs keep it up to date",
            config.source.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
