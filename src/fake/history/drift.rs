//! The edits that make history not append-only (API.md, "History is not
//! append-only"): regenerated replies, deletions, resets, and older
//! messages appearing below the oldest.
//!
//! Each edit checks its input before it changes anything, so a test-facing
//! panic leaves the history as it was.

use std::collections::HashSet;

use super::{History, first_ms_at_or_after};
use crate::fake::generate::ts_value;

impl History {
    /// Regenerates the reply of the generated message with this id: it
    /// keeps its id, ts and other fields, its reply becomes a new text and
    /// the earlier one joins `regenerated_replies`. False when no message
    /// in the history has this id, or when it was pushed raw (its bytes
    /// are the test's, so the fake does not rewrite them).
    pub(in crate::fake) fn regenerate(&mut self, id: &str) -> bool {
        let Some(index) = self.generated_with_id(id) else {
            return false;
        };
        if self.position_of(index).is_none() {
            return false;
        }
        *self.revisions.entry(index).or_insert(0) += 1;
        true
    }

    /// Regenerates the `n`-th newest message (0 is the newest) and returns
    /// its id.
    ///
    /// # Panics
    /// If there are not `n + 1` messages, or that message was pushed raw.
    pub(in crate::fake) fn regenerate_nth_newest(&mut self, n: usize) -> String {
        let position = self.nth_newest(n);
        let index = self.generators[position];
        assert!(
            !self.raw.contains_key(&index),
            "message {n} from the newest was pushed raw; the fake does not regenerate pushed messages"
        );
        *self.revisions.entry(index).or_insert(0) += 1;
        self.id_at(position)
    }

    /// Deletes every message whose id is one of `ids`; returns how many
    /// went. Ids of no current message are ignored.
    pub(in crate::fake) fn delete(&mut self, ids: &[&str]) -> usize {
        let doomed = self.generators_with_ids(ids);
        self.remove(&doomed)
    }

    /// Deletes the `n`-th newest message (0 is the newest) and returns its
    /// id (empty for a pushed message without a string id).
    ///
    /// # Panics
    /// If there are not `n + 1` messages.
    pub(in crate::fake) fn delete_nth_newest(&mut self, n: usize) -> String {
        let position = self.nth_newest(n);
        let id = self.id_at(position);
        self.remove(&HashSet::from([self.generators[position]]));
        id
    }

    /// Deletes every message. Later messages get fresh generator indices
    /// (so fresh ids) and ts newer than any this history held.
    pub(in crate::fake) fn reset(&mut self) {
        self.ts = Vec::new();
        self.generators = Vec::new();
        self.raw.clear();
        self.revisions.clear();
    }

    /// Adds `k` generated messages below the oldest, as a restore or an
    /// import upstream would: fresh ids, ts `step_ms` apart going down from
    /// the oldest message's, strictly increasing in history order. When
    /// there is not that much room above ts 0 the step shrinks. On an empty
    /// history this is an append.
    ///
    /// # Panics
    /// If fewer than `k` whole milliseconds lie between 0 and the oldest ts.
    pub(in crate::fake) fn insert_older(&mut self, k: usize) {
        let Some(&oldest) = self.ts.first() else {
            self.append_generated(k);
            return;
        };
        if k == 0 {
            return;
        }
        // The message j places below the oldest (1..=k) gets
        // `anchor - j * step` ms; anchor - 1 is already older than `oldest`.
        let anchor = first_ms_at_or_after(oldest);
        let count = k as u64;
        let step = self.step_ms.max(1).min(anchor / count);
        assert!(
            step >= 1,
            "no room for {k} messages between ts 0 and the oldest message's {oldest}"
        );
        let mut ts = Vec::with_capacity(k);
        let mut generators = Vec::with_capacity(k);
        for j in (1..=count).rev() {
            generators.push(self.take_generator());
            ts.push(ts_value(anchor - j * step));
        }
        // Exactly: a splice into a full vector would double its capacity,
        // and a million-message history must stay small (see `history.rs`).
        self.ts.reserve_exact(k);
        self.generators.reserve_exact(k);
        self.ts.splice(0..0, ts);
        self.generators.splice(0..0, generators);
        debug_assert!(self.ts.windows(2).all(|w| w[0] <= w[1]));
    }

    /// The position of the `n`-th newest message.
    ///
    /// # Panics
    /// If there are not `n + 1` messages.
    fn nth_newest(&self, n: usize) -> usize {
        let len = self.ts.len();
        match len.checked_sub(n).and_then(|rest| rest.checked_sub(1)) {
            Some(position) => position,
            None => panic!("message {n} from the newest does not exist: the history holds {len}"),
        }
    }

    /// Removes the messages with these generator indices, keeping the
    /// order of the rest; returns how many were removed. O(history).
    fn remove(&mut self, doomed: &HashSet<u32>) -> usize {
        if doomed.is_empty() {
            return 0;
        }
        let before = self.ts.len();
        let mut kept = 0;
        for position in 0..before {
            if !doomed.contains(&self.generators[position]) {
                self.ts[kept] = self.ts[position];
                self.generators[kept] = self.generators[position];
                kept += 1;
            }
        }
        self.ts.truncate(kept);
        self.generators.truncate(kept);
        for index in doomed {
            self.raw.remove(index);
            self.revisions.remove(index);
        }
        before - kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::generate::MessageGenerator;

    fn history(messages: usize, start_ts_ms: u64) -> History {
        let generator = MessageGenerator::new(1, "t", false, false);
        History::generate(generator, messages, start_ts_ms, 1_000, &[])
    }

    #[test]
    fn older_messages_go_step_apart_below_the_oldest() {
        let mut h = history(3, 10_000);
        h.insert_older(2);
        assert_eq!(h.ts, [8.0, 9.0, 10.0, 11.0, 12.0]);
        assert_eq!(h.generators, [3, 4, 0, 1, 2]);
    }

    #[test]
    fn older_messages_squeeze_in_when_room_above_zero_is_short() {
        let mut h = history(2, 3);
        h.insert_older(3);
        assert_eq!(h.ts, [0.0, 0.001, 0.002, 0.003, 1.003]);
    }

    #[test]
    #[should_panic(expected = "no room for 4 messages")]
    fn older_messages_that_do_not_fit_above_zero_panic() {
        let mut h = history(2, 3);
        h.insert_older(4);
    }

    #[test]
    fn removal_keeps_the_order_of_the_rest() {
        let mut h = history(6, 10_000);
        assert_eq!(h.remove(&HashSet::from([1, 4, 99])), 2);
        assert_eq!(h.ts, [10.0, 12.0, 13.0, 15.0]);
        assert_eq!(h.generators, [0, 2, 3, 5]);
        assert_eq!(h.remove(&HashSet::new()), 0);
    }
}
