//! Joins the client and the store: one personality's sync.

pub mod chat;
