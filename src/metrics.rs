//! Prometheus metrics as a text file, `<data_dir>/metrics.prom` unless
//! `[metrics] file` says otherwise, for node_exporter's textfile collector:
//! when each personality last succeeded, how many messages it holds, and
//! the requests and errors the daemon has counted since it started.
//!
//! The file is replaced atomically; its temporary name does not end in
//! `.prom`, so the collector never reads a half-written file. Like every
//! file chatkeep writes it is mode 0600, unless `[metrics] group` names a
//! group: then it is 0640 with that group, so a node_exporter running as
//! another user can read it. Such a file must lie outside the data
//! directory, which stays 0700 (the config refuses it otherwise), in a
//! directory the group can reach; [`unreachable_dir`] finds one that
//! stands in the way.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::MetricsConfig;
use crate::remote::status::RemoteStatus;
use crate::status::{ChatTotals, Outcome, PersonalityStatus};
use crate::store::fsio;

/// The metrics file's name in the data directory.
pub const METRICS_FILE: &str = crate::config::DEFAULT_METRICS_FILE_NAME;

/// Counts the daemon accumulates over its life, one [`Counters::add`] per
/// finished sync. They start at zero when the daemon starts; Prometheus
/// treats the drop as a counter reset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// HTTP requests (retries included) per personality.
    pub requests: BTreeMap<String, u64>,
    /// Syncs that failed, per (personality, kind); the kind is the outcome
    /// (`partial`, `failed`, `auth_expired`, ...; never `ok` or
    /// `interrupted`).
    pub errors: BTreeMap<(String, String), u64>,
}

impl Counters {
    /// Counts one finished sync: its requests and, if it failed, one error
    /// of the outcome's kind (`ok` and `interrupted` are no error).
    pub fn add(&mut self, status: &PersonalityStatus) {
        *self.requests.entry(status.personality.clone()).or_default() += status.requests;
        if status.outcome.is_error() {
            let key = (status.personality.clone(), status.outcome.as_str().to_owned());
            *self.errors.entry(key).or_default() += 1;
        }
    }
}

/// Writes the metrics file (`target.file`) atomically from the latest
/// status of each personality and the daemon's counters: private, or
/// readable by `target.group`. A file in `data_dir` creates it if needed;
/// another directory is checked as an output directory (nobody else may
/// write there) and created 0700 if missing.
pub fn write_metrics(
    data_dir: &Path,
    target: &MetricsConfig,
    statuses: &[PersonalityStatus],
    counters: &Counters,
    remotes: &BTreeMap<String, RemoteStatus>,
) -> io::Result<()> {
    let dir = parent_dir(&target.file);
    if dir == data_dir {
        fsio::create_private_dir(data_dir)?;
    } else {
        fsio::create_output_dir(dir)?;
    }
    let mut text = render(statuses, counters);
    text.push_str(&render_remotes(remotes));
    match &target.group {
        None => fsio::write_atomic(&target.file, text.as_bytes()),
        Some(group) => fsio::write_atomic_for_group(&target.file, text.as_bytes(), group_id(group)?),
    }
}

/// The number of `group`: itself if it is a number, else looked up in
/// `/etc/group` (a group known only to another name service, such as LDAP,
/// must be given by number).
pub fn group_id(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group")?;
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?.parse::<u32>().ok()?;
            (name == group).then_some(gid)
        })
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("metrics.group: no group {group:?} in /etc/group (give its number instead)"),
            )
        })
}

/// The first directory on the way to `file` that members of group `gid`
/// cannot pass (search permission, for the group if the directory is
/// theirs, else for others), or that cannot be read; `None` if they can
/// reach it. Access control lists are not looked at: one may grant what
/// the mode bits do not.
pub fn unreachable_dir(file: &Path, gid: u32) -> Option<PathBuf> {
    let dir = parent_dir(file);
    dir.ancestors().find_map(|dir| {
        let reachable = std::fs::metadata(dir).is_ok_and(|meta| {
            let bit = if meta.gid() == gid { 0o010 } else { 0o001 };
            meta.mode() & bit != 0
        });
        (!reachable).then(|| dir.to_owned())
    })
}

/// Logs a warning if `[metrics] group` is set but cannot read the file.
pub fn warn_if_unreadable(target: &MetricsConfig) {
    let Some(group) = &target.group else {
        return;
    };
    match group_id(group) {
        Ok(gid) => {
            if let Some(dir) = unreachable_dir(&target.file, gid) {
                tracing::warn!(
                    file = %target.file.display(),
                    group = %group,
                    "metrics.group cannot reach the metrics file: {} lets neither that group nor \
                     others through (no x permission); give it g+x with that group, or o+x",
                    dir.display()
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "the metrics file cannot be given its group"),
    }
}

fn parent_dir(file: &Path) -> &Path {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The metrics in the Prometheus text exposition format (version 0.0.4).
/// Personalities appear in name order; if `statuses` names one twice, the
/// later entry wins. Every personality gets a zero sample for each error
/// kind it has not had, so `increase()` sees the first error too.
pub fn render(statuses: &[PersonalityStatus], counters: &Counters) -> String {
    let latest: BTreeMap<&str, &PersonalityStatus> =
        statuses.iter().map(|s| (s.personality.as_str(), s)).collect();
    let mut out = Exposition::default();

    out.family(
        "chatkeep_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last sync that ended ok finished (0 if none has).",
    );
    for (name, s) in &latest {
        out.sample(&[("personality", name)], s.last_success.map_or(0.0, seconds));
    }
    out.family(
        "chatkeep_last_run_timestamp_seconds",
        "gauge",
        "Unix time the last sync finished, whatever its outcome.",
    );
    for (name, s) in &latest {
        out.sample(&[("personality", name)], seconds(s.last_finished));
    }
    out.family(
        "chatkeep_last_run_ok",
        "gauge",
        "1 if the last sync ended ok, or was interrupted by a shutdown after one that did (or before any finished); 0 otherwise.",
    );
    for (name, s) in &latest {
        out.sample(&[("personality", name)], u8::from(s.healthy()));
    }
    out.family(
        "chatkeep_last_run_interrupted",
        "gauge",
        "1 if the last sync was stopped by a shutdown before it finished (the next one resumes it), 0 otherwise.",
    );
    for (name, s) in &latest {
        out.sample(
            &[("personality", name)],
            u8::from(s.outcome == Outcome::Interrupted),
        );
    }
    // Gauges of the chat history, as of the last sync that reached it.
    let chat_gauges: [ChatGauge; 5] = [
        (
            "chatkeep_messages",
            "Chat messages stored, as of the last sync that reached the chat history.",
            |c| c.total,
        ),
        (
            "chatkeep_messages_new_last_run",
            "Chat messages the last sync added.",
            |c| c.new,
        ),
        (
            "chatkeep_messages_revised",
            "Stored chat messages that changed upstream after they were stored (every version is kept).",
            |c| c.revised,
        ),
        (
            "chatkeep_messages_deleted_upstream",
            "Stored chat messages the service no longer returns (kept, marked).",
            |c| c.deleted_upstream,
        ),
        (
            "chatkeep_history_beginning_confirmed",
            "1 if a walk confirmed where the chat history begins, 0 if not (yet).",
            |c| u64::from(c.beginning_confirmed_at.is_some()),
        ),
    ];
    for (name, help, value) in chat_gauges {
        out.family(name, "gauge", help);
        for (personality, chat) in latest.iter().filter_map(|(n, s)| Some((n, s.chat.as_ref()?))) {
            out.sample(&[("personality", personality)], value(chat));
        }
    }

    // Only once some sync looked at media: a file without it is unchanged.
    let media: Vec<_> = latest
        .iter()
        .filter_map(|(n, s)| Some((n, s.media.as_ref()?)))
        .collect();
    if !media.is_empty() {
        out.family(
            "chatkeep_media_files",
            "gauge",
            "Distinct media URLs of the personality's messages and profile by state, as of the last sync \
             that looked at them: fetched, pending (not tried yet), failed (retried later), gone (404/410), \
             refused (too large, or not a public address).",
        );
        for (personality, m) in &media {
            for (state, n) in [
                ("fetched", m.fetched),
                ("pending", m.pending),
                ("failed", m.failed),
                ("gone", m.gone),
                ("refused", m.refused),
            ] {
                out.sample(&[("personality", personality), ("state", state)], n);
            }
        }
    }

    let names: BTreeSet<&str> = latest
        .keys()
        .copied()
        .chain(counters.requests.keys().map(String::as_str))
        .chain(counters.errors.keys().map(|(p, _)| p.as_str()))
        .collect();
    out.family(
        "chatkeep_requests_total",
        "counter",
        "HTTP requests made to the service since the daemon started, retries included.",
    );
    for name in &names {
        out.sample(
            &[("personality", name)],
            counters.requests.get(*name).copied().unwrap_or(0),
        );
    }
    out.family(
        "chatkeep_errors_total",
        "counter",
        "Syncs that failed since the daemon started, by outcome (an interrupted one is no failure).",
    );
    for name in &names {
        let mut kinds: BTreeMap<&str, u64> = Outcome::ALL
            .iter()
            .filter(|o| o.is_error())
            .map(|o| (o.as_str(), 0))
            .collect();
        for ((_, kind), n) in counters.errors.iter().filter(|((p, _), _)| p == name) {
            kinds.insert(kind.as_str(), *n);
        }
        for (kind, n) in kinds {
            out.sample(&[("personality", name), ("kind", kind)], n);
        }
    }
    out.text
}

/// A metric family read from each personality's chat totals: name, help,
/// value.
type ChatGauge = (&'static str, &'static str, fn(&ChatTotals) -> u64);

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The gauges of each `[[remote]]`'s last pushes (see
/// [`crate::remote::status`]).
pub fn render_remotes(remotes: &BTreeMap<String, RemoteStatus>) -> String {
    let mut out = Exposition::default();
    if remotes.is_empty() {
        return out.text;
    }
    out.family(
        "chatkeep_remote_last_success_timestamp_seconds",
        "gauge",
        "Unix time a push to the remote last ended with every snapshot there (0 if none has).",
    );
    for (name, r) in remotes {
        out.sample(&[("remote", name)], r.last_success.map_or(0.0, seconds));
    }
    out.family(
        "chatkeep_remote_snapshots",
        "gauge",
        "Snapshots the remote held after its last successful push.",
    );
    for (name, r) in remotes {
        out.sample(&[("remote", name)], r.snapshots.unwrap_or(0));
    }
    out.family(
        "chatkeep_remote_last_failure_timestamp_seconds",
        "gauge",
        "Unix time a push to the remote last failed (0 if none has).",
    );
    for (name, r) in remotes {
        out.sample(&[("remote", name)], r.last_failure.map_or(0.0, seconds));
    }
    out.family(
        "chatkeep_remote_ok",
        "gauge",
        "1 if the last push to the remote succeeded (or none failed), 0 otherwise.",
    );
    for (name, r) in remotes {
        out.sample(&[("remote", name)], u8::from(!r.failing()));
    }
    out.text
}

/// Builds the text: one HELP and TYPE header per family, then its samples.
#[derive(Default)]
struct Exposition {
    text: String,
    family: &'static str,
}

impl Exposition {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.family = name;
        self.text
            .push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
            .collect();
        self.text
            .push_str(&format!("{}{{{}}} {value}\n", self.family, labels.join(",")));
    }
}

/// Escapes a label value as the text format requires: backslash, double
/// quote and line feed.
fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        name: &str,
        outcome: Outcome,
        finished: &str,
        requests: u64,
        chat: Option<(u64, u64)>,
    ) -> PersonalityStatus {
        let finished: DateTime<Utc> = finished.parse().unwrap();
        PersonalityStatus {
            personality: name.to_owned(),
            personality_id: None,
            last_started: finished,
            last_finished: finished,
            outcome,
            error: None,
            sections: BTreeMap::new(),
            requests,
            chat: chat.map(|(total, new)| ChatTotals {
                total,
                new,
                revised: 2,
                deleted_upstream: 1,
                beginning_confirmed_at: Some(finished.to_rfc3339()),
                ..ChatTotals::default()
            }),
            last_success: (outcome == Outcome::Ok).then_some(finished),
            previous_outcome: None,
            media: None,
        }
    }

    #[test]
    fn text_is_exact_for_one_good_and_one_failed_personality() {
        let alpha = status("alpha", Outcome::Ok, "2024-05-01T12:00:00Z", 4, Some((120, 5)));
        let beta = status("beta", Outcome::Failed, "2024-05-01T12:30:00.250Z", 1, None);
        let mut counters = Counters::default();
        counters.add(&alpha);
        counters.add(&beta);
        counters.add(&beta);
        // Given out of order: the file lists personalities by name.
        let text = render(&[beta, alpha], &counters);
        let want = r#"# HELP chatkeep_last_success_timestamp_seconds Unix time the last sync that ended ok finished (0 if none has).
# TYPE chatkeep_last_success_timestamp_seconds gauge
chatkeep_last_success_timestamp_seconds{personality="alpha"} 1714564800
chatkeep_last_success_timestamp_seconds{personality="beta"} 0
# HELP chatkeep_last_run_timestamp_seconds Unix time the last sync finished, whatever its outcome.
# TYPE chatkeep_last_run_timestamp_seconds gauge
chatkeep_last_run_timestamp_seconds{personality="alpha"} 1714564800
chatkeep_last_run_timestamp_seconds{personality="beta"} 1714566600.25
# HELP chatkeep_last_run_ok 1 if the last sync ended ok, or was interrupted by a shutdown after one that did (or before any finished); 0 otherwise.
# TYPE chatkeep_last_run_ok gauge
chatkeep_last_run_ok{personality="alpha"} 1
chatkeep_last_run_ok{personality="beta"} 0
# HELP chatkeep_last_run_interrupted 1 if the last sync was stopped by a shutdown before it finished (the next one resumes it), 0 otherwise.
# TYPE chatkeep_last_run_interrupted gauge
chatkeep_last_run_interrupted{personality="alpha"} 0
chatkeep_last_run_interrupted{personality="beta"} 0
# HELP chatkeep_messages Chat messages stored, as of the last sync that reached the chat history.
# TYPE chatkeep_messages gauge
chatkeep_messages{personality="alpha"} 120
# HELP chatkeep_messages_new_last_run Chat messages the last sync added.
# TYPE chatkeep_messages_new_last_run gauge
chatkeep_messages_new_last_run{personality="alpha"} 5
# HELP chatkeep_messages_revised Stored chat messages that changed upstream after they were stored (every version is kept).
# TYPE chatkeep_messages_revised gauge
chatkeep_messages_revised{personality="alpha"} 2
# HELP chatkeep_messages_deleted_upstream Stored chat messages the service no longer returns (kept, marked).
# TYPE chatkeep_messages_deleted_upstream gauge
chatkeep_messages_deleted_upstream{personality="alpha"} 1
# HELP chatkeep_history_beginning_confirmed 1 if a walk confirmed where the chat history begins, 0 if not (yet).
# TYPE chatkeep_history_beginning_confirmed gauge
chatkeep_history_beginning_confirmed{personality="alpha"} 1
# HELP chatkeep_requests_total HTTP requests made to the service since the daemon started, retries included.
# TYPE chatkeep_requests_total counter
chatkeep_requests_total{personality="alpha"} 4
chatkeep_requests_total{personality="beta"} 2
# HELP chatkeep_errors_total Syncs that failed since the daemon started, by outcome (an interrupted one is no failure).
# TYPE chatkeep_errors_total counter
chatkeep_errors_total{personality="alpha",kind="auth_expired"} 0
chatkeep_errors_total{personality="alpha",kind="bot_wall"} 0
chatkeep_errors_total{personality="alpha",kind="failed"} 0
chatkeep_errors_total{personality="alpha",kind="partial"} 0
chatkeep_errors_total{personality="alpha",kind="rate_limited"} 0
chatkeep_errors_total{personality="beta",kind="auth_expired"} 0
chatkeep_errors_total{personality="beta",kind="bot_wall"} 0
chatkeep_errors_total{personality="beta",kind="failed"} 2
chatkeep_errors_total{personality="beta",kind="partial"} 0
chatkeep_errors_total{personality="beta",kind="rate_limited"} 0
"#;
        assert_eq!(text, want);
    }

    #[test]
    fn an_interrupted_sync_is_no_error_and_keeps_the_health_of_the_one_before() {
        let first = status(
            "first",
            Outcome::Interrupted,
            "2024-05-01T12:00:00Z",
            3,
            Some((0, 0)),
        );
        let after_ok = PersonalityStatus {
            previous_outcome: Some(Outcome::Ok),
            ..status("after-ok", Outcome::Interrupted, "2024-05-01T12:00:00Z", 3, None)
        };
        let after_failure = PersonalityStatus {
            previous_outcome: Some(Outcome::Failed),
            ..status(
                "after-failure",
                Outcome::Interrupted,
                "2024-05-01T12:00:00Z",
                3,
                None,
            )
        };
        let mut counters = Counters::default();
        for s in [&first, &after_ok, &after_failure] {
            counters.add(s);
        }
        assert!(counters.errors.is_empty(), "{counters:?}");
        let text = render(&[first, after_ok, after_failure], &counters);
        for (name, ok) in [("first", 1), ("after-ok", 1), ("after-failure", 0)] {
            let ok = format!("chatkeep_last_run_ok{{personality=\"{name}\"}} {ok}\n");
            let interrupted = format!("chatkeep_last_run_interrupted{{personality=\"{name}\"}} 1\n");
            assert!(text.contains(&ok) && text.contains(&interrupted), "{text}");
        }
        assert!(!text.contains("kind=\"interrupted\""), "{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("chatkeep_errors_total") && !l.ends_with(" 0")),
            "{text}"
        );
    }

    #[test]
    fn media_files_are_counted_by_state_once_a_sync_looked_at_them() {
        let without = status("alpha", Outcome::Ok, "2024-05-01T12:00:00Z", 4, None);
        assert!(
            !render(std::slice::from_ref(&without), &Counters::default()).contains("chatkeep_media_files")
        );
        let mut with = without.clone();
        with.media = Some(crate::media::MediaTotals {
            fetched: 7,
            pending: 1,
            failed: 2,
            gone: 3,
            refused: 4,
            ..Default::default()
        });
        let text = render(&[with], &Counters::default());
        for line in [
            "# TYPE chatkeep_media_files gauge",
            "chatkeep_media_files{personality=\"alpha\",state=\"fetched\"} 7",
            "chatkeep_media_files{personality=\"alpha\",state=\"pending\"} 1",
            "chatkeep_media_files{personality=\"alpha\",state=\"failed\"} 2",
            "chatkeep_media_files{personality=\"alpha\",state=\"gone\"} 3",
            "chatkeep_media_files{personality=\"alpha\",state=\"refused\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("x\ny"), r"x\ny");
        let mut counters = Counters::default();
        counters
            .errors
            .insert(("p".into(), "odd \"kind\"\\\nnext".into()), 3);
        let text = render(&[], &counters);
        assert!(
            text.contains(
                "chatkeep_errors_total{personality=\"p\",kind=\"odd \\\"kind\\\"\\\\\\nnext\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("chatkeep_requests_total{personality=\"p\"} 0\n"),
            "{text}"
        );
        // Every sample stays on one line.
        assert!(
            text.lines()
                .all(|l| l.starts_with('#') || l.starts_with("chatkeep_")),
            "{text}"
        );
    }

    #[test]
    fn write_is_atomic_private_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let s = status("alpha", Outcome::Ok, "2024-05-01T12:00:00Z", 1, Some((1, 1)));
        let target = MetricsConfig::with_data_dir(&data);
        write_metrics(
            &data,
            &target,
            std::slice::from_ref(&s),
            &Counters::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        write_metrics(&data, &target, &[s], &Counters::default(), &BTreeMap::new()).unwrap();
        let path = data.join(METRICS_FILE);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("chatkeep_last_run_ok{personality=\"alpha\"} 1\n")
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [METRICS_FILE]);
    }
}
