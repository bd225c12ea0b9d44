//! `[storage]`.

use super::*;

/// MINIMAL with `lines` added to `[storage]`, the first of them on line 8.
fn with_storage(lines: &str) -> String {
    format!("{MINIMAL}{lines}\n")
}

#[test]
fn segment_size_takes_bytes_and_binary_units() {
    for (value, bytes) in [
        ("65536", 65536),
        ("\"65536\"", 65536),
        ("\"65536B\"", 65536),
        ("\"64KiB\"", 64 << 10),
        ("\"512KiB\"", 512 << 10),
        ("\"64MiB\"", 64 << 20),
        ("\"1GiB\"", 1 << 30),
        ("\"2TiB\"", 2 << 40),
    ] {
        let config = parse(&with_storage(&format!("segment_size = {value}"))).expect(value);
        assert_eq!(config.storage.segment_size, bytes, "{value}");
    }
}

#[test]
fn segment_size_is_checked() {
    for (line, column, message) in [
        (
            "segment_size = \"4KiB\"",
            16,
            "storage.segment_size must be a size of at least 64KiB: a whole number of bytes, \
             alone or followed by KiB, MiB or GiB, such as \"64MiB\", got \"4KiB\"",
        ),
        ("segment_size = 65535", 16, "at least 64KiB"),
        ("segment_size = -1", 16, "got -1"),
        ("segment_size = 1.5", 16, "got 1.5"),
        ("segment_size = true", 16, "got true"),
        (
            "segment_size = \"64MB\"",
            16,
            "got \"64MB\": \"MB\" is not a unit; did you mean \"MiB\" (powers of 1024)?",
        ),
        ("segment_size = \"64 MiB\"", 16, "\" MiB\" is not a unit"),
        ("segment_size = \"1.5GiB\"", 16, "fractions are not supported"),
        ("segment_size = \"\"", 16, "it is empty"),
        ("segment_size = \"MiB\"", 16, "it does not start with a number"),
        ("segment_size = \"99999999999TiB\"", 16, "it is too large"),
    ] {
        assert_rejected(&with_storage(line), 8, column, message);
    }
}

#[test]
fn sizes_print_the_way_they_are_read() {
    for (bytes, text) in [
        (0, "0"),
        (1000, "1000"),
        (1024, "1KiB"),
        (1536 << 10, "1536KiB"),
        (64 << 20, "64MiB"),
        (3 << 30, "3GiB"),
        (1 << 40, "1TiB"),
    ] {
        assert_eq!(format_size(bytes), text);
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    let err = parse_size("1 GiB").unwrap_err();
    assert!(err.contains("invalid size \"1 GiB\""), "{err}");
    assert!(err.contains("expected a whole number of bytes"), "{err}");
}

#[test]
fn segment_size_shows_in_the_effective_config() {
    let config = parse(&with_storage("segment_size = 1048576")).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(rendered.contains("segment_size = \"1MiB\""), "{rendered}");
    let back = Config::from_toml_str(&rendered, Path::new("/etc/chatkeep/config.toml")).expect("reads back");
    assert_eq!(back.storage.segment_size, 1 << 20);
}
