//! The media host: what it serves, how it fails, what it records.

use super::{client, page, start};
use crate::fake::{FakeConfig, FakeMediaConfig, MediaFault, PersonalitySpec};

fn with_media() -> FakeConfig {
    FakeConfig {
        media: Some(FakeMediaConfig::default()),
        ..FakeConfig::default()
    }
}

#[tokio::test]
async fn messages_and_profiles_point_at_the_media_host_and_urls_are_shared() {
    let fake = start(
        with_media(),
        vec![PersonalitySpec::new("a", 48), PersonalitySpec::new("b", 48)],
    )
    .await;
    let base = fake.media().base_url();
    let mut urls = Vec::new();
    for slug in ["a", "b"] {
        for text in page(&fake, slug, 48, None).await {
            let message: serde_json::Value = serde_json::from_str(&text).unwrap();
            for field in ["attachment_url", "voice_reply_url"] {
                if let Some(url) = message[field].as_str() {
                    assert!(url.starts_with(&base), "{url}");
                    urls.push(url.to_owned());
                }
            }
        }
    }
    let mut distinct = urls.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() < urls.len() / 2,
        "{} of {}",
        distinct.len(),
        urls.len()
    );
    let profile = client()
        .get(format!("{}/api/shapes/username/a", fake.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let profile: serde_json::Value = serde_json::from_str(&profile).unwrap();
    assert!(profile["avatar_url"].as_str().unwrap().starts_with(&base));
}

#[tokio::test]
async fn without_media_messages_keep_null_urls_and_profiles_have_no_avatar() {
    let fake = start(FakeConfig::default(), vec![PersonalitySpec::new("a", 12)]).await;
    for text in page(&fake, "a", 12, None).await {
        assert!(
            text.contains("\"attachment_url\":null,\"attachment_type\":null"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn files_are_served_whole_and_faults_as_configured_and_cookies_are_recorded() {
    let fake = start(with_media(), vec![]).await;
    let media = fake.media();
    let response = client()
        .get(media.url("/img/sunrise.png"))
        .header("cookie", "x=y")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        response.bytes().await.unwrap().to_vec(),
        media.body_of("/img/sunrise.png")
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, status) in [
        ("/img/missing.png", 404),
        ("/voice/expired.ogg", 410),
        ("/img/moved.png", 302),
        ("/img/away.png", 302),
    ] {
        let response = no_redirects.get(media.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
    }
    let away = no_redirects.get(media.url("/img/away.png")).send().await.unwrap();
    assert!(
        away.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&media.away_url())
    );
    // A body shorter than its Content-Length is an error for the client.
    assert!(
        client()
            .get(media.url("/voice/short.ogg"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .is_err()
    );
    media.set_fault("/voice/short.ogg", None);
    let whole = client()
        .get(media.url("/voice/short.ogg"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(whole.to_vec(), media.body_of("/voice/short.ogg"));
    media.set_fault("/img/cat.jpg", Some(MediaFault::Gone));
    assert_eq!(
        client()
            .get(media.url("/img/cat.jpg"))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    let huge = client().get(media.url("/img/huge.png")).send().await.unwrap();
    assert!(huge.content_length().is_none());
    assert_eq!(
        huge.bytes().await.unwrap().len(),
        FakeMediaConfig::default().huge_size
    );
    let requests = media.requests();
    assert_eq!(requests[0].cookie.as_deref(), Some("x=y"));
    assert!(requests[1..].iter().all(|r| r.cookie.is_none()));
    assert!(requests[0].query.starts_with("sig="));
}

#[tokio::test]
async fn with_distinct_files_every_link_is_its_own_file_of_the_configured_size() {
    let fake = start(
        FakeConfig {
            media: Some(FakeMediaConfig {
                distinct_files: true,
                file_size: Some(10_000),
                ..FakeMediaConfig::default()
            }),
            ..FakeConfig::default()
        },
        vec![PersonalitySpec::new("a", 120), PersonalitySpec::new("b", 120)],
    )
    .await;
    let mut urls = Vec::new();
    for slug in ["a", "b"] {
        for text in page(&fake, slug, 120, None).await {
            let message: serde_json::Value = serde_json::from_str(&text).unwrap();
            for field in ["attachment_url", "voice_reply_url"] {
                if let Some(url) = message[field].as_str() {
                    urls.push(url.to_owned());
                }
            }
        }
    }
    // Per 12 messages: 4 images and 3 voice replies, none shared.
    assert_eq!(urls.len(), 2 * 70);
    let mut distinct = urls.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), urls.len());
    let body = client()
        .get(&urls[0])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 10_000);
    let path = reqwest::Url::parse(&urls[0]).unwrap().path().to_owned();
    assert_eq!(body.to_vec(), fake.media().body_of(&path));
}
