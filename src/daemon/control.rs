//! The daemon's end of the control socket (see [`crate::control`]): takes
//! a request to sync or snapshot now, queues it as each personality's own
//! job (so it never overlaps that personality's other runs), and answers
//! with each run's end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::jobs::{RunId, Shared};
use crate::api::documents::Category;
use crate::config::PersonalitySlug;
use crate::control::{Event, Job, MAX_REQUEST, Request, socket_path};

/// The listening socket; removed when the daemon ends.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on `<data_dir>/.chatkeep.sock` until the daemon stops. A daemon
/// that cannot listen still runs its schedules: the socket is for
/// convenience, so its failure is a warning.
pub fn listen(shared: &Arc<Shared>) -> Option<ControlSocket> {
    let path = socket_path(shared.data_dir());
    // The daemon holds the data directory's lock: a socket file there is
    // a leftover of one killed before it could remove it.
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                socket = %path.display(),
                error = %e,
                "cannot listen on the control socket; `chatkeep sync` and `archive` will be refused while the daemon runs"
            );
            return None;
        }
    };
    let shared = shared.clone();
    let stop = shared.shutdown_token();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        continue;
                    }
                },
                _ = stop.cancelled() => return,
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(&shared, stream).await {
                    tracing::debug!(error = %e, "control socket: connection ended");
                }
            });
        }
    });
    Some(ControlSocket { path })
}

/// Whether `uid` may ask: the daemon's own user, or root.
fn allowed(uid: u32) -> bool {
    uid == 0 || uid == rustix::process::geteuid().as_raw()
}

async fn serve(shared: &Arc<Shared>, stream: UnixStream) -> std::io::Result<()> {
    let peer = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    if !allowed(peer) {
        tracing::warn!(uid = peer, "control socket: refused a request from another user");
        return send(
            &mut write,
            &Event::Refused {
                message: "only the daemon's own user or root may ask it to run".into(),
            },
        )
        .await;
    }
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let request: Request = match serde_json::from_str(line.trim_end()) {
        Ok(r) => r,
        Err(e) => {
            return send(
                &mut write,
                &Event::Refused {
                    message: format!("not a request: {e}"),
                },
            )
            .await;
        }
    };
    let names = match names(shared, &request).await {
        Ok(names) => names,
        Err(message) => return send(&mut write, &Event::Refused { message }).await,
    };
    // Subscribed before the runs start, so that no end is missed.
    let mut ends = shared.subscribe();
    let mut waiting: BTreeMap<RunId, String> = BTreeMap::new();
    for name in &names {
        match shared.run_now(name, request.job) {
            Some(run) => {
                waiting.insert(run, name.clone());
            }
            None => {
                return send(
                    &mut write,
                    &Event::Refused {
                        message: "the daemon is stopping".into(),
                    },
                )
                .await;
            }
        }
    }
    tracing::info!(job = ?request.job, personalities = names.join(", "), "run asked for through the control socket");
    send(
        &mut write,
        &Event::Accepted {
            pid: std::process::id(),
            personalities: names,
        },
    )
    .await?;
    while !waiting.is_empty() {
        let finished = match ends.recv().await {
            Ok(f) => f,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        if waiting.remove(&finished.run).is_none() {
            continue;
        }
        let end = &finished.end;
        send(
            &mut write,
            &Event::Finished {
                personality: finished.name.clone(),
                outcome: end.outcome.clone(),
                stdout: end.stdout.clone(),
                stderr: end.stderr.clone(),
            },
        )
        .await?;
    }
    write.shutdown().await
}

/// The personalities a request covers: the named ones, else every
/// configured one and every one the daemon's discovery found (and for
/// `sync --all`, those the account owns).
async fn names(shared: &Arc<Shared>, request: &Request) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for name in &request.names {
        let slug: PersonalitySlug = name.parse().map_err(|e| format!("{e}"))?;
        if !names.contains(&slug.to_string()) {
            names.push(slug.to_string());
        }
    }
    let runtime = shared.runtime();
    if names.is_empty() {
        names = shared.configured_names(&runtime.config, true);
        for found in shared.discovered_names() {
            if !names.contains(&found) {
                names.push(found);
            }
        }
    }
    if request.all && request.job == Job::Sync {
        let owned = runtime
            .client
            .list(Category::Owned, runtime.config.discover.max_personalities)
            .await
            .map_err(|e| format!("cannot list the account's personalities: {e}"))?;
        for slug in owned {
            if slug.parse::<PersonalitySlug>().is_ok() && !names.contains(&slug) {
                names.push(slug);
            }
        }
    }
    if names.is_empty() {
        return Err(format!(
            "no personality: name one, or add a [[personality]] to {}",
            runtime.config.source.display()
        ));
    }
    Ok(names)
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, event: &Event) -> std::io::Result<()> {
    let mut line = serde_json::to_string(event).map_err(std::io::Error::other)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await
}
