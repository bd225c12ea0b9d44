//! The session cookie as the service last left it, kept in
//! `<data_dir>/session_cookie.json`: the token it rotated to, so that a
//! restart sends the newest value (the one the user configured may stop
//! working soon after a rotation); or the fact that it ended the session
//! (it cleared the cookie), so that a restart does not send the dead
//! session's token again.
//!
//! The file remembers which configured cookie it replaced, by the SHA-256 of
//! its token, never the token itself. While the configured cookie is still
//! that one, the file is newer news than the configured cookie and wins.
//! Once the user has put a different cookie in the config, the file is
//! stale: the configured cookie wins and the file is removed. A cookie the
//! person pastes with `chatkeep cookie set` always wins: it removes the
//! file ([`forget`]), even when it pastes the same token again.

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
    /// The token the service sent last; none once it ended the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// Fingerprint of the configured token that this one replaces.
    replaces_sha256: String,
    /// The service ended the session of the configured cookie (and of its
    /// rotations): nothing is sent until the person sets another cookie.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    ended: bool,
}

/// What a run starts from, given the configured cookie and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preferred {
    /// The configured cookie itself (no file, or a stale one).
    Configured(SessionCookie),
    /// The service's latest rotation of the configured cookie.
    Rotated(SessionCookie),
    /// The service ended the session of the configured cookie: send
    /// nothing until the person sets another.
    Ended,
}

/// Where the rotated cookie of the store at `data_dir` is kept.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Saves `cookie`, the service's rotation of the configured cookie whose
/// fingerprint is `replaces`: atomically, mode 0600, creating the data
/// directory (0700) if needed. Returns the file's path.
pub fn save(data_dir: &Path, cookie: &SessionCookie, replaces: &Fingerprint) -> io::Result<PathBuf> {
    write(
        data_dir,
        &RotatedFile {
            name: cookie.name().to_owned(),
            token: Some(cookie.token().to_owned()),
            replaces_sha256: replaces.as_hex().to_owned(),
            ended: false,
        },
    )
}

/// Records that the service ended the session of the configured cookie
/// whose fingerprint is `replaces` (sent under `name`), replacing a saved
/// rotation: later runs send nothing until the person sets another cookie.
/// No token is kept. Returns the file's path.
pub fn save_ended(data_dir: &Path, name: &str, replaces: &Fingerprint) -> io::Result<PathBuf> {
    write(
        data_dir,
        &RotatedFile {
            name: name.to_owned(),
            token: None,
            replaces_sha256: replaces.as_hex().to_owned(),
            ended: true,
        },
    )
}

/// Removes the file, durably, if there is one: for a cookie the person
/// has just set, which wins over anything the service said of an earlier
/// one.
pub fn forget(data_dir: &Path) -> io::Result<()> {
    fsio::remove_durably(&path(data_dir))
}

/// Writes `file` atomically, mode 0600, creating the data directory (0700)
/// if needed.
fn write(data_dir: &Path, file: &RotatedFile) -> io::Result<PathBuf> {
    fsio::create_private_dir(data_dir)?;
    let mut json = serde_json::to_vec_pretty(file).map_err(io::Error::other)?;
    json.push(b'\n');
    let path = path(data_dir);
    fsio::write_atomic(&path, &json)?;
    Ok(path)
}

/// What to start from: the saved rotation of `configured` if there is
/// one, the end of its session if the service ended it, else `configured`
/// itself. A file about some other cookie (the user has since configured a
/// new one), or one that cannot be read as one, is removed.
pub fn prefer(data_dir: &Path, configured: SessionCookie) -> Preferred {
    let path = path(data_dir);
    let bytes = match fsio::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Preferred::Configured(configured),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %fsio::explain(&e), "cannot read the saved rotated session cookie; using the configured one");
            return Preferred::Configured(configured);
        }
    };
    let Some(file) = serde_json::from_slice::<RotatedFile>(&bytes)
        .ok()
        .filter(RotatedFile::is_whole)
    else {
        tracing::warn!(path = %path.display(), "the saved rotated session cookie is malformed; using the configured one");
        remove(&path);
        return Preferred::Configured(configured);
    };
    let same = file.name == configured.name()
        && file
            .replaces_sha256
            .eq_ignore_ascii_case(Fingerprint::of(configured.token()).as_hex());
    if !same {
        tracing::info!(path = %path.display(), "the configured session cookie changed since the service last rotated or ended it; using the configured one");
        remove(&path);
        return Preferred::Configured(configured);
    }
    match file.into_cookie() {
        Some(cookie) => {
            tracing::debug!(path = %path.display(), "using the session cookie as the service last rotated it");
            Preferred::Rotated(cookie)
        }
        None => Preferred::Ended,
    }
}

impl RotatedFile {
    /// Either ended without a token, or a token that can be sent as it is.
    fn is_whole(&self) -> bool {
        match (&self.token, self.ended) {
            (None, true) => true,
            (Some(token), false) => SessionCookie::parse(token, &self.name)
                .is_some_and(|c| c.name() == self.name && c.token() == token),
            _ => false,
        }
    }

    /// The saved rotation, if the file holds one (see [`Self::is_whole`]).
    fn into_cookie(self) -> Option<SessionCookie> {
        let token = self.token.filter(|_| !self.ended)?;
        SessionCookie::parse(&token, &self.name)
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
        assert_eq!(prefer(&data, cookie("old")), Preferred::Rotated(cookie("new")));
        assert!(path.is_file());
    }

    #[test]
    fn a_newly_configured_cookie_wins_and_the_stale_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), &cookie("new"), &Fingerprint::of("old")).unwrap();
        assert_eq!(
            prefer(dir.path(), cookie("pasted-later")),
            Preferred::Configured(cookie("pasted-later"))
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_rotation_under_another_cookie_name_does_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &cookie("new"), &Fingerprint::of("old")).unwrap();
        let legacy = SessionCookie::parse("old", LEGACY_NAME).unwrap();
        assert_eq!(prefer(dir.path(), legacy.clone()), Preferred::Configured(legacy));
    }

    #[test]
    fn a_malformed_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        let old = Fingerprint::of("old");
        for bad in [
            "{not json".to_owned(),
            format!(
                r#"{{"name":"{CURRENT_NAME}","token":"two words","replaces_sha256":"{}"}}"#,
                old.as_hex()
            ),
            format!(
                r#"{{"name":"{CURRENT_NAME}","replaces_sha256":"{}"}}"#,
                old.as_hex()
            ),
            format!(
                r#"{{"name":"{CURRENT_NAME}","token":"t","ended":true,"replaces_sha256":"{}"}}"#,
                old.as_hex()
            ),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(
                prefer(dir.path(), cookie("old")),
                Preferred::Configured(cookie("old")),
                "{bad}"
            );
            assert!(!path.exists());
        }
    }

    #[test]
    fn no_file_means_the_configured_cookie() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            prefer(&dir.path().join("missing"), cookie("old")),
            Preferred::Configured(cookie("old"))
        );
    }

    #[test]
    fn an_ended_session_keeps_no_token_and_holds_until_another_cookie_is_set() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &cookie("rotated"), &Fingerprint::of("old")).unwrap();
        let path = save_ended(dir.path(), CURRENT_NAME, &Fingerprint::of("old")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("rotated") && text.contains("\"ended\": true"),
            "{text}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(prefer(dir.path(), cookie("old")), Preferred::Ended);
        assert_eq!(prefer(dir.path(), cookie("old")), Preferred::Ended, "kept");
        assert_eq!(
            prefer(dir.path(), cookie("new")),
            Preferred::Configured(cookie("new"))
        );
        assert!(!path.exists());
    }

    #[test]
    fn forget_removes_the_file_and_is_quiet_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = save_ended(dir.path(), CURRENT_NAME, &Fingerprint::of("old")).unwrap();
        forget(dir.path()).unwrap();
        assert!(!path.exists());
        forget(dir.path()).unwrap();
        assert_eq!(
            prefer(dir.path(), cookie("old")),
            Preferred::Configured(cookie("old"))
        );
    }
}
