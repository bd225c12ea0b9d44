//! The search index against the fake service, through the real binary:
//! every script of the fake's texts is findable; a message added, revised
//! or gone upstream is found as such after the next sync; a sync killed
//! at random points leaves an index that never claims what the store
//! lacks and agrees with it after the next run; `reindex` makes a deleted
//! or damaged index anew; the filters, the order, the limit and `--json`
//! do what they say, and bad input exits 2.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use chatkeep::config::Config;
use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use chatkeep::search::{SearchIndex, SearchQuery};
use chatkeep::store::{ChatStore, Store};
use common::*;
use rand::{Rng, SeedableRng};

const NAME: &str = "lilith";

/// A fake serving `specs`, a config for all of them, and one sync.
async fn synced(specs: Vec<PersonalitySpec>) -> (FakeService, tempfile::TempDir, std::path::PathBuf) {
    let names: Vec<String> = specs.iter().map(|s| s.slug.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let fake = fake(FakeConfig::default(), specs).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &names, 10_000.0, "");
    sync(&config);
    (fake, dir, config)
}

fn sync(config: &Path) {
    let out = chatkeep(config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn search(config: &Path, args: &[&str]) -> Output {
    chatkeep(config).arg("search").args(args).output().unwrap()
}

/// `chatkeep search --json ARGS` (a match or none): the report.
fn search_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = search(config, &[&["--json", "--limit", "100000"], args].concat());
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn total(report: &serde_json::Value) -> u64 {
    report["total"].as_u64().unwrap()
}

fn hits(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["hits"].as_array().unwrap()
}

/// The user's text and the reply of each message the fake serves now,
/// with its `ts`.
fn texts(fake: &FakeService, name: &str) -> Vec<(f64, String, String)> {
    fake.ground_truth(name)
        .iter()
        .map(|raw| {
            let m: serde_json::Value = serde_json::from_str(raw).unwrap();
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (m["ts"].as_f64().unwrap(), text("message"), text("reply"))
        })
        .collect()
}

/// Pieces of text (user texts and replies) holding `needle`, of messages
/// whose `ts` `keep` accepts.
fn holding(texts: &[(f64, String, String)], needle: &str, keep: impl Fn(f64) -> bool) -> u64 {
    texts
        .iter()
        .filter(|(ts, ..)| keep(*ts))
        .map(|(_, user, reply)| u64::from(user.contains(needle)) + u64::from(reply.contains(needle)))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_in_the_fakes_messages_is_findable() {
    let mut spec = PersonalitySpec::new(NAME, 600);
    spec.hostile_unicode = true;
    let (fake, _dir, config) = synced(vec![spec]).await;
    let texts = texts(&fake, NAME);
    // (query, text every matching piece holds)
    let cases = [
        ("lantern", "lantern"),
        ("LANTERN", "lantern"),
        ("שלום", "שלום"),
        ("مرحبا", "مرحبا"),
        ("١٢٣", "١٢٣"),
        ("rtl", "(RTL)"),
        ("漢字", "漢字"),
        ("かな", "かな"),
        ("カナ", "カナ"),
        ("😀", "😀"),
        ("🎉", "🎉"),
        ("👩", "👩"),
        ("🌈", "🌈"),
        ("💻", "💻"),
        // Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗̠: combining marks left out, ä and ǫ folded.
        ("zalo", "combining:"),
        ("ZÄLǪ", "combining:"),
        ("𝕳𝖊𝖑𝖑𝖔", "𝕳𝖊𝖑𝖑𝖔"),
        ("\"quote backslash\"", "quote \" backslash"),
        ("alert", "<script>alert("),
        ("evil", "evil"),
    ];
    for (query, needle) in cases {
        let want = holding(&texts, needle, |_| true);
        assert!(want > 0, "the fake's texts hold no {needle:?}");
        let report = search_json(&config, &[query]);
        assert_eq!(total(&report), want, "{query}");
        for hit in hits(&report) {
            let snippet = hit["snippet"]["text"].as_str().unwrap();
            let marked = hit["snippet"]["highlighted"].as_array().unwrap();
            assert!(!marked.is_empty(), "{query}: nothing highlighted in {snippet:?}");
        }
    }
    // A word no message holds.
    let out = search(&config, &["xylophone"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_added_revised_or_gone_upstream_is_found_as_such_after_the_next_sync() {
    let (fake, _dir, config) = synced(vec![PersonalitySpec::new(NAME, 300)]).await;
    let before = fake.ground_truth(NAME);
    let reply_of = |raw: &str| {
        let m: serde_json::Value = serde_json::from_str(raw).unwrap();
        (
            m["id"].as_str().unwrap().to_owned(),
            m["reply"].as_str().unwrap().to_owned(),
        )
    };
    let (regen_id, old_reply) = reply_of(&before[before.len() - 2]);
    assert_eq!(fake.regenerate_nth_newest(NAME, 1), regen_id);
    let gone_id = fake.delete_nth_newest(NAME, 3);
    fake.push_raw_message(
        NAME,
        r#"{"id":"zep-1","ts":1750000000.5,"message":"a zeppelin over the harbour","reply":"Zeppeline über dem Hafen, 飛行船 🎈"}"#,
    );
    // Before the sync, none of it is in the index.
    assert_eq!(total(&search_json(&config, &["zeppelin"])), 0);
    sync(&config);

    let quoted = |id: &str| serde_json::json!(format!("\"{id}\""));
    for query in ["zeppelin", "uber", "飛行船", "🎈", "hafen"] {
        let report = search_json(&config, &[query]);
        assert_eq!(total(&report), 1, "{query}");
        assert_eq!(hits(&report)[0]["id"], quoted("zep-1"), "{query}");
        assert_eq!(hits(&report)[0]["version"], "current");
    }
    assert_eq!(hits(&search_json(&config, &["zeppelin"]))[0]["role"], "user");
    assert_eq!(hits(&search_json(&config, &["hafen"]))[0]["role"], "personality");

    // The regenerated reply: the new one current, the old one earlier.
    let now = search_json(&config, &["\"take 2\""]);
    let now: Vec<_> = hits(&now)
        .iter()
        .filter(|h| h["id"] == quoted(&regen_id))
        .collect();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        (&now[0]["version"], &now[0]["revised"]),
        (&"current".into(), &true.into())
    );
    let then = search_json(&config, &[&format!("\"{old_reply}\"")]);
    let then: Vec<_> = hits(&then)
        .iter()
        .filter(|h| h["id"] == quoted(&regen_id))
        .collect();
    assert_eq!(then.len(), 1, "{then:?}");
    assert_eq!(then[0]["version"], "earlier");
    assert_eq!(then[0]["role"], "personality");
    assert!(then[0]["superseded_at"].is_string(), "{then:?}");
    let earlier = search_json(&config, &["version:earlier"]);
    assert!(
        hits(&earlier).iter().all(|h| h["id"] == quoted(&regen_id)),
        "{earlier}"
    );

    // The deleted one: still found, marked.
    let gone = search_json(&config, &["deleted:true"]);
    assert_eq!(total(&gone), 2, "its text and its reply: {gone}");
    for hit in hits(&gone) {
        assert_eq!(hit["id"], quoted(&gone_id));
        assert!(hit["deleted_upstream_at"].is_string(), "{hit}");
    }
    let plain = search(&config, &["deleted:true"]);
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("gone upstream since"),
        "{}",
        text(&plain)
    );
}

/// Every document the index holds: (id, role, version).
fn indexed(data_dir: &Path, query: &str) -> Option<BTreeSet<(String, String, String)>> {
    let index = SearchIndex::open(data_dir).ok()?;
    let mut query = SearchQuery::new(query);
    query.limit = 1_000_000;
    let results = index.search(&query).unwrap();
    Some(
        results
            .hits
            .into_iter()
            .map(|h| (h.id, h.role.as_str().to_owned(), h.version.as_str().to_owned()))
            .collect(),
    )
}

/// The store's messages as the index should hold their current versions.
fn stored(config: &Config) -> BTreeSet<(String, String, String)> {
    let mut want = BTreeSet::new();
    for line in export_lines(config, NAME) {
        let m: serde_json::Value = serde_json::from_str(&line).unwrap();
        let id = m["id"].to_string();
        for (field, role) in [("message", "user"), ("reply", "personality")] {
            if m[field].as_str().is_some_and(|t| !t.is_empty()) {
                want.insert((id.clone(), role.to_owned(), "current".to_owned()));
            }
        }
    }
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_random_points_never_leaves_the_index_ahead_of_the_store() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new(NAME, 20_000)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    let config = load(&config_path);
    let data_dir = &config.storage.data_dir;
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = Vec::new();
    for round in 0..8 {
        if round > 0 {
            fake.append_messages(NAME, 700);
        }
        if round == 4 {
            fake.regenerate_nth_newest(NAME, 2);
        }
        let mut child = chatkeep(&config_path).arg("sync").spawn().unwrap();
        let after = Duration::from_millis(rng.random_range(50..4000));
        kills.push(after);
        std::thread::sleep(after);
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever the index holds, the store holds: no document of a
        // message the store lacks, no coverage beyond its commits.
        if data_dir.join(NAME).join("chat_state.json").exists() {
            let store = ChatStore::open_read_only(&data_dir.join(NAME)).unwrap();
            let ids: BTreeSet<String> = export_lines(&config, NAME)
                .iter()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
                .collect();
            if let Some(docs) = indexed(data_dir, "*") {
                let stray: Vec<_> = docs.iter().filter(|(id, ..)| !ids.contains(id)).collect();
                assert!(stray.is_empty(), "seed {seed}, kills {kills:?}: {stray:?}");
                let index = SearchIndex::open(data_dir).unwrap();
                if let Some(covered) = index.coverage().personalities.get(NAME) {
                    assert!(
                        covered.commits <= store.state().commits,
                        "seed {seed}, kills {kills:?}"
                    );
                    assert!(covered.message_count <= store.state().message_count);
                }
            }
        }
    }
    sync(&config_path);
    let want = stored(&config);
    assert_eq!(want.len() as u64 / 2, fake.message_count(NAME) as u64);
    let got = indexed(data_dir, "version:current").expect("the index exists");
    assert_eq!(got.len(), want.len(), "seed {seed}, kills {kills:?}");
    assert!(
        got == want,
        "seed {seed}, kills {kills:?}: the index differs from the store"
    );
    let index = SearchIndex::open(data_dir).unwrap();
    let behind = chatkeep::search::behind(data_dir, index.coverage()).unwrap();
    assert!(behind.is_empty(), "{behind:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_makes_a_deleted_or_damaged_index_anew() {
    let (_fake, dir, config) = synced(vec![PersonalitySpec::new(NAME, 300)]).await;
    let index_dir = dir.path().join("data").join("search");
    let first = search_json(&config, &["moon"]);
    assert!(total(&first) > 0);

    std::fs::remove_dir_all(&index_dir).unwrap();
    let out = chatkeep(&config).arg("reindex").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reindexed `lilith`: 300 messages"),
        "{}",
        text(&out)
    );
    assert_eq!(search_json(&config, &["moon"]), first);

    // Damaged, while another process holds the data directory: search
    // cannot mend it, and says what to do.
    std::fs::write(index_dir.join("meta.json"), "{ not an index").unwrap();
    let lock = Store::open(&dir.path().join("data")).unwrap();
    let out = search(&config, &["moon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("chatkeep reindex"), "{}", text(&out));
    let out = chatkeep(&config).args(["reindex", NAME]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "reindex takes the lock: {}",
        text(&out)
    );
    drop(lock);
    let out = chatkeep(&config).args(["reindex", NAME]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(search_json(&config, &["moon"]), first);

    // Gone, with nothing holding the data directory: search builds it.
    std::fs::remove_dir_all(&index_dir).unwrap();
    let out = search(&config, &["--json", "--limit", "100000", "moon"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("updating the search index"), "{}", text(&out));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        first
    );

    let out = chatkeep(&config).args(["reindex", "nobody"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no chat history of `nobody`"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_order_limit_and_json_do_what_they_say() {
    // Two personalities, a message an hour from 2023-11-14T22:13:20Z.
    let specs: Vec<PersonalitySpec> = ["lilith", "nova"]
        .into_iter()
        .map(|name| {
            let mut spec = PersonalitySpec::new(name, 500);
            spec.step_ms = 3600 * 1000;
            spec
        })
        .collect();
    let (fake, dir, config) = synced(specs).await;
    let lilith = texts(&fake, "lilith");
    let nova = texts(&fake, "nova");
    let all = |_| true;

    let both = search_json(&config, &["moon"]);
    assert_eq!(
        total(&both),
        holding(&lilith, "moon", all) + holding(&nova, "moon", all)
    );
    let places: Vec<f64> = hits(&both).iter().map(|h| h["place"].as_f64().unwrap()).collect();
    assert!(places.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let one = search_json(&config, &["moon", "--personality", "nova"]);
    assert_eq!(total(&one), holding(&nova, "moon", all));
    assert!(hits(&one).iter().all(|h| h["personality"] == "nova"));

    // 2023-11-20 and the whole of 2023-11-25, UTC.
    let (from, to) = (1_700_438_400.0, 1_700_956_800.0);
    let window = search_json(
        &config,
        &["moon", "--since", "2023-11-20", "--until", "2023-11-25"],
    );
    let inside = |ts: f64| (from..to).contains(&ts);
    assert_eq!(
        total(&window),
        holding(&lilith, "moon", inside) + holding(&nova, "moon", inside)
    );
    assert!(hits(&window).iter().all(|h| inside(h["place"].as_f64().unwrap())));

    let limited = search_json(&config, &["moon"]);
    let three = search(&config, &["moon", "--json", "--limit", "3"]);
    let three: serde_json::Value = serde_json::from_slice(&three.stdout).unwrap();
    assert_eq!(hits(&three).len(), 3);
    assert_eq!(total(&three), total(&limited));
    assert_eq!(hits(&three)[..], hits(&limited)[..3]);

    let relevant = search_json(&config, &["moon", "river", "--sort", "relevance"]);
    let scores: Vec<f64> = hits(&relevant)
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(
        !scores.is_empty() && scores.windows(2).all(|w| w[0] >= w[1]),
        "{scores:?}"
    );

    // Plain output: a line per hit, the match between ** off a terminal.
    let plain = search(&config, &["moon", "--limit", "2"]);
    let stdout = String::from_utf8_lossy(&plain.stdout);
    assert!(
        stdout.contains("**moon**") && !stdout.contains('\x1b'),
        "{stdout}"
    );
    assert!(stdout.contains("2 of "), "{stdout}");

    // Beside a process holding the data directory (a daemon): no lock needed.
    let lock = Store::open(&dir.path().join("data")).unwrap();
    assert_eq!(search(&config, &["moon"]).status.code(), Some(0));
    drop(lock);

    for (args, says) in [
        (&["moon", "--since", "yesterday"][..], "--since"),
        (
            &["moon", "--since", "2024-02-01", "--until", "2024-01-01"],
            "--since is after --until",
        ),
        (&["moon AND (river"], "the query cannot be read"),
        (&["nosuchfield:moon"], "the query cannot be read"),
    ] {
        let out = search(&config, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
}
