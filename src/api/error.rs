//! What can go wrong talking to the service, typed by what the caller does
//! about it: retry, pause everybody, stop and ask a human, or give up.

use std::time::Duration;

use crate::message::MessageError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 401, or 403 without a bot-wall signal. Retrying cannot help.
    #[error("{}", auth_message(*.status, *.successful_before))]
    Auth { status: u16, successful_before: u64 },
    /// A bot-protection wall answered instead of the API.
    #[error(
        "blocked by a bot wall ({signal}); this is not a cookie problem: wait some hours before trying again, and keep the request rate low"
    )]
    BotWall { status: u16, signal: String },
    /// 429 that outlasted the retries.
    #[error(
        "rate limited by the service (429){}; lower [rate_limit] requests_per_second",
        after(*.attempts)
    )]
    RateLimited {
        attempts: u32,
        retry_after: Option<Duration>,
    },
    #[error("server error {status}{}", after(*.attempts))]
    Server { status: u16, attempts: u32 },
    #[error("network error{}: {message}", after(*.attempts))]
    Network { message: String, attempts: u32 },
    /// A 200 whose body is not the JSON expected (truncated, proxy page).
    #[error("unusable answer{}: {message}", after(*.attempts))]
    BadBody { message: String, attempts: u32 },
    #[error("not found (404): {what}")]
    NotFound { what: String },
    /// Well-formed JSON that breaks the API's contract; never stored.
    #[error("the service's answer breaks the API contract: {0}")]
    Contract(String),
    #[error("unexpected HTTP status {status}")]
    Status { status: u16 },
}

/// " after N attempts" once retries were spent; nothing for a single try.
fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

fn auth_message(status: u16, successful_before: u64) -> String {
    if successful_before == 0 {
        format!(
            "authentication failed ({status}) on the first request: the session cookie is invalid or expired; \
             log in with a browser, copy the session cookie again and store it with `chatkeep cookie set`"
        )
    } else {
        format!(
            "the session expired ({status}) after {successful_before} successful requests; \
             log in with a browser, copy the session cookie again and store it with `chatkeep cookie set`"
        )
    }
}

impl ApiError {
    /// Worth another attempt after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Server { .. }
                | ApiError::Network { .. }
                | ApiError::BadBody { .. }
                | ApiError::RateLimited { .. }
        )
    }

    /// A short machine-readable kind, for status files and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Auth { .. } => "auth",
            ApiError::BotWall { .. } => "bot_wall",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Server { .. } => "server",
            ApiError::Network { .. } => "network",
            ApiError::BadBody { .. } => "bad_body",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Contract(_) => "contract",
            ApiError::Status { .. } => "status",
        }
    }

    pub(crate) fn with_attempts(mut self, n: u32) -> ApiError {
        match &mut self {
            ApiError::RateLimited { attempts, .. }
            | ApiError::Server { attempts, .. }
            | ApiError::Network { attempts, .. }
            | ApiError::BadBody { attempts, .. } => *attempts = n,
            _ => {}
        }
        self
    }
}

impl From<MessageError> for ApiError {
    fn from(e: MessageError) -> Self {
        ApiError::Contract(e.to_string())
    }
}
