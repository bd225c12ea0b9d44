//! Offsite copies: each snapshot uploaded to the S3-compatible stores of
//! the `[[remote]]` tables, verified there and restored from there.
//!
//! ```text
//! s3://<bucket>/<prefix>/<name>/
//!   manifest.json                        the snapshots the remote holds whole
//!   <name>-20260102T030405Z.tar.gz       a snapshot, byte for byte the local file
//! ```
//!
//! The remote's `manifest.json` is, as the local one is, the truth: a
//! snapshot is on the remote once it is listed there. Snapshot files are
//! uploaded first (multipart, streamed in bounded memory, each upload
//! recorded in the data directory until it ends: [`uploads`]), and the manifest
//! is rewritten (one PUT, which S3 applies whole) only after each upload
//! has completed. So an upload cut at any point (chatkeep killed, the
//! store gone, the network cut) leaves at worst an unlisted object or an
//! unfinished multipart upload, which no `restore` or `verify` takes for a
//! snapshot; the next run aborts the unfinished upload (each is recorded
//! in the data directory until it ends: [`uploads`]) and uploads the
//! snapshot again. A snapshot's name never
//! changes its content (its time is in it and a file is never rewritten),
//! so uploading it again writes the same bytes: a rerun is idempotent and
//! uploads nothing that is already listed.
//!
//! Retention is applied on the remote by the same rules (its own `keep_*`,
//! or `[archive]`'s): the manifest is rewritten without the snapshots it
//! drops before their objects are deleted, so a listed snapshot is always
//! there.
//!
//! Errors never show a key: object_store's messages may quote a store's
//! answer, which for a refused key names the key id, so every message is
//! passed through `redact`.

pub mod keys;
pub mod pace;
pub mod push;
pub mod read;
pub mod status;
pub mod uploads;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};

use crate::archive::manifest::{MANIFEST_FILE, parse_file_name};
use crate::archive::{ArchiveError, Manifest};
use crate::config::{Config, RemoteConfig, RemoteRetry};

pub use push::{PushReport, prune_personality, push_personality};
pub use read::{RemoteCheck, rebuild_personality, restore_personality, verify_personality};

/// Why an operation on a remote failed. Each message names the remote
/// and says what to do; none holds a key.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote `{remote}`: {reason}")]
    Keys { remote: String, reason: String },
    #[error(
        "remote `{remote}` ({url}) refused the access key while {action} ({code}): check the key \
         pair (access_key_id and secret_access_key) and that it may read and write the bucket"
    )]
    Refused {
        remote: String,
        url: String,
        action: String,
        /// The store's error code (`InvalidAccessKeyId`, `AccessDenied`...).
        code: String,
    },
    #[error(
        "remote `{remote}`: the bucket `{bucket}` does not exist at {endpoint}; create it, or \
         correct url (and endpoint) in its [[remote]]"
    )]
    NoBucket {
        remote: String,
        bucket: String,
        endpoint: String,
    },
    #[error("remote `{remote}` ({url}): {action} failed: {message}")]
    Store {
        remote: String,
        url: String,
        action: String,
        message: String,
    },
    #[error("remote `{remote}`: its {key} is not a manifest chatkeep can use: {reason}")]
    BadManifest {
        remote: String,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Local(#[from] ArchiveError),
    #[error("no remote named `{0}` in the config; the [[remote]] tables name {1}")]
    Unknown(String, String),
}

/// Requests to a store: the remote's retries of what object_store deems
/// transient (5xx, 503 SlowDown, a cut connection), with backoff, so that
/// by default a store that is down fails the upload in seconds, not
/// minutes; the next run completes it. object_store also stops retrying
/// once `retry_timeout` has passed since the first try: it is set so that
/// `max_retries` decides (every try may take the whole request timeout).
fn retry_config(retry: &RemoteRetry) -> RetryConfig {
    let tries = retry.max_retries + 1;
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: retry.initial_backoff,
            max_backoff: retry.max_backoff,
            base: 2.0,
        },
        max_retries: retry.max_retries as usize,
        retry_timeout: (REQUEST_TIMEOUT + retry.max_backoff) * tries,
    }
}

/// The longest a request may take, its body sent and its answer read.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One remote, ready for requests.
pub struct Remote {
    pub config: RemoteConfig,
    store: AmazonS3,
    /// Its `bandwidth_limit`, over every upload to it through this value.
    pace: Option<pace::Pace>,
    /// The key's values, taken out of every message.
    secrets: Vec<String>,
}

impl Remote {
    /// The client for `config`, with its keys read (see [`keys::load`]).
    pub fn open(config: &RemoteConfig) -> Result<Remote, RemoteError> {
        let keys = keys::load(config).map_err(|reason| RemoteError::Keys {
            remote: config.name.clone(),
            reason,
        })?;
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(REQUEST_TIMEOUT)
            .with_allow_http(
                config
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
            );
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(keys.access_key_id.expose())
            .with_secret_access_key(keys.secret_access_key.expose())
            .with_virtual_hosted_style_request(false)
            .with_client_options(client)
            .with_retry(retry_config(&config.retry));
        if let Some(token) = &keys.session_token {
            builder = builder.with_token(token.expose());
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let secrets: Vec<String> = keys.values().into_iter().map(str::to_owned).collect();
        let store = builder
            .build()
            .map_err(|e| describe(config, &secrets, "setting up the client", e))?;
        Ok(Remote {
            config: config.clone(),
            store,
            pace: pace::Pace::new(config.bandwidth_limit),
            secrets,
        })
    }

    /// The remotes `wanted` names (all of them when it names none).
    pub fn chosen<'c>(config: &'c Config, wanted: &[String]) -> Result<Vec<&'c RemoteConfig>, RemoteError> {
        if wanted.is_empty() {
            return Ok(config.remotes.iter().collect());
        }
        wanted
            .iter()
            .map(|name| {
                config.remote(name).ok_or_else(|| {
                    let names: Vec<String> = config.remotes.iter().map(|r| format!("`{}`", r.name)).collect();
                    let names = if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    };
                    RemoteError::Unknown(name.clone(), names)
                })
            })
            .collect()
    }

    /// The key of `file` of personality `name`: `<prefix>/<name>/<file>`.
    pub fn key(&self, name: &str, file: &str) -> ObjectPath {
        let prefix = &self.config.prefix;
        if prefix.is_empty() {
            ObjectPath::from(format!("{name}/{file}"))
        } else {
            ObjectPath::from(format!("{prefix}/{name}/{file}"))
        }
    }

    /// The remote's manifest of `name`; an empty one when it has none yet.
    pub async fn manifest(&self, name: &str) -> Result<Manifest, RemoteError> {
        let key = self.key(name, MANIFEST_FILE);
        let bytes = match self.store.get(&key).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|e| self.error("reading the manifest", e))?,
            Err(object_store::Error::NotFound { source, .. }) if !no_such_bucket(&source.to_string()) => {
                return Ok(Manifest::empty(name));
            }
            Err(e) => return Err(self.error("reading the manifest", e)),
        };
        Manifest::parse(&bytes, name).map_err(|reason| RemoteError::BadManifest {
            remote: self.config.name.clone(),
            key: key.to_string(),
            reason,
        })
    }

    /// Replaces the remote's manifest of `name` (one PUT: whole or not at all).
    pub async fn save_manifest(&self, manifest: &Manifest) -> Result<(), RemoteError> {
        let key = self.key(&manifest.personality, MANIFEST_FILE);
        self.store
            .put(&key, PutPayload::from(manifest.to_json()))
            .await
            .map(drop)
            .map_err(|e| self.error("writing the manifest", e))
    }

    /// The snapshot objects of `name` on the remote, by file name, with
    /// their sizes (one listing; other objects under the prefix are not
    /// chatkeep's and are left alone).
    pub async fn objects(&self, name: &str) -> Result<HashMap<String, u64>, RemoteError> {
        let dir = self.key(name, "");
        let mut listing = self.store.list(Some(&dir));
        let mut objects = HashMap::new();
        while let Some(item) = listing.next().await {
            let meta = item.map_err(|e| self.error("listing the snapshots", e))?;
            let Some(file) = meta.location.filename() else {
                continue;
            };
            if parse_file_name(name, file).is_some() {
                objects.insert(file.to_owned(), meta.size);
            }
        }
        Ok(objects)
    }

    /// Lists the prefix (one page): the store answers, the key is
    /// accepted and the bucket exists.
    pub async fn check(&self) -> Result<(), RemoteError> {
        // A plain listing, its first page only: s3s-fs 0.14 refuses the
        // signature of one with a delimiter.
        let prefix = (!self.config.prefix.is_empty()).then(|| ObjectPath::from(self.config.prefix.as_str()));
        match self.store.list(prefix.as_ref()).next().await {
            Some(Err(e)) => Err(self.error("listing the prefix", e)),
            _ => Ok(()),
        }
    }

    /// What a failed request means for the person, with no key in it.
    fn error(&self, action: &str, e: object_store::Error) -> RemoteError {
        describe(&self.config, &self.secrets, action, e)
    }
}

/// `text` with each of `secrets` replaced by `[redacted]`.
fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), crate::config::Secret::REDACTED);
    }
    text
}

/// What a failed request to `remote` means for the person, with none of
/// `secrets` in it.
fn describe(remote: &RemoteConfig, secrets: &[String], action: &str, e: object_store::Error) -> RemoteError {
    let name = remote.name.clone();
    let message = redact(&chain(&e), secrets);
    // Some requests (listings) report a refusal as a generic error: the
    // store's code says it.
    let refused_code = error_code(&message)
        .is_some_and(|code| ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"].contains(&code));
    if refused_code
        || matches!(
            e,
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
        )
    {
        return RemoteError::Refused {
            remote: name,
            url: remote.url(),
            action: action.to_owned(),
            code: error_code(&message).unwrap_or("HTTP 401/403").to_owned(),
        };
    }
    if no_such_bucket(&message) {
        return RemoteError::NoBucket {
            remote: name,
            bucket: remote.bucket.clone(),
            endpoint: remote
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("AWS S3 ({})", remote.region)),
        };
    }
    RemoteError::Store {
        remote: name,
        url: remote.url(),
        action: action.to_owned(),
        message,
    }
}

/// The S3 error code an answer quoted (`<Code>AccessDenied</Code>`).
fn error_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    code.bytes().all(|b| b.is_ascii_alphanumeric()).then_some(code)
}

fn no_such_bucket(text: &str) -> bool {
    text.contains("NoSuchBucket")
}

/// An error and its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

/// What pushing one personality to one remote came to.
pub struct PushOutcome {
    /// The remote's name.
    pub remote: String,
    pub result: Result<PushReport, RemoteError>,
}
