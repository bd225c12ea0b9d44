//! The non-chat endpoints, the cookie check, and shutdown.

use serde_json::Value;

use super::super::{DEFAULT_USER_ID, FakeConfig, PersonalitySpec};
use super::{chat_url, client, get, start};

async fn json(fake: &super::FakeService, path: &str) -> (u16, Value) {
    let response = get(fake, path).await;
    let status = response.status().as_u16();
    let body = response.text().await.expect("a whole body");
    (status, serde_json::from_str(&body).expect("a JSON body"))
}

fn two_personalities() -> Vec<PersonalitySpec> {
    let mine = PersonalitySpec::new("lilith", 5);
    let mut theirs = PersonalitySpec::new("other", 5);
    theirs.owner_id = "someone-else".to_owned();
    theirs.memories = 0;
    theirs.knowledge = 0;
    vec![mine, theirs]
}

#[tokio::test]
async fn user_lists_and_profiles() {
    let fake = start(FakeConfig::default(), two_personalities()).await;
    let (status, me) = json(&fake, "/api/users/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], DEFAULT_USER_ID);
    assert_eq!(me["displayName"], "Fake User");

    let (_, mine) = json(&fake, "/api/shapes?category=self").await;
    let (_, recent) = json(&fake, "/api/shapes?category=recent").await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    assert_eq!(recent.as_array().map(Vec::len), Some(2));
    assert_eq!(get(&fake, "/api/shapes").await.status(), 400);

    let (status, profile) = json(&fake, "/api/shapes/username/lilith").await;
    assert_eq!(status, 200);
    assert_eq!(profile["id"], fake.personality_id("lilith").as_str());
    assert_eq!(profile["username"], "lilith");
    assert_eq!(profile["name"], "Lilith");
    assert_eq!(profile["user_id"], DEFAULT_USER_ID);
    assert!(profile["engine"].is_object() && profile["prompt"].is_string());
    assert_eq!(json(&fake, "/api/shapes/username/nobody").await.0, 404);
    assert_eq!(get(&fake, "/api/agents/username/lilith").await.status(), 404);

    let records = fake.requests();
    assert_eq!(records[4].personality.as_deref(), Some("lilith"));
    assert_eq!(records[5].personality, None, "unknown slug");
}

#[tokio::test]
async fn memories_page_from_the_newest() {
    let mut spec = PersonalitySpec::new("lilith", 5);
    spec.memories = 5;
    let fake = start(FakeConfig::default(), vec![spec]).await;
    let id = fake.personality_id("lilith");
    let (status, first) = json(&fake, &format!("/api/memory/{id}?page=1&limit=2")).await;
    assert_eq!(status, 200);
    assert_eq!(first["pagination"]["total_pages"], 3);
    assert_eq!(first["pagination"]["has_next"], true);
    let (_, last) = json(&fake, &format!("/api/memory/{id}?page=3&limit=2")).await;
    assert_eq!(last["pagination"]["has_next"], false);
    assert_eq!(last["items"].as_array().map(Vec::len), Some(1));
    let newest = first["items"][0]["created_at"].as_f64().unwrap();
    let oldest = last["items"][0]["created_at"].as_f64().unwrap();
    assert!(newest > oldest);
    assert_eq!(fake.requests()[0].personality.as_deref(), Some("lilith"));
}

#[tokio::test]
async fn owners_read_knowledge_and_training_others_are_refused() {
    let fake = start(FakeConfig::default(), two_personalities()).await;
    let mine = fake.personality_id("lilith");
    let theirs = fake.personality_id("other");
    let (status, story) = json(&fake, &format!("/api/shapes/{mine}/story")).await;
    assert_eq!((status, story.as_array().map(Vec::len)), (200, Some(2)));
    let (status, training) = json(&fake, &format!("/api/shapes/{mine}/training")).await;
    assert_eq!((status, training.as_array().map(Vec::len)), (200, Some(2)));
    assert_eq!(json(&fake, &format!("/api/shapes/{theirs}/story")).await.0, 403);
    assert_eq!(
        json(&fake, &format!("/api/shapes/{theirs}/training")).await.0,
        403
    );
    assert_eq!(json(&fake, &format!("/api/memory/{theirs}")).await.0, 404);
    let (status, user) = json(&fake, &format!("/api/shapes/{theirs}/user")).await;
    assert_eq!(status, 200);
    assert_eq!(user["pronouns"], "they/them");

    let mut empty = PersonalitySpec::new("empty", 0);
    empty.knowledge = 0;
    empty.training = 0;
    let fake = start(FakeConfig::default(), vec![empty]).await;
    let id = fake.personality_id("empty");
    assert_eq!(json(&fake, &format!("/api/shapes/{id}/story")).await.0, 404);
    assert_eq!(json(&fake, &format!("/api/shapes/{id}/training")).await.0, 404);
    let (status, page) = json(&fake, &chat_url(&fake, "empty", 10, None)).await;
    assert_eq!((status, page), (200, Value::Array(Vec::new())));
}

#[tokio::test]
async fn a_missing_or_wrong_cookie_gets_401() {
    let cookie = (
        "__Secure-better-auth.session_token".to_owned(),
        "tok.en=".to_owned(),
    );
    let config = FakeConfig {
        cookie: Some(cookie.clone()),
        ..FakeConfig::default()
    };
    let fake = start(config, vec![PersonalitySpec::new("a", 3)]).await;
    let url = format!("{}/api/users/me", fake.base_url());
    let with = |value: &str| client().get(&url).header("cookie", value.to_owned()).send();

    assert_eq!(get(&fake, "/api/users/me").await.status(), 401);
    assert_eq!(
        with("__Secure-better-auth.session_token=wrong")
            .await
            .unwrap()
            .status(),
        401
    );
    let good = "_ga=1; __Secure-better-auth.session_token=tok.en=; csrf=x";
    assert_eq!(with(good).await.unwrap().status(), 200);

    // Rotation: the next response announces the new token, then the old one dies.
    fake.rotate_cookie("fresh");
    let announcing = with(good).await.unwrap();
    assert_eq!(announcing.status(), 200);
    let set: Vec<&str> = announcing
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(set.len(), 2);
    assert!(set[0].starts_with("__Secure-better-auth.session_token=fresh; Path=/;"));
    assert_eq!(with(good).await.unwrap().status(), 401);
    let fresh = "__Secure-better-auth.session_token=fresh";
    assert_eq!(with(fresh).await.unwrap().status(), 200);

    // Expiry mid-run.
    fake.set_cookie(Some((cookie.0.clone(), "someone-else".to_owned())));
    assert_eq!(with(fresh).await.unwrap().status(), 401);
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let fake = start(FakeConfig::default(), vec![PersonalitySpec::new("a", 3)]).await;
    let url = format!("{}/api/users/me", fake.base_url());
    assert_eq!(get(&fake, "/api/users/me").await.status(), 200);
    fake.shutdown().await;
    assert!(client().get(&url).send().await.is_err());
}
