//! Injected failures: what a test asks for ([`FaultPlan`]), how the next
//! fault is chosen ([`FaultInjector`]) and the canned answers of the faults
//! that replace a response outright.
//!
//! `Slow`, `Truncated`, `Reset` and `EmptyPage` need the normal answer
//! first; the server applies them around it (see `server.rs`).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The `Retry-After` header of a 429.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    Seconds(u64),
    /// Sent as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    HttpDate(SystemTime),
    /// No header at all.
    None,
}

/// One failure, applied to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429, with or without `Retry-After`.
    RateLimited { retry_after: RetryAfter },
    /// That status (500, 502, 503, 504, ...) with a small HTML or text body.
    ServerError(u16),
    /// A 200 whose headers and first half of body are sent, then the
    /// connection is dropped: the client sees a body or connection error.
    Reset,
    /// A complete 200 whose body is the first half of the real one, with a
    /// `Content-Length` that matches the cut body.
    Truncated,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// 403 with `cf-mitigated: challenge` and an HTML challenge page.
    BotWall,
    /// 200 with `content-type: text/html` and an HTML page.
    Html,
    /// A chat-history answer that is a `200` with body `[]`, as a lagging
    /// replica or cache sends in the middle of a history: exactly what the
    /// start of history looks like. Only a chat request's successful answer
    /// is emptied; an error it would get (401, 400, 404) goes out as is.
    /// Any other request is left alone and not recorded as faulted, but
    /// like every fault it still uses up its place in the script (combine
    /// with `FaultPlan::only_chat` to aim it at chat requests).
    EmptyPage,
    /// A redirect (`status`, such as 302, with `Location: location` and no
    /// body), as a misconfigured proxy or a hostile service might send; the
    /// API itself never redirects.
    Redirect { status: u16, location: String },
}

impl Fault {
    /// Stable short name, as stored in `RequestRecord::fault`.
    pub fn name(&self) -> String {
        match self {
            Fault::RateLimited { .. } => "rate_limited".to_owned(),
            Fault::ServerError(status) => format!("server_error_{status}"),
            Fault::Reset => "reset".to_owned(),
            Fault::Truncated => "truncated".to_owned(),
            Fault::Slow(_) => "slow".to_owned(),
            Fault::BotWall => "bot_wall".to_owned(),
            Fault::Html => "html".to_owned(),
            Fault::EmptyPage => "empty_page".to_owned(),
            Fault::Redirect { status, .. } => format!("redirect_{status}"),
        }
    }

    /// Whether this fault does anything to a request of this kind.
    pub(super) fn applies_to(&self, is_chat: bool) -> bool {
        is_chat || !matches!(self, Fault::EmptyPage)
    }
}

/// Which requests fail, and how. The default injects nothing.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Applied in order to the next requests, one fault each, before any
    /// random fault.
    pub script: Vec<Fault>,
    /// Once the script is used up: the chance that a request gets a fault
    /// drawn uniformly from `random`.
    pub probability: f64,
    pub random: Vec<Fault>,
    /// Faults hit chat-history requests only; other requests neither get a
    /// fault nor use up the script.
    pub only_chat: bool,
}

/// Chooses the fault, if any, for each request from the current plan.
#[derive(Debug)]
pub(super) struct FaultInjector {
    script: VecDeque<Fault>,
    probability: f64,
    random: Vec<Fault>,
    only_chat: bool,
    /// Seeded, so a run with random faults replays identically when the
    /// requests arrive in the same order.
    rng: StdRng,
}

impl FaultInjector {
    pub(super) fn new(seed: u64, plan: FaultPlan) -> Self {
        let mut injector = FaultInjector {
            script: VecDeque::new(),
            probability: 0.0,
            random: Vec::new(),
            only_chat: false,
            rng: StdRng::seed_from_u64(seed ^ 0xfa17),
        };
        injector.replace_plan(plan);
        injector
    }

    /// Installs a new plan; the old script's unused faults are dropped.
    pub(super) fn replace_plan(&mut self, plan: FaultPlan) {
        self.script = plan.script.into();
        self.probability = plan.probability;
        self.random = plan.random;
        self.only_chat = plan.only_chat;
    }

    /// The fault for the request that just arrived.
    pub(super) fn next(&mut self, is_chat: bool) -> Option<Fault> {
        if self.only_chat && !is_chat {
            return None;
        }
        if let Some(fault) = self.script.pop_front() {
            return Some(fault);
        }
        if self.random.is_empty() || self.probability <= 0.0 {
            return None;
        }
        if self.rng.random::<f64>() < self.probability {
            let pick = self.rng.random_range(0..self.random.len());
            return Some(self.random[pick].clone());
        }
        None
    }
}

/// The answer of a fault that replaces the response outright, or `None`
/// for the faults that need the normal answer (`Slow`, `Truncated`,
/// `Reset`, `EmptyPage`).
pub(super) fn canned_response(fault: &Fault) -> Option<Response> {
    let response = match fault {
        Fault::RateLimited { retry_after } => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"error":"Too many requests, slow down"}"#,
            )
                .into_response();
            let value = match retry_after {
                RetryAfter::Seconds(secs) => Some(secs.to_string()),
                RetryAfter::HttpDate(when) => Some(http_date(*when)),
                RetryAfter::None => None,
            };
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Fault::ServerError(code) => server_error(*code),
        Fault::BotWall => (
            StatusCode::FORBIDDEN,
            [
                (header::CONTENT_TYPE, "text/html; charset=UTF-8"),
                (header::HeaderName::from_static("cf-mitigated"), "challenge"),
            ],
            CHALLENGE_PAGE,
        )
            .into_response(),
        Fault::Html => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            MAINTENANCE_PAGE,
        )
            .into_response(),
        Fault::Redirect { status, location } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND);
            let mut response = status.into_response();
            if let Ok(value) = HeaderValue::from_str(location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Fault::Reset | Fault::Truncated | Fault::Slow(_) | Fault::EmptyPage => return None,
    };
    Some(response)
}

/// 5xx answers look like what proxies send: HTML for gateway errors, plain
/// text from the application itself.
fn server_error(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if matches!(code, 502..=504) {
        let reason = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n\
             <center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n\
             </body>\r\n</html>\r\n"
        );
        (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Internal Server Error",
        )
            .into_response()
    }
}

const CHALLENGE_PAGE: &str = "<!DOCTYPE html><html lang=\"en-US\"><head>\
<title>Just a moment...</title></head><body><noscript>Enable JavaScript and \
cookies to continue</noscript><div id=\"challenge-running\">Checking your \
browser before accessing the site.</div></body></html>";

const MAINTENANCE_PAGE: &str = "<!doctype html><html><head><title>We'll be \
right back</title></head><body><h1>Scheduled maintenance</h1><p>Please try \
again in a few minutes.</p></body></html>";

/// Formats a time as an HTTP date (IMF-fixdate, RFC 9110 §5.6.7).
pub fn http_date(when: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Times before 1970 cannot be meant here; send the epoch instead.
    let secs = when.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days);
    let rest = secs % 86_400;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), after Howard
/// Hinnant's `civil_from_days`, for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_match_known_values() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(at(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(at(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(at(1_712_345_678)), "Fri, 05 Apr 2024 19:34:38 GMT");
    }

    #[test]
    fn script_comes_first_then_random_faults() {
        let plan = FaultPlan {
            script: vec![Fault::Reset, Fault::Html],
            probability: 1.0,
            random: vec![Fault::ServerError(503)],
            only_chat: true,
        };
        let mut injector = FaultInjector::new(1, plan);
        assert_eq!(injector.next(false), None, "only_chat spares other requests");
        assert_eq!(injector.next(true), Some(Fault::Reset));
        assert_eq!(injector.next(true), Some(Fault::Html));
        assert_eq!(injector.next(true), Some(Fault::ServerError(503)));
        injector.replace_plan(FaultPlan::default());
        assert_eq!(injector.next(true), None);
    }
}
