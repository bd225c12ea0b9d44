//! A real headless browser for the web view's tests: Chromium from the
//! system's packages, installed by the tests themselves when it is missing
//! (`apt-get install chromium`, once, under a file lock, as CI and a fresh
//! Debian machine run the tests as root), and driven with its own headless
//! flags: `--dump-dom` gives the document after the page has loaded (and
//! any script in it has run), `--screenshot` a picture of it.
//!
//! If it cannot be found or installed, the test fails and says so; it never
//! skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CANDIDATES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in CANDIDATES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// The browser, installing Debian's `chromium` first if there is none.
pub fn chromium() -> PathBuf {
    if let Some(found) = find() {
        return found;
    }
    let lock_dir = std::env::temp_dir();
    let lock_path = lock_dir.join("chatkeep-tests-chromium.lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if let Some(found) = find() {
        return found;
    }
    eprintln!("installing chromium (the headless browser of the web view tests) with apt-get");
    let run = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
    };
    let installed = run(&["install", "-y", "--no-install-recommends", "chromium"])
        .ok()
        .filter(|o| o.status.success())
        .or_else(|| {
            run(&["update"]).ok()?;
            run(&["install", "-y", "--no-install-recommends", "chromium"]).ok()
        });
    match (installed, find()) {
        (_, Some(found)) => found,
        (output, None) => panic!(
            "the web view tests need a headless Chromium: none of {CANDIDATES:?} is on PATH, and \
             `apt-get install chromium` did not provide one (it needs root and Debian's archive){}",
            output.map_or_else(String::new, |o| format!(
                ":\n{}",
                String::from_utf8_lossy(&o.stderr)
            ))
        ),
    }
}

fn headless(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        // Root in a container: Chromium's sandbox needs user namespaces
        // the test machine may not give.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--virtual-time-budget=3000",
        "--window-size=1280,1800",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null());
    cmd
}

/// Runs `cmd`, killing it after `limit`.
fn output_within(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("chromium runs"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("chromium did not finish within {limit:?}")
        }
    }
}

/// The document at `url` once loaded, as Chromium serialises it.
pub fn dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = headless(profile.path());
    cmd.arg("--dump-dom").arg(url);
    let out = output_within(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "chromium --dump-dom {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot of `url`, kept as a test artifact (not committed) in
/// `target/test-artifacts/web/<name>.png`; returns its path.
pub fn screenshot(url: &str, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts").join("web");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&file);
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = headless(profile.path());
    cmd.arg(format!("--screenshot={}", file.display())).arg(url);
    let out = output_within(cmd, Duration::from_secs(60));
    assert!(
        out.status.success() && file.is_file(),
        "chromium --screenshot {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    file
}
