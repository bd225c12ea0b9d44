//! Progress of a long walk: a live line in a terminal, a periodic log line
//! otherwise (journald does not want spinners).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::sync::walk::WalkProgress;

/// How often a non-terminal run logs progress.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Progress of one personality's sync.
pub struct SyncProgress {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
}

impl SyncProgress {
    pub fn new(name: &str) -> SyncProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message(format!("{name}: fetching profile"));
            bar
        });
        SyncProgress {
            name: name.to_owned(),
            bar,
            started: Instant::now(),
            last_log: Instant::now(),
        }
    }

    pub fn page(&mut self, p: WalkProgress) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let text = format!(
            "{}: {} fetched, {}, {:.0} msg/s",
            self.name,
            crate::words::count(p.spooled, "message"),
            crate::words::count(p.requests, "page"),
            p.spooled as f64 / secs
        );
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                tracing::info!("{text}");
            }
            None => {}
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
