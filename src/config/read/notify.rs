//! Reading `[notify]` and `[metrics]`.

use super::*;

/// How a hook command is described in messages.
const COMMAND_FORMAT: &str = "a command as a list of strings, the program first, run without a shell, \
                              such as [\"/usr/local/bin/alert\", \"--to\", \"ops\"]";

impl Reader<'_> {
    pub(super) fn notify(&mut self, section: Table<'_, '_>) -> Option<NotifyConfig> {
        self.check_keys(&section, NOTIFY_KEYS);
        let on_failure = self.optional(section.get("on_failure"), None, |f| read_command(f).map(Some));
        let on_recovery = self.optional(section.get("on_recovery"), None, |f| read_command(f).map(Some));
        let timeout = self.optional(section.get("timeout"), DEFAULT_NOTIFY_TIMEOUT, |f| {
            let timeout = f.duration()?;
            if timeout > MAX_NOTIFY_TIMEOUT {
                return Err(f.reject(format!(
                    "{} must be at most {}, got {}",
                    f.name,
                    format_duration(MAX_NOTIFY_TIMEOUT),
                    shown(f.value.get_ref())
                )));
            }
            Ok(timeout)
        });
        let ping_url = self.optional(section.get("ping_url"), None, |f| read_ping_url(f).map(Some));
        Some(NotifyConfig {
            on_failure: on_failure?,
            on_recovery: on_recovery?,
            timeout: timeout?,
            ping_url: ping_url?,
        })
    }

    /// `[metrics]`, or its defaults when `section` is `None`. A group may
    /// read the file only outside the data directory, which stays 0700.
    pub(super) fn metrics(
        &mut self,
        section: Option<Table<'_, '_>>,
        data_dir: Option<&Path>,
    ) -> Option<MetricsConfig> {
        let defaults = MetricsConfig::with_data_dir(data_dir.unwrap_or(Path::new("")));
        let Some(section) = section else {
            return Some(defaults);
        };
        self.check_keys(&section, METRICS_KEYS);
        let file = match section.get("file") {
            None => Some(defaults.file),
            Some(field) => {
                let file = field.path(&self.base_dir);
                self.keep(file)
            }
        };
        let group = match section.get("group") {
            None => Some(None),
            Some(field) => {
                let group = read_group(&field, file.as_deref(), data_dir);
                self.keep(group).map(Some)
            }
        };
        Some(MetricsConfig {
            file: file?,
            group: group?,
        })
    }
}

/// A non-empty list of strings, the first one the program.
fn read_command(field: &Field<'_, '_>) -> Result<Vec<String>, Problem> {
    let Some(items) = field.value.get_ref().as_array() else {
        return Err(field.expected(COMMAND_FORMAT));
    };
    if items.is_empty() {
        return Err(field.reject(format!(
            "{} must be {COMMAND_FORMAT}; got an empty list (leave the key out to run nothing)",
            field.name
        )));
    }
    let mut argv = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let at = item.span().start;
        let Some(text) = item.get_ref().as_str() else {
            return Err(field.reject_at(
                at,
                format!(
                    "{}: each word of the command is a string in quotes; got {}",
                    field.name,
                    shown(item.get_ref())
                ),
            ));
        };
        if text.contains('\0') {
            return Err(field.reject_at(
                at,
                format!(
                    "{}: a word of the command cannot contain a NUL character",
                    field.name
                ),
            ));
        }
        if index == 0 && text.trim().is_empty() {
            return Err(field.reject_at(
                at,
                format!(
                    "{}: the first word is the program to run and cannot be empty",
                    field.name
                ),
            ));
        }
        argv.push(text.to_owned());
    }
    Ok(argv)
}

/// An `http://` or `https://` URL with a host, and neither a query nor a
/// fragment (`/start` and `/fail` are appended to it); a trailing slash is
/// dropped.
fn read_ping_url(field: &Field<'_, '_>) -> Result<String, Problem> {
    const EXPECTED: &str = "an http:// or https:// URL without a query, such as \
                            \"https://hc-ping.com/<uuid>\"";
    let text = field.string(EXPECTED)?;
    let lower = text.to_ascii_lowercase();
    let Some(scheme) = ["https://", "http://"].into_iter().find(|s| lower.starts_with(s)) else {
        return Err(field.expected(EXPECTED));
    };
    let rest = &text[scheme.len()..];
    let host = rest.split('/').next().unwrap_or_default();
    let reason = if host.is_empty() {
        Some("it has no host")
    } else if host.contains('@') {
        Some("it holds a user name or password, which would end up in logs")
    } else if text.contains(['?', '#']) {
        Some("it has a query or fragment, so /start and /fail cannot be appended")
    } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains a space or a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(field.reject(format!(
            "{} must be {EXPECTED}; got {}: {reason}",
            field.name,
            shown(field.value.get_ref())
        ))),
        None => Ok(text.trim_end_matches('/').to_owned()),
    }
}

/// A group name or number, for a metrics file outside the data directory.
fn read_group(
    field: &Field<'_, '_>,
    file: Option<&Path>,
    data_dir: Option<&Path>,
) -> Result<String, Problem> {
    const EXPECTED: &str = "a group name (such as \"prometheus\") or a group number in quotes";
    let text = field.string(EXPECTED)?;
    let valid = !text.is_empty()
        && text.len() <= 32
        && (text.bytes().all(|b| b.is_ascii_digit())
            || (text
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))));
    if !valid {
        return Err(field.expected(EXPECTED));
    }
    if let (Some(file), Some(data_dir)) = (file, data_dir)
        && file.starts_with(data_dir)
    {
        return Err(field.reject(format!(
            "{} lets another user read the metrics, but the metrics file {} is in the data \
             directory, which stays private (0700) whatever the file's mode; set metrics.file to \
             a path outside it, such as the node_exporter textfile directory",
            field.name,
            file.display()
        )));
    }
    Ok(text.to_owned())
}
