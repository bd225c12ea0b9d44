//! Reading `[media]` and the `media` list of a `[[personality]]`.

use super::*;

impl Reader<'_> {
    pub(super) fn media(&mut self, section: Table<'_, '_>) -> Option<MediaConfig> {
        self.check_keys(&section, MEDIA_KEYS);
        let attachments = self.optional(section.get("attachments"), true, |f| f.boolean());
        let voice_replies = self.optional(section.get("voice_replies"), true, |f| f.boolean());
        let avatars = self.optional(section.get("avatars"), true, |f| f.boolean());
        // Below a kibibyte nothing real fits: surely a unit was forgotten.
        let max_file_size = self.optional(section.get("max_file_size"), DEFAULT_MEDIA_MAX_FILE_SIZE, |f| {
            f.size(1024)
        });
        let max_bytes_per_run =
            self.optional(section.get("max_bytes_per_run"), None, |f| f.size(1024).map(Some));
        let requests_per_second = self.optional(
            section.get("requests_per_second"),
            DEFAULT_MEDIA_REQUESTS_PER_SECOND,
            |f| f.positive_number(),
        );
        let max_bytes_per_second = self.optional(section.get("max_bytes_per_second"), None, |f| {
            f.size(1024).map(Some)
        });
        Some(MediaConfig {
            kinds: MediaKinds {
                attachments: attachments?,
                voice_replies: voice_replies?,
                avatars: avatars?,
            },
            max_file_size: max_file_size?,
            max_bytes_per_run: max_bytes_per_run?,
            requests_per_second: requests_per_second?,
            max_bytes_per_second: max_bytes_per_second?,
        })
    }
}

/// A `[[personality]]`'s `media`: a list of kinds, each named once; `[]`
/// downloads none.
pub(super) fn read_kinds(field: &Field<'_, '_>) -> Result<MediaKinds, Problem> {
    let valid = MediaKinds::NAMES.map(|n| format!("\"{n}\"")).join(", ");
    let Some(items) = field.value.get_ref().as_array() else {
        return Err(field.expected(&format!(
            "a list of kinds of media, such as [\"attachments\", \"avatars\"], from {valid}; [] for none"
        )));
    };
    let mut kinds = MediaKinds::NONE;
    for item in items.iter() {
        let at = item.span().start;
        let slot = match item.get_ref().as_str() {
            Some("attachments") => &mut kinds.attachments,
            Some("voice_replies") => &mut kinds.voice_replies,
            Some("avatars") => &mut kinds.avatars,
            _ => {
                return Err(field.reject_at(
                    at,
                    format!(
                        "{}: {} is not a kind of media; expected one of {valid}",
                        field.name,
                        shown(item.get_ref())
                    ),
                ));
            }
        };
        if *slot {
            return Err(field.reject_at(
                at,
                format!("{}: {} is listed twice", field.name, shown(item.get_ref())),
            ));
        }
        *slot = true;
    }
    Ok(kinds)
}
