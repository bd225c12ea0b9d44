//! One personality's chat history, as a compact index.
//!
//! The index holds two numbers per message, in history order (which is also
//! non-decreasing ts order): its ts, as a client parses it, and its
//! *generator index*. That is all a page lookup needs: a binary search for
//! the boundary, then the window before it. Message text is rebuilt on
//! demand by the generator from the generator index, except for the few
//! messages a test pushed as raw JSON, which are kept verbatim in an
//! overlay. A million messages cost 12 MB.
//!
//! The generator index is a message's identity. History is not append-only
//! (API.md): messages are deleted and older ones appear below the oldest, so
//! a position says nothing lasting about a message. Each message therefore
//! takes the next value of a per-personality counter that only grows, and
//! its id, texts, pushed bytes and regenerations hang off that value. The
//! initial history gets 0, 1, 2, ... in order, so it is exactly what the
//! position-based fake used to serve. The edits themselves live in `drift`.

mod drift;
mod identity;

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::config::BeforeTs;
use super::generate::{MessageGenerator, ts_ms, ts_value};

/// The history of one personality, oldest first.
#[derive(Debug)]
pub(super) struct History {
    /// `ts[i]` is the ts of the message at position i; never decreases
    /// with i.
    ts: Vec<f64>,
    /// `generators[i]` is the generator index of the message at position i;
    /// no two positions share one.
    generators: Vec<u32>,
    /// The generator index the next new message takes. Only grows, so ids
    /// are never reused, not even after a reset.
    next_generator: u32,
    /// Messages pushed as raw JSON, by generator index, served byte for
    /// byte.
    raw: HashMap<u32, Box<str>>,
    /// How often a generated message's reply was regenerated, by generator
    /// index; absent means never.
    revisions: HashMap<u32, u32>,
    /// The newest ts this history ever held, deleted messages included, so
    /// that appends after a delete or reset are newer than anything a
    /// client may have seen. `None` while it never held a message.
    newest_ever: Option<f64>,
    generator: MessageGenerator,
    /// Where generated timestamps come from: `start + g * step` (ms) for
    /// generator index g, unless that would not be newer.
    start_ts_ms: u64,
    step_ms: u64,
}

/// Just the field that orders messages, borrowed as written so it is parsed
/// by `str::parse` (correctly rounded), not by serde_json's float reader.
#[derive(Deserialize)]
struct TsField<'a> {
    #[serde(borrow)]
    ts: &'a RawValue,
}

impl History {
    /// Generates `messages` messages; each tie group `(first, size)` gives
    /// its members the ts of its first message.
    ///
    /// # Panics
    /// If `messages` exceeds `u32::MAX` (the caller validates it first).
    pub(super) fn generate(
        generator: MessageGenerator,
        messages: usize,
        start_ts_ms: u64,
        step_ms: u64,
        tie_groups: &[(usize, usize)],
    ) -> Self {
        let next_generator = u32::try_from(messages).expect("at most u32::MAX messages");
        let mut ts = Vec::with_capacity(messages);
        ts.extend((0..messages).map(|i| ts_value(generated_ms(start_ts_ms, step_ms, i))));
        for &(first, size) in tie_groups {
            if first >= messages {
                continue;
            }
            let shared = ts[first];
            let end = first.saturating_add(size).min(messages);
            ts[first..end].fill(shared);
        }
        debug_assert!(ts.windows(2).all(|w| w[0] <= w[1]));
        History {
            newest_ever: ts.last().copied(),
            ts,
            generators: (0..next_generator).collect(),
            next_generator,
            raw: HashMap::new(),
            revisions: HashMap::new(),
            generator,
            start_ts_ms,
            step_ms,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ts.len()
    }

    /// Takes the next generator index.
    ///
    /// # Panics
    /// Once `u32::MAX` messages were ever made for this personality, far
    /// beyond what a test can hold in memory.
    fn take_generator(&mut self) -> u32 {
        let taken = self.next_generator;
        self.next_generator = taken
            .checked_add(1)
            .expect("the fake ran out of generator indices (u32::MAX)");
        taken
    }

    /// Adds `k` generated messages, each strictly newer than the one before
    /// and than every message this history ever held.
    pub(super) fn append_generated(&mut self, k: usize) {
        self.ts.reserve(k);
        self.generators.reserve(k);
        for _ in 0..k {
            let index = self.take_generator();
            let mut ms = generated_ms(self.start_ts_ms, self.step_ms, index as usize);
            if let Some(newest) = self.newest_ever {
                ms = ms.max(first_ms_after(newest));
            }
            self.push(index, ts_value(ms));
        }
    }

    /// Appends one message given as raw JSON text, kept byte for byte.
    ///
    /// # Panics
    /// If the text is not a JSON object with a numeric `ts`, or if that ts
    /// is older than the newest message: history only grows at its new end.
    pub(super) fn push_raw(&mut self, raw_json: &str) {
        let field: TsField<'_> = serde_json::from_str(raw_json)
            .unwrap_or_else(|e| panic!("pushed message is not a JSON object with a ts: {e}"));
        let ts: f64 = field
            .ts
            .get()
            .parse()
            .unwrap_or_else(|e| panic!("pushed message's ts {} is not a number: {e}", field.ts));
        if let Some(&last) = self.ts.last() {
            assert!(
                ts >= last,
                "pushed message's ts {ts} is older than the newest message's {last}"
            );
        }
        let index = self.take_generator();
        self.raw.insert(index, raw_json.into());
        self.push(index, ts);
    }

    /// Inserts one message given as raw JSON text in its place by `ts`
    /// (after any others with the same `ts`), kept byte for byte: a message
    /// that becomes visible below newer ones, such as one dated by a clock
    /// that runs behind.
    ///
    /// # Panics
    /// If the text is not a JSON object with a numeric `ts`.
    pub(super) fn insert_raw(&mut self, raw_json: &str) {
        let field: TsField<'_> = serde_json::from_str(raw_json)
            .unwrap_or_else(|e| panic!("inserted message is not a JSON object with a ts: {e}"));
        let ts: f64 = field
            .ts
            .get()
            .parse()
            .unwrap_or_else(|e| panic!("inserted message's ts {} is not a number: {e}", field.ts));
        let index = self.take_generator();
        self.raw.insert(index, raw_json.into());
        let at = self.ts.partition_point(|&t| t <= ts);
        self.ts.insert(at, ts);
        self.generators.insert(at, index);
        self.newest_ever = Some(self.newest_ever.map_or(ts, |newest| newest.max(ts)));
    }

    /// Appends a message at the new end; `ts` is not older than the last.
    fn push(&mut self, index: u32, ts: f64) {
        self.ts.push(ts);
        self.generators.push(index);
        self.newest_ever = Some(self.newest_ever.map_or(ts, |newest| newest.max(ts)));
    }

    /// The window a chat request returns: the last `limit` messages, in
    /// history order, before the boundary (or the very last ones without).
    pub(super) fn page_range(&self, before: Option<f64>, semantics: BeforeTs, limit: usize) -> Range<usize> {
        let end = match (before, semantics) {
            (None, _) => self.ts.len(),
            (Some(bound), BeforeTs::Strict) => self.ts.partition_point(|&ts| ts < bound),
            (Some(bound), BeforeTs::Inclusive) => self.ts.partition_point(|&ts| ts <= bound),
        };
        end.saturating_sub(limit)..end
    }

    /// Appends the JSON text of the message at `position` to `out`.
    pub(super) fn write_message(&self, position: usize, out: &mut String) {
        let index = self.generators[position];
        match self.raw.get(&index) {
            Some(raw) => out.push_str(raw),
            None => {
                let revision = self.revisions.get(&index).copied().unwrap_or(0);
                self.generator
                    .write_message(index as usize, ts_ms(self.ts[position]), revision, out);
            }
        }
    }

    pub(super) fn message(&self, position: usize) -> String {
        let mut out = String::new();
        self.write_message(position, &mut out);
        out
    }

    /// Heap held by this history, to check the memory promise.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        let overlay: usize = self.raw.values().map(|raw| raw.len() + 32).sum();
        let revisions = self.revisions.capacity() * 2 * std::mem::size_of::<u32>();
        self.ts.capacity() * std::mem::size_of::<f64>()
            + self.generators.capacity() * std::mem::size_of::<u32>()
            + overlay
            + revisions
    }
}

/// The smallest whole millisecond whose ts is strictly greater than `ts`
/// (`ts * 1000` may round either way, hence the check).
fn first_ms_after(ts: f64) -> u64 {
    let mut ms = (ts * 1000.0).floor().max(0.0) as u64;
    while ts_value(ms) <= ts {
        ms += 1;
    }
    ms
}

/// The smallest whole millisecond whose ts is at or above `ts` (0 for a
/// negative `ts`).
fn first_ms_at_or_after(ts: f64) -> u64 {
    let mut ms = (ts * 1000.0).floor().max(0.0) as u64;
    while ms > 0 && ts_value(ms - 1) >= ts {
        ms -= 1;
    }
    while ts_value(ms) < ts {
        ms += 1;
    }
    ms
}

fn generated_ms(start_ts_ms: u64, step_ms: u64, index: usize) -> u64 {
    start_ts_ms.saturating_add(step_ms.saturating_mul(index as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(messages: usize, ties: &[(usize, usize)]) -> History {
        let generator = MessageGenerator::new(1, "t", false, false);
        History::generate(generator, messages, 1_000_000, 1_000, ties)
    }

    #[test]
    fn boundary_follows_the_semantics() {
        let h = history(10, &[]);
        // Message 5 has ts 1005.0.
        assert_eq!(h.page_range(Some(1005.0), BeforeTs::Strict, 3), 2..5);
        assert_eq!(h.page_range(Some(1005.0), BeforeTs::Inclusive, 3), 3..6);
        assert_eq!(h.page_range(None, BeforeTs::Strict, 3), 7..10);
        assert_eq!(h.page_range(Some(0.5), BeforeTs::Strict, 3), 0..0);
        assert_eq!(h.page_range(Some(1001.0), BeforeTs::Strict, 3), 0..1);
    }

    #[test]
    fn tie_groups_share_the_first_ts() {
        let h = history(10, &[(3, 4)]);
        assert_eq!(&h.ts[2..8], &[1002.0, 1003.0, 1003.0, 1003.0, 1003.0, 1007.0]);
        assert_eq!(h.page_range(Some(1003.0), BeforeTs::Strict, 5), 0..3);
        assert_eq!(h.page_range(Some(1003.0), BeforeTs::Inclusive, 2), 5..7);
    }

    #[test]
    fn appended_messages_are_newer_than_pushed_ones() {
        let mut h = history(2, &[]);
        h.push_raw(r#"{"id":"x","ts":5000.1234567}"#);
        h.append_generated(2);
        assert_eq!(&h.ts[3..], &[5000.124, 5000.125]);
        assert_eq!(h.message(2), r#"{"id":"x","ts":5000.1234567}"#);
    }

    #[test]
    fn each_message_takes_the_next_generator_index() {
        let mut h = history(3, &[]);
        h.push_raw(r#"{"id":"x","ts":5000.0}"#);
        h.append_generated(1);
        assert_eq!(h.generators, [0, 1, 2, 3, 4]);
        assert_eq!(h.next_generator, 5);
        assert!(h.raw.contains_key(&3));
    }

    #[test]
    #[should_panic(expected = "older than the newest")]
    fn pushing_an_older_message_panics() {
        let mut h = history(2, &[]);
        h.push_raw(r#"{"id":"x","ts":1.0}"#);
    }
}
