//! docs/FORMAT.md promises that a backup can be read with `zcat` and `jq`
//! alone. This runs its recipes, as written there, against a backup that
//! went through regenerations, deletions, a late message and older history,
//! and holds their output against `chatkeep export`.

mod common;

use std::path::Path;
use std::process::Command;

use chatkeep::export::{self, ExportMeta, ExportOptions, Format};
use chatkeep::fake::{FakeConfig, PersonalitySpec};
use chatkeep::store::ChatStore;
use common::*;

const NAME: &str = "recipe";

/// The shell code of the recipe marked `<!-- recipe: {name} -->`.
fn recipe(name: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    let marker = format!("<!-- recipe: {name} -->");
    let after = doc
        .split_once(&marker)
        .unwrap_or_else(|| panic!("docs/FORMAT.md has no {marker}"))
        .1;
    let code = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no sh block after {marker}"))
        .0;
    code.to_owned()
}

/// Runs `code` with bash in `dir`.
fn run(dir: &Path, code: &str) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", code])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{code}\n{}", text(&out));
}

/// The lines' JSON values, every number as a double: jq 1.6 prints
/// `1700000000.0` as `1700000000` and `1E+2` as `100`, the same value.
fn values(lines: &[String]) -> Vec<serde_json::Value> {
    fn as_doubles(value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Number(n) => n.as_f64().map_or(Value::Number(n), |f| serde_json::json!(f)),
            Value::Array(items) => Value::Array(items.into_iter().map(as_doubles).collect()),
            Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, as_doubles(v))).collect()),
            other => other,
        }
    }
    lines
        .iter()
        .map(|l| as_doubles(serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))))
        .collect()
}

/// The two lists of lines are the same values, line by line.
fn assert_same(got: &[String], want: &[String], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of lines");
    for (n, (g, w)) in values(got).iter().zip(values(want)).enumerate() {
        assert_eq!(
            *g,
            w,
            "{what}: line {}:\n  recipe: {}\n  export: {}",
            n + 1,
            got[n],
            want[n]
        );
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn exported(store: &ChatStore, options: ExportOptions) -> Vec<String> {
    let mut out = Vec::new();
    let meta = ExportMeta {
        shape_id: "",
        shape_name: NAME,
        display_name: None,
    };
    export::write_with(store, &meta, Format::Jsonl, &options, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zcat_and_jq_recipes_of_the_format_document_read_the_history_as_export_does() {
    for tool in ["jq", "zcat", "bash", "head"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "this test needs `{tool}` (.ci/run installs it)");
    }
    let mut spec = PersonalitySpec::new(NAME, 1_500);
    spec.extra_fields = true;
    spec.hostile_unicode = true;
    spec.tie_groups = vec![(100, 3), (1_490, 4)];
    let fake = fake(FakeConfig::default(), vec![spec]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    // Small segments, so the log is several files.
    let mut edited = std::fs::read_to_string(&path).unwrap().replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nsegment_size = \"64KiB\"",
    );
    edited.push_str("\n[sync]\ntail_check = \"0s\"\n");
    std::fs::write(&path, edited).unwrap();
    let config = load(&path);
    let sync = |config: &chatkeep::config::Config| {
        let config = config.clone();
        async move { assert!(pass(&config).await.all_ok()) }
    };
    sync(&config).await;
    // The next first page leaves the 3rd newest out (a lagging replica).
    fake.append_messages(NAME, 60);
    let truth = fake.ground_truth(NAME);
    let page: Vec<&str> = truth
        .iter()
        .rev()
        .take(51)
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, m)| m.as_str())
        .collect();
    fake.queue_chat_bodies([Some(format!("[{}]", page.join(",")).into_bytes())]);
    sync(&config).await;
    fake.regenerate_nth_newest(NAME, 0);
    fake.regenerate_nth_newest(NAME, 5);
    fake.regenerate_nth_newest(NAME, 5);
    fake.delete_nth_newest(NAME, 8);
    fake.insert_older(NAME, 30);
    sync(&config).await;
    // Deep changes, for the audit.
    fake.regenerate_nth_newest(NAME, 300);
    fake.delete_nth_newest(NAME, 250);
    let out = chatkeep(&path).args(["audit", "--repair"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let personality = config.storage.data_dir.join(NAME);
    let store = ChatStore::open_read_only(&personality).unwrap();
    let state = store.state();
    assert!(state.segments.len() >= 2, "{:?}", state.segments);
    let overlay = state.overlay.as_ref().expect("an overlay");
    assert!(
        overlay.late >= 1 && overlay.revised >= 3 && overlay.deleted >= 2,
        "{overlay:?}"
    );

    run(&personality, &recipe("log"));
    let log: Vec<String> = store.lines().unwrap().map(Result::unwrap).collect();
    assert_eq!(read_lines(&personality.join("log.jsonl")), log, "byte for byte");

    run(&personality, &recipe("current"));
    let history = read_lines(&personality.join("history.jsonl"));
    let export = exported(&store, ExportOptions::default());
    assert_same(&history, &export, "current versions");

    run(&personality, &recipe("earlier"));
    let earlier = read_lines(&personality.join("earlier.jsonl"));
    let with_revisions = exported(
        &store,
        ExportOptions {
            revisions: true,
            ..ExportOptions::default()
        },
    );
    let superseded: Vec<String> = with_revisions
        .into_iter()
        .filter(|l| l.contains("\"superseded_at\""))
        .collect();
    assert_eq!(superseded.len() as u64, overlay.revisions);
    assert_same(&earlier, &superseded, "earlier versions");
}
