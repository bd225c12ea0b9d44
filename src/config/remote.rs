//! The `[[remote]]` tables: S3-compatible stores that get a copy of every
//! snapshot. Their credentials are [`Secret`]s, so no `Debug`, log line or
//! rendering of the config can show them.

use std::path::PathBuf;
use std::time::Duration;

use super::Secret;
use crate::archive::retention::RetentionPolicy;

/// Region sent when a remote names none: what S3-compatible stores that
/// ignore regions expect, and AWS's own default.
pub const DEFAULT_REMOTE_REGION: &str = "us-east-1";
/// Longest remote name accepted.
pub const MAX_REMOTE_NAME_LEN: usize = 64;
/// The environment variables a remote without credentials in the config
/// reads, as the AWS tools do.
pub const ACCESS_KEY_ID_ENV: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";
pub const SESSION_TOKEN_ENV: &str = "AWS_SESSION_TOKEN";

/// Parts of an upload in flight when a remote does not say (`concurrency`):
/// polite to a small store, and enough to keep a link busy while the next
/// part is read.
pub const DEFAULT_REMOTE_CONCURRENCY: u32 = 2;
/// The most parts in flight a remote may ask for: each holds a part
/// (8 MiB) in memory.
pub const MAX_REMOTE_CONCURRENCY: u32 = 16;
/// The smallest `bandwidth_limit`, in bytes per second.
pub const MIN_REMOTE_BANDWIDTH_LIMIT: u64 = 64 * 1024;
/// Retries of a request that failed for a reason that may pass (5xx, 503
/// SlowDown, a cut connection) when a remote does not say: a store that is
/// down fails the upload in seconds, and the next run completes it.
pub const DEFAULT_REMOTE_MAX_RETRIES: u32 = 4;
pub const MAX_REMOTE_MAX_RETRIES: u32 = 100;
/// The first retry's delay, and the ceiling of the later ones.
pub const DEFAULT_REMOTE_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
pub const DEFAULT_REMOTE_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One `[[remote]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// How commands and the status name it (`--remote NAME`): lowercase
    /// letters, digits, `-` and `_`; unique in the file.
    pub name: String,
    /// The bucket, from `url = "s3://bucket/prefix"`.
    pub bucket: String,
    /// The key prefix under which this chatkeep keeps its snapshots, without
    /// a leading or trailing `/`; empty for the whole bucket. Two
    /// configurations sharing a bucket each take their own.
    pub prefix: String,
    /// The store's address, for stores other than AWS (`https://host[:port]`),
    /// addressed path-style (`endpoint/bucket/key`). `None`: AWS S3 itself.
    pub endpoint: Option<String>,
    /// The region the requests are signed for.
    pub region: String,
    /// Where the access key comes from.
    pub credentials: RemoteCredentials,
    /// Refuse to upload a snapshot that is not age-encrypted.
    pub require_encryption: bool,
    /// Which snapshots the remote keeps; `None`: those `[archive]` keeps.
    pub retention: Option<RetentionPolicy>,
    /// Allow `endpoint` to be plain `http://` to another machine.
    pub allow_insecure_http: bool,
    /// Parts of an upload sent at once (`concurrency`): an upload holds
    /// this many parts in memory, plus the one being read.
    pub concurrency: u32,
    /// Bytes per second that uploads to it average at most
    /// (`bandwidth_limit`); `None`: as fast as the link and the store go.
    pub bandwidth_limit: Option<u64>,
    /// How a request that failed for a reason that may pass is retried.
    pub retry: RemoteRetry,
}

/// `max_retries`, `initial_backoff` and `max_backoff` of a `[[remote]]`:
/// the first retry waits `initial_backoff`, each later one a time drawn
/// between it and twice the wait before (object_store's decorrelated
/// jitter), never more than `max_backoff`. What is retried: a 5xx answer
/// (a 503 SlowDown included), a timeout, a cut connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteRetry {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    /// At least `initial_backoff`.
    pub max_backoff: Duration,
}

impl Default for RemoteRetry {
    fn default() -> Self {
        RemoteRetry {
            max_retries: DEFAULT_REMOTE_MAX_RETRIES,
            initial_backoff: DEFAULT_REMOTE_INITIAL_BACKOFF,
            max_backoff: DEFAULT_REMOTE_MAX_BACKOFF,
        }
    }
}

/// Where a remote's access key comes from. A systemd credential
/// (`LoadCredential=remote-NAME-access-key-id:...` and
/// `remote-NAME-secret-access-key`) wins over each of these, as the
/// cookie's does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteCredentials {
    /// `access_key_id_file` and `secret_access_key_file`: files holding them.
    Files {
        access_key_id: PathBuf,
        secret_access_key: PathBuf,
    },
    /// `access_key_id` and `secret_access_key` in the config itself, which
    /// loading warns about.
    Inline {
        access_key_id: Secret,
        secret_access_key: Secret,
    },
    /// Neither in the config: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// and, if set, `AWS_SESSION_TOKEN`.
    Environment,
}

impl RemoteConfig {
    /// `s3://bucket/prefix`, as the config wrote it (less a trailing `/`).
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The names systemd credentials of this remote have.
    pub fn credential_names(&self) -> (String, String) {
        (
            format!("remote-{}-access-key-id", self.name),
            format!("remote-{}-secret-access-key", self.name),
        )
    }
}
