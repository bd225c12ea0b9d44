//! History that is not append-only (API.md): the test-facing edits that
//! regenerate replies, delete messages, reset a chat and restore older
//! history below the oldest message.
//!
//! A message's identity survives every edit: its id, texts and pushed bytes
//! hang off a generator index, not its position (see `history.rs`). Each
//! edit applies at once, between two requests; a page is always the
//! contiguous window of the history as it is when the request is answered.

use super::FakeService;
use crate::fake::state::lock;

impl FakeService {
    /// Regenerates the reply of the message with this id, as a user who
    /// asks for another answer: the message keeps its `id`, `ts` and every
    /// other field, its `reply` becomes a new text, and the earlier reply
    /// is appended to `regenerated_replies`. Twice gives a third version
    /// with two earlier replies. Returns false when no message has this id,
    /// or when the message was pushed raw (`push_raw_message`): the fake
    /// serves those bytes as given and does not rewrite them.
    pub fn regenerate(&self, slug: &str, id: &str) -> bool {
        lock(&self.shared).by_slug_mut(slug).history.regenerate(id)
    }

    /// Regenerates the `n`-th newest message (0 is the newest) and returns
    /// its id.
    ///
    /// # Panics
    /// If the history holds fewer than `n + 1` messages, or that message was
    /// pushed raw.
    pub fn regenerate_nth_newest(&self, slug: &str, n: usize) -> String {
        lock(&self.shared)
            .by_slug_mut(slug)
            .history
            .regenerate_nth_newest(n)
    }

    /// Deletes the messages with these ids, generated or pushed; returns
    /// how many were deleted (unknown and already deleted ids count for
    /// nothing). They vanish from every later page.
    pub fn delete(&self, slug: &str, ids: &[&str]) -> usize {
        lock(&self.shared).by_slug_mut(slug).history.delete(ids)
    }

    /// Deletes the `n`-th newest message (0 is the newest) and returns its
    /// id (empty for a pushed message without a string `id`).
    ///
    /// # Panics
    /// If the history holds fewer than `n + 1` messages.
    pub fn delete_nth_newest(&self, slug: &str, n: usize) -> String {
        lock(&self.shared).by_slug_mut(slug).history.delete_nth_newest(n)
    }

    /// Resets the chat: every message vanishes. Messages appended later
    /// (`append_messages`, growth) get fresh ids and ts newer than any
    /// message this personality ever had.
    pub fn reset_chat(&self, slug: &str) {
        lock(&self.shared).by_slug_mut(slug).history.reset();
    }

    /// Adds `k` generated messages, with fresh ids, below the oldest one,
    /// as a restore or import upstream would: `step_ms` apart going down
    /// from the oldest message's ts (closer together if the room above
    /// ts 0 is short), in strictly increasing ts order. On an empty history
    /// this is `append_messages`.
    ///
    /// # Panics
    /// If fewer than `k` whole milliseconds lie between 0 and the oldest ts.
    pub fn insert_older(&self, slug: &str, k: usize) {
        lock(&self.shared).by_slug_mut(slug).history.insert_older(k);
    }

    /// The id of every message now in the history, oldest first (empty for
    /// a pushed message without a string `id`).
    pub fn message_ids(&self, slug: &str) -> Vec<String> {
        let state = lock(&self.shared);
        let history = &state.by_slug(slug).history;
        (0..history.len())
            .map(|position| history.id_at(position))
            .collect()
    }
}
