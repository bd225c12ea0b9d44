//! What can go wrong talking to the service, typed by what the caller does
//! about it: retry, pause everybody, stop and ask a human, or give up.

use std::time::Duration;

use crate::message::MessageError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The service no longer takes the session: it refused it, or ended
    /// it. Retrying cannot help; a person must paste a new cookie.
    #[error("{}", auth_message(*.failure, *.successful_before))]
    Auth {
        failure: AuthFailure,
        successful_before: u64,
    },
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

/// Why the service no longer takes the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// It answered 401, or 403 without a bot-wall signal.
    Refused { status: u16 },
    /// It cleared the session cookie (`Set-Cookie` with `Max-Age=0` or an
    /// `Expires` in the past): the session is over, whatever the status.
    Ended,
}

/// " after N attempts" once retries were spent; nothing for a single try.
fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

fn auth_message(failure: AuthFailure, successful_before: u64) -> String {
    const REMEDY: &str = "log in with a browser, copy the session cookie again and store it with \
                          `chatkeep cookie set`";
    let when = if successful_before == 0 {
        "on the first request".to_owned()
    } else {
        format!(
            "after {} successful",
            crate::words::count(successful_before, "request")
        )
    };
    match failure {
        AuthFailure::Refused { status } if successful_before == 0 => format!(
            "authentication failed ({status}) {when}: the session cookie is invalid or expired; {REMEDY}"
        ),
        AuthFailure::Refused { status } => format!("the session expired ({status}) {when}; {REMEDY}"),
        AuthFailure::Ended => format!(
            "the service ended the session {when} (it cleared the session cookie), so chatkeep \
             stops sending it; {REMEDY}"
        ),
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
