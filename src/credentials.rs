//! Where the session cookie comes from: systemd credentials, a file, an
//! environment variable, or the config itself; and, once the service has
//! rotated it, the data directory (see [`rotated`]).
//!
//! A cookie file's path is shown everywhere through
//! [`shown_cookie_path`], which hides a last component that looks like a
//! cookie value (pasted into `cookie_file` by mistake).

pub mod rotated;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::api::SessionCookie;
use crate::config::{CookieSource, ServiceConfig, shown_cookie_path};

pub use rotated::{Fingerprint, Preferred};

/// The name `LoadCredential=cookie:...` gives the credential.
pub const CREDENTIAL_NAME: &str = "cookie";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "cannot read the cookie file {} ({key}): {}",
        shown_cookie_path(path),
        file_problem(source)
    )]
    File {
        path: PathBuf,
        /// Where the path comes from: `service.cookie_file`, or systemd.
        key: &'static str,
        source: std::io::Error,
    },
    #[error("environment variable {0} is not set or not valid UTF-8")]
    Env(String),
    #[error(
        "the cookie from {0} is empty or malformed; paste the value of the session cookie (or name=value)"
    )]
    Malformed(String),
    /// The service ended the session of the configured cookie (it cleared
    /// the cookie), and the person has not set another since.
    #[error(
        "the service ended the session of the cookie from {0} (it cleared the session cookie), so \
         chatkeep no longer sends it; log in with a browser, copy the session cookie again and store \
         it with `chatkeep cookie set`"
    )]
    Ended(Origin),
}

/// Why a cookie file cannot be read, and what to do.
fn file_problem(e: &std::io::Error) -> String {
    const SET: &str = "store the session cookie there with `chatkeep cookie set` (it reads the cookie \
                       from a hidden prompt), or set cookie_file in [service] to the file that holds it";
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("it does not exist; {SET}"),
        std::io::ErrorKind::PermissionDenied => {
            format!("{e}; make it readable by the user chatkeep runs as (and by nobody else: chmod 600)")
        }
        _ => format!("{e}; {SET}"),
    }
}

/// Where the cookie was read from, for messages (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Credential(PathBuf),
    File(PathBuf),
    Env(String),
    Inline,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Credential(p) => write!(f, "systemd credential {}", shown_cookie_path(p)),
            Origin::File(p) => write!(f, "cookie file {}", shown_cookie_path(p)),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Inline => f.write_str("the config file"),
        }
    }
}

/// Reads the session cookie. A systemd credential (`$CREDENTIALS_DIRECTORY/cookie`)
/// wins over the configured source, since the unit file put it there on purpose.
pub fn load(service: &ServiceConfig) -> Result<(SessionCookie, Origin), CredentialError> {
    let (text, origin) = match (credential_path(), &service.cookie) {
        (Some(path), _) => (
            read_file(&path, "the systemd credential, LoadCredential=cookie:...")?,
            Origin::Credential(path),
        ),
        (None, CookieSource::File(path)) => {
            warn_if_shared(path);
            (
                read_file(path, "service.cookie_file")?,
                Origin::File(path.clone()),
            )
        }
        (None, CookieSource::Env(var)) => (
            std::env::var(var).map_err(|_| CredentialError::Env(var.clone()))?,
            Origin::Env(var.clone()),
        ),
        (None, CookieSource::Inline(secret)) => (secret.expose().to_owned(), Origin::Inline),
    };
    let cookie = SessionCookie::parse(&text, &service.cookie_name)
        .ok_or_else(|| CredentialError::Malformed(origin.to_string()))?;
    Ok((cookie, origin))
}

/// The cookie a run sends, and what is needed to save its rotations.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie to send: the configured one, or the service's latest
    /// rotation of it.
    pub cookie: SessionCookie,
    /// Where the configured cookie came from.
    pub origin: Origin,
    /// `cookie` is a rotation saved in the data directory, not the
    /// configured cookie itself.
    pub rotated: bool,
    /// Fingerprint of the configured token: a rotation is saved as
    /// replacing it, so that a later change of the configured cookie wins.
    pub configured: Fingerprint,
}

/// Reads the configured cookie ([`load`]) and prefers the service's saved
/// rotation of it, if `data_dir` holds one. Fails with
/// [`CredentialError::Ended`] if the service ended its session.
pub fn load_session(service: &ServiceConfig, data_dir: &Path) -> Result<Session, CredentialError> {
    let (configured, origin) = load(service)?;
    session_for(configured, origin, data_dir)
}

/// The session for a cookie that is (or is about to be) the configured one:
/// what `data_dir` says the service did to it decides (see
/// [`rotated::prefer`]).
pub fn session_for(
    configured: SessionCookie,
    origin: Origin,
    data_dir: &Path,
) -> Result<Session, CredentialError> {
    let fingerprint = Fingerprint::of(configured.token());
    let (cookie, rotated) = match rotated::prefer(data_dir, configured) {
        Preferred::Configured(cookie) => (cookie, false),
        Preferred::Rotated(cookie) => (cookie, true),
        Preferred::Ended => return Err(CredentialError::Ended(origin)),
    };
    Ok(Session {
        cookie,
        origin,
        rotated,
        configured: fingerprint,
    })
}

/// The systemd credential holding the cookie, if the unit gave one; it wins
/// over the configured source.
pub fn credential_path() -> Option<PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|dir| Path::new(&dir).join(CREDENTIAL_NAME))
        .filter(|p| p.is_file())
}

fn read_file(path: &Path, key: &'static str) -> Result<String, CredentialError> {
    std::fs::read_to_string(path).map_err(|source| CredentialError::File {
        path: path.to_owned(),
        key,
        source,
    })
}

fn warn_if_shared(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %shown_cookie_path(path),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the cookie file is readable by other users; run `chmod 600` on it"
        );
    }
}
