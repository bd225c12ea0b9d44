//! The history as it stands after commits that revise, mark, store late and
//! prepend: merged in order, durable, and cleaned up after a crash.

use std::fs;

use super::segments::tests::{files_in, gunzip};
use super::*;
use crate::message::Message;

fn msg(id: &str, ts: f64) -> Message {
    Message::from_stored_line(&format!(r#"{{"id":"{id}","ts":{ts},"reply":"v1"}}"#)).unwrap()
}

fn version(id: &str, ts: f64, v: u32) -> Message {
    Message::from_stored_line(&format!(r#"{{"id":"{id}","ts":{ts},"reply":"v{v}"}}"#)).unwrap()
}

fn ts(t: f64) -> Ts {
    Ts::new(t).unwrap()
}

/// (id, current reply, earlier versions, deleted mark) of every entry.
fn summary(store: &ChatStore) -> Vec<(String, String, usize, bool)> {
    store
        .history()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let value: serde_json::Value = serde_json::from_str(&e.message).unwrap();
            (
                value["id"].as_str().unwrap().to_owned(),
                value["reply"].as_str().unwrap().to_owned(),
                e.earlier().len(),
                e.deleted_upstream_at().is_some(),
            )
        })
        .collect()
}

fn row(id: &str, reply: &str, earlier: usize, deleted: bool) -> (String, String, usize, bool) {
    (id.to_owned(), reply.to_owned(), earlier, deleted)
}

fn append_all(store: &mut ChatStore, messages: &[Message]) {
    let mut commit = store.begin().unwrap();
    for m in messages {
        commit.append(m).unwrap();
    }
    commit.finish(None).unwrap();
}

#[test]
fn revisions_marks_and_late_messages_merge_into_the_history_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    append_all(
        &mut store,
        &[msg("a", 1.0), msg("b", 2.0), msg("c", 2.0), msg("d", 4.0)],
    );
    let before = summary(&store);

    let mut commit = store.begin().unwrap();
    commit.revise(ts(2.0), &version("c", 2.0, 2), "t1").unwrap();
    commit.late(&msg("x", 3.0)).unwrap();
    commit.late(&msg("y", 2.0)).unwrap();
    commit.mark_deleted(ts(1.0), &"a".into(), "t1").unwrap();
    commit.append(&msg("e", 5.0)).unwrap();
    let summary_of_commit = commit.finish(None).unwrap();
    assert_eq!(
        (
            summary_of_commit.added,
            summary_of_commit.late,
            summary_of_commit.revised,
            summary_of_commit.deleted
        ),
        (3, 2, 1, 1)
    );
    let want = vec![
        row("a", "v1", 0, true),
        row("b", "v1", 0, false),
        row("c", "v2", 1, false),
        row("y", "v1", 0, false),
        row("x", "v1", 0, false),
        row("d", "v1", 0, false),
        row("e", "v1", 0, false),
    ];
    assert_eq!(summary(&store), want);
    assert_ne!(before, want);
    let state = store.state();
    assert_eq!(state.message_count, 7);
    assert_eq!((state.revised(), state.deleted_upstream()), (1, 1));
    assert_eq!(state.overlay.as_ref().unwrap().late, 2);
    // The log itself never changed below its committed length: it holds
    // the first versions only, and no late message.
    let log: Vec<String> = store.lines().unwrap().map(Result::unwrap).collect();
    assert_eq!(log.len(), 5);
    assert!(log[2].contains("\"v1\""));

    // A second revision, and the mark lifted: the earlier versions stay.
    let mut commit = store.begin().unwrap();
    commit.revise(ts(2.0), &version("c", 2.0, 3), "t2").unwrap();
    commit.unmark(ts(1.0), &"a".into()).unwrap();
    commit.finish(None).unwrap();
    let reopened = ChatStore::open(dir.path()).unwrap();
    let entries: Vec<Entry> = reopened.history().unwrap().map(Result::unwrap).collect();
    let c = &entries[2];
    assert!(c.message.contains("\"v3\""));
    let earlier: Vec<(&str, &str)> = c
        .earlier()
        .iter()
        .map(|v| (v.message.as_str(), v.superseded_at.as_str()))
        .collect();
    assert_eq!(
        earlier,
        [
            (r#"{"id":"c","ts":2,"reply":"v1"}"#, "t1"),
            (r#"{"id":"c","ts":2,"reply":"v2"}"#, "t2")
        ]
    );
    assert!(entries[0].deleted_upstream_at().is_none());
    assert_eq!(reopened.state().deleted_upstream(), 0);
    // One overlay file: the one the state names.
    let overlays: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("overlay-"))
        .collect();
    assert_eq!(
        overlays,
        [reopened.state().overlay.as_ref().unwrap().file.clone()]
    );
}

#[test]
fn older_messages_become_a_first_segment_that_sorts_first_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    append_all(&mut store, &[msg("c", 30.0), msg("d", 40.0)]);
    let mut commit = store.begin().unwrap();
    commit.prepend(&msg("a", 10.0)).unwrap();
    commit.prepend(&msg("b", 30.0)).unwrap();
    commit.finish(None).unwrap();
    let state = store.state().clone();
    assert_eq!((state.oldest, state.message_count), (Some(ts(10.0)), 4));
    assert_eq!(state.head.as_ref().unwrap().ts, ts(40.0));
    assert_eq!(state.segments.len(), 1);
    let ids: Vec<String> = summary(&store).into_iter().map(|r| r.0).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    // `zcat segments/* chat.jsonl.gz`, in name order, reads the same.
    let mut by_name = files_in(&store.segments_dir());
    by_name.sort();
    let mut lines: Vec<String> = by_name
        .iter()
        .flat_map(|n| gunzip(&store.segments_dir().join(n)))
        .collect();
    lines.extend(gunzip(&store.log_path()));
    let ids_on_disk: Vec<String> = lines
        .iter()
        .map(|l| Message::from_stored_line(l).unwrap().id.as_str().to_owned())
        .collect();
    assert_eq!(ids_on_disk, ids);
    // Older still: placed before the first prepended segment.
    let mut commit = store.begin().unwrap();
    commit.prepend(&msg("z", 5.0)).unwrap();
    commit.finish(None).unwrap();
    let ids: Vec<String> = summary(&store).into_iter().map(|r| r.0).collect();
    assert_eq!(ids, ["z", "a", "b", "c", "d"]);
}

#[test]
fn the_recent_part_is_read_from_a_mark_near_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    let messages: Vec<Message> = (0..5_000).map(|n| msg(&format!("m{n}"), f64::from(n))).collect();
    append_all(&mut store, &messages);
    assert_eq!(store.state().log_marks.len(), 5, "one mark per member of 1000");
    let mut commit = store.begin().unwrap();
    commit
        .revise(ts(4_990.0), &version("m4990", 4_990.0, 2), "t")
        .unwrap();
    commit.late(&msg("late", 4_995.5)).unwrap();
    commit.finish(None).unwrap();

    let recent = store.recent(ts(4_990.0), 20).unwrap();
    assert_eq!(recent.complete_above, Some(ts(4_000.0)));
    assert_eq!(recent.entries.len(), 1_001);
    let key = |e: &Entry| e.key.clone().unwrap().id.as_str().to_owned();
    assert_eq!(key(&recent.entries[0]), "m4000");
    assert_eq!(key(recent.entries.last().unwrap()), "m4999");
    let revised = recent.entries.iter().find(|e| key(e) == "m4990").unwrap();
    assert!(revised.message.contains("\"v2\""));
    assert!(recent.entries.iter().any(|e| key(e) == "late"));
    // More than the last member holds: an earlier mark.
    let recent = store.recent(ts(4_990.0), 1_500).unwrap();
    assert_eq!(recent.complete_above, Some(ts(3_000.0)));
    // Below every mark: the whole history, complete everywhere.
    let recent = store.recent(ts(0.0), 1).unwrap();
    assert_eq!((recent.complete_above, recent.entries.len()), (None, 5_001));
    // The whole history still reads as one stream across members.
    assert_eq!(store.history().unwrap().count(), 5_001);
}

#[test]
fn files_a_cut_short_commit_left_unnamed_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    append_all(&mut store, &[msg("a", 1.0)]);
    let mut commit = store.begin().unwrap();
    commit.mark_deleted(ts(1.0), &"a".into(), "t").unwrap();
    commit.prepend(&msg("z", 0.5)).unwrap();
    commit.finish(None).unwrap();
    let kept_overlay = store.state().overlay.clone().unwrap().file;
    let kept_segment = store.state().segments[0].file.clone();
    // What a commit cut short before its state write leaves behind.
    for stray in [
        "overlay-9.jsonl.gz",
        "segments/chat-0000000000100-0000000000200.jsonl.gz",
    ] {
        fs::write(dir.path().join(stray), b"stray").unwrap();
    }
    fs::write(store.segments_dir().join(".prepend.tmp"), b"half").unwrap();
    let before = summary(&store);
    let store = ChatStore::open(dir.path()).unwrap();
    assert_eq!(summary(&store), before);
    let top: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("overlay-"))
        .collect();
    assert_eq!(top, [kept_overlay]);
    assert_eq!(files_in(&store.segments_dir()), [kept_segment]);
    // A reader never cleans up.
    fs::write(dir.path().join("overlay-9.jsonl.gz"), b"stray").unwrap();
    ChatStore::open_read_only(dir.path()).unwrap();
    assert!(dir.path().join("overlay-9.jsonl.gz").exists());
}

#[test]
fn a_reader_keeps_its_overlay_while_a_commit_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    append_all(&mut store, &[msg("a", 1.0), msg("b", 2.0)]);
    let mut commit = store.begin().unwrap();
    commit.revise(ts(1.0), &version("a", 1.0, 2), "t1").unwrap();
    commit.finish(None).unwrap();
    let reader = ChatStore::open_read_only(dir.path()).unwrap();
    let mut commit = store.begin().unwrap();
    commit.revise(ts(1.0), &version("a", 1.0, 3), "t2").unwrap();
    commit.mark_deleted(ts(2.0), &"b".into(), "t2").unwrap();
    commit.finish(None).unwrap();
    assert_eq!(
        summary(&reader),
        [row("a", "v2", 1, false), row("b", "v1", 0, false)]
    );
    assert_eq!(
        summary(&store),
        [row("a", "v3", 2, false), row("b", "v1", 0, true)]
    );
}

#[test]
fn a_format_2_state_is_read_and_upgraded_on_its_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    append_all(&mut store, &[msg("a", 1.0)]);
    let state_path = dir.path().join(STATE_FILE);
    let mut old: serde_json::Value = serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    let object = old.as_object_mut().unwrap();
    for key in [
        "log_marks",
        "overlay",
        "beginning",
        "tail_probed_at",
        "before_ts_inclusive",
    ] {
        object.remove(key);
    }
    object.insert("format".into(), 2.into());
    fs::write(&state_path, serde_json::to_vec(&old).unwrap()).unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    assert_eq!(store.state().format, 2);
    assert!(store.state().beginning.is_none());
    append_all(&mut store, &[msg("b", 2.0)]);
    assert_eq!(store.state().format, STATE_FORMAT);
    assert_eq!(summary(&store).len(), 2);
}

/// (id as JSON, current reply, earlier versions, deleted mark) of every
/// entry, and the overlay's records as written.
fn typed_summary(store: &ChatStore) -> Vec<(String, String, usize, bool)> {
    let mut history = store.history().unwrap();
    let rows = history
        .by_ref()
        .map(|e| {
            let e = e.unwrap();
            let value: serde_json::Value = serde_json::from_str(&e.message).unwrap();
            (
                value["id"].to_string(),
                value["reply"].as_str().unwrap().to_owned(),
                e.earlier().len(),
                e.deleted_upstream_at().is_some(),
            )
        })
        .collect();
    assert_eq!(history.anomalies().0, 0, "{:?}", history.anomalies().1);
    rows
}

fn overlay_text(store: &ChatStore) -> String {
    let file = &store.state().overlay.as_ref().unwrap().file;
    gunzip(&store.dir.join(file)).join("\n")
}

#[test]
fn an_overlay_from_before_typed_ids_still_finds_its_numeric_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    let number = Message::from_stored_line(r#"{"id":7,"ts":1,"reply":"v1"}"#).unwrap();
    let string = Message::from_stored_line(r#"{"id":"8","ts":1,"reply":"v1"}"#).unwrap();
    append_all(&mut store, &[number.clone(), string]);
    let mut commit = store.begin().unwrap();
    commit.mark_deleted(ts(1.0), &number.id, "t0").unwrap();
    commit.finish(None).unwrap();
    assert!(
        overlay_text(&store).contains(r#""id":7,"#),
        "{}",
        overlay_text(&store)
    );

    // What chatkeep wrote before format 4: the numeric id as a string.
    let overlay = store.state().overlay.clone().unwrap();
    let legacy = overlay_text(&store).replace(r#""id":7,"#, r#""id":"7","#);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, legacy.as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    fs::write(dir.path().join(&overlay.file), &bytes).unwrap();
    let state_path = dir.path().join(STATE_FILE);
    let mut old: serde_json::Value = serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
    old["format"] = 3.into();
    old["overlay"]["len"] = bytes.len().into();
    assert_eq!(old["head"]["ids"], serde_json::json!([7, "8"]));
    old["head"]["ids"] = serde_json::json!(["7", "8"]);
    fs::write(&state_path, serde_json::to_vec(&old).unwrap()).unwrap();

    let mut store = ChatStore::open(dir.path()).unwrap();
    assert!(store.state().overlay_ids_untyped);
    assert_eq!(
        store.state().head.as_ref().unwrap().ids,
        [MessageId::number("7"), MessageId::from("8")],
        "head ids are typed again from the log"
    );
    let want = vec![
        ("7".to_owned(), "v1".to_owned(), 0, true),
        ("\"8\"".to_owned(), "v1".to_owned(), 0, false),
    ];
    assert_eq!(typed_summary(&store), want);

    // A change to the numeric message retypes its record: one record, a number.
    let revised = Message::from_stored_line(r#"{"id":7,"ts":1,"reply":"v2"}"#).unwrap();
    let mut commit = store.begin().unwrap();
    commit.revise(ts(1.0), &revised, "t1").unwrap();
    commit.finish(None).unwrap();
    let text = overlay_text(&store);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(r#""id":7,"#), "{text}");
    assert!(
        store.state().overlay_ids_untyped,
        "kept: other records may still be strings"
    );
    assert_eq!(
        typed_summary(&store),
        vec![
            ("7".to_owned(), "v2".to_owned(), 1, true),
            ("\"8\"".to_owned(), "v1".to_owned(), 0, false),
        ]
    );
}

#[test]
fn a_new_store_keeps_a_string_record_off_the_numeric_message_of_the_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(dir.path()).unwrap();
    let number = Message::from_stored_line(r#"{"id":7,"ts":1,"reply":"v1"}"#).unwrap();
    let string = Message::from_stored_line(r#"{"id":"7","ts":1,"reply":"v1"}"#).unwrap();
    append_all(&mut store, &[number, string.clone()]);
    let mut commit = store.begin().unwrap();
    commit.mark_deleted(ts(1.0), &string.id, "t0").unwrap();
    commit.finish(None).unwrap();
    assert!(!store.state().overlay_ids_untyped);
    assert_eq!(
        typed_summary(&store),
        vec![
            ("7".to_owned(), "v1".to_owned(), 0, false),
            ("\"7\"".to_owned(), "v1".to_owned(), 0, true),
        ]
    );
}
