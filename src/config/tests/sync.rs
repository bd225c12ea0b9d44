//! `[sync]`, the sections, tail checks and refreshes of `[[personality]]`,
//! and `[discover]`.

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
        "unknown key `section` in [sync]; expected one of sections, max_memory_pages, \
         tail_check, refresh",
    );
    assert_rejected(
        &with_sync("tailcheck = \"1d\""),
        9,
        1,
        "unknown key `tailcheck` in [sync]",
    );
    assert_rejected(
        &with_personality("refresh_every = 200"),
        10,
        1,
        "unknown key `refresh_every` in [[personality]]; expected one of name, sections, \
         schedule, tail_check, refresh",
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
            recent: true,
            max_personalities: DEFAULT_MAX_PERSONALITIES,
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

/// The start of every rejection of a `refresh`, after the key's name.
const REFRESH_EXPECTED: &str =
    "must be a number of messages such as 200, a span of history such as \"1d\", or \"first-page\"; got";

#[test]
fn tail_check_and_refresh_default_to_a_day_and_the_first_page() {
    let config = parse(MINIMAL).expect("valid");
    assert_eq!(config.sync.tail_check, Duration::from_secs(24 * 3600));
    assert_eq!(config.sync.tail_check, DEFAULT_TAIL_CHECK);
    assert_eq!(config.sync.refresh, Refresh::FirstPage);
    assert_eq!(Refresh::default(), Refresh::FirstPage);
    assert_eq!(config.tail_check_for(&slug("anyone")), DEFAULT_TAIL_CHECK);
    assert_eq!(config.refresh_for(&slug("anyone")), Refresh::FirstPage);
}

#[test]
fn tail_check_takes_any_duration_zero_included() {
    for (text, expected) in [
        ("0s", Duration::ZERO),
        ("6h", Duration::from_secs(6 * 3600)),
        ("1500ms", Duration::from_millis(1500)),
        ("30d", Duration::from_secs(30 * 86_400)),
    ] {
        let config = parse(&with_sync(&format!("tail_check = {text:?}"))).expect(text);
        assert_eq!(config.sync.tail_check, expected, "{text}");
    }
}

#[test]
fn tail_check_is_checked() {
    assert_rejected(
        &with_sync("tail_check = 6"),
        9,
        14,
        "sync.tail_check must be a duration, a whole number followed by ms, s, m, h or d, \
         such as \"500ms\", \"30s\" or \"2m\", \
         or several from the largest unit down, such as \"1h30m\", got 6",
    );
    assert_rejected(
        &with_sync("tail_check = \"6\""),
        9,
        14,
        "; got \"6\": it has no unit",
    );
    assert_rejected(
        &with_sync("tail_check = \"1w\""),
        9,
        14,
        "; got \"1w\": \"w\" is not a unit",
    );
    assert_rejected(
        &with_personality("tail_check = \"-1h\""),
        10,
        14,
        "personality.tail_check must be a duration",
    );
}

#[test]
fn refresh_takes_a_count_a_span_or_first_page() {
    for (value, expected) in [
        ("200", Refresh::Messages(200)),
        ("1", Refresh::Messages(1)),
        ("1000000", Refresh::Messages(MAX_REFRESH_MESSAGES)),
        ("0x10", Refresh::Messages(16)),
        ("\"200\"", Refresh::Messages(200)),
        ("\"007\"", Refresh::Messages(7)),
        ("\"1d\"", Refresh::Span(Duration::from_secs(86_400))),
        ("\"12h\"", Refresh::Span(Duration::from_secs(12 * 3600))),
        ("\"90s\"", Refresh::Span(Duration::from_secs(90))),
        ("\"first-page\"", Refresh::FirstPage),
    ] {
        let config = parse(&with_sync(&format!("refresh = {value}"))).expect(value);
        assert_eq!(config.sync.refresh, expected, "{value}");
    }
}

#[test]
fn refresh_is_checked() {
    for (value, after_got) in [
        ("0", " 0: a number of messages is from 1 to 1000000"),
        ("-5", " -5: a number of messages is from 1 to 1000000"),
        ("1000001", " 1000001: a number of messages is from 1 to 1000000"),
        ("\"0\"", " \"0\": a number of messages is from 1 to 1000000"),
        (
            "\"99999999999999999999999\"",
            " \"99999999999999999999999\": a number of messages is from 1 to 1000000",
        ),
        ("\"0s\"", " \"0s\": a span of history must be longer than 0s"),
        ("\"0d\"", " \"0d\": a span of history must be longer than 0s"),
        ("\"1w\"", " \"1w\": \"w\" is not a unit"),
        (
            "\"1.5d\"",
            " \"1.5d\": fractions are not supported; use a smaller unit, as in \"1500ms\"",
        ),
        ("\"first_page\"", " \"first_page\": did you mean \"first-page\"?"),
        ("\"First Page\"", " \"First Page\": did you mean \"first-page\"?"),
        ("\"all\"", " \"all\""),
        ("\"\"", " \"\""),
        ("1.5", " 1.5"),
        ("true", " true"),
        ("[200]", " an array"),
    ] {
        let (line, column, message) = rejection(&with_sync(&format!("refresh = {value}")));
        assert_eq!((line, column), (9, 11), "{message}");
        assert_eq!(message, format!("sync.refresh {REFRESH_EXPECTED}{after_got}"));
    }
    // Per personality, under the same rules, found even when the name is wrong.
    let (line, column, message) = rejection(&with_personality("refresh = \"0s\""));
    assert_eq!((line, column), (10, 11), "{message}");
    assert_eq!(
        message,
        format!("personality.refresh {REFRESH_EXPECTED} \"0s\": a span of history must be longer than 0s")
    );
    let text = format!("{MINIMAL}[[personality]]\nrefresh = 0\nname = \"../a\"\n");
    assert_rejected(&text, 9, 11, "personality.refresh must be a number of messages");
}

#[test]
fn refresh_prints_as_it_is_written_and_parses_back() {
    for (refresh, text) in [
        (Refresh::FirstPage, "first-page"),
        (Refresh::Messages(200), "200"),
        (Refresh::Span(Duration::from_secs(86_400)), "1d"),
        (Refresh::Span(Duration::from_millis(1500)), "1500ms"),
    ] {
        assert_eq!(refresh.to_string(), text);
        assert_eq!(text.parse::<Refresh>(), Ok(refresh));
    }
    assert_eq!(
        "0".parse::<Refresh>(),
        Err(
            "invalid refresh \"0\": a number of messages is from 1 to 1000000; expected a number \
             of messages such as 200, a span of history such as \"1d\", or \"first-page\""
                .to_owned()
        )
    );
    assert_eq!(
        "never".parse::<Refresh>(),
        Err(
            "invalid refresh \"never\"; expected a number of messages such as 200, a span of \
             history such as \"1d\", or \"first-page\""
                .to_owned()
        )
    );
}

#[test]
fn personality_tail_check_and_refresh_override_sync() {
    let text = format!(
        "{MINIMAL}[sync]\ntail_check = \"12h\"\nrefresh = 50\n\
         [[personality]]\nname = \"lilith\"\ntail_check = \"0s\"\nrefresh = \"first-page\"\n\
         [[personality]]\nname = \"half\"\nrefresh = \"2d\"\n\
         [[personality]]\nname = \"plain\"\n"
    );
    let config = parse(&text).expect("valid");
    let twelve_hours = Duration::from_secs(12 * 3600);
    assert_eq!(config.personalities[0].tail_check, Some(Duration::ZERO));
    assert_eq!(config.personalities[0].refresh, Some(Refresh::FirstPage));
    assert_eq!(config.personalities[1].tail_check, None);
    assert_eq!(config.personalities[2].refresh, None);
    assert_eq!(config.tail_check_for(&slug("lilith")), Duration::ZERO);
    // Names are compared ignoring case, as duplicates are.
    assert_eq!(config.tail_check_for(&slug("LILITH")), Duration::ZERO);
    assert_eq!(config.refresh_for(&slug("Lilith")), Refresh::FirstPage);
    assert_eq!(config.tail_check_for(&slug("half")), twelve_hours);
    assert_eq!(
        config.refresh_for(&slug("half")),
        Refresh::Span(Duration::from_secs(2 * 86_400))
    );
    assert_eq!(config.tail_check_for(&slug("plain")), twelve_hours);
    assert_eq!(config.refresh_for(&slug("plain")), Refresh::Messages(50));
    // A personality found by discovery, not in the file.
    assert_eq!(config.tail_check_for(&slug("discovered")), twelve_hours);
    assert_eq!(config.refresh_for(&slug("discovered")), Refresh::Messages(50));
}

#[test]
fn tail_check_and_refresh_render_and_read_back() {
    let config = parse(MINIMAL).expect("valid");
    let rendered = config.to_redacted_toml();
    assert!(
        rendered.contains("max_memory_pages = 1000\ntail_check = \"1d\"\nrefresh = \"first-page\"\n"),
        "{rendered}"
    );
    assert_eq!(parse(&rendered).expect("reads back"), config);
    for (value, shown) in [
        ("200", "refresh = 200\n"),
        ("\"200\"", "refresh = 200\n"),
        ("\"36h\"", "refresh = \"36h\"\n"),
        ("\"90m\"", "refresh = \"90m\"\n"),
        ("\"first-page\"", "refresh = \"first-page\"\n"),
    ] {
        let text = format!(
            "{MINIMAL}[sync]\ntail_check = \"0s\"\nrefresh = {value}\n\
             [[personality]]\nname = \"lilith\"\ntail_check = \"6h\"\nrefresh = {value}\n\
             [[personality]]\nname = \"plain\"\n"
        );
        let config = parse(&text).expect(value);
        let rendered = config.to_redacted_toml();
        assert!(
            rendered.contains(&format!("tail_check = \"0s\"\n{shown}")),
            "{rendered}"
        );
        assert!(
            rendered.contains(&format!("name = \"lilith\"\ntail_check = \"6h\"\n{shown}")),
            "{rendered}"
        );
        // The personality without overrides renders none.
        assert_eq!(rendered.matches("tail_check = ").count(), 2, "{rendered}");
        assert_eq!(rendered.matches("refresh = ").count(), 2, "{rendered}");
        assert_eq!(parse(&rendered).expect("reads back"), config);
    }
}

#[test]
fn discovery_and_spool_bounds_are_read_and_checked() {
    let config = parse(MINIMAL).expect("valid");
    assert_eq!(config.discover.max_personalities, DEFAULT_MAX_PERSONALITIES);
    assert_eq!(config.storage.max_walk_spool, DEFAULT_MAX_WALK_SPOOL);
    let text = format!("{MINIMAL}max_walk_spool = \"64MiB\"\n\n[discover]\nmax_personalities = 7\n");
    let config = parse(&text).expect("valid");
    assert_eq!(config.discover.max_personalities, 7);
    assert_eq!(config.storage.max_walk_spool, 64 << 20);
    let rendered = config.to_redacted_toml();
    assert!(rendered.contains("max_personalities = 7"), "{rendered}");
    assert!(rendered.contains("max_walk_spool = \"64MiB\""), "{rendered}");
    for value in ["0", "100001", "\"5\""] {
        assert_rejected(
            &format!("{MINIMAL}\n[discover]\nmax_personalities = {value}\n"),
            10,
            21,
            &format!("discover.max_personalities must be a whole number from 1 to 100000, got {value}"),
        );
    }
    assert_rejected(
        &format!("{MINIMAL}max_walk_spool = \"1KiB\"\n"),
        8,
        18,
        "storage.max_walk_spool must be a size of at least 1MiB",
    );
}
