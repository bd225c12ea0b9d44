//! The HTTP side. Every request, known path or not, goes through the same
//! steps in [`handle`]: record it, pick its fault, check the cookie, answer,
//! then note the status and let the history grow.
//!
//! Faults act where a proxy in front of the service would: before the
//! cookie check, so a bot wall or a 429 can hit any request.

use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::conn::AbortSwitch;
use super::endpoints::{self, Answer, Params};
use super::faults::{Fault, canned_response, http_date};
use super::routes::Route;
use super::state::{RequestRecord, ServiceState, SharedState, lock};

/// The fake's axum application: one handler for every path.
pub(super) fn app(shared: SharedState) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What is known of a request once it has been recorded.
#[derive(Debug)]
struct Arrival {
    /// Its position among all requests received.
    number: u64,
    fault: Option<Fault>,
    /// Index of the personality its path names, if known.
    personality: Option<usize>,
    is_chat: bool,
    /// A body queued by `queue_chat_bodies`, sent instead of the answer.
    raw_body: Option<Vec<u8>>,
}

async fn handle(State(shared): State<SharedState>, request: Request) -> Response {
    // A GET's body is of no interest, and the body type is not `Sync`,
    // which the handler's future needs while it holds a reference across
    // the sleep of a `Slow` fault.
    let (request, _body) = request.into_parts();
    let mut arrival = arrive(&shared, &request);
    let raw_body = arrival.raw_body.take();
    let mut response = match (&arrival.fault, raw_body) {
        (None, Some(body)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        (None, None) => respond(&shared, &request, arrival.number).into_response(),
        (Some(fault), _) => match canned_response(fault) {
            Some(response) => response,
            None => wrap_normal_answer(fault, &shared, &request, arrival.number).await,
        },
    };
    finish(&shared, &arrival, &mut response);
    response
}

/// Records the request and picks its fault, in arrival order.
fn arrive(shared: &SharedState, request: &Parts) -> Arrival {
    let mut state = lock(shared);
    let number = state.requests_seen;
    state.requests_seen += 1;
    let path = request.uri.path();
    let route = Route::parse(path, &state.jargon);
    let personality = route.personality().and_then(|key| state.find(key));
    let is_chat = route.is_chat();
    // A fault that does nothing to this kind of request is not one.
    let fault = state
        .faults
        .next(is_chat)
        .filter(|fault| fault.applies_to(is_chat));
    let record = RequestRecord {
        at: Instant::now(),
        path: path.to_owned(),
        query: request.uri.query().unwrap_or_default().to_owned(),
        status: 0,
        personality: personality.map(|index| state.personality(index).slug.clone()),
        is_chat,
        fault: fault.as_ref().map(Fault::name),
        cookie: cookie_header(request),
    };
    if let Some(fault) = &record.fault {
        tracing::debug!(path, fault, "fake service: injecting a fault");
    }
    state.log.push(number, record);
    let raw_body = if is_chat && fault.is_none() {
        state.chat_bodies.pop_front().flatten()
    } else {
        None
    };
    Arrival {
        number,
        fault,
        personality,
        is_chat,
        raw_body,
    }
}

/// Every `Cookie` header of the request, joined as one.
fn cookie_header(request: &Parts) -> Option<String> {
    let values: Vec<&str> = request
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join("; "))
}

/// The answer the service gives when nothing goes wrong in between.
fn respond(shared: &SharedState, request: &Parts, number: u64) -> Answer {
    let state = lock(shared);
    if request.method != Method::GET {
        return Answer::error(StatusCode::METHOD_NOT_ALLOWED, "Only GET is served");
    }
    let cookies = request
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    if !state.cookie_accepted(cookies) {
        return Answer::error(StatusCode::UNAUTHORIZED, "Not authenticated");
    }
    let Ok(Query(params)) = Query::<Params>::try_from_uri(&request.uri) else {
        return Answer::error(StatusCode::BAD_REQUEST, "Malformed query string");
    };
    let route = Route::parse(request.uri.path(), &state.jargon);
    endpoints::answer(&state, route, &params, number)
}

/// The faults that damage the normal answer rather than replace it.
async fn wrap_normal_answer(fault: &Fault, shared: &SharedState, request: &Parts, number: u64) -> Response {
    match fault {
        Fault::Slow(delay) => {
            tokio::time::sleep(*delay).await;
            respond(shared, request, number).into_response()
        }
        Fault::Truncated => {
            let answer = respond(shared, request, number);
            let mut body = answer.body.into_bytes();
            body.truncate(body.len() / 2);
            let content_type = answer.content_type;
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Fault::EmptyPage => {
            let mut answer = respond(shared, request, number);
            if answer.status == StatusCode::OK {
                answer.body = "[]".to_owned();
            }
            answer.into_response()
        }
        Fault::Reset => {
            let mut answer = respond(shared, request, number);
            answer.status = StatusCode::OK;
            match request.extensions.get::<ConnectInfo<AbortSwitch>>() {
                Some(ConnectInfo(switch)) => switch.arm(answer.body.len() / 2),
                None => tracing::warn!("fake service: no abort switch; Reset sent whole"),
            }
            answer.into_response()
        }
        // Canned faults never get here; answering normally is harmless.
        _ => respond(shared, request, number).into_response(),
    }
}

/// Notes the status, grows the history if a growth is due, announces a
/// rotated cookie, and adds the `Set-Cookie` headers a test queued.
fn finish(shared: &SharedState, arrival: &Arrival, response: &mut Response) {
    let mut state = lock(shared);
    state.log.set_status(arrival.number, response.status().as_u16());
    if arrival.is_chat
        && let Some(index) = arrival.personality
    {
        let p = state.personality_mut(index);
        if let Some(growth) = p.growth.as_mut() {
            growth.seen += 1;
            if growth.seen % growth.every == 0 {
                p.history.append_generated(growth.k);
            }
        }
    }
    announce_rotated_cookie(&mut state, response);
    for cookie in std::mem::take(&mut state.pending_set_cookies) {
        match HeaderValue::from_str(&cookie) {
            Ok(value) => {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Err(_) => tracing::warn!("fake service: a Set-Cookie a header cannot carry was not sent"),
        }
    }
}

/// Sends a pending new token in `Set-Cookie`, next to an unrelated cookie a
/// client must ignore; from now on only the new token is accepted.
fn announce_rotated_cookie(state: &mut ServiceState, response: &mut Response) {
    let Some(token) = state.pending_token.take() else {
        return;
    };
    let Some((name, current)) = state.cookie.as_mut() else {
        return;
    };
    *current = token;
    let expires = http_date(SystemTime::now() + Duration::from_secs(7 * 86_400));
    let session = format!("{name}={current}; Path=/; Expires={expires}; HttpOnly; Secure; SameSite=Lax");
    let other = "_fake_analytics=GA1.2.3456; Path=/; Max-Age=31536000";
    for cookie in [session.as_str(), other] {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}
