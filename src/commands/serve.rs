//! `chatkeep serve [--listen ADDR] [--token-file FILE]`: the read-only web
//! view of the backup (see [`crate::web`]), until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Fatal;
use crate::config::{Config, ConfigLocation};
use crate::web::{self, MIN_TOKEN_LEN, WebState};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on. A non-loopback address needs --token-file.
    #[arg(long, value_name = "ADDR:PORT", default_value = web::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// A file holding a secret (at least 16 characters) that every request must
    /// give: as `Authorization: Bearer <secret>`, or once in the login form,
    /// which sets a cookie. Needed to listen beyond loopback.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Reads the token from `path`: one line, long enough, not readable by
/// others.
pub fn read_token(path: &Path) -> Result<String, Fatal> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fatal::usage(format!("cannot read the token file {}: {e}", path.display())))?;
    let token = text.trim().to_owned();
    if token.chars().count() < MIN_TOKEN_LEN || token.contains(char::is_whitespace) {
        return Err(Fatal::usage(format!(
            "the token file {} must hold one secret of at least {MIN_TOKEN_LEN} characters without spaces \
             (`head -c 24 /dev/urandom | base64 > {}` makes one)",
            path.display(),
            path.display()
        )));
    }
    if let Ok(meta) = std::fs::metadata(path)
        && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the token file can be read by other users; `chmod 600` it"
        );
    }
    Ok(token)
}

/// Checks the address, reads the token and binds: what `serve` and the
/// daemon's `[serve]` do before they serve.
pub async fn bind(
    location: &ConfigLocation,
    config: Config,
    listen: SocketAddr,
    token_file: Option<&Path>,
) -> Result<(tokio::net::TcpListener, Arc<WebState>), Fatal> {
    let token = token_file.map(read_token).transpose()?;
    web::check_listen(listen, token.is_some()).map_err(Fatal::usage)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Fatal::usage(format!("cannot listen on {listen} for the web view: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Fatal::usage(format!("cannot listen on {listen} for the web view: {e}")))?;
    let state = Arc::new(WebState::new(location.clone(), config, addr, token.as_deref()));
    Ok((listener, state))
}

pub async fn run(location: &ConfigLocation, config: Config, args: Args) -> Result<ExitCode, Fatal> {
    let (listener, state) = bind(location, config, args.listen, args.token_file.as_deref()).await?;
    let addr = state.listen;
    // The first line of standard output says where, for a script (or a
    // test) that asked for port 0.
    println!("serving the backup read-only on http://{addr}/ (Ctrl-C stops)");
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Fatal::usage(e.to_string()))?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stop.cancel();
    });
    web::serve(listener, state, cancel)
        .await
        .map_err(|e| Fatal::usage(format!("serving on {addr}: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
