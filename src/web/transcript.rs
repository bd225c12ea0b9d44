//! A page of a history, by cursor: the messages from a place on, or the
//! ones just before it, read from the nearest gzip member below the place
//! ([`Starts`], every member of every file, found once per file), so that a
//! page in the middle of a million messages decompresses a member or two
//! (at most a few thousand messages), not the history, and holds one page
//! in memory.

use std::collections::VecDeque;

use crate::message::Ts;
use crate::store::chat::marks::Mark;
use crate::store::{ChatStore, ChatStoreError, Entry, History};

/// Where each gzip member of the history starts: `(source, mark)` in the
/// order of the history.
#[derive(Debug, Clone, Default)]
pub struct Starts {
    pub members: Vec<(usize, Mark)>,
}

impl Starts {
    /// The history from the member that holds the messages just below
    /// `at`, stepping back over members until at least `back` messages
    /// come before `at` (when the members say how many they hold).
    fn history(&self, store: &ChatStore, at: Ts, back: u64) -> Result<History, ChatStoreError> {
        // No members: the history has no file yet, or none was scanned.
        let Some(mut i) = self.members.iter().rposition(|(_, m)| m.first < at) else {
            return store.history_with_keys();
        };
        let mut counted = 0;
        while counted < back && i > 0 {
            let ((source, mark), (next_source, next)) = (self.members[i - 1], self.members[i]);
            // Messages in member i - 1: known within one file.
            counted += if source == next_source {
                next.before - mark.before
            } else {
                0
            };
            i -= 1;
            if source != next_source && counted == 0 {
                // Crossed into an earlier file: its last member may be
                // short; one more makes sure.
                counted = 1;
            }
        }
        let (source, mark) = &self.members[i];
        Ok(store.history_from_member(*source, mark))
    }
}

/// Messages a page shows.
pub const PAGE: usize = 50;

/// A place in the history: the messages placed at `ts`, after the first
/// `skip` of them (messages can share a `ts`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub ts: Ts,
    pub skip: u64,
}

impl Cursor {
    pub fn at(ts: Ts) -> Cursor {
        Cursor { ts, skip: 0 }
    }

    /// `ts=<seconds>&skip=<n>`, as links carry it.
    pub fn query(&self) -> String {
        format!("{}&skip={}", self.ts, self.skip)
    }
}

/// One page, oldest first, and where the pages beside it start.
#[derive(Debug)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// The first message of this page, for the page before it.
    pub first: Option<Cursor>,
    /// The first message after this page, if any.
    pub next: Option<Cursor>,
    /// Whether there are messages before this page.
    pub has_older: bool,
}

/// The place of an entry the reader gave a key (every entry of
/// `history_with_keys` and `history_from_member` has one).
fn position(entry: &Entry) -> Ts {
    entry.key.as_ref().map_or(Ts::EPOCH, |k| k.position)
}

/// Cursors of a run of entries: each entry's place, counting those before
/// it at the same place.
struct Places {
    last: Option<Ts>,
    same: u64,
}

impl Places {
    fn new(start: Option<Cursor>) -> Places {
        Places {
            last: start.map(|c| c.ts),
            same: start.map_or(0, |c| c.skip),
        }
    }

    fn cursor_of(&mut self, ts: Ts) -> Cursor {
        if self.last == Some(ts) {
            self.same += 1;
        } else {
            self.last = Some(ts);
            self.same = 0;
        }
        Cursor { ts, skip: self.same }
    }
}

/// The `n` messages from `from` on.
pub fn from(store: &ChatStore, starts: &Starts, from: Cursor, n: usize) -> Result<Page, ChatStoreError> {
    let mut places = Places::new(None);
    let mut entries = Vec::with_capacity(n);
    let mut first = None;
    let mut next = None;
    let mut has_older = false;
    for entry in starts.history(store, from.ts, 0)? {
        let entry = entry.map_err(ChatStoreError::Read)?;
        let cursor = places.cursor_of(position(&entry));
        if before(cursor, from) {
            has_older = true;
            continue;
        }
        if entries.len() == n {
            next = Some(cursor);
            break;
        }
        first.get_or_insert(cursor);
        entries.push(entry);
    }
    // A start after the first file's may have older messages unseen.
    has_older |= store.state().oldest.is_some_and(|o| o < from.ts) || from.skip > 0;
    // An empty page past the newest message still leads to the older ones.
    let first = first.or(has_older.then_some(from));
    Ok(Page {
        entries,
        first,
        next,
        has_older,
    })
}

/// The `n` messages just before `until` (the newest ones, for `None`).
pub fn before(cursor: Cursor, until: Cursor) -> bool {
    cursor.ts < until.ts || (cursor.ts == until.ts && cursor.skip < until.skip)
}

/// The `n` messages just before `until` (the newest `n` without one).
pub fn until(
    store: &ChatStore,
    starts: &Starts,
    until: Option<Cursor>,
    n: usize,
) -> Result<Page, ChatStoreError> {
    let at = until.map_or(Ts::new(f64::MAX).unwrap_or(Ts::EPOCH), |c| c.ts);
    let mut places = Places::new(None);
    let mut window: VecDeque<(Cursor, Entry)> = VecDeque::with_capacity(n + 1);
    let mut dropped = false;
    let mut next = None;
    for entry in starts.history(store, at, n as u64 + 1)? {
        let entry = entry.map_err(ChatStoreError::Read)?;
        let cursor = places.cursor_of(position(&entry));
        if until.is_some_and(|u| !before(cursor, u)) {
            next = Some(cursor);
            break;
        }
        window.push_back((cursor, entry));
        if window.len() > n {
            window.pop_front();
            dropped = true;
        }
    }
    let first = window.front().map(|(c, _)| *c);
    let has_older =
        dropped || first.is_some_and(|f| store.state().oldest.is_some_and(|o| o < f.ts) || f.skip > 0);
    Ok(Page {
        entries: window.into_iter().map(|(_, e)| e).collect(),
        first,
        next,
        has_older,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    /// A store of 300 messages in 5 commits, sealed into several small
    /// segments, with runs of messages sharing a `ts`.
    fn store(dir: &std::path::Path) -> (ChatStore, Vec<String>) {
        let mut store = ChatStore::open_with(dir, 200).unwrap();
        let mut ids = Vec::new();
        for batch in 0..5 {
            let mut commit = store.begin().unwrap();
            for i in 0..60 {
                let n = batch * 60 + i;
                // Every third message shares the `ts` of the one before.
                let ts = 1_700_000_000 + (n - n / 3) * 60;
                let m = Message::from_stored_line(&format!(r#"{{"id":"m{n}","ts":{ts},"message":"x"}}"#))
                    .unwrap();
                commit.append(&m).unwrap();
                ids.push(format!("m{n}"));
            }
            commit.finish(None).unwrap();
        }
        assert!(
            store.state().segments.len() >= 3,
            "{:?}",
            store.state().segments.len()
        );
        (store, ids)
    }

    fn ids(page: &Page) -> Vec<String> {
        page.entries
            .iter()
            .map(|e| e.key.as_ref().unwrap().id.as_str().to_owned())
            .collect()
    }

    fn scanned(store: &ChatStore) -> Starts {
        let mut members = Vec::new();
        for file in store.files() {
            for mark in store.scan_members(&file, |_| {}).unwrap() {
                members.push((file.source, mark));
            }
        }
        Starts { members }
    }

    #[test]
    fn pages_forward_and_backward_cover_every_message_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (store, all) = store(dir.path());
        let found = scanned(&store);
        assert!(found.members.len() >= 5, "{found:?}");
        // From every member, and from none (the whole history read).
        for starts in [found, Starts::default()] {
            pages_cover(&store, &starts, &all);
        }
    }

    fn pages_cover(store: &ChatStore, starts: &Starts, all: &[String]) {
        let mut forward = Vec::new();
        let mut cursor = Some(Cursor::at(Ts::EPOCH));
        while let Some(at) = cursor {
            let page = from(store, starts, at, 7).unwrap();
            assert!(page.entries.len() <= 7);
            forward.extend(ids(&page));
            cursor = page.next;
        }
        assert_eq!(forward, all);

        let mut backward: Vec<String> = Vec::new();
        let mut page = until(store, starts, None, 7).unwrap();
        loop {
            let mut got = ids(&page);
            got.extend(backward);
            backward = got;
            if !page.has_older {
                break;
            }
            page = until(store, starts, page.first, 7).unwrap();
        }
        assert_eq!(backward, all);
    }
}
