//! The answers of every endpoint but chat history: user, listings,
//! profiles, memories, knowledge, training and user personalization.
//!
//! Their content is small and generated; what matters for a client is the
//! shape (as in API.md) and the status codes (404 for "none", 403 for
//! "not yours").

use std::collections::HashMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::chat;
use super::generate::{fnv1a, mix, ts_value, uuid_like};
use super::routes::Route;
use super::state::{DocumentKind, MemoryShape, Personality, ServiceState};

/// A finished answer, before faults touch it. The body is kept as text so
/// a `Truncated` or `Reset` fault can cut it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    pub(super) fn json(status: StatusCode, body: String) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body,
        }
    }

    pub(super) fn ok(value: &Value) -> Answer {
        Answer::json(StatusCode::OK, value.to_string())
    }

    /// An error in the `{"error": ...}` shape the fake uses everywhere.
    pub(super) fn error(status: StatusCode, message: &str) -> Answer {
        Answer::json(status, json!({ "error": message }).to_string())
    }

    pub(super) fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response()
    }
}

/// Query parameters, last one wins.
pub(super) type Params = HashMap<String, String>;

/// Answers an authenticated GET. `number` is the request's number, which
/// seeds shuffled pages.
pub(super) fn answer(state: &ServiceState, route: Route<'_>, params: &Params, number: u64) -> Answer {
    // Every route that names a personality answers 404 when it is unknown.
    let personality = match route.personality() {
        None => None,
        Some(key) => match state.find(key) {
            Some(index) => Some(state.personality(index)),
            None => return Answer::error(StatusCode::NOT_FOUND, "No such personality"),
        },
    };
    match (route, personality) {
        (Route::Me, _) => Answer::ok(&json!({ "id": state.user_id, "displayName": state.user_name })),
        (Route::List, _) => list(state, params),
        (Route::Profile { .. }, Some(p)) => Answer::ok(&profile(p)),
        (Route::Memory { .. }, Some(p)) => memories(p, params),
        (Route::Knowledge { .. }, Some(p)) => {
            owned_items(state, p, DocumentKind::Knowledge, p.knowledge, knowledge_item)
        }
        (Route::Training { .. }, Some(p)) => {
            owned_items(state, p, DocumentKind::Training, p.training, training_item)
        }
        (Route::UserSettings { .. }, Some(p)) => {
            replaced(p, DocumentKind::UserPersonalization).unwrap_or_else(|| Answer::ok(&user_settings(p)))
        }
        (Route::ChatHistory { .. }, Some(p)) => chat::history_page(state, p, params, number),
        _ => Answer::error(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// `?category=self` lists the user's own personalities, `recent` all.
fn list(state: &ServiceState, params: &Params) -> Answer {
    let owned_only = match params.get("category").map(String::as_str) {
        Some("self") => true,
        Some("recent") => false,
        _ => return Answer::error(StatusCode::BAD_REQUEST, "category must be self or recent"),
    };
    let profiles: Vec<Value> = state
        .personalities()
        .iter()
        .filter(|p| !owned_only || p.owner_id == state.user_id)
        .map(profile)
        .collect();
    Answer::ok(&Value::Array(profiles))
}

/// A profile: the fields API.md names, plus settings and fields no client
/// knows, as the real one has.
fn profile(p: &Personality) -> Value {
    let mut profile = json!({
        "id": p.id,
        "username": p.slug,
        "name": p.display_name,
        "user_id": p.owner_id,
        "search_description": format!("{} is a personality served by the fake service", p.display_name),
        "prompt": format!("You are {}. Stay in character.\nNever break the fourth wall.", p.display_name),
        "engine": {
            "model": "fake-model-1",
            "temperature": 0.7,
            "max_tokens": 1024,
            "presence_penalty": 0.0,
            "stop": ["\n\nUser:"],
        },
        "x_unreleased": { "enabled": true, "weights": [0.5, 2.5], "tier": null },
        "message_count_hint": p.history.len(),
    });
    if let (Some(url), Some(object)) = (&p.avatar_url, profile.as_object_mut()) {
        object.insert("avatar_url".into(), url.as_str().into());
    }
    profile
}

/// Memories are paged by number, page 1 holding the newest; 404 means none.
fn memories(p: &Personality, params: &Params) -> Answer {
    let page = match number_param(params, "page", 1) {
        Some(page) if page >= 1 => page,
        _ => return Answer::error(StatusCode::BAD_REQUEST, "page must be a positive integer"),
    };
    let limit = match number_param(params, "limit", 20) {
        Some(limit) if limit >= 1 => limit.min(100),
        _ => return Answer::error(StatusCode::BAD_REQUEST, "limit must be a positive integer"),
    };
    let count = p.memory_items.as_ref().map_or(p.memories, Vec::len);
    if count == 0 {
        return Answer::error(StatusCode::NOT_FOUND, "No memories");
    }
    let total_pages = count.div_ceil(limit);
    // Item k is the k-th oldest; page 1 starts at the newest.
    let newest_first = (0..count).rev();
    let items: Vec<Value> = newest_first
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .map(|k| match &p.memory_items {
            Some(list) => list[k].clone(),
            None => memory_item(p, k),
        })
        .collect();
    Answer::ok(&match p.memory_shape {
        MemoryShape::Items => json!({
            "items": items,
            "pagination": { "page": page, "total_pages": total_pages, "has_next": page < total_pages },
        }),
        MemoryShape::MemoriesMeta => json!({
            "memories": items,
            "meta": { "pagination": { "page": page, "total_pages": total_pages } },
        }),
    })
}

/// A document a test replaced: served as given, or 404 for `None`.
fn replaced(p: &Personality, kind: DocumentKind) -> Option<Answer> {
    p.documents.get(&kind).map(|doc| match doc {
        Some(value) => Answer::ok(value),
        None => Answer::error(StatusCode::NOT_FOUND, "Nothing here"),
    })
}

/// A missing parameter takes `default`; an unparsable one gives `None`.
fn number_param(params: &Params, name: &str, default: usize) -> Option<usize> {
    match params.get(name) {
        None => Some(default),
        Some(text) => text.parse().ok(),
    }
}

/// Knowledge and training: owners only (403 otherwise), 404 when empty.
fn owned_items(
    state: &ServiceState,
    p: &Personality,
    kind: DocumentKind,
    count: usize,
    item: fn(&Personality, usize) -> Value,
) -> Answer {
    if p.owner_id != state.user_id {
        return Answer::error(StatusCode::FORBIDDEN, "Only the owner can read this");
    }
    if let Some(answer) = replaced(p, kind) {
        return answer;
    }
    if count == 0 {
        return Answer::error(StatusCode::NOT_FOUND, "Nothing here");
    }
    Answer::ok(&Value::Array((0..count).map(|k| item(p, k)).collect()))
}

/// A stable id for item `k` of a kind (`memory`, `story`, ...).
fn item_id(p: &Personality, kind: &str, k: usize) -> String {
    uuid_like(
        mix(fnv1a(p.id.as_bytes()) ^ fnv1a(kind.as_bytes()) ^ k as u64),
        k as u64,
    )
}

fn memory_item(p: &Personality, k: usize) -> Value {
    json!({
        "id": item_id(p, "memory", k),
        "content": format!("{} remembers fact number {k}.", p.display_name),
        "created_at": ts_value(1_700_000_000_000 + k as u64 * 3_600_000),
        "type": if k.is_multiple_of(2) { "automatic" } else { "manual" },
    })
}

fn knowledge_item(p: &Personality, k: usize) -> Value {
    json!({
        "id": item_id(p, "story", k),
        "title": format!("Lore {k}"),
        "content": format!("Chapter {k} of {}'s story.", p.display_name),
    })
}

fn training_item(p: &Personality, k: usize) -> Value {
    json!({
        "id": item_id(p, "training", k),
        "question": format!("What is rule {k}?"),
        "answer": format!("Rule {k} is to be {}.", p.display_name),
    })
}

fn user_settings(p: &Personality) -> Value {
    json!({
        "backstory": format!("The user met {} long ago.", p.display_name),
        "preferred_name": "Tester",
        "pronouns": "they/them",
        "engine_overrides": { "temperature": 0.9 },
    })
}
