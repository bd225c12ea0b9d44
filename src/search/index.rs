//! The index directory, `<data_dir>/search/`: opened for reading by
//! anyone, and for writing by the holder of the data directory's lock,
//! which recreates it when it is missing, unreadable or of another schema
//! version (its contents are only ever derived from the store).

use std::path::{Path, PathBuf};

use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, ReloadPolicy};

use super::SearchError;
use super::coverage::Coverage;
use super::schema::{self, Fields};
use super::tokenizer;
use crate::store::fsio;

/// The index's directory in the data directory (a reserved name).
pub const INDEX_DIR: &str = "search";

/// `<data_dir>/search`.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(INDEX_DIR)
}

/// An opened index with its fields and the coverage of its last commit.
pub(super) struct Opened {
    pub index: Index,
    pub fields: Fields,
    pub coverage: Coverage,
}

/// Opens the index in `dir` as it is: [`SearchError::Missing`] when there
/// is none, [`SearchError::Outdated`] when it is of another schema version,
/// [`SearchError::Unreadable`] when tantivy cannot open it.
pub(super) fn open(dir: &Path) -> Result<Opened, SearchError> {
    let unreadable = |e: &dyn std::fmt::Display| SearchError::Unreadable {
        path: dir.to_owned(),
        reason: e.to_string(),
    };
    if !dir.join("meta.json").exists() {
        return Err(SearchError::Missing { path: dir.to_owned() });
    }
    let directory = MmapDirectory::open(dir).map_err(|e| unreadable(&e))?;
    let index = Index::open(directory).map_err(|e| unreadable(&e))?;
    let (schema, fields) = schema::build();
    let metas = index.load_metas().map_err(|e| unreadable(&e))?;
    let coverage = Coverage::from_payload(metas.payload.as_deref());
    match coverage {
        Some(coverage) if index.schema() == schema => {
            index
                .tokenizers()
                .register(tokenizer::NAME, tokenizer::analyzer());
            Ok(Opened {
                index,
                fields,
                coverage,
            })
        }
        _ => Err(SearchError::Outdated { path: dir.to_owned() }),
    }
}

/// Opens the index in `dir` for the writer, made anew (empty, covering
/// nothing) when it is missing, unreadable or outdated. Only the holder of
/// the data directory's lock calls this.
pub(super) fn open_or_create(dir: &Path) -> Result<Opened, SearchError> {
    match open(dir) {
        Ok(opened) => return Ok(opened),
        Err(SearchError::Missing { .. }) => {}
        Err(e) => {
            tracing::warn!("{e}; rebuilding it from the store");
        }
    }
    let io = |source| SearchError::Io {
        path: dir.to_owned(),
        source,
    };
    // Whatever is there is derived data that cannot be opened: start over.
    if std::fs::symlink_metadata(dir).is_ok() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    fsio::create_private_dir(dir).map_err(io)?;
    let (schema, fields) = schema::build();
    let directory = MmapDirectory::open(dir).map_err(|e| SearchError::Unreadable {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let index = Index::create(directory, schema, tantivy::IndexSettings::default()).map_err(|source| {
        SearchError::Index {
            path: dir.to_owned(),
            source,
        }
    })?;
    index
        .tokenizers()
        .register(tokenizer::NAME, tokenizer::analyzer());
    Ok(Opened {
        index,
        fields,
        coverage: Coverage::empty(),
    })
}

/// A reader that sees the last commit when it was made; searches take
/// their own snapshot of it.
pub(super) fn reader(index: &Index, dir: &Path) -> Result<IndexReader, SearchError> {
    index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(|source| SearchError::Index {
            path: dir.to_owned(),
            source,
        })
}
