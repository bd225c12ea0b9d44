//! age encryption of snapshots: the recipients a snapshot is encrypted to
//! (from the config and a recipients file), and the identities that
//! decrypt it (from `--identity FILE`).
//!
//! Only X25519 keys (`age1...`, `AGE-SECRET-KEY-1...`), the ones
//! `age-keygen` makes, are taken: they need no plugin and no passphrase,
//! so a daemon can encrypt unattended.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use age::x25519::Recipient;

use crate::config::ArchiveConfig;

/// Why a line is not an age X25519 recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientError {
    /// An identity (secret key) where its public key belongs. Its text is
    /// never repeated.
    SecretKey,
    NoPrefix,
    Encoding,
    Length,
}

impl RecipientError {
    /// True when the text was a secret key, which must not be shown.
    pub fn is_secret(&self) -> bool {
        *self == RecipientError::SecretKey
    }
}

impl fmt::Display for RecipientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecipientError::SecretKey => {
                "it is a secret key (an identity); give its public key instead, which \
                 `age-keygen -y FILE` prints, and keep the secret key away from the daemon"
            }
            RecipientError::NoPrefix => "it does not start with \"age1\"",
            RecipientError::Encoding => "it is not valid Bech32: a character is wrong, missing or extra",
            RecipientError::Length => "it does not hold a 32-byte X25519 key",
        })
    }
}

/// Parses one recipient, with a reason a person can act on when it fails.
pub fn parse_recipient(text: &str) -> Result<Recipient, RecipientError> {
    let text = text.trim();
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Err(RecipientError::SecretKey);
    }
    if !text.to_ascii_lowercase().starts_with("age1") {
        return Err(RecipientError::NoPrefix);
    }
    text.parse::<Recipient>().map_err(|reason| match reason {
        "incorrect pubkey length" => RecipientError::Length,
        _ => RecipientError::Encoding,
    })
}

/// Why the recipients or an identity could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the age recipients file {}: {source}", path.display())]
    ReadRecipients { path: PathBuf, source: io::Error },
    #[error("{}:{line}: {got} is not an age public key (\"age1...\"): {reason}", path.display())]
    BadRecipient {
        path: PathBuf,
        line: usize,
        got: String,
        reason: RecipientError,
    },
    #[error(
        "the age recipients file {} holds no recipient; snapshots are not written unencrypted \
         while archive.age_recipients_file is set: add a public key (\"age1...\") to it",
        path.display()
    )]
    NoRecipients { path: PathBuf },
    #[error("cannot read the age identity file {}: {reason}", path.display())]
    Identity { path: PathBuf, reason: String },
    #[error(
        "the age identity file {} holds no identity (a line \"AGE-SECRET-KEY-1...\" as \
         `age-keygen` writes it)",
        path.display()
    )]
    NoIdentity { path: PathBuf },
}

/// The recipients snapshots are encrypted to: `age_recipients`, then those
/// of `age_recipients_file` (read now, so a changed file needs no reload).
/// Empty: snapshots are not encrypted.
pub fn load_recipients(config: &ArchiveConfig) -> Result<Vec<Recipient>, KeyError> {
    let mut recipients = Vec::new();
    for text in &config.age_recipients {
        // Checked when the config was read; checked again rather than trusted.
        let recipient = parse_recipient(text).map_err(|reason| KeyError::BadRecipient {
            path: PathBuf::from("archive.age_recipients"),
            line: 0,
            got: shown(text, &reason),
            reason,
        })?;
        recipients.push(recipient);
    }
    if let Some(path) = &config.age_recipients_file {
        let from_file = read_recipients_file(path)?;
        if from_file.is_empty() {
            return Err(KeyError::NoRecipients { path: path.clone() });
        }
        recipients.extend(from_file);
    }
    Ok(recipients)
}

/// A recipients file as age reads one: a public key a line; blank lines
/// and lines starting with `#` are skipped.
fn read_recipients_file(path: &Path) -> Result<Vec<Recipient>, KeyError> {
    let read_err = |source| KeyError::ReadRecipients {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut recipients = Vec::new();
    // A recipients file is small; a huge one is a mistake, not a list.
    for (number, line) in BufReader::new(file.take(1 << 20)).lines().enumerate() {
        let line = line.map_err(read_err)?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let recipient = parse_recipient(text).map_err(|reason| KeyError::BadRecipient {
            path: path.to_owned(),
            line: number + 1,
            got: shown(text, &reason),
            reason,
        })?;
        recipients.push(recipient);
    }
    Ok(recipients)
}

fn shown(text: &str, reason: &RecipientError) -> String {
    if reason.is_secret() {
        "a secret key (not shown here)".to_owned()
    } else {
        format!("{:?}", text.chars().take(80).collect::<String>())
    }
}

/// The identities of an age identity file (`age-keygen -o FILE`).
pub struct Identities {
    path: PathBuf,
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl Identities {
    /// Reads the identity file at `path`. Its content never reaches a
    /// message: age names the line, not the text.
    pub fn load(path: &Path) -> Result<Identities, KeyError> {
        let file = std::fs::File::open(path).map_err(|e| KeyError::Identity {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let parsed =
            age::IdentityFile::from_buffer(BufReader::new(file)).map_err(|e| KeyError::Identity {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let keys = parsed.into_identities().map_err(|e| KeyError::Identity {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if keys.is_empty() {
            return Err(KeyError::NoIdentity {
                path: path.to_owned(),
            });
        }
        Ok(Identities {
            path: path.to_owned(),
            keys,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plaintext of an age file read from `input`.
    pub fn decrypt<R: Read>(&self, input: R) -> Result<age::stream::StreamReader<R>, DecryptError> {
        let decryptor = age::Decryptor::new(input).map_err(DecryptError::from_age)?;
        decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
            .map_err(DecryptError::from_age)
    }
}

/// Why an encrypted snapshot could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("none of the identities given can decrypt it; it was encrypted to other recipients")]
    NoMatchingKey,
    #[error("it is not a valid age file: {0}")]
    Invalid(String),
}

impl DecryptError {
    fn from_age(e: age::DecryptError) -> DecryptError {
        match e {
            age::DecryptError::NoMatchingKeys => DecryptError::NoMatchingKey,
            other => DecryptError::Invalid(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_parsed_with_reasons_and_secrets_never_shown() {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        assert!(parse_recipient(&public).is_ok());
        assert!(parse_recipient(&format!("  {public}\n")).is_ok());
        use age::secrecy::ExposeSecret;
        let secret = identity.to_string();
        assert_eq!(
            parse_recipient(secret.expose_secret()).unwrap_err(),
            RecipientError::SecretKey
        );
        assert_eq!(
            parse_recipient("ssh-ed25519 AAAA").unwrap_err(),
            RecipientError::NoPrefix
        );
        let mut broken = public.clone();
        broken.pop();
        assert_eq!(parse_recipient(&broken).unwrap_err(), RecipientError::Encoding);
    }

    #[test]
    fn a_recipients_file_skips_comments_and_names_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recipients.txt");
        let public = age::x25519::Identity::generate().to_public().to_string();
        std::fs::write(&path, format!("# backup key\n\n{public}\nage1nope\n")).unwrap();
        let err = read_recipients_file(&path).unwrap_err().to_string();
        assert!(err.ends_with(":4: \"age1nope\" is not an age public key (\"age1...\"): it is not valid Bech32: a character is wrong, missing or extra"), "{err}");
        std::fs::write(&path, format!("# backup key\n{public}\n")).unwrap();
        assert_eq!(read_recipients_file(&path).unwrap().len(), 1);
    }
}
