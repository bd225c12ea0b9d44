//! `[log]`.

use super::*;

/// MINIMAL with a `[log]` table holding `lines`, the first of them on
/// line 9.
fn with_log(lines: &str) -> String {
    format!("{MINIMAL}[log]\n{lines}\n")
}

#[test]
fn log_table_is_read() {
    let config = parse(&with_log("dir = \"logs\"\nformat = \"json\"")).expect("valid");
    // Relative to the config file's directory, as data_dir is.
    assert_eq!(config.log.dir, Some(PathBuf::from("/etc/chatkeep/logs")));
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.max_files, DEFAULT_LOG_MAX_FILES);
    assert_eq!(config.log.level, DEFAULT_LOG_LEVEL);
    for level in LOG_LEVELS {
        let config = parse(&with_log(&format!("level = {level:?}"))).expect(level);
        assert_eq!(config.log.level, level);
    }
    for max_files in [1, 3650] {
        let config = parse(&with_log(&format!("max_files = {max_files}"))).expect("valid");
        assert_eq!(config.log.max_files, max_files);
    }
    assert_eq!(LogFormat::Text.to_string(), "text");
    assert_eq!(LogFormat::Json.as_str(), "json");
}

#[test]
fn log_table_is_checked() {
    for (line, column, message) in [
        ("dir = \"\"", 7, "log.dir must be a path, got an empty string"),
        (
            "dir = \"~/logs\"",
            7,
            "log.dir starts with `~`, which is not expanded here",
        ),
        ("dir = 1", 7, "log.dir must be a path, got 1"),
        (
            "max_files = 0",
            13,
            "log.max_files must be a whole number from 1 to 3650, got 0",
        ),
        (
            "max_files = 3651",
            13,
            "log.max_files must be a whole number from 1 to 3650, got 3651",
        ),
        (
            "format = \"yaml\"",
            10,
            "log.format must be \"text\" or \"json\", got \"yaml\"",
        ),
        (
            "format = \"JSON\"",
            10,
            "log.format must be \"text\" or \"json\", got \"JSON\"; did you mean \"json\"?",
        ),
        (
            "level = \"verbose\"",
            9,
            "log.level must be one of \"error\", \"warn\", \"info\", \"debug\" or \"trace\", \
             got \"verbose\"",
        ),
        ("level = \"INFO\"", 9, "got \"INFO\"; did you mean \"info\"?"),
        ("level = \"warning\"", 9, "got \"warning\""),
        ("level = 3", 9, "log.level must be one of"),
    ] {
        assert_rejected(&with_log(line), 9, column, message);
    }
    let (_, _, message) = rejection(&with_log("level = \"warning\""));
    assert!(!message.contains("did you mean"), "{message}");
    assert_rejected(
        &with_log("directory = \"/x\""),
        9,
        1,
        "unknown key `directory` in [log]; expected one of dir, max_files, format, level",
    );
}

#[test]
fn log_renders_and_reads_back() {
    let config = parse(MINIMAL).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains("[log]\nmax_files = 14\nformat = \"text\"\nlevel = \"info\"\n"),
        "{rendered}"
    );
    let text = with_log("dir = \"./logs\"\nmax_files = 30\nformat = \"json\"\nlevel = \"debug\"");
    let config = parse(&text).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains("[log]\ndir = \"/etc/chatkeep/logs\"\nmax_files = 30\n"),
        "{rendered}"
    );
    assert_eq!(parse(&rendered).expect("reads back"), config);
}
