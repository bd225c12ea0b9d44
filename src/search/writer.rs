//! Bringing the index up to the store, one personality at a time: each
//! personality's documents and its coverage go in one tantivy commit, made
//! only after the history it read was committed to the store. A process
//! killed in between leaves the index claiming what it held before, which
//! the store still holds; the next catch-up does the rest.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{Index, IndexWriter, Searcher, TantivyDocument, Term};

use super::SearchError;
use super::coverage::{self, Coverage, Covered, Plan};
use super::index::{self, Opened};
use super::schema::Fields;
use super::{document, story};
use crate::message::{MessageId, Ts};
use crate::store::{ChatState, ChatStore, Entry, Store};

/// The writer's memory for documents not yet written to a segment: one
/// thread, 32 MB (tantivy asks 15 MB at least). Bounded whatever the
/// history's length.
const WRITER_MEMORY: usize = 32 << 20;

/// Segments with more documents than this are not merged further. A
/// merge's memory grows with the segments it merges: this bounds it
/// whatever the history's length (a million messages make about two
/// million documents, so some twenty segments), at the cost of a search
/// visiting those segments one after the other.
const MERGE_AT_MOST: u32 = 100_000;

/// tantivy's log merge policy, with merges bounded by [`MERGE_AT_MOST`].
fn merge_policy() -> tantivy::merge_policy::LogMergePolicy {
    let mut policy = tantivy::merge_policy::LogMergePolicy::default();
    policy.set_max_docs_before_merge(MERGE_AT_MOST as usize);
    policy
}

/// One writer per process at a time (tantivy's own lock would refuse a
/// second): the daemon's workers index one after the other.
static WRITING: Mutex<()> = Mutex::new(());

/// What a catch-up did for one personality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Nothing: the index already covered the history.
    UpToDate,
    /// The messages appended since were indexed.
    Appended { messages: u64 },
    /// The personality's documents were made anew from its whole history.
    Rebuilt { messages: u64 },
    /// The personality has no history any more; its documents are gone.
    Dropped,
}

/// A personality, and what its catch-up did.
pub type Outcome = (String, Result<Done, SearchError>);

/// The index open for writing. Holding a `&Store` to open it says this
/// process holds the data directory: nobody else writes the index.
pub struct Indexer {
    dir: PathBuf,
    root: PathBuf,
    index: Index,
    writer: IndexWriter,
    fields: Fields,
    coverage: Coverage,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Indexer {
    /// Opens `<data_dir>/search`, made anew when missing, unreadable or
    /// outdated (it then covers nothing, and every catch-up rebuilds).
    pub fn open(store: &Store) -> Result<Indexer, SearchError> {
        Indexer::open_at(store.root())
    }

    /// [`Indexer::open`] on the data directory `root`, which the caller
    /// holds (a `Store` it could not move to another thread).
    pub(super) fn open_at(root: &Path) -> Result<Indexer, SearchError> {
        let guard = WRITING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = index::index_dir(root);
        let Opened {
            index,
            fields,
            coverage,
        } = index::open_or_create(&dir)?;
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|source| SearchError::Index {
                path: dir.clone(),
                source,
            })?;
        writer.set_merge_policy(Box::new(merge_policy()));
        Ok(Indexer {
            dir,
            root: root.to_owned(),
            index,
            writer,
            fields,
            coverage,
            _one_at_a_time: guard,
        })
    }

    /// What the index covers, as of its last commit.
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    fn fail(&self) -> impl Fn(tantivy::TantivyError) -> SearchError + '_ {
        |source| SearchError::Index {
            path: self.dir.clone(),
            source,
        }
    }

    /// Brings `name`'s documents up to its history, and commits.
    pub fn catch_up(&mut self, name: &str) -> Result<Done, SearchError> {
        self.update(name, false)
    }

    /// Makes `name`'s documents anew from its whole history, and commits.
    pub fn rebuild(&mut self, name: &str) -> Result<Done, SearchError> {
        self.update(name, true)
    }

    /// Catches up every personality with a history in the data directory,
    /// and drops those without one. A personality that fails leaves the
    /// others to go on.
    pub fn catch_up_all(&mut self) -> Result<Vec<Outcome>, SearchError> {
        let mut names = super::personalities(&self.root)?;
        for covered in self.coverage.personalities.keys() {
            if !names.contains(covered) {
                names.push(covered.clone());
            }
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| {
                let done = self.catch_up(&name);
                (name, done)
            })
            .collect())
    }

    /// Removes `name`'s documents and coverage (`chatkeep forget`), and
    /// commits.
    pub fn forget(&mut self, name: &str) -> Result<(), SearchError> {
        self.writer
            .delete_term(Term::from_field_text(self.fields.personality, name));
        self.coverage.personalities.remove(name);
        self.commit()
    }

    /// Waits for tantivy's background merges, so that nothing is left
    /// half-done when the process goes on to exit.
    pub fn finish(self) -> Result<(), SearchError> {
        let dir = self.dir;
        self.writer
            .wait_merging_threads()
            .map_err(|source| SearchError::Index { path: dir, source })
    }

    /// [`Indexer::try_update`]; a failure takes the writer back to the
    /// last commit, so that the next personality starts clean.
    fn update(&mut self, name: &str, rebuild: bool) -> Result<Done, SearchError> {
        let result = self.try_update(name, rebuild);
        if result.is_err() {
            let rolled_back = self.writer.rollback().map_err(self.fail()).and_then(|_| {
                let metas = self.index.load_metas().map_err(self.fail())?;
                Ok(Coverage::from_payload(metas.payload.as_deref()).unwrap_or_else(Coverage::empty))
            });
            match rolled_back {
                Ok(coverage) => self.coverage = coverage,
                Err(e) => tracing::warn!("{e}"),
            }
        }
        result
    }

    fn try_update(&mut self, name: &str, rebuild: bool) -> Result<Done, SearchError> {
        let dir = self.root.join(name);
        if !super::has_history(&dir) {
            if !self.coverage.personalities.contains_key(name) {
                return Ok(Done::UpToDate);
            }
            self.forget(name)?;
            return Ok(Done::Dropped);
        }
        let chat = ChatStore::open_read_only(&dir).map_err(|e| SearchError::Store(e.to_string()))?;
        let plan = if rebuild {
            Plan::Rebuild
        } else {
            coverage::plan(self.coverage.personalities.get(name), chat.state())
        };
        let (done, at_head) = match plan {
            Plan::UpToDate => return Ok(Done::UpToDate),
            Plan::Append { from, keep, overlay } => match self.append(name, &chat, from, keep, overlay)? {
                Some((messages, at_head)) => (Done::Appended { messages }, at_head),
                None => {
                    tracing::debug!(personality = name, "the append did not add up; rebuilding");
                    self.rebuild_from(name, &chat)?
                }
            },
            Plan::Rebuild => self.rebuild_from(name, &chat)?,
        };
        self.coverage
            .personalities
            .insert(name.to_owned(), covered(chat.state(), at_head));
        self.commit()?;
        Ok(done)
    }

    /// Replaces every document of `name` by those of its whole history.
    fn rebuild_from(&mut self, name: &str, chat: &ChatStore) -> Result<(Done, u64), SearchError> {
        self.writer
            .delete_term(Term::from_field_text(self.fields.personality, name));
        let history = chat
            .history_with_keys()
            .map_err(|e| SearchError::Store(e.to_string()))?;
        let (messages, at_head) = self.add_entries(name, history, chat.state(), |_, _| true)?;
        Ok((Done::Rebuilt { messages }, at_head))
    }

    /// Replaces the documents of `name` placed at `from` or later by those
    /// of the history there, and (`overlay`: the overlay changed) those of
    /// every message whose overlay record is not the one it was indexed
    /// from. `None` when the count does not come out as the history's
    /// (`keep` messages were indexed below `from`): then nothing is to be
    /// trusted but a rebuild.
    fn append(
        &mut self,
        name: &str,
        chat: &ChatStore,
        from: Ts,
        keep: u64,
        overlay: bool,
    ) -> Result<Option<(u64, u64)>, SearchError> {
        let changed = if overlay {
            self.overlay_changes(name, chat)?
        } else {
            HashMap::new()
        };
        let personality = TermQuery::new(
            Term::from_field_text(self.fields.personality, name),
            IndexRecordOption::Basic,
        );
        let placed = RangeQuery::new(
            Bound::Included(Term::from_field_f64(self.fields.place, from.as_f64())),
            Bound::Unbounded,
        );
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(personality)),
            (Occur::Must, Box::new(placed)),
        ]);
        self.writer.delete_query(Box::new(query)).map_err(self.fail())?;
        for key in changed.keys() {
            self.writer
                .delete_term(Term::from_field_text(self.fields.key, key));
        }
        // Below `from`, only the changed messages are read again; those
        // that had documents are replaced, the others (stored late) added.
        let below: Vec<&(Ts, bool)> = changed.values().filter(|(place, _)| *place < from).collect();
        let replaced = below.iter().filter(|(_, had)| *had).count() as u64;
        let start = below
            .iter()
            .map(|(place, _)| *place)
            .fold(from, |a, b| if b < a { b } else { a });
        let history = chat
            .history_from(start)
            .map_err(|e| SearchError::Store(e.to_string()))?;
        let (messages, at_head) = self.add_entries(name, history, chat.state(), |place, id| {
            place >= from || (place >= start && changed.contains_key(&document::message_key(name, place, id)))
        })?;
        let adds_up = (keep + messages).checked_sub(replaced) == Some(chat.state().message_count);
        Ok(adds_up.then_some((messages, at_head)))
    }

    /// The keys of the messages whose overlay record differs from the one
    /// their documents were made from (a record new, changed or gone), with
    /// their places and whether they had documents.
    pub(super) fn overlay_changes(
        &self,
        name: &str,
        chat: &ChatStore,
    ) -> Result<HashMap<String, (Ts, bool)>, SearchError> {
        let searcher = index::reader(&self.index, &self.dir)?.searcher();
        let mut changed = HashMap::new();
        let mut in_overlay = HashSet::new();
        for record in chat.overlay_records() {
            let record = record.map_err(|e| SearchError::Store(e.to_string()))?;
            let key = document::message_key(name, record.position, &record.id);
            let indexed = self.indexed_story(&searcher, &key)?;
            if indexed != Some(story::of_record(&record)) {
                changed.insert(key.clone(), (record.position, indexed.is_some()));
            }
            in_overlay.insert(key);
        }
        // Messages indexed from a record the overlay no longer holds (a
        // deletion mark lifted).
        let storied = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.personality, name),
                    IndexRecordOption::Basic,
                )) as Box<dyn Query>,
            ),
            (
                Occur::MustNot,
                Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.story, 0),
                    IndexRecordOption::Basic,
                )),
            ),
        ]);
        for address in searcher.search(&storied, &DocSetCollector).map_err(self.fail())? {
            let doc: TantivyDocument = searcher.doc(address).map_err(self.fail())?;
            let key = doc.get_first(self.fields.key).and_then(|v| v.as_str());
            let place = doc
                .get_first(self.fields.place)
                .and_then(|v| v.as_f64())
                .and_then(Ts::new);
            if let (Some(key), Some(place)) = (key, place)
                && !in_overlay.contains(key)
            {
                changed.entry(key.to_owned()).or_insert((place, true));
            }
        }
        Ok(changed)
    }

    /// The overlay digest the documents of `key` were made from; `None`
    /// when the message has no documents.
    fn indexed_story(&self, searcher: &Searcher, key: &str) -> Result<Option<u64>, SearchError> {
        let query = TermQuery::new(
            Term::from_field_text(self.fields.key, key),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(self.fail())?;
        let Some((_, address)) = top.first() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(*address).map_err(self.fail())?;
        Ok(Some(
            doc.get_first(self.fields.story)
                .and_then(|v| v.as_u64())
                .unwrap_or(0),
        ))
    }

    /// Adds the documents of every entry `select` takes (by place and id).
    /// Returns the messages added, and how many of them are placed at the
    /// head or after it.
    fn add_entries(
        &mut self,
        name: &str,
        history: impl Iterator<Item = std::io::Result<Entry>>,
        state: &ChatState,
        select: impl Fn(Ts, &MessageId) -> bool,
    ) -> Result<(u64, u64), SearchError> {
        let head = state.head.as_ref().map(|h| h.ts);
        let (mut messages, mut at_head, mut unreadable) = (0u64, 0u64, 0u64);
        for entry in history {
            let entry = entry.map_err(|e| SearchError::Store(e.to_string()))?;
            let place = entry.key.as_ref().map(|k| k.position);
            if let Some(key) = &entry.key
                && !select(key.position, &key.id)
            {
                continue;
            }
            messages += 1;
            if head.is_none_or(|h| place.is_none_or(|p| p >= h)) {
                at_head += 1;
            }
            let (docs, bad) = document::documents(&self.fields, name, &entry);
            unreadable += u64::from(bad);
            for doc in docs {
                self.add(doc)?;
            }
        }
        if unreadable > 0 {
            tracing::warn!(
                personality = name,
                versions = unreadable,
                "message versions that are not JSON objects were left out of the search index"
            );
        }
        Ok((messages, at_head))
    }

    fn add(&mut self, doc: TantivyDocument) -> Result<(), SearchError> {
        self.writer.add_document(doc).map_err(self.fail())?;
        Ok(())
    }

    /// Commits the documents with the coverage as the commit's payload.
    fn commit(&mut self) -> Result<(), SearchError> {
        let payload = self.coverage.to_payload();
        let dir = self.dir.clone();
        let fail = |source| SearchError::Index {
            path: dir.clone(),
            source,
        };
        let mut prepared = self.writer.prepare_commit().map_err(fail)?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(fail)?;
        Ok(())
    }

    /// The index's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The coverage of a history in `state`, indexed whole.
fn covered(state: &ChatState, at_head: u64) -> Covered {
    Covered {
        personality_id: state.personality_id.clone(),
        commits: state.commits,
        message_count: state.message_count,
        head: state.head.clone(),
        oldest: state.oldest,
        overlay: coverage::overlay_name(state),
        at_head,
        indexed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}
