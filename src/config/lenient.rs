//! What `chatkeep status` needs of a config file that does not validate
//! (a bad edit the daemon refused on reload): where the backups are, where
//! the snapshots are, and which personalities the file names. Read only
//! from the keys that matter, in whatever parts of the file still parse.

use std::path::{Path, PathBuf};

use super::read::{base_dir, resolve};
use super::{DEFAULT_ARCHIVE_DIR_NAME, PersonalitySlug};

/// The little a broken config file still says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// `[storage] data_dir`, resolved as a valid config resolves it.
    pub data_dir: Option<PathBuf>,
    /// `[archive] dir`, resolved; `None` when not read (the default is
    /// `<data_dir>/archives`, see [`Hints::archive_dir`]).
    archive_dir: Option<PathBuf>,
    /// The `name` of each `[[personality]]` block that can be read.
    pub personalities: Vec<PersonalitySlug>,
}

impl Hints {
    /// Reads `text`, the content of the config file at `source`. The whole
    /// document first; if its TOML is broken, each table on its own (from
    /// its header to the next one); and if a table is broken too, each of
    /// its lines on its own under the table's header. So a mistake
    /// anywhere but on the very line of `data_dir` or of a `name` loses
    /// nothing `status` needs.
    pub fn read(text: &str, source: &Path) -> Hints {
        let mut hints = Hints::default();
        let base = base_dir(source);
        if let Ok(table) = toml::from_str::<toml::Table>(text) {
            hints.take(&table, &base);
            return hints;
        }
        for (header, body) in tables(text) {
            match toml::from_str::<toml::Table>(&format!("{header}\n{}", body.join("\n"))) {
                Ok(table) => hints.take(&table, &base),
                Err(_) => {
                    for line in body {
                        if let Ok(table) = toml::from_str::<toml::Table>(&format!("{header}\n{line}")) {
                            hints.take(&table, &base);
                        }
                    }
                }
            }
        }
        hints
    }

    /// Where the snapshots are: `[archive] dir`, else beside the backups.
    pub fn archive_dir(&self) -> Option<PathBuf> {
        self.archive_dir
            .clone()
            .or_else(|| Some(self.data_dir.as_ref()?.join(DEFAULT_ARCHIVE_DIR_NAME)))
    }

    /// Takes what `table` (a whole document, or one part of one) says.
    fn take(&mut self, table: &toml::Table, base: &Path) {
        let path = |section: &str, key: &str| {
            let text = table.get(section)?.as_table()?.get(key)?.as_str()?;
            // As a valid config: no `~`, nothing empty, relative to the file.
            let usable = !text.is_empty() && !text.contains('\0') && !text.starts_with('~');
            usable.then(|| resolve(base, Path::new(text)))
        };
        if self.data_dir.is_none() {
            self.data_dir = path("storage", "data_dir");
        }
        if self.archive_dir.is_none() {
            self.archive_dir = path("archive", "dir");
        }
        let blocks = table.get("personality").and_then(toml::Value::as_array);
        for block in blocks.into_iter().flatten() {
            let name = block.get("name").and_then(toml::Value::as_str);
            if let Some(slug) = name.and_then(|n| n.parse::<PersonalitySlug>().ok())
                && !self.personalities.contains(&slug)
            {
                self.personalities.push(slug);
            }
        }
    }
}

/// The document cut at its table headers (`[name]`, `[[name]]`): each
/// header (empty for the keys before the first) with the lines under it.
fn tables(text: &str) -> Vec<(&str, Vec<&str>)> {
    let mut parts: Vec<(&str, Vec<&str>)> = vec![("", Vec::new())];
    for line in text.lines() {
        if is_header(line) {
            parts.push((line, Vec::new()));
        } else if let Some((_, body)) = parts.last_mut() {
            body.push(line);
        }
    }
    parts
}

/// `[storage]`, `[[personality]]`, `[a.b] # note`; not a line of an array
/// value such as `["chat", "profile"],`.
fn is_header(line: &str) -> bool {
    let line = line.split('#').next().unwrap_or("").trim();
    let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
        return false;
    };
    let inner = inner
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or(inner)
        .trim();
    !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-. \"'".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slugs(hints: &Hints) -> Vec<&str> {
        hints.personalities.iter().map(PersonalitySlug::as_str).collect()
    }

    #[test]
    fn a_valid_document_gives_its_paths_resolved_and_its_names() {
        let text = "[storage]\ndata_dir = \"data\"\n[archive]\ndir = \"/srv/snap\"\n\
                    [[personality]]\nname = \"lilith\"\n[[personality]]\nname = \"eve\"\n";
        let hints = Hints::read(text, Path::new("/etc/chatkeep/config.toml"));
        assert_eq!(hints.data_dir, Some(PathBuf::from("/etc/chatkeep/data")));
        assert_eq!(hints.archive_dir(), Some(PathBuf::from("/srv/snap")));
        assert_eq!(slugs(&hints), ["lilith", "eve"]);
    }

    #[test]
    fn broken_toml_elsewhere_loses_nothing() {
        let text = "[service]\nbase_url = \"http://x\n\n[storage]\ndata_dir = \"/var/lib/chatkeep\"\n\
                    segment_size = 12 MB\n\n[[personality]]\nname = \"lilith\"\nsections = [\n  \"chat\",\n]\n\
                    [[personality]]\nname = eve\n[[personality]]\nname = \"adam\"\n";
        let hints = Hints::read(text, Path::new("/etc/chatkeep/config.toml"));
        assert_eq!(hints.data_dir, Some(PathBuf::from("/var/lib/chatkeep")));
        assert_eq!(
            hints.archive_dir(),
            Some(PathBuf::from("/var/lib/chatkeep/archives"))
        );
        assert_eq!(slugs(&hints), ["lilith", "adam"]);
    }

    #[test]
    fn nothing_usable_gives_nothing() {
        let hints = Hints::read("[storage]\ndata_dir = \"~/backups\"\n", Path::new("config.toml"));
        assert_eq!(hints, Hints::default());
        assert_eq!(hints.archive_dir(), None);
        assert!(!is_header("  [\"chat\", \"profile\"],"));
        assert!(is_header("[[personality]]  # the first"));
    }
}
