//! Which parts of a backup an export covers: the chat history, the
//! documents (profile, memories, knowledge, training, user
//! personalization), or all of them, and the documents copied as stored.

use std::io::{self, Write};

use crate::config::Section;
use crate::store::PersonalityDir;
use crate::store::documents::document_suffix;

/// A part named on the command line (`--what`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// The chat history, in `--format`.
    Chat,
    /// `<name>.json`: name, prompt, settings.
    Profile,
    /// `<name>_memories.json`, those gone upstream kept and marked.
    Memories,
    /// `<name>_knowledge.json` (the owner's personalities only).
    Knowledge,
    /// `<name>_training.json` (the owner's personalities only).
    Training,
    /// `<name>_user_personalization.json`.
    #[value(name = "user_personalization", alias = "user")]
    UserPersonalization,
    /// Every document and the chat history, one file each.
    All,
}

const ALL: [Section; 6] = Section::all();

impl What {
    fn sections(self) -> &'static [Section] {
        match self {
            What::Chat => &[Section::Chat],
            What::Profile => &[Section::Profile],
            What::Memories => &[Section::Memories],
            What::Knowledge => &[Section::Knowledge],
            What::Training => &[Section::Training],
            What::UserPersonalization => &[Section::UserPersonalization],
            What::All => &ALL,
        }
    }
}

/// The sections `what` names, each once, in the order a sync takes them
/// (the documents first, the chat history last), whatever order they were
/// named in.
pub fn sections(what: &[What]) -> Vec<Section> {
    let mut sections: Vec<Section> = what.iter().flat_map(|w| w.sections()).copied().collect();
    sections.sort_unstable();
    sections.dedup();
    sections
}

/// The file name a document of `name` is stored and exported under, as
/// earlier tools named it (`lilith_memories.json`); `None` for the chat.
pub fn document_file_name(name: &str, section: Section) -> Option<String> {
    document_suffix(section).map(|suffix| format!("{name}{suffix}.json"))
}

/// A stored document, open: what is copied is the version stored when it
/// was opened, even if a sync replaces it meanwhile (by rename).
pub struct StoredDocument(std::fs::File);

/// Opens the stored document of `section`; `None` when the store holds no
/// such document (or `section` is the chat history, which is none).
pub fn open_document(dir: &PersonalityDir, section: Section) -> io::Result<Option<StoredDocument>> {
    match document_suffix(section) {
        Some(suffix) => Ok(dir.open_document(suffix)?.map(StoredDocument)),
        None => Ok(None),
    }
}

impl StoredDocument {
    /// Copies the document into `out` byte for byte: an export of a
    /// document is the document, not a rendering of it. Returns the bytes
    /// copied.
    pub fn copy_to(mut self, out: &mut impl Write) -> io::Result<u64> {
        let copied = io::copy(&mut self.0, out)?;
        out.flush()?;
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_every_section_once_in_sync_order() {
        assert_eq!(sections(&[What::All, What::Chat, What::Profile]), Section::all());
        assert_eq!(
            sections(&[What::Chat, What::Memories, What::Profile]),
            [Section::Profile, Section::Memories, Section::Chat]
        );
    }

    #[test]
    fn a_document_is_copied_as_stored_and_a_missing_one_is_none() {
        let root = tempfile::tempdir().unwrap();
        let dir = crate::store::personality_dir(root.path(), "lilith").unwrap();
        // Not what serde would write: the copy must not normalise it.
        let stored = b"[ {\"id\": 1, \"n\": 2.50} ]\n";
        dir.save_versioned(&dir.document_path("_memories"), stored)
            .unwrap();
        let mut out = Vec::new();
        let document = open_document(&dir, Section::Memories).unwrap().unwrap();
        assert_eq!(document.copy_to(&mut out).unwrap(), stored.len() as u64);
        assert_eq!(out, stored);
        assert!(open_document(&dir, Section::Knowledge).unwrap().is_none());
        assert!(open_document(&dir, Section::Chat).unwrap().is_none());
        assert_eq!(
            document_file_name("lilith", Section::UserPersonalization).as_deref(),
            Some("lilith_user_personalization.json")
        );
        assert_eq!(document_file_name("lilith", Section::Chat), None);
    }
}
