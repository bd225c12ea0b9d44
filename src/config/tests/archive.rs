//! `[archive]` and `[daemon] archive_schedule`.

use super::*;

/// A valid recipient (the age README's example key).
const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

/// MINIMAL with an `[archive]` table holding `lines`, the first of them on
/// line 9.
fn with_archive(lines: &str) -> String {
    format!("{MINIMAL}[archive]\n{lines}\n")
}

#[test]
fn archive_defaults_are_below_the_data_dir() {
    let config = parse(MINIMAL).expect("valid");
    assert_eq!(
        config.archive,
        ArchiveConfig {
            dir: PathBuf::from("/var/lib/chatkeep/archives"),
            compression_level: 6,
            skip_unchanged: true,
            media: true,
            retention: DEFAULT_RETENTION,
            age_recipients: Vec::new(),
            age_recipients_file: None,
        }
    );
    assert!(!config.archive.encrypts());
    assert_eq!(config.daemon.archive_schedule, None);
    assert_eq!(
        DEFAULT_RETENTION,
        RetentionPolicy {
            keep_last: 7,
            keep_hourly: 0,
            keep_daily: 14,
            keep_weekly: 8,
            keep_monthly: 12,
            keep_yearly: 0,
        }
    );
    // An empty table is the defaults too.
    assert_eq!(parse(&with_archive("")).expect("valid"), config);
}

#[test]
fn archive_table_is_read() {
    let config = parse(&with_archive(&format!(
        "dir = \"snapshots\"\nkeep_last = 0\nkeep_yearly = 100\nage_recipients = [\"{RECIPIENT}\", \" {RECIPIENT} \"]"
    )))
    .expect("valid");
    assert_eq!(config.archive.dir, PathBuf::from("/etc/chatkeep/snapshots"));
    assert_eq!(config.archive.retention.keep_last, 0);
    assert_eq!(config.archive.retention.keep_yearly, 100);
    assert_eq!(config.archive.retention.keep_daily, 14);
    assert_eq!(config.archive.age_recipients, [RECIPIENT, RECIPIENT]);
    assert!(config.archive.encrypts());
    let config = parse(&with_archive("age_recipients_file = \"keys.txt\"")).expect("valid");
    assert_eq!(
        config.archive.age_recipients_file,
        Some(PathBuf::from("/etc/chatkeep/keys.txt"))
    );
    assert!(config.archive.encrypts());
    for level in [1, 9] {
        let config = parse(&with_archive(&format!("compression_level = {level}"))).expect("valid");
        assert_eq!(config.archive.compression_level, level);
    }
}

#[test]
fn archive_table_is_checked() {
    let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    let broken = &RECIPIENT[..RECIPIENT.len() - 1];
    for (line, column, message) in [
        (
            "compression_level = 0".to_owned(),
            21,
            "archive.compression_level must be a whole number from 1 to 9, got 0".to_owned(),
        ),
        (
            "compression_level = 10".to_owned(),
            21,
            "archive.compression_level must be a whole number from 1 to 9, got 10".to_owned(),
        ),
        (
            "skip_unchanged = \"yes\"".to_owned(),
            18,
            "archive.skip_unchanged must be true or false, got \"yes\"".to_owned(),
        ),
        (
            "media = 1".to_owned(),
            9,
            "archive.media must be true or false, got 1".to_owned(),
        ),
        (
            "keep_daily = -1".to_owned(),
            14,
            "archive.keep_daily must be a whole number of at least 0, got -1".to_owned(),
        ),
        (
            "dir = \"/var/lib/chatkeep\"".to_owned(),
            7,
            "archive.dir cannot be the data directory itself".to_owned(),
        ),
        (
            "dir = \"\"".to_owned(),
            7,
            "archive.dir must be a path, got an empty string".to_owned(),
        ),
        (
            format!("age_recipients = \"{RECIPIENT}\""),
            18,
            "archive.age_recipients must be a list of age public keys".to_owned(),
        ),
        (
            format!("age_recipients = [\"{RECIPIENT}\", 7]"),
            85,
            "archive.age_recipients: each recipient is an age public key".to_owned(),
        ),
        (
            format!("age_recipients = [\"{broken}\"]"),
            19,
            format!("archive.age_recipients: \"{broken}\" is not an age public key").to_owned(),
        ),
        (
            "age_recipients = [\"ssh-ed25519 AAAAC3\"]".to_owned(),
            19,
            "it does not start with \"age1\"".to_owned(),
        ),
        (
            format!("age_recipients = [\"{secret}\"]"),
            19,
            "archive.age_recipients: a secret key (not shown here) is not an age public key".to_owned(),
        ),
        (
            "age_recipients_file = 3".to_owned(),
            23,
            "archive.age_recipients_file must be a path, got 3".to_owned(),
        ),
    ] {
        assert_rejected(&with_archive(&line), 9, column, &message);
    }
    let (_, _, message) = rejection(&with_archive(&format!("age_recipients = [\"{secret}\"]")));
    assert!(!message.contains("QQQQ"), "{message}");
    assert_rejected(
        &with_archive("keep_days = 3"),
        9,
        1,
        "unknown key `keep_days` in [archive]; expected one of dir, compression_level, \
         skip_unchanged, media, keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, \
         keep_yearly, age_recipients, age_recipients_file",
    );
    assert_rejected(
        &format!("{MINIMAL}[daemon]\narchive_schedule = \"0 */6 * * *\"\n"),
        9,
        20,
        "daemon.archive_schedule must be a cron expression of six fields",
    );
}

#[test]
fn archive_renders_and_reads_back() {
    let config = parse(MINIMAL).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains(
            "[archive]\ndir = \"/var/lib/chatkeep/archives\"\ncompression_level = 6\n\
             skip_unchanged = true\nmedia = true\nkeep_last = 7\nkeep_hourly = 0\nkeep_daily = 14\n\
             keep_weekly = 8\nkeep_monthly = 12\nkeep_yearly = 0\n"
        ),
        "{rendered}"
    );
    assert!(!rendered.contains("archive_schedule"), "{rendered}");
    let text = format!(
        "{MINIMAL}[daemon]\narchive_schedule = \"@daily\"\n\n[archive]\ndir = \"/mnt/a\"\n\
         keep_hourly = 24\nage_recipients = [\"{RECIPIENT}\"]\nage_recipients_file = \"r.txt\"\n"
    );
    let config = parse(&text).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(rendered.contains("archive_schedule = \"@daily\"\n"), "{rendered}");
    assert!(
        rendered.contains(&format!(
            "age_recipients = [\"{RECIPIENT}\"]\nage_recipients_file = \"/etc/chatkeep/r.txt\"\n"
        )),
        "{rendered}"
    );
    assert_eq!(parse(&rendered).expect("reads back"), config);
}
