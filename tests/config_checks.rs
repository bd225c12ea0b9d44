//! What `check-config` checks beyond the file (the cookie, the
//! directories, and with `--online` the account), and the messages a run
//! gives for what it would have caught: each names the key, its value
//! (never a secret) and what to do, with the exit code the README gives.
//!
//! The unwritable data directory is tested as `nobody` (`setpriv`,
//! util-linux), since root writes anywhere: these tests run as root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use chatkeep::fake::{FakeConfig, PersonalitySpec};
use common::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn check_config_reads_the_cookie_file_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ok: session cookie: cookie file")
            && err.contains("holds a plausible session cookie")
            && err.contains("ok: storage.data_dir:")
            && err.contains("ok: archive.dir:"),
        "{err}"
    );
    assert!(!text(&out).contains(TOKEN), "the cookie was shown");
    // Nothing is left behind by the checks.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn check_config_catches_a_missing_cookie_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    std::fs::remove_file(dir.path().join("cookie")).unwrap();
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    let cookie = dir.path().join("cookie");
    assert!(
        err.contains(&format!("cannot read the cookie file {}", cookie.display()))
            && err.contains("service.cookie_file")
            && err.contains("does not exist")
            && err.contains("chatkeep cookie set")
            && err.contains("1 problem above"),
        "{err}"
    );
}

#[test]
fn check_config_catches_a_data_directory_the_user_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    // The cookie is nobody's to read; the data directory root's alone.
    let cookie = dir.path().join("cookie");
    std::os::unix::fs::chown(&cookie, Some(65534), Some(65534)).unwrap();
    set_mode(&config, 0o644);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    set_mode(&data, 0o755);
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_chatkeep"))
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .env_remove("RUST_LOG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .expect("setpriv (util-linux) runs")
    };
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: storage.data_dir: {} is not writable by this user",
            data.display()
        )) && err.contains("data_dir in [storage]"),
        "{err}"
    );
    assert!(err.contains("ok: session cookie"), "{err}");

    // Made nobody's, it passes; the archive directory inside it would be
    // created there.
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    set_mode(&data, 0o700);
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn check_config_catches_a_log_directory_that_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    std::fs::write(dir.path().join("afile"), "").unwrap();
    let mut text_now = std::fs::read_to_string(&config).unwrap();
    text_now.push_str("\n[log]\ndir = \"afile/logs\"\n");
    std::fs::write(&config, text_now).unwrap();
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: log.dir:") && err.contains("afile is not a directory"),
        "{err}"
    );

    // The daemon says the same in words, not tracing-appender's.
    let mut child = chatkeep(&config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "log.dir = \"{}\" cannot be used",
            dir.path().join("afile/logs").display()
        )) && err.contains("set dir in [log]"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_online_asks_the_service_who_the_cookie_is() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 10)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 1000.0, "");
    let offline = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(offline.status.code(), Some(0), "{}", text(&offline));
    assert!(fake.requests().is_empty(), "check-config went online");
    let out = chatkeep(&config)
        .args(["check-config", "--online"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("authenticates as"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.requests().len(), 1);
    assert!(!text(&out).contains(TOKEN));

    std::fs::write(dir.path().join("cookie"), "a-refused-token").unwrap();
    let out = chatkeep(&config)
        .args(["check-config", "--online"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stderr(&out).contains("the service refused the session cookie"));
}

#[test]
fn a_missing_cookie_file_exits_2_naming_the_file_and_how_to_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    std::fs::remove_file(dir.path().join("cookie")).unwrap();
    for args in [&["sync"][..], &["cookie", "check"]] {
        let out = chatkeep(&config).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot read the cookie file {} (service.cookie_file): it does not exist",
                dir.path().join("cookie").display()
            )) && err.contains("chatkeep cookie set"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_data_dir_that_is_a_file_names_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    std::fs::write(dir.path().join("data"), "not a directory").unwrap();
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "storage.data_dir = \"{}\" cannot be used",
            dir.path().join("data").display()
        )) && err.contains("set storage.data_dir in"),
        "{err}"
    );
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("error: storage.data_dir:") && stderr(&out).contains("is not a directory"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_unreachable_base_url_names_the_host_and_the_key() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        &["lilith"],
        1000.0,
        "max_retries = 0",
    );
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains(&format!("could not connect to 127.0.0.1:{port}"))
            && all.contains("check service.base_url"),
        "{all}"
    );
}

#[test]
fn check_config_refuses_a_data_directory_others_can_write_as_sync_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", &["lilith"], 1.0, "");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    set_mode(&data, 0o777);
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: storage.data_dir:") && err.contains("writable by its group and others"),
        "{err}"
    );
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_cookie_is_warned_about_on_every_run_and_never_shown() {
    let fake = fake(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 10)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base_url(), &["lilith"], 10_000.0, "");
    let text_of_config = std::fs::read_to_string(&config)
        .unwrap()
        .replace("cookie_file = \"cookie\"", &format!("cookie = \"{TOKEN}\""));
    std::fs::write(&config, text_of_config).unwrap();
    let out = chatkeep(&config).arg("sync").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("service.cookie holds the session cookie inline in the config file"),
        "{err}"
    );
    assert!(!text(&out).contains(TOKEN), "the cookie is never shown");
}
