//! Authentication as a user meets it, with the real binary against the fake
//! service on loopback: both cookie generations and both pasted forms,
//! extra cookies, rotation kept across restarts, `cookie set` and
//! `cookie check`, and no cookie value in any output.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chatkeep::fake::{DEFAULT_USER_ID, FakeConfig, FakeService, Fault, FaultPlan, PersonalitySpec};
use common::*;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LEGACY_NAME: &str = "appSession";
const USER_NAME: &str = "Fake User";

/// Runs `cmd` with `input` on its standard input (a pipe, not a terminal).
fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn cookie_cmd(config: &Path, action: &str) -> Command {
    let mut cmd = chatkeep(config);
    cmd.args(["cookie", action]);
    cmd
}

/// Keeps every output of a test, to check at the end that no secret leaked.
#[derive(Default)]
struct Outputs(String);

impl Outputs {
    fn keep(&mut self, out: Output) -> Output {
        self.0.push_str(&text(&out));
        out
    }

    fn assert_none_contains(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                !self.0.contains(secret),
                "a cookie value leaked into the output: {}",
                self.0
            );
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every request since the last clear carried exactly this Cookie header.
fn assert_cookie_headers(fake: &FakeService, want: &str) {
    let requests = fake.requests();
    assert!(!requests.is_empty(), "no request reached the fake");
    for r in requests {
        // Never prints either cookie, should the test fail.
        assert!(
            r.cookie.as_deref() == Some(want),
            "{} {}: not the expected Cookie header",
            r.path,
            r.status
        );
    }
}

fn set_cookie_file(dir: &Path, content: &str) {
    std::fs::write(dir.join("cookie"), content).unwrap();
}

fn session_file(dir: &Path) -> std::path::PathBuf {
    dir.join("data").join("session_cookie.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_cookie_generations_authenticate_as_bare_token_or_name_value() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 20)]).await;
    let mut outputs = Outputs::default();
    let pair = |name: &str| format!("{name}={TOKEN}");
    let cases = [
        (COOKIE_NAME, "", TOKEN.to_owned()),
        (COOKIE_NAME, "", pair(COOKIE_NAME)),
        (LEGACY_NAME, "cookie_name = \"appSession\"", TOKEN.to_owned()),
        (LEGACY_NAME, "cookie_name = \"appSession\"", pair(LEGACY_NAME)),
    ];
    for (name, extra, file) in cases {
        fake.set_cookie(Some((name.into(), TOKEN.into())));
        fake.clear_requests();
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, extra);
        set_cookie_file(dir.path(), &file);

        let out = outputs.keep(cookie_cmd(&config, "check").output().unwrap());
        assert_eq!(out.status.code(), Some(0), "{name} / {file:?}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(USER_NAME) && stdout.contains(DEFAULT_USER_ID),
            "{stdout}"
        );

        let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
        assert_eq!(out.status.code(), Some(0), "{name} / {file:?}: {}", text(&out));
        assert_cookie_headers(&fake, &pair(name));
    }
    outputs.assert_none_contains(&[TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_cookies_are_sent_verbatim_with_every_request() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 120)]).await;
    let dir = tempfile::tempdir().unwrap();
    let extra =
        "chat_page_size = 50\nextra_cookies = { \"connect.sid\" = \"s%3AaBc.D%2Fe+f\", _csrf = \"q-1_2\" }";
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, extra);
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(fake.requests().len() >= 4, "{:?}", fake.requests().len());
    assert_cookie_headers(
        &fake,
        &format!("{COOKIE_NAME}={TOKEN}; _csrf=q-1_2; connect.sid=s%3AaBc.D%2Fe+f"),
    );
    assert!(!text(&out).contains(TOKEN) && !text(&out).contains("s%3AaBc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_cookie_is_adopted_saved_and_used_after_a_restart_until_the_config_changes() {
    const ROTATED: &str = "r0tated-by-the-service-1";
    const ROTATED_AGAIN: &str = "r0tated-by-the-service-2";
    const PASTED_LATER: &str = "pasted-later-by-the-user";
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 300)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &fake.base_url(),
        &["lilith"],
        50.0,
        "chat_page_size = 10",
    );
    let mut outputs = Outputs::default();
    let saved = session_file(dir.path());
    let saved_json =
        || -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap() };

    // First process: the service rotates the cookie in the middle of the walk.
    let child = chatkeep(&config)
        .arg("sync")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fake.requests().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "the sync never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    fake.rotate_cookie(ROTATED);
    let out = outputs.keep(child.wait_with_output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rotated") && stderr.contains("saved"), "{stderr}");
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
    let last = requests.last().unwrap().cookie.clone().unwrap();
    assert_eq!(last, format!("{COOKIE_NAME}={ROTATED}"));
    assert_eq!(mode(&saved), 0o600);
    assert_eq!(saved_json()["name"], COOKIE_NAME);
    assert_eq!(saved_json()["token"], ROTATED);
    assert_eq!(saved_json()["replaces_sha256"], sha256_hex(TOKEN));

    // Second process: the fake now accepts only the rotated token.
    fake.append_messages("lilith", 25);
    fake.clear_requests();
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_cookie_headers(&fake, &format!("{COOKIE_NAME}={ROTATED}"));

    // Rotated again during a check: still saved against the configured cookie.
    fake.rotate_cookie(ROTATED_AGAIN);
    let out = outputs.keep(cookie_cmd(&config, "check").output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("as the service last rotated it"));
    assert_eq!(saved_json()["token"], ROTATED_AGAIN);
    assert_eq!(saved_json()["replaces_sha256"], sha256_hex(TOKEN));
    fake.clear_requests();
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_cookie_headers(&fake, &format!("{COOKIE_NAME}={ROTATED_AGAIN}"));

    // The user pastes another cookie into the config: it wins.
    set_cookie_file(dir.path(), PASTED_LATER);
    fake.set_cookie(Some((COOKIE_NAME.into(), PASTED_LATER.into())));
    fake.clear_requests();
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_cookie_headers(&fake, &format!("{COOKIE_NAME}={PASTED_LATER}"));
    assert!(!saved.exists(), "the stale rotated cookie was kept");

    outputs.assert_none_contains(&[TOKEN, ROTATED, ROTATED_AGAIN, PASTED_LATER]);
}

/// A config whose cookie file is `secrets/cookie`, in a directory that does
/// not exist yet.
fn config_with_cookie_in_new_dir(dir: &Path, base_url: &str) -> std::path::PathBuf {
    let config = write_config(dir, base_url, &[], 1000.0, "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("cookie_file = \"cookie\"", "cookie_file = \"secrets/cookie\""),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_set_from_stdin_writes_a_private_file_and_names_the_account() {
    let fake = fake(FakeConfig::default(), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_cookie_in_new_dir(dir.path(), &fake.base_url());
    let mut outputs = Outputs::default();
    let file = dir.path().join("secrets/cookie");

    let input = format!("  {TOKEN}  \nsecond line ignored\n");
    let out = outputs.keep(run_with_stdin(cookie_cmd(&config, "set"), &input));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(USER_NAME) && stdout.contains(DEFAULT_USER_ID),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), TOKEN);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&dir.path().join("secrets")), 0o700);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/api/users/me");

    // A whole Cookie header works too; only the session pair is kept.
    std::fs::remove_file(&file).unwrap();
    let input = format!("Cookie: _ga=GA1.1; {COOKIE_NAME}={TOKEN}; _csrf=x\n");
    let out = outputs.keep(run_with_stdin(cookie_cmd(&config, "set"), &input));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), TOKEN);

    let out = outputs.keep(cookie_cmd(&config, "check").output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(USER_NAME));

    outputs.assert_none_contains(&[TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cookie_exits_3_with_the_auth_message_from_set_and_check() {
    let fake = fake(
        FakeConfig {
            cookie: Some((COOKIE_NAME.into(), "the-one-the-service-wants".into())),
            ..FakeConfig::default()
        },
        vec![],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_cookie_in_new_dir(dir.path(), &fake.base_url());
    let mut outputs = Outputs::default();

    // Without a previous cookie: nothing saved.
    let out = outputs.keep(run_with_stdin(cookie_cmd(&config, "set"), TOKEN));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("authentication failed (401) on the first request") && stderr.contains("cookie set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("it was not saved (no cookie was saved)"),
        "{stderr}"
    );
    let file = dir.path().join("secrets/cookie");
    assert!(!file.exists());

    // With one: it is kept, and said to be.
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "the-previous-token\n").unwrap();
    let out = outputs.keep(run_with_stdin(cookie_cmd(&config, "set"), TOKEN));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(" still holds the previous cookie)"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "the-previous-token\n");

    let out = outputs.keep(cookie_cmd(&config, "check").output().unwrap());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication failed (401) on the first request"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.requests().len(), 3, "one request each, no retry");
    outputs.assert_none_contains(&[TOKEN, "the-one-the-service-wants", "the-previous-token"]);
}

#[test]
fn cookie_set_says_saved_but_not_verified_when_the_service_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_cookie_in_new_dir(dir.path(), "http://127.0.0.1:9");
    let out = run_with_stdin(cookie_cmd(&config, "set"), TOKEN);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("saved") && stderr.contains("not verified"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secrets/cookie"))
            .unwrap()
            .trim(),
        TOKEN
    );
    assert!(!text(&out).contains(TOKEN));
}

#[test]
fn cookie_set_refuses_configs_without_cookie_file_and_malformed_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &[], 1.0, "");
    let original = std::fs::read_to_string(&config).unwrap();
    for source in [
        "cookie_env = \"CHATKEEP_TEST_COOKIE\"",
        "cookie = \"inline-secret\"",
    ] {
        std::fs::write(&config, original.replace("cookie_file = \"cookie\"", source)).unwrap();
        let out = run_with_stdin(cookie_cmd(&config, "set"), TOKEN);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cookie_file"), "{stderr}");
        assert!(!text(&out).contains("inline-secret") && !text(&out).contains(TOKEN));
    }

    std::fs::write(&config, &original).unwrap();
    std::fs::remove_file(dir.path().join("cookie")).unwrap();
    for bad in ["two words\n", "\n", ""] {
        let out = run_with_stdin(cookie_cmd(&config, "set"), bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
        assert!(!dir.path().join("cookie").exists(), "{bad:?} was written");
    }
}

/// The paths of the requests since the last clear, for messages (never
/// their cookies).
fn paths(fake: &FakeService) -> Vec<String> {
    fake.requests().into_iter().map(|r| r.path).collect()
}

/// The requests since the last clear that carried `token` as the session
/// cookie.
fn requests_with_token(fake: &FakeService, token: &str) -> usize {
    let pair = format!("{COOKIE_NAME}={token}");
    fake.requests()
        .iter()
        .filter(|r| r.cookie.as_deref() == Some(pair.as_str()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleared_session_cookie_ends_the_session_is_never_saved_and_cookie_set_recovers() {
    const FRESH: &str = "fresh-after-logging-in-again";
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 40)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
    let mut outputs = Outputs::default();
    let ended = |out: &Output| {
        // Said once: in the summary (standard output) of a sync, in the
        // error (standard error) of the other commands.
        let stderr = text(out);
        assert_eq!(out.status.code(), Some(3), "{}", text(out));
        assert!(
            stderr.contains("the service ended the session") && stderr.contains("cookie set"),
            "{stderr}"
        );
    };

    // What a server sends to clear a session, on the first answer.
    fake.set_cookie_header(&format!("{COOKIE_NAME}=deleted; Path=/; Max-Age=0"));
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    ended(&out);
    assert_eq!(requests_with_token(&fake, "deleted"), 0);
    let saved = std::fs::read_to_string(session_file(dir.path())).unwrap_or_default();
    assert!(!saved.contains("deleted"), "the cleared cookie was saved");

    // The old token is not sent again: the next run stops before any request.
    fake.clear_requests();
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    ended(&out);
    let out = outputs.keep(cookie_cmd(&config, "check").output().unwrap());
    ended(&out);
    assert!(fake.requests().is_empty(), "{:?}", paths(&fake));

    // The person pastes a cookie again (here the same one, which the service
    // still accepts): it wins over what the service said of the old session.
    let out = outputs.keep(run_with_stdin(cookie_cmd(&config, "set"), TOKEN));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!session_file(dir.path()).exists());
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // And after logging in again with a new token, the same.
    fake.set_cookie_header(&format!("{COOKIE_NAME}=deleted; Max-Age=-1"));
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    ended(&out);
    fake.set_cookie(Some((COOKIE_NAME.into(), FRESH.into())));
    let out = outputs.keep(run_with_stdin(cookie_cmd(&config, "set"), FRESH));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    fake.append_messages("lilith", 5);
    fake.clear_requests();
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_cookie_headers(&fake, &format!("{COOKIE_NAME}={FRESH}"));

    outputs.assert_none_contains(&[TOKEN, FRESH]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_expiring_in_the_past_ends_the_session() {
    let fake = fake(FakeConfig::default(), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &[], 1000.0, "");
    // The old Netscape date form, as PHP and many frameworks still send it.
    fake.set_cookie_header(&format!(
        "{COOKIE_NAME}=gone; Expires=Thu, 01-Jan-1970 00:00:01 GMT; Path=/; HttpOnly"
    ));
    let out = cookie_cmd(&config, "check").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the service ended the session"),
        "{}",
        text(&out)
    );
    let saved = std::fs::read_to_string(session_file(dir.path())).unwrap_or_default();
    assert!(!saved.contains("gone"), "the expired cookie was saved");
    assert!(!text(&out).contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_for_another_domain_is_ignored() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 30)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &fake.base_url(),
        &["lilith"],
        1000.0,
        "chat_page_size = 10",
    );
    fake.set_cookie_header(&format!(
        "{COOKIE_NAME}=planted-by-another-site; Domain=evil.example; Path=/; Secure"
    ));
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(fake.requests().len() > 3);
    assert_cookie_headers(&fake, &format!("{COOKIE_NAME}={TOKEN}"));
    assert!(!session_file(dir.path()).exists());
    assert!(!text(&out).contains("planted-by-another-site"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_set_wins_over_a_bad_saved_rotation_even_with_the_same_token() {
    const BAD: &str = "r0tation-the-service-no-longer-takes";
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 20)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
    let mut outputs = Outputs::default();
    // A saved rotation of the configured cookie that the service refuses.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let saved = session_file(dir.path());
    let json = serde_json::json!({
        "name": COOKIE_NAME,
        "token": BAD,
        "replaces_sha256": sha256_hex(TOKEN),
    });
    std::fs::write(&saved, json.to_string()).unwrap();
    std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_cookie_headers(&fake, &format!("{COOKIE_NAME}={BAD}"));

    // The person pastes their cookie again: the same token as configured,
    // so only `cookie set` itself can tell that it is new news.
    fake.clear_requests();
    let out = outputs.keep(run_with_stdin(cookie_cmd(&config, "set"), TOKEN));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!saved.exists(), "the saved rotation outlived cookie set");
    let out = outputs.keep(chatkeep(&config).arg("sync").output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_cookie_headers(&fake, &format!("{COOKIE_NAME}={TOKEN}"));

    outputs.assert_none_contains(&[TOKEN, BAD]);
}

/// A second listener on loopback, standing for wherever a redirect points
/// (another origin): it counts the connections it gets, notes whether one
/// carried the session token, and answers each with an account and a
/// `Set-Cookie` that would replace the session cookie.
struct Elsewhere {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    saw_token: Arc<AtomicBool>,
}

const PLANTED: &str = "planted-by-the-redirect-target";

async fn elsewhere() -> Elsewhere {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let saw_token = Arc::new(AtomicBool::new(false));
    let (count, saw) = (connections.clone(), saw_token.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 64 * 1024];
            let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
            let n = read.ok().and_then(Result::ok).unwrap_or(0);
            if String::from_utf8_lossy(&buf[..n]).contains(TOKEN) {
                saw.store(true, Ordering::SeqCst);
            }
            let body = format!(r#"{{"id":"{DEFAULT_USER_ID}","username":"elsewhere"}}"#);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nSet-Cookie: {COOKIE_NAME}={PLANTED}; Path=/\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    Elsewhere {
        addr,
        connections,
        saw_token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_refused_and_the_cookie_never_reaches_its_target() {
    const IN_QUERY: &str = "leaked-in-the-query";
    const ROTATED_BY_3XX: &str = "r0tated-by-a-redirect";
    let target = elsewhere().await;
    let other_origin = format!("http://{}", target.addr);
    let mut outputs = Outputs::default();
    let cases = [
        // Another origin (another port of the same host).
        (
            302,
            format!("{other_origin}/api/users/me?session={IN_QUERY}"),
            other_origin.clone(),
        ),
        // Another scheme: what an http:// answer to an https:// base_url
        // would be, the other way round.
        (
            301,
            format!("https://{}/moved?x={IN_QUERY}", target.addr),
            format!("https://{}", target.addr),
        ),
        // A scheme-relative target, read against the answer's URL.
        (
            308,
            format!("//{}/x?x={IN_QUERY}", target.addr),
            other_origin.clone(),
        ),
    ];
    for (status, location, shown_origin) in cases {
        let fake = fake(
            FakeConfig {
                faults: FaultPlan {
                    script: vec![Fault::Redirect { status, location }],
                    ..FaultPlan::default()
                },
                ..FakeConfig::default()
            },
            vec![PersonalitySpec::new("lilith", 20)],
        )
        .await;
        // The 3xx itself tries to rotate the cookie: nothing of it is used.
        fake.set_cookie_header(&format!("{COOKIE_NAME}={ROTATED_BY_3XX}; Path=/"));
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
        for command in ["check", "sync"] {
            let out = if command == "check" {
                cookie_cmd(&config, "check").output().unwrap()
            } else {
                chatkeep(&config).arg("sync").output().unwrap()
            };
            let out = outputs.keep(out);
            if command == "sync" {
                // The script is used up: the sync goes on from a clean
                // answer, with the configured cookie.
                assert_eq!(out.status.code(), Some(0), "{status}: {}", text(&out));
                continue;
            }
            assert_eq!(out.status.code(), Some(1), "{status}: {}", text(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("answered {status}, a redirect to {shown_origin}"))
                    && stderr.contains("does not follow"),
                "{stderr}"
            );
            assert!(
                !stderr.contains("/moved") && !stderr.contains("/api/users/me?"),
                "{stderr}"
            );
        }
        assert_eq!(
            fake.requests()[0].fault.as_deref(),
            Some(format!("redirect_{status}").as_str())
        );
        assert_cookie_headers(&fake, &format!("{COOKIE_NAME}={TOKEN}"));
        assert!(!session_file(dir.path()).exists(), "{status}: a cookie was saved");
    }
    assert_eq!(
        target.connections.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
    assert!(!target.saw_token.load(Ordering::SeqCst));
    outputs.assert_none_contains(&[TOKEN, IN_QUERY, ROTATED_BY_3XX, PLANTED]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_within_the_origin_is_refused_too() {
    let fake = fake(
        FakeConfig {
            faults: FaultPlan {
                script: vec![Fault::Redirect {
                    status: 307,
                    location: "/api/users/me?again=1".to_owned(),
                }],
                ..FaultPlan::default()
            },
            ..FakeConfig::default()
        },
        vec![],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &[], 1000.0, "");
    let out = cookie_cmd(&config, "check").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("answered 307, a redirect to {}", fake.base_url())),
        "{stderr}"
    );
    assert!(!stderr.contains("again=1"), "{stderr}");
    assert_eq!(fake.requests().len(), 1, "{:?}", paths(&fake));
    assert!(!text(&out).contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_another_host_is_refused_and_allowed_only_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://shapes.example", &[], 1.0, "");
    for args in [&["check-config"][..], &["cookie", "check"], &["sync"]] {
        let out = chatkeep(&config).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("config.toml:2:12: service.base_url is \"http://shapes.example\"")
                && stderr.contains("use https://")
                && stderr.contains("set allow_insecure_http = true in [service]"),
            "{args:?}: {stderr}"
        );
    }

    let allowed = write_config(
        dir.path(),
        "http://shapes.example",
        &[],
        1.0,
        "allow_insecure_http = true",
    );
    let out = chatkeep(&allowed).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("allow_insecure_http = true"));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("warning: service.base_url is \"http://shapes.example\""),
        "{}",
        text(&out)
    );

    // Every run warns. `127.1` is this machine, but only spelt the usual
    // ways is a host taken for loopback; here it lets a run reach the fake.
    let fake = fake(FakeConfig::default(), vec![]).await;
    let port = fake.base_url().rsplit(':').next().unwrap().to_owned();
    let remote = format!("http://127.1:{port}");
    let refused = write_config(dir.path(), &remote, &[], 1000.0, "");
    let out = cookie_cmd(&refused, "check").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(fake.requests().is_empty());
    let allowed = write_config(dir.path(), &remote, &[], 1000.0, "allow_insecure_http = true");
    let out = cookie_cmd(&allowed, "check").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plain http://") && stderr.contains("unencrypted"),
        "{stderr}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert!(!text(&out).contains(TOKEN));
}

#[test]
fn a_cookie_pasted_as_cookie_file_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &[], 1.0, "");
    // check-config reads the cookie file, but never shows it.
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(TOKEN), "the cookie file's content was shown");
    assert!(String::from_utf8_lossy(&out.stdout).contains("cookie_file = "));

    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        original.replace(
            "cookie_file = \"cookie\"",
            &format!("cookie_file = \"secrets/{TOKEN}\""),
        ),
    )
    .unwrap();
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no such cookie file: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cookie_file = \"[redacted: looks like a cookie value"),
        "{stdout}"
    );
    assert!(!text(&out).contains(TOKEN), "the cookie-like path was shown");

    // No file by that name: the error names it, hidden the same way (a
    // config error, exit 2: the service refused nothing).
    for args in [&["cookie", "check"][..], &["sync"], &["check-config"]] {
        let out = chatkeep(&config).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot read the cookie file") && stderr.contains("[redacted"),
            "{stderr}"
        );
        assert!(
            !text(&out).contains(TOKEN),
            "{args:?}: the cookie-like path was shown"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_plain_http_no_proxy_from_the_environment_gets_the_cookie() {
    let proxy = elsewhere().await;
    let fake = fake(FakeConfig::default(), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &[], 1000.0, "");
    let proxy_url = format!("http://{}", proxy.addr);
    let mut cmd = cookie_cmd(&config, "check");
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env(var, &proxy_url);
    }
    for var in ["NO_PROXY", "no_proxy"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(proxy.connections.load(Ordering::SeqCst), 0, "the proxy was used");
    assert!(!proxy.saw_token.load(Ordering::SeqCst));
    assert!(!text(&out).contains(TOKEN));
}
