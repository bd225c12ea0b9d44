//! One message of the history as the index's documents: a document per
//! distinct piece of text (the user's text, the reply, each regenerated
//! reply, and those of every earlier version chatkeep kept), each marked
//! with who wrote it and which version it belongs to.

use std::collections::HashSet;

use tantivy::TantivyDocument;

use super::schema::Fields;
use crate::export::turn::Turn;
use crate::message::{Message, MessageId, Ts};
use crate::store::Entry;

/// Who wrote a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The account's user (the message's `message`).
    User,
    /// The personality (its `reply`).
    Personality,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Personality => "personality",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Role> {
        match text {
            "user" => Some(Role::User),
            "personality" => Some(Role::Personality),
            _ => None,
        }
    }
}

/// Which version of a message a piece of text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionKind {
    /// The message as it stands.
    Current,
    /// An earlier version, superseded by a later one chatkeep saw.
    Earlier,
    /// A reply the service lists in `regenerated_replies` as replaced.
    Regenerated,
}

impl VersionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionKind::Current => "current",
            VersionKind::Earlier => "earlier",
            VersionKind::Regenerated => "regenerated",
        }
    }

    pub(super) fn parse(text: &str) -> Option<VersionKind> {
        match text {
            "current" => Some(VersionKind::Current),
            "earlier" => Some(VersionKind::Earlier),
            "regenerated" => Some(VersionKind::Regenerated),
            _ => None,
        }
    }
}

/// The key every document of one message carries (see [`Fields::key`]).
pub(super) fn message_key(personality: &str, place: Ts, id: &MessageId) -> String {
    format!("{personality} {place} {}", id.to_json())
}

/// The documents of `entry`, and how many of its versions could not be
/// read (a stored line that is not a message object: left out, counted).
pub(super) fn documents(fields: &Fields, personality: &str, entry: &Entry) -> (Vec<TantivyDocument>, u32) {
    let key = match &entry.key {
        Some(key) => (key.position, key.id.clone()),
        None => match Message::stored_keys(&entry.message) {
            Ok((id, ts)) => (ts, id),
            Err(_) => return (Vec::new(), 1),
        },
    };
    let (place, id) = key;
    let mut out = Documents {
        fields,
        personality,
        key: message_key(personality, place, &id),
        story: super::story::of_entry(entry),
        id: id.to_json(),
        place,
        revised: !entry.earlier().is_empty(),
        deleted_at: entry.deleted_upstream_at(),
        seen: HashSet::new(),
        docs: Vec::new(),
    };
    let mut unreadable = 0;
    let current = Turn::parse(&entry.message, 0);
    if let Ok(turn) = &current {
        out.version(turn, VersionKind::Current, None);
    }
    // Newest earlier version first: a text that several versions share is
    // indexed once, as the latest version holding it.
    for version in entry.earlier().iter().rev() {
        match Turn::parse(&version.message, 0) {
            Ok(turn) => out.version(&turn, VersionKind::Earlier, Some(&version.superseded_at)),
            Err(_) => unreadable += 1,
        }
    }
    // Last, the replies the service says were replaced: those chatkeep
    // kept as versions of its own are already in, with their dates.
    match &current {
        Ok(turn) => {
            for text in &turn.regenerated {
                out.piece(
                    Role::Personality,
                    VersionKind::Regenerated,
                    text,
                    out_ts(turn, place),
                    None,
                );
            }
        }
        Err(_) => unreadable += 1,
    }
    (out.docs, unreadable)
}

/// A version's own `ts`, else the message's place.
fn out_ts(turn: &Turn, place: Ts) -> f64 {
    turn.ts.unwrap_or(place).as_f64()
}

/// The documents of one message, being built.
struct Documents<'a> {
    fields: &'a Fields,
    personality: &'a str,
    key: String,
    story: u64,
    id: String,
    place: Ts,
    revised: bool,
    deleted_at: Option<&'a str>,
    /// Texts already indexed, by role: each once per message.
    seen: HashSet<(Role, String)>,
    docs: Vec<TantivyDocument>,
}

impl Documents<'_> {
    /// The user's text and the reply of one version.
    fn version(&mut self, turn: &Turn, kind: VersionKind, superseded_at: Option<&str>) {
        let ts = out_ts(turn, self.place);
        if let Some(text) = &turn.user {
            self.piece(Role::User, kind, text, ts, superseded_at);
        }
        if let Some(text) = &turn.reply {
            self.piece(Role::Personality, kind, text, ts, superseded_at);
        }
    }

    fn piece(&mut self, role: Role, kind: VersionKind, text: &str, ts: f64, superseded_at: Option<&str>) {
        if !self.seen.insert((role, text.to_owned())) {
            return;
        }
        let f = self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.personality, self.personality);
        doc.add_text(f.key, &self.key);
        doc.add_u64(f.story, self.story);
        doc.add_text(f.id, &self.id);
        doc.add_f64(f.place, self.place.as_f64());
        doc.add_f64(f.ts, ts);
        doc.add_text(f.role, role.as_str());
        doc.add_text(f.version, kind.as_str());
        if let Some(at) = superseded_at {
            doc.add_text(f.superseded_at, at);
        }
        doc.add_bool(f.revised, self.revised);
        doc.add_bool(f.deleted, self.deleted_at.is_some());
        if let Some(at) = self.deleted_at {
            doc.add_text(f.deleted_at, at);
        }
        doc.add_text(f.text, text);
        self.docs.push(doc);
    }
}
