//! Sealed chat-log segments end to end: real syncs against the fake service
//! seal the log into segments across incremental syncs, the export still
//! equals the fake's ground truth, and a sealed segment never changes. (A
//! crash in the middle of a seal is covered by the store's unit tests, step
//! by step.)

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chatkeep::commands::sync::{Selection, run_pass};
use chatkeep::fake::{FakeConfig, PersonalitySpec};
use chatkeep::message::Message;
use chatkeep::store::ChatStore;
use common::*;
use flate2::read::MultiGzDecoder;
use tokio_util::sync::CancellationToken;

/// Tie groups (index of the first message, size): the only messages of the
/// history closer than a minute to their neighbours.
const TIES: [(usize, usize); 3] = [(100, 3), (1200, 60), (2400, 51)];

/// A config for the fake at `base_url` that seals chat logs at `size`.
fn config_with_segment_size(dir: &Path, base_url: &str, size: &str) -> PathBuf {
    let path = write_config(dir, base_url, &["long"], 10_000.0, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "data_dir = \"data\"\n",
        &format!("data_dir = \"data\"\nsegment_size = \"{size}\"\n"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The lines of a gzip file, read with nothing of chatkeep's.
fn gunzip(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    BufReader::new(MultiGzDecoder::new(file))
        .lines()
        .map(Result::unwrap)
        .collect()
}

/// Every file in `segments/`, with its bytes and modification time.
fn segment_files(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| {
            let e = e.unwrap();
            let modified = e.metadata().unwrap().modified().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (std::fs::read(e.path()).unwrap(), modified),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_syncs_seal_segments_that_never_change_and_export_reads_them_all() {
    let mut spec = PersonalitySpec::new("long", 2500);
    spec.tie_groups = TIES.to_vec();
    let fake = fake(FakeConfig::default(), vec![spec]).await;
    let dir = tempfile::tempdir().unwrap();
    // The smallest size the config accepts; about 1,500 generated messages.
    let config = load(&config_with_segment_size(dir.path(), &fake.base_url(), "64KiB"));
    assert_eq!(config.storage.segment_size, 64 << 10);
    let chat_dir = config.storage.data_dir.join("long");
    let segments_dir = chat_dir.join("segments");
    let cancel = CancellationToken::new();

    let mut sealed: BTreeMap<String, (Vec<u8>, SystemTime)> = BTreeMap::new();
    // A full sync, then incremental ones: large enough to seal, then small.
    for (sync, new) in [0usize, 2000, 1800, 2200, 10, 0].into_iter().enumerate() {
        fake.append_messages("long", new);
        fake.clear_requests();
        let outcome = run_pass(&config, &[], Selection::default(), &cancel)
            .await
            .unwrap();
        assert!(outcome.all_ok(), "sync {sync}: {:?}", outcome.reports);
        let chat = outcome.reports[0].chat.as_ref().unwrap();
        if sync > 0 {
            assert_eq!(chat.new_messages, new as u64, "sync {sync}");
            // Still incremental: the pages of the new messages, and one
            // that reaches the stored ones.
            assert_eq!(fake.chat_requests("long"), (new + 1).div_ceil(50), "sync {sync}");
        }
        assert_complete(&export_lines(&config, "long"), &fake, "long");

        let store = ChatStore::open_read_only(&chat_dir).unwrap();
        let state = store.state().clone();
        let files = segment_files(&segments_dir);
        let listed: Vec<&String> = state.segments.iter().map(|s| &s.file).collect();
        assert_eq!(files.keys().collect::<Vec<_>>(), listed, "sync {sync}");
        // A segment sealed by an earlier sync is byte for byte as it was.
        for (name, before) in &sealed {
            assert!(files.get(name) == Some(before), "sync {sync}: {name} changed");
        }
        // Each is named for its first and last message.
        for segment in &state.segments {
            let lines = gunzip(&segments_dir.join(&segment.file));
            let ts: Vec<f64> = lines
                .iter()
                .map(|l| Message::from_stored_line(l).unwrap().ts.as_f64())
                .collect();
            let (first, last) = (ts[0], ts[ts.len() - 1]);
            let ms = |t: f64| (t * 1000.0).round() as i64;
            assert_eq!(
                segment.file,
                format!("chat-{:013}-{:013}.jsonl.gz", ms(first), ms(last)),
                "sync {sync}"
            );
            assert_eq!(lines.len() as u64, segment.messages);
        }
        sealed = files;
    }
    let store = ChatStore::open_read_only(&chat_dir).unwrap();
    let state = store.state();
    // The full sync and the three large ones sealed; the small ones did not.
    assert_eq!(state.segments.len(), 4, "{:?}", state.segments);
    assert!(state.log_len > 0 && state.log_len < 64 << 10);
    assert_eq!(state.message_count, 2500 + 2000 + 1800 + 2200 + 10);
    assert!(state.segments.iter().all(|s| s.len >= 64 << 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_export_reads_across_segments() {
    let mut spec = PersonalitySpec::new("long", 2500);
    spec.tie_groups = TIES.to_vec();
    let fake = fake(FakeConfig::default(), vec![spec]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = config_with_segment_size(dir.path(), &fake.base_url(), "64KiB");
    let config = load(&config_path);
    let cancel = CancellationToken::new();
    run_pass(&config, &[], Selection::default(), &cancel)
        .await
        .unwrap();
    fake.append_messages("long", 2000);
    run_pass(&config, &[], Selection::default(), &cancel)
        .await
        .unwrap();
    let store = ChatStore::open_read_only(&config.storage.data_dir.join("long")).unwrap();
    assert_eq!(store.state().segments.len(), 2);

    // Messages are a minute apart, except in the tie groups: with a gap
    // just under a minute, the conversations of two or more messages are
    // exactly the tie groups.
    let out = dir.path().join("conversations.jsonl");
    let run = chatkeep(&config_path)
        .args(["export", "long", "--format", "conversations", "--gap", "59s"])
        .args(["--min-messages", "2", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let singles = 4500 - TIES.iter().map(|(_, size)| size).sum::<usize>();
    assert!(
        String::from_utf8_lossy(&run.stderr).contains(&format!(
            "wrote 3 conversations (114 messages; {singles} shorter than 2 messages left out) of long"
        )),
        "{}",
        text(&run)
    );
    let truth = fake.ground_truth("long");
    let id_of = |raw: &str| Message::from_stored_line(raw).unwrap().id.as_str().to_owned();
    let written = std::fs::read_to_string(&out).unwrap();
    let conversations: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(conversations.len(), TIES.len());
    for (conversation, (first, size)) in conversations.iter().zip(TIES) {
        assert_eq!(conversation["message_count"], size);
        assert_eq!(conversation["start"], conversation["end"]);
        let mut ids: Vec<String> = conversation["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        let messages: Vec<String> = conversation["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, messages);
        let mut want: Vec<String> = truth[first..first + size].iter().map(|m| id_of(m)).collect();
        ids.sort();
        want.sort();
        assert_eq!(ids, want);
    }

    // With the default 30 minutes, only the silences after the two tie
    // groups of more than 30 messages split the history.
    let run = chatkeep(&config_path)
        .args(["export", "long", "--format", "conversations"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let stdout = String::from_utf8(run.stdout).unwrap();
    let counts: Vec<u64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["message_count"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(counts, [1260, 2451 - 1260, 4500 - 2451]);

    // The conversation flags belong to that format only.
    let run = chatkeep(&config_path)
        .args(["export", "long", "--format", "json", "--gap", "5m"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--format conversations"));
}
