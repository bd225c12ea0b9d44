//! Telling someone when a backup fails or recovers: the `[notify]` hooks,
//! run as borgmatic runs its hooks (a command without a shell, what
//! happened in its environment), and a healthchecks.io-style ping URL.
//!
//! A notification is a side effect of the backup, never part of it: a hook
//! that fails, hangs or cannot be started, or a ping that gets no answer,
//! is logged at WARN and changes no outcome and no exit code.
//!
//! Nothing secret leaves through here. A hook's environment lacks the
//! variable `[service] cookie_env` names and `CREDENTIALS_DIRECTORY` (where
//! systemd puts the cookie file), and every message (`CHATKEEP_MESSAGE`, a
//! ping's body) has the session cookie cut out, should an error ever quote
//! it.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Config, CookieSource, NotifyConfig};
use crate::status::{Outcome, PersonalityStatus};
use crate::store::personality_dir;
use crate::sync::PersonalityReport;

/// Most characters of a message (`CHATKEEP_MESSAGE`, a ping's body).
const MAX_MESSAGE_CHARS: usize = 1000;
/// How often a running hook is checked for its end.
const HOOK_POLL: Duration = Duration::from_millis(20);

/// What a pass tells about its end, for the ping: `<url>` or `<url>/fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassResult {
    /// Nothing failed (interrupted syncs are no failure).
    Success,
    /// A personality's sync ended in an error outcome, or the pass could
    /// not run.
    Failure,
}

/// The hooks and pings of one config, with what must be kept out of them.
pub struct Notifier {
    config: NotifyConfig,
    /// The variable holding the cookie, kept out of hooks' environment.
    cookie_env: Option<String>,
    /// The session cookie, cut out of every message.
    secret: Option<String>,
    /// For pings; `None` without `ping_url` (or if it cannot be built,
    /// which is logged).
    http: Option<reqwest::Client>,
}

impl Notifier {
    /// The notifier of `config`; `secret` is the session cookie in use.
    pub fn new(config: &Config, secret: Option<&str>) -> Notifier {
        let notify = config.notify.clone();
        let http = notify.ping_url.as_ref().and_then(|_| {
            reqwest::Client::builder()
                .timeout(notify.timeout)
                .redirect(reqwest::redirect::Policy::limited(3))
                .user_agent(config.service.user_agent.clone())
                .build()
                .map_err(|e| tracing::warn!(error = %e.without_url(), "cannot set up ping_url requests; no pings will be sent"))
                .ok()
        });
        Notifier {
            config: notify,
            cookie_env: match &config.service.cookie {
                CookieSource::Env(name) => Some(name.clone()),
                _ => None,
            },
            secret: secret.filter(|s| !s.is_empty()).map(str::to_owned),
            http,
        }
    }

    /// Whether the last sync of `name` in `data_dir` left it failed (an
    /// interrupted one counts as the sync before it): read before a sync,
    /// so that an `ok` after it is a recovery.
    pub fn was_failing(data_dir: &Path, name: &str) -> bool {
        personality_dir(data_dir, name)
            .ok()
            .and_then(|dir| PersonalityStatus::read(&dir))
            .is_some_and(|status| !status.healthy())
    }

    /// Runs `on_failure` after a sync that ended in an error, `on_recovery`
    /// after one that ended `ok` when `was_failing`.
    pub async fn personality_finished(&self, report: &PersonalityReport, was_failing: bool) {
        let outcome = report.outcome();
        let hook = if outcome.is_error() {
            self.config.on_failure.as_ref().map(|argv| ("on_failure", argv))
        } else if outcome == Outcome::Ok && was_failing {
            self.config.on_recovery.as_ref().map(|argv| ("on_recovery", argv))
        } else {
            None
        };
        let Some((key, argv)) = hook else {
            return;
        };
        let env = vec![
            ("CHATKEEP_PERSONALITY", report.name().to_owned()),
            ("CHATKEEP_OUTCOME", outcome.as_str().to_owned()),
            ("CHATKEEP_MESSAGE", self.message(report)),
        ];
        let hook = Hook {
            key,
            argv: argv.clone(),
            env,
            remove: self.removed_env(),
            timeout: self.config.timeout,
        };
        let personality = report.name().to_owned();
        match tokio::task::spawn_blocking(move || hook.run()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(personality, "notify.{key}: {e}; the backup is not affected"),
            Err(e) => tracing::warn!(personality, "notify.{key} did not finish: {e}"),
        }
    }

    /// Pings `<ping_url>/start`: a pass begins.
    pub async fn ping_start(&self) {
        self.ping("/start", String::new()).await;
    }

    /// Pings `<ping_url>` or `<ping_url>/fail` with `body`, a short text.
    pub async fn ping_end(&self, result: PassResult, body: &str) {
        let suffix = match result {
            PassResult::Success => "",
            PassResult::Failure => "/fail",
        };
        let body = self.scrub(body);
        self.ping(suffix, body).await;
    }

    async fn ping(&self, suffix: &str, body: String) {
        let (Some(url), Some(http)) = (&self.config.ping_url, &self.http) else {
            return;
        };
        let which = if suffix.is_empty() {
            "success"
        } else {
            &suffix[1..]
        };
        let sent = http
            .post(format!("{url}{suffix}"))
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(ping = which, "ping_url answered");
            }
            Ok(response) => tracing::warn!(
                ping = which,
                status = response.status().as_u16(),
                "notify.ping_url answered with an error; the backup is not affected"
            ),
            Err(e) => tracing::warn!(
                ping = which,
                error = %e.without_url(),
                "notify.ping_url could not be reached; the backup is not affected"
            ),
        }
    }

    /// One line about `report` for a person: the personality, its outcome
    /// and its first error.
    pub fn message(&self, report: &PersonalityReport) -> String {
        let mut text = format!("{}: {}", report.name(), report.outcome().as_str());
        if let Some(error) = &report.status.error {
            text.push_str(": ");
            text.push_str(error);
        }
        self.scrub(&text)
    }

    /// `text` without the cookie, control characters escaped, cut short.
    fn scrub(&self, text: &str) -> String {
        let text = match &self.secret {
            Some(secret) => text.replace(secret.as_str(), "[redacted]"),
            None => text.to_owned(),
        };
        let text = crate::escape::controls(&text);
        if text.chars().count() > MAX_MESSAGE_CHARS {
            let cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
            format!("{cut}...")
        } else {
            text.to_string()
        }
    }

    fn removed_env(&self) -> Vec<String> {
        let mut removed = vec!["CREDENTIALS_DIRECTORY".to_owned()];
        removed.extend(self.cookie_env.clone());
        removed
    }
}

/// One run of a hook command.
struct Hook {
    /// `on_failure` or `on_recovery`, for messages.
    key: &'static str,
    argv: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// Variables removed from the inherited environment.
    remove: Vec<String>,
    timeout: Duration,
}

impl Hook {
    /// Runs the command to its end, or kills it (its whole process group,
    /// so a shell's children too) at the timeout. Its standard output goes
    /// to standard error (the journal under systemd), so it never mixes
    /// into `chatkeep sync`'s summaries.
    fn run(self) -> Result<(), String> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err("the command is empty".to_owned());
        };
        let mut command = Command::new(program);
        command.args(args).stdin(Stdio::null()).process_group(0);
        if let Ok(stderr) = io::stderr().as_fd().try_clone_to_owned() {
            command.stdout(Stdio::from(stderr));
        }
        for name in &self.remove {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {program:?}: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        let status: ExitStatus = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{program:?} still ran after {}; killed",
                        crate::config::format_duration(self.timeout)
                    ));
                }
                Ok(None) => std::thread::sleep(HOOK_POLL),
                Err(e) => return Err(format!("cannot wait for {program:?}: {e}")),
            }
        };
        if status.success() {
            tracing::info!("notify.{} ran {program:?}", self.key);
            Ok(())
        } else {
            Err(format!("{program:?} failed ({status})"))
        }
    }
}
