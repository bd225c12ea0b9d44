//! Media: the images, voice replies and avatars that messages and profiles
//! point to, downloaded into a content-addressed store so that a backup
//! keeps them after the service or its CDN links are gone.
//!
//! - [`refs`]: which URLs a stored message or profile points to;
//! - [`address`]: which addresses a download may connect to;
//! - [`index`]: what became of each URL, and which personality links it
//!   where: an SQLite database, so that none of it is held in memory;
//! - [`store`]: the content-addressed files and their crash-safe writing;
//! - [`fetch`]: the HTTP side: its own client (never the session cookie),
//!   its own token bucket and bandwidth limit, redirects checked hop by hop;
//! - [`run`]: one personality's turn, called by the sync after its chat;
//! - [`catalog`]: the store read without writing, for snapshots, `verify`
//!   and exports.
//!
//! On disk (see `store/mod.rs` for the whole data directory): the files
//! and the URL index are shared by every personality under
//! `<data_dir>/media/`, so a file linked from several messages or
//! personalities is downloaded and stored once; the index lists, per
//! personality, the URLs its messages and profile point to.

pub mod address;
pub mod catalog;
pub mod fetch;
pub mod index;
pub mod refs;
pub mod run;
pub mod store;

use std::fmt;

pub use address::{AddressPolicy, Forbidden};
pub use catalog::{Catalog, MediaView};
pub use fetch::{FetchError, FetchOptions, Fetched, MediaFetcher};
pub use index::{MediaRecord, MediaState};
pub use refs::{MediaKind, MediaRef};
pub use run::{MediaContext, MediaJob, MediaRunError, MediaTotals, RunBudget, fetch_for_personality};
pub use store::MediaStore;

/// A URL a message or profile points to, as the service gave it. It may be
/// signed (a token in its query string): [`MediaUrl::redacted`] is what
/// logs and errors show.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct MediaUrl(String);

impl MediaUrl {
    pub fn new(url: impl Into<String>) -> MediaUrl {
        MediaUrl(url.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL without its query string and fragment, which may carry a
    /// signature or a token.
    pub fn redacted(&self) -> &str {
        redact(&self.0)
    }
}

/// `url` up to its query string or fragment.
pub fn redact(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

impl fmt::Display for MediaUrl {
    /// Redacted: a `MediaUrl` shown anywhere never shows its query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted())
    }
}

/// The SHA-256 of a stored file's bytes, lower-case hex: its name in the
/// store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MediaHash(String);

impl MediaHash {
    pub fn from_digest(digest: &[u8]) -> MediaHash {
        MediaHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MediaHash {
    type Error = String;

    /// Only 64 lower-case hex digits: the hash becomes a file name.
    fn try_from(text: String) -> Result<MediaHash, String> {
        let ok = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(MediaHash(text))
        } else {
            Err(format!("not a SHA-256 in hex: {text:?}"))
        }
    }
}

impl From<MediaHash> for String {
    fn from(hash: MediaHash) -> String {
        hash.0
    }
}

impl fmt::Display for MediaHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_shows_without_its_query() {
        let url = MediaUrl::new("https://cdn.example/a/b.png?sig=secret&exp=1#frag");
        assert_eq!(url.to_string(), "https://cdn.example/a/b.png");
        assert_eq!(MediaUrl::new("https://x/y#z?").redacted(), "https://x/y");
    }

    #[test]
    fn a_hash_is_64_hex_digits_or_refused() {
        assert!(MediaHash::try_from("../etc".to_owned()).is_err());
        assert!(MediaHash::try_from("A".repeat(64)).is_err());
        assert!(MediaHash::try_from("a".repeat(64)).is_ok());
    }
}
