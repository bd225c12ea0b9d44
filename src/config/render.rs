//! Rendering the effective configuration for `check-config`.

use super::*;
// ---------------------------------------------------------------------------
// Rendering the effective configuration
// ---------------------------------------------------------------------------

#[derive(Serialize)]
pub(super) struct Rendered<'a> {
    service: RenderedService<'a>,
    storage: RenderedStorage,
    rate_limit: RenderedRateLimit,
    sync: RenderedSync,
    discover: RenderedDiscover,
    daemon: RenderedDaemon<'a>,
    log: RenderedLog<'a>,
    archive: RenderedArchive<'a>,
    notify: RenderedNotify<'a>,
    metrics: RenderedMetrics<'a>,
    media: RenderedMedia,
    #[serde(skip_serializing_if = "Option::is_none")]
    serve: Option<RenderedServe>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    personality: Vec<RenderedPersonality<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remote: Vec<RenderedRemote<'a>>,
}

/// `[serve]`: where, and the token's file (never the token).
#[derive(Serialize)]
struct RenderedServe {
    listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_file: Option<String>,
}

/// A `[[remote]]`: where its keys come from, never the keys.
#[derive(Serialize)]
struct RenderedRemote<'a> {
    name: &'a str,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    region: &'a str,
    allow_insecure_http: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<&'static str>,
    require_encryption: bool,
    concurrency: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    bandwidth_limit: Option<String>,
    max_retries: u32,
    initial_backoff: String,
    max_backoff: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    retention: Option<RetentionPolicy>,
}

impl<'a> From<&'a RemoteConfig> for RenderedRemote<'a> {
    fn from(remote: &'a RemoteConfig) -> Self {
        let mut rendered = RenderedRemote {
            name: &remote.name,
            url: remote.url(),
            endpoint: remote.endpoint.as_deref(),
            region: &remote.region,
            allow_insecure_http: remote.allow_insecure_http,
            access_key_id_file: None,
            secret_access_key_file: None,
            access_key_id: None,
            secret_access_key: None,
            require_encryption: remote.require_encryption,
            concurrency: remote.concurrency,
            bandwidth_limit: remote.bandwidth_limit.map(format_size),
            max_retries: remote.retry.max_retries,
            initial_backoff: format_duration(remote.retry.initial_backoff),
            max_backoff: format_duration(remote.retry.max_backoff),
            retention: remote.retention,
        };
        match &remote.credentials {
            RemoteCredentials::Files {
                access_key_id,
                secret_access_key,
            } => {
                rendered.access_key_id_file = Some(shown_cookie_path(access_key_id));
                rendered.secret_access_key_file = Some(shown_cookie_path(secret_access_key));
            }
            RemoteCredentials::Inline { .. } => {
                rendered.access_key_id = Some(Secret::REDACTED);
                rendered.secret_access_key = Some(Secret::REDACTED);
            }
            RemoteCredentials::Environment => {}
        }
        rendered
    }
}

#[derive(Serialize)]
struct RenderedService<'a> {
    base_url: &'a str,
    allow_insecure_http: bool,
    jargon: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cookie_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cookie_env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cookie: Option<&'static str>,
    cookie_name: &'a str,
    chat_page_size: u32,
    max_page_size: u32,
    timeout: String,
    max_retries: u32,
    initial_backoff: String,
    max_backoff: String,
    user_agent: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra_cookies: BTreeMap<&'a str, &'static str>,
}

#[derive(Serialize)]
struct RenderedStorage {
    data_dir: String,
    segment_size: String,
    max_walk_spool: String,
}

#[derive(Serialize)]
struct RenderedRateLimit {
    requests_per_second: f64,
    burst: u32,
}

#[derive(Serialize)]
struct RenderedSync {
    sections: Vec<&'static str>,
    max_memory_pages: u32,
    tail_check: String,
    refresh: Refresh,
}

#[derive(Serialize)]
struct RenderedDiscover {
    owned: bool,
    recent: bool,
    max_personalities: u32,
}

#[derive(Serialize)]
struct RenderedDaemon<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    jitter: String,
    workers: u32,
    run_on_start: bool,
    shutdown_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    archive_schedule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_schedule: Option<&'a str>,
}

#[derive(Serialize)]
struct RenderedLog<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<String>,
    max_files: u32,
    format: &'static str,
    level: &'a str,
}

#[derive(Serialize)]
struct RenderedArchive<'a> {
    dir: String,
    compression_level: u32,
    skip_unchanged: bool,
    media: bool,
    keep_last: u32,
    keep_hourly: u32,
    keep_daily: u32,
    keep_weekly: u32,
    keep_monthly: u32,
    keep_yearly: u32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    age_recipients: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    age_recipients_file: Option<String>,
}

impl<'a> From<&'a ArchiveConfig> for RenderedArchive<'a> {
    fn from(archive: &'a ArchiveConfig) -> Self {
        let keep = &archive.retention;
        RenderedArchive {
            dir: archive.dir.to_string_lossy().into_owned(),
            compression_level: archive.compression_level,
            skip_unchanged: archive.skip_unchanged,
            media: archive.media,
            keep_last: keep.keep_last,
            keep_hourly: keep.keep_hourly,
            keep_daily: keep.keep_daily,
            keep_weekly: keep.keep_weekly,
            keep_monthly: keep.keep_monthly,
            keep_yearly: keep.keep_yearly,
            age_recipients: &archive.age_recipients,
            age_recipients_file: archive
                .age_recipients_file
                .as_ref()
                .map(|path| path.to_string_lossy().into_owned()),
        }
    }
}

#[derive(Serialize)]
struct RenderedNotify<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    on_failure: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_recovery: Option<&'a [String]>,
    timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ping_url: Option<&'a str>,
}

#[derive(Serialize)]
struct RenderedMetrics<'a> {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
}

#[derive(Serialize)]
struct RenderedMedia {
    attachments: bool,
    voice_replies: bool,
    avatars: bool,
    max_file_size: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_bytes_per_run: Option<String>,
    requests_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_bytes_per_second: Option<String>,
}

#[derive(Serialize)]
struct RenderedPersonality<'a> {
    name: &'a PersonalitySlug,
    #[serde(skip_serializing_if = "Option::is_none")]
    sections: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tail_check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<Refresh>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<Vec<&'static str>>,
}

fn section_names(sections: &[Section]) -> Vec<&'static str> {
    sections.iter().map(|s| s.as_str()).collect()
}

impl<'a> From<&'a Config> for Rendered<'a> {
    fn from(config: &'a Config) -> Self {
        let service = &config.service;
        let (mut cookie_file, mut cookie_env, mut cookie) = (None, None, None);
        match &service.cookie {
            CookieSource::File(path) => cookie_file = Some(shown_cookie_path(path)),
            CookieSource::Env(name) => cookie_env = Some(name.as_str()),
            CookieSource::Inline(_) => cookie = Some(Secret::REDACTED),
        }
        Rendered {
            service: RenderedService {
                base_url: &service.base_url,
                allow_insecure_http: service.allow_insecure_http,
                jargon: &service.jargon,
                cookie_file,
                cookie_env,
                cookie,
                cookie_name: &service.cookie_name,
                chat_page_size: service.chat_page_size,
                max_page_size: service.max_page_size,
                timeout: format_duration(service.timeout),
                max_retries: service.max_retries,
                initial_backoff: format_duration(service.initial_backoff),
                max_backoff: format_duration(service.max_backoff),
                user_agent: &service.user_agent,
                extra_cookies: service
                    .extra_cookies
                    .keys()
                    .map(|name| (name.as_str(), Secret::REDACTED))
                    .collect(),
            },
            storage: RenderedStorage {
                data_dir: config.storage.data_dir.to_string_lossy().into_owned(),
                segment_size: format_size(config.storage.segment_size),
                max_walk_spool: format_size(config.storage.max_walk_spool),
            },
            rate_limit: RenderedRateLimit {
                requests_per_second: config.rate_limit.requests_per_second,
                burst: config.rate_limit.burst,
            },
            sync: RenderedSync {
                sections: section_names(&config.sync.sections),
                max_memory_pages: config.sync.max_memory_pages,
                tail_check: format_duration(config.sync.tail_check),
                refresh: config.sync.refresh,
            },
            discover: RenderedDiscover {
                owned: config.discover.owned,
                recent: config.discover.recent,
                max_personalities: config.discover.max_personalities,
            },
            daemon: RenderedDaemon::from(&config.daemon),
            log: RenderedLog {
                dir: config
                    .log
                    .dir
                    .as_ref()
                    .map(|dir| dir.to_string_lossy().into_owned()),
                max_files: config.log.max_files,
                format: config.log.format.as_str(),
                level: &config.log.level,
            },
            archive: RenderedArchive::from(&config.archive),
            notify: RenderedNotify {
                on_failure: config.notify.on_failure.as_deref(),
                on_recovery: config.notify.on_recovery.as_deref(),
                timeout: format_duration(config.notify.timeout),
                ping_url: config.notify.ping_url.as_deref(),
            },
            metrics: RenderedMetrics {
                file: config.metrics.file.to_string_lossy().into_owned(),
                group: config.metrics.group.as_deref(),
            },
            media: RenderedMedia {
                attachments: config.media.kinds.attachments,
                voice_replies: config.media.kinds.voice_replies,
                avatars: config.media.kinds.avatars,
                max_file_size: format_size(config.media.max_file_size),
                max_bytes_per_run: config.media.max_bytes_per_run.map(format_size),
                requests_per_second: config.media.requests_per_second,
                max_bytes_per_second: config.media.max_bytes_per_second.map(format_size),
            },
            serve: config.serve.as_ref().map(|serve| RenderedServe {
                listen: serve.listen.to_string(),
                token_file: serve
                    .token_file
                    .as_ref()
                    .map(|f| f.to_string_lossy().into_owned()),
            }),
            personality: config
                .personalities
                .iter()
                .map(|p| RenderedPersonality {
                    name: &p.name,
                    sections: p.sections.as_deref().map(section_names),
                    schedule: p.schedule.as_deref(),
                    tail_check: p.tail_check.map(format_duration),
                    refresh: p.refresh,
                    media: p.media.map(MediaKinds::names),
                })
                .collect(),
            remote: config.remotes.iter().map(RenderedRemote::from).collect(),
        }
    }
}

impl<'a> From<&'a DaemonConfig> for RenderedDaemon<'a> {
    fn from(daemon: &'a DaemonConfig) -> Self {
        let (schedule, interval) = match &daemon.schedule {
            Schedule::Cron(cron) => (Some(cron.as_str()), None),
            Schedule::Interval(interval) => (None, Some(format_duration(*interval))),
        };
        RenderedDaemon {
            schedule,
            interval,
            jitter: format_duration(daemon.jitter),
            workers: daemon.workers,
            run_on_start: daemon.run_on_start,
            shutdown_timeout: format_duration(daemon.shutdown_timeout),
            archive_schedule: daemon.archive_schedule.as_deref(),
            audit_schedule: daemon.audit_schedule.as_deref(),
        }
    }
}
