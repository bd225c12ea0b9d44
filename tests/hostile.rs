//! Answers that break the service's contract, served over loopback to the
//! real binary: each is rejected with a clear log line, nothing of it
//! reaches the store, the walk's checkpoint survives, and the next good run
//! resumes from it and ends with exactly the ground truth.

mod common;

use std::path::Path;

use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use chatkeep::store::ChatStore;
use common::*;

const NAME: &str = "host";
/// Messages stored by the first, good run.
const HISTORY: usize = 200;
/// Messages added upstream before the hostile run: five pages of walk.
const NEW: usize = 240;
/// Good pages of that walk before the hostile one.
const GOOD_PAGES: usize = 3;
/// Marks every hostile message, to check that none reaches a spool.
const MARK: &str = "EVIL";

fn message(id: &str, ts: &str) -> String {
    format!(r#"{{"id":"{id}","message":"{MARK}","reply":"r","ts":{ts}}}"#)
}

fn page(messages: &[String]) -> Vec<u8> {
    format!("[{}]", messages.join(",")).into_bytes()
}

/// Runs `chatkeep sync` and returns its exit code and all its output.
fn sync(config: &Path) -> (Option<i32>, String) {
    let out = chatkeep(config).arg("sync").output().unwrap();
    (out.status.code(), text(&out))
}

fn spool_bytes(data: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(data.join(NAME)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "spool") {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}

/// The walk after the first page is answered with `hostile`; the run must
/// fail saying `expect`, keep the store and the checkpoint, and the next
/// run must finish the walk from there.
async fn rejected_without_touching_the_store(hostile: Vec<u8>, expect: &str) {
    let fake: FakeService = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, HISTORY)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    let data = config.storage.data_dir.clone();
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
    let before = export_lines(&config, NAME);
    assert_eq!(before.len(), HISTORY);

    fake.append_messages(NAME, NEW);
    // The first pages are good and spooled; the next is hostile, and stays
    // hostile however often it is asked for (5 retries by default).
    let mut bodies = vec![None; GOOD_PAGES];
    bodies.extend((0..8).map(|_| Some(hostile.clone())));
    fake.queue_chat_bodies(bodies);
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(1), "the hostile answer must fail the sync: {out}");
    assert!(out.contains(expect), "no clear message `{expect}` in:\n{out}");
    assert!(
        out.contains("nothing of it was stored"),
        "no log line saying the page was not stored:\n{out}"
    );
    assert_eq!(
        export_lines(&config, NAME),
        before,
        "the committed history changed"
    );
    let store = ChatStore::open_read_only(&data.join(NAME)).unwrap();
    assert!(store.has_pending_walk(), "the walk's checkpoint is gone");
    let spooled = spool_bytes(&data);
    assert!(
        !String::from_utf8_lossy(&spooled).contains(MARK),
        "a hostile message reached the spool"
    );

    fake.queue_chat_bodies([]);
    fake.clear_requests();
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("resuming an interrupted walk"), "{out}");
    // A whole walk over the 240 new messages takes 5 pages, 3 of which are
    // spooled: 2 are left, and a resumed walk may look at the top once more
    // for messages that arrived meanwhile.
    let requests = fake.chat_requests(NAME);
    assert!(
        requests <= 3,
        "the good run did not resume from the checkpoint ({requests} chat requests)"
    );
    assert_complete(&export_lines(&config, NAME), &fake, NAME);
}

macro_rules! hostile {
    ($($test:ident: $body:expr, $expect:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            rejected_without_touching_the_store($body, $expect).await;
        }
    )*};
}

hostile! {
    a_message_without_id: page(&[r#"{"message":"EVIL","ts":1.5}"#.to_owned()]), "message 0 has no `id`";
    a_message_without_ts: page(&[message("ok", "1.5"), r#"{"id":"EVIL2"}"#.to_owned()]), "message 1 has no `ts`";
    a_message_with_an_object_as_id: page(&[r#"{"id":{"EVIL":1},"ts":1.5}"#.to_owned()]), "neither a string nor a number";
    a_ts_given_as_a_string: page(&[message("s", "\"1712345678.1\"")]), "not a number of seconds (got \"1712345678.1\")";
    a_nan_ts_which_is_not_json: page(&[message("nan", "NaN")]), "not whole JSON";
    a_ts_that_overflows_to_infinity: page(&[message("inf", "1e999")]), "not a number of seconds (got 1e999)";
    a_negative_ts: page(&[message("neg", "-5")]), "not a number of seconds (got -5)";
    a_page_that_is_not_an_array: br#"{"items":[{"id":"EVIL","ts":1}]}"#.to_vec(), "not a JSON array of messages";
    // Pages are asked for with one more than the page size of 50.
    a_page_larger_than_the_limit: page(&(0..52).map(|i| message(&format!("big{i}"), &format!("{}.5", i + 1))).collect::<Vec<_>>()),
        "asked for at most 51 messages, got 52";
    a_page_of_messages_newer_than_before_ts: page(&[message("future", "4000000000.5")]), "asked for messages before ts";
    a_50_mib_body: {
        let mut body = br#"[{"id":"EVIL","ts":1,"pad":""#.to_vec();
        body.resize(50 * 1024 * 1024, b'x');
        body.extend_from_slice(b"\"}]");
        body
    }, "larger than 32 MiB";
    deeply_nested_json: {
        let depth = 100_000;
        let mut body = br#"[{"id":"EVIL","ts":1.5,"x":"#.to_vec();
        body.extend(std::iter::repeat_n(b'[', depth));
        body.extend(std::iter::repeat_n(b']', depth));
        body.extend_from_slice(b"}]");
        body
    }, "nested deeper than 128 levels";
    invalid_utf8: {
        let mut body = br#"[{"id":"EVIL","ts":1.5,"message":"caf"#.to_vec();
        body.extend_from_slice(&[0xc3, 0x28, 0xff]);
        body.extend_from_slice(b"\"}]");
        body
    }, "not UTF-8";
}

/// Stored messages keep every field as received, whatever its type; no
/// export may then trip over a field that is not the text it usually is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_export_format_survives_fields_of_unexpected_types() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, 10)]).await;
    let odd = [
        r#"{"id":"n","ts":4000000000.1,"message":123,"reply":{"parts":["a",{"b":null}]},"attachment_url":7,"voice_reply_url":false}"#,
        r#"{"id":"m","ts":4000000000.2,"message":null,"reply":["x"],"voice_reply_url":{"u":"v"}}"#,
    ];
    for raw in odd {
        fake.push_raw_message(NAME, raw);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let (code, out) = sync(&config);
    assert_eq!(code, Some(0), "{out}");
    assert_complete(&export_lines(&load(&config), NAME), &fake, NAME);
    for format in ["json", "jsonl", "markdown"] {
        let out = chatkeep(&config)
            .args(["export", NAME, "--format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}: {}", text(&out));
    }
    let out = chatkeep(&config)
        .args(["export", NAME, "--format", "markdown"])
        .output()
        .unwrap();
    let markdown = String::from_utf8_lossy(&out.stdout);
    // Not text: shown as the JSON received.
    assert!(markdown.contains("**You:** 123"), "{markdown}");
    assert!(markdown.contains(r#"{"parts":["a",{"b":null}]}"#), "{markdown}");
}

/// A message dated `ts_text` (far in the future, or a little ahead of the
/// clock) pushed on top of the history, then more than a page of ordinary
/// new messages dated below it: every one is backed up, in order, and the
/// sync warns about the date.
async fn a_message_ahead_of_the_clock_does_not_blind_later_syncs(ts_text: &str) {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, 100)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    fake.push_raw_message(
        NAME,
        &format!(r#"{{"id":"ahead","message":"m","reply":"r","ts":{ts_text}}}"#),
    );
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ahead of this machine's clock"),
        "no warning:\n{out}"
    );
    // Ordinary messages arrive, dated now-ish: below the one ahead.
    let now = chrono::Utc::now().timestamp();
    for k in 0..60 {
        fake.insert_raw_message(
            NAME,
            &format!(
                r#"{{"id":"new-{k}","message":"m","reply":"r","ts":{}.5}}"#,
                now - 600 + k
            ),
        );
    }
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("chat 60 new"), "{out}");
    assert_complete(&export_lines(&config, NAME), &fake, NAME);
    let out = chatkeep(&config_path).arg("verify").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ts_of_1e308_does_not_blind_later_syncs() {
    a_message_ahead_of_the_clock_does_not_blind_later_syncs("1e308").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ts_an_hour_ahead_does_not_hide_the_messages_of_that_hour() {
    let hour_ahead = chrono::Utc::now().timestamp() + 3600;
    a_message_ahead_of_the_clock_does_not_blind_later_syncs(&format!("{hour_ahead}.25")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_text_with_a_newline_and_ansi_escapes_reaches_no_log_line_terminal_or_status_raw() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, HISTORY)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
    fake.append_messages(NAME, NEW);
    // The second page of the next walk names a message newer than asked
    // for: the error quotes its id, which forges a log line and paints.
    let forged =
        "x\\n2026-01-01T00:00:00.000000Z  INFO chatkeep: all good\\u001b[31mRED\\u001b]0;title\\u0007";
    let evil = message(forged, "4000000000.5");
    let mut bodies = vec![None];
    bodies.extend((0..8).map(|_| Some(page(std::slice::from_ref(&evil)))));
    fake.queue_chat_bodies(bodies);
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(1), "{out}");
    let status = chatkeep(&config_path).arg("status").output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    for (what, shown) in [("sync output and log", &out), ("status", &status)] {
        assert!(
            shown.contains("2026-01-01T00:00:00.000000Z"),
            "{what} does not name the id:\n{shown}"
        );
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{what} carries escapes:\n{shown}"
        );
        assert!(
            !shown
                .lines()
                .any(|l| l.starts_with("2026-01-01T00:00:00.000000Z")),
            "{what} has a forged line:\n{shown}"
        );
    }
}

/// `7` and `"7"` are two messages to the service, sharing a `ts` here (one
/// page, one tie group): both are backed up, and when one goes upstream
/// only that one is marked gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_id_and_a_string_id_of_the_same_text_stay_two_messages() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, 100)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    let ts = "4000000000.5";
    fake.push_raw_message(
        NAME,
        &format!(r#"{{"id":7,"message":"number","reply":"r","ts":{ts}}}"#),
    );
    fake.push_raw_message(
        NAME,
        &format!(r#"{{"id":"7","message":"string","reply":"r","ts":{ts}}}"#),
    );
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
    assert_complete(&export_lines(&config, NAME), &fake, NAME);

    fake.delete_nth_newest(NAME, 0);
    let kept = if fake.ground_truth(NAME).iter().any(|m| m.contains(r#""id":7,"#)) {
        "number"
    } else {
        "string"
    };
    let gone = if kept == "number" { "string" } else { "number" };
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
    let exported = export_lines(&config, NAME);
    let line = |text: &str| {
        exported
            .iter()
            .find(|l| l.contains(&format!(r#""message":"{text}""#)))
            .unwrap_or_else(|| panic!("the {text} message is not in the export"))
            .clone()
    };
    assert!(line(gone).contains("deleted_upstream_at"), "{}", line(gone));
    assert!(!line(kept).contains("deleted_upstream_at"), "{}", line(kept));
    let out = chatkeep(&config_path).arg("verify").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// A history that seems never to end (here: longer than the bound allows)
/// stops the walk at `[storage] max_walk_spool`, with an error naming the
/// key, before the spool outgrows it by more than a page; the next run at
/// that bound sends no chat request; raised, the walk goes on from there and
/// nothing fetched is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_that_does_not_end_stops_at_max_walk_spool_and_keeps_what_it_has() {
    const LONG: usize = 8_000;
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, LONG)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    let text = std::fs::read_to_string(&config_path).unwrap();
    let bounded = text.replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nmax_walk_spool = \"1MiB\"",
    );
    std::fs::write(&config_path, &bounded).unwrap();

    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("max_walk_spool"), "no error naming the key:\n{out}");
    let spooled = spool_bytes(&config.storage.data_dir);
    let page_bound = 600 * 1024;
    assert!(
        (1 << 20..(1 << 20) + page_bound).contains(&spooled.len()),
        "spool of {} bytes",
        spooled.len()
    );
    let asked = fake.chat_requests(NAME);
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("max_walk_spool"), "{out}");
    assert_eq!(
        fake.chat_requests(NAME),
        asked,
        "a run at the bound asks for no page"
    );
    assert_eq!(
        spool_bytes(&config.storage.data_dir),
        spooled,
        "the spool is kept as it was"
    );

    std::fs::write(&config_path, &text).unwrap();
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
    assert_complete(&export_lines(&config, NAME), &fake, NAME);
}

/// A listing that names more personalities than `[discover]
/// max_personalities` is refused whole, with an error naming the key; the
/// configured personality is synced all the same and no listed one gets a
/// directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_more_personalities_than_max_personalities_is_refused_and_the_configured_ones_still_sync()
 {
    let specs = (0..5)
        .map(|i| PersonalitySpec::new(format!("p{i}"), 10))
        .collect();
    let fake = fake(FakeConfig::default(), specs).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &["p0"], 10_000.0, "");
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str("\n[discover]\nowned = true\nmax_personalities = 3\n");
    std::fs::write(&config_path, &text).unwrap();
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("more than [discover] max_personalities = 3"),
        "{out}"
    );
    let config = load(&config_path);
    assert_complete(&export_lines(&config, "p0"), &fake, "p0");
    let dirs: Vec<String> = std::fs::read_dir(&config.storage.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('p'))
        .collect();
    assert_eq!(dirs, ["p0"]);

    text = text.replace("max_personalities = 3", "max_personalities = 5");
    std::fs::write(&config_path, &text).unwrap();
    let (code, out) = sync(&config_path);
    assert_eq!(code, Some(0), "{out}");
}

/// When every message is dated ahead of the clock (a new chat, or this
/// machine's clock behind the service's), there is no head; later syncs
/// still compare with what is stored instead of storing it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_dated_wholly_ahead_of_the_clock_is_stored_once() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, 0)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    let ahead = chrono::Utc::now().timestamp() + 7200;
    for k in 0..3 {
        fake.push_raw_message(
            NAME,
            &format!(
                r#"{{"id":"f{k}","message":"m","reply":"r","ts":{}.5}}"#,
                ahead + k
            ),
        );
    }
    for _ in 0..3 {
        let (code, out) = sync(&config_path);
        assert_eq!(code, Some(0), "{out}");
        assert_complete(&export_lines(&config, NAME), &fake, NAME);
    }
    let store = ChatStore::open_read_only(&config.storage.data_dir.join(NAME)).unwrap();
    assert_eq!(store.state().message_count, 3);
    let out = chatkeep(&config_path).arg("verify").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}
