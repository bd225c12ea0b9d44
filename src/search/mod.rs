//! Full-text search over every personality's chat history.
//!
//! One tantivy index for the whole data directory, in `<data_dir>/search/`
//! (one rather than one per personality: a search over all personalities
//! is one query with one ranking and one sort, forgetting a personality is
//! one delete, and a reader beside the daemon opens one directory). It is
//! derived data: everything in it is made from the store, and it can be
//! removed at any time (`chatkeep reindex` or the next sync makes it anew).
//!
//! - [`tokenizer`]: how text becomes terms (every script, CJK, emoji, accents);
//! - [`schema`]: the fields of a document (a piece of text of a message version);
//! - [`document`]: a history entry as documents;
//! - `story`: the digest of a message's overlay record, to find what the overlay changed;
//! - [`coverage`]: what the index covers, committed with it, and what to do next;
//! - [`index`]: the directory, opened or made anew;
//! - [`writer`]: catching up with the store, for the holder of the lock;
//! - [`query`]: searching, for anyone.
//!
//! Each sync catches its personality up after the store's commit; a failure
//! there is a warning, never the backup's failure, and the next sync (or
//! `chatkeep search`, when nothing holds the data directory) catches up.

pub mod coverage;
pub mod document;
pub mod index;
pub mod query;
pub mod schema;
mod story;
pub mod tokenizer;
pub mod writer;

use std::path::{Path, PathBuf};

pub use coverage::{Coverage, Covered, Plan};
pub use document::{Role, VersionKind};
pub use index::{INDEX_DIR, index_dir};
pub use query::{Hit, SearchIndex, SearchQuery, SearchResults, Snippet, Sort};
pub use writer::{Done, Indexer};

use crate::store::{ChatStore, Store};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(
        "there is no search index in {} yet; `chatkeep reindex` builds it (so does the next sync)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error(
        "the search index in {} is from another version of chatkeep; `chatkeep reindex` rebuilds it \
         (so does the next sync)",
        path.display()
    )]
    Outdated { path: PathBuf },
    #[error(
        "the search index in {} cannot be read ({reason}); `chatkeep reindex` rebuilds it",
        path.display()
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error("search index {}: {source}", path.display())]
    Index {
        path: PathBuf,
        source: tantivy::TantivyError,
    },
    #[error("{}: {}", path.display(), crate::store::fsio::explain(source))]
    Io { path: PathBuf, source: std::io::Error },
    #[error("reading the chat history: {0}")]
    Store(String),
    #[error("the query cannot be read: {0}")]
    Query(String),
}

/// Whether `dir` holds a chat history (its state file).
pub(crate) fn has_history(dir: &Path) -> bool {
    dir.join("chat_state.json").is_file()
}

/// The slugs of every personality with a chat history in `data_dir`.
pub fn personalities(data_dir: &Path) -> Result<Vec<String>, SearchError> {
    let entries = std::fs::read_dir(data_dir).map_err(|source| SearchError::Io {
        path: data_dir.to_owned(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| crate::store::personality_dir(data_dir, name).is_ok())
        .filter(|name| has_history(&data_dir.join(name)))
        .collect();
    names.sort();
    Ok(names)
}

/// The personalities whose history `coverage` does not cover as it
/// stands (not indexed, or changed since), and those it covers that have
/// no history any more: what a catch-up would work on.
pub fn behind(data_dir: &Path, coverage: &Coverage) -> Result<Vec<String>, SearchError> {
    let names = personalities(data_dir)?;
    let mut behind: Vec<String> = names
        .iter()
        .filter(|name| match ChatStore::open_read_only(&data_dir.join(name)) {
            Ok(chat) => coverage::plan(coverage.personalities.get(*name), chat.state()) != Plan::UpToDate,
            Err(_) => true,
        })
        .cloned()
        .collect();
    behind.extend(
        coverage
            .personalities
            .keys()
            .filter(|name| !names.contains(name))
            .cloned(),
    );
    Ok(behind)
}

/// Catches the index up with `name`'s history after a sync (or an import,
/// an audit) committed to it. Never fails what called it: a failure is a
/// warning, and the next catch-up does the work.
pub async fn index_after_commit(store: &Store, name: &str) {
    let root = store.root().to_owned();
    let owned = name.to_owned();
    let started = std::time::Instant::now();
    // CPU and disk work: off the async workers. The caller holds the data
    // directory (`store`) until this returns.
    let result = tokio::task::spawn_blocking(move || -> Result<Done, SearchError> {
        let mut indexer = Indexer::open_at(&root)?;
        let done = indexer.catch_up(&owned)?;
        indexer.finish()?;
        Ok(done)
    })
    .await;
    let result = result.unwrap_or_else(|e| Err(SearchError::Store(e.to_string())));
    report(name, result, started.elapsed());
}

/// [`index_after_commit`], for callers that are not async.
pub fn index_after_commit_blocking(store: &Store, name: &str) {
    let started = std::time::Instant::now();
    let result = Indexer::open(store).and_then(|mut indexer| {
        let done = indexer.catch_up(name)?;
        indexer.finish()?;
        Ok(done)
    });
    report(name, result, started.elapsed());
}

fn report(name: &str, result: Result<Done, SearchError>, took: std::time::Duration) {
    match result {
        Ok(Done::UpToDate) => {}
        Ok(done) => tracing::debug!(
            personality = name,
            ?done,
            seconds = took.as_secs_f64(),
            "search index caught up"
        ),
        Err(e) => tracing::warn!(
            personality = name,
            "the search index was not brought up to date ({e}); the backup is not affected, and \
             the next sync catches up"
        ),
    }
}

#[cfg(test)]
mod tests;
