//! Reading `[archive]`.

use super::*;
use crate::archive::encryption::parse_recipient;

/// How a recipient is described in messages.
const RECIPIENT_FORMAT: &str = "an age public key: \"age1\" followed by 58 letters and digits, \
                                as `age-keygen` prints it";

impl Reader<'_> {
    /// `[archive]`, or its defaults when `section` is `None`. The default
    /// directory is below `data_dir`; without one (`[storage]` is wrong,
    /// which is reported on its own) the table is still checked.
    pub(super) fn archive(
        &mut self,
        section: Option<Table<'_, '_>>,
        data_dir: Option<&Path>,
    ) -> Option<ArchiveConfig> {
        let defaults = ArchiveConfig::with_data_dir(data_dir.unwrap_or(Path::new("")));
        let Some(section) = section else {
            return Some(defaults);
        };
        self.check_keys(&section, ARCHIVE_KEYS);
        let base_dir = self.base_dir.clone();
        let dir = self.optional(section.get("dir"), defaults.dir.clone(), |f| {
            read_archive_dir(f, &base_dir, data_dir)
        });
        let compression_level = self.optional(
            section.get("compression_level"),
            defaults.compression_level,
            |f| f.integer(1, 9),
        );
        let skip_unchanged = self.optional(section.get("skip_unchanged"), defaults.skip_unchanged, |f| {
            f.boolean()
        });
        let media = self.optional(section.get("media"), defaults.media, |f| f.boolean());
        let retention = self.retention(&section, defaults.retention);
        let age_recipients = self.optional(section.get("age_recipients"), Vec::new(), read_recipients);
        let age_recipients_file = match section.get("age_recipients_file") {
            None => Some(None),
            Some(field) => {
                let path = field.path(&self.base_dir);
                self.keep(path).map(Some)
            }
        };
        Some(ArchiveConfig {
            dir: dir?,
            compression_level: compression_level?,
            skip_unchanged: skip_unchanged?,
            media: media?,
            retention: retention?,
            age_recipients: age_recipients?,
            age_recipients_file: age_recipients_file?,
        })
    }

    /// The six `keep_*` counts, each a whole number of at least 0.
    pub(super) fn retention(
        &mut self,
        section: &Table<'_, '_>,
        defaults: RetentionPolicy,
    ) -> Option<RetentionPolicy> {
        let mut keep =
            |key: &str, default: u32| self.optional(section.get(key), default, |f| f.integer(0, u32::MAX));
        let keep_last = keep("keep_last", defaults.keep_last);
        let keep_hourly = keep("keep_hourly", defaults.keep_hourly);
        let keep_daily = keep("keep_daily", defaults.keep_daily);
        let keep_weekly = keep("keep_weekly", defaults.keep_weekly);
        let keep_monthly = keep("keep_monthly", defaults.keep_monthly);
        let keep_yearly = keep("keep_yearly", defaults.keep_yearly);
        Some(RetentionPolicy {
            keep_last: keep_last?,
            keep_hourly: keep_hourly?,
            keep_daily: keep_daily?,
            keep_weekly: keep_weekly?,
            keep_monthly: keep_monthly?,
            keep_yearly: keep_yearly?,
        })
    }
}

/// A path that is not the data directory itself: snapshots there would
/// land in the personalities' own directories.
fn read_archive_dir(
    field: &Field<'_, '_>,
    base_dir: &Path,
    data_dir: Option<&Path>,
) -> Result<PathBuf, Problem> {
    let dir = field.path(base_dir)?;
    if data_dir.is_some_and(|data_dir| data_dir == dir) {
        return Err(field.reject(format!(
            "{} cannot be the data directory itself, where each personality's backup lives; \
             leave it out for {}/{DEFAULT_ARCHIVE_DIR_NAME}, or name another directory",
            field.name,
            dir.display()
        )));
    }
    Ok(dir)
}

/// A list of age X25519 recipients, each checked with the age crate.
fn read_recipients(field: &Field<'_, '_>) -> Result<Vec<String>, Problem> {
    let Some(items) = field.value.get_ref().as_array() else {
        return Err(field.expected(&format!(
            "a list of age public keys, such as [\"age1...\"]; each one {RECIPIENT_FORMAT}"
        )));
    };
    let mut recipients = Vec::with_capacity(items.len());
    for item in items.iter() {
        let at = item.span().start;
        let Some(text) = item.get_ref().as_str() else {
            return Err(field.reject_at(
                at,
                format!(
                    "{}: each recipient is {RECIPIENT_FORMAT}, in quotes; got {}",
                    field.name,
                    shown(item.get_ref())
                ),
            ));
        };
        match parse_recipient(text) {
            Ok(_) => recipients.push(text.trim().to_owned()),
            Err(err) => {
                // A secret key pasted here by mistake is not repeated.
                let got = if err.is_secret() {
                    "a secret key (not shown here)".to_owned()
                } else if text.chars().count() <= 100 {
                    // Whole: the end of a key is as likely to be wrong as its start.
                    format!("{text:?}")
                } else {
                    shown(item.get_ref())
                };
                return Err(field.reject_at(
                    at,
                    format!("{}: {got} is not {RECIPIENT_FORMAT}: {err}", field.name),
                ));
            }
        }
    }
    Ok(recipients)
}
