//! Archives: snapshots of each personality, their retention, verification
//! and restore.

pub mod encryption;
pub mod retention;
