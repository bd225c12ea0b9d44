//! The index's fields: one document per piece of text of a message version
//! (the user's text, the reply, a regenerated reply), so that a hit says
//! who said it and which version it is.

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};

use super::tokenizer;

/// The version of the schema and of what documents hold. An index of
/// another version is rebuilt from the store (its coverage says which).
pub const SCHEMA_VERSION: u32 = 1;

/// The fields of [`build`]'s schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The personality's slug (indexed whole: filter and delete by it).
    pub personality: Field,
    /// `<slug> <place> <id as JSON>`: every document of one message, to
    /// replace them together.
    pub key: Field,
    /// The digest of the overlay record the message was indexed from (0:
    /// none; see [`super::story`]).
    pub story: Field,
    /// The message's id as JSON (`"m-1"`, `7`).
    pub id: Field,
    /// The message's place: the `ts` under which it was first stored
    /// (f64 seconds; filtered by range, sorted on).
    pub place: Field,
    /// This version's own `ts` (f64 seconds).
    pub ts: Field,
    /// `user` or `personality`.
    pub role: Field,
    /// `current`, `earlier` (an earlier version chatkeep kept) or
    /// `regenerated` (a reply the service lists as replaced).
    pub version: Field,
    /// For an earlier version: when the one after it was first seen.
    pub superseded_at: Field,
    /// The message has earlier versions.
    pub revised: Field,
    /// The service no longer returns the message.
    pub deleted: Field,
    /// When it was first seen missing upstream (RFC 3339).
    pub deleted_at: Field,
    /// The text, tokenised by [`tokenizer::analyzer`], stored for snippets.
    pub text: Field,
}

/// The schema and its fields.
pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer::NAME)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        personality: b.add_text_field("personality", STRING | STORED),
        key: b.add_text_field("key", STRING | STORED),
        story: b.add_u64_field("story", INDEXED | STORED),
        id: b.add_text_field("id", STORED),
        place: b.add_f64_field("place", INDEXED | FAST | STORED),
        ts: b.add_f64_field("ts", STORED),
        role: b.add_text_field("role", STRING | STORED),
        version: b.add_text_field("version", STRING | STORED),
        superseded_at: b.add_text_field("superseded_at", STORED),
        revised: b.add_bool_field("revised", INDEXED | STORED),
        deleted: b.add_bool_field("deleted", INDEXED | STORED),
        deleted_at: b.add_text_field("deleted_at", STORED),
        text: b.add_text_field("text", text_options),
    };
    (b.build(), fields)
}
