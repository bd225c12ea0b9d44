//! Reading `[log]`.

use super::*;

impl Reader<'_> {
    pub(super) fn log(&mut self, section: Table<'_, '_>) -> Option<LogConfig> {
        self.check_keys(&section, LOG_KEYS);
        let dir = match section.get("dir") {
            None => Some(None),
            Some(field) => {
                let dir = field.path(&self.base_dir);
                self.keep(dir).map(Some)
            }
        };
        let max_files = self.optional(section.get("max_files"), DEFAULT_LOG_MAX_FILES, |f| {
            f.integer(1, MAX_LOG_MAX_FILES)
        });
        let format = self.optional(section.get("format"), LogFormat::Text, read_log_format);
        let level = self.optional(section.get("level"), DEFAULT_LOG_LEVEL.to_owned(), read_log_level);
        Some(LogConfig {
            dir: dir?,
            max_files: max_files?,
            format: format?,
            level: level?,
        })
    }
}

fn read_log_format(field: &Field<'_, '_>) -> Result<LogFormat, Problem> {
    const EXPECTED: &str = "\"text\" or \"json\"";
    let text = field.string(EXPECTED)?;
    [LogFormat::Text, LogFormat::Json]
        .into_iter()
        .find(|format| format.as_str() == text)
        .ok_or_else(|| with_case_hint(field.expected(EXPECTED), text, &["text", "json"]))
}

fn read_log_level(field: &Field<'_, '_>) -> Result<String, Problem> {
    const EXPECTED: &str = "one of \"error\", \"warn\", \"info\", \"debug\" or \"trace\"";
    let text = field.string(EXPECTED)?;
    match LOG_LEVELS.iter().find(|level| **level == text) {
        Some(level) => Ok((*level).to_owned()),
        None => Err(with_case_hint(field.expected(EXPECTED), text, &LOG_LEVELS)),
    }
}

/// `problem`, with a hint when `text` is one of `names` but for its case.
fn with_case_hint(mut problem: Problem, text: &str, names: &[&str]) -> Problem {
    if let Some(name) = names.iter().find(|name| name.eq_ignore_ascii_case(text)) {
        problem.message.push_str(&format!("; did you mean \"{name}\"?"));
    }
    problem
}
