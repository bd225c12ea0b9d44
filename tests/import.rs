//! `chatkeep import`: a backup written by the earlier export script is
//! adopted, its corruption repaired from the service by the next sync, and
//! a broken or hostile one refused without a change.

mod common;

use std::path::{Path, PathBuf};

use chatkeep::config::Config;
use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use chatkeep::message::{Message, minify};
use common::*;

/// `json` (compact) laid out as a pretty-printer would: newlines and
/// indents outside strings, a space after each colon. Minifying it gives
/// the same bytes back.
fn pretty(json: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                depth += 1;
                out.push(c);
                newline(&mut out, depth);
            }
            '}' | ']' => {
                depth -= 1;
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

/// `raw` with the first letter of its `message` text replaced by U+FFFD,
/// as the earlier script's chunk concatenation left multi-byte text.
fn corrupt(raw: &str) -> String {
    let at = raw.find("\"message\":\"").expect("a message text") + "\"message\":\"".len();
    let next = raw[at..].chars().next().unwrap().len_utf8();
    format!("{}\u{FFFD}{}", &raw[..at], &raw[at + next..])
}

/// What the earlier script would have written of the fake's history, and
/// what it did wrong there.
struct OldBackup {
    dir: tempfile::TempDir,
    /// Every message line of the file, compact, in file order.
    lines: Vec<String>,
    corrupted: Vec<String>,
    /// The tie member the script lost (on the service, not in the file).
    lost: String,
    /// A message the file has and the service no longer does.
    gone: String,
}

/// The fake's history as the earlier script wrote it: the messages of a
/// tie at one `ts` with one of them lost, one message doubled, three with
/// U+FFFD in their text, and one the service has since lost; half of the
/// file pretty-printed.
fn old_backup(fake: &FakeService, name: &str) -> OldBackup {
    let truth = fake.ground_truth(name);
    let ts_of = |raw: &str| Message::from_stored_line(&minify(raw)).unwrap().ts.as_f64();
    // A tie: a message sharing the 11th message's `ts`, lost by the script.
    let tie_ts = ts_of(&truth[10]);
    let lost = format!(
        r#"{{"id":"tie-lost","message":"same second","reply":"indeed","ts":{tie_ts},"attachment_url":null,"voice_reply_url":null}}"#
    );
    fake.insert_raw_message(name, &lost);
    let gone_ts = ts_of(&truth[20]) + 0.0005;
    let gone = format!(
        r#"{{"id":"gone-upstream","message":"they deleted this","reply":"ok","ts":{gone_ts},"attachment_url":null,"voice_reply_url":null}}"#
    );
    let mut lines: Vec<String> = Vec::new();
    let mut corrupted = Vec::new();
    for (i, raw) in truth.iter().enumerate() {
        let raw = minify(raw);
        let line = if [5, 50, 100].contains(&i) {
            let bad = corrupt(&raw);
            corrupted.push(bad.clone());
            bad
        } else {
            raw
        };
        lines.push(line.clone());
        if i == 30 {
            lines.push(line);
        }
        if i == 20 {
            lines.push(gone.clone());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let half = lines.len() / 2;
    let mut text = format!(
        "{{\n  \"shape_id\": \"{}\",\n  \"shape_name\": \"{name}\",\n  \"message_count\": {},\n  \"messages\": [\n",
        fake.personality_id(name),
        lines.len()
    );
    for (i, line) in lines.iter().enumerate() {
        let shown = if i < half { pretty(line) } else { line.clone() };
        text.push_str(&shown);
        text.push_str(if i + 1 < lines.len() { ",\n" } else { "\n" });
    }
    text.push_str("  ],\n  \"export_date\": \"2024-12-13T12:00:00.000Z\"\n}\n");
    std::fs::write(dir.path().join(format!("{name}_chat_history.json")), text).unwrap();
    std::fs::write(
        dir.path().join(format!("{name}_memories.json")),
        r#"[{"id": "m-old", "content": "likes tea"}]"#,
    )
    .unwrap();
    OldBackup {
        dir,
        lines,
        corrupted,
        lost,
        gone,
    }
}

fn import(config_path: &Path, name: &str, from: &Path) -> std::process::Output {
    chatkeep(config_path)
        .args(["import", name])
        .arg(from)
        .arg("--json")
        .output()
        .unwrap()
}

fn report(output: &std::process::Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

async fn setup_one(messages: usize) -> (FakeService, tempfile::TempDir, PathBuf, Config) {
    let fake = fake(
        FakeConfig::default(),
        vec![PersonalitySpec::new("aria", messages)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &fake.base_url(), &["aria"], 10_000.0, "");
    let config = load(&path);
    (fake, dir, path, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_backup_is_whole_and_in_the_services_version_after_the_next_sync() {
    let (fake, _dir, path, config) = setup_one(240).await;
    let old = old_backup(&fake, "aria");
    let output = import(&path, "aria", old.dir.path());
    let got = report(&output);
    let distinct = old.lines.len() as u64 - 1;
    assert_eq!(got["chat"]["read"], old.lines.len() as u64, "{got}");
    assert_eq!(got["chat"]["added"], distinct, "{got}");
    assert_eq!(got["chat"]["doubled"], 1, "{got}");
    assert_eq!(got["chat"]["already"], 0, "{got}");
    assert_eq!(got["chat"]["corrupted"], old.corrupted.len() as u64, "{got}");
    assert_eq!(got["documents"]["aria_memories.json"], "stored", "{got}");

    // The store holds the file's messages, each once, as the file had them.
    let mut stored = export_lines(&config, "aria");
    let mut want: Vec<String> = old.lines.clone();
    want.sort();
    want.dedup();
    stored.sort();
    assert_eq!(stored, want);
    assert!(stored.contains(&old.gone), "byte for byte as the file had it");
    let imports = std::fs::read_to_string(config.storage.data_dir.join("aria/imports.jsonl")).unwrap();
    let listed: serde_json::Value = serde_json::from_str(imports.lines().next().unwrap()).unwrap();
    assert_eq!(
        listed["chat"]["added"], distinct,
        "the import is listed: {imports}"
    );

    // The next sync compares with the service: every message in the
    // service's version, the lost tie member stored, the one gone upstream
    // kept (marked), the corrupted ones kept as earlier versions.
    pass(&config).await;
    let exported = export_lines(&config, "aria");
    let (kept, service): (Vec<String>, Vec<String>) = exported
        .into_iter()
        .partition(|l| l.contains("\"gone-upstream\""));
    assert_eq!(kept.len(), 1, "the message the service lost is kept");
    assert!(
        service.contains(&old.lost),
        "the tie member the script lost is stored"
    );
    assert_complete(&service, &fake, "aria");
    let chat = chatkeep::store::ChatStore::open_read_only(&config.storage.data_dir.join("aria")).unwrap();
    assert_eq!(
        chat.state().revised(),
        old.corrupted.len() as u64,
        "each corrupted one revised"
    );
    assert_eq!(chat.state().deleted_upstream(), 1);
    assert!(!chat.state().imported_unverified);
    let json = export_text(&config, "aria", chatkeep::export::Format::Json);
    assert!(json.contains("deleted_upstream_at"), "the kept one is marked");

    // The memories: the imported one the service lacks is kept, marked.
    let memories = std::fs::read_to_string(config.storage.data_dir.join("aria/aria_memories.json")).unwrap();
    assert!(memories.contains("m-old"), "{memories}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_twice_or_into_a_synced_backup_adds_nothing_twice() {
    let (fake, _dir, path, config) = setup_one(120).await;
    pass(&config).await;
    let old = old_backup(&fake, "aria");
    let before = export_lines(&config, "aria").len() as u64;
    let first = report(&import(&path, "aria", old.dir.path()));
    // Only the message the service lost is new to the backup; the
    // corrupted copies of stored messages are not taken.
    assert_eq!(first["chat"]["added"], 1, "{first}");
    assert_eq!(first["chat"]["already"], old.lines.len() as u64 - 2, "{first}");
    assert_eq!(first["documents"]["aria_memories.json"], "kept", "{first}");
    let second = report(&import(&path, "aria", old.dir.path()));
    assert_eq!(second["chat"]["added"], 0, "{second}");
    let after = export_lines(&config, "aria");
    assert_eq!(after.len() as u64, before + 1);
    assert!(!after.iter().any(|l| old.corrupted.contains(l)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_or_hostile_history_is_refused_and_changes_nothing() {
    let (fake, _dir, path, config) = setup_one(60).await;
    pass(&config).await;
    let truth: Vec<String> = fake.ground_truth("aria").iter().map(|m| minify(m)).collect();
    let id = fake.personality_id("aria");
    let whole = |messages: &[String]| format!(r#"{{"shape_id":"{id}","messages":[{}]}}"#, messages.join(","));
    let mut reversed = truth.clone();
    reversed.reverse();
    let huge = format!(r#"{{"id":"big","ts":1,"message":"{}"}}"#, "x".repeat(17 << 20));
    let new_one = r#"{"id":"new","message":"m","reply":"r","ts":1.5}"#.to_owned();
    let cases: Vec<(&str, String)> = vec![
        ("truncated", whole(&truth)[..2000].to_owned()),
        ("not oldest first", whole(&reversed)),
        (
            "has no `ts`",
            whole(&[new_one.clone(), r#"{"id":"x"}"#.to_owned()]),
        ),
        (
            "neither a string nor a number",
            whole(&[r#"{"id":{"a":1},"ts":2}"#.to_owned()]),
        ),
        ("longer than 16 MiB", whole(&[new_one.clone(), huge])),
        (
            "personality",
            format!(r#"{{"shape_id":"someone-else","messages":[{new_one}]}}"#),
        ),
        ("export format", "[1,2,3]".to_owned()),
    ];
    let state = config.storage.data_dir.join("aria/chat_state.json");
    let before = std::fs::read(&state).unwrap();
    let lines = export_lines(&config, "aria");
    let files = tempfile::tempdir().unwrap();
    for (expect, body) in cases {
        let file = files.path().join("aria_chat_history.json");
        std::fs::write(&file, &body).unwrap();
        let output = import(&path, "aria", &file);
        assert_eq!(output.status.code(), Some(1), "{expect}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expect) && stderr.contains("nothing was imported"),
            "{expect}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&state).unwrap(),
            before,
            "{expect}: the state changed"
        );
        assert_eq!(export_lines(&config, "aria"), lines, "{expect}");
        assert!(
            !config.storage.data_dir.join("aria/import.spool").exists(),
            "{expect}"
        );
    }
    // A document that is not JSON stops the import before the history.
    std::fs::write(files.path().join("aria_chat_history.json"), whole(&[new_one])).unwrap();
    std::fs::write(files.path().join("aria_knowledge.json"), "{not json").unwrap();
    let output = import(&path, "aria", files.path());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("aria_knowledge.json"));
    assert_eq!(std::fs::read(&state).unwrap(), before);
}

/// The real binary without a config, in `dir`, with only the earlier
/// script's three variables (and what the system needs).
fn backup_command(dir: &Path, fake: &FakeService) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatkeep"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SERVICE_COOKIE", format!("{COOKIE_NAME}={TOKEN}"))
        .env("SERVICE_WEBSITE", fake.base_url())
        .env("PERSONALITY_JARGON_TERM", "shapes");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_line_backup_with_the_scripts_three_variables_writes_the_scripts_layout() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("aria", 130)]).await;
    let dir = tempfile::tempdir().unwrap();
    let output = backup_command(dir.path(), &fake)
        .args(["backup", "aria"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains(TOKEN), "the cookie is never shown");
    let backup = dir.path().join("data/service-backup/aria");
    for file in ["aria.json", "aria_memories.json", "aria_chat_history.json"] {
        assert!(backup.join(file).is_file(), "{file}: {}", text(&output));
    }
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("aria_chat_history.json")).unwrap()).unwrap();
    let truth = fake.ground_truth("aria");
    assert_eq!(history["message_count"], truth.len() as u64);
    assert_eq!(history["shape_id"], fake.personality_id("aria"));
    let ids: Vec<String> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].to_string())
        .collect();
    let want: Vec<String> = truth
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["id"].to_string())
        .collect();
    assert_eq!(ids, want, "every message, oldest first");

    // Again: incremental, and the file follows the backup.
    fake.append_messages("aria", 3);
    let before = fake.chat_requests("aria");
    let output = backup_command(dir.path(), &fake)
        .args(["backup", "aria"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        fake.chat_requests("aria") - before <= 2,
        "only the new page is asked for"
    );
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("aria_chat_history.json")).unwrap()).unwrap();
    assert_eq!(history["message_count"], truth.len() as u64 + 3);

    // The config it stands for names the cookie's variable, never the cookie.
    let output = backup_command(dir.path(), &fake)
        .args(["backup", "aria", "--print-config"])
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&output.stdout);
    assert!(
        config.contains("cookie_env = \"SERVICE_COOKIE\"") && !config.contains(TOKEN),
        "{config}"
    );
    assert!(
        config.contains(&fake.base_url()) && config.contains("name = \"aria\""),
        "{config}"
    );

    // A missing variable is named.
    let output = backup_command(dir.path(), &fake)
        .env_remove("SERVICE_WEBSITE")
        .args(["backup", "aria"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("SERVICE_WEBSITE not set"),
        "{}",
        text(&output)
    );
}
