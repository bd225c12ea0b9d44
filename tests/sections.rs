//! Everything a personality is, not just its chat: each section fetched,
//! merged and versioned; owners and non-owners; discovery; and a client that
//! survives the service's failures without losing or corrupting anything.

mod common;

use std::time::{Duration, Instant};

use chatkeep::commands::sync::{Selection, run_pass};
use chatkeep::config::Config;
use chatkeep::fake::{DocumentKind, FakeConfig, Fault, FaultPlan, MemoryShape, PersonalitySpec, RetryAfter};
use chatkeep::status::{Outcome, PersonalityStatus, SectionStatus};
use chatkeep::store::personality_dir;
use common::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn status(config: &Config, name: &str) -> PersonalityStatus {
    PersonalityStatus::read(&personality_dir(&config.storage.data_dir, name).unwrap()).expect("status.json")
}

fn read(config: &Config, name: &str, file: &str) -> String {
    std::fs::read_to_string(config.storage.data_dir.join(name).join(file)).unwrap()
}

fn versions(config: &Config, name: &str, stem: &str) -> Vec<String> {
    let dir = config.storage.data_dir.join(name).join("versions");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{stem}.")))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_section_is_backed_up_under_the_names_earlier_tools_used() {
    let (fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![PersonalitySpec::new("lilith", 80)],
        &["lilith"],
    )
    .await;
    let knowledge = json!([{"id": "k1", "content": "lore", "weight": 2.50}]);
    fake.set_document("lilith", DocumentKind::Knowledge, Some(knowledge));
    fake.set_document(
        "lilith",
        DocumentKind::Training,
        Some(json!({"items": [{"q": 1}, {"q": 2}, {"q": 3}]})),
    );
    let outcome = pass(&config).await;
    assert!(outcome.all_ok(), "{:?}", outcome.reports);
    assert!(read(&config, "lilith", "lilith.json").contains("\"username\":\"lilith\""));
    assert_eq!(
        read(&config, "lilith", "lilith_knowledge.json"),
        "[{\"content\":\"lore\",\"id\":\"k1\",\"weight\":2.5}]\n"
    );
    assert!(read(&config, "lilith", "lilith_user_personalization.json").contains("backstory"));
    let memories: Vec<serde_json::Value> =
        serde_json::from_str(&read(&config, "lilith", "lilith_memories.json")).unwrap();
    assert_eq!(memories.len(), 3);
    let s = status(&config, "lilith");
    assert_eq!(s.outcome, Outcome::Ok);
    assert!(
        matches!(
            s.sections["training"],
            SectionStatus::Saved { entries: Some(3), .. }
        ),
        "{:?}",
        s.sections
    );
    assert!(matches!(
        s.sections["chat"],
        SectionStatus::Chat {
            new: 80,
            total: 80,
            ..
        }
    ));
    let chat = s.chat.unwrap();
    assert_eq!((chat.total, chat.new), (80, 80));
    assert_eq!(chat.oldest.as_deref(), Some("2023-11-14T22:13:20.000Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_memories_stay_marked_and_changed_ones_keep_their_earlier_version() {
    let (fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![PersonalitySpec::new("mem", 5)],
        &["mem"],
    )
    .await;
    fake.set_memory_shape("mem", MemoryShape::MemoriesMeta);
    // 120 memories: three pages of 50 in the `memories` + `meta.pagination` shape.
    let first: Vec<_> = (0..120)
        .map(|i| json!({"id": format!("m{i}"), "content": format!("fact {i}")}))
        .collect();
    fake.set_memories("mem", first.clone());
    assert!(pass(&config).await.all_ok());
    let ids = |text: &str| -> Vec<String> {
        serde_json::from_str::<Vec<serde_json::Value>>(text)
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let stored = read(&config, "mem", "mem_memories.json");
    assert_eq!(
        ids(&stored),
        (0..120).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "oldest first, all pages"
    );

    // m1 vanishes, m2 changes, m120 is new.
    let mut second = first.clone();
    second.remove(1);
    second[1] = json!({"id": "m2", "content": "fact 2, corrected"});
    second.push(json!({"id": "m120", "content": "fact 120"}));
    fake.set_memories("mem", second);
    let outcome = pass(&config).await;
    assert!(outcome.all_ok(), "{:?}", outcome.reports);
    let after: Vec<serde_json::Value> =
        serde_json::from_str(&read(&config, "mem", "mem_memories.json")).unwrap();
    assert_eq!(after.len(), 121);
    assert_eq!(after[1]["id"], "m1");
    assert!(
        after[1]["deleted_upstream_at"].is_string(),
        "vanished memory kept and marked"
    );
    assert_eq!(after[2]["content"], "fact 2, corrected");
    assert_eq!(after[120]["id"], "m120");
    match &status(&config, "mem").sections["memories"] {
        SectionStatus::Merged {
            new,
            changed,
            vanished,
            upstream,
            total,
            complete,
            ..
        } => {
            assert_eq!(
                (*new, *changed, *vanished, *upstream, *total, *complete),
                (1, 1, 1, 120, 121, true)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        versions(&config, "mem", "mem_memories"),
        vec![stored],
        "the earlier file is kept whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_documents_keep_every_earlier_version() {
    let (fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![PersonalitySpec::new("doc", 5)],
        &["doc"],
    )
    .await;
    for n in 1..=3 {
        fake.set_document(
            "doc",
            DocumentKind::UserPersonalization,
            Some(json!({"backstory": format!("v{n}")})),
        );
        assert!(pass(&config).await.all_ok());
    }
    assert_eq!(
        read(&config, "doc", "doc_user_personalization.json"),
        "{\"backstory\":\"v3\"}\n"
    );
    assert_eq!(
        versions(&config, "doc", "doc_user_personalization"),
        vec!["{\"backstory\":\"v1\"}\n", "{\"backstory\":\"v2\"}\n"]
    );
    // Gone upstream (404): recorded as none, the backup keeps the last content.
    fake.set_document("doc", DocumentKind::UserPersonalization, None);
    assert!(pass(&config).await.all_ok());
    assert_eq!(
        status(&config, "doc").sections["user_personalization"],
        SectionStatus::None
    );
    assert_eq!(
        read(&config, "doc", "doc_user_personalization.json"),
        "{\"backstory\":\"v3\"}\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_and_training_of_a_non_owner_are_not_available_not_a_failure() {
    let mut theirs = PersonalitySpec::new("theirs", 10);
    theirs.owner_id = "someone-else".into();
    let (fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![theirs, PersonalitySpec::new("mine", 10)],
        &["theirs", "mine"],
    )
    .await;
    let outcome = pass(&config).await;
    assert!(outcome.all_ok(), "{:?}", outcome.reports);
    let s = status(&config, "theirs");
    assert_eq!(s.sections["knowledge"], SectionStatus::NotAvailable);
    assert_eq!(s.sections["training"], SectionStatus::NotAvailable);
    assert!(matches!(
        status(&config, "mine").sections["knowledge"],
        SectionStatus::Saved { .. }
    ));
    let requests = fake.requests();
    assert!(
        !requests.iter().any(|r| r.personality.as_deref() == Some("theirs")
            && (r.path.ends_with("/story") || r.path.ends_with("/training")))
    );
    assert_eq!(
        requests.iter().filter(|r| r.path == "/api/users/me").count(),
        1,
        "the account is asked once per run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_all_adds_owned_personalities_and_a_vanished_one_keeps_its_backup() {
    let mut theirs = PersonalitySpec::new("theirs", 4);
    theirs.owner_id = "someone-else".into();
    let (_fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![
            PersonalitySpec::new("alpha", 4),
            PersonalitySpec::new("beta", 4),
            theirs,
        ],
        &["ghost"],
    )
    .await;
    let ghost_dir = config.storage.data_dir.join("ghost");
    std::fs::create_dir_all(&ghost_dir).unwrap();
    std::fs::write(ghost_dir.join("ghost.json"), "{\"kept\":true}").unwrap();
    let outcome = run_pass(
        &config,
        &[],
        Selection {
            owned: true,
            recent: false,
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let names: Vec<_> = outcome.reports.iter().map(|r| r.name().to_owned()).collect();
    assert_eq!(names, ["ghost", "alpha", "beta"]);
    let ghost = status(&config, "ghost");
    assert_eq!(ghost.outcome, Outcome::Failed);
    assert!(ghost.error.unwrap().contains("not found upstream"));
    assert_eq!(
        std::fs::read_to_string(ghost_dir.join("ghost.json")).unwrap(),
        "{\"kept\":true}"
    );
    assert_eq!(status(&config, "beta").outcome, Outcome::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_section_leaves_the_others_complete() {
    let (fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![PersonalitySpec::new("part", 130)],
        &["part"],
    )
    .await;
    fake.set_memories("part", vec![json!({"content": "a memory without an id"})]);
    let outcome = pass(&config).await;
    let s = status(&config, "part");
    assert_eq!(s.outcome, Outcome::Partial, "{:?}", outcome.reports);
    assert!(matches!(s.sections["memories"], SectionStatus::Failed { .. }));
    assert!(matches!(s.sections["knowledge"], SectionStatus::Saved { .. }));
    assert_complete(&export_lines(&config, "part"), &fake, "part");
    assert_eq!(outcome.exit_code(), std::process::ExitCode::from(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_truncated_bodies_are_never_stored() {
    let (fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![PersonalitySpec::new("slow", 200)],
        &["slow"],
    )
    .await;
    fake.set_faults(FaultPlan {
        script: vec![
            Fault::Truncated,
            Fault::RateLimited {
                retry_after: RetryAfter::Seconds(1),
            },
            Fault::Truncated,
            Fault::Reset,
        ],
        only_chat: true,
        ..FaultPlan::default()
    });
    assert!(pass(&config).await.all_ok());
    let requests = fake.requests();
    let limited = requests
        .iter()
        .position(|r| r.status == 429)
        .expect("a 429 was served");
    let wait = requests[limited + 1].at - requests[limited].at;
    assert!(
        wait >= Duration::from_millis(990),
        "next request only {wait:?} after Retry-After: 1"
    );
    assert_complete(&export_lines(&config, "slow"), &fake, "slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_a_bounded_number_of_times() {
    let (fake, dir, _) = setup(
        FakeConfig::default(),
        vec![PersonalitySpec::new("down", 10)],
        &["down"],
    )
    .await;
    let config = load(&write_config(
        dir.path(),
        &fake.base_url(),
        &["down"],
        10_000.0,
        "max_retries = 3",
    ));
    fake.set_faults(FaultPlan {
        probability: 1.0,
        random: vec![Fault::ServerError(503)],
        ..FaultPlan::default()
    });
    let started = Instant::now();
    let outcome = pass(&config).await;
    let s = status(&config, "down");
    assert_eq!(s.outcome, Outcome::Failed, "{:?}", outcome.reports);
    assert!(s.error.unwrap().contains("503 after 4 attempts"));
    // The profile request: 1 try + 3 retries, then nothing more for it.
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path.contains("/username/"))
            .count(),
        4
    );
    assert_eq!(fake.requests().len(), 4);
    assert!(
        outcome.reports[0].retryable,
        "a daemon would retry this before the next tick"
    );
    // Backoff is capped at max_backoff (50ms in the test config).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_wall_is_reported_as_such_and_stops_the_pass() {
    let (fake, _dir, config) = setup(
        FakeConfig::default(),
        vec![PersonalitySpec::new("a", 10), PersonalitySpec::new("b", 10)],
        &["a", "b"],
    )
    .await;
    fake.set_faults(FaultPlan {
        script: vec![Fault::BotWall],
        ..FaultPlan::default()
    });
    let outcome = pass(&config).await;
    assert_eq!(
        outcome.reports.len(),
        1,
        "no further personality after a bot wall"
    );
    let s = status(&config, "a");
    assert_eq!(s.outcome, Outcome::BotWall);
    let error = s.error.unwrap();
    assert!(
        error.contains("bot wall") && !error.contains("cookie set"),
        "{error}"
    );
    assert_eq!(outcome.exit_code(), std::process::ExitCode::from(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cookie_value_in_any_log_line_status_file_or_error_output() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("secret", 60)]).await;
    fake.set_faults(FaultPlan {
        script: vec![Fault::ServerError(500), Fault::Reset, Fault::Truncated],
        ..FaultPlan::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["secret"], 10_000.0, "");
    let ok = chatkeep(&config).args(["-vv", "sync"]).output().unwrap();
    assert!(ok.status.success(), "{}", text(&ok));
    // Then the session dies mid-life.
    fake.set_cookie(Some((COOKIE_NAME.into(), "a-newer-token".into())));
    let dead = chatkeep(&config).args(["-vv", "sync"]).output().unwrap();
    assert_eq!(dead.status.code(), Some(3), "{}", text(&dead));
    let checked = chatkeep(&config).arg("check-config").output().unwrap();
    for out in [&ok, &dead, &checked] {
        assert!(!text(out).contains(TOKEN), "cookie in output:\n{}", text(out));
    }
    let mut files = vec![];
    let mut stack = vec![dir.path().join("data")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "cookie in {}",
            f.display()
        );
    }
}
