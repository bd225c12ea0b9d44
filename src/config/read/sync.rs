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
        let tail_check = self.optional(section.get("tail_check"), DEFAULT_TAIL_CHECK, |f| {
            f.any_duration()
        });
        let refresh = self.optional(section.get("refresh"), Refresh::FirstPage, read_refresh);
        Some(SyncConfig {
            sections: sections?,
            max_memory_pages: max_memory_pages?,
            tail_check: tail_check?,
            refresh: refresh?,
        })
    }

    pub(super) fn discover(&mut self, section: Table<'_, '_>) -> Option<DiscoverConfig> {
        self.check_keys(&section, DISCOVER_KEYS);
        let owned = self.optional(section.get("owned"), false, |f| f.boolean());
        let recent = self.optional(section.get("recent"), false, |f| f.boolean());
        let max_personalities =
            self.optional(section.get("max_personalities"), DEFAULT_MAX_PERSONALITIES, |f| {
                f.integer(1, MAX_MAX_PERSONALITIES)
            });
        Some(DiscoverConfig {
            owned: owned?,
            recent: recent?,
            max_personalities: max_personalities?,
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

/// A [`Refresh`]: a whole number of messages, or a string holding one, a
/// span of history or `"first-page"`.
pub(super) fn read_refresh(field: &Field<'_, '_>) -> Result<Refresh, Problem> {
    let refresh = match field.value.get_ref() {
        DeValue::Integer(integer) => {
            let count = i128::from_str_radix(integer.as_str(), integer.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok());
            refresh_count(count).map_err(Some)
        }
        DeValue::String(text) => refresh_from_str(text),
        _ => Err(None),
    };
    refresh.map_err(|reason| {
        let got = shown(field.value.get_ref());
        let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
        field.reject(format!(
            "{} must be {REFRESH_FORMAT}; got {got}{reason}",
            field.name
        ))
    })
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
