//! `[sync]`, the sections of `[[personality]]`, and `[discover]`.

use super::*;

/// MINIMAL with a `[sync]` table holding `lines`, the first of them on
/// line 9.
fn with_sync(lines: &str) -> String {
    format!("{MINIMAL}[sync]\n{lines}\n")
}

/// MINIMAL with a personality `a` holding `lines`, the first of them on
/// line 10.
fn with_personality(lines: &str) -> String {
    format!("{MINIMAL}[[personality]]\nname = \"a\"\n{lines}\n")
}

fn slug(name: &str) -> PersonalitySlug {
    name.parse().expect("slug")
}

#[test]
fn sections_have_their_toml_names_in_order() {
    let names: Vec<String> = Section::all().iter().map(Section::to_string).collect();
    assert_eq!(
        names,
        [
            "profile",
            "memories",
            "knowledge",
            "training",
            "user_personalization",
            "chat"
        ]
    );
    let mut sorted = Section::all();
    sorted.sort();
    assert_eq!(sorted, Section::all());
    assert_eq!(Section::UserPersonalization.as_str(), "user_personalization");
}

#[test]
fn sync_table_is_read_and_sections_are_kept_in_order() {
    let text = with_sync("sections = [\"chat\", \"memories\", \"profile\"]\nmax_memory_pages = 1");
    let config = parse(&text).expect("valid");
    assert_eq!(
        config.sync.sections,
        [Section::Profile, Section::Memories, Section::Chat]
    );
    assert_eq!(config.sync.max_memory_pages, 1);
    // An empty table is all defaults.
    let config = parse(&with_sync("")).expect("valid");
    assert_eq!(config.sync, SyncConfig::default());
    // A dotted key works as well as a table.
    let config = parse(&format!("sync.sections = [\"chat\"]\n{MINIMAL}")).expect("valid");
    assert_eq!(config.sync.sections, [Section::Chat]);
}

#[test]
fn sections_are_checked() {
    const VALID: &str = "profile, memories, knowledge, training, user_personalization, chat";
    assert_rejected(
        &with_sync("sections = \"chat\""),
        9,
        12,
        &format!(
            "sync.sections must be a list of sections, such as [\"profile\", \"chat\"], \
             from {VALID}, got \"chat\""
        ),
    );
    assert_rejected(
        &with_sync("sections = []"),
        9,
        12,
        &format!("sync.sections cannot be empty; name at least one of {VALID}"),
    );
    assert_rejected(
        &with_sync("sections = [\"chat\", \"memory\"]"),
        9,
        21,
        &format!(
            "sync.sections: \"memory\" is not a section; expected one of {VALID}; \
             did you mean \"memories\"?"
        ),
    );
    let (_, _, message) = rejection(&with_sync("sections = [\"history\"]"));
    assert_eq!(
        message,
        format!("sync.sections: \"history\" is not a section; expected one of {VALID}")
    );
    assert_rejected(
        &with_sync("sections = [\"chat\", 3]"),
        9,
        21,
        &format!("sync.sections: each section is a name in quotes, one of {VALID}; got 3"),
    );
    assert_rejected(
        &with_sync("sections = [\"chat\", \"profile\", \"chat\"]"),
        9,
        32,
        "sync.sections: \"chat\" is listed twice; list each section once",
    );
    assert_rejected(
        &with_sync("sections = [\"user-personalization\"]"),
        9,
        13,
        "did you mean \"user_personalization\"?",
    );
}

#[test]
fn max_memory_pages_is_checked() {
    for value in ["0", "100001", "-1", "1.5", "\"10\""] {
        assert_rejected(
            &with_sync(&format!("max_memory_pages = {value}")),
            9,
            20,
            &format!("sync.max_memory_pages must be a whole number from 1 to 100000, got {value}"),
        );
    }
}

#[test]
fn sync_table_rejects_unknown_keys_and_other_types() {
    assert_rejected(
        &with_sync("section = [\"chat\"]"),
        9,
        1,
        "unknown key `section` in [sync]; expected one of sections, max_memory_pages",
    );
    assert_rejected(
        &format!("sync = 1\n{MINIMAL}"),
        1,
        8,
        "sync must be a table, written as a line [sync] followed by its keys, got 1",
    );
}

#[test]
fn personality_sections_are_checked_like_sync_sections() {
    let config = parse(&with_personality("sections = [\"chat\", \"knowledge\"]")).expect("valid");
    assert_eq!(
        config.personalities[0].sections,
        Some(vec![Section::Knowledge, Section::Chat])
    );
    assert_rejected(
        &with_personality("sections = [\"Chat\"]"),
        10,
        13,
        "personality.sections: \"Chat\" is not a section; expected one of profile, memories, \
         knowledge, training, user_personalization, chat; did you mean \"chat\"?",
    );
    assert_rejected(
        &with_personality("sections = []"),
        10,
        12,
        "personality.sections cannot be empty",
    );
    // Found even when the name is wrong too, in file order.
    let text = format!("{MINIMAL}[[personality]]\nsections = [1]\nname = \"../a\"\n");
    assert_rejected(&text, 9, 13, "personality.sections: each section is a name");
}

#[test]
fn sections_for_prefers_the_personality_override() {
    let text = format!(
        "{MINIMAL}[sync]\nsections = [\"chat\", \"memories\"]\n\
         [[personality]]\nname = \"lilith\"\nsections = [\"profile\"]\n\
         [[personality]]\nname = \"plain\"\n"
    );
    let config = parse(&text).expect("valid");
    assert_eq!(config.sections_for(&slug("lilith")), [Section::Profile]);
    // Names are compared ignoring case, as duplicates are.
    assert_eq!(config.sections_for(&slug("LILITH")), [Section::Profile]);
    assert_eq!(
        config.sections_for(&slug("plain")),
        [Section::Memories, Section::Chat]
    );
    // A personality found by discovery, not in the file.
    assert_eq!(
        config.sections_for(&slug("discovered")),
        [Section::Memories, Section::Chat]
    );
    assert_eq!(
        config.personality(&slug("Plain")).map(|p| p.name.as_str()),
        Some("plain")
    );
    assert!(config.personality(&slug("discovered")).is_none());
    // Without [sync], everything.
    let config = parse(MINIMAL).expect("valid");
    assert_eq!(config.sections_for(&slug("x")), Section::all());
}

#[test]
fn sections_render_and_read_back() {
    let text = format!(
        "{MINIMAL}[sync]\nsections = [\"training\", \"chat\"]\nmax_memory_pages = 7\n\
         [[personality]]\nname = \"lilith\"\nsections = [\"user_personalization\", \"profile\"]\n\
         [[personality]]\nname = \"plain\"\n"
    );
    let config = parse(&text).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains("[sync]\nsections = [\"training\", \"chat\"]\nmax_memory_pages = 7\n"),
        "{rendered}"
    );
    assert!(
        rendered.contains("sections = [\"profile\", \"user_personalization\"]"),
        "{rendered}"
    );
    assert_eq!(rendered.matches("sections = ").count(), 2, "{rendered}");
    assert_eq!(parse(&rendered).expect("reads back"), config);
}

#[test]
fn discover_is_read() {
    let text = format!("{MINIMAL}[discover]\nowned = true\n");
    let config = parse(&text).expect("valid");
    assert!(config.discover.owned);
    assert!(!config.discover.recent);
    let text = format!("{MINIMAL}[discover]\nrecent = true\n");
    let config = parse(&text).expect("valid");
    assert_eq!(
        config.discover,
        DiscoverConfig {
            owned: false,
            recent: true
        }
    );
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains("[discover]\nowned = false\nrecent = true\n"),
        "{rendered}"
    );
    assert_eq!(parse(&rendered).expect("reads back"), config);
}

#[test]
fn discover_is_checked() {
    for value in ["\"yes\"", "1", "[]"] {
        let text = format!("{MINIMAL}[discover]\nowned = {value}\n");
        let got = if value == "[]" { "an array" } else { value };
        assert_rejected(
            &text,
            9,
            9,
            &format!("discover.owned must be true or false, got {got}"),
        );
    }
    let text = format!("{MINIMAL}[discover]\nrecent = 0\n");
    assert_rejected(&text, 9, 10, "discover.recent must be true or false, got 0");
    let text = format!("{MINIMAL}[discover]\nself = true\n");
    assert_rejected(
        &text,
        9,
        1,
        "unknown key `self` in [discover]; expected one of owned, recent",
    );
}
