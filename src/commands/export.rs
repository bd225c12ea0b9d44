//! `chatkeep export`: the chat history as JSON, JSON Lines, Markdown or
//! conversations.

use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use super::Fatal;
use crate::config::{Config, PersonalitySlug};
use crate::export::{self, ExportMeta, ExportOptions, Format, MediaLinks, Written};
use crate::media::MediaView;
use crate::media::catalog::hash_file;
use crate::store::{fsio, personality_dir};

/// Writes the export to `out` (atomically) or to standard output. Reads the
/// store without its lock, so it works beside a running daemon.
pub fn run(
    config: &Config,
    name: &PersonalitySlug,
    format: Format,
    options: &ExportOptions,
    media: MediaLinks,
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
    warn_of_unfinished_walk(&chat, name);
    let shape_id = chat.state().personality_id.clone().unwrap_or_default();
    let display_name = (format == Format::Markdown)
        .then(|| display_name(&dir, name))
        .flatten();
    let meta = ExportMeta {
        shape_id: &shape_id,
        shape_name: name.as_str(),
        display_name: display_name.as_deref(),
    };
    // A directory gets the file earlier tools named (`-o exports/`).
    let out_dir = out.filter(|p| p.is_dir());
    let in_dir = out_dir.map(|d| d.join(format.file_name(name.as_str())));
    let local = media == MediaLinks::Local;
    if local && out_dir.is_none() {
        return Err(Fatal::usage(
            "--media local needs -o DIR, an existing directory: the export goes there with the \
             media files it links in DIR/media/; nothing was written",
        ));
    }
    let media = media_view(config, format, local)?;
    let out = in_dir.as_deref().or(out);
    // A device or pipe (`-o /dev/stdout`) is written to, never replaced.
    let special = out.and_then(special_target);
    if let Some(path) = out.filter(|_| special.is_none()) {
        check_parent(path)?;
    }
    let written = match out {
        Some(path) if special.is_none() => {
            let mut written = Written::Messages(0);
            fsio::write_atomic_with(path, |file| {
                let mut w = BufWriter::with_capacity(1 << 16, file);
                written = export::write_with_media(&chat, &meta, format, options, media.as_ref(), &mut w)
                    .map_err(std::io::Error::other)?;
                w.flush()?;
                // Before the export takes its name: it never names a file
                // that is not there.
                match (&media, out_dir) {
                    (Some(media), Some(dir)) if media.is_local() => copy_media(media, dir),
                    _ => Ok(()),
                }
            })
            .map_err(|e| Fatal {
                code: super::exit::FAILED,
                message: format!("export to {}: {e}", path.display()),
            })?;
            written
        }
        Some(path) => {
            let failed = |e: std::io::Error| Fatal {
                code: super::exit::FAILED,
                message: format!("export to {}: {e}", path.display()),
            };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(failed)?;
            // Opened without O_CREAT or O_TRUNC, but writing from its start:
            // only into the very device or pipe that was checked, never
            // into a file or another device that took its name since.
            let opened = file.metadata().map_err(failed)?;
            if opened.is_file()
                || special.is_some_and(|(dev, ino)| (opened.dev(), opened.ino()) != (dev, ino))
            {
                return Err(failed(std::io::Error::other(
                    "it was replaced after it was checked; run the export again",
                )));
            }
            write_to(&chat, &meta, format, options, media.as_ref(), file)?
        }
        None => write_to(
            &chat,
            &meta,
            format,
            options,
            media.as_ref(),
            std::io::stdout().lock(),
        )?,
    };
    if let Some(path) = out {
        eprintln!("wrote {written} of {name} to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The name the service shows for `name`, from the stored profile (its
/// `name` field); `None` without a profile or a name in it, so the slug
/// stands in.
fn display_name(dir: &crate::store::PersonalityDir, name: &PersonalitySlug) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Profile {
        name: Option<serde_json::Value>,
    }
    let bytes = dir.read_document(&dir.document_path("")).ok().flatten()?;
    let profile: Profile = match serde_json::from_slice(&bytes) {
        Ok(profile) => profile,
        Err(e) => {
            eprintln!(
                "warning: the stored profile of `{name}` is unreadable ({e}); the transcript names it `{name}`"
            );
            return None;
        }
    };
    match profile.name? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s),
        _ => None,
    }
}

/// Says on standard error when a walk has fetched messages that are not
/// stored yet (a sync running now, or one interrupted before its walk
/// ended, as a first backup often is), or when a first walk has begun: the
/// export holds only what is stored, which may be nothing at all.
fn warn_of_unfinished_walk(chat: &crate::store::ChatStore, name: &PersonalitySlug) {
    let walk = match chat.walk_in_progress() {
        // A walk that has fetched nothing new leaves a stored history
        // complete as far as anyone knows; a first one leaves none yet.
        Ok(Some(walk)) if walk.spooled > 0 || chat.state().message_count == 0 => walk,
        Ok(_) => return,
        Err(e) => {
            eprintln!("warning: cannot read the unfinished walk of `{name}`: {e}");
            return;
        }
    };
    eprintln!(
        "warning: the chat history of `{name}` is still being fetched: {} messages fetched are not \
         stored yet, so this export holds only the {} stored; it is complete once a sync finishes the walk \
         (`chatkeep sync {name}`, or the daemon's next run)",
        walk.spooled,
        chat.state().message_count
    );
}

/// The device and inode of `path` when it is a device or a pipe to write
/// to rather than a file to replace: the path as the person named it,
/// through a symbolic link of theirs or root's (`/dev/stdout`), but not
/// through one another user planted (which the atomic write replaces
/// instead).
fn special_target(path: &Path) -> Option<(u64, u64)> {
    let entry = std::fs::symlink_metadata(path).ok()?;
    if entry.file_type().is_symlink() && ![0, fsio::effective_uid()].contains(&entry.uid()) {
        return None;
    }
    std::fs::metadata(path)
        .ok()
        .filter(|m| !m.is_file())
        .map(|m| (m.dev(), m.ino()))
}

/// Refuses (exit 2, nothing written) to export into a directory another
/// user could write in or owns (see [`fsio::check_output_dir`]; a sticky
/// one such as `/tmp` is fine). A missing directory is left for the write
/// to report.
fn check_parent(path: &Path) -> Result<(), Fatal> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if std::fs::symlink_metadata(parent).is_err() {
        return Ok(());
    }
    fsio::check_output_dir(parent)
        .map_err(|e| Fatal::usage(format!("export to {}: {e}; nothing was written", path.display())))
}

/// The media index, read only, when the export shows media: local links,
/// or a transcript (which says which URLs are gone). A transcript does
/// without it, saying so, when it cannot be read.
fn media_view(config: &Config, format: Format, local: bool) -> Result<Option<MediaView>, Fatal> {
    if !local && format != Format::Markdown {
        return Ok(None);
    }
    match MediaView::read(&config.storage.data_dir, local) {
        Ok(view) => Ok(Some(view)),
        Err(e) if local => Err(Fatal {
            code: super::exit::FAILED,
            message: format!(
                "reading the media index: {}; nothing was written",
                fsio::explain(&e)
            ),
        }),
        Err(e) => {
            eprintln!(
                "warning: cannot read the media index ({}); the transcript links the URLs only",
                fsio::explain(&e)
            );
            Ok(None)
        }
    }
}

/// Copies each file the export linked into `dir/media/` (made 0700 if
/// missing). A copy, not a hard link: an edit of the exported file must
/// not change the backup's. A file already there with the right content
/// (an earlier export) is left as it is.
fn copy_media(media: &MediaView, dir: &Path) -> std::io::Result<()> {
    let linked = media.linked();
    if linked.is_empty() {
        return Ok(());
    }
    let to = dir.join(crate::media::store::MEDIA_DIR);
    fsio::create_output_dir(&to)?;
    for (file, from) in linked {
        let target = to.join(&file);
        let hash = file.split_once('.').map_or("", |(hash, _)| hash);
        if hash_file(&target).is_ok_and(|(found, _)| found.as_str() == hash) {
            continue;
        }
        let mut source = fsio::open_read(&from)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", from.display())))?;
        fsio::write_atomic_with(&target, |out| std::io::copy(&mut source, out).map(|_| ()))?;
    }
    Ok(())
}

fn write_to(
    chat: &crate::store::ChatStore,
    meta: &ExportMeta,
    format: Format,
    options: &ExportOptions,
    media: Option<&MediaView>,
    out: impl Write,
) -> Result<Written, Fatal> {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    export::write_with_media(chat, meta, format, options, media, &mut w).map_err(|e| Fatal {
        code: super::exit::FAILED,
        message: e.to_string(),
    })
}
