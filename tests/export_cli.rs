//! `chatkeep export` as a user runs it: the Markdown transcript (days,
//! times, the display name, regenerated replies), `--format md`, `-o DIR`,
//! `--since`/`--until`, and the documents beside the chat (`--what`).

mod common;

use std::path::Path;

use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use common::*;

const NAME: &str = "lilith";

/// Ten messages six hours apart from 2023-11-14T22:13:20Z, so across
/// three days, under the display name "Lady Lilith"; the newest reply
/// regenerated once before the backup.
async fn backed_up() -> (FakeService, tempfile::TempDir, std::path::PathBuf) {
    let mut spec = PersonalitySpec::new(NAME, 10);
    spec.display_name = "Lady Lilith".into();
    spec.step_ms = 6 * 3600 * 1000;
    let fake = fake(FakeConfig::default(), vec![spec]).await;
    fake.regenerate_nth_newest(NAME, 0);
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_groups_by_day_with_times_the_display_name_and_regenerated_replies() {
    let (_fake, _dir, config) = backed_up().await;
    let md = stdout(&export(&config, &["--format", "markdown"]));
    assert!(md.starts_with("# Chat history with Lady Lilith\n"), "{md}");
    // 22:13, 04:13, 10:13, 16:13 ...: four days touched, one heading each.
    let days: Vec<&str> = md.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        days,
        ["## 2023-11-14", "## 2023-11-15", "## 2023-11-16", "## 2023-11-17"],
        "{md}"
    );
    assert!(!md.contains("### "), "no heading per message: {md}");
    assert!(md.contains("**22:13** **You:** "), "{md}");
    assert!(md.contains("**04:13** **You:** "), "{md}");
    assert_eq!(md.matches("**Lady Lilith:** ").count(), 10, "{md}");
    assert!(!md.contains("**lilith:**"), "the slug is not the name: {md}");
    assert_eq!(md.matches("*Earlier reply, regenerated:* ").count(), 1, "{md}");
    // The regenerated reply comes after the current one, in the newest message.
    let last_day = md.rsplit("## ").next().unwrap();
    assert!(last_day.contains("*Earlier reply, regenerated:*"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_falls_back_to_the_slug_without_a_profile_and_md_is_an_alias() {
    let (_fake, dir, config) = backed_up().await;
    let md = stdout(&export(&config, &["--format", "md"]));
    assert!(md.starts_with("# Chat history with Lady Lilith\n"), "{md}");
    std::fs::remove_file(dir.path().join("data").join(NAME).join(format!("{NAME}.json"))).unwrap();
    let md = stdout(&export(&config, &["-f", "md"]));
    assert!(md.starts_with("# Chat history with lilith\n"), "{md}");
    assert!(md.contains("**lilith:** "), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_into_a_directory_writes_the_named_file() {
    let (_fake, dir, config) = backed_up().await;
    let into = dir.path().join("exports");
    std::fs::create_dir(&into).unwrap();
    for (format, file) in [
        ("md", "lilith_chat_history.md"),
        ("jsonl", "lilith_chat_history.jsonl"),
        ("json", "lilith_chat_history.json"),
        ("conversations", "lilith_conversations.jsonl"),
    ] {
        let out = export(&config, &["--format", format, "-o", into.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{format}: {}", text(&out));
        let written = into.join(file);
        assert!(written.is_file(), "{format}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&written.display().to_string()));
    }
    let jsonl = std::fs::read_to_string(into.join("lilith_chat_history.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_and_until_keep_the_messages_of_those_days() {
    let (_fake, _dir, config) = backed_up().await;
    // 2023-11-15: 04:13, 10:13, 16:13, 22:13; 2023-11-16: four more.
    let jsonl = stdout(&export(
        &config,
        &[
            "--format",
            "jsonl",
            "--since",
            "2023-11-15",
            "--until",
            "2023-11-16",
        ],
    ));
    assert_eq!(jsonl.lines().count(), 8, "{jsonl}");
    let json = stdout(&export(&config, &["--since", "2023-11-16T22:13:20Z"]));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["message_count"], 2, "{json}");
    assert_eq!(doc["messages"].as_array().unwrap().len(), 2);
    assert_eq!(doc["date_range"]["earliest"], "2023-11-16T22:13:20.000Z");
    let md = stdout(&export(
        &config,
        &["--format", "md", "--until", "2023-11-14T22:13:20Z"],
    ));
    assert_eq!(md.matches("**You:**").count(), 1, "{md}");
    let out = export(&config, &["--since", "last week"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("RFC 3339"), "{}", text(&out));
}

/// The files of the export format, documents first, as DESIGN.md names them.
const DOCUMENT_FILES: [&str; 5] = [
    "lilith.json",
    "lilith_memories.json",
    "lilith_knowledge.json",
    "lilith_training.json",
    "lilith_user_personalization.json",
];

fn stored(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join("data").join(NAME).join(file)).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_all_writes_every_document_byte_for_byte_and_the_chat_into_a_directory() {
    let (_fake, dir, config) = backed_up().await;
    let into = dir.path().join("exports");
    std::fs::create_dir(&into).unwrap();
    let out = export(&config, &["--what", "all", "-o", into.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!stderr(&out).contains("note:"), "{}", text(&out));
    for file in DOCUMENT_FILES {
        let written = into.join(file);
        assert_eq!(
            std::fs::read(&written).unwrap(),
            stored(dir.path(), file),
            "{file}"
        );
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&written).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{file}");
        assert!(
            stderr(&out).contains(&written.display().to_string()),
            "{file}: {}",
            text(&out)
        );
    }
    let chat: serde_json::Value =
        serde_json::from_slice(&std::fs::read(into.join("lilith_chat_history.json")).unwrap()).unwrap();
    assert_eq!(chat["message_count"], 10);
    let mut names: Vec<String> = std::fs::read_dir(&into)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "no temporary file left: {names:?}");

    // One document: to standard output, or a file, as stored.
    let profile = export(&config, &["--what", "profile"]);
    assert_eq!(
        profile.stdout,
        stored(dir.path(), "lilith.json"),
        "{}",
        text(&profile)
    );
    let file = dir.path().join("mem.json");
    let out = export(&config, &["-w", "memories", "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        stored(dir.path(), "lilith_memories.json")
    );
    let user = export(&config, &["--what", "user"]);
    assert_eq!(
        user.stdout,
        stored(dir.path(), "lilith_user_personalization.json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_and_training_of_a_non_owner_are_said_not_available() {
    let mut spec = PersonalitySpec::new(NAME, 4);
    spec.owner_id = "someone-else".into();
    let fake = fake(FakeConfig::default(), vec![spec]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let into = dir.path().join("exports");
    std::fs::create_dir(&into).unwrap();
    let out = export(&config, &["--what", "all", "-o", into.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for part in ["knowledge", "training"] {
        assert!(
            stderr(&out).contains(&format!(
                "note: no {part} of `lilith` exported: not available to this account"
            )),
            "{part}: {}",
            text(&out)
        );
        assert!(!into.join(format!("lilith_{part}.json")).exists());
    }
    for file in ["lilith.json", "lilith_memories.json", "lilith_chat_history.json"] {
        assert!(into.join(file).is_file(), "{file}: {}", text(&out));
    }
    let out = export(&config, &["--what", "knowledge"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("not available"), "{}", text(&out));

    // Knowledge stored while the account owned it is exported, as stored,
    // with a word that the last sync could not refresh it.
    let kept = dir.path().join("data").join(NAME).join("lilith_knowledge.json");
    std::fs::write(&kept, "[{\"kept\": 1.50}]\n").unwrap();
    let out = export(&config, &["--what", "knowledge"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(out.stdout, std::fs::read(&kept).unwrap());
    assert!(
        stderr(&out).contains("is the copy an earlier sync stored: not available to this account"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_never_fetched_is_said_so_and_an_earlier_file_is_left_with_a_word() {
    let (_fake, dir, config) = backed_up().await;
    let into = dir.path().join("exports");
    std::fs::create_dir(&into).unwrap();
    let earlier = into.join("lilith_training.json");
    std::fs::write(&earlier, "earlier").unwrap();
    // As if the config never backed training up.
    std::fs::remove_file(dir.path().join("data").join(NAME).join("lilith_training.json")).unwrap();
    let status = dir.path().join("data").join(NAME).join("status.json");
    let mut recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(&status).unwrap()).unwrap();
    recorded["sections"]["training"] = "skipped".into();
    std::fs::write(&status, serde_json::to_vec(&recorded).unwrap()).unwrap();
    let out = export(
        &config,
        &["--what", "training,profile", "-o", into.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stderr(&out).contains("no training of `lilith` exported: never fetched"),
        "{}",
        text(&out)
    );
    assert!(stderr(&out).contains("is left as it was"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&earlier).unwrap(), "earlier");
    assert!(into.join("lilith.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_export_is_replaced_only_with_a_word() {
    let (_fake, dir, config) = backed_up().await;
    let into = dir.path().join("exports");
    std::fs::create_dir(&into).unwrap();
    let first = export(&config, &["--what", "all", "-o", into.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(!stderr(&first).contains("replacing"), "{}", text(&first));
    std::fs::write(into.join("lilith_memories.json"), "edited by hand").unwrap();
    let again = export(&config, &["--what", "all", "-o", into.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let memories = into.join("lilith_memories.json").display().to_string();
    assert!(
        stderr(&again)
            .lines()
            .any(|l| l.contains(&memories) && l.ends_with("replacing the file there")),
        "{}",
        text(&again)
    );
    assert_eq!(
        stderr(&again).matches("replacing the file there").count(),
        6,
        "{}",
        text(&again)
    );
    assert_eq!(
        std::fs::read(into.join("lilith_memories.json")).unwrap(),
        stored(dir.path(), "lilith_memories.json")
    );
    // The same for the chat history alone, to a file named.
    let file = into.join("lilith_chat_history.json");
    let out = export(&config, &["-o", file.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("replacing the file there"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_would_do_nothing_for_documents_are_refused() {
    let (_fake, dir, config) = backed_up().await;
    let file = dir.path().join("out.json");
    for (args, says) in [
        (vec!["--what", "all"], "give -o DIR"),
        (
            vec!["--what", "profile,memories", "-o", file.to_str().unwrap()],
            "give -o DIR",
        ),
        (
            vec!["--what", "memories", "--format", "md"],
            "--format markdown is for the chat history",
        ),
        (
            vec!["--what", "profile", "--since", "2023-11-15"],
            "add `chat` to --what",
        ),
        (vec!["--what", "nonsense"], "invalid value"),
    ] {
        let out = export(&config, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", text(&out));
        assert!(
            out.stdout.is_empty() && !file.exists(),
            "{args:?}: nothing written"
        );
    }
}

#[test]
fn help_tells_of_the_documents() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .args(["export", "--help"])
        .output()
        .unwrap();
    let help = stdout(&out).split_whitespace().collect::<Vec<_>>().join(" ");
    for word in [
        "--what",
        "profile",
        "memories",
        "knowledge",
        "training",
        "user_personalization",
        "all",
        "not available",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
}
