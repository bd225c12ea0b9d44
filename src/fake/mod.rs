//! A fake of the personality service's HTTP API (see `shared/API.md`), for
//! integration tests and the demo.
//!
//! It serves generated personalities over real HTTP on loopback and lets a
//! test steer everything the real service leaves unknown or does wrong:
//! `before_ts` semantics, the order inside a page, the largest page (capped
//! silently, or refused with a 400 by `reject_limit_above`), ties on one
//! `ts`, history that grows during a walk, cookies that rotate or expire,
//! and faults (429, 5xx, resets, truncated bodies, slowness, bot walls,
//! HTML, empty chat pages in the middle of a history). It records every
//! request so a test can count them.
//!
//! History is not append-only either (API.md): a test can regenerate a
//! reply (`regenerate`, `regenerate_nth_newest`), delete messages
//! (`delete`, `delete_nth_newest`), reset a chat (`reset_chat`) and make
//! older history appear below the oldest message (`insert_older`); every
//! later page reflects the edit, and `ground_truth` / `message_ids` give
//! the history as it now is.
//!
//! ```no_run
//! # use chatkeep::fake::*;
//! # async fn example() -> std::io::Result<()> {
//! let fake = FakeService::start(FakeConfig::default(), vec![PersonalitySpec::new("lilith", 1000)]).await?;
//! let profile_url = format!("{}/api/shapes/username/lilith", fake.base_url());
//! fake.set_faults(FaultPlan { script: vec![Fault::Reset], ..FaultPlan::default() });
//! # Ok(()) }
//! ```
//!
//! Memory stays small whatever the history length: a message is an `f64`
//! ts and a `u32` generator index in an index, and its JSON is generated
//! when served (see `history.rs`).
//!
//! Layout: `config` (what a test chooses), `service` (the handle),
//! `server` (the request pipeline), `routes`, `endpoints` and `chat` (the
//! answers), `history` and `generate` (the data; `history::drift` and
//! `service::drift` for the edits that are not appends), `faults` and
//! `conn` (the failures), `media` (the media host, a CDN of its own).

mod chat;
mod config;
mod conn;
mod endpoints;
mod faults;
mod generate;
mod history;
pub mod media;
mod routes;
mod server;
mod service;
mod state;

#[cfg(test)]
mod tests;

pub use config::{BeforeTs, DEFAULT_USER_ID, FakeConfig, PageOrder, PersonalitySpec};
pub use faults::{Fault, FaultPlan, RetryAfter, http_date};
pub use generate::format_ts;
pub use media::{FakeMedia, FakeMediaConfig, MediaFault, MediaRequest};
pub use service::FakeService;
pub use state::{DocumentKind, MemoryShape, RequestRecord};
