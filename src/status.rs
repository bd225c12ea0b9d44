//! The per-personality status file, `<data_dir>/<name>/status.json`:
//! what the last sync did and how it ended, for `chatkeep status`, health
//! checks and people. Written atomically; never holds a secret.

use std::collections::BTreeMap;

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
        }
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
    /// Chat history brought up to date.
    Chat {
        new: u64,
        total: u64,
        requests: u64,
    },
    /// Upstream has nothing (404 or empty); the backup keeps what it had.
    None,
    /// The service does not show this section to this account (not the owner).
    NotAvailable,
    /// Not in the configured sections.
    Skipped,
    /// Not attempted because an earlier failure stopped the personality.
    NotAttempted,
    Failed {
        error: String,
    },
}

/// Chat totals for people and dashboards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTotals {
    pub total: u64,
    pub new: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
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
}

const STATUS_FILE: &str = "status.json";

impl PersonalityStatus {
    /// Reads the status file, if there is a readable one.
    pub fn read(dir: &PersonalityDir) -> Option<PersonalityStatus> {
        let bytes = std::fs::read(dir.path().join(STATUS_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the status file atomically, carrying `last_success` forward.
    pub fn write(mut self, dir: &PersonalityDir) -> Result<(), StoreError> {
        if self.outcome != Outcome::Ok {
            self.last_success = PersonalityStatus::read(dir).and_then(|s| s.last_success);
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
    /// Every outcome, `ok` first; the others are the error kinds counted in
    /// the metrics.
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Partial,
        Outcome::Failed,
        Outcome::AuthExpired,
        Outcome::BotWall,
        Outcome::RateLimited,
    ];
}
