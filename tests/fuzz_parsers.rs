//! Property tests of every parser that reads untrusted text: the config
//! file, chat pages, memory pages, the pasted session cookie and
//! `Set-Cookie` headers. Each gets arbitrary input and mutations of valid
//! input; none may panic, and what they accept must be exactly what came in.
//!
//! 256 cases per property by default, which keeps `cargo test` quick. For a
//! longer run:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release --test fuzz_parsers
//! ```
//!
//! A failure is shrunk and its seed saved in `tests/fuzz_parsers.proptest-regressions`;
//! commit that file so the case is replayed from then on.

use std::path::Path;

use chatkeep::api::cookie::{self, SessionCookie};
use chatkeep::api::documents::parse_memory_page;
use chatkeep::api::set_cookie::{self, SessionUpdate};
use chatkeep::config::{Config, ConfigError};
use chatkeep::message::{Message, minify, parse_page};
use proptest::prelude::*;
use serde_json::value::RawValue;

// ---------------------------------------------------------------------------
// Mutation of valid input

/// One edit of a byte string. Positions are taken modulo the length, so any
/// edit applies to any input.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, u8),
    /// Copies a slice of the input to another place (repeats structure).
    Splice {
        from: usize,
        len: usize,
        to: usize,
    },
}

/// Bytes that change the meaning of JSON or TOML, and bytes that break UTF-8.
const INTERESTING: &[u8] = b"\"\\{}[],:=.#'\n\r\t 0-+eE\x00\x7f\xc3\xff\xed\xa0";

fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![prop::sample::select(INTERESTING), any::<u8>()], 1..4)
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), interesting_bytes()).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Edit::Delete(at, n)),
        (
            any::<usize>(),
            prop_oneof![prop::sample::select(INTERESTING), any::<u8>()]
        )
            .prop_map(|(at, b)| Edit::Replace(at, b)),
        (any::<usize>(), 1usize..64, any::<usize>()).prop_map(|(from, len, to)| Edit::Splice {
            from,
            len,
            to
        }),
    ]
}

fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len();
        match e {
            Edit::Insert(at, b) => {
                let at = at % (n + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Delete(at, len) if n > 0 => {
                let at = at % n;
                let end = (at + len).min(n);
                bytes.drain(at..end);
            }
            Edit::Replace(at, b) if n > 0 => bytes[at % n] = *b,
            Edit::Splice { from, len, to } if n > 0 => {
                let from = from % n;
                let piece: Vec<u8> = bytes[from..(from + len).min(n)].to_vec();
                let to = to % (n + 1);
                bytes.splice(to..to, piece);
            }
            _ => {}
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..6)
}

// ---------------------------------------------------------------------------
// The config file

const EXAMPLE: &str = include_str!("../config.example.toml");

const MINIMAL: &str = r#"[service]
base_url = "https://shapes.inc"
jargon = "shapes"
cookie_file = "/etc/chatkeep/cookie"
extra_cookies = { "connect.sid" = "s%3Aabc", _csrf = "q" }

[storage]
data_dir = "/var/lib/chatkeep"

[rate_limit]
requests_per_second = 1.0
burst = 1

[daemon]
schedule = "0 0 */6 * * *"

[[personality]]
name = "lilith"
sections = ["profile", "chat"]

[[personality]]
name = "aria"
"#;

/// Every rejection is `Invalid`, with a message and a position inside the
/// text: 1-based, the line one of the text's lines, the column at most one
/// past that line's last character.
fn check_config(text: &str) -> Result<(), TestCaseError> {
    match Config::from_toml_str(text, Path::new("/etc/chatkeep/config.toml")) {
        Ok(_) => Ok(()),
        Err(ConfigError::Invalid {
            line,
            column,
            message,
            ..
        }) => {
            let lines: Vec<&str> = text.split('\n').collect();
            prop_assert!(line >= 1 && line <= lines.len(), "line {line} of {}", lines.len());
            let width = lines[line - 1].chars().count();
            prop_assert!(
                column >= 1 && column <= width + 1,
                "column {column} on a line of {width} characters"
            );
            prop_assert!(!message.trim().is_empty());
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!("not an Invalid error: {other}"))),
    }
}

#[test]
fn the_seed_configs_are_valid() {
    for seed in [EXAMPLE, MINIMAL] {
        Config::from_toml_str(seed, Path::new("/etc/chatkeep/config.toml")).unwrap();
    }
}

proptest! {
    #[test]
    fn config_arbitrary_text_is_rejected_cleanly(text in any::<String>()) {
        check_config(&text)?;
    }

    #[test]
    fn config_toml_like_text_is_rejected_cleanly(
        text in "(\\[\\[?[a-z_.]{0,12}\\]\\]?\n|[a-z_]{1,20} *= *(\"[^\"\n]{0,20}\"|[0-9.e+-]{1,8}|true|\\[[^\n]{0,20}\\]|\\{[^\n]{0,20}\\})\n|#[^\n]{0,10}\n){0,12}"
    ) {
        check_config(&text)?;
    }

    #[test]
    fn config_mutations_of_valid_files_are_rejected_cleanly(
        seed in prop::sample::select(vec![EXAMPLE, MINIMAL]),
        edits in edits(),
    ) {
        let bytes = mutate(seed.as_bytes().to_vec(), &edits);
        let text = String::from_utf8_lossy(&bytes);
        check_config(&text)?;
    }

    #[test]
    fn config_files_that_are_not_utf8_are_rejected_cleanly(
        seed in prop::sample::select(vec![EXAMPLE, MINIMAL]),
        edits in edits(),
    ) {
        let bytes = mutate(seed.as_bytes().to_vec(), &edits);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &bytes).unwrap();
        match Config::load(&path) {
            Ok(_) => {}
            Err(ConfigError::Invalid { line, column, .. }) => {
                prop_assert!(line >= 1 && column >= 1);
                let text = String::from_utf8_lossy(&bytes);
                prop_assert!(line <= text.split('\n').count());
            }
            Err(other) => prop_assert!(false, "not an Invalid error: {other}"),
        }
    }
}

// ---------------------------------------------------------------------------
// JSON text, generated with the variety a server may send

fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n", "\t", "\r\n  "])
}

/// A JSON string literal: escaped by serde, or with hand-written escapes
/// that must survive byte for byte.
fn json_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => prop::sample::select(vec![
            r#""\u0000""#,
            r#""\ud83d\ude00 \u00e9""#,
            r#""a\/b\\c\"d""#,
            r#""emoji 👩‍👩‍👧 RTL שלום""#,
            r#""\n\r\t\b\f""#,
            r#""""#,
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// A JSON number as text, in forms whose text must not be re-rounded.
fn json_number() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        prop::sample::select(vec![
            "0",
            "-0",
            "1.10",
            "2.50",
            "1e-7",
            "-1.5E+3",
            "1712345678.120",
            "123456789012345678901234567890",
            "0.1000000000000000055511151231257827",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        json_number(),
        json_string(),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            (prop::collection::vec((ws(), inner.clone()), 0..6)).prop_map(|items| {
                let body: Vec<String> = items.into_iter().map(|(w, v)| format!("{w}{v}")).collect();
                format!("[{}]", body.join(","))
            }),
            (prop::collection::vec((json_string(), ws(), inner), 0..6)).prop_map(|fields| {
                let body: Vec<String> = fields
                    .into_iter()
                    .map(|(k, w, v)| format!("{k}{w}:{w}{v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
    .boxed()
}

/// A valid chat message: its text, and the id and ts it must parse to.
#[derive(Debug, Clone)]
struct GenMessage {
    text: String,
    id: String,
    /// The id as it appears in the text: `"7"` for a string, `7` for a number.
    id_json: String,
    ts: f64,
}

fn ts_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..4_000_000_000_000).prop_map(|ms| format!("{}", ms as f64 / 1000.0)),
        (0u64..4_000_000_000, 0u32..1000).prop_map(|(s, ms)| format!("{s}.{ms:03}")),
        (0u64..4_000_000_000).prop_map(|s| s.to_string()),
        Just("1.712345678e9".to_owned()),
        Just("0".to_owned()),
    ]
}

fn message() -> impl Strategy<Value = GenMessage> {
    let id = prop_oneof![
        any::<String>()
            .prop_filter("non-empty", |s| !s.is_empty())
            .prop_map(|s| (serde_json::to_string(&s).unwrap(), s)),
        any::<u64>().prop_map(|n| (n.to_string(), n.to_string())),
        // The same text as a string and as a number: two ids.
        (0u64..4).prop_map(|n| (format!("\"{n}\""), n.to_string())),
        (0u64..4).prop_map(|n| (n.to_string(), n.to_string())),
    ];
    let unknown = prop::collection::vec(
        (
            "[a-z_]{1,12}".prop_filter("not a key the parser reads", |k| k != "id" && k != "ts"),
            json_value(),
        ),
        0..5,
    );
    (id, ts_text(), unknown, ws(), any::<prop::sample::Index>()).prop_map(
        |((id_text, id), ts_text, unknown, w, slot)| {
            let mut fields: Vec<String> = unknown
                .into_iter()
                .map(|(k, v)| format!("\"{k}\"{w}:{w}{v}"))
                .collect();
            let ts: f64 = ts_text.parse().unwrap();
            // `id` and `ts` anywhere among the other keys.
            let at = slot.index(fields.len() + 1);
            fields.insert(at, format!("\"ts\":{w}{ts_text}"));
            fields.insert(slot.index(fields.len() + 1), format!("\"id\"{w}:{id_text}"));
            GenMessage {
                text: format!("{{{w}{}{w}}}", fields.join(&format!(",{w}"))),
                id,
                id_json: id_text,
                ts,
            }
        },
    )
}

fn page() -> impl Strategy<Value = (String, Vec<GenMessage>)> {
    (prop::collection::vec(message(), 0..8), ws()).prop_map(|(messages, w)| {
        let items: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
        (
            format!("{w}[{w}{}{w}]{w}", items.join(&format!(",{w}"))),
            messages,
        )
    })
}

/// What every accepted page must satisfy: one message per array element,
/// each stored as exactly that element minus insignificant whitespace, one
/// line, with its values unchanged, and reading the stored line back gives
/// the same message.
fn check_accepted_page(body: &[u8], page: &[Message]) -> Result<(), TestCaseError> {
    let items: Vec<&RawValue> = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("accepted a page serde rejects: {e}")))?;
    prop_assert_eq!(items.len(), page.len());
    for (item, m) in items.iter().zip(page) {
        prop_assert_eq!(&m.raw, &minify(item.get()));
        prop_assert!(!m.raw.contains('\n'));
        let again = Message::from_stored_line(&m.raw)
            .map_err(|e| TestCaseError::fail(format!("stored line unreadable: {e}")))?;
        prop_assert_eq!(&again, m);
        // The scan a reader places a line by finds the same `ts`, or none.
        if let Some(ts) = Message::stored_ts(&m.raw) {
            prop_assert_eq!(ts, m.ts, "{}", m.raw);
        }
        // Values unchanged (serde_json compares numbers as it parses them,
        // so this is a check of minify, not of float rounding).
        if let (Ok(a), Ok(b)) = (
            serde_json::from_str::<serde_json::Value>(item.get()),
            serde_json::from_str::<serde_json::Value>(&m.raw),
        ) {
            prop_assert_eq!(a, b);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn chat_pages_keep_every_message_byte_for_byte((body, messages) in page()) {
        let page = parse_page(body.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        prop_assert_eq!(page.len(), messages.len());
        for (m, want) in page.iter().zip(&messages) {
            prop_assert_eq!(&m.raw, &minify(&want.text));
            prop_assert_eq!(m.id.as_str(), want.id.as_str());
            prop_assert_eq!(m.ts.as_f64(), want.ts);
            // The id keeps its type: two ids are one exactly when their
            // JSON is (canonical for strings, the text for numbers).
            let string = want.id_json.starts_with('"');
            prop_assert_eq!(m.id.is_number(), !string);
            if !string {
                prop_assert_eq!(m.id.to_json(), want.id_json.clone());
            }
        }
        for (a, wa) in page.iter().zip(&messages) {
            for (b, wb) in page.iter().zip(&messages) {
                let same = wa.id == wb.id && wa.id_json.starts_with('"') == wb.id_json.starts_with('"');
                prop_assert_eq!(a.id == b.id, same, "{} vs {}", wa.id_json, wb.id_json);
            }
        }
        check_accepted_page(body.as_bytes(), &page)?;
    }

    #[test]
    fn chat_page_mutations_never_panic_and_accepted_ones_are_faithful(
        (body, _) in page(),
        edits in edits(),
    ) {
        let body = mutate(body.into_bytes(), &edits);
        if let Ok(page) = parse_page(&body) {
            check_accepted_page(&body, &page)?;
        }
    }

    #[test]
    fn chat_page_arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(page) = parse_page(&body) {
            check_accepted_page(&body, &page)?;
        }
    }
}

// ---------------------------------------------------------------------------
// Memory pages

fn memory_page() -> impl Strategy<Value = (String, usize)> {
    let item = (json_value(), any::<u32>()).prop_map(|(v, n)| format!("{{\"id\":\"m{n}\",\"v\":{v}}}"));
    (
        prop::collection::vec(item, 0..6),
        any::<bool>(),
        any::<bool>(),
        1u64..5,
        1u64..5,
    )
        .prop_map(|(items, items_key, meta, page, total)| {
            let list = format!("[{}]", items.join(","));
            let pagination = format!(
                r#"{{"page":{page},"total_pages":{total},"has_next":{}}}"#,
                page < total
            );
            let key = if items_key { "items" } else { "memories" };
            let body = if meta {
                format!(r#"{{"{key}":{list},"meta":{{"pagination":{pagination}}}}}"#)
            } else {
                format!(r#"{{"{key}":{list},"pagination":{pagination}}}"#)
            };
            (body, items.len())
        })
}

fn check_memory_page(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(page) = parse_memory_page(body, 1, 5) {
        if page.items.is_empty() {
            prop_assert!(!page.has_next, "an empty page cannot have a next one");
        }
        for item in &page.items {
            prop_assert_eq!(item, &minify(item), "items are stored compact");
            prop_assert!(serde_json::from_str::<&RawValue>(item).is_ok());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn memory_pages_of_both_shapes_are_read((body, count) in memory_page()) {
        let page = parse_memory_page(body.as_bytes(), 1, 5)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        prop_assert_eq!(page.items.len(), count);
        check_memory_page(body.as_bytes())?;
    }

    #[test]
    fn memory_page_mutations_never_panic((body, _) in memory_page(), edits in edits()) {
        check_memory_page(&mutate(body.into_bytes(), &edits))?;
    }

    #[test]
    fn memory_page_arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_memory_page(&body)?;
    }
}

// ---------------------------------------------------------------------------
// The session cookie and Set-Cookie

fn cookie_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![cookie::CURRENT_NAME, cookie::LEGACY_NAME, "sid"])
}

/// What a user might paste: noise, pairs, whole headers.
fn pasted() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        (
            cookie_name(),
            "[ -~\t\n]{0,30}",
            "(; *[a-z_]{1,6}=[ -~]{0,6}){0,3}",
            any::<bool>()
        )
            .prop_map(|(name, value, rest, header)| {
                let prefix = if header { "Cookie: " } else { "" };
                format!("{prefix}{name}={value}{rest}")
            }),
    ]
}

proptest! {
    #[test]
    fn a_parsed_cookie_can_be_sent_and_never_shows_its_token(
        input in pasted(),
        configured in cookie_name(),
    ) {
        if let Some(c) = SessionCookie::parse(&input, configured) {
            prop_assert!(!c.token().is_empty());
            prop_assert!(
                reqwest::header::HeaderValue::from_str(&c.header_value([])).is_ok(),
                "{:?} cannot be sent as a Cookie header", c.header_value([])
            );
            // Debug does not depend on the token at all.
            let (shown, other) = (format!("{c:?}"), format!("{:?}", c.with_token("other")));
            prop_assert_eq!(shown, other);
            let marked = c.with_token(&format!("SECRET{}", c.token()));
            let shown = format!("{marked:?}");
            prop_assert!(!shown.contains("SECRET"), "{}", shown);
        }
    }

    #[test]
    fn rotated_tokens_come_from_the_header_trimmed_and_whole(
        header in prop_oneof![
            any::<String>(),
            (cookie_name(), "[ -~]{0,30}").prop_map(|(n, rest)| format!("{n}={rest}")),
        ],
        name in cookie_name(),
    ) {
        let now = chrono::Utc::now();
        if let Some(SessionUpdate::Rotated(token)) =
            set_cookie::session_update(&header, name, "shapes.inc", now)
        {
            prop_assert!(!token.is_empty());
            prop_assert_eq!(token, token.trim());
            prop_assert!(!token.contains(';'));
            prop_assert!(header.contains(token));
            let c = SessionCookie::parse("x", name).unwrap();
            let (shown, rotated) = (format!("{c:?}"), format!("{:?}", c.with_token(token)));
            prop_assert_eq!(shown, rotated);
        }
    }
}

// ---------------------------------------------------------------------------
// Depth: no parser may overflow the stack, whatever the nesting.

const DEEP: usize = 100_000;

fn nested(open: &str, inner: &str, close: &str) -> String {
    format!("{}{inner}{}", open.repeat(DEEP), close.repeat(DEEP))
}

#[test]
fn deep_nesting_overflows_no_parser() {
    for value in [nested("[", "", "]"), nested("{\"a\":", "0", "}")] {
        let page = format!(r#"[{{"id":"a","ts":1,"x":{value}}}]"#);
        let parsed = parse_page(page.as_bytes());
        assert!(parsed.is_ok(), "{:?}", parsed.err());
        let memories = format!(r#"{{"items":[{{"id":"a","x":{value}}}],"pagination":{value}}}"#);
        let _ = parse_memory_page(memories.as_bytes(), 1, 5);
    }
    for toml in [
        format!("a = {}", nested("[", "", "]")),
        format!("a = {}", nested("{b=", "0", "}")),
        format!("[service]\nbase_url = {}", nested("[", "", "]")),
        format!("{}\n", "[a".repeat(DEEP)),
    ] {
        check_config(&toml).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Text from the service, shown to a person: no control character survives,
// and text without any is shown as it is.

proptest! {
    #[test]
    fn escaped_service_text_has_no_control_character_left(text in any::<String>()) {
        let shown = chatkeep::escape::controls(&text);
        prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
        if !text.chars().any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)) {
            prop_assert_eq!(shown.as_ref(), text.as_str());
        }
    }
}
