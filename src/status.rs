//! The per-personality status file, `<data_dir>/<name>/status.json`:
//! what the last sync did and how it ended, for `chatkeep status`, health
//! checks and people. Written atomically; never holds a secret.
//!
//! Beside them, the daemon's own `<data_dir>/status.json` ([`DaemonStatus`]):
//! its pid and, per personality, the next run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{PersonalityDir, StoreError, fsio};

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every section backed up.
    Ok,
    /// Some sections failed; the others were backed up.
    Partial,
    Failed,
    /// The service refused the session cookie.
    AuthExpired,
    /// A bot wall answered instead of the API.
    BotWall,
    /// The service kept answering 429 past the retries.
    RateLimited,
    /// Stopped by a shutdown (Ctrl-C, SIGTERM) before it finished, with no
    /// section failed: a clean stop, not a failure. An unfinished chat walk
    /// keeps its checkpoint and the next sync resumes it.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::AuthExpired => "auth_expired",
            Outcome::BotWall => "bot_wall",
            Outcome::RateLimited => "rate_limited",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// A failure of some kind: counted as an error in the metrics and
    /// unhealthy in `chatkeep status`. `ok` and `interrupted` are not.
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Interrupted)
    }
}

/// What happened to one section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SectionStatus {
    /// Backed up; `change` says whether the stored file changed.
    Saved {
        change: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        entries: Option<u64>,
    },
    /// Memories merged.
    Merged {
        change: String,
        new: u64,
        changed: u64,
        vanished: u64,
        upstream: u64,
        total: u64,
        complete: bool,
    },
    /// Chat history brought up to date: messages stored for the first
    /// time, stored in all, and, in this run, stored ones that changed
    /// upstream (a revision each) or vanished upstream (marked).
    Chat {
        new: u64,
        total: u64,
        requests: u64,
        #[serde(default)]
        revised: u64,
        #[serde(default)]
        deleted: u64,
    },
    /// Upstream has nothing (404 or empty); the backup keeps what it had.
    None,
    /// The service does not show this section to this account (not the owner).
    NotAvailable,
    /// Not in the configured sections.
    Skipped,
    /// Not attempted because an earlier failure stopped the personality.
    NotAttempted,
    /// Stopped by a shutdown before it finished; `spooled` messages were
    /// fetched by the unfinished walk but are not stored yet (the next sync
    /// resumes the walk and stores them).
    Interrupted {
        #[serde(default)]
        spooled: u64,
    },
    Failed {
        error: String,
    },
}

/// Chat totals for people and dashboards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTotals {
    pub total: u64,
    pub new: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    /// Stored messages with later versions, and marked deleted upstream.
    #[serde(default)]
    pub revised: u64,
    #[serde(default)]
    pub deleted_upstream: u64,
    /// When a walk last confirmed where the history begins; `None`: not
    /// confirmed.
    #[serde(default)]
    pub beginning_confirmed_at: Option<String>,
    /// When the history below the oldest message was last probed.
    #[serde(default)]
    pub tail_probed_at: Option<String>,
}

/// The status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalityStatus {
    pub personality: String,
    pub personality_id: Option<String>,
    pub last_started: DateTime<Utc>,
    pub last_finished: DateTime<Utc>,
    pub outcome: Outcome,
    /// The first error, in words for a person.
    pub error: Option<String>,
    pub sections: BTreeMap<String, SectionStatus>,
    /// HTTP requests this sync made, retries included.
    pub requests: u64,
    pub chat: Option<ChatTotals>,
    /// The last time a sync of this personality ended `ok`.
    pub last_success: Option<DateTime<Utc>>,
    /// Only when `outcome` is `interrupted`: how the last sync before it
    /// that was not interrupted ended (none if none has). A stop does not
    /// make a failed backup healthy, nor a healthy one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_outcome: Option<Outcome>,
    /// The media its messages and profile point to, by state; `None` when
    /// no media was looked at (switched off, or a sync from before media).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::media::MediaTotals>,
}

const STATUS_FILE: &str = "status.json";

impl PersonalityStatus {
    /// Reads the status file, if there is a readable one.
    pub fn read(dir: &PersonalityDir) -> Option<PersonalityStatus> {
        let bytes = fsio::read(&dir.path().join(STATUS_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether this sync leaves the backup healthy, for health checks: it
    /// ended `ok`, or it was interrupted and the last sync that was not
    /// ended `ok` (or none has: a first backup stopped part way).
    pub fn healthy(&self) -> bool {
        match self.outcome {
            Outcome::Ok => true,
            Outcome::Interrupted => self.previous_outcome.is_none_or(|o| o == Outcome::Ok),
            _ => false,
        }
    }

    /// Writes the status file atomically, carrying `last_success` forward,
    /// and, for an interrupted sync, the outcome of the last one that was
    /// not.
    pub fn write(mut self, dir: &PersonalityDir) -> Result<(), StoreError> {
        if self.outcome != Outcome::Ok {
            let before = PersonalityStatus::read(dir);
            self.last_success = before.as_ref().and_then(|s| s.last_success);
            self.previous_outcome = match before {
                _ if self.outcome != Outcome::Interrupted => None,
                Some(s) if s.outcome == Outcome::Interrupted => s.previous_outcome,
                Some(s) => Some(s.outcome),
                None => None,
            };
        }
        let path = dir.path().join(STATUS_FILE);
        let io_err = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        fsio::create_private_dir(dir.path()).map_err(io_err)?;
        let mut bytes = serde_json::to_vec_pretty(&self).map_err(|e| io_err(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        fsio::write_atomic(&path, &bytes).map_err(io_err)
    }
}

impl Outcome {
    /// Every outcome, `ok` first and `interrupted` last; the others are the
    /// error kinds counted in the metrics ([`Outcome::is_error`]).
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Partial,
        Outcome::Failed,
        Outcome::AuthExpired,
        Outcome::BotWall,
        Outcome::RateLimited,
        Outcome::Interrupted,
    ];
}

/// The daemon's own status file, `<data_dir>/status.json`, beside the
/// per-personality `<data_dir>/<name>/status.json` files: which process runs,
/// and when each personality runs next. Rewritten atomically on every change
/// by `chatkeep run`; read by `chatkeep status` without the lock. Holds no
/// secret: no cookie, no config content beyond the config file's path.
///
/// The file name is shared with the data directory's namespace: a
/// personality whose slug is literally `status.json` would need a directory
/// of that name. Whichever comes first wins and the other fails with an I/O
/// error (a rename onto a directory, or a directory over a file); neither is
/// corrupted. See [`is_reserved_name`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's process id, to tell a running daemon from a stale file.
    pub pid: u32,
    /// chatkeep's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// When the daemon started.
    pub started: DateTime<Utc>,
    /// The config file the daemon reads (and re-reads on SIGHUP).
    pub config: PathBuf,
    /// When this content was last changed; the writer sets it before each
    /// [`DaemonStatus::write`].
    pub updated: DateTime<Utc>,
    /// Per personality the daemon schedules, by slug.
    pub personalities: BTreeMap<String, DaemonPersonality>,
}

/// What the daemon knows of one personality's schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonPersonality {
    /// The next scheduled sync, if one is scheduled.
    pub next_run: Option<DateTime<Utc>>,
    /// A sync of this personality is running now.
    pub running: bool,
    /// How the last sync under this daemon ended (the per-personality status
    /// file has the details).
    pub last_outcome: Option<Outcome>,
    /// When the last sync under this daemon ended.
    pub last_finished: Option<DateTime<Utc>>,
    /// When a failed sync will be retried, if a retry is pending.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The daemon status file's name in the data directory.
pub const DAEMON_STATUS_FILE: &str = "status.json";

/// Names of files chatkeep keeps directly in the data directory, which a
/// personality directory of the same name would collide with. Config
/// validation may refuse these slugs; `chatkeep status` tolerates them.
pub fn is_reserved_name(name: &str) -> bool {
    crate::config::RESERVED_NAMES.contains(&name)
}

impl DaemonStatus {
    /// A status for this process, started now, with no personality yet.
    pub fn new(config: PathBuf) -> DaemonStatus {
        let now = Utc::now();
        DaemonStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: now,
            config,
            updated: now,
            personalities: BTreeMap::new(),
        }
    }

    /// `<data_dir>/status.json`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(DAEMON_STATUS_FILE)
    }

    /// Reads the daemon status file, if there is a readable one. A
    /// directory in its place (a personality named `status.json`) reads as
    /// none.
    pub fn read(data_dir: &Path) -> Option<DaemonStatus> {
        let bytes = fsio::read(&DaemonStatus::path(data_dir)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the file atomically (temp file, fsync, rename, directory
    /// fsync), mode 0600, creating the data directory (0700) if needed.
    pub fn write(&self, data_dir: &Path) -> Result<(), StoreError> {
        let path = DaemonStatus::path(data_dir);
        let io_err = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        fsio::create_private_dir(data_dir).map_err(io_err)?;
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| io_err(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        fsio::write_atomic(&path, &bytes).map_err(io_err)
    }

    /// Whether the process named by `pid` still exists (`kill(pid, 0)`
    /// semantics, through `/proc/<pid>`). A pid reused by another process
    /// after the daemon died reads as alive, and a daemon in another pid
    /// namespace reads as dead.
    pub fn is_alive(&self) -> bool {
        self.pid != 0 && Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

#[cfg(test)]
mod personality_status_tests {
    use super::*;

    fn sample(outcome: Outcome) -> PersonalityStatus {
        let at: DateTime<Utc> = "2024-05-01T12:00:00Z".parse().unwrap();
        PersonalityStatus {
            personality: "lilith".into(),
            personality_id: None,
            last_started: at,
            last_finished: at,
            outcome,
            error: None,
            sections: BTreeMap::new(),
            requests: 1,
            chat: None,
            last_success: (outcome == Outcome::Ok).then_some(at),
            previous_outcome: None,
            media: None,
        }
    }

    #[test]
    fn an_interrupted_sync_carries_the_outcome_of_the_last_one_that_finished() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::store::personality_dir(data.path(), "lilith").unwrap();
        let read = || PersonalityStatus::read(&dir).unwrap();
        sample(Outcome::Interrupted).write(&dir).unwrap();
        assert_eq!((read().previous_outcome, read().healthy()), (None, true));
        sample(Outcome::Failed).write(&dir).unwrap();
        for _ in 0..2 {
            sample(Outcome::Interrupted).write(&dir).unwrap();
            assert_eq!(read().previous_outcome, Some(Outcome::Failed));
            assert!(!read().healthy());
        }
        sample(Outcome::Ok).write(&dir).unwrap();
        sample(Outcome::Interrupted).write(&dir).unwrap();
        assert_eq!(read().previous_outcome, Some(Outcome::Ok));
        assert!(read().healthy() && read().last_success.is_some());
        sample(Outcome::Partial).write(&dir).unwrap();
        assert_eq!((read().previous_outcome, read().healthy()), (None, false));
    }

    #[test]
    fn a_file_from_before_interrupted_existed_still_reads() {
        let old = r#"{"personality":"lilith","personality_id":null,
            "last_started":"2024-05-01T12:00:00Z","last_finished":"2024-05-01T12:00:01Z",
            "outcome":"partial","error":"stopped at a page boundary",
            "sections":{"chat":{"state":"failed","error":"stopped at a page boundary"}},
            "requests":3,"chat":null,"last_success":null}"#;
        let status: PersonalityStatus = serde_json::from_str(old).unwrap();
        assert_eq!(
            (status.outcome, status.previous_outcome),
            (Outcome::Partial, None)
        );
        let new = serde_json::to_string(&sample(Outcome::Ok)).unwrap();
        assert!(!new.contains("previous_outcome"), "{new}");
        let section: SectionStatus = serde_json::from_str(r#"{"state":"interrupted"}"#).unwrap();
        assert_eq!(section, SectionStatus::Interrupted { spooled: 0 });
    }
}

#[cfg(test)]
mod daemon_status_tests {
    use super::*;

    fn sample() -> DaemonStatus {
        let mut status = DaemonStatus::new(PathBuf::from("/etc/chatkeep/config.toml"));
        status.personalities.insert(
            "lilith".into(),
            DaemonPersonality {
                next_run: Some("2024-05-01T13:00:00Z".parse().unwrap()),
                running: true,
                last_outcome: Some(Outcome::RateLimited),
                last_finished: Some("2024-05-01T12:00:03.5Z".parse().unwrap()),
                retry_at: Some("2024-05-01T12:05:00Z".parse().unwrap()),
            },
        );
        status
            .personalities
            .insert("eve".into(), DaemonPersonality::default());
        status
    }

    #[test]
    fn round_trips_through_the_file_at_data_dir_status_json() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(DaemonStatus::read(&data), None);
        let status = sample();
        status.write(&data).unwrap();
        assert_eq!(DaemonStatus::path(&data), data.join("status.json"));
        assert_eq!(DaemonStatus::read(&data), Some(status.clone()));
        assert_eq!(status.pid, std::process::id());
        assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
        assert!(status.is_alive(), "this process is alive");
    }

    #[test]
    fn write_is_private_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        sample().write(dir.path()).unwrap();
        sample().write(dir.path()).unwrap();
        let path = DaemonStatus::path(dir.path());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["status.json"]);
    }

    #[test]
    fn a_pid_that_does_not_exist_is_not_alive() {
        let mut status = sample();
        // Above the kernel's pid_max limit (2^22).
        status.pid = 4_194_305;
        assert!(!status.is_alive());
        status.pid = 0;
        assert!(!status.is_alive());
    }

    #[test]
    fn a_personality_directory_named_status_json_reads_as_no_daemon_and_refuses_the_write() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("status.json")).unwrap();
        assert_eq!(DaemonStatus::read(dir.path()), None);
        assert!(sample().write(dir.path()).is_err());
        assert!(
            dir.path().join("status.json").is_dir(),
            "the directory is untouched"
        );
        assert!(is_reserved_name("status.json") && is_reserved_name("metrics.prom"));
        assert!(!is_reserved_name("lilith"));
    }
}
