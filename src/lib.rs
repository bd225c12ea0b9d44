//! chatkeep: a complete, lossless, resumable backup of AI personalities and
//! their chat history.

pub mod api;
pub mod archive;
pub mod commands;
pub mod config;
pub mod control;
pub mod credentials;
pub mod daemon;
pub mod escape;
pub mod export;
pub mod fake;
pub mod import;
pub mod logging;
pub mod media;
pub mod message;
pub mod metrics;
pub mod notify;
pub mod progress;
pub mod remote;
pub mod search;
pub mod status;
pub mod store;
pub mod sync;
pub mod web;
pub mod words;
