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
    let long = "lantern ".repeat(600);
    let raws = [
        format!(r#"{{"id":"d1","message":{data},"reply":{data},"ts":{DAY2_S}.0,"regenerated_replies":[]}}"#),
        format!(
            r#"{{"id":"d2","message":"","reply":"A fine picture.","ts":{}.0,"attachment_url":"https://cdn.example/p.png","attachment_type":"image","regenerated_replies":[]}}"#,
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
