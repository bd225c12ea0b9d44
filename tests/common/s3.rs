//! A real S3-compatible server for the remote tests: `s3s-fs`, the s3s
//! project's file-system-backed server, installed from crates.io by the
//! tests themselves (once, under `target/test-tools/`), and run on a free
//! loopback port over a temporary directory.
//!
//! Nothing here is a mock: the server is a separate process speaking S3
//! (SigV4, multipart upload, ListObjectsV2, path-style addressing) over
//! loopback, as a store on the network would. If it cannot be installed or
//! started, the test fails and says so; it never skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The server's crate and version. 0.14.1 is the newest that builds on
/// the project's rustc (1.95); later ones need 1.96.
pub const S3S_FS: &str = "s3s-fs";
pub const S3S_FS_VERSION: &str = "0.14.1";

pub const ACCESS_KEY: &str = "chatkeep-test-access-key";
pub const SECRET_KEY: &str = "s3cr3t-k3y-that-must-never-show";
pub const REGION: &str = "us-east-1";

/// The installed server binary, installing it first if needed. Parallel
/// tests (and parallel test binaries) take a file lock, so one installs
/// and the others wait for it and reuse the binary.
pub fn server_binary() -> PathBuf {
    let root = tools_dir().join(format!("{S3S_FS}-{S3S_FS_VERSION}"));
    let binary = root.join("bin").join(S3S_FS);
    // Written once the install is complete: a binary alone may be one
    // that an interrupted install left.
    let installed = root.join(".installed");
    if installed.is_file() {
        return binary;
    }
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    let lock_path = root.join(".install.lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if installed.is_file() {
        return binary;
    }
    install(&root);
    assert!(
        binary.is_file(),
        "`cargo install {S3S_FS}@{S3S_FS_VERSION}` succeeded but {} is not there",
        binary.display()
    );
    std::fs::write(&installed, format!("{S3S_FS} {S3S_FS_VERSION}\n"))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", installed.display()));
    // The build's intermediate files (hundreds of MB) are of no more use.
    let _ = std::fs::remove_dir_all(root.join("build"));
    binary
}

/// `target/test-tools`, beside the build's own output.
fn tools_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-tools")
}

/// `cargo install --locked --debug s3s-fs@VERSION --features binary --root
/// ROOT`, building in `ROOT/build` so an interrupted install resumes
/// (removed once installed). A debug build: 3 min 20 s on 2 cores against
/// 8 min 10 s for a release one, and fast enough for the tests (an 11 MB
/// upload in well under a second). Each later run reuses the binary.
fn install(root: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "installing {S3S_FS} {S3S_FS_VERSION} (the S3-compatible server of the remote tests) into {}",
        root.display()
    );
    let output = Command::new(&cargo)
        .args([
            "install",
            "--locked",
            "--quiet",
            "--debug",
            "--features",
            "binary",
            "--root",
        ])
        .arg(root)
        .arg(format!("{S3S_FS}@{S3S_FS_VERSION}"))
        .env("CARGO_TARGET_DIR", root.join("build"))
        // What the outer `cargo test` set for chatkeep's own build would
        // steer this one too.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} to install {S3S_FS} {S3S_FS_VERSION}: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        panic!(
            "the remote tests need {S3S_FS} {S3S_FS_VERSION} (an S3-compatible server), and \
             `cargo install --locked {S3S_FS}@{S3S_FS_VERSION} --features binary` failed \
             ({}); crates.io must be reachable the first time. Its last lines:\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

/// A running s3s-fs over a temporary directory; killed on drop.
pub struct S3Server {
    child: Option<Child>,
    /// Where the server keeps buckets: one directory per bucket.
    pub root: tempfile::TempDir,
    pub port: u16,
}

impl S3Server {
    /// Starts the server on a free loopback port, with [`ACCESS_KEY`] and
    /// [`SECRET_KEY`] as its only credentials and `buckets` created.
    pub fn start(buckets: &[&str]) -> S3Server {
        let root = tempfile::tempdir().unwrap();
        for bucket in buckets {
            std::fs::create_dir(root.path().join(bucket)).unwrap();
        }
        let (child, port) = spawn(root.path(), 0);
        S3Server {
            child: Some(child),
            root,
            port,
        }
    }

    /// `http://127.0.0.1:PORT`, the `endpoint` of a `[[remote]]`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the object `key` of `bucket` is on disk.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    /// The keys of `bucket`, sorted: its files, less the server's own
    /// bookkeeping (in-progress multipart uploads, metadata).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let base = self.root.path().join(bucket);
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let key = path.strip_prefix(&base).unwrap().to_string_lossy().into_owned();
                    if !key.split('/').any(|part| part.starts_with('.')) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        keys
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        let (child, _) = spawn(self.root.path(), self.port);
        self.child = Some(child);
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs s3s-fs over `root` on `port` (0: any free one) and waits for the
/// line in which it says where it listens, which it prints once bound.
fn spawn(root: &Path, port: u16) -> (Child, u16) {
    let binary = server_binary();
    let mut child = Command::new(&binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .env("RUST_LOG", "s3s_fs=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Reads the log to its end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find("server is running at http://") {
                let address = line[at + "server is running at http://".len()..].trim();
                let port = address.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                if let (Some(tx), Some(port)) = (tx.take(), port) {
                    let _ = tx.send(port);
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(port) => (child, port),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            panic!(
                "{} did not say it was listening within 30 s (exit: {status:?})",
                binary.display()
            );
        }
    }
}
