//! Media against the fake's media host over loopback: what is stored, what
//! is refused, what is retried, what never carries the cookie, and what a
//! SIGKILL mid-download leaves.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chatkeep::config::Config;
use chatkeep::fake::{FakeConfig, FakeMediaConfig, FakeService, MediaFault, PersonalitySpec};
use chatkeep::media::{
    AddressPolicy, FetchError, FetchOptions, MediaFetcher, MediaState, MediaStore, MediaUrl,
};
use common::*;
use tokio_util::sync::CancellationToken;

/// `[media]` for tests: fast, and a max_file_size the huge file passes.
const MEDIA: &str = "\n[media]\nrequests_per_second = 1000\nmax_file_size = \"1MiB\"\n";

fn with_media(media: FakeMediaConfig) -> FakeConfig {
    FakeConfig {
        media: Some(media),
        ..FakeConfig::default()
    }
}

/// A fake with its media host serving `names` (48 messages each: every
/// file of the catalogue is linked), and a config for it.
async fn media_setup(media: FakeMediaConfig, names: &[&str]) -> (FakeService, tempfile::TempDir, PathBuf) {
    let specs = names.iter().map(|n| PersonalitySpec::new(*n, 48)).collect();
    let fake = fake(with_media(media), specs).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &fake.base_url(), names, 10_000.0, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(MEDIA);
    std::fs::write(&path, text).unwrap();
    (fake, dir, path)
}

/// The last record of every URL of the index, by path on the media host.
fn index(config: &Config) -> HashMap<String, MediaState> {
    let text = std::fs::read_to_string(config.storage.data_dir.join("media/index.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let record: chatkeep::media::MediaRecord = serde_json::from_str(line).unwrap();
            let url = reqwest::Url::parse(record.url.as_str()).unwrap();
            (url.path().to_owned(), record.state)
        })
        .collect()
}

/// The files of the media directory, but the index.
fn stored_files(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(config.storage.data_dir.join("media"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "index.jsonl")
        .collect();
    names.sort();
    names
}

fn media_requests(fake: &FakeService, path: &str) -> usize {
    fake.media().requests().iter().filter(|r| r.path == path).count()
}

fn stored_bytes(config: &Config, state: &MediaState) -> Vec<u8> {
    match state {
        MediaState::Fetched { file, .. } => {
            std::fs::read(config.storage.data_dir.join("media").join(file)).unwrap()
        }
        other => panic!("not fetched: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reachable_file_is_stored_once_byte_exact_and_never_with_the_cookie() {
    let (fake, _dir, path) = media_setup(FakeMediaConfig::default(), &["aria", "bramble"]).await;
    let config = load(&path);
    let outcome = pass(&config).await;
    for report in &outcome.reports {
        assert_eq!(
            report.outcome(),
            chatkeep::status::Outcome::Ok,
            "{}",
            chatkeep::sync::summary(report)
        );
    }
    let media = fake.media();
    let index = index(&config);
    // Stored, byte for byte: the plain ones, the one redirected on the
    // host, the one redirected to another origin, the slow one, avatars.
    for (linked, served) in [
        ("/img/sunrise.png", "/img/sunrise.png"),
        ("/img/cat.jpg", "/img/cat.jpg"),
        ("/img/moved.png", "/img/moved-here.png"),
        ("/voice/hello.mp3", "/voice/hello.mp3"),
        ("/voice/slow.mp3", "/voice/slow.mp3"),
        ("/avatar/aria.png", "/avatar/aria.png"),
        ("/avatar/bramble.png", "/avatar/bramble.png"),
    ] {
        let state = index
            .get(linked)
            .unwrap_or_else(|| panic!("{linked} not in the index"));
        assert_eq!(stored_bytes(&config, state), media.body_of(served), "{linked}");
        // Linked by many messages of two personalities, asked for once.
        assert_eq!(media_requests(&fake, linked), 1, "{linked}");
    }
    // The away file is the same path on the other port: the same bytes.
    assert_eq!(
        stored_bytes(&config, &index["/img/away.png"]),
        media.body_of("/img/away.png")
    );
    assert_eq!(index["/img/missing.png"], MediaState::Gone { status: 404 });
    assert_eq!(index["/voice/expired.ogg"], MediaState::Gone { status: 410 });
    assert_eq!(
        index["/img/huge.png"],
        MediaState::TooLarge { limit: 1024 * 1024 }
    );
    assert!(
        matches!(&index["/voice/short.ogg"], MediaState::Failed { attempts: 1, error, .. } if error.contains("announced")),
        "{:?}",
        index["/voice/short.ogg"]
    );
    // Each content once, named by its hash, with a fitting extension.
    let files = stored_files(&config);
    assert_eq!(files.len(), 8, "{files:?}");
    for file in &files {
        let (hash, ext) = file.split_once('.').unwrap();
        assert_eq!(hash.len(), 64, "{file}");
        assert!(["png", "jpg", "mp3"].contains(&ext), "{file}");
    }
    // Never the cookie, on either port of the media host.
    let requests = media.requests();
    assert!(requests.len() >= 12, "{requests:?}");
    assert!(requests.iter().all(|r| r.cookie.is_none()), "{requests:?}");
    // The summary and the status count them per personality.
    let aria = &outcome.reports[0];
    let line = chatkeep::sync::summary(aria);
    assert!(line.contains("media "), "{line}");
    let totals = aria.status.media.clone().expect("media totals in the status");
    assert_eq!(
        (totals.gone, totals.failed, totals.refused, totals.pending),
        (2, 1, 1, 0),
        "{totals:?}"
    );
    assert_eq!(totals.fetched, 7, "{totals:?}");
    let status = std::fs::read_to_string(config.storage.data_dir.join("aria/status.json")).unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["media"]["gone"], 2);
    // Each personality lists what its messages point to, with message ids.
    let refs = std::fs::read_to_string(config.storage.data_dir.join("aria/media_refs.jsonl")).unwrap();
    assert!(refs.lines().count() > 20, "{refs}");
    assert!(
        refs.contains("\"kind\":\"voice\"") && refs.contains("\"message\":"),
        "{refs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_body_is_retried_next_run_and_a_third_run_downloads_nothing() {
    let (fake, _dir, path) = media_setup(FakeMediaConfig::default(), &["aria"]).await;
    let config = load(&path);
    pass(&config).await;
    assert!(matches!(
        index(&config)["/voice/short.ogg"],
        MediaState::Failed { .. }
    ));
    assert!(!stored_files(&config).iter().any(|f| f.starts_with(".part-")));
    let media = fake.media();
    media.set_fault("/voice/short.ogg", None);
    let before = media.requests().len();
    pass(&config).await;
    let second: Vec<String> = media.requests()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(second, ["/voice/short.ogg"], "only the failed one is asked again");
    let index = index(&config);
    assert_eq!(
        stored_bytes(&config, &index["/voice/short.ogg"]),
        media.body_of("/voice/short.ogg")
    );
    let before = media.requests().len();
    pass(&config).await;
    assert_eq!(media.requests().len(), before, "a third sync asks for nothing");
}

/// A fetcher as a sync of a service at `service` makes it.
fn fetcher(service: &str) -> MediaFetcher {
    MediaFetcher::new(FetchOptions {
        max_file_size: 1024 * 1024,
        requests_per_second: 1000.0,
        max_bytes_per_second: None,
        timeout: Duration::from_secs(10),
        user_agent: "chatkeep-test".into(),
        policy: AddressPolicy::for_service(service),
    })
}

async fn fetch(
    fetcher: &MediaFetcher,
    store: &MediaStore,
    url: &str,
) -> Result<chatkeep::media::Fetched, FetchError> {
    fetcher
        .fetch(&MediaUrl::new(url), store, &CancellationToken::new())
        .await
}

#[tokio::test]
async fn private_link_local_and_non_http_targets_are_refused() {
    let fake = fake(with_media(FakeMediaConfig::default()), vec![]).await;
    let media = fake.media();
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path()).unwrap();
    let ours = fetcher(&fake.base_url());
    for (target, words) in [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/x.png", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::1]:9/", "loopback"),
        ("file:///etc/passwd", "only http and https"),
    ] {
        media.set_fault("/img/cat.jpg", Some(MediaFault::RedirectTo(target.into())));
        let before = media.requests().len();
        let err = fetch(&ours, &store, &media.url("/img/cat.jpg"))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Refused { .. }), "{target}: {err}");
        assert!(err.to_string().contains(words), "{target}: {err}");
        // The query (a signature) never shows.
        assert!(!err.to_string().contains("sig="), "{err}");
        assert_eq!(
            media.requests().len(),
            before + 1,
            "{target}: only the redirect was asked"
        );
    }
    // A message from a service elsewhere pointing at 127.0.0.1 is refused
    // before any request; from the service's own host it is fetched.
    let elsewhere = fetcher("https://shapes.inc");
    let before = media.requests().len();
    let err = fetch(&elsewhere, &store, &media.url("/img/sunrise.png"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
    assert_eq!(media.requests().len(), before);
    let err = fetch(&ours, &store, "file:///etc/passwd").await.unwrap_err();
    assert!(matches!(err, FetchError::Refused { .. }), "{err}");
    let fetched = fetch(&ours, &store, &media.url("/img/sunrise.png"))
        .await
        .unwrap();
    assert_eq!(fetched.content_type.as_deref(), Some("image/png"));
}

#[tokio::test]
async fn the_oversized_file_is_refused_with_a_clear_message() {
    let fake = fake(with_media(FakeMediaConfig::default()), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path()).unwrap();
    let err = fetch(
        &fetcher(&fake.base_url()),
        &store,
        &fake.media().url("/img/huge.png"),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 1048576, .. }),
        "{text}"
    );
    assert!(
        text.contains("larger than max_file_size") && text.contains("/img/huge.png"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(store.dir()).unwrap().count(),
        0,
        "nothing is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_download_leaves_nothing_that_looks_complete_and_the_next_run_completes_it() {
    // About 6 s for the slow file.
    let slow = FakeMediaConfig {
        slow_size: 512 * 1024,
        slow_chunk: 8 * 1024,
        slow_delay: Duration::from_millis(100),
        ..FakeMediaConfig::default()
    };
    let (fake, dir, path) = media_setup(slow, &["aria"]).await;
    let config = load(&path);
    let media = fake.media();
    let mut child = chatkeep(&path)
        .arg("sync")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while media_requests(&fake, "/voice/slow.mp3") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        media_requests(&fake, "/voice/slow.mp3"),
        1,
        "the slow download started"
    );
    // Some of it is on disk by now.
    tokio::time::sleep(Duration::from_millis(800)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let media_dir = dir.path().join("data/media");
    let parts = part_files(&media_dir);
    assert_eq!(parts.len(), 1, "{:?}", stored_files(&config));
    let partial = std::fs::metadata(&parts[0]).unwrap().len();
    assert!(partial > 0 && partial < 512 * 1024, "{partial}");
    let slow_body = media.body_of("/voice/slow.mp3");
    assert!(
        !index(&config).contains_key("/voice/slow.mp3"),
        "not in the index"
    );
    for file in stored_files(&config) {
        assert_ne!(std::fs::read(media_dir.join(&file)).unwrap(), slow_body, "{file}");
    }
    // The next run removes the leftover and stores the whole file.
    media.set_fault("/voice/slow.mp3", None);
    let out = chatkeep(&path).arg("sync").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(part_files(&media_dir).is_empty());
    let index = index(&config);
    let whole = media.body_of("/voice/slow.mp3");
    assert_eq!(stored_bytes(&config, &index["/voice/slow.mp3"]), whole);
}

fn part_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".part-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_media_counts_in_text_and_json() {
    let (_fake, _dir, path) = media_setup(FakeMediaConfig::default(), &["aria"]).await;
    pass(&load(&path)).await;
    let out = chatkeep(&path).arg("status").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("aria: media: 7 stored, 1 failed (retried later), 2 gone upstream, 1 refused"),
        "{}",
        text(&out)
    );
    let out = chatkeep(&path).args(["status", "--json"]).output().unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let aria = json["personalities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "aria")
        .unwrap();
    assert_eq!(aria["media"]["fetched"], 7, "{aria}");
    assert_eq!(aria["media"]["gone"], 2, "{aria}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personality_can_switch_kinds_of_media_off() {
    let (fake, _dir, path) = media_setup(FakeMediaConfig::default(), &["aria", "bramble"]).await;
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("name = \"aria\"\n", "name = \"aria\"\nmedia = [\"avatars\"]\n")
        .replace("name = \"bramble\"\n", "name = \"bramble\"\nmedia = []\n");
    std::fs::write(&path, text).unwrap();
    let config = load(&path);
    let outcome = pass(&config).await;
    let paths: Vec<String> = fake.media().requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/avatar/aria.png"]);
    // Switched off entirely: no media line, nothing counted.
    assert!(outcome.reports[1].status.media.is_none());
    assert!(!chatkeep::sync::summary(&outcome.reports[1]).contains("media"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_per_run_leaves_the_rest_pending_for_the_next_run() {
    let (fake, dir, path) = media_setup(FakeMediaConfig::default(), &["aria"]).await;
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replace("[media]\n", "[media]\nmax_bytes_per_run = 1024\n");
    std::fs::write(&path, text).unwrap();
    let config = load(&path);
    let first = pass(&config).await.reports[0].status.media.clone().unwrap();
    // Every file is larger than the budget: one download spends it all.
    assert_eq!(first.fetched_now, 1, "{first:?}");
    assert!(first.pending > 5, "{first:?}");
    let second = pass(&config).await.reports[0].status.media.clone().unwrap();
    assert_eq!(second.fetched_now, 1, "{second:?}");
    assert_eq!(second.pending + 1, first.pending, "{second:?}");
    drop((fake, dir));
}

#[tokio::test]
async fn the_bandwidth_limit_paces_a_download() {
    let fake = fake(with_media(FakeMediaConfig::default()), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path()).unwrap();
    let limited = MediaFetcher::new(FetchOptions {
        max_bytes_per_second: Some(64 * 1024),
        ..fetcher(&fake.base_url()).options().clone()
    });
    // The slow file is 256 KiB, sent in 16 KiB chunks every 20 ms (about
    // 0.3 s); at 64 KiB/s its download takes nearly 4 s.
    let started = Instant::now();
    let fetched = fetch(&limited, &store, &fake.media().url("/voice/slow.mp3"))
        .await
        .unwrap();
    assert_eq!(fetched.size, 256 * 1024);
    assert!(
        started.elapsed() >= Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_stops_media_at_the_download_in_progress_and_leaves_no_partial_file() {
    let slow = FakeMediaConfig {
        slow_delay: Duration::from_millis(200),
        ..FakeMediaConfig::default()
    };
    let (fake, dir, path) = media_setup(slow, &["aria"]).await;
    let config = load(&path);
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let media = fake.media();
    let watch = async {
        while media_requests(&fake, "/voice/slow.mp3") == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    };
    let run = chatkeep::commands::sync::run_pass(&config, &[], Default::default(), &cancel);
    let (outcome, ()) = tokio::join!(run, watch);
    let report = &outcome.unwrap().reports[0];
    // The chat was stored before media began: the backup is whole.
    assert_eq!(
        report.outcome(),
        chatkeep::status::Outcome::Ok,
        "{}",
        chatkeep::sync::summary(report)
    );
    assert!(part_files(&dir.path().join("data/media")).is_empty());
    let index = index(&config);
    assert!(!index.contains_key("/voice/slow.mp3"), "{index:?}");
    let requests = media.requests().len();
    // Nothing after the stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(media.requests().len(), requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_draws_nothing_from_the_services_request_budget() {
    let requests_with = |media_on: bool| async move {
        let (fake, _dir, path) = media_setup(FakeMediaConfig::default(), &["aria"]).await;
        if !media_on {
            let text = std::fs::read_to_string(&path).unwrap().replace(
                "[media]\n",
                "[media]\nattachments = false\nvoice_replies = false\navatars = false\n",
            );
            std::fs::write(&path, text).unwrap();
        }
        let report = pass(&load(&path)).await.reports.remove(0);
        let api_requests = fake.requests().len();
        (
            report.status.requests,
            api_requests,
            fake.media().requests().len(),
        )
    };
    let (with_requests, with_api, with_media) = requests_with(true).await;
    let (without_requests, without_api, without_media) = requests_with(false).await;
    assert!(with_media > 10 && without_media == 0);
    // The service sees the same requests, and the client's counter (the
    // token bucket's draws) is the same: media went elsewhere.
    assert_eq!((with_requests, with_api), (without_requests, without_api));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_downloads_media_and_counts_it_in_its_metrics() {
    let (fake, dir, path) = media_setup(FakeMediaConfig::default(), &["aria", "bramble"]).await;
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[daemon]\nrun_on_start = true\n");
    std::fs::write(&path, text).unwrap();
    let mut daemon = chatkeep(&path)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let metrics = dir.path().join("data/metrics.prom");
    let deadline = Instant::now() + Duration::from_secs(30);
    let both_counted = || {
        std::fs::read_to_string(&metrics).is_ok_and(|m| {
            ["aria", "bramble"].iter().all(|name| {
                m.contains(&format!(
                    "chatkeep_media_files{{personality=\"{name}\",state=\"fetched\"}} 7"
                ))
            })
        })
    };
    while !both_counted() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        both_counted(),
        "{}",
        std::fs::read_to_string(&metrics).unwrap_or_default()
    );
    // Two workers, one index: each URL asked for once.
    assert_eq!(media_requests(&fake, "/img/sunrise.png"), 1);
    let index = index(&load(&path));
    assert_eq!(
        stored_bytes(&load(&path), &index["/img/cat.jpg"]),
        fake.media().body_of("/img/cat.jpg")
    );
}
