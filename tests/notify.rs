//! `[notify]` and `[metrics]` through the real binary: hooks run on a
//! failed sync and on the recovery after it, pings reach a loopback
//! listener, a hung hook is killed without changing the sync's result, and
//! the daemon's metrics file is written where configured, readable by the
//! configured group.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatkeep::fake::{FakeConfig, PersonalitySpec};
use common::*;

/// The environment variable the configs below read the cookie from.
const COOKIE_VAR: &str = "CHATKEEP_TEST_COOKIE";
/// A cookie the fake refuses: the sync ends `auth_expired`.
const WRONG_TOKEN: &str = "wr0ng-s3ssion-token-value";

/// A config for `name` reading the cookie from [`COOKIE_VAR`], with `tail`
/// appended at the end.
fn config_with(dir: &Path, base_url: &str, tail: &str) -> PathBuf {
    let path = write_config(dir, base_url, &["one"], 10_000.0, "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "cookie_file = \"cookie\"",
        &format!("cookie_env = \"{COOKIE_VAR}\""),
    );
    std::fs::write(&path, format!("{text}\n{tail}")).unwrap();
    path
}

/// `chatkeep sync` with `token` as the cookie.
fn sync(config: &Path, token: &str) -> std::process::Output {
    chatkeep(config)
        .arg("sync")
        .env(COOKIE_VAR, token)
        .output()
        .unwrap()
}

/// A TOML string of `path`.
fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A loopback HTTP server that answers 200 to everything and keeps each
/// request as "METHOD path body".
struct PingListener {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl PingListener {
    fn start() -> PingListener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ping/abc", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let keep = keep.clone();
                std::thread::spawn(move || serve(stream, &keep));
            }
        });
        PingListener { url, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// Answers the requests of one connection until it closes.
fn serve(stream: std::net::TcpStream, seen: &Mutex<Vec<String>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut words = request_line.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        seen.lock()
            .unwrap()
            .push(format!("{method} {path} {}", String::from_utf8_lossy(&body)));
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
            .is_err()
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_runs_on_a_failed_sync_with_its_environment_and_on_recovery_on_the_next_ok() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 30)]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let env = dir.path().join("env.txt");
    let tail = format!(
        "[notify]\n\
         on_failure = [\"sh\", \"-c\", \"echo \\\"failure $CHATKEEP_PERSONALITY $CHATKEEP_OUTCOME\\\" >> {log}; env > {env}\"]\n\
         on_recovery = [\"sh\", \"-c\", \"echo \\\"recovery $CHATKEEP_PERSONALITY $CHATKEEP_OUTCOME\\\" >> {log}\"]\n",
        log = log.display(),
        env = env.display(),
    );
    let config = config_with(dir.path(), &fake.base_url(), &tail);

    // A first backup that succeeds recovers from nothing: no hook.
    let out = sync(&config, TOKEN);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(read(&log), "");

    // A refused cookie: on_failure, with the personality and the outcome.
    let out = sync(&config, WRONG_TOKEN);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(read(&log), "failure one auth_expired\n");
    let environment = read(&env);
    assert!(
        environment.contains("CHATKEEP_PERSONALITY=one\n"),
        "{environment}"
    );
    assert!(
        environment.contains("CHATKEEP_OUTCOME=auth_expired\n"),
        "{environment}"
    );
    assert!(
        environment.contains("CHATKEEP_MESSAGE=one: auth_expired"),
        "{environment}"
    );
    // The cookie is not handed to the hook, neither its variable nor its value.
    assert!(!environment.contains(COOKIE_VAR), "{environment}");
    assert!(!environment.contains(WRONG_TOKEN), "{environment}");

    // Failing again runs on_failure again; the next ok is a recovery.
    let out = sync(&config, WRONG_TOKEN);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = sync(&config, TOKEN);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        read(&log),
        "failure one auth_expired\nfailure one auth_expired\nrecovery one ok\n"
    );

    // An ok after an ok is no recovery.
    let out = sync(&config, TOKEN);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(read(&log).lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pings_start_then_success_or_fail_without_secrets() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 30)]).await;
    let pings = PingListener::start();
    let dir = tempfile::tempdir().unwrap();
    // A trailing slash in the config is dropped.
    let tail = format!("[notify]\nping_url = \"{}/\"\n", pings.url);
    let config = config_with(dir.path(), &fake.base_url(), &tail);

    let out = sync(&config, TOKEN);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(pings.seen(), ["POST /ping/abc/start ", "POST /ping/abc one: ok"]);

    pings.clear();
    let out = sync(&config, WRONG_TOKEN);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        pings.seen(),
        ["POST /ping/abc/start ", "POST /ping/abc/fail one: auth_expired"]
    );
    for seen in pings.seen() {
        assert!(!seen.contains(WRONG_TOKEN) && !seen.contains(TOKEN), "{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_url_that_does_not_answer_fails_nothing() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 30)]).await;
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let tail = format!("[notify]\nping_url = \"http://127.0.0.1:{port}/x\"\ntimeout = \"2s\"\n");
    let config = config_with(dir.path(), &fake.base_url(), &tail);
    let out = sync(&config, TOKEN);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("ping_url could not be reached"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_hangs_is_killed_at_its_timeout_and_the_result_is_unchanged() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 30)]).await;
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let tail = format!(
        "[notify]\ntimeout = \"1s\"\n\
         on_failure = [\"sh\", \"-c\", \"echo started >> {m}; sleep 5; echo finished >> {m}\"]\n",
        m = marks.display()
    );
    let config = config_with(dir.path(), &fake.base_url(), &tail);
    let started = Instant::now();
    let out = sync(&config, WRONG_TOKEN);
    let took = started.elapsed();
    // The exit code of a refused cookie, as without the hook.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN") && stderr.contains("killed"), "{stderr}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("data/one/status.json")).unwrap()).unwrap();
    assert_eq!(status["outcome"], "auth_expired");
    // The shell's child was killed with it: it never writes its second line.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(read(&marks), "started\n");
}

/// The daemon: a ping before and after each personality's sync, and the
/// metrics file where `[metrics] file` says, 0640 with `[metrics] group`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_pings_and_writes_metrics_for_a_group_where_configured() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 30)]).await;
    let pings = PingListener::start();
    let dir = tempfile::tempdir().unwrap();
    let textfile = dir.path().join("textfile");
    let prom = textfile.join("chatkeep.prom");
    // Root can give the file any group; another user one of its own.
    let gid = if rustix::process::geteuid().is_root() {
        4242
    } else {
        rustix::process::getegid().as_raw()
    };
    let tail = format!(
        "[daemon]\nrun_on_start = true\nschedule = \"0 0 0 1 1 *\"\n\n\
         [notify]\nping_url = \"{}\"\n\n[metrics]\nfile = {}\ngroup = \"{gid}\"\n",
        pings.url,
        quoted(&prom)
    );
    let config = config_with(dir.path(), &fake.base_url(), &tail);
    let mut child = chatkeep(&config)
        .arg("run")
        .env(COOKIE_VAR, TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pings.seen().len() < 2 || !prom.exists() {
        assert!(Instant::now() < deadline, "pings: {:?}", pings.seen());
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{stderr}");

    assert_eq!(
        pings.seen(),
        ["POST /ping/abc/start ", "POST /ping/abc one: ok"],
        "{stderr}"
    );
    let meta = std::fs::metadata(&prom).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), gid);
    assert!(read(&prom).contains("chatkeep_last_run_ok{personality=\"one\"} 1\n"));
    // Not in the data directory, which stays private.
    assert!(!dir.path().join("data/metrics.prom").exists());
    let data_mode = std::fs::metadata(dir.path().join("data")).unwrap().mode() & 0o777;
    assert_eq!(data_mode, 0o700);
    // The temporary directory is 0700: the log says the group cannot pass.
    assert!(
        stderr.contains("metrics.group cannot reach the metrics file"),
        "{stderr}"
    );
}

/// The daemon runs `on_failure` for a failed sync too, and pings its
/// failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_on_failure_and_pings_fail_for_a_failed_sync() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("one", 30)]).await;
    let pings = PingListener::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let tail = format!(
        "[daemon]\nrun_on_start = true\nschedule = \"0 0 0 1 1 *\"\n\n\
         [notify]\nping_url = \"{}\"\n\
         on_failure = [\"sh\", \"-c\", \"echo \\\"$CHATKEEP_PERSONALITY $CHATKEEP_OUTCOME\\\" >> {}\"]\n",
        pings.url,
        log.display()
    );
    let config = config_with(dir.path(), &fake.base_url(), &tail);
    let mut child = chatkeep(&config)
        .arg("run")
        .env(COOKIE_VAR, WRONG_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pings.seen().len() < 2 || read(&log).is_empty() {
        assert!(Instant::now() < deadline, "pings: {:?}", pings.seen());
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{stderr}");
    assert_eq!(read(&log), "one auth_expired\n", "{stderr}");
    assert_eq!(
        pings.seen(),
        ["POST /ping/abc/start ", "POST /ping/abc/fail one: auth_expired"],
        "{stderr}"
    );
    assert!(!stderr.contains(WRONG_TOKEN), "{stderr}");
}
