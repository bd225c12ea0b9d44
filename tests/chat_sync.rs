//! The chat history promises, checked against the fake service over real
//! loopback HTTP: nothing lost or doubled, byte-faithful, incremental.

mod common;

use chatkeep::fake::{BeforeTs, FakeConfig, PageOrder, PersonalitySpec};
use common::*;

const HISTORY: usize = 700;
const TIE_SIZES: [usize; 4] = [2, 49, 50, 51];

/// A history with tie groups of `size` straddling several page boundaries.
fn tied(name: &str, size: usize) -> PersonalitySpec {
    let mut spec = PersonalitySpec::new(name, HISTORY);
    spec.tie_groups = [50, 200, 350, 500]
        .iter()
        .map(|from_top| (HISTORY - from_top - size / 2, size))
        .collect();
    spec.extra_fields = true;
    spec
}

async fn complete_and_duplicate_free(before_ts: BeforeTs, order: PageOrder) {
    let names: Vec<String> = TIE_SIZES.iter().map(|s| format!("tie{s}")).collect();
    let specs = TIE_SIZES.iter().zip(&names).map(|(s, n)| tied(n, *s)).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let semantics = FakeConfig {
        before_ts,
        order,
        ..FakeConfig::default()
    };
    let (fake, _dir, config) = setup(semantics, specs, &name_refs).await;
    let outcome = pass(&config).await;
    assert!(outcome.all_ok(), "{:?}", outcome.reports);
    for report in &outcome.reports {
        let warnings = &report.chat.as_ref().unwrap().warnings;
        assert!(warnings.is_empty(), "{}: {:?}", report.name(), warnings);
    }
    for name in &names {
        assert_complete(&export_lines(&config, name), &fake, name);
    }
    // A second pass over a complete store adds nothing.
    let again = pass(&config).await;
    assert!(
        again
            .reports
            .iter()
            .all(|r| r.chat.as_ref().unwrap().new_messages == 0)
    );
    for name in &names {
        assert_complete(&export_lines(&config, name), &fake, name);
    }
}

macro_rules! matrix {
    ($($test:ident: $before:ident, $order:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            complete_and_duplicate_free(BeforeTs::$before, PageOrder::$order).await;
        }
    )*};
}

matrix! {
    complete_with_ties_under_strict_before_ts_newest_first: Strict, NewestFirst;
    complete_with_ties_under_strict_before_ts_oldest_first: Strict, OldestFirst;
    complete_with_ties_under_strict_before_ts_shuffled: Strict, Shuffled;
    complete_with_ties_under_inclusive_before_ts_newest_first: Inclusive, NewestFirst;
    complete_with_ties_under_inclusive_before_ts_oldest_first: Inclusive, OldestFirst;
    complete_with_ties_under_inclusive_before_ts_shuffled: Inclusive, Shuffled;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_faithful_unknown_fields_unicode_and_float_text_survive_export() {
    let mut spec = PersonalitySpec::new("faithful", 120);
    spec.start_ts_ms = 1_700_000_000_000;
    spec.step_ms = 60_000;
    spec.hostile_unicode = true;
    spec.extra_fields = true;
    let fake = fake(FakeConfig::default(), vec![spec]).await;
    let raws = [
        r#"{"id":"float-1","message":"one decimal","reply":"ok","ts":1712345678.1,"voice_reply_url":null,"attachment_url":null,"attachment_type":null,"regenerated_replies":[],"fallback_model_used":false}"#,
        r#"{"id":"float-3","message":"emoji 👩‍👩‍👧 RTL שלום مرحبا","reply":"esc \"q\" \\ \n \t \u0000 \ud83d\ude00","ts":1712345678.123,"future_field":{"n":2.50,"e":1e-7,"big":123456789012345678901234567890,"arr":[1.0,-0.0]}}"#,
        r#"{ "ts" : 1712345679.120 , "id" : "spaced" , "message" : "key order and spaces" }"#,
    ];
    let base = fake.ground_truth("faithful").len();
    assert!(base > 0);
    // Raw messages go after the generated history, so their ts must be newer.
    let last: f64 = chatkeep::message::Message::from_stored_line(&fake.ground_truth("faithful")[base - 1])
        .unwrap()
        .ts
        .as_f64();
    assert!(
        last < 1712345678.1,
        "generated history must be older than the raw messages"
    );
    for raw in raws {
        fake.push_raw_message("faithful", raw);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = load(&write_config(
        dir.path(),
        &fake.base_url(),
        &["faithful"],
        10_000.0,
        "",
    ));
    let outcome = pass(&config).await;
    assert!(outcome.all_ok(), "{:?}", outcome.reports);
    let lines = export_lines(&config, "faithful");
    assert_complete(&lines, &fake, "faithful");
    for raw in raws {
        let compact = chatkeep::message::minify(raw);
        assert!(lines.contains(&compact), "missing byte-exact {compact}");
    }
    // The JSON export carries the same bytes, and `ts` text is never re-rounded.
    let json = export_text(&config, "faithful", chatkeep::export::Format::Json);
    assert!(json.contains("\"ts\":1712345678.1,"));
    assert!(json.contains("\"ts\":1712345678.123,"));
    assert!(json.contains("\"ts\":1712345679.120,"));
    assert!(json.contains(r#""big":123456789012345678901234567890"#));
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("export is valid JSON");
    assert_eq!(parsed["message_count"], serde_json::json!(base + raws.len()));
    assert_eq!(parsed["messages"].as_array().unwrap().len(), base + raws.len());
    assert_eq!(parsed["date_range"]["latest"], "2024-04-05T19:34:39.120Z");
}

async fn incremental_requests(before_ts: BeforeTs, order: PageOrder) {
    for k in [0usize, 1, 50, 51, 120] {
        let semantics = FakeConfig {
            before_ts,
            order,
            ..FakeConfig::default()
        };
        let (fake, _dir, config) = setup(semantics, vec![PersonalitySpec::new("inc", 1000)], &["inc"]).await;
        pass(&config).await;
        fake.append_messages("inc", k);
        fake.clear_requests();
        let outcome = pass(&config).await;
        let report = outcome.reports[0].chat.as_ref().unwrap();
        let expected = (k + 1).div_ceil(50);
        assert_eq!(
            (fake.chat_requests("inc"), report.new_messages),
            (expected, k as u64),
            "k = {k}: (chat requests at the fake, new messages)"
        );
        assert_complete(&export_lines(&config, "inc"), &fake, "inc");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_asks_only_for_pages_with_new_messages_strict() {
    incremental_requests(BeforeTs::Strict, PageOrder::NewestFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_asks_only_for_pages_with_new_messages_inclusive_shuffled() {
    incremental_requests(BeforeTs::Inclusive, PageOrder::Shuffled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_during_a_walk_are_picked_up_by_the_next_sync() {
    let (fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![PersonalitySpec::new("busy", 900)],
        &["busy"],
    )
    .await;
    fake.grow_while_walking("busy", 3, 7);
    pass(&config).await;
    fake.grow_while_walking("busy", 0, 0);
    pass(&config).await;
    assert_complete(&export_lines(&config, "busy"), &fake, "busy");
}
