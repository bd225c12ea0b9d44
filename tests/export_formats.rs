//! The formats that carry a personality and its chats elsewhere, each
//! checked against its target's published rules by the real binary, on a
//! store synced from the fake service: SillyTavern chats, a Character Card
//! V2 (also inside a PNG), OpenAI fine-tuning JSONL, ShareGPT, and the
//! `summary` of `--format conversations`.

mod common;

use std::path::Path;

use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use common::*;
use serde_json::Value;

const NAME: &str = "lilith";
/// The second conversation starts two days later.
const DAY2_S: u64 = 1_700_000_000 + 2 * 86_400;

/// Text that must come out exactly as it went in: markup, a control
/// character, quotes, a line break, emoji.
const AS_DATA: &str = "<script>alert(\"x\")</script> &amp; \u{0001}\u{0007} tab\there\nline 👩‍👩‍👧";

/// A backup of `lilith` ("Lady Lilith"): a first conversation of twelve
/// generated messages ten minutes apart (hostile Unicode, the newest reply
/// regenerated), then, two days later, a second one of five raw messages:
/// text to keep as data, an attachment-only message, one without a reply,
/// one without either, and a long one.
async fn backed_up() -> (FakeService, tempfile::TempDir, std::path::PathBuf) {
    let mut spec = PersonalitySpec::new(NAME, 12);
    spec.display_name = "Lady Lilith".into();
    spec.step_ms = 10 * 60 * 1000;
    spec.hostile_unicode = true;
    let fake = fake(FakeConfig::default(), vec![spec]).await;
    fake.regenerate_nth_newest(NAME, 0);
    let data = serde_json::to_string(AS_DATA).unwrap();
    // On the fake's own host: the media fetcher asks no one else.
    let picture = picture(&fake);
    let long = "lantern ".repeat(600);
    let raws = [
        format!(r#"{{"id":"d1","message":{data},"reply":{data},"ts":{DAY2_S}.0,"regenerated_replies":[]}}"#),
        format!(
            r#"{{"id":"d2","message":"","reply":"A fine picture.","ts":{}.0,"attachment_url":"{picture}","attachment_type":"image","regenerated_replies":[]}}"#,
            DAY2_S + 60
        ),
        format!(
            r#"{{"id":"d3","message":"Are you there?","reply":"","ts":{}.0}}"#,
            DAY2_S + 120
        ),
        format!(
            r#"{{"id":"d4","message":"","reply":null,"ts":{}.0}}"#,
            DAY2_S + 180
        ),
        format!(
            r#"{{"id":"d5","message":"Tell me of the lantern garden","reply":"{long}","ts":{}.0,"regenerated_replies":["first take","second take"]}}"#,
            DAY2_S + 240
        ),
    ];
    for raw in &raws {
        fake.push_raw_message(NAME, raw);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (fake, dir, config)
}

/// The URL of the attachment of message `d2`.
fn picture(fake: &FakeService) -> String {
    format!("{}/files/p.png", fake.base_url())
}

fn export(config: &Path, args: &[&str]) -> std::process::Output {
    chatkeep(config)
        .arg("export")
        .arg(NAME)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    String::from_utf8(out.stdout.clone()).expect("exports are UTF-8")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_carry_a_summary_of_their_opening_line_and_frequent_terms() {
    let (fake, _dir, config) = backed_up().await;
    let lines = json_lines(&stdout(&export(
        &config,
        &["--format", "conversations", "--min-messages", "1"],
    )));
    assert_eq!(lines.len(), 2);
    let truth = fake.ground_truth(NAME);
    let first: Value = serde_json::from_str(&truth[0]).unwrap();
    let opening = first["message"].as_str().unwrap();
    let collapsed = opening.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(lines[0]["summary"]["opening"], collapsed.as_str());
    // The second conversation opens with the text kept as data.
    let collapsed = AS_DATA.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(lines[1]["summary"]["opening"], collapsed.as_str());
    // "lantern" says most about the second; "the", "you" say nothing.
    let terms = lines[1]["summary"]["terms"].as_array().unwrap();
    assert_eq!(terms[0], "lantern", "{terms:?}");
    for conversation in &lines {
        let terms = conversation["summary"]["terms"].as_array().unwrap();
        assert!(!terms.is_empty() && terms.len() <= 8, "{terms:?}");
        let said = conversation["messages"].to_string().to_lowercase();
        for term in terms {
            let term = term.as_str().unwrap();
            assert!(!["the", "you", "and", "are"].contains(&term), "{terms:?}");
            assert!(said.matches(term).count() >= 2, "{term} is said twice at least");
        }
    }
}

/// The turns a stored message becomes, as `(is_user, text)`: the user's
/// when it has text or an attachment, the personality's when it has a
/// reply (or an earlier one).
fn expected_turns(truth: &[String]) -> Vec<(bool, String)> {
    let mut turns = Vec::new();
    for raw in truth {
        let m: Value = serde_json::from_str(raw).unwrap();
        let text = |k: &str| m[k].as_str().unwrap_or("").to_owned();
        if !text("message").is_empty() || !text("attachment_url").is_empty() {
            turns.push((true, text("message")));
        }
        let earlier = m["regenerated_replies"].as_array().is_some_and(|a| !a.is_empty());
        if !text("reply").is_empty() || !text("voice_reply_url").is_empty() || earlier {
            turns.push((false, text("reply")));
        }
    }
    turns
}

/// The files of `dir`, by name (which sorts them by their start).
fn files_of(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sillytavern_writes_a_chat_file_per_conversation_a_header_then_each_turn_in_order() {
    let (fake, dir, config) = backed_up().await;
    let into = dir.path().join("chats");
    std::fs::create_dir(&into).unwrap();
    let out = export(
        &config,
        &["--format", "sillytavern", "-o", into.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrote 2 conversations (17 messages) of lilith"),
        "{}",
        text(&out)
    );
    let files = files_of(&into);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Lady Lilith - 2023-11-14@22h13m20s000ms.jsonl",
            "Lady Lilith - 2023-11-16@22h13m20s000ms.jsonl"
        ]
    );
    let mut turns = Vec::new();
    let mut last_date = String::new();
    for (name, content) in &files {
        let lines = json_lines(content);
        // The header: SillyTavern's four fields, with their types.
        let header = &lines[0];
        assert_eq!(header["user_name"], "Tester", "{name}");
        assert_eq!(header["character_name"], "Lady Lilith");
        assert!(header["create_date"].is_string());
        assert!(header["chat_metadata"].is_object());
        for line in &lines[1..] {
            let is_user = line["is_user"].as_bool().expect("is_user is a boolean");
            let speaker = if is_user { "Tester" } else { "Lady Lilith" };
            assert_eq!(line["name"], speaker, "{line}");
            assert_eq!(line["is_system"], false);
            let mes = line["mes"].as_str().expect("mes is a string");
            let date = line["send_date"].as_str().expect("send_date is a string");
            chrono::DateTime::parse_from_rfc3339(date).expect("send_date is ISO 8601");
            assert!(date >= last_date.as_str(), "in order: {date} after {last_date}");
            last_date = date.to_owned();
            assert!(line["extra"].is_object());
            if let Some(swipes) = line.get("swipes") {
                let swipes = swipes.as_array().unwrap();
                let id = line["swipe_id"].as_u64().expect("swipe_id is an integer") as usize;
                assert_eq!(swipes[id], mes, "the current swipe is the message");
                assert!(swipes.iter().all(Value::is_string));
                assert_eq!(line["swipe_info"].as_array().unwrap().len(), swipes.len());
            }
            turns.push((is_user, mes.to_owned()));
        }
    }
    assert_eq!(turns, expected_turns(&fake.ground_truth(NAME)));
    // Text is data: markup and control characters exactly as sent.
    let second = json_lines(&files[1].1);
    assert_eq!(second[1]["mes"], AS_DATA);
    assert_eq!(second[2]["mes"], AS_DATA);
    // An attachment-only message is the user's image; regenerated replies are swipes.
    assert_eq!(second[3]["mes"], "");
    assert_eq!(second[3]["extra"]["image"], picture(&fake).as_str());
    let last = second.last().unwrap();
    assert_eq!(last["swipes"][0], "first take");
    assert_eq!(last["swipes"][1], "second take");
    assert_eq!(last["swipe_id"], 2);
    let first = json_lines(&files[0].1);
    let regenerated = first.last().unwrap();
    assert_eq!(
        regenerated["swipes"].as_array().unwrap().len(),
        2,
        "{regenerated}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sillytavern_needs_a_directory_and_writes_nothing_without_one() {
    let (_fake, dir, config) = backed_up().await;
    let out = export(&config, &["--format", "sillytavern"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-o DIR"),
        "{}",
        text(&out)
    );
    assert!(out.stdout.is_empty());
    let file = dir.path().join("chat.jsonl");
    let out = export(&config, &["--format", "st", "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!file.exists());
}

const PROMPT: &str = "You are Lady Lilith. Stay in character.\nNever break the fourth wall.";

/// The `(user, assistant)` exchanges the fine-tuning formats make of the
/// fake's messages, as documented: both sides needed, an attachment alone
/// standing in for the user's text; those longer than `longest`
/// characters left out.
fn expected_exchanges(truth: &[String], longest: usize) -> Vec<(String, String)> {
    let mut exchanges = Vec::new();
    for raw in truth {
        let m: Value = serde_json::from_str(raw).unwrap();
        let text = |k: &str| m[k].as_str().unwrap_or("").to_owned();
        let reply = text("reply");
        let user = match (text("message"), text("attachment_type"), text("attachment_url")) {
            (t, _, _) if !t.is_empty() => t,
            (_, kind, url) if !url.is_empty() && !kind.is_empty() => format!("[attachment: {kind}]"),
            (_, _, url) if !url.is_empty() => "[attachment]".to_owned(),
            _ => continue,
        };
        if reply.is_empty() || reply.chars().count() > longest {
            continue;
        }
        exchanges.push((user, reply));
    }
    exchanges
}

/// Checks one example's turns (`role`/`content` or `from`/`value`): the
/// system turn first, then user and assistant alternating, ending with the
/// assistant; returns its exchanges.
fn exchanges_of(turns: &[Value], keys: (&str, &str), names: [&str; 3]) -> Vec<(String, String)> {
    let (who, what) = keys;
    let [system, user, assistant] = names;
    assert_eq!(turns[0][who], system, "{turns:?}");
    assert_eq!(turns[0][what], PROMPT);
    let rest = &turns[1..];
    assert!(
        !rest.is_empty() && rest.len().is_multiple_of(2),
        "whole exchanges: {turns:?}"
    );
    for turn in turns {
        assert_eq!(
            turn.as_object().unwrap().len(),
            2,
            "only {who} and {what}: {turn}"
        );
        assert!(turn[what].is_string(), "{turn}");
    }
    rest.chunks(2)
        .map(|pair| {
            assert_eq!(pair[0][who], user, "{pair:?}");
            assert_eq!(pair[1][who], assistant, "{pair:?}");
            let text = |t: &Value| t[what].as_str().unwrap().to_owned();
            (text(&pair[0]), text(&pair[1]))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_writes_an_example_per_conversation_system_then_user_and_assistant_in_turn() {
    let (fake, _dir, config) = backed_up().await;
    let out = export(&config, &["--format", "openai"]);
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), 2, "one line per conversation");
    let mut exchanges = Vec::new();
    for line in &lines {
        assert_eq!(line.as_object().unwrap().len(), 1, "{line}");
        let turns = line["messages"].as_array().expect("messages is an array");
        exchanges.extend(exchanges_of(
            turns,
            ("role", "content"),
            ["system", "user", "assistant"],
        ));
    }
    assert_eq!(
        exchanges,
        expected_exchanges(&fake.ground_truth(NAME), usize::MAX)
    );
    // Text is data; an attachment alone is a placeholder, as documented.
    assert!(exchanges.contains(&(AS_DATA.to_owned(), AS_DATA.to_owned())));
    assert!(exchanges.contains(&("[attachment: image]".to_owned(), "A fine picture.".to_owned())));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("left out: 2 messages without a reply"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_max_chars_bounds_every_line_splitting_conversations_and_leaving_out_what_cannot_fit() {
    let (fake, _dir, config) = backed_up().await;
    let out = export(&config, &["--format", "openai", "--max-chars", "1000"]);
    let text_out = stdout(&out);
    let lines = json_lines(&text_out);
    assert!(lines.len() > 2, "long conversations split: {text_out}");
    let mut exchanges = Vec::new();
    for (raw, line) in text_out.lines().zip(&lines) {
        assert!(
            raw.chars().count() <= 1000,
            "{} chars: {raw}",
            raw.chars().count()
        );
        let turns = line["messages"].as_array().unwrap();
        exchanges.extend(exchanges_of(
            turns,
            ("role", "content"),
            ["system", "user", "assistant"],
        ));
    }
    // The 4,800-character reply fits in no example of 1,000.
    let longest = 1000 - 200;
    let expected = expected_exchanges(&fake.ground_truth(NAME), longest);
    assert_eq!(exchanges, expected);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 message longer than --max-chars"), "{stderr}");
    // Too small for any exchange: nothing written, and said so.
    let out = export(&config, &["--format", "openai", "--max-chars", "200"]);
    assert_eq!(stdout(&out), "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 examples"), "{stderr}");
    assert!(stderr.contains("15 messages longer than --max-chars"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharegpt_is_one_json_array_of_system_human_and_gpt_turns_per_conversation() {
    let (fake, dir, config) = backed_up().await;
    let into = dir.path().join("exports");
    std::fs::create_dir(&into).unwrap();
    let out = export(&config, &["--format", "sharegpt", "-o", into.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written = std::fs::read_to_string(into.join("lilith_sharegpt.json")).unwrap();
    let doc: Value = serde_json::from_str(&written).expect("one JSON document");
    let entries = doc.as_array().expect("an array");
    assert_eq!(entries.len(), 2);
    let mut exchanges = Vec::new();
    for entry in entries {
        assert_eq!(entry.as_object().unwrap().len(), 1, "{entry}");
        let turns = entry["conversations"]
            .as_array()
            .expect("conversations is an array");
        exchanges.extend(exchanges_of(turns, ("from", "value"), ["system", "human", "gpt"]));
    }
    assert_eq!(
        exchanges,
        expected_exchanges(&fake.ground_truth(NAME), usize::MAX)
    );
    assert!(exchanges.contains(&(AS_DATA.to_owned(), AS_DATA.to_owned())));
}

/// The profile fields the card maps (each once, under these names in the
/// fake's profile): name, search_description (description), prompt
/// (system_prompt).
const MAPPED: &[&str] = &["name", "search_description", "prompt"];

/// Checks `card` against the Character Card V2 specification
/// (malfoyslastname/character-card-spec-v2): the spec and version, every
/// field of `data` with its type, and each character book entry's required
/// fields with theirs.
fn check_card_v2(card: &Value) {
    assert_eq!(card["spec"], "chara_card_v2");
    assert_eq!(card["spec_version"], "2.0");
    let data = card["data"].as_object().expect("data is an object");
    for field in [
        "name",
        "description",
        "personality",
        "scenario",
        "first_mes",
        "mes_example",
        "creator_notes",
        "system_prompt",
        "post_history_instructions",
        "creator",
        "character_version",
    ] {
        assert!(
            data.get(field).is_some_and(Value::is_string),
            "{field} is a string"
        );
    }
    for field in ["alternate_greetings", "tags"] {
        let list = data.get(field).and_then(Value::as_array);
        assert!(
            list.is_some_and(|l| l.iter().all(Value::is_string)),
            "{field}: strings"
        );
    }
    assert!(data["extensions"].is_object());
    if let Some(book) = data.get("character_book") {
        assert!(book["extensions"].is_object());
        for entry in book["entries"].as_array().expect("entries is an array") {
            let keys = entry["keys"].as_array().expect("keys is an array");
            assert!(keys.iter().all(Value::is_string));
            assert!(entry["content"].is_string());
            assert!(entry["extensions"].is_object());
            assert!(entry["enabled"].is_boolean());
            assert!(entry["insertion_order"].is_number());
            if let Some(position) = entry.get("position") {
                assert!(position == "before_char" || position == "after_char");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn character_card_maps_the_profile_and_knowledge_and_keeps_every_other_profile_field() {
    let (fake, dir, config) = backed_up().await;
    // Knowledge with text to keep as data, an unknown field and a number.
    fake.set_document(
        NAME,
        chatkeep::fake::DocumentKind::Knowledge,
        Some(serde_json::json!([
            {"id": "k0", "title": "Lore 0", "content": AS_DATA, "weight": 2.5},
            {"id": "k1", "title": "Lore 1", "content": "Chapter 1."},
        ])),
    );
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = stdout(&export(&config, &["--format", "character-card"]));
    let card: Value = serde_json::from_str(&json).unwrap();
    check_card_v2(&card);
    let data = &card["data"];
    let profile: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("data").join(NAME).join(format!("{NAME}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(data["name"], "Lady Lilith");
    assert_eq!(data["system_prompt"], PROMPT);
    assert_eq!(data["description"], profile["search_description"]);
    // Every profile field is in the card once: mapped, or kept as it was.
    let kept = data["extensions"]["chatkeep"].as_object().unwrap();
    for (field, value) in profile.as_object().unwrap() {
        if MAPPED.contains(&field.as_str()) {
            assert!(!kept.contains_key(field), "{field} is mapped, not repeated");
        } else {
            assert_eq!(
                kept.get(field),
                Some(value),
                "{field} kept under extensions.chatkeep"
            );
        }
    }
    assert_eq!(kept.len() + MAPPED.len(), profile.as_object().unwrap().len());
    // Knowledge entries are the character book, text as data.
    let entries = data["character_book"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["content"], AS_DATA);
    assert_eq!(entries[0]["keys"], serde_json::json!(["Lore 0"]));
    assert_eq!(entries[0]["extensions"]["chatkeep"]["id"], "k0");
    assert_eq!(entries[0]["extensions"]["chatkeep"]["weight"], 2.5);
    assert_eq!(entries[1]["insertion_order"], 1);
    // Training questions and answers are the example dialogue.
    let examples = data["mes_example"].as_str().unwrap();
    assert!(
        examples.starts_with("<START>\n{{user}}: What is rule 0?\n{{char}}: Rule 0 is to be Lady Lilith."),
        "{examples}"
    );
}

/// A 1×1 PNG with `extra` chunks after IHDR, each with its CRC.
fn avatar(extra: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
    let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(kind);
        out.extend(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend(crc.finalize().to_be_bytes());
    };
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]);
    for (kind, data) in extra {
        chunk(&mut png, kind, data);
    }
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x63, 0x60, 0, 0, 0, 2, 0, 1]);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// The chunks of a PNG, each CRC checked: `(type, data)`.
fn chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let mut at = 8;
    let mut chunks = Vec::new();
    while at < png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
        let data = png[at + 8..at + 8 + length].to_vec();
        let stored = u32::from_be_bytes(png[at + 8 + length..at + 12 + length].try_into().unwrap());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&kind);
        crc.update(&data);
        assert_eq!(
            stored,
            crc.finalize(),
            "CRC of {}",
            String::from_utf8_lossy(&kind)
        );
        chunks.push((kind, data));
        at += 12 + length;
    }
    chunks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn character_card_png_holds_the_same_card_in_one_chara_text_chunk_read_back() {
    use base64::Engine as _;
    let (_fake, dir, config) = backed_up().await;
    let json = stdout(&export(&config, &["--format", "card"]));
    let card: Value = serde_json::from_str(&json).unwrap();
    // An avatar that already holds a card, and a comment to keep.
    let stale = base64::engine::general_purpose::STANDARD.encode(br#"{"spec":"chara_card_v2","data":{}}"#);
    let stale = [b"chara\0".as_slice(), stale.as_bytes()].concat();
    let source = avatar(&[(b"tEXt", &stale), (b"tEXt", b"Comment\0made by hand")]);
    let avatar_path = dir.path().join("avatar.png");
    std::fs::write(&avatar_path, &source).unwrap();
    let into = dir.path().join("cards");
    std::fs::create_dir(&into).unwrap();
    let out = export(
        &config,
        &[
            "--format",
            "character-card",
            "--png",
            avatar_path.to_str().unwrap(),
            "-o",
            into.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written = std::fs::read(into.join("lilith.card.png")).unwrap();
    let chunks = chunks(&written);
    let kinds: Vec<String> = chunks
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(kinds, ["IHDR", "tEXt", "IDAT", "tEXt", "IEND"]);
    // The image is untouched; the comment kept; one card, the new one.
    let original = self::chunks(&source);
    assert_eq!(chunks[0], original[0]);
    assert_eq!(chunks[2], original[3]);
    assert_eq!(chunks[1].1, b"Comment\0made by hand");
    let cards: Vec<&Vec<u8>> = chunks
        .iter()
        .filter(|(_, d)| d.starts_with(b"chara\0"))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(cards.len(), 1);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&cards[0][6..])
        .unwrap();
    let embedded: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(embedded, card);
    check_card_v2(&embedded);

    // Not a PNG, or a corrupt one: refused, nothing written.
    let mut corrupt = source.clone();
    corrupt[20] ^= 0xff;
    for (bytes, says) in [(b"GIF89a".to_vec(), "not a PNG"), (corrupt, "CRC")] {
        std::fs::write(&avatar_path, &bytes).unwrap();
        let target = dir.path().join("refused.png");
        let out = export(
            &config,
            &[
                "--format",
                "card",
                "--png",
                avatar_path.to_str().unwrap(),
                "-o",
                target.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            text(&out)
        );
        assert!(!target.exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_format_survives_fields_of_unexpected_types() {
    let (fake, dir, config) = backed_up().await;
    let odd = [
        r#"{"id":"n","ts":4000000000.1,"message":123,"reply":{"parts":["a",{"b":null}]},"attachment_url":7,"voice_reply_url":false,"regenerated_replies":"no"}"#,
        r#"{"id":"m","ts":4000000000.2,"message":null,"reply":["x"],"voice_reply_url":{"u":"v"}}"#,
    ];
    for raw in odd {
        fake.push_raw_message(NAME, raw);
    }
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let chats = dir.path().join("odd");
    std::fs::create_dir(&chats).unwrap();
    for args in [
        vec!["--format", "conversations"],
        vec!["--format", "openai"],
        vec!["--format", "sharegpt"],
        vec!["--format", "sillytavern", "-o", chats.to_str().unwrap()],
    ] {
        let out = export(&config, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
    // Not text: written as the JSON received, as the transcript does.
    let openai = stdout(&export(&config, &["--format", "openai"]));
    let last: Value = serde_json::from_str(openai.lines().last().unwrap()).unwrap();
    let turns = last["messages"].as_array().unwrap();
    assert_eq!(turns[1]["content"], "123");
    assert_eq!(turns[2]["content"], r#"{"parts":["a",{"b":null}]}"#);
    assert_eq!(
        turns.len(),
        3,
        "the message without user text is left out: {turns:?}"
    );
}
