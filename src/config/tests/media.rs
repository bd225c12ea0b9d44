//! `[media]` and the `media` list of `[[personality]]`.

use super::*;

/// MINIMAL with a `[media]` table holding `lines`, the first on line 9.
fn with_media(lines: &str) -> String {
    format!("{MINIMAL}[media]\n{lines}\n")
}

/// MINIMAL with a personality `a` holding `lines`, the first on line 10.
fn with_personality(lines: &str) -> String {
    format!("{MINIMAL}[[personality]]\nname = \"a\"\n{lines}\n")
}

#[test]
fn media_defaults_download_every_kind_politely() {
    let config = parse(MINIMAL).expect("valid");
    assert_eq!(config.media, MediaConfig::default());
    assert_eq!(config.media.kinds, MediaKinds::ALL);
    assert_eq!(config.media.max_file_size, 100 * 1024 * 1024);
    assert_eq!(config.media.requests_per_second, 1.0);
    assert_eq!(config.media.max_bytes_per_run, None);
    assert_eq!(config.media.max_bytes_per_second, None);
}

#[test]
fn media_table_is_read() {
    let text = with_media(
        "voice_replies = false\nmax_file_size = \"2MiB\"\nmax_bytes_per_run = 1048576\n\
         requests_per_second = 0.5\nmax_bytes_per_second = \"64KiB\"",
    );
    let config = parse(&text).expect("valid");
    assert_eq!(
        config.media.kinds,
        MediaKinds {
            attachments: true,
            voice_replies: false,
            avatars: true
        }
    );
    assert_eq!(config.media.max_file_size, 2 * 1024 * 1024);
    assert_eq!(config.media.max_bytes_per_run, Some(1024 * 1024));
    assert_eq!(config.media.requests_per_second, 0.5);
    assert_eq!(config.media.max_bytes_per_second, Some(64 * 1024));
    // Rendered and read back, it is the same.
    let again = parse(&config.to_redacted_toml()).expect("rendered config reads back");
    assert_eq!(again.media, config.media);
}

#[test]
fn media_values_are_checked_where_they_are() {
    assert_rejected(
        &with_media("avatars = \"yes\""),
        9,
        11,
        "media.avatars must be true or false",
    );
    assert_rejected(
        &with_media("max_file_size = \"big\""),
        9,
        17,
        "media.max_file_size must be a size",
    );
    assert_rejected(
        &with_media("max_file_size = 10"),
        9,
        17,
        "media.max_file_size must be a size of at least",
    );
    assert_rejected(
        &with_media("requests_per_second = 0"),
        9,
        23,
        "media.requests_per_second must be a number greater than 0",
    );
    assert_rejected(
        &with_media("\nvoice = true"),
        10,
        1,
        "unknown key `voice` in [media]",
    );
}

#[test]
fn a_personality_chooses_its_kinds_of_media() {
    let config = parse(&with_personality("media = [\"avatars\"]")).expect("valid");
    let a: PersonalitySlug = "a".parse().unwrap();
    let other: PersonalitySlug = "b".parse().unwrap();
    assert_eq!(
        config.media_kinds_for(&a),
        MediaKinds {
            avatars: true,
            ..MediaKinds::NONE
        }
    );
    assert_eq!(config.media_kinds_for(&other), MediaKinds::ALL);
    let none = parse(&with_personality("media = []")).expect("valid");
    assert!(!none.media_kinds_for(&a).any());
    assert_rejected(
        &with_personality("media = [\"avatars\", \"pictures\"]"),
        10,
        21,
        "personality.media: \"pictures\" is not a kind of media",
    );
    assert_rejected(
        &with_personality("media = [\"avatars\", \"avatars\"]"),
        10,
        21,
        "\"avatars\" is listed twice",
    );
    assert_rejected(
        &with_personality("media = true"),
        10,
        9,
        "must be a list of kinds of media",
    );
}
