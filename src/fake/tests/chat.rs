//! Chat pages: boundaries, orders, ties, limits, growth, byte fidelity.

use super::super::{BeforeTs, FakeConfig, PageOrder, PersonalitySpec};
use super::{chat_url, get, id_and_ts, ids, page, start, ts_texts};

/// 30 messages one second apart from 1000.0 s (message i has ts 1000+i).
fn spec(slug: &str, messages: usize) -> PersonalitySpec {
    let mut spec = PersonalitySpec::new(slug, messages);
    spec.start_ts_ms = 1_000_000;
    spec.step_ms = 1_000;
    spec
}

#[tokio::test]
async fn strict_excludes_and_inclusive_includes_the_boundary() {
    let fake = start(FakeConfig::default(), vec![spec("a", 10)]).await;
    let truth = ids(&fake.ground_truth("a"));

    let strict = page(&fake, "a", 3, Some("1005.0")).await;
    assert_eq!(
        ids(&strict),
        [truth[4].as_str(), truth[3].as_str(), truth[2].as_str()]
    );

    fake.set_before_ts(BeforeTs::Inclusive);
    let inclusive = page(&fake, "a", 3, Some("1005")).await;
    assert_eq!(
        ids(&inclusive),
        [truth[5].as_str(), truth[4].as_str(), truth[3].as_str()]
    );

    // A boundary between two messages is the same under both.
    assert_eq!(
        ids(&page(&fake, "a", 2, Some("1005.5")).await),
        [truth[5].as_str(), truth[4].as_str()]
    );
    // Nothing older: an empty array.
    assert!(page(&fake, "a", 3, Some("999.999")).await.is_empty());
}

#[tokio::test]
async fn each_page_order_holds_the_same_window() {
    let fake = start(FakeConfig::default(), vec![spec("a", 40)]).await;
    let truth = ids(&fake.ground_truth("a"));
    let window: Vec<String> = truth[10..30].to_vec();

    let newest = ids(&page(&fake, "a", 20, Some("1030.0")).await);
    assert_eq!(newest, window.iter().rev().cloned().collect::<Vec<_>>());

    fake.set_order(PageOrder::OldestFirst);
    assert_eq!(ids(&page(&fake, "a", 20, Some("1030.0")).await), window);

    fake.set_order(PageOrder::Shuffled);
    let shuffled = ids(&page(&fake, "a", 20, Some("1030.0")).await);
    let again = ids(&page(&fake, "a", 20, Some("1030.0")).await);
    assert_ne!(shuffled, window);
    assert_ne!(shuffled, newest);
    assert_ne!(shuffled, again, "each request is shuffled anew");
    let mut sorted = shuffled.clone();
    sorted.sort();
    let mut expected = window.clone();
    expected.sort();
    assert_eq!(sorted, expected);
}

#[tokio::test]
async fn tie_groups_straddle_pages() {
    let mut tied = spec("a", 30);
    tied.tie_groups = vec![(10, 8)]; // messages 10..18 all at ts 1010.0
    let fake = start(FakeConfig::default(), vec![tied]).await;
    let truth = fake.ground_truth("a");
    assert!(ts_texts(&truth[10..18]).iter().all(|ts| ts == "1010.0"));
    assert_eq!(id_and_ts(&truth[18]).1, "1018.0");

    // The page before message 20 cuts the group: 15, 16, 17 come, 10..15 not.
    let first = page(&fake, "a", 5, Some("1020.0")).await;
    assert_eq!(
        ids(&first),
        ids(&truth[15..20]).into_iter().rev().collect::<Vec<_>>()
    );

    // Asking before the group's ts skips the rest of it under strict...
    let strict = page(&fake, "a", 5, Some("1010.0")).await;
    assert_eq!(
        ids(&strict),
        ids(&truth[5..10]).into_iter().rev().collect::<Vec<_>>()
    );
    // ...and returns the newest members again under inclusive.
    fake.set_before_ts(BeforeTs::Inclusive);
    let inclusive = page(&fake, "a", 5, Some("1010.0")).await;
    assert_eq!(
        ids(&inclusive),
        ids(&truth[13..18]).into_iter().rev().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn limit_is_capped_and_bad_queries_are_rejected() {
    let config = FakeConfig {
        max_limit: 7,
        ..FakeConfig::default()
    };
    let fake = start(config, vec![spec("a", 30)]).await;
    assert_eq!(page(&fake, "a", 50, None).await.len(), 7);
    fake.set_max_limit(12);
    assert_eq!(page(&fake, "a", 50, None).await.len(), 12);
    assert_eq!(page(&fake, "a", 5, None).await.len(), 5);

    let id = fake.personality_id("a");
    let bad = [
        format!("/api/shapes/{id}/chat/history?shape_id={id}"),
        format!("/api/shapes/{id}/chat/history?limit=abc&shape_id={id}"),
        format!("/api/shapes/{id}/chat/history?limit=0&shape_id={id}"),
        format!("/api/shapes/{id}/chat/history?limit=5&shape_id={id}&before_ts=abc"),
        format!("/api/shapes/{id}/chat/history?limit=5&shape_id={id}&before_ts=nan"),
        format!("/api/shapes/{id}/chat/history?limit=5&shape_id=other"),
    ];
    for url in &bad {
        assert_eq!(get(&fake, url).await.status(), 400, "{url}");
    }
    let missing = [
        format!("/api/shapes/not-an-id/chat/history?limit=5&shape_id={id}"),
        format!("/api/agents/{id}/chat/history?limit=5&shape_id={id}"),
    ];
    for url in &missing {
        assert_eq!(get(&fake, url).await.status(), 404, "{url}");
    }
}

#[tokio::test]
async fn limits_above_the_refusal_bound_get_a_400() {
    let config = FakeConfig {
        max_limit: 40,
        reject_limit_above: Some(50),
        ..FakeConfig::default()
    };
    let fake = start(config, vec![spec("a", 60)]).await;
    assert_eq!(
        page(&fake, "a", 50, None).await.len(),
        40,
        "at the bound: capped, not refused"
    );
    let refused = get(&fake, &chat_url(&fake, "a", 51, None)).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.text().await.expect("a body"),
        r#"{"error":"limit must be at most 50"}"#
    );

    fake.set_max_limit(500);
    fake.set_reject_limit_above(Some(20));
    assert_eq!(get(&fake, &chat_url(&fake, "a", 21, None)).await.status(), 400);
    assert_eq!(page(&fake, "a", 20, None).await.len(), 20);
    fake.set_reject_limit_above(None);
    assert_eq!(page(&fake, "a", 60, None).await.len(), 60);
}

#[tokio::test]
async fn appended_and_growing_history_is_served_newest_first() {
    let fake = start(FakeConfig::default(), vec![spec("a", 10)]).await;
    fake.append_messages("a", 3);
    assert_eq!(fake.message_count("a"), 13);
    let truth = fake.ground_truth("a");
    assert_eq!(
        page(&fake, "a", 3, None).await,
        vec![truth[12].clone(), truth[11].clone(), truth[10].clone()]
    );

    fake.push_raw_message("a", r#"{"id":"raw-1","ts":1012.0005,"message":"m","reply":"r"}"#);
    fake.append_messages("a", 1);
    let newest = page(&fake, "a", 2, None).await;
    assert_eq!(id_and_ts(&newest[1]).0, "raw-1");
    assert_eq!(id_and_ts(&newest[0]).1, "1014.0");

    fake.grow_while_walking("a", 2, 5);
    let before = fake.message_count("a");
    page(&fake, "a", 3, Some("1005.0")).await;
    assert_eq!(fake.message_count("a"), before);
    page(&fake, "a", 3, Some("1002.0")).await;
    assert_eq!(fake.message_count("a"), before + 5);
    assert_eq!(fake.chat_requests("a"), 4);
    fake.grow_while_walking("a", 0, 0);
    page(&fake, "a", 3, None).await;
    page(&fake, "a", 3, None).await;
    assert_eq!(fake.message_count("a"), before + 5);
}

/// Walks the whole history with strict `before_ts` set to the oldest ts
/// of each page, and checks that the pages hold exactly the ground truth,
/// byte for byte, including hostile text, unknown fields and raw pushes.
#[tokio::test]
async fn pages_are_the_ground_truth_byte_for_byte() {
    let mut hostile = spec("h", 257);
    hostile.hostile_unicode = true;
    hostile.extra_fields = true;
    let fake = start(FakeConfig::default(), vec![hostile]).await;
    fake.push_raw_message(
        "h",
        "{ \"ts\" : 2000.25 , \"id\":\"raw\", \"message\":\"\\ud83d\\ude00 \\u0000\", \"n\": 1.50e3 }",
    );
    fake.append_messages("h", 2);

    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let got = page(&fake, "h", 50, before.as_deref()).await;
        let Some(oldest) = got.last() else { break };
        before = Some(id_and_ts(oldest).1);
        pages.push(got);
    }
    let walked: Vec<String> = pages
        .into_iter()
        .rev()
        .flat_map(|p| p.into_iter().rev())
        .collect();
    let truth = fake.ground_truth("h");
    assert_eq!(walked.len(), 260);
    assert_eq!(walked, truth);
    assert!(truth.iter().any(|m| m.contains(r"\ud83d\ude00")));
    assert!(truth.iter().any(|m| m.contains(r"\u0000")));
    assert!(truth.iter().any(|m| m.contains("1e-7")));
    assert!(truth[257].starts_with("{ \"ts\" : 2000.25 ,"));
    for message in &truth {
        serde_json::from_str::<serde_json::Value>(message).expect("valid JSON");
    }
}

#[tokio::test]
async fn ts_is_written_with_trimmed_milliseconds() {
    let mut stamps = PersonalitySpec::new("t", 12);
    stamps.start_ts_ms = 1_712_345_678_000;
    stamps.step_ms = 10;
    let fake = start(FakeConfig::default(), vec![stamps]).await;
    fake.set_order(PageOrder::OldestFirst);
    let got = ts_texts(&page(&fake, "t", 12, None).await);
    assert_eq!(got[0], "1712345678.0");
    assert_eq!(got[1], "1712345678.01");
    assert_eq!(got[10], "1712345678.1");
    assert_eq!(got[11], "1712345678.11");
    // The request log shows what was asked.
    let url = chat_url(&fake, "t", 12, None);
    let record = fake.requests().pop().expect("a request was recorded");
    assert_eq!(format!("{}?{}", record.path, record.query), url);
    assert_eq!(record.personality.as_deref(), Some("t"));
    assert!(record.is_chat);
    assert_eq!(record.status, 200);
}

#[tokio::test]
async fn queued_bodies_replace_chat_answers_in_turn_byte_for_byte() {
    let fake = start(FakeConfig::default(), vec![spec("a", 10)]).await;
    let hostile = vec![b'[', 0xff, b']'];
    fake.queue_chat_bodies([None, Some(hostile.clone())]);
    // Other endpoints neither see nor use up the queue.
    let profile = get(&fake, "/api/shapes/username/a").await;
    assert_eq!(profile.status(), 200);
    assert_eq!(
        page(&fake, "a", 3, None).await.len(),
        3,
        "None: the normal answer"
    );
    let raw = get(&fake, &chat_url(&fake, "a", 3, None)).await;
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.bytes().await.unwrap().to_vec(), hostile);
    assert_eq!(page(&fake, "a", 3, None).await.len(), 3, "the queue is used up");
}
