//! What the index covers: per personality, the state of its history when
//! it was last indexed. It is the payload of the index's own commit, so
//! the documents and the claim about them change together, atomically; an
//! index killed before its commit still claims only what it held before.
//!
//! Comparing the recorded state with the history's current one gives the
//! work to do ([`Plan`]): nothing; the messages appended since (a sync
//! that found new messages, the usual case), and those whose overlay
//! record changed when the overlay did (revisions, deletion marks,
//! messages stored late); or the whole personality again, when the
//! history changed in a way the index cannot follow message by message
//! (older history below the oldest message; a history that went back, or
//! belongs to another personality now).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::schema::SCHEMA_VERSION;
use crate::message::Ts;
use crate::store::{ChatState, Head};

/// The whole index's coverage: the payload of its last commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// [`SCHEMA_VERSION`] of the index that wrote it.
    pub schema: u32,
    /// By personality slug.
    pub personalities: BTreeMap<String, Covered>,
}

impl Coverage {
    pub(super) fn empty() -> Coverage {
        Coverage {
            schema: SCHEMA_VERSION,
            personalities: BTreeMap::new(),
        }
    }

    /// The payload of a commit, or `None` for anything unreadable (an index
    /// from another version, a payload cut short): the caller rebuilds.
    pub(super) fn from_payload(payload: Option<&str>) -> Option<Coverage> {
        match payload {
            None => Some(Coverage::empty()),
            Some(text) => serde_json::from_str::<Coverage>(text)
                .ok()
                .filter(|c| c.schema == SCHEMA_VERSION),
        }
    }

    pub(super) fn to_payload(&self) -> String {
        serde_json::to_string(self).expect("coverage serialises")
    }
}

/// One personality's history as indexed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Covered {
    pub personality_id: Option<String>,
    /// The history's `commits` counter.
    pub commits: u64,
    pub message_count: u64,
    pub head: Option<Head>,
    pub oldest: Option<Ts>,
    /// The overlay file's name (`None`: no overlay).
    pub overlay: Option<String>,
    /// Messages indexed at the head's place or after it: those an append
    /// indexes again (a tie group at the head can grow).
    pub at_head: u64,
    /// When this was indexed (RFC 3339).
    pub indexed_at: String,
}

impl Covered {
    /// The part of `state` that says whether anything changed.
    fn same_history(&self, state: &ChatState) -> bool {
        self.personality_id == state.personality_id
            && self.commits == state.commits
            && self.message_count == state.message_count
            && self.head == state.head
            && self.oldest == state.oldest
            && self.overlay == overlay_name(state)
    }
}

/// The overlay file a state names.
pub(super) fn overlay_name(state: &ChatState) -> Option<String> {
    state.overlay.as_ref().map(|o| o.file.clone())
}

/// What it takes to bring one personality's documents up to its history.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The index covers the history as it stands.
    UpToDate,
    /// Messages were appended, and maybe the overlay changed: index again
    /// every message placed at `from` or later (the documents there are
    /// replaced), and, when `overlay` says it changed, every message whose
    /// record differs from the one it was indexed from. The `keep`
    /// messages indexed below `from` stay (less those the overlay
    /// changed); with those read, they must make the history's count, else
    /// the catch-up missed something and the personality is rebuilt.
    Append { from: Ts, keep: u64, overlay: bool },
    /// Index the whole history again.
    Rebuild,
}

/// The plan for a history in `state`, indexed as `covered` says.
pub fn plan(covered: Option<&Covered>, state: &ChatState) -> Plan {
    let Some(covered) = covered else {
        return Plan::Rebuild;
    };
    if covered.same_history(state) {
        return Plan::UpToDate;
    }
    let followable = covered.personality_id == state.personality_id
        && covered.oldest == state.oldest
        && state.commits > covered.commits
        && state.message_count >= covered.message_count;
    match (&covered.head, followable) {
        (Some(head), true) => Plan::Append {
            from: head.ts,
            keep: covered.message_count - covered.at_head.min(covered.message_count),
            overlay: covered.overlay != overlay_name(state),
        },
        _ => Plan::Rebuild,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageId;
    use crate::store::chat::OverlayRef;

    fn state(commits: u64, count: u64, head: f64) -> ChatState {
        ChatState {
            format: 4,
            personality_id: Some("p".into()),
            head: Some(Head {
                ts: Ts::new(head).unwrap(),
                ids: vec![MessageId::from("m")],
            }),
            oldest: Ts::new(1.0),
            message_count: count,
            commits,
            ..ChatState::default()
        }
    }

    fn covered(state: &ChatState, at_head: u64) -> Covered {
        Covered {
            personality_id: state.personality_id.clone(),
            commits: state.commits,
            message_count: state.message_count,
            head: state.head.clone(),
            oldest: state.oldest,
            overlay: overlay_name(state),
            at_head,
            indexed_at: String::new(),
        }
    }

    #[test]
    fn nothing_indexed_is_a_rebuild_and_the_same_history_nothing() {
        let s = state(3, 10, 5.0);
        assert_eq!(plan(None, &s), Plan::Rebuild);
        assert_eq!(plan(Some(&covered(&s, 1)), &s), Plan::UpToDate);
    }

    #[test]
    fn messages_appended_are_an_append_from_the_old_head() {
        let before = state(3, 10, 5.0);
        let after = state(4, 15, 9.0);
        assert_eq!(
            plan(Some(&covered(&before, 2)), &after),
            Plan::Append {
                from: Ts::new(5.0).unwrap(),
                keep: 8,
                overlay: false
            }
        );
    }

    #[test]
    fn an_overlay_change_is_an_append_that_compares_the_records() {
        let before = state(3, 10, 5.0);
        let c = covered(&before, 1);
        let mut overlay = state(4, 10, 5.0);
        overlay.overlay = Some(OverlayRef {
            file: "overlay-1.jsonl.gz".into(),
            len: 10,
            records: 1,
            late: 0,
            revised: 1,
            revisions: 1,
            deleted: 0,
            newest_late: None,
        });
        assert_eq!(
            plan(Some(&c), &overlay),
            Plan::Append {
                from: Ts::new(5.0).unwrap(),
                keep: 9,
                overlay: true
            }
        );
    }

    #[test]
    fn older_history_or_another_personality_is_a_rebuild() {
        let before = state(3, 10, 5.0);
        let c = covered(&before, 1);
        let mut older = state(4, 12, 5.0);
        older.oldest = Ts::new(0.5);
        assert_eq!(plan(Some(&c), &older), Plan::Rebuild);
        let mut other = state(4, 12, 6.0);
        other.personality_id = Some("q".into());
        assert_eq!(plan(Some(&c), &other), Plan::Rebuild);
        // A history that went back (forgotten and synced anew).
        assert_eq!(plan(Some(&c), &state(1, 4, 2.0)), Plan::Rebuild);
    }
}
