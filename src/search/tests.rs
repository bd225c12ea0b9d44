//! The index against a real store, commit by commit: what a catch-up does
//! (append or rebuild) and what a search then finds.

use super::*;
use crate::message::{Message, Ts};
use crate::store::ChatStore;

const NAME: &str = "lilith";

fn msg(id: &str, ts: f64, user: &str, reply: &str) -> Message {
    Message::from_stored_line(&format!(
        r#"{{"id":"{id}","ts":{ts},"message":"{user}","reply":"{reply}"}}"#
    ))
    .unwrap()
}

fn ts(t: f64) -> Ts {
    Ts::new(t).unwrap()
}

/// A data directory holding one personality's history, sealed at every
/// commit (segment size 1) so that appends read across segments.
fn store() -> (tempfile::TempDir, Store, ChatStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let chat = store.personality(NAME).unwrap().chat(1).unwrap();
    (dir, store, chat)
}

fn append(chat: &mut ChatStore, messages: &[Message]) {
    let mut commit = chat.begin().unwrap();
    for m in messages {
        commit.append(m).unwrap();
    }
    commit.finish(None).unwrap();
}

fn catch_up(store: &Store) -> Done {
    let mut indexer = Indexer::open(store).unwrap();
    let done = indexer.catch_up(NAME).unwrap();
    indexer.finish().unwrap();
    done
}

fn search(store: &Store, text: &str) -> SearchResults {
    let index = SearchIndex::open(store.root()).unwrap();
    index.search(&SearchQuery::new(text)).unwrap()
}

/// (id, role, version) of each hit, newest first.
fn hits(store: &Store, text: &str) -> Vec<(String, &'static str, &'static str)> {
    search(store, text)
        .hits
        .into_iter()
        .map(|h| (h.id, h.role.as_str(), h.version.as_str()))
        .collect()
}

fn hit(id: &str, role: &'static str, version: &'static str) -> (String, &'static str, &'static str) {
    (format!("\"{id}\""), role, version)
}

#[test]
fn new_messages_are_appended_and_a_tie_at_the_head_is_not_doubled() {
    let (_dir, store, mut chat) = store();
    append(
        &mut chat,
        &[
            msg("a", 1.0, "hello moon", "hi"),
            msg("b", 2.0, "river", "moon river"),
        ],
    );
    assert_eq!(catch_up(&store), Done::Rebuilt { messages: 2 });
    assert_eq!(catch_up(&store), Done::UpToDate);
    // One more at the head's ts (a tie group that grew), two after it.
    append(
        &mut chat,
        &[
            msg("c", 2.0, "moon", "x"),
            msg("d", 3.0, "y", "z"),
            msg("e", 4.0, "moon", "w"),
        ],
    );
    // The head's two messages are read again with the three new ones.
    assert_eq!(catch_up(&store), Done::Appended { messages: 4 });
    let mut found = hits(&store, "moon");
    // Newest first; b and c share a place, in either order.
    assert_eq!(found[0], hit("e", "user", "current"));
    assert_eq!(found[3], hit("a", "user", "current"));
    found[1..3].sort();
    assert_eq!(
        found[1..3],
        [hit("b", "personality", "current"), hit("c", "user", "current")]
    );
    assert_eq!(search(&store, "moon").total, 4, "each once");
    assert_eq!(search(&store, "river").total, 2);
}

#[test]
fn revisions_and_deletion_marks_are_found_and_marked() {
    let (_dir, store, mut chat) = store();
    append(
        &mut chat,
        &[msg("a", 1.0, "q", "first answer"), msg("b", 2.0, "q", "keep")],
    );
    catch_up(&store);
    let mut commit = chat.begin().unwrap();
    commit
        .revise(
            ts(1.0),
            &msg("a", 1.0, "q", "second answer"),
            "2026-11-30T00:00:00Z",
        )
        .unwrap();
    commit
        .mark_deleted(ts(2.0), &"b".into(), "2026-11-30T01:00:00Z")
        .unwrap();
    commit.finish(None).unwrap();
    // Both messages read again: the head's, and the revised one below it.
    assert_eq!(catch_up(&store), Done::Appended { messages: 2 });

    assert_eq!(hits(&store, "first"), [hit("a", "personality", "earlier")]);
    assert_eq!(hits(&store, "second"), [hit("a", "personality", "current")]);
    let both = search(&store, "answer");
    assert_eq!(both.total, 2);
    assert!(both.hits.iter().all(|h| h.revised));
    let earlier = &search(&store, "first").hits[0];
    assert_eq!(earlier.superseded_at.as_deref(), Some("2026-11-30T00:00:00Z"));
    // The user's text, unchanged between versions, is indexed once.
    assert_eq!(search(&store, "q").total, 2);

    let gone = &search(&store, "keep").hits[0];
    assert_eq!(gone.deleted_upstream_at.as_deref(), Some("2026-11-30T01:00:00Z"));
    let mut marked = hits(&store, "deleted:true");
    marked.sort();
    assert_eq!(
        marked,
        [hit("b", "personality", "current"), hit("b", "user", "current")]
    );
}

#[test]
fn forgetting_drops_the_documents_and_the_coverage() {
    let (_dir, store, mut chat) = store();
    append(&mut chat, &[msg("a", 1.0, "moon", "x")]);
    catch_up(&store);
    let mut indexer = Indexer::open(&store).unwrap();
    indexer.forget(NAME).unwrap();
    indexer.finish().unwrap();
    assert_eq!(search(&store, "moon").total, 0);
    let index = SearchIndex::open(store.root()).unwrap();
    assert!(index.coverage().personalities.is_empty());
    // Still in the store: the index says so, and a catch-up rebuilds it.
    assert_eq!(behind(store.root(), index.coverage()).unwrap(), [NAME]);
    assert_eq!(catch_up(&store), Done::Rebuilt { messages: 1 });
}

#[test]
fn an_unreadable_index_is_made_anew_by_the_writer() {
    let (_dir, store, mut chat) = store();
    append(&mut chat, &[msg("a", 1.0, "moon", "x")]);
    catch_up(&store);
    std::fs::write(index_dir(store.root()).join("meta.json"), "{ not json").unwrap();
    assert!(matches!(
        SearchIndex::open(store.root()),
        Err(SearchError::Unreadable { .. })
    ));
    assert_eq!(catch_up(&store), Done::Rebuilt { messages: 1 });
    assert_eq!(search(&store, "moon").total, 1);
}

/// Every document of the index, as comparable text.
fn all_documents(store: &Store) -> Vec<String> {
    let index = SearchIndex::open(store.root()).unwrap();
    let mut query = SearchQuery::new("*");
    query.limit = 100_000;
    let mut docs: Vec<String> = index
        .search(&query)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| {
            format!(
                "{} {} {} {} {:?} {:?} {} {}",
                h.id,
                h.place,
                h.role.as_str(),
                h.version.as_str(),
                h.superseded_at,
                h.deleted_upstream_at,
                h.revised,
                h.snippet.text
            )
        })
        .collect();
    docs.sort();
    docs
}

#[test]
fn overlay_changes_followed_message_by_message_give_what_a_rebuild_gives() {
    let (_dir, store, mut chat) = store();
    let texts = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let messages: Vec<Message> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| msg(&format!("m{i}"), 10.0 + i as f64, t, &format!("re {t}")))
        .collect();
    append(&mut chat, &messages);
    assert_eq!(catch_up(&store), Done::Rebuilt { messages: 8 });

    let at = "2026-11-30T00:00:00Z";
    // Deep in the history: a revision, a mark, a message stored late; and
    // one appended.
    let mut commit = chat.begin().unwrap();
    commit
        .revise(ts(11.0), &msg("m1", 11.0, "bravo", "re bravo again"), at)
        .unwrap();
    commit.mark_deleted(ts(13.0), &"m3".into(), at).unwrap();
    commit.late(&msg("late", 12.5, "india", "re india")).unwrap();
    commit.append(&msg("m8", 30.0, "juliet", "re juliet")).unwrap();
    commit.finish(None).unwrap();
    // m1 to the head: read again from the oldest change.
    assert!(matches!(catch_up(&store), Done::Appended { .. }));
    let followed = all_documents(&store);
    assert_eq!(search(&store, "india").total, 2);
    assert_eq!(search(&store, "again").total, 1);

    // The mark lifted (back upstream), another revision of the same one.
    let mut commit = chat.begin().unwrap();
    commit.unmark(ts(13.0), &"m3".into()).unwrap();
    commit
        .revise(ts(11.0), &msg("m1", 11.0, "bravo", "re bravo thrice"), at)
        .unwrap();
    commit.finish(None).unwrap();
    assert!(matches!(catch_up(&store), Done::Appended { .. }));
    // Each message's digest is its record's: nothing left to change.
    let reader = ChatStore::open_read_only(&store.root().join(NAME)).unwrap();
    let indexer = Indexer::open(&store).unwrap();
    assert_eq!(indexer.overlay_changes(NAME, &reader).unwrap().len(), 0);
    drop(indexer);
    assert_eq!(search(&store, "deleted:true").total, 0, "the mark is lifted");
    assert_eq!(search(&store, "thrice").total, 1);
    let followed_again = all_documents(&store);

    let mut indexer = Indexer::open(&store).unwrap();
    assert_eq!(indexer.rebuild(NAME).unwrap(), Done::Rebuilt { messages: 10 });
    indexer.finish().unwrap();
    assert_eq!(followed_again, all_documents(&store));
    assert_ne!(followed, followed_again);
}
