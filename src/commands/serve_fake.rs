//! `chatkeep serve-fake`: the built-in fake service as its own process,
//! to try a config without an account, and so that benchmarks measure
//! chatkeep alone.

use std::net::SocketAddr;
use std::process::ExitCode;

use super::Fatal;
use crate::fake::{BeforeTs, FakeConfig, FakeService, PageOrder, PersonalitySpec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Personality slug.
    #[arg(long, default_value = "lilith")]
    name: String,
    /// Messages in its history.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Answer `before_ts` as at-or-older instead of strictly older.
    #[arg(long)]
    inclusive: bool,
    /// Shuffle the messages inside each page.
    #[arg(long)]
    shuffled: bool,
    /// Require this session token (the cookie `__Secure-better-auth.session_token`).
    #[arg(long)]
    token: Option<String>,
    /// Seed for the generated history.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(args: Args) -> Result<ExitCode, Fatal> {
    let config = FakeConfig {
        seed: args.seed,
        bind: args.bind,
        before_ts: if args.inclusive {
            BeforeTs::Inclusive
        } else {
            BeforeTs::Strict
        },
        order: if args.shuffled {
            PageOrder::Shuffled
        } else {
            PageOrder::NewestFirst
        },
        cookie: args
            .token
            .map(|t| ("__Secure-better-auth.session_token".to_owned(), t)),
        ..FakeConfig::default()
    };
    let fake = FakeService::start(config, vec![PersonalitySpec::new(&args.name, args.messages)])
        .await
        .map_err(|e| Fatal::usage(format!("cannot start the fake service: {e}")))?;
    println!("{}", fake.base_url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Fatal::usage(e.to_string()))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let requests = fake.requests();
    let chat = requests.iter().filter(|r| r.is_chat).count();
    eprintln!(
        "fake service: {} requests, {chat} for chat history",
        requests.len()
    );
    fake.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
