//! The daemon's control socket, `<data_dir>/.chatkeep.sock`: `chatkeep
//! sync` and `chatkeep archive`, started while the daemon holds the data
//! directory, ask the daemon to run them now instead of failing on its
//! lock, and print what the daemon did as if they had done it themselves.
//!
//! One JSON line asks ([`Request`]); the daemon answers with JSON lines
//! ([`Event`]), one [`Event::Finished`] per personality, then closes. Only
//! the daemon's own user (and root) may ask: the data directory is 0700,
//! and the daemon checks the peer's uid as well.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use crate::commands::exit;

/// The socket's name in the data directory.
pub const SOCKET_FILE: &str = ".chatkeep.sock";

/// The longest request the daemon reads: a list of names fits many times.
pub const MAX_REQUEST: u64 = 64 * 1024;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// What a request asks the daemon to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    Sync,
    Archive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub job: Job,
    /// Personality names; none means every one the daemon's config names.
    pub names: Vec<String>,
    /// Sync only: also every personality the account owns (`sync --all`).
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The daemon took the request: these personalities run now, or right
    /// after the run each is in the middle of.
    Accepted { pid: u32, personalities: Vec<String> },
    /// One personality's run ended. `outcome` is a sync's outcome
    /// (`ok`, `partial`, `interrupted`, ...) or, for a snapshot, `ok`,
    /// `failed` or `no_backup`; the lines are what the command would have
    /// printed itself.
    Finished {
        personality: String,
        outcome: String,
        stdout: Vec<String>,
        stderr: Vec<String>,
    },
    /// The daemon did not take the request (it is stopping, or the request
    /// names nothing).
    Refused { message: String },
}

/// A connection to the daemon that holds a data directory.
#[derive(Debug)]
pub struct DaemonLink {
    stream: UnixStream,
}

impl DaemonLink {
    /// Connects to the daemon of `data_dir`, if one listens there. A socket
    /// file that no process listens on (a daemon killed with -9) is no
    /// daemon.
    pub async fn connect(data_dir: &Path) -> Option<DaemonLink> {
        match UnixStream::connect(socket_path(data_dir)).await {
            Ok(stream) => Some(DaemonLink { stream }),
            Err(e) => {
                tracing::debug!(error = %e, "no daemon answers on the control socket");
                None
            }
        }
    }

    /// Sends `request`, prints what the daemon did as it happens, and
    /// returns the exit code the command would have had. `cancel` (Ctrl-C)
    /// stops the waiting, not the daemon's run.
    pub async fn run(self, request: &Request, cancel: &CancellationToken) -> Result<ExitCode, io::Error> {
        let (read, mut write) = self.stream.into_split();
        let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
        line.push('\n');
        write.write_all(line.as_bytes()).await?;
        write.shutdown().await?;
        let mut lines = BufReader::new(read).lines();
        let mut tally = Tally::default();
        let mut expected: Option<usize> = None;
        loop {
            let next = tokio::select! {
                next = lines.next_line() => next?,
                _ = cancel.cancelled() => {
                    eprintln!(
                        "stopped waiting; the daemon goes on with it (`chatkeep status` shows how it ends)"
                    );
                    return Ok(ExitCode::from(exit::INTERRUPTED));
                }
            };
            let Some(text) = next else { break };
            let event: Event = serde_json::from_str(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("daemon answer: {e}")))?;
            match event {
                Event::Accepted { pid, personalities } => {
                    eprintln!(
                        "the daemon (pid {pid}) holds the data directory; it runs this now for {}",
                        personalities.join(", ")
                    );
                    expected = Some(personalities.len());
                }
                Event::Finished {
                    personality,
                    outcome,
                    stdout,
                    stderr,
                } => {
                    for l in &stdout {
                        println!("{}", crate::escape::controls(l));
                    }
                    for l in &stderr {
                        eprintln!("{}", crate::escape::controls(l));
                    }
                    tally.add(request, &personality, &outcome);
                }
                Event::Refused { message } => {
                    eprintln!("error: the daemon refused: {}", crate::escape::controls(&message));
                    return Ok(ExitCode::from(exit::USAGE));
                }
            }
        }
        if expected.is_none_or(|n| tally.finished < n) {
            eprintln!(
                "error: the daemon stopped answering before every run ended; `chatkeep status` shows where each stands"
            );
            return Ok(ExitCode::from(exit::FAILED));
        }
        Ok(ExitCode::from(tally.code()))
    }
}

/// The outcomes seen, reduced to the command's exit code as a run of its
/// own would have it: a refused cookie over a failure over a clean stop.
#[derive(Debug, Default)]
struct Tally {
    finished: usize,
    auth: bool,
    failed: bool,
    interrupted: bool,
}

impl Tally {
    fn add(&mut self, request: &Request, personality: &str, outcome: &str) {
        self.finished += 1;
        match outcome {
            "ok" => {}
            "interrupted" => self.interrupted = true,
            "auth_expired" => self.auth = true,
            // `chatkeep archive` without names skips a personality with no
            // backup yet; a named one is an error.
            "no_backup" => self.failed |= request.names.iter().any(|n| n == personality),
            _ => self.failed = true,
        }
    }

    fn code(&self) -> u8 {
        if self.auth {
            exit::AUTH
        } else if self.failed {
            exit::FAILED
        } else if self.interrupted {
            exit::INTERRUPTED
        } else {
            exit::OK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(names: &[&str]) -> Request {
        Request {
            job: Job::Archive,
            names: names.iter().map(|n| n.to_string()).collect(),
            all: false,
        }
    }

    #[test]
    fn the_exit_code_puts_a_refused_cookie_over_a_failure_over_a_clean_stop() {
        let r = request(&[]);
        let code = |outcomes: &[&str]| {
            let mut t = Tally::default();
            for o in outcomes {
                t.add(&r, "a", o);
            }
            t.code()
        };
        assert_eq!(code(&["ok", "ok"]), exit::OK);
        assert_eq!(code(&["ok", "interrupted"]), exit::INTERRUPTED);
        assert_eq!(code(&["interrupted", "partial"]), exit::FAILED);
        assert_eq!(code(&["failed", "auth_expired", "interrupted"]), exit::AUTH);
    }

    #[test]
    fn no_backup_fails_only_a_personality_that_was_named() {
        let mut unnamed = Tally::default();
        unnamed.add(&request(&[]), "lilith", "no_backup");
        assert_eq!(unnamed.code(), exit::OK);
        let mut named = Tally::default();
        named.add(&request(&["lilith"]), "lilith", "no_backup");
        assert_eq!(named.code(), exit::FAILED);
    }

    #[test]
    fn requests_and_events_read_back_as_written() {
        let r = Request {
            job: Job::Sync,
            names: vec!["lilith".into()],
            all: true,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"job":"sync","names":["lilith"],"all":true}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        let e = Event::Finished {
            personality: "lilith".into(),
            outcome: "ok".into(),
            stdout: vec!["lilith: ok".into()],
            stderr: vec![],
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.starts_with(r#"{"event":"finished""#), "{text}");
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
    }
}
