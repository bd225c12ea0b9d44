//! History that is not append-only, as a client sees it over HTTP:
//! regenerated replies, deletions, resets and older history below the
//! oldest message.

use std::collections::HashSet;

use serde_json::Value;

use super::super::{BeforeTs, FakeConfig, FakeService, PersonalitySpec};
use super::{id_and_ts, ids, page, start, ts_texts};

/// Messages one second apart from 1000.0 s (message i has ts 1000+i).
fn spec(slug: &str, messages: usize) -> PersonalitySpec {
    let mut spec = PersonalitySpec::new(slug, messages);
    spec.start_ts_ms = 1_000_000;
    spec.step_ms = 1_000;
    spec
}

fn parsed(message: &str) -> Value {
    serde_json::from_str(message).expect("a JSON message")
}

/// Walks the history backwards with `before_ts` set to the oldest ts of
/// each page, under whichever semantics the fake has, keeping the first
/// copy of each message; stops at the first page that brings nothing new.
/// Returns the messages oldest first.
async fn walk(fake: &FakeService, slug: &str, limit: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut newest_first = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let got = page(fake, slug, limit, before.as_deref()).await;
        let Some(oldest) = got.last() else { break };
        before = Some(id_and_ts(oldest).1);
        let fresh: Vec<String> = got.into_iter().filter(|m| seen.insert(id_and_ts(m).0)).collect();
        if fresh.is_empty() {
            break;
        }
        newest_first.extend(fresh);
    }
    newest_first.reverse();
    newest_first
}

#[tokio::test]
async fn a_regenerated_reply_keeps_id_and_ts_and_moves_the_old_reply_down() {
    let mut hostile = spec("a", 10);
    hostile.hostile_unicode = true;
    hostile.extra_fields = true;
    let fake = start(FakeConfig::default(), vec![hostile]).await;
    let before = page(&fake, "a", 3, None).await;

    let id = fake.regenerate_nth_newest("a", 0);
    assert_eq!(id, id_and_ts(&before[0]).0);
    let after = page(&fake, "a", 3, None).await;
    assert_eq!(id_and_ts(&after[0]), id_and_ts(&before[0]));
    assert_eq!(after[1..], before[1..], "older messages are untouched");
    let (old, new) = (parsed(&before[0]), parsed(&after[0]));
    assert_ne!(new["reply"], old["reply"]);
    assert_eq!(
        new["regenerated_replies"],
        Value::Array(vec![old["reply"].clone()])
    );
    for field in ["message", "ts", "x_meta", "seq", "fallback_model_used"] {
        assert_eq!(new[field], old[field], "{field}");
    }
    assert_eq!(
        fake.ground_truth("a")[9],
        after[0],
        "ground truth is what is served"
    );

    // Again, by id: a third version with both earlier replies, in order.
    assert!(fake.regenerate("a", &id));
    let third = parsed(&page(&fake, "a", 1, None).await[0]);
    assert_eq!(
        third["regenerated_replies"],
        Value::Array(vec![old["reply"].clone(), new["reply"].clone()])
    );
    assert_ne!(third["reply"], new["reply"]);
    assert_ne!(third["reply"], old["reply"]);

    // An older message, by id.
    let (second_id, _) = id_and_ts(&before[2]);
    assert!(fake.regenerate("a", &second_id));
    let regenerated = parsed(&page(&fake, "a", 3, None).await[2]);
    assert_eq!(regenerated["id"], second_id.as_str());
    assert_eq!(
        regenerated["regenerated_replies"].as_array().map(Vec::len),
        Some(1)
    );

    assert!(!fake.regenerate("a", "no-such-id"));
    fake.delete("a", &[id.as_str()]);
    assert!(!fake.regenerate("a", &id), "a deleted message is gone");
    fake.push_raw_message("a", r#"{"id":"raw","ts":5000.0,"reply":"as pushed"}"#);
    assert!(
        !fake.regenerate("a", "raw"),
        "pushed messages are served as given"
    );
    assert_eq!(
        page(&fake, "a", 1, None).await[0],
        r#"{"id":"raw","ts":5000.0,"reply":"as pushed"}"#
    );
}

#[tokio::test]
async fn deleted_messages_vanish_and_pages_stay_contiguous() {
    for semantics in [BeforeTs::Strict, BeforeTs::Inclusive] {
        let config = FakeConfig {
            before_ts: semantics,
            ..FakeConfig::default()
        };
        let fake = start(config, vec![spec("a", 30)]).await;
        let original = fake.message_ids("a");
        let doomed = [
            original[10].as_str(),
            original[11].as_str(),
            original[12].as_str(),
            original[20].as_str(),
            "no-such-id",
        ];
        assert_eq!(fake.delete("a", &doomed), 4);
        assert_eq!(fake.delete("a", &doomed), 0, "already gone");
        assert_eq!(fake.delete_nth_newest("a", 0), original[29]);
        assert_eq!(fake.message_count("a"), 25);

        // The window before message 15 skips the deleted 10..13.
        let boundary = match semantics {
            BeforeTs::Strict => [14, 13, 9, 8, 7],
            BeforeTs::Inclusive => [15, 14, 13, 9, 8],
        };
        let expected: Vec<&str> = boundary.iter().map(|&i| original[i].as_str()).collect();
        assert_eq!(
            ids(&page(&fake, "a", 5, Some("1015.0")).await),
            expected,
            "{semantics:?}"
        );
        // The newest page starts below the deleted newest message.
        assert_eq!(ids(&page(&fake, "a", 1, None).await), [original[28].as_str()]);

        let walked = walk(&fake, "a", 4).await;
        assert_eq!(walked, fake.ground_truth("a"), "{semantics:?}");
        let remaining: Vec<String> = original
            .iter()
            .enumerate()
            .filter(|(i, _)| ![10, 11, 12, 20, 29].contains(i))
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(ids(&walked), remaining);
        assert_eq!(fake.message_ids("a"), remaining);
    }
}

#[tokio::test]
async fn pushed_messages_are_deleted_by_their_own_id() {
    let fake = start(FakeConfig::default(), vec![spec("a", 5)]).await;
    fake.push_raw_message("a", r#"{"id":"raw-1","ts":2000.0}"#);
    fake.push_raw_message("a", r#"{"ts":2001.0,"id":"raw-2"}"#);
    fake.append_messages("a", 1);
    assert_eq!(fake.delete("a", &["raw-1"]), 1);
    let newest = page(&fake, "a", 3, None).await;
    assert_eq!(ids(&newest)[1..], ["raw-2", fake.message_ids("a")[4].as_str()]);
    assert_eq!(fake.delete_nth_newest("a", 1), "raw-2");
    assert_eq!(fake.message_count("a"), 6);
    assert!(fake.ground_truth("a").iter().all(|m| !m.contains("raw-")));
}

#[tokio::test]
async fn older_history_appears_below_the_oldest_in_order() {
    let fake = start(FakeConfig::default(), vec![spec("a", 10)]).await;
    let original = fake.message_ids("a");
    fake.insert_older("a", 3);
    let truth = fake.ground_truth("a");
    assert_eq!(truth.len(), 13);
    assert_eq!(ts_texts(&truth[..4]), ["997.0", "998.0", "999.0", "1000.0"]);
    assert_eq!(ids(&truth[3..]), original, "the rest is untouched");
    let fresh: HashSet<String> = ids(&truth[..3]).into_iter().collect();
    assert_eq!(fresh.len(), 3);
    assert!(fresh.iter().all(|id| !original.contains(id)));

    // A client that stopped at the old oldest finds them below it.
    let below = page(&fake, "a", 50, Some("1000.0")).await;
    assert_eq!(ts_texts(&below), ["999.0", "998.0", "997.0"]);
    assert_eq!(walk(&fake, "a", 4).await, truth);

    // Twice more: still below, still in order.
    fake.insert_older("a", 2);
    assert_eq!(
        ts_texts(&page(&fake, "a", 50, Some("997.0")).await),
        ["996.0", "995.0"]
    );
    assert_eq!(walk(&fake, "a", 5).await, fake.ground_truth("a"));
}

#[tokio::test]
async fn reset_then_append_gives_fresh_ids_newer_than_anything_served() {
    let fake = start(FakeConfig::default(), vec![spec("a", 10)]).await;
    fake.push_raw_message("a", r#"{"id":"far","ts":5000.0}"#);
    let before = fake.message_ids("a");
    fake.reset_chat("a");
    assert_eq!(fake.message_count("a"), 0);
    assert!(page(&fake, "a", 50, None).await.is_empty());
    assert!(fake.ground_truth("a").is_empty());

    fake.append_messages("a", 3);
    let after = page(&fake, "a", 50, None).await;
    assert_eq!(after.len(), 3);
    for message in &after {
        let (id, ts) = id_and_ts(message);
        assert!(!before.contains(&id), "{id} was used before the reset");
        let ts: f64 = ts.parse().expect("a numeric ts");
        assert!(ts > 5000.0, "{ts} is not newer than the pre-reset newest");
    }

    // Older history on a reset chat is an append.
    fake.reset_chat("a");
    fake.insert_older("a", 2);
    let ts = ts_texts(&fake.ground_truth("a"));
    assert_eq!(ts.len(), 2);
    assert!(
        ts.iter().all(|t| t.parse::<f64>().is_ok_and(|t| t > 5000.0)),
        "{ts:?}"
    );
}
