//! `chatkeep export`: the chat history as JSON, JSON Lines, Markdown or
//! conversations.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use super::Fatal;
use crate::config::{Config, PersonalitySlug};
use crate::export::{self, ExportMeta, ExportOptions, Format, Written};
use crate::store::{fsio, personality_dir};

/// Writes the export to `out` (atomically) or to standard output. Reads the
/// store without its lock, so it works beside a running daemon.
pub fn run(
    config: &Config,
    name: &PersonalitySlug,
    format: Format,
    options: &ExportOptions,
    out: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    let dir = personality_dir(&config.storage.data_dir, name.as_str()).map_err(Fatal::usage)?;
    if !dir.path().is_dir() {
        return Err(Fatal::usage(format!(
            "no backup of `{name}` in {}; run `chatkeep sync {name}` first",
            config.storage.data_dir.display()
        )));
    }
    let chat = crate::store::ChatStore::open_read_only(dir.path()).map_err(Fatal::usage)?;
    let shape_id = chat.state().personality_id.clone().unwrap_or_default();
    let meta = ExportMeta {
        shape_id: &shape_id,
        shape_name: name.as_str(),
    };
    // A device or pipe (`-o /dev/stdout`) is written to, never replaced.
    let special = out.filter(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_file()));
    let written = match out {
        Some(path) if special.is_none() => {
            let mut written = Written::Messages(0);
            fsio::write_atomic_with(path, |file| {
                let mut w = BufWriter::with_capacity(1 << 16, file);
                written = export::write_with(&chat, &meta, format, options, &mut w)
                    .map_err(std::io::Error::other)?;
                w.flush()
            })
            .map_err(|e| Fatal {
                code: super::exit::FAILED,
                message: format!("export to {}: {e}", path.display()),
            })?;
            written
        }
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Fatal {
                    code: super::exit::FAILED,
                    message: format!("export to {}: {e}", path.display()),
                })?;
            write_to(&chat, &meta, format, options, file)?
        }
        None => write_to(&chat, &meta, format, options, std::io::stdout().lock())?,
    };
    if let Some(path) = out {
        eprintln!("wrote {written} of {name} to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn write_to(
    chat: &crate::store::ChatStore,
    meta: &ExportMeta,
    format: Format,
    options: &ExportOptions,
    out: impl Write,
) -> Result<Written, Fatal> {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    export::write_with(chat, meta, format, options, &mut w).map_err(|e| Fatal {
        code: super::exit::FAILED,
        message: e.to_string(),
    })
}
