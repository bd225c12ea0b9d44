//! Promise 10 against the fake service: upstream is not append-only. Empty
//! answers lie, older history turns up below the oldest message, replies
//! are regenerated, messages deleted and chats reset; the backup converges
//! on what the service holds and keeps every version it ever saw.

mod common;

use chatkeep::config::Config;
use chatkeep::export::{self, ExportMeta, ExportOptions, Format};
use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use chatkeep::message::minify;
use chatkeep::store::ChatStore;
use common::*;

const NAME: &str = "drift";

/// A fake serving `messages` for [`NAME`], and a config with `sync` (the
/// body of a `[sync]` table) and the rate limit off.
async fn drifting(
    messages: usize,
    fake_config: FakeConfig,
    sync: &str,
) -> (FakeService, tempfile::TempDir, Config) {
    let fake = fake(fake_config, vec![PersonalitySpec::new(NAME, messages)]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("\n[sync]\n{sync}\n"));
    std::fs::write(&path, text).unwrap();
    let config = load(&path);
    (fake, dir, config)
}

fn export_with(config: &Config, options: ExportOptions) -> Vec<String> {
    let store = ChatStore::open_read_only(&config.storage.data_dir.join(NAME)).unwrap();
    let mut out = Vec::new();
    export::write_with(
        &store,
        &ExportMeta {
            shape_id: "",
            shape_name: NAME,
            display_name: None,
        },
        Format::Jsonl,
        &options,
        &mut out,
    )
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The fake's current history, as stored lines.
fn truth(fake: &FakeService) -> Vec<String> {
    fake.ground_truth(NAME).iter().map(|m| minify(m)).collect()
}

/// `chatkeep verify` with the config in `dir` passes.
fn verify_ok(dir: &std::path::Path) {
    let out = chatkeep(&dir.join("config.toml")).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn upstream_only() -> ExportOptions {
    ExportOptions {
        upstream_only: true,
        ..ExportOptions::default()
    }
}

fn with_revisions() -> ExportOptions {
    ExportOptions {
        revisions: true,
        ..ExportOptions::default()
    }
}

/// The `_chatkeep` note of an exported line, if any.
fn note(line: &str) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    value.get("_chatkeep").cloned()
}

fn id_of(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    value["id"].as_str().unwrap().to_owned()
}

/// Ids exported with a deletion mark.
fn marked(config: &Config) -> Vec<String> {
    export_with(config, ExportOptions::default())
        .iter()
        .filter(|l| note(l).is_some_and(|n| n.get("deleted_upstream_at").is_some()))
        .map(|l| id_of(l))
        .collect()
}

fn state(config: &Config) -> chatkeep::store::ChatState {
    ChatStore::open_read_only(&config.storage.data_dir.join(NAME))
        .unwrap()
        .state()
        .clone()
}

async fn sync_ok(config: &Config) -> chatkeep::sync::chat::ChatReport {
    let outcome = pass(config).await;
    assert!(outcome.all_ok(), "{:?}", outcome.reports);
    outcome.reports[0].chat.clone().expect("chat synced")
}

/// The newest `n` messages of the fake as a page body, newest first,
/// leaving out those at the positions (from the newest) in `without`.
fn page_without(fake: &FakeService, n: usize, without: &[usize]) -> Vec<u8> {
    let truth = fake.ground_truth(NAME);
    let newest: Vec<&String> = truth
        .iter()
        .rev()
        .take(n)
        .enumerate()
        .filter(|(i, _)| !without.contains(i))
        .map(|(_, m)| m)
        .collect();
    format!(
        "[{}]",
        newest.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_anywhere_in_a_first_walk_loses_nothing_and_costs_one_request() {
    const MESSAGES: usize = 3_000;
    // 3,000 messages at 50 new a page: 60 pages; [] answered to the 2nd,
    // the 31st and the 59th request (near the top, the middle, one page
    // before the end).
    let (fake, _dir, config) = drifting(MESSAGES, FakeConfig::default(), "").await;
    let glitches = [1usize, 30, 58];
    let mut bodies = vec![None; 60];
    for at in glitches {
        bodies[at] = Some(b"[]".to_vec());
    }
    fake.queue_chat_bodies(bodies);
    let report = sync_ok(&config).await;
    assert_complete(&export_lines(&config, NAME), &fake, NAME);
    assert_eq!(report.glitches, glitches.len() as u64);
    // The plain walk (pages, the empty answer at the end and its
    // confirmation), plus one request to ask again after each lie.
    let bound = MESSAGES.div_ceil(50) + 2 + glitches.len();
    let requests = fake.chat_requests(NAME);
    assert!(requests <= bound, "{requests} chat requests, bound {bound}");
    let state = state(&config);
    let beginning = state.beginning.expect("the beginning is confirmed");
    assert_eq!(beginning.oldest, state.oldest);
    assert!(state.tail_probed_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_answers_twice_in_a_row_are_caught_by_the_next_probe_below_the_oldest() {
    // A replica that answers [] twice at the same place fools the walk's
    // confirmation: the first sync stops there. The probe below the oldest
    // message, once tail_check has passed, finds the rest.
    let (fake, dir, config) = drifting(1_000, FakeConfig::default(), "tail_check = \"1d\"").await;
    let mut bodies = vec![None; 10];
    bodies[5] = Some(b"[]".to_vec());
    bodies[6] = Some(b"[]".to_vec());
    fake.queue_chat_bodies(bodies);
    sync_ok(&config).await;
    let partial = export_lines(&config, NAME).len();
    assert!(partial < 1_000, "the lie was not told ({partial} stored)");
    assert!(state(&config).beginning.is_some(), "believed after two answers");
    let config = tail_check_every_sync(dir.path());
    let report = sync_ok(&config).await;
    assert!(report.probed_tail);
    assert_eq!(report.older as usize, 1_000 - partial);
    assert_complete(&export_lines(&config, NAME), &fake, NAME);
}

/// Sets `tail_check = "0s"` in the config in `dir`, and loads it.
fn tail_check_every_sync(dir: &std::path::Path) -> Config {
    let path = dir.join("config.toml");
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("tail_check = \"1d\"", "tail_check = \"0s\"");
    std::fs::write(&path, edited).unwrap();
    load(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_history_inserted_upstream_is_found_after_tail_check_and_exported_first() {
    let (fake, dir, _) = drifting(300, FakeConfig::default(), "tail_check = \"1d\"").await;
    let config_path = dir.path().join("config.toml");
    let config = load(&config_path);
    sync_ok(&config).await;
    let probed = state(&config)
        .tail_probed_at
        .expect("the first walk reached the beginning");
    fake.insert_older(NAME, 120);
    fake.append_messages(NAME, 3);
    // Not due yet: a day has not passed since the beginning was confirmed.
    let report = sync_ok(&config).await;
    assert!(!report.probed_tail);
    assert_eq!(export_lines(&config, NAME).len(), 303);
    assert_eq!(state(&config).tail_probed_at, Some(probed));
    // Due at every sync.
    let config = tail_check_every_sync(dir.path());
    fake.clear_requests();
    let report = sync_ok(&config).await;
    assert!(report.probed_tail);
    assert_eq!(report.older, 120);
    let exported = export_lines(&config, NAME);
    assert_complete(&exported, &fake, NAME);
    // In order, the inserted ones first, in every export and in a snapshot.
    let truth = truth(&fake);
    assert_eq!(exported, truth);
    let state = state(&config);
    assert!(state.tail_probed_at > Some(probed));
    assert_eq!(state.beginning.as_ref().unwrap().oldest, state.oldest);
    for command in ["archive", "verify"] {
        let out = chatkeep(&config_path).arg(command).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{command}: {}", text(&out));
    }
    let out = chatkeep(&config_path).arg("status").output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("drift: beginning of history confirmed ")
            && shown.contains("last probed below the oldest message"),
        "{shown}"
    );
    // Nothing more below: one request per probe, none when not due.
    fake.clear_requests();
    sync_ok(&config).await;
    assert_eq!(fake.chat_requests(NAME), 2, "the first page and one probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerated_replies_on_the_first_page_are_kept_as_revisions_and_exported_current() {
    let (fake, _dir, config) = drifting(200, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    let before = export_lines(&config, NAME);
    let newest = fake.regenerate_nth_newest(NAME, 0);
    let fourth = fake.regenerate_nth_newest(NAME, 3);
    fake.regenerate_nth_newest(NAME, 3);
    // Outside the first page: not seen by a sync.
    let outside = fake.regenerate_nth_newest(NAME, 120);
    fake.append_messages(NAME, 2);
    fake.clear_requests();
    let report = sync_ok(&config).await;
    assert_eq!((report.new_messages, report.revised), (2, 2));
    assert_eq!(fake.chat_requests(NAME), 1, "the refresh costs nothing extra");
    let current = export_lines(&config, NAME);
    let truth = truth(&fake);
    for (got, want) in current.iter().zip(&truth) {
        if id_of(want) != outside {
            assert_eq!(got, want);
        }
    }
    assert_eq!(current.len(), 202);
    let old_outside = before.iter().find(|l| id_of(l) == outside).unwrap();
    assert!(
        current.contains(old_outside),
        "outside the range: as first stored"
    );
    // Every earlier version, just before its current one.
    let all = export_with(&config, with_revisions());
    assert_eq!(all.len(), 202 + 2);
    let at = all.iter().position(|l| id_of(l) == fourth).unwrap();
    let original = before.iter().find(|l| id_of(l) == fourth).unwrap();
    let earlier: serde_json::Value = serde_json::from_str(&all[at]).unwrap();
    assert!(earlier["_chatkeep"]["superseded_at"].is_string());
    let mut earlier = earlier;
    earlier.as_object_mut().unwrap().remove("_chatkeep");
    assert_eq!(
        earlier,
        serde_json::from_str::<serde_json::Value>(original).unwrap()
    );
    assert_eq!(id_of(&all[at + 1]), fourth);
    assert!(note(&all[at + 1]).is_none(), "the current version is as sent");
    let status = state(&config);
    assert_eq!((status.revised(), status.message_count), (2, 202));
    assert!(current.iter().any(|l| id_of(l) == newest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wider_refresh_catches_regenerations_deeper_in_the_history() {
    let (fake, _dir, config) = drifting(400, FakeConfig::default(), "refresh = 150").await;
    sync_ok(&config).await;
    let deep = fake.regenerate_nth_newest(NAME, 140);
    let deeper = fake.regenerate_nth_newest(NAME, 300);
    fake.clear_requests();
    let report = sync_ok(&config).await;
    assert_eq!(report.revised, 1);
    assert!(fake.chat_requests(NAME) <= 4, "150 messages take 3 pages");
    let current = export_lines(&config, NAME);
    let truth = truth(&fake);
    let line = |lines: &[String], id: &str| lines.iter().find(|l| id_of(l) == id).cloned();
    assert_eq!(line(&current, &deep), line(&truth, &deep));
    assert_ne!(
        line(&current, &deeper),
        line(&truth, &deeper),
        "outside the range"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_upstream_are_marked_inside_the_refreshed_range_and_nothing_is_removed() {
    let (fake, _dir, config) = drifting(200, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    let newest = fake.delete_nth_newest(NAME, 0);
    let tenth = fake.delete_nth_newest(NAME, 9);
    // Far below the first page: a sync cannot tell it from the rest.
    let deep = fake.delete_nth_newest(NAME, 150);
    let report = sync_ok(&config).await;
    assert_eq!(report.deleted, 2);
    let mut marked_ids = marked(&config);
    marked_ids.sort();
    let mut want = vec![newest.clone(), tenth.clone()];
    want.sort();
    assert_eq!(marked_ids, want);
    let all = export_with(&config, ExportOptions::default());
    assert_eq!(all.len(), 200, "nothing removed");
    assert!(all.iter().any(|l| id_of(l) == deep));
    // What the service shows, but for the one too deep to see.
    let shown = export_with(&config, upstream_only());
    assert_eq!(shown.len(), 198);
    // The JSON export's count and range say what it holds, either way.
    for (options, count) in [(ExportOptions::default(), 200), (upstream_only(), 198)] {
        let store = ChatStore::open_read_only(&config.storage.data_dir.join(NAME)).unwrap();
        let meta = ExportMeta {
            shape_id: "",
            shape_name: NAME,
            display_name: None,
        };
        let mut out = Vec::new();
        export::write_with(&store, &meta, Format::Json, &options, &mut out).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let messages = doc["messages"].as_array().unwrap();
        assert_eq!(
            (doc["message_count"].as_u64(), messages.len()),
            (Some(count), count as usize)
        );
        let when = |m: &serde_json::Value| {
            chatkeep::message::Ts::new(m["ts"].as_f64().unwrap())
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(doc["date_range"]["earliest"], when(&messages[0]));
        assert_eq!(doc["date_range"]["latest"], when(messages.last().unwrap()));
    }
    let state = state(&config);
    assert_eq!((state.message_count, state.deleted_upstream()), (200, 2));
    // A second sync marks nothing twice.
    let report = sync_ok(&config).await;
    assert_eq!(report.deleted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_history_shorter_than_a_page_every_deletion_is_marked() {
    let (fake, _dir, config) = drifting(30, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    let oldest = fake.delete_nth_newest(NAME, 29);
    let newest = fake.delete_nth_newest(NAME, 0);
    assert_eq!(sync_ok(&config).await.deleted, 2);
    let mut got = marked(&config);
    got.sort();
    let mut want = vec![oldest, newest];
    want.sort();
    assert_eq!(got, want);
    assert_complete(&export_with(&config, upstream_only()), &fake, NAME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_chat_reset_new_messages_are_backed_up_and_the_old_ones_kept() {
    let (fake, dir, config) = drifting(300, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    fake.reset_chat(NAME);
    fake.append_messages(NAME, 7);
    let report = sync_ok(&config).await;
    assert_eq!(report.new_messages, 7);
    assert_eq!(report.deleted, 50, "the newest page of what was stored");
    let all = export_with(&config, ExportOptions::default());
    assert_eq!(all.len(), 307);
    assert_eq!(export_with(&config, upstream_only()).len(), 257);
    // The new ones are what the service shows now.
    let truth = truth(&fake);
    assert_eq!(all[300..], truth[..]);
    verify_ok(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_turns_up_late_below_the_newest_is_stored_in_its_place() {
    let (fake, _dir, config) = drifting(120, FakeConfig::default(), "").await;
    // A lagging replica leaves the 5th newest out of the first page.
    let lagging = page_without(&fake, 51, &[4]);
    fake.queue_chat_bodies([Some(lagging)]);
    sync_ok(&config).await;
    assert_eq!(export_lines(&config, NAME).len(), 119);
    let report = sync_ok(&config).await;
    assert_eq!((report.new_messages, report.late), (1, 1));
    let exported = export_lines(&config, NAME);
    let truth = truth(&fake);
    assert_eq!(exported, truth, "in its place");
    assert_eq!(state(&config).message_count, 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_walk_costs_a_page_per_page_size_with_the_larger_limit_and_stays_bounded_without() {
    const MESSAGES: usize = 2_000;
    let (fake, _dir, config) = drifting(MESSAGES, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    let honoured = fake.chat_requests(NAME);
    assert!(honoured <= MESSAGES.div_ceil(50) + 2, "{honoured} requests");
    assert_complete(&export_lines(&config, NAME), &fake, NAME);

    let refusing = FakeConfig {
        reject_limit_above: Some(50),
        ..FakeConfig::default()
    };
    let (fake, _dir, config) = drifting(MESSAGES, refusing, "").await;
    sync_ok(&config).await;
    // One refused request, then 50 a page of which one is the boundary
    // message seen before: what walks cost before the larger limit.
    let refused = fake.chat_requests(NAME);
    let bound = 1 + 1 + (MESSAGES - 50).div_ceil(49) + 2;
    assert!(refused <= bound, "{refused} requests, bound {bound}");
    assert_complete(&export_lines(&config, NAME), &fake, NAME);
    assert!(state(&config).larger_limit_refused);
    // Later syncs remember and never ask for 51 again.
    fake.append_messages(NAME, 120);
    fake.clear_requests();
    sync_ok(&config).await;
    let requests = fake.requests();
    assert!(
        requests.iter().filter(|r| r.is_chat).all(|r| r.status == 200),
        "{requests:?}"
    );
    assert_complete(&export_lines(&config, NAME), &fake, NAME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_new_messages_cost_at_most_ceil_k_plus_one_over_the_page_for_any_k() {
    let (fake, _dir, config) = drifting(500, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    for k in [1usize, 49, 50, 51, 2_450, 2_451, 5_000] {
        fake.append_messages(NAME, k);
        fake.clear_requests();
        let report = sync_ok(&config).await;
        assert_eq!(report.new_messages as usize, k);
        let requests = fake.chat_requests(NAME);
        assert!(
            requests <= (k + 1).div_ceil(50),
            "{k} new messages took {requests} chat requests"
        );
    }
    assert_complete(&export_lines(&config, NAME), &fake, NAME);
}

/// Runs `chatkeep audit [args] --json`: the exit code and the report.
fn audit(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = chatkeep(&dir.join("config.toml"))
        .arg("audit")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), report)
}

fn counts(report: &serde_json::Value) -> [u64; 5] {
    let row = &report["personalities"][0];
    [
        "missing",
        "changed",
        "gone_upstream",
        "back_upstream",
        "hole_count",
    ]
    .map(|k| row[k].as_u64().unwrap())
}

/// A backup of 1,000 messages, and an audit (with `args`) that walks the
/// newest 5 pages before the service breaks the contract for good: it
/// fails, its walk left in audit.spool. Then the service behaves again.
async fn audit_cut_short(args: &[&str]) -> (FakeService, tempfile::TempDir, Config, serde_json::Value) {
    let (fake, dir, config) = drifting(1_000, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    let mut bodies = vec![None; 5];
    bodies.extend((0..10).map(|_| Some(b"{\"not\":\"a page\"}".to_vec())));
    fake.queue_chat_bodies(bodies);
    let (code, report) = audit(dir.path(), args);
    assert_eq!(code, Some(1), "{report}");
    fake.queue_chat_bodies([]);
    (fake, dir, config, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_finds_changes_below_the_refreshed_range_and_repair_adopts_them() {
    let (fake, dir, config) = drifting(300, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    let changed = fake.regenerate_nth_newest(NAME, 200);
    let gone = fake.delete_nth_newest(NAME, 150);
    let report = sync_ok(&config).await;
    assert_eq!((report.revised, report.deleted), (0, 0), "too deep for a sync");
    let before = export_lines(&config, NAME);

    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(counts(&report), [0, 1, 1, 0, 0]);
    assert_eq!(report["personalities"][0]["upstream"], 299);
    assert_eq!(
        export_lines(&config, NAME),
        before,
        "an audit alone changes nothing"
    );

    let (code, report) = audit(dir.path(), &["--repair"]);
    assert_eq!(code, Some(1), "it differed: {report}");
    assert_eq!(report["personalities"][0]["repaired"]["revised"], 1);
    assert_eq!(marked(&config), [gone]);
    assert_complete(&export_with(&config, upstream_only()), &fake, NAME);
    let all = export_with(&config, with_revisions());
    assert_eq!(all.len(), 301, "the earlier version is kept");
    assert_eq!(all.iter().filter(|l| id_of(l) == changed).count(), 2);

    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, counts(&report)), (Some(0), [0; 5]));
    let out = chatkeep(&dir.path().join("config.toml"))
        .arg("audit")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("personality") && table.contains("same"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_repairs_the_hole_a_lying_walk_left_and_clears_marks_it_set_wrongly() {
    let (fake, dir, config) = drifting(500, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    fake.append_messages(NAME, 300);
    // The third page of the next walk says [] twice: believed, it ends the
    // walk as if the history began there, and the newest page of what was
    // stored looks deleted.
    fake.queue_chat_bodies([None, None, Some(b"[]".to_vec()), Some(b"[]".to_vec())]);
    let report = sync_ok(&config).await;
    assert_eq!(
        report.new_messages, 101,
        "51 on the first page, 50 more on the second"
    );
    assert_eq!(report.deleted, 50);

    let (code, report) = audit(dir.path(), &["--repair"]);
    assert_eq!(code, Some(1));
    assert_eq!(counts(&report), [199, 0, 0, 50, 1]);
    let hole = &report["personalities"][0]["holes"][0];
    assert_eq!(hole["messages"], 199);
    assert!(marked(&config).is_empty());
    let exported = export_lines(&config, NAME);
    assert_complete(&exported, &fake, NAME);
    let truth = truth(&fake);
    assert_eq!(exported, truth, "in order");
    verify_ok(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_after_a_chat_reset_marks_the_whole_old_history_gone() {
    let (fake, dir, config) = drifting(400, FakeConfig::default(), "").await;
    sync_ok(&config).await;
    fake.reset_chat(NAME);
    fake.append_messages(NAME, 5);
    sync_ok(&config).await;
    let (code, report) = audit(dir.path(), &["--repair"]);
    assert_eq!(code, Some(1));
    assert_eq!(counts(&report), [0, 0, 350, 0, 0]);
    assert_eq!(report["personalities"][0]["marked_gone"], 50);
    assert_eq!(marked(&config).len(), 400);
    assert_eq!(export_with(&config, ExportOptions::default()).len(), 405);
    assert_complete(&export_with(&config, upstream_only()), &fake, NAME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_audit_resumes_from_its_checkpoint() {
    // The sixth page breaks the contract however often it is asked for.
    let (fake, dir, config, report) = audit_cut_short(&[]).await;
    assert!(
        report["personalities"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON array")
    );
    let store = ChatStore::open_read_only(&config.storage.data_dir.join(NAME)).unwrap();
    assert!(store.has_pending_audit());
    fake.clear_requests();
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, counts(&report)), (Some(0), [0; 5]), "{report}");
    assert_eq!(report["personalities"][0]["resumed"], true);
    assert_eq!(report["personalities"][0]["upstream"], 1_000);
    // 20 pages in all, 5 done before: 15 more, the last ones confirming
    // the beginning.
    assert!(fake.chat_requests(NAME) <= 17, "{}", fake.chat_requests(NAME));
    assert!(
        !ChatStore::open_read_only(&config.storage.data_dir.join(NAME))
            .unwrap()
            .has_pending_audit()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_interrupted_before_a_sync_walks_again_and_keeps_what_the_sync_stored() {
    // Found by the campaign with audits killed midway: an audit cut short
    // keeps the pages it
    // walked in audit.spool, and syncs go on beside it. What those pages
    // say is as old as the interrupted run; the store may know better.
    let (fake, dir, config, _) = audit_cut_short(&["--repair"]).await;
    // Meanwhile, upstream: the 4th newest reply is regenerated and the 8th
    // newest message deleted; the next sync sees both (first page).
    let regenerated = fake.regenerate_nth_newest(NAME, 3);
    let deleted = fake.delete_nth_newest(NAME, 7);
    let report = sync_ok(&config).await;
    assert_eq!((report.revised, report.deleted), (1, 1));
    assert_complete(&export_with(&config, upstream_only()), &fake, NAME);
    // The next audit must not take its old pages for what the service
    // holds now: the sync committed since they were walked, so it walks
    // again from the top.
    let (code, report) = audit(dir.path(), &["--repair"]);
    assert_eq!(report["personalities"][0]["resumed"], false, "{report}");
    let current = export_with(&config, upstream_only());
    let truth = truth(&fake);
    let line = |lines: &[String], id: &str| lines.iter().find(|l| id_of(l) == id).cloned();
    assert_eq!(
        line(&current, &regenerated),
        line(&truth, &regenerated),
        "the regenerated reply went back to its old version ({code:?}: {report})"
    );
    assert_eq!(
        marked(&config),
        [deleted],
        "the deleted message lost its mark ({report})"
    );
    // And a fresh audit finds the backup the same as the service.
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, counts(&report)), (Some(0), [0; 5]), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_interrupted_before_a_chat_reset_walks_again_and_finds_the_history_as_it_is_now() {
    // As above, with a reset between the interrupted audit and its
    // resumption; the campaign met this with audits killed midway.
    let (fake, dir, config, _) = audit_cut_short(&["--repair"]).await;
    fake.reset_chat(NAME);
    fake.append_messages(NAME, 5);
    sync_ok(&config).await;
    // 120 below the 5 new ones, a minute apart: among the newest two hours
    // of the old history, inside the range the audit's old pages cover. The
    // next sync's first page (51) brings 46 of them, stored late; only an
    // audit sees the other 74.
    fake.insert_older(NAME, 120);
    let report = sync_ok(&config).await;
    assert_eq!(report.late, 46);
    let (_, report) = audit(dir.path(), &["--repair"]);
    assert_eq!(
        report["personalities"][0]["resumed"], false,
        "walked again: {report}"
    );
    // What the service holds, and the old history all marked gone.
    assert_complete(&export_with(&config, upstream_only()), &fake, NAME);
    assert_eq!(marked(&config).len(), 1_000, "{report}");
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, counts(&report)), (Some(0), [0; 5]), "{report}");
}
