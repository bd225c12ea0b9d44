//! `chatkeep demo`: the whole product in one minute, offline. Starts the
//! built-in fake service on loopback, backs up three personalities, adds
//! messages upstream, backs up again incrementally, lets the service
//! regenerate a reply and delete a message, exports, and snapshots.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::sync::{Selection, run_pass};
use super::{Fatal, exit};
use crate::config::{Config, PersonalitySlug};
use crate::export::{ExportOptions, Format, What};
use crate::fake::{
    BeforeTs, FakeConfig, FakeMediaConfig, FakeService, Fault, FaultPlan, PageOrder, PersonalitySpec,
    RetryAfter,
};
use crate::store::fsio;

const TOKEN: &str = "demo-session-token";

pub async fn run(dir: Option<PathBuf>) -> Result<ExitCode, Fatal> {
    // A new directory of its own (as mkdtemp(3) makes one), never one that
    // exists already under a name someone could guess; or the one named,
    // made 0700 or checked to be ours alone.
    let dir = match dir {
        Some(d) => {
            fsio::create_private_dir(&d)
                .map_err(|e| Fatal::usage(format!("cannot use {}: {e}", d.display())))?;
            d
        }
        None => fsio::create_fresh_dir(&std::env::temp_dir(), "chatkeep-demo-").map_err(|e| {
            Fatal::usage(format!(
                "cannot create a directory in {}: {e}",
                std::env::temp_dir().display()
            ))
        })?,
    };
    let dir = dir.canonicalize().unwrap_or(dir);

    let fake = start_fake().await?;
    let config_path = write_config(&dir, &fake.base_url())?;
    let config = Config::load(&config_path)?;
    println!("chatkeep demo");
    println!(
        "  fake service: {} (before_ts inclusive, pages shuffled, with a 429, a 503 and a truncated answer on the way)",
        fake.base_url()
    );
    println!("  config:       {}", config_path.display());
    println!();

    println!("1. Full backup of three personalities");
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let first = run_pass(&config, &[], Selection::default(), &cancel).await?;
    if !first.all_ok() {
        return Ok(first.exit_code());
    }
    println!("   done in {:.1}s", started.elapsed().as_secs_f64());
    println!();

    fake.append_messages("aria", 75);
    fake.append_messages("bramble", 3);
    println!("2. 75 new messages for aria and 3 for bramble arrive; incremental backup");
    let second = run_pass(&config, &[], Selection::default(), &cancel).await?;
    if !second.all_ok() {
        return Ok(second.exit_code());
    }
    for r in &second.reports {
        let Some(chat) = &r.chat else { continue };
        println!(
            "   {}: {} chat requests for {} new messages (a full walk would take {})",
            r.name(),
            chat.requests,
            chat.new_messages,
            chat.total_messages
                .div_ceil(u64::from(config.service.chat_page_size))
                + 1
        );
    }
    println!();

    let regenerated = fake.regenerate_nth_newest("aria", 0);
    fake.delete_nth_newest("aria", 4);
    println!("3. Upstream changes history: aria's newest reply is regenerated and another message deleted");
    let third = run_pass(
        &config,
        &["aria".parse().map_err(Fatal::usage)?],
        Selection::default(),
        &cancel,
    )
    .await?;
    if !third.all_ok() {
        return Ok(third.exit_code());
    }
    for r in &third.reports {
        let Some(chat) = &r.chat else { continue };
        println!(
            "   {}: {} revised (the earlier version kept), {} gone upstream (kept, marked), {} chat request(s)",
            r.name(),
            chat.revised,
            chat.deleted,
            chat.requests
        );
    }
    println!();

    println!("4. Exports");
    let exports = dir.join("exports");
    fsio::create_private_dir(&exports).map_err(|e| Fatal::usage(e.to_string()))?;
    let upstream_only = ExportOptions {
        upstream_only: true,
        ..ExportOptions::default()
    };
    let revisions = ExportOptions {
        revisions: true,
        ..ExportOptions::default()
    };
    for (format, file, options) in [
        (Format::Json, "aria_chat_history.json", ExportOptions::default()),
        (Format::Markdown, "aria_chat_history.md", ExportOptions::default()),
        (Format::Jsonl, "aria_chat_history.jsonl", upstream_only),
        (Format::Jsonl, "aria_with_revisions.jsonl", revisions),
        (
            Format::Conversations,
            "aria_conversations.jsonl",
            ExportOptions::default(),
        ),
    ] {
        let name: PersonalitySlug = "aria".parse().map_err(Fatal::usage)?;
        let path = exports.join(file);
        super::export::run(
            &config,
            &name,
            &[What::Chat],
            format,
            &options,
            crate::export::MediaLinks::Url,
            Some(&path),
        )?;
    }
    let mut truth: Vec<String> = fake
        .ground_truth("aria")
        .iter()
        .map(|m| crate::message::minify(m))
        .collect();
    let exported = std::fs::read_to_string(exports.join("aria_chat_history.jsonl"))
        .map_err(|e| Fatal::usage(e.to_string()))?;
    // Messages sharing one `ts` may come in any order; compare as sets.
    let mut exported: Vec<&str> = exported.lines().collect();
    truth.sort_unstable();
    exported.sort_unstable();
    let same = exported == truth;
    println!(
        "   aria: export --upstream-only {} the fake service's {} messages byte for byte",
        if same { "matches" } else { "DOES NOT match" },
        truth.len()
    );
    let versions = std::fs::read_to_string(exports.join("aria_with_revisions.jsonl"))
        .map_err(|e| Fatal::usage(e.to_string()))?
        .lines()
        .filter(|l| l.contains(&regenerated))
        .count();
    println!("   aria: the regenerated message has {versions} versions in aria_with_revisions.jsonl");
    println!();
    println!("5. Snapshots (one .tar.gz per personality, listed in a manifest), then verify");
    super::archive::archive(&config, &[])?;
    let verified = super::archive::verify(&config, &[], false, None)?;
    println!();
    println!("Files:");
    print_tree(&config.storage.data_dir, "  ");
    print_tree(&exports, "  ");
    println!();
    fake.shutdown().await;
    print_next_steps(&dir, &config_path);
    Ok(ExitCode::from(if same && verified == ExitCode::SUCCESS {
        exit::OK
    } else {
        exit::FAILED
    }))
}

/// Commands to try next, each working as printed: the binary by its real
/// path (after `cargo run` no `chatkeep` is on PATH), and only commands
/// that read the backup, since the fake service ends with the demo.
fn print_next_steps(dir: &Path, config_path: &Path) {
    let exe = std::env::current_exe()
        .map(|p| p.canonicalize().unwrap_or(p))
        .unwrap_or_else(|_| PathBuf::from("chatkeep"));
    let base = format!("{} --config {}", shell_word(&exe), shell_word(config_path));
    println!("The fake service stopped with the demo; these commands read what it backed up:");
    for args in ["status", "export bramble --format markdown", "verify"] {
        println!("  $ {base} {args}");
    }
    println!(
        "To try a sync of your own against a fake service, run `{} serve-fake --help` (see \"Trying \
         it out\" in the README).",
        shell_word(&exe)
    );
    println!();
    println!(
        "The demo's config, cookie, backup and exports are in {}; remove them with:",
        dir.display()
    );
    println!("  $ rm -r {}", shell_word(dir));
}

/// `path` as one word for a POSIX shell: as it is when that is safe, else
/// in single quotes.
fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

async fn start_fake() -> Result<FakeService, Fatal> {
    let mut aria = PersonalitySpec::new("aria", 1234);
    aria.tie_groups = vec![(100, 2), (449, 51), (900, 49)];
    aria.extra_fields = true;
    let mut bramble = PersonalitySpec::new("bramble", 321);
    bramble.hostile_unicode = true;
    let cosmo = PersonalitySpec::new("cosmo", 42);
    let config = FakeConfig {
        seed: 7,
        before_ts: BeforeTs::Inclusive,
        order: PageOrder::Shuffled,
        cookie: Some(("__Secure-better-auth.session_token".into(), TOKEN.into())),
        faults: FaultPlan {
            script: vec![
                Fault::ServerError(503),
                Fault::RateLimited {
                    retry_after: RetryAfter::Seconds(1),
                },
                Fault::Truncated,
            ],
            only_chat: true,
            ..FaultPlan::default()
        },
        // Images, voice replies and avatars on a CDN of its own, some of
        // them gone, redirected, too short or too large.
        media: Some(FakeMediaConfig::default()),
        ..FakeConfig::default()
    };
    FakeService::start(config, vec![aria, bramble, cosmo])
        .await
        .map_err(|e| Fatal::usage(format!("cannot start the fake service: {e}")))
}

fn write_config(dir: &Path, base_url: &str) -> Result<PathBuf, Fatal> {
    let cookie = dir.join("cookie");
    fsio::write_atomic(&cookie, TOKEN.as_bytes()).map_err(|e| Fatal::usage(e.to_string()))?;
    let text = format!(
        r#"# Written by `chatkeep demo`.
[service]
base_url = "{base_url}"
jargon = "shapes"
cookie_file = "cookie"
initial_backoff = "200ms"
max_backoff = "2s"

[storage]
data_dir = "data"

[rate_limit]
requests_per_second = 50
burst = 5

[media]
requests_per_second = 50
max_file_size = "2MiB"

[[personality]]
name = "aria"

[[personality]]
name = "bramble"

[[personality]]
name = "cosmo"
"#
    );
    let path = dir.join("config.toml");
    fsio::write_atomic(&path, text.as_bytes()).map_err(|e| Fatal::usage(e.to_string()))?;
    Ok(path)
}

fn print_tree(root: &Path, indent: &str) {
    let mut entries: Vec<_> = walk(root);
    entries.sort();
    for (path, size) in entries {
        println!("{indent}{} ({size} bytes)", path.display());
    }
}

fn walk(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match entry.metadata() {
            Ok(m) if m.is_dir() => out.extend(walk(&path)),
            Ok(m) => out.push((path, m.len())),
            Err(_) => {}
        }
    }
    out
}
