//! Offsite copies: snapshots uploaded to an S3-compatible store, verified
//! there and restored from it. The store is a real S3 server process
//! (s3s-fs, see `common/s3.rs`) on loopback; the personalities come from
//! the fake service, and `chatkeep` is the real binary.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chatkeep::archive::Manifest;
use chatkeep::fake::{FakeConfig, FakeMediaConfig, FakeService, PersonalitySpec};
use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use common::*;

const BUCKET: &str = "backups";
const PREFIX: &str = "host-a";
/// Media files of this size make a snapshot of a few parts (5 MiB each).
const MEDIA_FILE_SIZE: usize = 400_000;

/// A synced store of `personalities`, an S3 server, and a config with one
/// `[[remote]]` named `offsite` on it (keys in files) plus `remote_extra`.
struct Offsite {
    _fake: FakeService,
    dir: tempfile::TempDir,
    path: PathBuf,
    server: S3Server,
}

async fn offsite(personalities: &[(&str, usize)], archive: &str, remote_extra: &str) -> Offsite {
    let server = S3Server::start(&[BUCKET]);
    let endpoint = server.endpoint();
    offsite_on(server, &endpoint, false, personalities, archive, remote_extra).await
}

/// [`offsite`] with the server given, reached at `endpoint`; with `media`,
/// the messages link incompressible media files, each in the snapshot, so
/// that a snapshot of 48 messages is some 11 MB: an upload of 3 parts.
async fn offsite_on(
    server: S3Server,
    endpoint: &str,
    media: bool,
    personalities: &[(&str, usize)],
    archive: &str,
    remote_extra: &str,
) -> Offsite {
    let specs = personalities
        .iter()
        .map(|(name, n)| PersonalitySpec::new(*name, *n))
        .collect();
    let fake_config = FakeConfig {
        media: media.then(|| FakeMediaConfig {
            distinct_files: true,
            file_size: Some(MEDIA_FILE_SIZE),
            ..FakeMediaConfig::default()
        }),
        ..FakeConfig::default()
    };
    let fake = fake(fake_config, specs).await;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<&str> = personalities.iter().map(|(n, _)| *n).collect();
    let path = write_config(dir.path(), &fake.base_url(), &names, 10_000.0, "");
    fs::write(dir.path().join("s3-id"), format!("{ACCESS_KEY}\n")).unwrap();
    fs::write(dir.path().join("s3-secret"), format!("{SECRET_KEY}\n")).unwrap();
    let mut text = fs::read_to_string(&path).unwrap();
    if media {
        text.push_str("\n[media]\nrequests_per_second = 1000\nmax_file_size = \"1MiB\"\n");
    }
    text.push_str(&format!(
        "\n[archive]\n{archive}\n\n[[remote]]\nname = \"offsite\"\nurl = \"s3://{BUCKET}/{PREFIX}\"\n\
         endpoint = \"{endpoint}\"\n{remote_extra}\n"
    ));
    if !remote_extra.contains("access_key_id") {
        text.push_str("access_key_id_file = \"s3-id\"\nsecret_access_key_file = \"s3-secret\"\n");
    }
    fs::write(&path, text).unwrap();
    let config = load(&path);
    let outcome = pass(&config).await;
    assert!(outcome.all_ok(), "{:?}", outcome.reports);
    Offsite {
        _fake: fake,
        dir,
        path,
        server,
    }
}

/// A TCP relay to the S3 server that passes at most `bytes_per_second`
/// towards it on each connection: an upload through it takes long enough
/// to be cut in its middle. Its threads end with their connections.
struct SlowLink {
    port: u16,
}

impl SlowLink {
    fn start(to: u16, bytes_per_second: u64) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                // The server gone: the client's connection is closed.
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let (mut from_client, mut to_server) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from_client.read(&mut buf) {
                        if to_server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_secs_f64(n as f64 / bytes_per_second as f64));
                    }
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let (mut from_server, mut to_client) = (server, client);
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        SlowLink { port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Offsite {
    /// The binary, tried again while the data directory is refused as held
    /// by this test process, which it is not (a child forked by another
    /// test's thread held a copy of the lock; see tests/archive.rs).
    fn run(&self, args: &[&str]) -> Output {
        let held_by_us = format!("in use by another chatkeep process (pid {})", std::process::id());
        for _ in 0..50 {
            let out = self.command(args).output().unwrap();
            if !String::from_utf8_lossy(&out.stderr).contains(&held_by_us) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the data directory stays locked")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = chatkeep(&self.path);
        cmd.args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN");
        cmd
    }

    fn archives(&self, name: &str) -> PathBuf {
        self.dir.path().join("data").join("archives").join(name)
    }

    fn local_manifest(&self, name: &str) -> Manifest {
        Manifest::load(&self.archives(name), name).unwrap()
    }

    /// The remote's manifest of `name`, read from the server's disk;
    /// `None` when it has none.
    fn remote_manifest(&self, name: &str) -> Option<Manifest> {
        let path = self
            .server
            .object_path(BUCKET, &format!("{PREFIX}/{name}/manifest.json"));
        let bytes = fs::read(path).ok()?;
        Some(Manifest::parse(&bytes, name).unwrap())
    }

    fn remote_object(&self, name: &str, file: &str) -> PathBuf {
        self.server
            .object_path(BUCKET, &format!("{PREFIX}/{name}/{file}"))
    }

    /// Replaces the text `from` of the config with `to`.
    fn edit_config(&self, from: &str, to: &str) {
        let text = fs::read_to_string(&self.path).unwrap();
        assert!(text.contains(from), "{text}");
        fs::write(&self.path, text.replace(from, to)).unwrap();
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The server the other tests rely on is there and speaks S3: an unsigned
/// request is refused with an S3 error document, not served.
#[test]
fn the_test_s3_server_installs_runs_and_refuses_unsigned_requests() {
    let server = S3Server::start(&[BUCKET]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        stream,
        "GET /{BUCKET}?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        server.port
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default();
    assert!(status.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("<Error>") && answer.contains("<Code>"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_uploads_each_snapshot_byte_identical_and_a_rerun_uploads_nothing() {
    let o = offsite(&[("aria", 400), ("bramble", 30)], "", "").await;
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    for name in ["aria", "bramble"] {
        let local = o.local_manifest(name);
        let [entry] = local.snapshots.as_slice() else {
            panic!("{local:?}")
        };
        assert!(
            stdout(&out).contains(&format!("{name}: uploaded {} (", entry.file)),
            "{}",
            text(&out)
        );
        assert_eq!(
            fs::read(o.remote_object(name, &entry.file)).unwrap(),
            fs::read(o.archives(name).join(&entry.file)).unwrap(),
            "{name}: the remote's copy differs from the local snapshot"
        );
        assert_eq!(o.remote_manifest(name).as_ref(), Some(&local));
    }
    let keys = o.server.keys(BUCKET);

    // Nothing new: nothing uploaded, by archive or by push.
    for args in [
        &["archive"][..],
        &["push"],
        &["push", "aria", "--remote", "offsite"],
    ] {
        let again = o.run(args);
        assert!(again.status.success(), "{}", text(&again));
        assert!(!stdout(&again).contains("uploaded"), "{args:?}: {}", text(&again));
        assert!(
            stdout(&again).contains("aria: remote `offsite` is up to date (1 snapshot)"),
            "{}",
            text(&again)
        );
    }
    assert_eq!(o.server.keys(BUCKET), keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_the_remote_gives_the_same_files_as_a_local_restore() {
    let o = offsite(&[("aria", 200)], "", "").await;
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    let local_to = o.dir.path().join("restored-local");
    let out = o.run(&[
        "restore",
        "aria",
        "--snapshot",
        "latest",
        "--to",
        local_to.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // The local archive gone, as with the disk it was on.
    fs::remove_dir_all(o.dir.path().join("data").join("archives")).unwrap();
    let remote_to = o.dir.path().join("restored-remote");
    let out = o.run(&[
        "restore",
        "aria",
        "--remote",
        "offsite",
        "--snapshot",
        "latest",
        "--to",
        remote_to.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("from remote `offsite`"), "{}", text(&out));
    let restored = tree(&remote_to);
    assert_eq!(
        restored.len(),
        6,
        "{:?}",
        restored.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    assert!(
        restored == tree(&local_to),
        "the remote restore differs from the local one"
    );
    // The download is not left behind.
    let leftovers: Vec<_> = fs::read_dir(o.dir.path().join("data").join("archives"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A snapshot the remote does not hold is refused, naming those it has.
    let out = o.run(&[
        "restore",
        "aria",
        "--remote",
        "offsite",
        "--snapshot",
        "20200101T000000Z",
        "--to",
        o.dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("there are: aria-"), "{}", text(&out));
}

/// The disaster: the whole data directory (local archive included) lost.
/// Rebuilt from the remote, the next sync asks the service exactly what
/// the lost store's next sync would have, and the history holds every
/// message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_data_directory_rebuilt_from_the_remote_syncs_incrementally_with_every_message_once() {
    let o = offsite(&[("aria", 230)], "", "").await;
    let config = load(&o.path);
    // What an incremental sync of 7 new messages asks of the intact store.
    o._fake.append_messages("aria", 7);
    o._fake.clear_requests();
    assert!(pass(&config).await.all_ok());
    let incremental = o._fake.chat_requests("aria");
    assert!(incremental < 3, "{incremental} requests for 7 new messages");
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));

    fs::remove_dir_all(o.dir.path().join("data")).unwrap();
    o._fake.append_messages("aria", 7);
    let out = o.run(&["restore", "aria", "--rebuild", "--remote", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("rebuilt the backup of aria") && stdout(&out).contains("from remote `offsite`"),
        "{}",
        text(&out)
    );
    o._fake.clear_requests();
    assert!(pass(&config).await.all_ok());
    assert_eq!(
        o._fake.chat_requests("aria"),
        incremental,
        "the rebuilt store's sync asked otherwise than the lost store's would have"
    );
    assert_complete(&export_lines(&config, "aria"), &o._fake, "aria");
    // The download is not left behind.
    let archives = o.dir.path().join("data").join("archives");
    let leftovers: Vec<_> = fs::read_dir(&archives)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_remote_checks_sizes_and_with_read_data_the_sha256_of_each_snapshot() {
    let o = offsite(&[("aria", 150)], "", "").await;
    assert!(o.run(&["archive"]).status.success());
    let entry = o.local_manifest("aria").snapshots[0].clone();
    for args in [
        &["verify", "--remote", "offsite"][..],
        &["verify", "--remote", "offsite", "--read-data"],
    ] {
        let out = o.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            stderr(&out).contains("verify: all good (1 snapshot on remote `offsite`)"),
            "{}",
            text(&out)
        );
    }
    // One byte changed on the store, the size unchanged: only reading the
    // data finds it.
    let object = o.remote_object("aria", &entry.file);
    let mut bytes = fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&object, &bytes).unwrap();
    let out = o.run(&["verify", "--remote", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = o.run(&["verify", "--remote", "offsite", "--read-data=100"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("{}: its data has", entry.file)),
        "{}",
        text(&out)
    );
    // Gone: missing, without reading anything.
    fs::remove_file(&object).unwrap();
    let out = o.run(&["verify", "--remote", "offsite"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("missing: the manifest lists it"),
        "{}",
        text(&out)
    );
    // And the next push uploads it again.
    let out = o.run(&["push"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("uploaded {}", entry.file)),
        "{}",
        text(&out)
    );
    assert_eq!(
        fs::read(&object).unwrap(),
        fs::read(o.archives("aria").join(&entry.file)).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_or_a_missing_bucket_are_named_and_the_local_archive_still_succeeds() {
    let o = offsite(&[("aria", 40)], "", "").await;
    fs::write(o.dir.path().join("s3-secret"), "not-the-secret\n").unwrap();
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("aria: wrote aria-"), "{}", text(&out));
    assert!(
        stderr(&out).contains("warning: aria: remote `offsite` (s3://backups/host-a) refused the access key"),
        "{}",
        text(&out)
    );
    assert!(o.remote_manifest("aria").is_none());
    // `push` is the operation asked for: it fails.
    let out = o.run(&["push"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    fs::write(o.dir.path().join("s3-secret"), format!("{SECRET_KEY}\n")).unwrap();
    o.edit_config("s3://backups/host-a", "s3://no-such-bucket/host-a");
    let out = o.run(&["push"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("the bucket `no-such-bucket` does not exist at http://127.0.0.1:"),
        "{}",
        text(&out)
    );
    // The right bucket again: the snapshot goes up.
    o.edit_config("s3://no-such-bucket/host-a", "s3://backups/host-a");
    let out = o.run(&["push"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(o.remote_manifest("aria"), Some(o.local_manifest("aria")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_remote_key_appears_in_any_output_log_or_status() {
    let o = offsite(
        &[("aria", 30)],
        "",
        &format!("access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\""),
    )
    .await;
    let mut outputs = Vec::new();
    let run = |args: &[&str], outputs: &mut Vec<String>| {
        let out = o.run(args);
        outputs.push(format!("{args:?}: {}", text(&out)));
        out
    };
    let out = run(&["archive"], &mut outputs);
    assert!(stdout(&out).contains("uploaded"), "{}", text(&out));
    assert!(
        stderr(&out).contains("`offsite` holds its access key inline in the config file"),
        "{}",
        text(&out)
    );
    for args in [
        &["push"][..],
        &["verify", "--remote", "offsite", "--read-data"],
        &["check-config"],
        &["status"],
        &["status", "--json"],
    ] {
        run(args, &mut outputs);
    }
    // Refused keys: a store's error may quote the key id it was given.
    let wrong_id = "AKIAWRONGKEYID0000001";
    o.edit_config(
        &format!("access_key_id = \"{ACCESS_KEY}\""),
        &format!("access_key_id = \"{wrong_id}\""),
    );
    for args in [&["push"][..], &["verify", "--remote", "offsite"], &["archive"]] {
        let out = run(args, &mut outputs);
        assert!(!out.status.success() || args == ["archive"], "{}", text(&out));
    }
    let to = o.dir.path().join("r");
    run(
        &[
            "restore",
            "aria",
            "--remote",
            "offsite",
            "--snapshot",
            "latest",
            "--to",
            to.to_str().unwrap(),
        ],
        &mut outputs,
    );
    let all = outputs.join("\n");
    assert!(
        all.contains("[redacted]"),
        "check-config shows the inline keys redacted: {all}"
    );
    // Every file chatkeep wrote: status, metrics, logs, archives.
    let written: Vec<(String, Vec<u8>)> = tree(&o.dir.path().join("data"));
    for secret in [ACCESS_KEY, SECRET_KEY, wrong_id] {
        assert!(!all.contains(secret), "{secret} shown:\n{all}");
        for (file, bytes) in &written {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} in {file}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encryption_uploads_only_age_ciphertext() {
    let o = offsite(&[("aria", 60)], "", "require_encryption = true").await;
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("has require_encryption = true, so aria-"),
        "{}",
        text(&out)
    );
    assert!(o.server.keys(BUCKET).is_empty(), "{:?}", o.server.keys(BUCKET));
    let out = o.run(&["push"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let key = o.dir.path().join("key.txt");
    let public = identity_file(&key);
    o.edit_config(
        "[archive]\n",
        &format!("[archive]\nage_recipients = [\"{public}\"]\n"),
    );
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    let newest = o.local_manifest("aria").newest().unwrap().clone();
    assert!(
        newest.encrypted && newest.file.ends_with(".tar.gz.age"),
        "{newest:?}"
    );
    let remote = o.remote_manifest("aria").expect("a remote manifest");
    assert_eq!(
        remote
            .snapshots
            .iter()
            .map(|e| e.file.as_str())
            .collect::<Vec<_>>(),
        [newest.file.as_str()]
    );
    let uploaded = fs::read(o.remote_object("aria", &newest.file)).unwrap();
    assert!(uploaded.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(uploaded, fs::read(o.archives("aria").join(&newest.file)).unwrap());
    // Restored from the remote with the identity.
    let to = o.dir.path().join("restored");
    let out = o.run(&[
        "restore",
        "aria",
        "--remote",
        "offsite",
        "--snapshot",
        "latest",
        "--identity",
        key.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(to.join("aria_chat_history.json").is_file());
}

/// The unfinished multipart uploads s3s-fs holds: the record of each
/// (`.upload-<id>.json` in its root, written when the upload is created)
/// and its parts (`.upload_id-<id>.part-<n>`, each written whole when it
/// has arrived), as (upload id, parts), sorted.
fn unfinished_uploads(server: &S3Server) -> Vec<(String, usize)> {
    let names: Vec<String> = fs::read_dir(server.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut uploads: Vec<(String, usize)> = names
        .iter()
        .filter_map(|n| n.strip_prefix(".upload-")?.strip_suffix(".json"))
        .map(|id| {
            let parts = names
                .iter()
                .filter(|n| n.starts_with(&format!(".upload_id-{id}.part-")))
                .count();
            (id.to_owned(), parts)
        })
        .collect();
    // Parts whose upload's record is gone would be leftovers too.
    for name in &names {
        if let Some(id) = name
            .strip_prefix(".upload_id-")
            .and_then(|r| r.split(".part-").next())
            && !uploads.iter().any(|(u, _)| u == id)
        {
            uploads.push((id.to_owned(), usize::MAX));
        }
    }
    uploads.sort();
    uploads
}

/// The uploads chatkeep recorded as started and not ended, as (remote,
/// key, upload id).
fn recorded_uploads(o: &Offsite) -> Vec<(String, String, String)> {
    let path = o.dir.path().join("data").join(".remote-uploads.json");
    let Ok(bytes) = fs::read(&path) else {
        return Vec::new();
    };
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    for secret in [ACCESS_KEY, SECRET_KEY] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a key in {}",
            path.display()
        );
    }
    let records: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    records
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap().to_owned();
            (field("remote"), field("key"), field("upload_id"))
        })
        .collect()
}

/// A snapshot of 3 parts (8 MiB each but the last) being uploaded when
/// the store dies, or chatkeep does (SIGKILL), with a part on the store:
/// the local archive is whole, the remote lists nothing (so neither
/// restore nor verify takes the part that went up for a snapshot), the
/// unfinished upload is recorded in the data directory, and the next push
/// aborts it (its parts leave the store) and uploads the snapshot whole.
async fn interrupted_upload(kill_chatkeep: bool) {
    let server = S3Server::start(&[BUCKET]);
    // 4 MiB/s a connection: each 8 MiB part takes some 2 s to go up.
    let link = SlowLink::start(server.port, 4 << 20);
    let o = offsite_on(server, &link.endpoint(), true, &[("aria", 96)], "", "").await;
    let mut child = o
        .command(&["archive"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A part is on the store (the first two go up together), the last
    // one is not.
    let start = Instant::now();
    while !unfinished_uploads(&o.server).iter().any(|(_, parts)| *parts >= 1) {
        assert!(start.elapsed() < Duration::from_secs(60), "no part ever arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut o = o;
    if kill_chatkeep {
        child.kill().unwrap();
    } else {
        o.server.kill();
    }
    let out = child.wait_with_output().unwrap();
    let entry = o.local_manifest("aria").snapshots[0].clone();
    assert!(entry.size > 16 << 20, "{entry:?}");
    if kill_chatkeep {
        assert_eq!(out.status.code(), None, "{}", text(&out));
    } else {
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            stderr(&out).contains("warning: aria: remote `offsite`"),
            "{}",
            text(&out)
        );
        o.server.restart();
    }
    assert!(o.remote_manifest("aria").is_none());
    assert!(
        !o.remote_object("aria", &entry.file).exists(),
        "{:?}",
        o.server.keys(BUCKET)
    );
    // The store holds the unfinished upload, with a part or two, and
    // chatkeep remembers it.
    let stale = unfinished_uploads(&o.server);
    let [(stale_id, stale_parts)] = stale.as_slice() else {
        panic!("{stale:?}")
    };
    assert!((1..=2).contains(stale_parts), "{stale:?}");
    let key = format!("{PREFIX}/aria/{}", entry.file);
    assert_eq!(
        recorded_uploads(&o),
        [("offsite".to_owned(), key.clone(), stale_id.clone())]
    );
    let to = o.dir.path().join("restored");
    let out = o.run(&[
        "restore",
        "aria",
        "--remote",
        "offsite",
        "--snapshot",
        "latest",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("there are none yet"), "{}", text(&out));
    let out = o.run(&["verify", "--remote", "offsite"]);
    assert!(
        stderr(&out).contains("all good (0 snapshots on remote `offsite`)"),
        "{}",
        text(&out)
    );

    let out = o.run(&["push"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "remote `offsite`: aborted the unfinished upload of {key} (started "
        )),
        "{}",
        text(&out)
    );
    assert!(
        stdout(&out).contains(&format!("aria: uploaded {}", entry.file)),
        "{}",
        text(&out)
    );
    // The stale upload's parts are gone from the store, and the new
    // upload left none either; chatkeep has nothing left to abort.
    assert_eq!(unfinished_uploads(&o.server), []);
    assert_eq!(recorded_uploads(&o), []);
    assert_eq!(
        fs::read(o.remote_object("aria", &entry.file)).unwrap(),
        fs::read(o.archives("aria").join(&entry.file)).unwrap()
    );
    assert_eq!(o.remote_manifest("aria"), Some(o.local_manifest("aria")));
    let out = o.run(&["verify", "--remote", "offsite", "--read-data"]);
    assert!(out.status.success(), "{}", text(&out));
    // Nothing is aborted twice.
    let out = o.run(&["push"]);
    assert!(!stdout(&out).contains("aborted"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_killed_mid_upload_leaves_no_listed_snapshot_and_the_next_push_completes_it() {
    interrupted_upload(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatkeep_killed_mid_upload_leaves_no_listed_snapshot_and_the_next_push_completes_it() {
    interrupted_upload(true).await;
}

/// `bandwidth_limit` paces an upload: a push of a 2 MB snapshot at
/// 1 MiB/s takes at least the snapshot's size over the limit, and the
/// same push without it (half a second here) at least half that less.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_limit_makes_an_upload_take_its_time_and_without_it_the_same_is_quick() {
    const LIMIT: u64 = 1 << 20;
    let server = S3Server::start(&[BUCKET]);
    let endpoint = server.endpoint();
    let o = offsite_on(server, &endpoint, true, &[("aria", 8)], "", "concurrency = 1").await;
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    let entry = o.local_manifest("aria").snapshots[0].clone();
    assert!(entry.size > 3 << 19, "{entry:?}");
    let at_the_limit = Duration::from_secs_f64(entry.size as f64 / LIMIT as f64);
    // The same snapshot pushed under another prefix, with the limit, then
    // without it.
    let push_to = |prefix: &str, limit: &str| {
        let config = fs::read_to_string(&o.path)
            .unwrap()
            .replace("bandwidth_limit = \"1MiB\"\n", "");
        let at = config.rfind("url = \"s3://").unwrap();
        let end = at + config[at..].find('\n').unwrap();
        let config = format!(
            "{}url = \"s3://{BUCKET}/{prefix}\"\n{limit}{}",
            &config[..at],
            &config[end + 1..]
        );
        fs::write(&o.path, config).unwrap();
        let start = Instant::now();
        let out = o.run(&["push"]);
        let took = start.elapsed();
        assert!(out.status.success(), "{}", text(&out));
        assert!(stdout(&out).contains("aria: uploaded"), "{}", text(&out));
        let copy = o
            .server
            .object_path(BUCKET, &format!("{prefix}/aria/{}", entry.file));
        assert_eq!(
            fs::read(copy).unwrap(),
            fs::read(o.archives("aria").join(&entry.file)).unwrap()
        );
        took
    };
    let limited = push_to("limited", "bandwidth_limit = \"1MiB\"\n");
    let free = push_to("free", "");
    // Every byte waited its turn at 1 MiB/s.
    assert!(limited >= at_the_limit, "{limited:?} for {} bytes", entry.size);
    assert!(
        free + at_the_limit / 2 < limited,
        "{free:?} without the limit, {limited:?} with it, for {} bytes",
        entry.size
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_archive_schedule_uploads_each_new_snapshot() {
    let o = offsite(&[("aria", 80)], "", "").await;
    let text_before = fs::read_to_string(&o.path).unwrap();
    fs::write(
        &o.path,
        format!("{text_before}\n[daemon]\nschedule = \"0 0 0 1 1 *\"\narchive_schedule = \"* * * * * *\"\n"),
    )
    .unwrap();
    let mut daemon = o
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while o.remote_manifest("aria").is_none() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&daemon),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemon.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            panic!("the daemon did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut log = String::new();
    daemon.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let local = o.local_manifest("aria");
    assert_eq!(local.snapshots.len(), 1, "{log}");
    assert_eq!(o.remote_manifest("aria"), Some(local.clone()), "{log}");
    assert_eq!(
        fs::read(o.remote_object("aria", &local.snapshots[0].file)).unwrap(),
        fs::read(o.archives("aria").join(&local.snapshots[0].file)).unwrap()
    );
    // The metrics say so too.
    let metrics = fs::read_to_string(o.dir.path().join("data").join("metrics.prom")).unwrap();
    assert!(
        metrics.contains("chatkeep_remote_snapshots{remote=\"offsite\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("chatkeep_remote_ok{remote=\"offsite\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_remotes_last_upload_and_its_last_failure() {
    let o = offsite(&[("aria", 20)], "", "").await;
    let out = o.run(&["status"]);
    assert!(
        stdout(&out).contains("remote `offsite`: no upload yet"),
        "{}",
        text(&out)
    );
    assert!(o.run(&["archive"]).status.success());
    let out = o.run(&["status"]);
    assert!(
        stdout(&out).contains("remote `offsite`: last upload ")
            && stdout(&out).contains("1 snapshot there\n"),
        "{}",
        text(&out)
    );
    fs::write(o.dir.path().join("s3-secret"), "wrong\n").unwrap();
    assert_eq!(o.run(&["push"]).status.code(), Some(1));
    let out = o.run(&["status"]);
    assert!(stdout(&out).contains("; last failed "), "{}", text(&out));
    assert!(stdout(&out).contains("refused the access key"), "{}", text(&out));
    let out = o.run(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let remote = &json["remotes"][0];
    assert_eq!(remote["name"], "offsite", "{json}");
    assert_eq!(remote["snapshots"], 1, "{json}");
    assert!(
        remote["last_success"].is_string() && remote["last_failure"].is_string(),
        "{json}"
    );
    // Fixed: the failure is history.
    fs::write(o.dir.path().join("s3-secret"), format!("{SECRET_KEY}\n")).unwrap();
    assert!(o.run(&["push"]).status.success());
    let out = o.run(&["status"]);
    assert!(!stdout(&out).contains("last failed"), "{}", text(&out));
}

/// The snapshot files the remote holds of `name`, sorted.
fn remote_files(o: &Offsite, name: &str) -> Vec<String> {
    let prefix = format!("{PREFIX}/{name}/{name}-");
    o.server
        .keys(BUCKET)
        .into_iter()
        .filter_map(|k| {
            k.starts_with(&prefix)
                .then(|| k[PREFIX.len() + name.len() + 2..].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_retention_follows_the_local_rules_unless_the_remote_has_its_own() {
    let o = offsite(
        &[("aria", 20)],
        "skip_unchanged = false\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
        "",
    )
    .await;
    for _ in 0..3 {
        let out = o.run(&["archive"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let local = o.local_manifest("aria");
    let local_files: Vec<String> = local.snapshots.iter().map(|e| e.file.clone()).collect();
    assert_eq!(local_files.len(), 2);
    assert_eq!(o.remote_manifest("aria"), Some(local.clone()));
    assert_eq!(remote_files(&o, "aria"), local_files);
    // The remote's dry run says what the local one says.
    let local_plan = o.run(&["prune", "--dry-run"]);
    let remote_plan = o.run(&["prune", "--remote", "offsite", "--dry-run"]);
    assert!(remote_plan.status.success(), "{}", text(&remote_plan));
    assert_eq!(stdout(&remote_plan), stdout(&local_plan));

    // Its own rules: the newest only.
    o.edit_config("name = \"offsite\"\n", "name = \"offsite\"\nkeep_last = 1\n");
    let out = o.run(&["prune", "--remote", "offsite", "--dry-run"]);
    assert!(
        stdout(&out).contains(&format!("would remove  {}", local_files[0])),
        "{}",
        text(&out)
    );
    assert_eq!(remote_files(&o, "aria"), local_files, "a dry run changes nothing");
    let out = o.run(&["prune", "--remote", "offsite"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(remote_files(&o, "aria"), local_files[1..]);
    assert_eq!(o.remote_manifest("aria").unwrap().snapshots, local.snapshots[1..]);
    assert_eq!(o.local_manifest("aria"), local, "the local archive is untouched");
    // The next snapshot replaces it there, and what the remote's rules
    // drop is never uploaded again.
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    let newest = o.local_manifest("aria").newest().unwrap().file.clone();
    assert_eq!(stdout(&out).matches("uploaded").count(), 1, "{}", text(&out));
    assert_eq!(remote_files(&o, "aria"), [newest]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_configurations_sharing_a_bucket_never_touch_each_others_prefix() {
    let a = offsite(
        &[("aria", 20)],
        "skip_unchanged = false\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
        "",
    )
    .await;
    // A second chatkeep, its own data, the same bucket, another prefix.
    let b_dir = tempfile::tempdir().unwrap();
    let b_config = b_dir.path().join("config.toml");
    let a_text = fs::read_to_string(&a.path).unwrap();
    for file in ["cookie", "s3-id", "s3-secret"] {
        fs::copy(a.dir.path().join(file), b_dir.path().join(file)).unwrap();
    }
    fs::write(
        &b_config,
        a_text.replace("s3://backups/host-a", "s3://backups/host-b"),
    )
    .unwrap();
    let b = |args: &[&str]| {
        chatkeep(&b_config)
            .args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .unwrap()
    };
    let out = b(&["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    for _ in 0..2 {
        assert!(a.run(&["archive"]).status.success());
        let out = b(&["archive"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let keys = a.server.keys(BUCKET);
    let under = |prefix: &str| keys.iter().filter(|k| k.starts_with(prefix)).count();
    // Each holds its newest snapshot and its manifest; retention of one
    // never removed the other's.
    assert_eq!((under("host-a/aria/"), under("host-b/aria/")), (2, 2), "{keys:?}");
    let out = b(&["verify", "--remote", "offsite", "--read-data"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stdout(&out).contains("host-a"), "{}", text(&out));
    assert!(stderr(&out).contains("all good (1 snapshot"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_from_the_environment_or_a_systemd_credential_which_wins() {
    let o = offsite(&[("aria", 20)], "", "").await;
    o.edit_config(
        "access_key_id_file = \"s3-id\"\nsecret_access_key_file = \"s3-secret\"\n",
        "",
    );
    // Neither in the config nor in the environment: named, and where to put them.
    let out = o.run(&["push"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("it has no access key: set access_key_id_file"),
        "{}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("remote-offsite-secret-access-key"),
        "{}",
        text(&out)
    );
    let out = o
        .command(&["archive"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("aria: uploaded"), "{}", text(&out));

    // A systemd credential wins over the environment's wrong keys.
    let credentials = o.dir.path().join("credentials");
    fs::create_dir(&credentials).unwrap();
    fs::write(credentials.join("remote-offsite-access-key-id"), ACCESS_KEY).unwrap();
    fs::write(credentials.join("remote-offsite-secret-access-key"), SECRET_KEY).unwrap();
    let with = |dir: Option<&Path>| {
        let mut cmd = o.command(&["verify", "--remote", "offsite"]);
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", "wrong");
        if let Some(dir) = dir {
            cmd.env("CREDENTIALS_DIRECTORY", dir);
        }
        cmd.output().unwrap()
    };
    let out = with(None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout(&out).contains("refused the access key"), "{}", text(&out));
    let out = with(Some(&credentials));
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_checks_each_remotes_keys_and_online_that_it_answers() {
    let o = offsite(&[("aria", 5)], "", "").await;
    let out = o.run(&["check-config", "--online"]);
    assert!(out.status.success(), "{}", text(&out));
    // The politeness limits, with their defaults.
    for line in [
        "concurrency = 2\n",
        "max_retries = 4\n",
        "initial_backoff = \"200ms\"\n",
        "max_backoff = \"5s\"\n",
    ] {
        assert!(stdout(&out).contains(line), "{line:?}: {}", text(&out));
    }
    assert!(
        stderr(&out).contains("ok: remote `offsite`: s3://backups/host-a: its access key can be read"),
        "{}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("ok: remote `offsite`: s3://backups/host-a answers and accepts the key"),
        "{}",
        text(&out)
    );
    fs::write(o.dir.path().join("s3-secret"), "wrong\n").unwrap();
    let out = o.run(&["check-config", "--online"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("refused the access key while listing the prefix"),
        "{}",
        text(&out)
    );
    fs::remove_file(o.dir.path().join("s3-secret")).unwrap();
    let out = o.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("error: remote `offsite`: cannot read")
            && stderr(&out).contains("secret_access_key_file"),
        "{}",
        text(&out)
    );
}

/// A relay to the S3 server that answers the first `refuse` connections
/// itself with 503 SlowDown, as a throttling store does, and passes the
/// others through.
fn throttling_link(to: u16, refuse: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(mut client) = client else { break };
            if n < refuse {
                // The request's head, then the answer; the connection closes.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && matches!(client.read(&mut byte), Ok(1)) {
                    head.push(byte[0]);
                }
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code></Error>";
                let _ = write!(
                    client,
                    "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                continue;
            }
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut from_server, mut to_client) = (server, client);
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_answering_503_for_a_while_is_retried_and_one_that_keeps_on_is_named() {
    // A few refusals: retried with backoff, and the upload completes.
    let server = S3Server::start(&[BUCKET]);
    let port = throttling_link(server.port, 2);
    let o = offsite_on(
        server,
        &format!("http://127.0.0.1:{port}"),
        false,
        &[("aria", 30)],
        "",
        "",
    )
    .await;
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("aria: uploaded"), "{}", text(&out));
    assert!(!stderr(&out).contains("warning"), "{}", text(&out));
    assert_eq!(o.remote_manifest("aria"), Some(o.local_manifest("aria")));

    // Throttled throughout: the local archive stands, the remote's
    // failure says what the store answered.
    let server = S3Server::start(&[BUCKET]);
    let port = throttling_link(server.port, usize::MAX);
    let o = offsite_on(
        server,
        &format!("http://127.0.0.1:{port}"),
        false,
        &[("aria", 30)],
        "",
        "",
    )
    .await;
    let start = Instant::now();
    let out = o.run(&["archive"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("aria: wrote aria-"), "{}", text(&out));
    assert!(
        stderr(&out)
            .contains("warning: aria: remote `offsite` (s3://backups/host-a): reading the manifest failed")
            && stderr(&out).contains("after 4 retries")
            && stderr(&out).contains("503 Service Unavailable"),
        "{}",
        text(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    assert!(o.remote_manifest("aria").is_none());

    // The remote's own retries: fewer, and waited for as it says.
    o.edit_config(
        "name = \"offsite\"\n",
        "name = \"offsite\"\nmax_retries = 2\ninitial_backoff = \"1s\"\nmax_backoff = \"1s\"\n",
    );
    let start = Instant::now();
    let out = o.run(&["push"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("after 2 retries"), "{}", text(&out));
    // Two waits of 1 s: the first is initial_backoff, and the later ones
    // (drawn between it and twice the one before) are capped by max_backoff.
    assert!(start.elapsed() >= Duration::from_secs(2), "{:?}", start.elapsed());
}
