//! Authentication as a user meets it, with the real binary against the fake
//! service on loopback: both cookie generations and both pasted forms,
//! extra cookies, rotation kept across restarts, `cookie set` and
//! `cookie check`, and no cookie value in any output.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chatkeep::fake::{DEFAULT_USER_ID, FakeConfig, FakeService, PersonalitySpec};
use common::*;
use sha2::{Digest, Sha256};

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
        assert_eq!(r.cookie.as_deref(), Some(want), "{} {}", r.path, r.status);
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

    let out = outputs.keep(run_with_stdin(cookie_cmd(&config, "set"), TOKEN));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("authentication failed (401) on the first request") && stderr.contains("cookie set"),
        "{stderr}"
    );
    assert_eq!(mode(&dir.path().join("secrets/cookie")), 0o600);

    let out = outputs.keep(cookie_cmd(&config, "check").output().unwrap());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication failed (401) on the first request"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.requests().len(), 2, "one request each, no retry");
    outputs.assert_none_contains(&[TOKEN, "the-one-the-service-wants"]);
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
