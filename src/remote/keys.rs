//! A remote's access key: from a systemd credential, files, the config
//! itself or the environment. Only ever held as [`Secret`]s.

use std::path::{Path, PathBuf};

use crate::config::remote::{ACCESS_KEY_ID_ENV, SECRET_ACCESS_KEY_ENV, SESSION_TOKEN_ENV};
use crate::config::{RemoteConfig, RemoteCredentials, Secret, shown_cookie_path};

/// An access key and where it came from.
pub struct Keys {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// A session token, for temporary keys (`AWS_SESSION_TOKEN`).
    pub session_token: Option<Secret>,
}

impl Keys {
    /// Each secret's text, to keep out of anything shown.
    pub fn values(&self) -> Vec<&str> {
        let mut values = vec![self.access_key_id.expose(), self.secret_access_key.expose()];
        values.extend(self.session_token.as_ref().map(Secret::expose));
        values
    }
}

/// Reads the keys of `remote`. A systemd credential pair
/// (`LoadCredential=remote-NAME-access-key-id:...` and
/// `remote-NAME-secret-access-key`) wins over the configured source, as
/// the cookie's does. The error names where the key was looked for, never
/// a value.
pub fn load(remote: &RemoteConfig) -> Result<Keys, String> {
    if let Some((id, secret)) = systemd_credentials(remote)? {
        return Ok(Keys {
            access_key_id: read_key(&id, "the systemd credential")?,
            secret_access_key: read_key(&secret, "the systemd credential")?,
            session_token: None,
        });
    }
    match &remote.credentials {
        RemoteCredentials::Files {
            access_key_id,
            secret_access_key,
        } => Ok(Keys {
            access_key_id: read_key(access_key_id, "access_key_id_file")?,
            secret_access_key: read_key(secret_access_key, "secret_access_key_file")?,
            session_token: None,
        }),
        RemoteCredentials::Inline {
            access_key_id,
            secret_access_key,
        } => Ok(Keys {
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
            session_token: None,
        }),
        RemoteCredentials::Environment => {
            let var = |name: &str| {
                std::env::var(name)
                    .ok()
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            };
            match (var(ACCESS_KEY_ID_ENV), var(SECRET_ACCESS_KEY_ENV)) {
                (Some(id), Some(secret)) => Ok(Keys {
                    access_key_id: Secret::new(id),
                    secret_access_key: Secret::new(secret),
                    session_token: var(SESSION_TOKEN_ENV).map(Secret::new),
                }),
                _ => Err(format!(
                    "it has no access key: set access_key_id_file and secret_access_key_file in its \
                     [[remote]], or the environment variables {ACCESS_KEY_ID_ENV} and \
                     {SECRET_ACCESS_KEY_ENV}, or give systemd credentials {} and {}",
                    remote.credential_names().0,
                    remote.credential_names().1
                )),
            }
        }
    }
}

/// The credential pair systemd gave this remote, if it gave one.
fn systemd_credentials(remote: &RemoteConfig) -> Result<Option<(PathBuf, PathBuf)>, String> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Ok(None);
    };
    let (id_name, secret_name) = remote.credential_names();
    let (id, secret) = (Path::new(&dir).join(&id_name), Path::new(&dir).join(&secret_name));
    match (id.is_file(), secret.is_file()) {
        (true, true) => Ok(Some((id, secret))),
        (false, false) => Ok(None),
        (true, false) => Err(format!(
            "systemd gave the credential {id_name} but not {secret_name}"
        )),
        (false, true) => Err(format!(
            "systemd gave the credential {secret_name} but not {id_name}"
        )),
    }
}

/// A key file's content, trimmed; never repeated in the error.
fn read_key(path: &Path, key: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {} ({key}): {e}", shown_cookie_path(path)))?;
    let text = text.trim();
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(format!(
            "{} ({key}) must hold the key alone, on one line (its content is not shown here)",
            shown_cookie_path(path)
        ));
    }
    Ok(Secret::new(text))
}
