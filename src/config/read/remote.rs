//! Reading the `[[remote]]` tables.

use super::*;
use crate::config::remote::{
    DEFAULT_REMOTE_CONCURRENCY, DEFAULT_REMOTE_REGION, MAX_REMOTE_CONCURRENCY, MAX_REMOTE_MAX_RETRIES,
    MAX_REMOTE_NAME_LEN, MIN_REMOTE_BANDWIDTH_LIMIT, RemoteConfig, RemoteCredentials, RemoteRetry,
};

/// How messages describe a remote's `url`.
const URL_FORMAT: &str = "s3://, a bucket name and an optional key prefix, such as \
                          \"s3://my-backups/chatkeep\"";

impl Reader<'_> {
    /// The `[[remote]]` blocks, checked for duplicate names.
    pub(super) fn remotes(&mut self, root: &Table<'_, '_>) -> Option<Vec<RemoteConfig>> {
        let Some(field) = root.get("remote") else {
            return Some(Vec::new());
        };
        let Some(blocks) = field.value.get_ref().as_array() else {
            let message = if field.value.get_ref().is_table() {
                "remote must be written [[remote]], with double brackets, one block per remote".to_owned()
            } else {
                format!(
                    "remote must be a list of [[remote]] blocks, got {}",
                    shown(field.value.get_ref())
                )
            };
            self.problem(field.at(), message);
            return None;
        };
        let mut remotes = Vec::with_capacity(blocks.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut valid = true;
        for block in blocks.iter() {
            let Some(table) = block.get_ref().as_table() else {
                valid = false;
                let message = format!(
                    "each remote must be a table with a name and a url, such as \
                     {{ name = \"offsite\", url = \"s3://my-backups/chatkeep\" }}, got {}",
                    shown(block.get_ref())
                );
                self.problem(block.span().start, message);
                continue;
            };
            let section = Table {
                name: "remote",
                header: "[[remote]]",
                at: block.span().start,
                table,
            };
            match self.remote(&section) {
                Some((remote, name_at)) => {
                    if let Some(first_at) = seen.get(&remote.name) {
                        valid = false;
                        let message = format!(
                            "remote `{}` is listed twice: it is already at line {}; give each \
                             [[remote]] its own name",
                            remote.name,
                            self.line_of(*first_at)
                        );
                        self.problem(name_at, message);
                        continue;
                    }
                    seen.insert(remote.name.clone(), name_at);
                    remotes.push(remote);
                }
                None => valid = false,
            }
        }
        valid.then_some(remotes)
    }

    /// One `[[remote]]` block, and where its name is.
    fn remote(&mut self, section: &Table<'_, '_>) -> Option<(RemoteConfig, usize)> {
        self.check_keys(section, REMOTE_KEYS);
        let name_field = self.required(
            section,
            "name",
            "set it to a short name for the store, such as name = \"offsite\"",
        );
        let name = name_field.as_ref().and_then(|f| {
            let name = read_remote_name(f);
            self.keep(name)
        });
        let url = self
            .required(section, "url", &format!("set it to {URL_FORMAT}"))
            .and_then(|f| {
                let url = read_s3_url(&f);
                self.keep(url)
            });
        let allow_insecure_http = self.optional(section.get("allow_insecure_http"), false, |f| f.boolean());
        let endpoint = match section.get("endpoint") {
            None => Some(None),
            Some(field) => {
                let endpoint = read_endpoint(&field, allow_insecure_http.unwrap_or(false));
                self.keep(endpoint).map(Some)
            }
        };
        let region = self.optional(
            section.get("region"),
            DEFAULT_REMOTE_REGION.to_owned(),
            read_region,
        );
        let credentials = self.remote_credentials(section);
        let require_encryption = self.optional(section.get("require_encryption"), false, |f| f.boolean());
        let concurrency = self.optional(section.get("concurrency"), DEFAULT_REMOTE_CONCURRENCY, |f| {
            f.integer(1, MAX_REMOTE_CONCURRENCY)
        });
        let bandwidth_limit = self.optional(section.get("bandwidth_limit"), None, |f| {
            f.size(MIN_REMOTE_BANDWIDTH_LIMIT).map(Some)
        });
        let retry = self.remote_retry(section);
        // Without any keep_* the remote follows `[archive]`'s rules.
        let has_retention = RETENTION_KEYS.iter().any(|key| section.get(key).is_some());
        let retention = if has_retention {
            self.remote_retention(section).map(Some)
        } else {
            Some(None)
        };
        let ((bucket, prefix), name) = (url?, name?);
        Some((
            RemoteConfig {
                name,
                bucket,
                prefix,
                endpoint: endpoint?,
                region: region?,
                credentials: credentials?,
                require_encryption: require_encryption?,
                retention: retention?,
                allow_insecure_http: allow_insecure_http?,
                concurrency: concurrency?,
                bandwidth_limit: bandwidth_limit?,
                retry: retry?,
            },
            name_field.map_or(section.at, |f| f.at()),
        ))
    }

    /// `max_retries`, `initial_backoff` and `max_backoff`, the ceiling at
    /// least the first delay.
    fn remote_retry(&mut self, section: &Table<'_, '_>) -> Option<RemoteRetry> {
        let default = RemoteRetry::default();
        let max_retries = self.optional(section.get("max_retries"), default.max_retries, |f| {
            f.integer(0, MAX_REMOTE_MAX_RETRIES)
        });
        let initial_backoff = self.optional(section.get("initial_backoff"), default.initial_backoff, |f| {
            f.duration()
        });
        let max_backoff = match section.get("max_backoff") {
            None => Some(default.max_backoff.max(initial_backoff.unwrap_or_default())),
            Some(field) => {
                let ceiling = field.duration().and_then(|ceiling| match initial_backoff {
                    Some(initial) if ceiling < initial => Err(field.reject(format!(
                        "remote.max_backoff must be at least remote.initial_backoff ({}), got {}",
                        format_duration(initial),
                        shown(field.value.get_ref())
                    ))),
                    _ => Ok(ceiling),
                });
                self.keep(ceiling)
            }
        };
        Some(RemoteRetry {
            max_retries: max_retries?,
            initial_backoff: initial_backoff?,
            max_backoff: max_backoff?,
        })
    }

    /// The six `keep_*` counts of a remote that sets at least one; a count
    /// it leaves out keeps nothing by that rule.
    fn remote_retention(&mut self, section: &Table<'_, '_>) -> Option<RetentionPolicy> {
        let none = RetentionPolicy {
            keep_last: 0,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
        };
        self.retention(section, none)
    }

    /// Both keys from files, both inline, or neither (the environment).
    fn remote_credentials(&mut self, section: &Table<'_, '_>) -> Option<RemoteCredentials> {
        let get = |key| section.get(key);
        let files = (get("access_key_id_file"), get("secret_access_key_file"));
        let inline = (get("access_key_id"), get("secret_access_key"));
        let mut given: Vec<Field<'_, '_>> = CREDENTIAL_KEYS
            .iter()
            .filter_map(|key| section.get(key))
            .collect();
        given.sort_by_key(|f| f.key_at);
        let from_files = given.iter().any(|f| f.name.ends_with("_file"));
        let from_inline = given.iter().any(|f| !f.name.ends_with("_file"));
        if from_files && from_inline {
            let first = &given[0];
            let other = given
                .iter()
                .find(|f| f.name.ends_with("_file") != first.name.ends_with("_file"))
                .unwrap_or(first);
            let message = format!(
                "{} cannot be set together with {} (line {}); give the keys either in files \
                 (access_key_id_file and secret_access_key_file) or, less safely, inline \
                 (access_key_id and secret_access_key)",
                other.name,
                first.name,
                self.line_of(first.key_at)
            );
            self.problem(other.key_at, message);
            return None;
        }
        match (files, inline) {
            ((None, None), (None, None)) => Some(RemoteCredentials::Environment),
            ((Some(id), Some(secret)), _) => {
                let id = id.path(&self.base_dir);
                let secret = secret.path(&self.base_dir);
                let (id, secret) = (self.keep(id), self.keep(secret));
                Some(RemoteCredentials::Files {
                    access_key_id: id?,
                    secret_access_key: secret?,
                })
            }
            (_, (Some(id), Some(secret))) => {
                let id = read_inline_key(&id);
                let secret = read_inline_key(&secret);
                let (id, secret) = (self.keep(id), self.keep(secret));
                Some(RemoteCredentials::Inline {
                    access_key_id: id?,
                    secret_access_key: secret?,
                })
            }
            _ => {
                let one = &given[0];
                let pair = if one.name.ends_with("_file") {
                    "access_key_id_file and secret_access_key_file"
                } else {
                    "access_key_id and secret_access_key"
                };
                let message = format!(
                    "{} is set alone; set both {pair}, or neither to take the keys from the \
                     environment ({}, {})",
                    one.name,
                    super::super::remote::ACCESS_KEY_ID_ENV,
                    super::super::remote::SECRET_ACCESS_KEY_ENV
                );
                self.problem(one.key_at, message);
                None
            }
        }
    }
}

const RETENTION_KEYS: &[&str] = &[
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
];
const CREDENTIAL_KEYS: &[&str] = &[
    "access_key_id_file",
    "secret_access_key_file",
    "access_key_id",
    "secret_access_key",
];

fn read_remote_name(field: &Field<'_, '_>) -> Result<String, Problem> {
    let expected = format!(
        "a short name of lowercase letters, digits, '-' and '_' (at most {MAX_REMOTE_NAME_LEN}), \
         such as \"offsite\""
    );
    let text = field.string(&expected)?;
    let valid = !text.is_empty()
        && text.len() <= MAX_REMOTE_NAME_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(field.expected(&expected))
    }
}

/// `s3://bucket[/prefix]`: the bucket as S3 names them (3 to 63 lowercase
/// letters, digits, `.` and `-`), and a prefix of plain path segments.
fn read_s3_url(field: &Field<'_, '_>) -> Result<(String, String), Problem> {
    let text = field.string(URL_FORMAT)?;
    let Some(rest) = text.strip_prefix("s3://") else {
        return Err(field.expected(URL_FORMAT));
    };
    let rest = rest.trim_end_matches('/');
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    let reason = if !bucket_ok {
        Some(
            "the bucket name must be 3 to 63 lowercase letters, digits, '.' and '-', starting \
             and ending with a letter or digit"
                .to_owned(),
        )
    } else if prefix
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
        && !prefix.is_empty()
    {
        Some("the prefix must be plain path segments, with no empty, `.` or `..` one".to_owned())
    } else if prefix
        .chars()
        .any(|c| c.is_control() || matches!(c, '?' | '#' | '\\'))
    {
        Some("the prefix cannot hold control characters, '?', '#' or '\\'".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(field.reject(format!(
            "{} must be {URL_FORMAT}; got {}: {reason}",
            field.name,
            shown(field.value.get_ref())
        ))),
        None => Ok((bucket.to_owned(), prefix.to_owned())),
    }
}

/// `https://host[:port]`, or `http://` to loopback (or anywhere with
/// `allow_insecure_http`): the keys sign requests and never travel, but
/// what is uploaded would travel in clear.
fn read_endpoint(field: &Field<'_, '_>, allow_insecure_http: bool) -> Result<String, Problem> {
    const EXPECTED: &str = "the store's address: https:// (or http://), a host and an optional \
                            port, no path, such as \"https://s3.eu-central-1.wasabisys.com\"";
    let text = field.string(EXPECTED)?;
    let lower = text.to_ascii_lowercase();
    let Some(scheme) = ["https://", "http://"].into_iter().find(|s| lower.starts_with(s)) else {
        return Err(field.expected(EXPECTED));
    };
    let authority = text[scheme.len()..].trim_end_matches('/');
    if authority.contains('@') {
        return Err(field.reject(format!(
            "{} must not contain a user name or password (the value is not shown here); \
             expected {EXPECTED}",
            field.name
        )));
    }
    let reason = if authority.is_empty() {
        Some("it has no host".to_owned())
    } else if authority.contains(['/', '?', '#']) {
        Some("it has a path, query or fragment after the host; the bucket goes in url".to_owned())
    } else {
        authority_problem(authority)
    };
    if let Some(reason) = reason {
        return Err(field.reject(format!(
            "{} must be {EXPECTED}; got {}: {reason}",
            field.name,
            shown(field.value.get_ref())
        )));
    }
    let url = format!("{scheme}{authority}");
    if sends_in_clear(&url) && !allow_insecure_http {
        return Err(field.reject(format!(
            "{} is {url:?}: plain http:// to a host that is not this machine, so snapshots would \
             travel unencrypted; use https://, or, only over a network you trust, set \
             allow_insecure_http = true in this [[remote]]",
            field.name
        )));
    }
    Ok(url)
}

fn read_region(field: &Field<'_, '_>) -> Result<String, Problem> {
    const EXPECTED: &str = "a region name of lowercase letters, digits and '-', such as \"eu-west-1\"";
    let text = field.string(EXPECTED)?;
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(text.to_owned())
    } else {
        Err(field.expected(EXPECTED))
    }
}

/// An inline key, never repeated in a message.
fn read_inline_key(field: &Field<'_, '_>) -> Result<Secret, Problem> {
    match field.value.get_ref().as_str() {
        Some(text) if !text.trim().is_empty() && !text.chars().any(char::is_control) => {
            Ok(Secret::new(text.trim()))
        }
        Some(_) => Err(field.reject(format!(
            "{} must be the key itself, without line breaks or control characters (the value \
             is not shown here)",
            field.name
        ))),
        None => Err(field.reject(format!(
            "{} must be a string, got {}",
            field.name,
            kind(field.value.get_ref())
        ))),
    }
}
