//! Marks: places in a chat log file where a gzip member starts, so that the
//! newest messages can be read without decompressing the file from its
//! start.
//!
//! A commit writes its messages in members of at most [`MEMBER_MESSAGES`]
//! messages, and marks where each one starts. A sync compares the newest
//! stored messages with what the service returns (the refreshed range), so
//! it reads from the last mark at or below that range: work grows with the
//! range, not with the history. Marks are kept dense near the newest end
//! and thinned towards the oldest ([`push`]), so a state file holds at most
//! [`MAX_MARKS`] of them per file, whatever the history's length.

use serde::{Deserialize, Serialize};

use crate::message::Ts;

/// Messages written into one gzip member before the next one starts.
pub const MEMBER_MESSAGES: usize = 1000;
/// Marks kept for one file.
pub const MAX_MARKS: usize = 64;
/// The newest marks, never thinned.
const KEPT_EXACT: usize = 32;

/// Where a gzip member of a chat log file starts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// Byte offset of the member's first byte in the file.
    pub offset: u64,
    /// `ts` of the member's first message.
    pub first: Ts,
    /// Messages in the file before the member.
    pub before: u64,
}

/// Adds `mark` (the newest) to `marks`, thinning the older ones when there
/// are more than [`MAX_MARKS`]: every other one of those older than the
/// newest [`KEPT_EXACT`] goes, so density halves with each thinning.
pub fn push(marks: &mut Vec<Mark>, mark: Mark) {
    marks.push(mark);
    if marks.len() > MAX_MARKS {
        let older = marks.len() - KEPT_EXACT;
        let mut index = 0;
        marks.retain(|_| {
            let keep = index >= older || index % 2 == 0;
            index += 1;
            keep
        });
    }
}

/// The last mark from which at least `at_least` messages follow (of a file
/// holding `total`) and whose first message is older than `below`: reading
/// from it covers every message at `below` or newer. `None` when no mark
/// qualifies (read the file from its start).
pub fn start_for(marks: &[Mark], total: u64, below: Ts, at_least: u64) -> Option<&Mark> {
    marks
        .iter()
        .rev()
        .find(|m| m.first < below && total.saturating_sub(m.before) >= at_least)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(n: u64) -> Mark {
        Mark {
            offset: n * 100,
            first: Ts::new(n as f64).unwrap(),
            before: n * 10,
        }
    }

    #[test]
    fn marks_stay_few_dense_at_the_newest_end_and_keep_the_first() {
        let mut marks = Vec::new();
        for n in 0..10_000 {
            push(&mut marks, mark(n));
            assert!(marks.len() <= MAX_MARKS);
        }
        let newest: Vec<u64> = marks
            .iter()
            .rev()
            .take(KEPT_EXACT)
            .map(|m| m.offset / 100)
            .collect();
        let want: Vec<u64> = (10_000 - KEPT_EXACT as u64..10_000).rev().collect();
        assert_eq!(newest, want);
        assert_eq!(marks[0], mark(0), "the oldest mark survives thinning");
        assert!(marks.windows(2).all(|w| w[0].offset < w[1].offset));
    }

    #[test]
    fn the_start_is_the_last_mark_below_the_range_with_enough_after_it() {
        let marks: Vec<Mark> = (0..10).map(mark).collect();
        // 100 messages in the file; marks every 10 from ts 0.
        let ts = |t: f64| Ts::new(t).unwrap();
        assert_eq!(start_for(&marks, 100, ts(7.5), 1).unwrap().before, 70);
        // A mark at exactly the range's ts may miss a tie group before it.
        assert_eq!(start_for(&marks, 100, ts(7.0), 1).unwrap().before, 60);
        assert_eq!(start_for(&marks, 100, ts(9.5), 25).unwrap().before, 70);
        assert!(start_for(&marks, 100, ts(0.0), 1).is_none());
        assert!(start_for(&marks, 100, ts(9.5), 101).is_none());
    }
}
