//! `chatkeep export`: the chat history as JSON, JSON Lines, Markdown,
//! conversations, SillyTavern chats or fine-tuning examples; the
//! personality as a character card; and the documents beside it as stored.

use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use clap::ValueEnum;

use super::Fatal;
use crate::config::{Config, PersonalitySlug, Section};
use crate::export::{self, ExportMeta, ExportOptions, Format, MediaLinks, What, parts};
use crate::media::MediaView;
use crate::media::catalog::hash_file;
use crate::status::{PersonalityStatus, SectionStatus};
use crate::store::{PersonalityDir, fsio, personality_dir};

/// Writes the parts `what` names to `out` (atomically), into `out` as a
/// directory (one file each), or to standard output (one part only).
/// Reads the store without its lock, so it works beside a running daemon.
/// A document the store does not hold is said on standard error, with the
/// reason, and is no failure.
pub fn run(
    config: &Config,
    name: &PersonalitySlug,
    what: &[What],
    format: Format,
    options: &ExportOptions,
    media: MediaLinks,
    out: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    let extras = Extras {
        media,
        ..Extras::default()
    };
    run_with(config, name, what, format, options, &extras, out)
}

/// What some formats take besides the messages chosen.
#[derive(Debug, Clone)]
pub struct Extras {
    /// How media are shown (`--media`).
    pub media: MediaLinks,
    /// openai, sharegpt: the longest example (`--max-chars`).
    pub max_chars: usize,
    /// character-card: the PNG to embed the card in (`--png`).
    pub png: Option<std::path::PathBuf>,
}

impl Default for Extras {
    fn default() -> Self {
        Extras {
            media: MediaLinks::Url,
            max_chars: export::training::DEFAULT_MAX_CHARS,
            png: None,
        }
    }
}

/// [`run`], with what some formats take besides.
pub fn run_with(
    config: &Config,
    name: &PersonalitySlug,
    what: &[What],
    format: Format,
    options: &ExportOptions,
    extras: &Extras,
    out: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    let (media, max_chars) = (extras.media, extras.max_chars);
    let sections = parts::sections(what);
    if format == Format::CharacterCard {
        return export_card(config, name, &sections, options, extras.png.as_deref(), out);
    }
    check_selection(&sections, format, options, out)?;
    let out_dir = out.filter(|p| p.is_dir());
    let local = media == MediaLinks::Local;
    if local && out_dir.is_none() {
        return Err(Fatal::usage(
            "--media local needs -o DIR, an existing directory: the export goes there with the \
             media files it links in DIR/media/; nothing was written",
        ));
    }
    let dir = personality_dir(&config.storage.data_dir, name.as_str()).map_err(Fatal::usage)?;
    if !dir.path().is_dir() {
        return Err(Fatal::usage(format!(
            "no backup of `{name}` in {}; run `chatkeep sync {name}` first",
            config.storage.data_dir.display()
        )));
    }
    let status = PersonalityStatus::read(&dir);
    for section in sections {
        // A directory gets the file earlier tools named (`-o exports/`).
        let file_name = parts::document_file_name(name.as_str(), section)
            .unwrap_or_else(|| format.file_name(name.as_str()));
        let in_dir = out.filter(|p| p.is_dir()).map(|d| d.join(file_name));
        let out = in_dir.as_deref().or(out);
        if section == Section::Chat && format == Format::SillyTavern {
            export_sillytavern(&dir, name, options, out_dir)?;
        } else if let (Section::Chat, Some(style)) = (section, format.training()) {
            export_training(&dir, name, options, style, max_chars, out)?;
        } else if section == Section::Chat {
            let media = media_view(config, format, local)?;
            export_chat(&dir, name, format, options, media.as_ref(), out_dir, out)?;
        } else {
            export_document(&dir, name, section, status.as_ref(), out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses (exit 2, nothing written) options that would do nothing for the
/// parts chosen, and more than one part anywhere but into a directory.
fn check_selection(
    sections: &[Section],
    format: Format,
    options: &ExportOptions,
    out: Option<&Path>,
) -> Result<(), Fatal> {
    if !sections.contains(&Section::Chat) {
        if format != Format::Json {
            let shown = format
                .to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            return Err(Fatal::usage(format!(
                "documents are exported as stored, in JSON; --format {shown} is for the chat history \
                 (add `chat` to --what, or leave --format out)"
            )));
        }
        if *options != ExportOptions::default() {
            return Err(Fatal::usage(
                "--since, --until, --upstream-only and --revisions select messages of the chat history; \
                 add `chat` to --what, or leave them out",
            ));
        }
    }
    if sections.len() > 1 && !out.is_some_and(Path::is_dir) {
        return Err(Fatal::usage(
            "exporting more than one part writes one file each: give -o DIR, an existing directory",
        ));
    }
    Ok(())
}

/// The chat history in `format`; with local media links, the files they
/// link copied into `out_dir/media/`.
fn export_chat(
    dir: &PersonalityDir,
    name: &PersonalitySlug,
    format: Format,
    options: &ExportOptions,
    media: Option<&MediaView>,
    out_dir: Option<&Path>,
    out: Option<&Path>,
) -> Result<(), Fatal> {
    let chat = crate::store::ChatStore::open_read_only(dir.path()).map_err(Fatal::usage)?;
    warn_of_unfinished_walk(&chat, name);
    let shape_id = chat.state().personality_id.clone().unwrap_or_default();
    let display_name = (format == Format::Markdown)
        .then(|| display_name(dir, name))
        .flatten();
    let meta = ExportMeta {
        shape_id: &shape_id,
        shape_name: name.as_str(),
        display_name: display_name.as_deref(),
    };
    let target = Target::of(out)?;
    let written = target.write(|w| {
        let mut w = BufWriter::with_capacity(1 << 16, w);
        let written = export::write_with_media(&chat, &meta, format, options, media, &mut w)
            .map_err(std::io::Error::other)?;
        w.flush()?;
        // Before the export takes its name: it never names a file that is
        // not there.
        if let (Some(media), Some(dir)) = (media, out_dir)
            && media.is_local()
        {
            copy_media(media, dir)?;
        }
        Ok(written)
    })?;
    target.report(&written, name, "");
    Ok(())
}

/// The chat history as SillyTavern chat files, one per conversation, into
/// `out_dir`, each written atomically; a file of an earlier export with the
/// same name (the same conversation) is replaced, and said so.
fn export_sillytavern(
    dir: &PersonalityDir,
    name: &PersonalitySlug,
    options: &ExportOptions,
    out_dir: Option<&Path>,
) -> Result<(), Fatal> {
    let Some(out_dir) = out_dir else {
        return Err(Fatal::usage(
            "--format sillytavern writes one file per conversation: give -o DIR, an existing \
             directory (such as SillyTavern's data/<user>/chats/<character>/); nothing was written",
        ));
    };
    fsio::check_output_dir(out_dir).map_err(|e| {
        Fatal::usage(format!(
            "export to {}: {e}; nothing was written",
            out_dir.display()
        ))
    })?;
    let chat = crate::store::ChatStore::open_read_only(dir.path()).map_err(Fatal::usage)?;
    warn_of_unfinished_walk(&chat, name);
    let character = display_name(dir, name).unwrap_or_else(|| name.as_str().to_owned());
    let user = preferred_name(dir).unwrap_or_else(|| "You".to_owned());
    let names = export::sillytavern::Names {
        user: &user,
        character: &character,
    };
    let mut replaced = 0u64;
    let mut files = |file: &str, fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>| {
        let path = out_dir.join(file);
        if std::fs::symlink_metadata(&path).is_ok() {
            replaced += 1;
        }
        fsio::write_atomic_with(&path, |f| fill(&mut BufWriter::with_capacity(1 << 16, f)))
    };
    let counts = export::sillytavern::write(&chat, options, names, &mut files).map_err(|e| Fatal {
        code: super::exit::FAILED,
        message: format!("export to {}: {e}", out_dir.display()),
    })?;
    let written = export::Written::Conversations {
        counts,
        min_messages: options.split.min_messages,
    };
    let replacing = match replaced {
        0 => String::new(),
        n => format!(", replacing {} there", crate::words::count(n, "file")),
    };
    eprintln!(
        "wrote {written} of {name} to {} as SillyTavern chats{replacing}",
        out_dir.display()
    );
    Ok(())
}

/// The personality as a Character Card V2, from its stored profile,
/// knowledge and training; inside the PNG `png` when given.
fn export_card(
    config: &Config,
    name: &PersonalitySlug,
    sections: &[Section],
    options: &ExportOptions,
    png: Option<&Path>,
    out: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    if sections != [Section::Chat] {
        return Err(Fatal::usage(
            "--format character-card makes one card of the profile, knowledge and training; \
             leave out --what",
        ));
    }
    if !options.period.is_all() || options.upstream_only || options.revisions {
        return Err(Fatal::usage(
            "--since, --until, --upstream-only and --revisions select messages; a character card holds none",
        ));
    }
    let dir = personality_dir(&config.storage.data_dir, name.as_str()).map_err(Fatal::usage)?;
    let failed = |message: String| Fatal {
        code: super::exit::FAILED,
        message,
    };
    let read = |suffix: &str| {
        dir.read_document(&dir.document_path(suffix))
            .map_err(|e| failed(format!("cannot read the stored documents of `{name}`: {e}")))
    };
    let Some(profile) = read("")? else {
        return Err(Fatal::usage(format!(
            "no stored profile of `{name}` in {}; run `chatkeep sync {name}` first",
            config.storage.data_dir.display()
        )));
    };
    let (knowledge, training) = (read("_knowledge")?, read("_training")?);
    let card = export::card::build(
        name.as_str(),
        Some(&profile),
        knowledge.as_deref(),
        training.as_deref(),
    )
    .map_err(|e| failed(format!("no card of `{name}`: {e}")))?;
    let json = card.to_json();
    let file_name = match png {
        Some(_) => format!("{name}.card.png"),
        None => Format::CharacterCard.file_name(name.as_str()),
    };
    let in_dir = out.filter(|p| p.is_dir()).map(|d| d.join(file_name));
    let out = in_dir.as_deref().or(out);
    let mut avatar = match png {
        Some(path) => Some(
            fsio::open_read(path)
                .map(std::io::BufReader::new)
                .map_err(|e| Fatal::usage(format!("cannot read the avatar {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let target = Target::of(out)?;
    target.write(|w| {
        let mut w = BufWriter::with_capacity(1 << 16, w);
        match (&mut avatar, png) {
            (Some(avatar), Some(path)) => export::png::embed(avatar, &json, &mut w).map_err(|e| {
                std::io::Error::other(format!("the avatar {}: {e}; nothing was written", path.display()))
            })?,
            _ => writeln!(w, "{json}")?,
        }
        w.flush()
    })?;
    let entries = card.data.character_book.as_ref().map_or(0, |b| b.entries.len());
    let detail = format!(
        " ({} in its character book)",
        crate::words::counted(entries as u64, "entry", "entries")
    );
    target.report(&format_args!("the character card"), name, &detail);
    Ok(ExitCode::SUCCESS)
}

/// The chat history as fine-tuning examples, with the profile's prompt as
/// the system turn.
fn export_training(
    dir: &PersonalityDir,
    name: &PersonalitySlug,
    options: &ExportOptions,
    style: export::training::Style,
    max_chars: usize,
    out: Option<&Path>,
) -> Result<(), Fatal> {
    let chat = crate::store::ChatStore::open_read_only(dir.path()).map_err(Fatal::usage)?;
    warn_of_unfinished_walk(&chat, name);
    let profile = stored_profile(dir, name);
    let system = profile.as_ref().and_then(export::profile::system_prompt);
    if system.is_none() {
        eprintln!(
            "note: no prompt or description in the stored profile of `{name}`: the examples have no system turn"
        );
    }
    let target = Target::of(out)?;
    let counts = target.write(|w| {
        let mut w = BufWriter::with_capacity(1 << 16, w);
        let counts = export::training::write(&chat, options, style, system, max_chars, &mut w)
            .map_err(std::io::Error::other)?;
        w.flush()?;
        Ok(counts)
    })?;
    target.report(&counts, name, "");
    if out.is_none() {
        eprintln!("{counts}");
    }
    Ok(())
}

/// The stored profile as JSON; `None` without one, or with a warning when
/// it is unreadable.
fn stored_profile(dir: &PersonalityDir, name: &PersonalitySlug) -> Option<serde_json::Value> {
    let bytes = dir.read_document(&dir.document_path("")).ok().flatten()?;
    match serde_json::from_slice(&bytes) {
        Ok(profile) => Some(profile),
        Err(e) => {
            eprintln!("warning: the stored profile of `{name}` is unreadable: {e}");
            None
        }
    }
}

/// The name the user goes by with this personality (`preferred_name` of
/// the stored user personalization), if any.
fn preferred_name(dir: &PersonalityDir) -> Option<String> {
    let bytes = dir
        .read_document(&dir.document_path("_user_personalization"))
        .ok()
        .flatten()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    doc.get("preferred_name")?
        .as_str()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// One document, byte for byte as stored; one the store does not hold is
/// said on standard error with the reason the last sync recorded.
fn export_document(
    dir: &PersonalityDir,
    name: &PersonalitySlug,
    section: Section,
    status: Option<&PersonalityStatus>,
    out: Option<&Path>,
) -> Result<(), Fatal> {
    let label = section.as_str().replace('_', " ");
    let document = parts::open_document(dir, section).map_err(|e| Fatal {
        code: super::exit::FAILED,
        message: format!("cannot read the stored {label} of `{name}`: {e}"),
    })?;
    let Some(document) = document else {
        let why = why_missing(status, section);
        // A file of an earlier export stays: say so, or it passes for this one.
        let left = match out.filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())) {
            Some(path) => format!("; {} is left as it was", path.display()),
            None => String::new(),
        };
        eprintln!("note: no {label} of `{name}` exported: {why}{left}");
        return Ok(());
    };
    let target = Target::of(out)?;
    let bytes = target.write(|w| document.copy_to(&mut BufWriter::with_capacity(1 << 16, w)))?;
    let size = format!(" ({})", crate::words::count(bytes, "byte"));
    target.report(&format_args!("the {label}"), name, &size);
    if let Some(why) = not_refreshed(status, section) {
        eprintln!("note: the {label} of `{name}` exported is the copy an earlier sync stored: {why}");
    }
    Ok(())
}

/// Why the last sync left a stored document as it was, when it did not
/// find it upstream: the copy may be older than what the service holds, or
/// hold what the service no longer has.
fn not_refreshed(status: Option<&PersonalityStatus>, section: Section) -> Option<String> {
    match status?.sections.get(section.as_str())? {
        SectionStatus::NotAvailable
        | SectionStatus::None
        | SectionStatus::Failed { .. }
        | SectionStatus::NotAttempted
        | SectionStatus::Interrupted { .. } => Some(why_missing(status, section)),
        _ => None,
    }
}

/// Why the store holds no document for `section`, from the status the last
/// sync wrote.
fn why_missing(status: Option<&PersonalityStatus>, section: Section) -> String {
    let recorded = status.and_then(|s| s.sections.get(section.as_str()));
    match recorded {
        Some(SectionStatus::NotAvailable) => {
            "not available to this account (the service shows it to the personality's owner only)".into()
        }
        Some(SectionStatus::None) => "the service had none at the last sync".into(),
        Some(SectionStatus::Skipped) => {
            format!("never fetched: `{section}` is not among the sections the config backs up")
        }
        Some(SectionStatus::Failed { error }) => format!("the last sync could not fetch it: {error}"),
        Some(SectionStatus::NotAttempted | SectionStatus::Interrupted { .. }) => {
            "not fetched yet: the last sync stopped before it".into()
        }
        Some(_) => {
            "it is missing from the store, though the last sync saved it; run `chatkeep verify`".into()
        }
        None => "never fetched: no sync has backed it up yet".into(),
    }
}

/// Where one part goes.
enum Target<'a> {
    Stdout,
    /// A file, replaced atomically; `existed` says whether it replaces one.
    File {
        path: &'a Path,
        existed: bool,
    },
    /// A device or pipe (`-o /dev/stdout`), written to, never replaced.
    Special {
        path: &'a Path,
        id: (u64, u64),
    },
}

impl<'a> Target<'a> {
    fn of(out: Option<&'a Path>) -> Result<Target<'a>, Fatal> {
        let Some(path) = out else {
            return Ok(Target::Stdout);
        };
        if let Some(id) = special_target(path) {
            return Ok(Target::Special { path, id });
        }
        check_parent(path)?;
        let existed = std::fs::symlink_metadata(path).is_ok();
        Ok(Target::File { path, existed })
    }

    /// Runs `fill` on the target; into a file, through a temporary file
    /// that replaces it only once complete.
    fn write<T>(&self, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<T>) -> Result<T, Fatal> {
        let failed = |e: std::io::Error| Fatal {
            code: super::exit::FAILED,
            message: match self.path() {
                Some(path) => format!("export to {}: {e}", path.display()),
                None => e.to_string(),
            },
        };
        match *self {
            Target::Stdout => fill(&mut std::io::stdout().lock()).map_err(failed),
            Target::File { path, .. } => {
                let mut result = None;
                fsio::write_atomic_with(path, |file| {
                    result = Some(fill(file)?);
                    Ok(())
                })
                .map_err(failed)?;
                result.ok_or_else(|| failed(std::io::Error::other("nothing was written")))
            }
            Target::Special { path, id } => {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(failed)?;
                // Opened without O_CREAT or O_TRUNC, but writing from its
                // start: only into the very device or pipe that was
                // checked, never into a file or another device that took
                // its name since.
                let opened = file.metadata().map_err(failed)?;
                if opened.is_file() || (opened.dev(), opened.ino()) != id {
                    return Err(failed(std::io::Error::other(
                        "it was replaced after it was checked; run the export again",
                    )));
                }
                fill(&mut file).map_err(failed)
            }
        }
    }

    fn path(&self) -> Option<&'a Path> {
        match *self {
            Target::Stdout => None,
            Target::File { path, .. } | Target::Special { path, .. } => Some(path),
        }
    }

    /// Says on standard error what went where, and that a file was
    /// replaced: an export never replaces one without a word.
    fn report(&self, written: &dyn std::fmt::Display, name: &PersonalitySlug, detail: &str) {
        let replacing = match self {
            Target::File { existed: true, .. } => ", replacing the file there",
            _ => "",
        };
        if let Some(path) = self.path() {
            eprintln!(
                "wrote {written} of {name} to {}{detail}{replacing}",
                path.display()
            );
        }
    }
}

/// The name the service shows for `name`, from the stored profile (its
/// `name` field); `None` without a profile or a name in it, so the slug
/// stands in.
fn display_name(dir: &PersonalityDir, name: &PersonalitySlug) -> Option<String> {
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
