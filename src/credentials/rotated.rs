//! The session cookie as the service last rotated it, kept in
//! `<data_dir>/session_cookie.json` so that a restart sends the newest value
//! (the one the user configured may stop working soon after a rotation).
//!
//! The file remembers which configured cookie it replaced, by the SHA-256 of
//! its token, never the token itself. While the configured cookie is still
//! that one, the rotated token is the newer of the two and wins. Once the
//! user has put a different cookie in the config, the file is stale: the
//! configured cookie wins and the file is removed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::SessionCookie;
use crate::store::fsio;

/// Name of the file inside the data directory.
pub const FILE_NAME: &str = "session_cookie.json";

/// SHA-256 of a token, in lowercase hex: tells whether the configured cookie
/// is still the one a rotation replaced, without keeping the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of(token: &str) -> Fingerprint {
        let digest = Sha256::digest(token.as_bytes());
        Fingerprint(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Fingerprint {
    /// A prefix is enough to tell two apart in a debug dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({}…)", &self.0[..self.0.len().min(12)])
    }
}

/// The file's content. No `Debug`: it holds a token.
#[derive(Serialize, Deserialize)]
struct RotatedFile {
    /// The session cookie's name.
    name: String,
    /// The token the service sent last.
    token: String,
    /// Fingerprint of the configured token that this one replaces.
    replaces_sha256: String,
}

/// Where the rotated cookie of the store at `data_dir` is kept.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Saves `cookie`, the service's rotation of the configured cookie whose
/// fingerprint is `replaces`: atomically, mode 0600, creating the data
/// directory (0700) if needed. Returns the file's path.
pub fn save(data_dir: &Path, cookie: &SessionCookie, replaces: &Fingerprint) -> io::Result<PathBuf> {
    fsio::create_private_dir(data_dir)?;
    let file = RotatedFile {
        name: cookie.name().to_owned(),
        token: cookie.token().to_owned(),
        replaces_sha256: replaces.as_hex().to_owned(),
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    json.push(b'\n');
    let path = path(data_dir);
    fsio::write_atomic(&path, &json)?;
    Ok(path)
}

/// The cookie to send: the saved rotation of `configured` if there is one,
/// else `configured` itself. A saved rotation of some other cookie (the
/// user has since configured a new one), or a file that cannot be read as
/// one, is removed. Returns whether the saved rotation is used.
pub fn prefer(data_dir: &Path, configured: SessionCookie) -> (SessionCookie, bool) {
    let path = path(data_dir);
    let bytes = match fsio::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (configured, false),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %fsio::explain(&e), "cannot read the saved rotated session cookie; using the configured one");
            return (configured, false);
        }
    };
    let saved = serde_json::from_slice::<RotatedFile>(&bytes)
        .ok()
        .and_then(RotatedFile::into_cookie);
    match saved {
        Some((cookie, replaces))
            if cookie.name() == configured.name()
                && replaces.eq_ignore_ascii_case(Fingerprint::of(configured.token()).as_hex()) =>
        {
            tracing::debug!(path = %path.display(), "using the session cookie as the service last rotated it");
            (cookie, true)
        }
        Some(_) => {
            tracing::info!(path = %path.display(), "the configured session cookie changed since the service last rotated it; using the configured one");
            remove(&path);
            (configured, false)
        }
        None => {
            tracing::warn!(path = %path.display(), "the saved rotated session cookie is malformed; using the configured one");
            remove(&path);
            (configured, false)
        }
    }
}

impl RotatedFile {
    /// The saved cookie and the fingerprint (hex) it replaces, if the token
    /// could be sent as it is.
    fn into_cookie(self) -> Option<(SessionCookie, String)> {
        let cookie = SessionCookie::parse(&self.token, &self.name)
            .filter(|c| c.name() == self.name && c.token() == self.token)?;
        Some((cookie, self.replaces_sha256))
    }
}

fn remove(path: &Path) {
    if let Err(e) = fsio::remove_durably(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the stale rotated session cookie");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cookie::{CURRENT_NAME, LEGACY_NAME};
    use std::os::unix::fs::PermissionsExt;

    fn cookie(token: &str) -> SessionCookie {
        SessionCookie::parse(token, CURRENT_NAME).unwrap()
    }

    #[test]
    fn fingerprint_is_the_sha256_of_the_token_in_hex() {
        assert_eq!(
            Fingerprint::of("abc").as_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!format!("{:?}", Fingerprint::of("abc")).contains("ba7816bf8f01cfea4141"));
    }

    #[test]
    fn a_rotation_of_the_configured_cookie_wins_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = save(&data, &cookie("new"), &Fingerprint::of("old")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (used, rotated) = prefer(&data, cookie("old"));
        assert_eq!((used.token(), rotated), ("new", true));
        assert!(path.is_file());
    }

    #[test]
    fn a_newly_configured_cookie_wins_and_the_stale_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), &cookie("new"), &Fingerprint::of("old")).unwrap();
        let (used, rotated) = prefer(dir.path(), cookie("pasted-later"));
        assert_eq!((used.token(), rotated), ("pasted-later", false));
        assert!(!path.exists());
    }

    #[test]
    fn a_rotation_under_another_cookie_name_does_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &cookie("new"), &Fingerprint::of("old")).unwrap();
        let legacy = SessionCookie::parse("old", LEGACY_NAME).unwrap();
        let (used, rotated) = prefer(dir.path(), legacy.clone());
        assert_eq!((used, rotated), (legacy, false));
    }

    #[test]
    fn a_malformed_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        for bad in [
            "{not json",
            r#"{"name":"n","token":"two words","replaces_sha256":"00"}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let (used, rotated) = prefer(dir.path(), cookie("old"));
            assert_eq!((used.token(), rotated), ("old", false));
            assert!(!path.exists());
        }
    }

    #[test]
    fn no_file_means_the_configured_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let (used, rotated) = prefer(&dir.path().join("missing"), cookie("old"));
        assert_eq!((used.token(), rotated), ("old", false));
    }
}
