//! `chatkeep serve`: the read-only web view, as the real binary serves it
//! over loopback and a real headless Chromium shows it (see
//! `common/browser.rs`). Each page's screenshot is kept as a test artifact
//! under `target/test-artifacts/web/`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use chatkeep::fake::{FakeService, PersonalitySpec};
use common::browser;
use common::*;

const NAME: &str = "aria";

/// A message whose texts carry markup that would run if it were not
/// escaped: a script that retitles the page, and an image whose error
/// handler marks the body.
const HOSTILE_USER: &str = "<script>document.title='PWNED'</script>look at this";
const HOSTILE_REPLY: &str = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\"> done";

/// `chatkeep serve` running; killed on drop.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config: &Path, extra: &[&str]) -> Served {
    let mut child = chatkeep(config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("serve said {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    Served { child, url }
}

/// A synced backup of NAME: 300 generated messages, then the hostile one.
async fn backup() -> (FakeService, tempfile::TempDir, std::path::PathBuf) {
    let fake = fake(Default::default(), vec![PersonalitySpec::new(NAME, 300)]).await;
    let newest = fake
        .ground_truth(NAME)
        .last()
        .map(|m| chatkeep::message::Message::stored_keys(m).unwrap().1.as_f64())
        .unwrap();
    let hostile = serde_json::json!({
        "id": "hostile-1",
        "ts": newest + 60.0,
        "message": HOSTILE_USER,
        "reply": HOSTILE_REPLY,
    });
    fake.push_raw_message(NAME, &hostile.to_string());
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &fake.base_url(), &[NAME], 10_000.0, "");
    assert!(pass(&load(&path)).await.all_ok());
    (fake, dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_each_personality_and_health_and_metrics_answer_for_monitoring() {
    let (_fake, _dir, config) = backup().await;
    let served = serve(&config, &[]);
    let dom = browser::dom(&format!("{}/", served.url));
    assert!(dom.contains("All backups are healthy."), "{dom}");
    assert!(dom.contains("<a href=\"/p/aria\">aria</a>"), "{dom}");
    assert!(dom.contains("<td>301</td>"), "the message count: {dom}");
    browser::screenshot(&format!("{}/", served.url), "overview");

    let health = reqwest::get(format!("{}/health", served.url)).await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", served.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("chatkeep_messages{personality=\"aria\"} 301"),
        "{metrics}"
    );
    // A personality whose last sync failed makes /health 503, naming it.
    let status = Path::new(&config)
        .parent()
        .unwrap()
        .join("data")
        .join(NAME)
        .join("status.json");
    let text = std::fs::read_to_string(&status).unwrap();
    assert!(text.contains("\"outcome\": \"ok\""), "{text}");
    std::fs::write(
        &status,
        text.replacen("\"outcome\": \"ok\"", "\"outcome\": \"failed\"", 1),
    )
    .unwrap();
    let health = reqwest::get(format!("{}/health", served.url)).await.unwrap();
    assert_eq!(health.status(), 503);
    assert!(health.text().await.unwrap().contains("aria"));
    let dom = browser::dom(&format!("{}/", served.url));
    assert!(dom.contains("Some backups need attention."), "{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_carrying_script_and_onerror_markup_is_shown_as_text_and_nothing_runs() {
    let (_fake, _dir, config) = backup().await;
    let served = serve(&config, &[]);
    let url = format!("{}/p/{NAME}/chat", served.url);
    let dom = browser::dom(&url);
    browser::screenshot(&url, "transcript-newest");
    // The text is there, as text.
    assert!(
        dom.contains("&lt;script&gt;document.title='PWNED'&lt;/script&gt;look at this"),
        "{dom}"
    );
    assert!(dom.contains("&lt;img src=x onerror="), "{dom}");
    // Nothing of it became an element, nothing ran.
    assert!(!dom.contains("<img"), "{dom}");
    assert!(
        !dom.contains("data-pwned=\"1\""),
        "the onerror handler ran: {dom}"
    );
    assert!(!dom.contains("<title>PWNED"), "{dom}");
    assert_eq!(dom.matches("<script").count(), 0, "{dom}");
    // And the policy would stop a script even so.
    let response = reqwest::get(&url).await.unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_pages_through_the_whole_history_and_jumps_to_a_date() {
    let (fake, _dir, config) = backup().await;
    let served = serve(&config, &[]);
    // From the newest page back to the beginning by the "Older" links:
    // every message once, in order.
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some(format!("/p/{NAME}/chat"));
    let mut pages = 0;
    while let Some(path) = next {
        let dom = browser::dom(&format!("{}{}", served.url, path.replace("&amp;", "&")));
        let ids: Vec<String> = dom
            .split("<article class=\"message")
            .skip(1)
            .filter_map(|a| a.split("id=\"m-").nth(1))
            .filter_map(|a| a.split('"').next())
            .map(str::to_owned)
            .collect();
        assert!(ids.len() <= 50, "{} on one page", ids.len());
        seen.splice(0..0, ids);
        next = dom
            .split("<a rel=\"prev\" href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(str::to_owned);
        pages += 1;
        assert!(pages < 20, "the Older links go round");
    }
    let truth: Vec<String> = fake
        .ground_truth(NAME)
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(m).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(seen, truth, "the pages, oldest to newest");

    // A jump to a date shows the messages from that day on.
    let day_ts = chatkeep::message::Message::stored_keys(&fake.ground_truth(NAME)[150])
        .unwrap()
        .1
        .as_f64();
    let day = chrono::DateTime::from_timestamp(day_ts as i64, 0)
        .unwrap()
        .date_naive();
    let url = format!("{}/p/{NAME}/chat?date={day}", served.url);
    let dom = browser::dom(&url);
    browser::screenshot(&url, "transcript-date");
    let first = dom
        .split("<time datetime=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no message on the page: {dom}"));
    assert!(
        first.starts_with(&day.to_string()) || first > day.to_string().as_str(),
        "{first} vs {day}"
    );
    assert!(dom.contains("rel=\"next\""), "{dom}");
    // The personality page with its chart and documents.
    let url = format!("{}/p/{NAME}", served.url);
    let dom = browser::dom(&url);
    browser::screenshot(&url, "personality");
    assert!(dom.contains("<svg class=\"activity\""), "{dom}");
    assert!(dom.contains("href=\"/p/aria/profile\""), "{dom}");
    let dom = browser::dom(&format!("{}/p/{NAME}/profile", served.url));
    assert!(dom.contains("<dt>name</dt>"), "{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_a_token_is_required_and_requests_without_it_get_401_and_nothing() {
    let (_fake, dir, config) = backup().await;
    // No token: refused before listening.
    let out = chatkeep(&config)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without a token"),
        "{}",
        text(&out)
    );

    let token = "s3cret-web-token-0123456789";
    let token_file = dir.path().join("web-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let served = serve(&config, &["--token-file", token_file.to_str().unwrap()]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/",
        "/p/aria",
        "/p/aria/chat",
        "/p/aria/profile",
        "/health",
        "/metrics",
    ] {
        let response = client.get(format!("{}{path}", served.url)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("/p/aria") && !body.contains("look at this") && !body.contains("301"),
            "{path}: {body}"
        );
        let wrong = client
            .get(format!("{}{path}", served.url))
            .bearer_auth("not-the-token-at-all")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let right = client
            .get(format!("{}{path}", served.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200, "{path}");
    }
    // The login form sets a cookie that stands for the token, not the token.
    let response = client
        .post(format!("{}/login", served.url))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && !cookie.contains(token), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let response = client
        .get(format!("{}/p/aria", served.url))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Without a token, a request naming another host (DNS rebinding) is
    // refused.
    let open = serve(&config, &[]);
    let response = client
        .get(format!("{}/", open.url))
        .header("host", "attacker.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_the_web_view_its_serve_table_asks_for_and_stops_with_it() {
    let (_fake, _dir, config) = backup().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!("\n[serve]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(&config, toml).unwrap();
    let mut daemon = chatkeep(&config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let start = std::time::Instant::now();
    let status = loop {
        match reqwest::get(format!("{url}/health")).await {
            Ok(response) => break response.status(),
            Err(_) if start.elapsed() < std::time::Duration::from_secs(30) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the daemon's web view never answered: {e}"),
        }
    };
    assert_eq!(status, 200);
    let dom = browser::dom(&format!("{url}/"));
    assert!(dom.contains("The daemon runs"), "{dom}");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(daemon.wait().unwrap().success());
    assert!(
        reqwest::get(format!("{url}/health")).await.is_err(),
        "still served after the daemon stopped"
    );

    // A [serve] beyond loopback without a token is a config error, placed.
    let toml = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("127.0.0.1:{port}"), "0.0.0.0:8767");
    std::fs::write(&config, &toml).unwrap();
    let line = toml.lines().position(|l| l.contains("0.0.0.0:8767")).unwrap() + 1;
    let out = chatkeep(&config).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("config.toml:{line}:10: refusing")) && said.contains("token_file"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_leads_to_the_message_in_its_place_in_the_transcript() {
    let (fake, _dir, config) = backup().await;
    let served = serve(&config, &[]);
    // A message from the middle of the history, found by its whole text.
    let truth = fake.ground_truth(NAME);
    let target: serde_json::Value = serde_json::from_str(&truth[150]).unwrap();
    let id = target["id"].as_str().unwrap().to_owned();
    let words = target["message"].as_str().unwrap().to_owned();
    let query = format!("\"{words}\"");
    let url = format!(
        "{}/search?q={}",
        served.url,
        chatkeep::web::html::url_component(&query)
    );
    let dom = browser::dom(&url);
    browser::screenshot(&url, "search");
    assert!(dom.contains("<mark>"), "highlighted: {dom}");
    let anchor = format!("#m-{id}\"");
    let link = dom
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|href| format!("{href}\"").ends_with(&anchor))
        .unwrap_or_else(|| panic!("no hit links to message {id}: {dom}"))
        .replace("&amp;", "&");
    let url = format!("{}{link}", served.url);
    let dom = browser::dom(&url);
    browser::screenshot(&url, "search-hit-in-context");
    assert!(
        dom.contains(&format!("id=\"m-{id}\"")),
        "the message is on the page: {dom}"
    );
    assert!(
        dom.contains("rel=\"prev\"") && dom.contains("rel=\"next\""),
        "in context: {dom}"
    );

    // The hostile message is found as text too, and its snippet escaped.
    let dom = browser::dom(&format!("{}/search?q=PWNED", served.url));
    assert!(dom.contains("<mark>PWNED</mark>"), "{dom}");
    assert!(!dom.contains("<img") && !dom.contains("<title>PWNED"), "{dom}");
}
