//! `chatkeep check-config`: validates the config and prints it with the
//! defaults filled in (secrets redacted), then checks what a run needs and
//! can be checked without the network: the session cookie readable and
//! plausible, the data and archive directories writable or creatable, the
//! log directory creatable. With `--online` it then asks the service, as
//! `chatkeep cookie check` does, which account the cookie logs in as.
//!
//! Nothing is left behind: a directory that does not exist yet is judged
//! by the nearest one above it that does, where its first missing
//! component is made and removed at once. The cookie is read, never shown.

use std::io::ErrorKind;
use std::path::Path;
use std::process::ExitCode;

use rustix::fs::{Access, AtFlags, CWD};

use super::{Fatal, exit, load_config};
use crate::config::{Config, ConfigLocation};
use crate::credentials;
use crate::store::fsio;

/// `check-config [--online]`.
pub async fn run(location: &ConfigLocation, online: bool) -> Result<ExitCode, Fatal> {
    let config = load_config(location)?;
    let path = &location.path;
    print!("{}", config.to_redacted_toml());
    if let Some(warning) = config.service.insecure_http_warning() {
        eprintln!("warning: {warning}");
    }
    let problems = offline_checks(&config);
    if problems > 0 {
        eprintln!(
            "{}: {problems} problem{} above; a run would fail",
            path.display(),
            if problems == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::from(exit::USAGE));
    }
    let count = config.personalities.len();
    eprintln!(
        "{}: valid, {count} {}",
        path.display(),
        if count == 1 {
            "personality"
        } else {
            "personalities"
        }
    );
    if online {
        let remote_problems = online_remote_checks(&config).await;
        let code = super::cookie::check(&config).await?;
        return Ok(if remote_problems > 0 {
            ExitCode::from(exit::FAILED)
        } else {
            code
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one line per check on standard error; returns how many failed.
fn offline_checks(config: &Config) -> usize {
    let mut problems = 0;
    let mut report = |key: &str, result: Result<String, String>| match result {
        Ok(fine) => eprintln!("ok: {key}: {fine}"),
        Err(problem) => {
            problems += 1;
            eprintln!("error: {key}: {}", crate::escape::controls(&problem));
        }
    };
    report("session cookie", cookie_plausible(config));
    // Each as the command that makes it checks it: the data and archive
    // directories with the personality directories in them, the log
    // directory alone.
    let tree = |dir: &Path| crate::store::check_private_tree(dir).map_err(|e| e.to_string());
    let alone = |dir: &Path| fsio::check_private_dir(dir).map_err(|e| e.to_string());
    report(
        "storage.data_dir",
        directory(&config.storage.data_dir, "data_dir in [storage]", tree),
    );
    report(
        "archive.dir",
        directory(&config.archive.dir, "dir in [archive]", tree),
    );
    if let Some(dir) = &config.log.dir {
        report("log.dir", directory(dir, "dir in [log]", alone));
    }
    for remote in &config.remotes {
        let keys = crate::remote::keys::load(remote)
            .map(|_| format!("{}: its access key can be read", remote.url()));
        report(&format!("remote `{}`", remote.name), keys);
    }
    problems
}

/// With `--online`: each remote answers a listing of its prefix with its
/// key. Returns how many did not.
async fn online_remote_checks(config: &Config) -> usize {
    let mut problems = 0;
    for remote in &config.remotes {
        let answer = match crate::remote::Remote::open(remote) {
            Ok(opened) => opened.check().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(()) => eprintln!(
                "ok: remote `{}`: {} answers and accepts the key",
                remote.name,
                remote.url()
            ),
            Err(e) => {
                problems += 1;
                eprintln!("error: {}", crate::escape::controls(&e.to_string()));
            }
        }
    }
    problems
}

/// The cookie a sync would send can be read and looks like a cookie.
fn cookie_plausible(config: &Config) -> Result<String, String> {
    credentials::load(&config.service)
        .map(|(_, origin)| format!("{origin} is readable and holds a plausible session cookie"))
        .map_err(|e| e.to_string())
}

/// `dir` is a directory this user can write in and that `private` accepts
/// (chatkeep's alone), or can be created: the nearest existing directory
/// above it is writable. `set` says where the key is, for the remedy.
fn directory(dir: &Path, set: &str, private: impl Fn(&Path) -> Result<(), String>) -> Result<String, String> {
    let shown = dir.display();
    let remedy = format!("make it writable by this user, or set {set} to another directory");
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(format!(
                "{shown} is not a directory; set {set} to a directory (it is created if missing)"
            ));
        }
        Ok(_) => {
            writable(dir).map_err(|e| format!("{shown} is not writable by this user ({e}); {remedy}"))?;
            return private(dir).map(|()| format!("{shown} is writable"));
        }
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
        Err(e) => return Err(format!("{shown}: {e}; {remedy}")),
    }
    let Some(parent) = dir
        .ancestors()
        .skip(1)
        .find(|a| std::fs::symlink_metadata(a).is_ok())
    else {
        return Err(format!("{shown}: no directory above it exists; set {set}"));
    };
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => writable(parent)
            .and_then(|()| try_create(dir, parent))
            .map(|()| {
                format!(
                    "{shown} does not exist yet; it will be created in {}",
                    parent.display()
                )
            })
            .map_err(|e| {
                format!(
                    "{shown} does not exist and cannot be created in {} ({e}); create it, {remedy}",
                    parent.display()
                )
            }),
        _ => Err(format!(
            "{shown} cannot be created: {} is not a directory; set {set} to a directory",
            parent.display()
        )),
    }
}

/// Makes and removes at once the first missing directory of `dir` below
/// `parent`: some file systems (`/proc`, `/sys`) refuse even root, which
/// the permission bits do not say.
fn try_create(dir: &Path, parent: &Path) -> std::io::Result<()> {
    let Some(first) = dir.ancestors().find(|a| a.parent() == Some(parent)) else {
        return Ok(());
    };
    std::fs::create_dir(first)?;
    std::fs::remove_dir(first)
}

/// Write and search permission for the effective user, as creating a file
/// in `dir` needs (a read-only file system shows here too).
fn writable(dir: &Path) -> std::io::Result<()> {
    rustix::fs::accessat(CWD, dir, Access::WRITE_OK | Access::EXEC_OK, AtFlags::EACCESS)
        .map_err(std::io::Error::from)
}
