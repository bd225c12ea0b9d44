//! The chat-history endpoint: a page is the contiguous window of the last
//! `limit` messages before `before_ts`, found by binary search, then put in
//! the configured order and written as a bare JSON array.

use axum::http::StatusCode;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::config::PageOrder;
use super::endpoints::{Answer, Params};
use super::generate::mix;
use super::state::{Personality, ServiceState};

/// What a chat request asked for, once validated.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PageRequest {
    /// Already capped to the server's largest page.
    limit: usize,
    before_ts: Option<f64>,
}

/// Answers `/api/{jargon}/{id}/chat/history`.
pub(super) fn history_page(state: &ServiceState, p: &Personality, params: &Params, number: u64) -> Answer {
    let request = match parse(params, p, state) {
        Ok(request) => request,
        Err(message) => return Answer::error(StatusCode::BAD_REQUEST, &message),
    };
    let window = p
        .history
        .page_range(request.before_ts, state.before_ts, request.limit);
    let mut indices: Vec<usize> = window.collect();
    match state.order {
        PageOrder::OldestFirst => {}
        PageOrder::NewestFirst => indices.reverse(),
        PageOrder::Shuffled => {
            indices.shuffle(&mut StdRng::seed_from_u64(mix(state.seed ^ mix(number))));
        }
    }
    let mut body = String::from("[");
    for (n, &index) in indices.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        p.history.write_message(index, &mut body);
    }
    body.push(']');
    Answer::json(StatusCode::OK, body)
}

/// Validates the query: `limit` is required and positive (and not above
/// `reject_limit_above`, when set), `shape_id` must be this personality's
/// id (a client that sends another is buggy), and `before_ts`, when
/// present, must be a finite number.
fn parse(params: &Params, p: &Personality, state: &ServiceState) -> Result<PageRequest, String> {
    let limit = match params.get("limit").map(|text| text.parse::<usize>()) {
        Some(Ok(limit)) if limit >= 1 => limit,
        _ => return Err("limit must be a positive integer".to_owned()),
    };
    if let Some(most) = state.reject_limit_above
        && limit > most
    {
        return Err(format!("limit must be at most {most}"));
    }
    let limit = limit.min(state.max_limit);
    if params.get("shape_id") != Some(&p.id) {
        return Err("shape_id must be the personality's id".to_owned());
    }
    let before_ts = match params.get("before_ts").map(|text| text.parse::<f64>()) {
        None => None,
        Some(Ok(ts)) if ts.is_finite() => Some(ts),
        Some(_) => return Err("before_ts must be a number".to_owned()),
    };
    Ok(PageRequest { limit, before_ts })
}
