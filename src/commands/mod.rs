//! The commands behind the CLI. `main.rs` parses arguments and calls these.

pub mod demo;
pub mod export;
pub mod serve_fake;
pub mod status;
pub mod sync;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::api::{ApiClient, ClientOptions, RateLimiter};
use crate::config::{Config, ConfigError};
use crate::credentials;

/// Exit codes, as documented in `--help`.
pub mod exit {
    pub const OK: u8 = 0;
    /// A personality failed; the others were backed up.
    pub const FAILED: u8 = 1;
    /// Usage, config or data directory error: nothing was done.
    pub const USAGE: u8 = 2;
    /// The service refused the session cookie.
    pub const AUTH: u8 = 3;
}

/// An error that ends a command before it does anything, with its exit code.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub message: String,
}

impl Fatal {
    pub fn usage(message: impl std::fmt::Display) -> Fatal {
        Fatal {
            code: exit::USAGE,
            message: message.to_string(),
        }
    }

    pub fn report(&self) -> ExitCode {
        eprintln!("error: {}", self.message);
        ExitCode::from(self.code)
    }
}

impl From<ConfigError> for Fatal {
    fn from(e: ConfigError) -> Self {
        Fatal::usage(e)
    }
}

pub fn load_config(path: &Path) -> Result<Config, Fatal> {
    Ok(Config::load(path)?)
}

/// `check-config`: validates and prints the effective config, secrets redacted.
pub fn check_config(path: &Path) -> Result<ExitCode, Fatal> {
    let config = load_config(path)?;
    print!("{}", config.to_redacted_toml());
    eprintln!(
        "{}: valid, {} personalities",
        path.display(),
        config.personalities.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The client for the configured account: its cookie and the one rate limiter.
pub fn build_client(config: &Config) -> Result<Arc<ApiClient>, Fatal> {
    let service = &config.service;
    let (cookie, origin) = credentials::load(service).map_err(|e| Fatal {
        code: exit::AUTH,
        message: e.to_string(),
    })?;
    tracing::debug!(%origin, name = cookie.name(), "session cookie loaded");
    let limiter = Arc::new(RateLimiter::new(
        config.rate_limit.requests_per_second,
        config.rate_limit.burst,
    ));
    let options = ClientOptions {
        base_url: service.base_url.clone(),
        jargon: service.jargon.clone(),
        cookie,
        extra_cookies: service.extra_cookies.clone(),
        timeout: service.timeout,
        max_retries: service.max_retries,
        initial_backoff: service.initial_backoff,
        max_backoff: service.max_backoff,
        user_agent: service.user_agent.clone(),
    };
    ApiClient::new(options, limiter)
        .map(Arc::new)
        .map_err(Fatal::usage)
}
