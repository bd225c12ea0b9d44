//! The fake over real loopback HTTP, spoken to with reqwest.

mod chat;
mod drift;
mod endpoints;
mod faults;
mod media;
mod scale;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{FakeConfig, FakeService, PersonalitySpec};

async fn start(config: FakeConfig, specs: Vec<PersonalitySpec>) -> FakeService {
    FakeService::start(config, specs)
        .await
        .expect("the fake service starts")
}

/// A client that never reuses a connection a test has broken.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .build()
        .expect("a plain HTTP client builds")
}

async fn get(fake: &FakeService, path_and_query: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path_and_query}", fake.base_url()))
        .send()
        .await
        .expect("the request is answered")
}

/// The URL path and query of one chat page.
fn chat_url(fake: &FakeService, slug: &str, limit: usize, before_ts: Option<&str>) -> String {
    let id = fake.personality_id(slug);
    let mut url = format!("/api/shapes/{id}/chat/history?limit={limit}&shape_id={id}");
    if let Some(ts) = before_ts {
        url.push_str("&before_ts=");
        url.push_str(ts);
    }
    url
}

/// One chat page, each message as the exact JSON text received.
async fn page(fake: &FakeService, slug: &str, limit: usize, before_ts: Option<&str>) -> Vec<String> {
    let response = get(fake, &chat_url(fake, slug, limit, before_ts)).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("a whole body");
    let messages: Vec<Box<RawValue>> = serde_json::from_str(&body).expect("a JSON array");
    messages.into_iter().map(|m| m.get().to_owned()).collect()
}

#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    ts: &'a RawValue,
}

/// A message's id and its ts exactly as written.
fn id_and_ts(message: &str) -> (String, String) {
    let stamp: Stamp<'_> = serde_json::from_str(message).expect("a message with id and ts");
    (stamp.id.into_owned(), stamp.ts.get().to_owned())
}

fn ids(messages: &[String]) -> Vec<String> {
    messages.iter().map(|m| id_and_ts(m).0).collect()
}

fn ts_texts(messages: &[String]) -> Vec<String> {
    messages.iter().map(|m| id_and_ts(m).1).collect()
}
