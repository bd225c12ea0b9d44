//! Reading what a run backs up: `[sync]`, the lists of sections it shares
//! with `[[personality]]`, and `[discover]`.

use super::*;

impl Reader<'_> {
    pub(super) fn sync(&mut self, section: Table<'_, '_>) -> Option<SyncConfig> {
        self.check_keys(&section, SYNC_KEYS);
        let sections = self.optional(section.get("sections"), Section::all().to_vec(), read_sections);
        let max_memory_pages =
            self.optional(section.get("max_memory_pages"), DEFAULT_MAX_MEMORY_PAGES, |f| {
                f.integer(1, MAX_MAX_MEMORY_PAGES)
            });
        Some(SyncConfig {
            sections: sections?,
            max_memory_pages: max_memory_pages?,
        })
    }

    pub(super) fn discover(&mut self, section: Table<'_, '_>) -> Option<DiscoverConfig> {
        self.check_keys(&section, DISCOVER_KEYS);
        let owned = self.optional(section.get("owned"), false, |f| f.boolean());
        let recent = self.optional(section.get("recent"), false, |f| f.boolean());
        Some(DiscoverConfig {
            owned: owned?,
            recent: recent?,
        })
    }
}

/// A list of sections: not empty, each one named once, each one of the six.
/// It is returned in the order of [`Section::all`], whatever the file's
/// order, so that two lists of the same sections compare equal.
pub(super) fn read_sections(field: &Field<'_, '_>) -> Result<Vec<Section>, Problem> {
    let valid = section_names();
    let Some(items) = field.value.get_ref().as_array() else {
        return Err(field.expected(&format!(
            "a list of sections, such as [\"profile\", \"chat\"], from {valid}"
        )));
    };
    if items.is_empty() {
        return Err(field.reject(format!(
            "{} cannot be empty; name at least one of {valid}",
            field.name
        )));
    }
    let mut sections = Vec::with_capacity(items.len());
    for item in items.iter() {
        let at = item.span().start;
        let Some(text) = item.get_ref().as_str() else {
            return Err(field.reject_at(
                at,
                format!(
                    "{}: each section is a name in quotes, one of {valid}; got {}",
                    field.name,
                    shown(item.get_ref())
                ),
            ));
        };
        let Some(section) = Section::all().into_iter().find(|s| s.as_str() == text) else {
            let hint = similar_section(text)
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_default();
            return Err(field.reject_at(
                at,
                format!(
                    "{}: {} is not a section; expected one of {valid}{hint}",
                    field.name,
                    shown(item.get_ref())
                ),
            ));
        };
        if sections.contains(&section) {
            return Err(field.reject_at(
                at,
                format!(
                    "{}: \"{section}\" is listed twice; list each section once",
                    field.name
                ),
            ));
        }
        sections.push(section);
    }
    sections.sort();
    Ok(sections)
}

/// "profile, memories, ..., chat".
fn section_names() -> String {
    Section::all().map(Section::as_str).join(", ")
}

/// The section a misspelt name most likely meant: the one starting with
/// the same three or four letters (`memory`, `Profile`, `user-pers...`).
fn similar_section(text: &str) -> Option<Section> {
    let stem: String = text
        .chars()
        .take(4)
        .map(|c| if c == '-' { '_' } else { c.to_ascii_lowercase() })
        .collect();
    if stem.chars().count() < 3 {
        return None;
    }
    Section::all().into_iter().find(|s| s.as_str().starts_with(&stem))
}
