//! chatkeep: a complete, lossless, resumable backup of AI personalities and
//! their chat history.

pub mod api;
pub mod message;
pub mod store;
pub mod sync;
