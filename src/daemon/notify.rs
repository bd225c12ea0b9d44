//! The systemd notify protocol (`Type=notify`): READY once schedules are
//! set, a one-line STATUS, WATCHDOG pings, STOPPING on shutdown. Without
//! `NOTIFY_SOCKET` every call is a no-op.

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn reloading() {
    send(&[NotifyState::Reloading]);
}

pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "systemd notification not sent");
    }
}

/// Pings the watchdog at half its interval until `stop`, when systemd asked
/// for one (`WatchdogSec=`).
pub fn spawn_watchdog(stop: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) else {
        return;
    };
    let every = interval / 2;
    tracing::info!(
        every_ms = every.as_millis() as u64,
        "pinging the systemd watchdog"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => send(&[NotifyState::Watchdog]),
                _ = stop.cancelled() => return,
            }
        }
    });
}
