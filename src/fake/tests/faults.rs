//! Each fault as a client sees it, and how faults are recorded.

use std::time::{Duration, Instant, UNIX_EPOCH};

use super::super::{FakeConfig, FakeService, Fault, FaultPlan, PersonalitySpec, RetryAfter};
use super::{chat_url, get, page, start};

async fn fake_with_script(script: Vec<Fault>) -> FakeService {
    let config = FakeConfig {
        faults: FaultPlan {
            script,
            ..FaultPlan::default()
        },
        ..FakeConfig::default()
    };
    start(config, vec![PersonalitySpec::new("a", 100)]).await
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn rate_limits_carry_retry_after_in_each_form() {
    let date = UNIX_EPOCH + Duration::from_secs(1_712_345_678);
    let fake = fake_with_script(vec![
        Fault::RateLimited {
            retry_after: RetryAfter::Seconds(7),
        },
        Fault::RateLimited {
            retry_after: RetryAfter::HttpDate(date),
        },
        Fault::RateLimited {
            retry_after: RetryAfter::None,
        },
    ])
    .await;
    let first = get(&fake, "/api/users/me").await;
    assert_eq!(first.status(), 429);
    assert_eq!(header(&first, "retry-after"), Some("7"));
    let second = get(&fake, "/api/users/me").await;
    assert_eq!(
        header(&second, "retry-after"),
        Some("Fri, 05 Apr 2024 19:34:38 GMT")
    );
    let third = get(&fake, "/api/users/me").await;
    assert_eq!(third.status(), 429);
    assert_eq!(header(&third, "retry-after"), None);
    assert_eq!(get(&fake, "/api/users/me").await.status(), 200, "script used up");
}

#[tokio::test]
async fn server_errors_bot_walls_and_html_answer_as_a_proxy_would() {
    let fake = fake_with_script(vec![
        Fault::ServerError(503),
        Fault::ServerError(500),
        Fault::BotWall,
        Fault::Html,
    ])
    .await;
    let unavailable = get(&fake, "/api/users/me").await;
    assert_eq!(unavailable.status(), 503);
    assert!(
        unavailable
            .text()
            .await
            .unwrap()
            .contains("503 Service Unavailable")
    );
    assert_eq!(get(&fake, "/api/users/me").await.status(), 500);

    let wall = get(&fake, "/api/users/me").await;
    assert_eq!(wall.status(), 403);
    assert_eq!(header(&wall, "cf-mitigated"), Some("challenge"));
    assert!(wall.text().await.unwrap().contains("Just a moment"));

    let html = get(&fake, "/api/users/me").await;
    assert_eq!(html.status(), 200);
    assert!(header(&html, "content-type").unwrap().starts_with("text/html"));
    assert!(serde_json::from_str::<serde_json::Value>(&html.text().await.unwrap()).is_err());
}

#[tokio::test]
async fn reset_starts_a_200_then_breaks_the_body() {
    let fake = fake_with_script(vec![Fault::Reset]).await;
    let url = format!("{}{}", fake.base_url(), chat_url(&fake, "a", 50, None));
    let client = reqwest::Client::new();
    let response = client.get(&url).send().await.expect("headers arrive");
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body is cut off");
    // The same client recovers on a fresh connection.
    let again = client.get(&url).send().await.expect("answered");
    assert!(again.bytes().await.expect("whole body").len() > 1000);
    let faults: Vec<_> = fake.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(faults, [Some("reset".to_owned()), None]);
}

#[tokio::test]
async fn truncated_is_a_complete_response_with_half_a_body() {
    let fake = fake_with_script(Vec::new()).await;
    let whole_len = page(&fake, "a", 50, None).await.join(",").len() + 2;
    fake.set_faults(FaultPlan {
        script: vec![Fault::Truncated],
        ..FaultPlan::default()
    });
    let response = get(&fake, &chat_url(&fake, "a", 50, None)).await;
    assert_eq!(response.status(), 200);
    let length = header(&response, "content-length").map(str::to_owned);
    let body = response.bytes().await.expect("a complete body");
    assert_eq!(body.len(), whole_len / 2);
    assert_eq!(length, Some(body.len().to_string()));
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
}

#[tokio::test]
async fn slow_answers_late_but_whole() {
    let fake = fake_with_script(vec![Fault::Slow(Duration::from_millis(300))]).await;
    let started = Instant::now();
    let response = get(&fake, "/api/users/me").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status(), 200);
    let record = &fake.requests()[0];
    assert_eq!(record.fault.as_deref(), Some("slow"));
    assert_eq!(record.status, 200);
}

#[tokio::test]
async fn only_chat_spares_other_requests_and_random_faults_follow_the_script() {
    let config = FakeConfig {
        faults: FaultPlan {
            script: vec![Fault::ServerError(502)],
            probability: 1.0,
            random: vec![Fault::ServerError(504)],
            only_chat: true,
        },
        ..FakeConfig::default()
    };
    let fake = start(config, vec![PersonalitySpec::new("a", 10)]).await;
    assert_eq!(get(&fake, "/api/users/me").await.status(), 200);
    let chat = chat_url(&fake, "a", 5, None);
    assert_eq!(get(&fake, &chat).await.status(), 502);
    assert_eq!(get(&fake, &chat).await.status(), 504);
    fake.set_faults(FaultPlan::default());
    assert_eq!(get(&fake, &chat).await.status(), 200);

    let records = fake.requests();
    let seen: Vec<(u16, Option<&str>)> = records.iter().map(|r| (r.status, r.fault.as_deref())).collect();
    assert_eq!(
        seen,
        [
            (200, None),
            (502, Some("server_error_502")),
            (504, Some("server_error_504")),
            (200, None)
        ]
    );
    assert_eq!(fake.chat_requests("a"), 3);
    fake.clear_requests();
    assert!(fake.requests().is_empty());
    assert_eq!(fake.chat_requests("a"), 0);
}

#[tokio::test]
async fn empty_page_answers_chat_with_an_empty_array_and_spares_the_rest() {
    let fake = fake_with_script(vec![Fault::EmptyPage, Fault::EmptyPage, Fault::EmptyPage]).await;
    let profile = get(&fake, "/api/shapes/username/a").await;
    assert_eq!(profile.status(), 200);
    let profile: serde_json::Value =
        serde_json::from_str(&profile.text().await.expect("a body")).expect("a JSON profile");
    assert_eq!(profile["username"], "a", "a profile request is left alone");

    let empty = get(&fake, &chat_url(&fake, "a", 50, None)).await;
    assert_eq!(empty.status(), 200);
    assert_eq!(header(&empty, "content-type"), Some("application/json"));
    assert_eq!(empty.text().await.expect("a body"), "[]");

    // An error answer is not turned into an empty page.
    let bad = get(&fake, &chat_url(&fake, "a", 0, None)).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(page(&fake, "a", 50, None).await.len(), 50, "script used up");

    let faults: Vec<_> = fake.requests().into_iter().map(|r| r.fault).collect();
    let empty_page = Some("empty_page".to_owned());
    assert_eq!(faults, [None, empty_page.clone(), empty_page, None]);

    // Drawn at random, too.
    fake.set_faults(FaultPlan {
        probability: 1.0,
        random: vec![Fault::EmptyPage],
        ..FaultPlan::default()
    });
    // In the middle of the history: indistinguishable from its start.
    assert!(page(&fake, "a", 10, Some("1700003000.0")).await.is_empty());
    assert_eq!(get(&fake, "/api/users/me").await.status(), 200);
    assert_eq!(fake.requests().last().and_then(|r| r.fault.clone()), None);
}

#[tokio::test]
async fn a_redirect_fault_answers_with_its_status_and_location_only() {
    let fake = fake_with_script(vec![Fault::Redirect {
        status: 302,
        location: "http://127.0.0.1:9/elsewhere".to_owned(),
    }])
    .await;
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client builds");
    let url = format!("{}/api/users/me", fake.base_url());
    let response = no_follow.get(&url).send().await.expect("answered");
    assert_eq!(response.status(), 302);
    assert_eq!(
        header(&response, "location"),
        Some("http://127.0.0.1:9/elsewhere")
    );
    assert_eq!(fake.requests()[0].fault.as_deref(), Some("redirect_302"));
    assert_eq!(
        no_follow.get(&url).send().await.unwrap().status(),
        200,
        "script used up"
    );
}

#[tokio::test]
async fn queued_set_cookie_headers_go_out_verbatim_on_the_next_response_only() {
    let fake = fake_with_script(vec![Fault::ServerError(500)]).await;
    fake.set_cookie_header("appSession=deleted; Max-Age=0");
    fake.set_cookie_header("appSession=x; Domain=evil.example");
    let set_cookies = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    };
    let first = get(&fake, "/api/users/me").await;
    assert_eq!(first.status(), 500, "faulted answers carry them too");
    assert_eq!(
        set_cookies(&first),
        [
            "appSession=deleted; Max-Age=0",
            "appSession=x; Domain=evil.example"
        ]
    );
    let second = get(&fake, "/api/users/me").await;
    assert_eq!(second.status(), 200);
    assert!(set_cookies(&second).is_empty());
}
