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

/// The media index database, opened read only.
fn index_db(config: &Config) -> rusqlite::Connection {
    let path = config.storage.data_dir.join("media/index.sqlite");
    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// The last record of every URL of the index, by path on the media host.
fn index(config: &Config) -> HashMap<String, MediaState> {
    let db = index_db(config);
    let mut statement = db.prepare("SELECT record FROM urls").unwrap();
    let records: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    records
        .iter()
        .map(|json| {
            let record: chatkeep::media::MediaRecord = serde_json::from_str(json).unwrap();
            let url = reqwest::Url::parse(record.url.as_str()).unwrap();
            (url.path().to_owned(), record.state)
        })
        .collect()
}

/// The references the index lists for `personality`, in order, one
/// `{"url", "kind", "message"}` JSON text each.
fn refs(config: &Config, personality: &str) -> Vec<String> {
    let db = index_db(config);
    let mut statement = db
        .prepare("SELECT url, kind, message FROM refs WHERE personality = ?1 ORDER BY seq")
        .unwrap();
    statement
        .query_map([personality], |row| {
            let (url, kind, message): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
            Ok(serde_json::json!({"url": url, "kind": kind, "message": message}).to_string())
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The files of the media directory, but the index database's.
fn stored_files(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(config.storage.data_dir.join("media"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("index.sqlite"))
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
    let refs = refs(&config, "aria");
    assert!(refs.len() > 20, "{refs:?}");
    assert!(
        refs.iter()
            .any(|r| r.contains("\"kind\":\"voice\"") && r.contains("\"message\":\"")),
        "{refs:?}"
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
    let metrics = dir.path().join("data/metrics.prom");
    daemon_until_metrics(&path, &metrics, Duration::from_secs(30), |m| {
        ["aria", "bramble"].iter().all(|name| {
            m.contains(&format!(
                "chatkeep_media_files{{personality=\"{name}\",state=\"fetched\"}} 7"
            ))
        })
    })
    .await;
    // Two workers, one index: each URL asked for once.
    assert_eq!(media_requests(&fake, "/img/sunrise.png"), 1);
    let index = index(&load(&path));
    assert_eq!(
        stored_bytes(&load(&path), &index["/img/cat.jpg"]),
        fake.media().body_of("/img/cat.jpg")
    );
}

/// The members of a plain snapshot, name and bytes, in order.
fn members(snapshot: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let file = std::fs::File::open(snapshot).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|member| {
            let mut member = member.unwrap();
            let name = String::from_utf8(member.path_bytes().into_owned()).unwrap();
            let mut bytes = Vec::new();
            member.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tar.gz of `members`, names as they are (at most 100 bytes).
fn tar_gz(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, bytes) in members {
        // The name written raw, `..` and all: the tar crate would refuse it.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, &bytes[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn manifest_of(config: &Config) -> chatkeep::archive::Manifest {
    chatkeep::archive::Manifest::load(&config.archive.dir.join("aria"), "aria").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_carries_each_fetched_file_once_and_verify_and_restore_check_them() {
    let (fake, dir, path) = media_setup(FakeMediaConfig::default(), &["aria"]).await;
    let config = load(&path);
    pass(&config).await;
    let out = chatkeep(&path).arg("archive").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let manifest = manifest_of(&config);
    let entry = manifest.newest().unwrap().clone();
    let snapshot = config.archive.dir.join("aria").join(&entry.file);
    let held = members(&snapshot);
    let names: Vec<&str> = held.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, entry.members, "the manifest lists every member in order");
    // Every fetched file, once, byte for byte, under its hash.
    let mut stored = stored_files(&config);
    stored.sort();
    let mut media: Vec<&(String, Vec<u8>)> = held.iter().filter(|(n, _)| n.starts_with("media/")).collect();
    media.sort_by(|a, b| a.0.cmp(&b.0));
    let media_names: Vec<String> = media
        .iter()
        .map(|(n, _)| n["media/".len()..].to_owned())
        .collect();
    assert_eq!(media_names, stored, "each stored file once");
    for (name, bytes) in &media {
        let file = &name["media/".len()..];
        assert_eq!(file.split_once('.').unwrap().0, sha256_hex(bytes), "{name}");
        assert_eq!(
            bytes,
            &std::fs::read(config.storage.data_dir.join("media").join(file)).unwrap()
        );
    }
    // The map says what each URL became.
    let map = &held.iter().find(|(n, _)| n == "aria_media.jsonl").unwrap().1;
    let map: Vec<serde_json::Value> = String::from_utf8(map.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_path = |p: &str| {
        map.iter()
            .find(|l| l["url"].as_str().unwrap().contains(p))
            .unwrap_or_else(|| panic!("{p} not in the map"))
    };
    let sunrise = by_path("/img/sunrise.png");
    assert_eq!(sunrise["state"], "fetched");
    assert_eq!(sunrise["kind"], "attachment");
    assert!(
        sunrise["message"].is_string() || sunrise["message"].is_number(),
        "{sunrise}"
    );
    assert!(names.contains(&sunrise["file"].as_str().unwrap()), "{sunrise}");
    assert_eq!(by_path("/img/missing.png")["state"], "gone");
    assert_eq!(by_path("/img/huge.png")["state"], "too_large");
    assert_eq!(by_path("/voice/short.ogg")["state"], "failed");
    assert_eq!(by_path("/avatar/aria.png")["kind"], "avatar");

    let out = chatkeep(&path).arg("verify").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // Restore writes media/ files that hash to their names.
    let to = dir.path().join("restored");
    let out = chatkeep(&path)
        .args(["restore", "aria", "--snapshot", "latest", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut restored: Vec<String> = std::fs::read_dir(to.join("media"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    restored.sort();
    assert_eq!(restored, stored);
    for file in &restored {
        let bytes = std::fs::read(to.join("media").join(file)).unwrap();
        assert_eq!(file.split_once('.').unwrap().0, sha256_hex(&bytes), "{file}");
    }
    assert!(to.join("aria_media.jsonl").is_file());
    // Again: refused without --force, naming a media file too; done with it.
    let restore = |force: bool| {
        let mut command = chatkeep(&path);
        command
            .args(["restore", "aria", "--snapshot", "latest", "--to"])
            .arg(&to);
        if force {
            command.arg("--force");
        }
        command.output().unwrap()
    };
    let out = restore(false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("media/"), "{}", text(&out));
    let out = restore(true);
    assert!(out.status.success(), "{}", text(&out));

    // Nothing changed: no new snapshot. A file fetched at last: a new one.
    let out = chatkeep(&path).arg("archive").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(manifest_of(&config).snapshots.len(), 1);
    fake.media().set_fault("/voice/short.ogg", None);
    pass(&config).await;
    let out = chatkeep(&path).arg("archive").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let manifest = manifest_of(&config);
    assert_eq!(
        manifest.snapshots.len(),
        2,
        "a new media file makes a new snapshot"
    );
    let newest = manifest.newest().unwrap();
    assert_eq!(
        newest.members.iter().filter(|m| m.starts_with("media/")).count(),
        stored.len() + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_media_member_whose_bytes_changed_and_a_damaged_file_in_the_store() {
    let (_fake, dir, path) = media_setup(FakeMediaConfig::default(), &["aria"]).await;
    let config = load(&path);
    pass(&config).await;
    let out = chatkeep(&path).arg("archive").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let archive_dir = config.archive.dir.join("aria");
    let mut manifest = manifest_of(&config);
    let entry = &mut manifest.snapshots[0];
    let snapshot = archive_dir.join(&entry.file);
    // One byte of one media member flipped; the manifest lists the new
    // file truthfully, so only the member's hash can tell.
    let mut held = members(&snapshot);
    let (victim, bytes) = held.iter_mut().find(|(n, _)| n.starts_with("media/")).unwrap();
    let victim = victim.clone();
    bytes[0] ^= 0x01;
    let tampered = tar_gz(&held);
    std::fs::write(&snapshot, &tampered).unwrap();
    entry.size = tampered.len() as u64;
    entry.sha256 = sha256_hex(&tampered);
    manifest.save(&archive_dir).unwrap();
    let out = chatkeep(&path).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("{victim}: its content has SHA-256")),
        "{said}"
    );

    // A member under media/ not named by a hash is refused by name.
    let mut odd = members(&snapshot);
    odd.push(("media/../evil.sh".to_owned(), b"hi\n".to_vec()));
    let bytes = tar_gz(&odd);
    std::fs::write(&snapshot, &bytes).unwrap();
    let mut manifest = manifest_of(&config);
    let entry = &mut manifest.snapshots[0];
    entry.size = bytes.len() as u64;
    entry.sha256 = sha256_hex(&bytes);
    entry.members.push("media/../evil.sh".to_owned());
    manifest.save(&archive_dir).unwrap();
    let out = chatkeep(&path).arg("verify").output().unwrap();
    assert!(
        text(&out).contains("member \"media/../evil.sh\" is not a plain file name"),
        "{}",
        text(&out)
    );
    // And restore stops at it, writing nothing outside the directory.
    let to = dir.path().join("deep/restored");
    let out = chatkeep(&path)
        .args(["restore", "aria", "--snapshot", "latest", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("holds a member \"media/../evil.sh\""),
        "{}",
        text(&out)
    );
    assert!(!to.join("evil.sh").exists() && !dir.path().join("deep/evil.sh").exists());

    // The live store: a damaged media file is named.
    let file = stored_files(&config)[0].clone();
    let stored = config.storage.data_dir.join("media").join(&file);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&stored, &bytes).unwrap();
    let out = chatkeep(&path).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("media {file}: its content has SHA-256")),
        "{}",
        text(&out)
    );
}

fn messages_of(json: &str) -> Vec<serde_json::Value> {
    let export: serde_json::Value = serde_json::from_str(json).unwrap();
    export["messages"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_with_local_media_links_and_copies_the_files_and_one_with_urls_adds_nothing() {
    let (_fake, dir, path) = media_setup(FakeMediaConfig::default(), &["aria"]).await;
    let config = load(&path);
    pass(&config).await;
    let export = |args: &[&str]| {
        chatkeep(&path)
            .arg("export")
            .arg("aria")
            .args(args)
            .output()
            .unwrap()
    };

    let out = export(&["--media", "local"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--media local needs -o DIR"),
        "{}",
        text(&out)
    );
    assert!(out.stdout.is_empty());

    let local = dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let out = export(&["--media", "local", "-o", local.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let url_mode = export(&["--media", "url"]);
    assert!(url_mode.status.success(), "{}", text(&url_mode));
    let plain = String::from_utf8(url_mode.stdout).unwrap();
    assert!(!plain.contains("_chatkeep"), "--media url adds nothing");
    let plain = messages_of(&plain);
    let default = messages_of(&String::from_utf8(export(&[]).stdout).unwrap());
    assert_eq!(plain, default, "url is the default");

    let linked = messages_of(&std::fs::read_to_string(local.join("aria_chat_history.json")).unwrap());
    assert_eq!(linked.len(), plain.len());
    let mut kinds = std::collections::HashSet::new();
    for (mut with, without) in linked.into_iter().zip(&plain) {
        let note = with.as_object_mut().unwrap().remove("_chatkeep");
        // The service's fields are untouched.
        assert_eq!(&with, without);
        let Some(note) = note else {
            continue;
        };
        for (kind, file) in note["media"].as_object().unwrap() {
            kinds.insert(kind.clone());
            let file = file.as_str().unwrap();
            let bytes = std::fs::read(local.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let name = file.strip_prefix("media/").unwrap();
            assert_eq!(name.split_once('.').unwrap().0, sha256_hex(&bytes), "{file}");
            let field = format!("{kind}_url");
            let url = with[&field].as_str().unwrap();
            assert!(!url.contains("missing") && !url.contains("huge"), "{url}");
        }
    }
    assert_eq!(
        kinds,
        ["attachment", "voice_reply"].map(String::from).into(),
        "both kinds linked"
    );

    // The transcript embeds the local image and links the audio; a gone
    // URL is said to be gone.
    let out = export(&[
        "--format",
        "markdown",
        "--media",
        "local",
        "-o",
        local.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(local.join("aria_chat_history.md")).unwrap();
    let image = md
        .split("![attachment](")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no embedded image in {md}"));
    assert!(
        image.starts_with("media/") && local.join(image).is_file(),
        "{image}"
    );
    let voice = md
        .split("[voice reply](")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no voice link in {md}"));
    assert!(voice.starts_with("media/") && voice.ends_with(".mp3"), "{voice}");
    assert!(md.contains("gone from the service (HTTP 404)"), "{md}");
    assert!(md.contains("gone from the service (HTTP 410)"), "{md}");
    // With URLs, the transcript links the service's.
    let md = String::from_utf8(export(&["--format", "markdown"]).stdout).unwrap();
    assert!(md.contains("![attachment](http://127.0.0.1:"), "{md}");
    assert!(md.contains("[voice reply](http://127.0.0.1:"), "{md}");
    assert!(!md.contains("](media/"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_of_messages_that_arrive_later_is_found_from_the_head_and_fetched() {
    let (fake, _dir, path) = media_setup(FakeMediaConfig::default(), &["aria"]).await;
    let config = load(&path);
    pass(&config).await;
    let media = fake.media();
    let scanned = std::fs::read_to_string(config.storage.data_dir.join("aria/media_refs.scanned")).unwrap();
    assert!(scanned.contains("\"newest\""), "{scanned}");
    // Two new messages at the top: one with a file never seen before.
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let new_url = media.url("/img/arrived-later.png");
    fake.push_raw_message(
        "aria",
        &format!(
            r#"{{"id":"late-1","message":"look","reply":"nice","ts":{now},"attachment_url":"{new_url}","attachment_type":"image","voice_reply_url":null}}"#
        ),
    );
    fake.push_raw_message(
        "aria",
        &format!(r#"{{"id":"late-2","message":"and","reply":"so","ts":{},"attachment_url":null,"voice_reply_url":null}}"#, now + 1.0),
    );
    let failed: Vec<String> = index(&config)
        .into_iter()
        .filter(|(_, state)| matches!(state, MediaState::Failed { .. }))
        .map(|(path, _)| path)
        .collect();
    let before = media.requests().len();
    pass(&config).await;
    let asked: Vec<String> = media.requests()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    let new: Vec<&String> = asked.iter().filter(|p| !failed.contains(p)).collect();
    assert_eq!(
        new,
        ["/img/arrived-later.png"],
        "only the new file, besides retries"
    );
    let index = index(&config);
    assert_eq!(
        stored_bytes(&config, &index["/img/arrived-later.png"]),
        media.body_of("/img/arrived-later.png")
    );
    let refs = refs(&config, "aria");
    assert!(
        refs.iter()
            .any(|r| r.contains("late-1") && r.contains("arrived-later.png")),
        "{refs:?}"
    );
}

/// How many of `times` fall in `from..=to`.
fn within(times: &[Instant], from: Instant, to: Instant) -> usize {
    times.iter().filter(|&&t| from <= t && t <= to).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_backlog_downloading_beside_another_walk_leaves_the_chat_rate_as_configured() {
    // Chat at 5/s, burst 1; media at 100/s. "backlog" has a short walk
    // and a backlog of distinct files (200 images, 150 voice replies, an
    // avatar); "walker" has a long walk (70 pages of 50) and no media. Two
    // workers run them side by side, taking turns at the chat bucket, so
    // the backlog (after 12 pages) downloads while the walker's walk goes
    // on.
    const RPS: f64 = 5.0;
    const BURST: usize = 1;
    let media = FakeMediaConfig {
        distinct_files: true,
        ..FakeMediaConfig::default()
    };
    let specs = vec![
        PersonalitySpec::new("backlog", 600),
        PersonalitySpec::new("walker", 3500),
    ];
    let fake = fake(with_media(media), specs).await;
    let backlog_files = (0..600).filter(|i| i % 3 == 0).count() + (0..600).filter(|i| i % 4 == 1).count() + 1;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &fake.base_url(), &["backlog", "walker"], RPS, "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("name = \"walker\"\n", "name = \"walker\"\nmedia = []\n")
        // A schedule that never fires here: only the run on start.
        + "\n[media]\nrequests_per_second = 100\n\n\
           [daemon]\nworkers = 2\nrun_on_start = true\nschedule = \"0 0 0 1 1 *\"\n";
    std::fs::write(&path, text).unwrap();
    let metrics = dir.path().join("data/metrics.prom");
    daemon_until_metrics(&path, &metrics, Duration::from_secs(90), |m| {
        m.contains(&format!(
            "chatkeep_media_files{{personality=\"backlog\",state=\"fetched\"}} {backlog_files}\n"
        )) && m.contains("chatkeep_last_run_ok{personality=\"walker\"} 1\n")
    })
    .await;

    // Every request the service saw drew from the one chat bucket.
    let service = fake.requests();
    let chat: Vec<Instant> = service.iter().map(|r| r.at).collect();
    let walk: Vec<Instant> = service
        .iter()
        .filter(|r| r.is_chat && r.personality.as_deref() == Some("walker"))
        .map(|r| r.at)
        .collect();
    let downloads: Vec<Instant> = fake.media().requests().iter().map(|r| r.at).collect();
    assert_eq!(downloads.len(), backlog_files, "each file asked for once");
    let (walk_start, walk_end) = (walk[0], *walk.last().unwrap());

    // The overlap really happened: downloads while the walk went on, over
    // a window long enough to judge a rate in.
    let during: Vec<Instant> = downloads
        .iter()
        .copied()
        .filter(|&t| walk_start <= t && t <= walk_end)
        .collect();
    assert!(
        during.len() >= 20,
        "only {} of {} downloads during the walk ({:?} long; {} before it, {} after)",
        during.len(),
        downloads.len(),
        walk_end - walk_start,
        downloads.iter().filter(|&&t| t < walk_start).count(),
        downloads.iter().filter(|&&t| t > walk_end).count(),
    );
    let (from, to) = (during[0], *during.last().unwrap());
    let window = (to - from).as_secs_f64();
    assert!(
        window >= 1.0,
        "the downloads overlapped the walk for {window:.2} s only"
    );

    // Never faster than the bucket allows, media or not. Arrival times
    // carry scheduling jitter (tests run in parallel): one of slack.
    let busiest = busiest_second(&chat);
    assert!(
        busiest <= RPS as usize + BURST + 1,
        "{busiest} service requests in one second at {RPS}/s, burst {BURST}"
    );
    // Nor slower: during the overlap the service still saw (nearly) its
    // configured rate. A media download drawing a chat token would
    // starve the walk, here by 100 to 5.
    let served = within(&chat, from, to);
    let expected = RPS * window;
    assert!(
        served as f64 >= 0.7 * expected - 1.0,
        "{served} service requests in the {window:.2} s of overlap, {expected:.1} expected at {RPS}/s"
    );
    // And the downloads went faster than the chat bucket could ever let
    // them: they had a bucket of their own.
    assert!(
        during.len() as f64 > RPS * window + BURST as f64 + 1.0,
        "{} downloads in {window:.2} s: no faster than the chat bucket",
        during.len()
    );
}

/// Runs a real daemon on `config` until its metrics file satisfies `done`
/// (then stops it), failing with the file's last text after `limit`.
async fn daemon_until_metrics(config: &Path, metrics: &Path, limit: Duration, done: impl Fn(&str) -> bool) {
    let mut daemon = chatkeep(config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reached = || std::fs::read_to_string(metrics).is_ok_and(|m| done(&m));
    let deadline = Instant::now() + limit;
    while !reached() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        reached(),
        "{}",
        std::fs::read_to_string(metrics).unwrap_or_default()
    );
}
