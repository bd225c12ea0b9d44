//! Shared helpers: the fake service on loopback, a config for it, and the
//! real `chatkeep` binary.
#![allow(dead_code)]

pub mod browser;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chatkeep::config::{Config, PersonalitySlug};
use chatkeep::export::{self, ExportMeta, Format};
use chatkeep::fake::{FakeConfig, FakeService, PersonalitySpec};
use chatkeep::message::minify;
use chatkeep::store::ChatStore;

/// See `chatkeep::config::FAST_SCHEDULES_FOR_TESTS`.
pub const FAST_SCHEDULES: &str = "CHATKEEP_TEST_FAST_SCHEDULES";

pub const TOKEN: &str = "t0ps3cret-session-token-value";
pub const COOKIE_NAME: &str = "__Secure-better-auth.session_token";

/// A fake service that checks the test cookie.
pub async fn fake(mut config: FakeConfig, specs: Vec<PersonalitySpec>) -> FakeService {
    if config.cookie.is_none() {
        config.cookie = Some((COOKIE_NAME.into(), TOKEN.into()));
    }
    FakeService::start(config, specs)
        .await
        .expect("fake service starts")
}

/// Writes a config for `base_url` into `dir`, with a cookie file holding
/// [`TOKEN`]. `extra` is appended to `[service]`; `rps` sets the rate limit.
pub fn write_config(dir: &Path, base_url: &str, names: &[&str], rps: f64, extra: &str) -> PathBuf {
    let cookie = dir.join("cookie");
    std::fs::write(&cookie, TOKEN).unwrap();
    let mut permissions = std::fs::metadata(&cookie).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
    std::fs::set_permissions(&cookie, permissions).unwrap();
    let mut text = format!(
        "[service]\nbase_url = \"{base_url}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\
         initial_backoff = \"10ms\"\nmax_backoff = \"50ms\"\n{extra}\n\n\
         [storage]\ndata_dir = \"data\"\n\n[rate_limit]\nrequests_per_second = {rps:?}\nburst = 1\n"
    );
    for name in names {
        text.push_str(&format!("\n[[personality]]\nname = \"{name}\"\n"));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A fake with `fake_config` (plus the test cookie) serving `specs`, and a
/// loaded config for `names` in a new directory, rate limit effectively off.
pub async fn setup(
    fake_config: FakeConfig,
    specs: Vec<PersonalitySpec>,
    names: &[&str],
) -> (FakeService, tempfile::TempDir, Config) {
    let fake = fake(fake_config, specs).await;
    let dir = tempfile::tempdir().unwrap();
    let config = load(&write_config(dir.path(), &fake.base_url(), names, 10_000.0, ""));
    (fake, dir, config)
}

/// One `sync` pass over the configured personalities, as the command runs it.
pub async fn pass(config: &Config) -> chatkeep::commands::sync::PassOutcome {
    chatkeep::commands::sync::run_pass(
        config,
        &[],
        chatkeep::commands::sync::Selection::default(),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap()
}

pub fn load(path: &Path) -> Config {
    Config::load(path).expect("test config is valid")
}

pub fn slugs(names: &[&str]) -> Vec<PersonalitySlug> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

/// Exports `name` from the store as JSON Lines (one stored message a line).
pub fn export_lines(config: &Config, name: &str) -> Vec<String> {
    export_text(config, name, Format::Jsonl)
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn export_text(config: &Config, name: &str, format: Format) -> String {
    let store = ChatStore::open_read_only(&config.storage.data_dir.join(name)).unwrap();
    let id = store.state().personality_id.clone().unwrap_or_default();
    let mut out = Vec::new();
    export::write(
        &store,
        &ExportMeta {
            shape_id: &id,
            shape_name: name,
            display_name: None,
        },
        format,
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

/// Checks an export against the fake's ground truth: every message exactly
/// once, byte for byte, and in chronological order.
pub fn assert_complete(exported: &[String], fake: &FakeService, name: &str) {
    let truth: Vec<String> = fake.ground_truth(name).iter().map(|m| minify(m)).collect();
    let mut got_sorted = exported.to_vec();
    got_sorted.sort();
    let mut want_sorted = truth.clone();
    want_sorted.sort();
    let missing = want_sorted
        .iter()
        .filter(|m| got_sorted.binary_search(m).is_err())
        .count();
    let mut dedup = got_sorted.clone();
    dedup.dedup();
    assert_eq!(
        (exported.len(), missing, got_sorted.len() - dedup.len()),
        (truth.len(), 0, 0),
        "{name}: (exported, missing, duplicates) vs ground truth"
    );
    assert_eq!(
        got_sorted, want_sorted,
        "{name}: messages differ from ground truth"
    );
    let ts: Vec<f64> = exported
        .iter()
        .map(|l| {
            chatkeep::message::Message::from_stored_line(l)
                .unwrap()
                .ts
                .as_f64()
        })
        .collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "{name}: export not in chronological order"
    );
}

/// The real binary with a config. Cron schedules may run every second (the
/// daemon tests tick that fast); `env_remove` it to see what a user gets.
pub fn chatkeep(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatkeep"));
    cmd.arg("--config")
        .arg(config)
        .env(FAST_SCHEDULES, "1")
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY");
    cmd
}

pub fn text(output: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The busiest one-second window of `times` (sorted): how many requests.
pub fn busiest_second(times: &[Instant]) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|&&t| t < times[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// An identity file as `age-keygen` writes it, and its public key.
pub fn identity_file(path: &Path) -> String {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    std::fs::write(
        path,
        format!(
            "# created: test\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    identity.to_public().to_string()
}

/// Every file below `dir`, by its path relative to it, with its bytes.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}
