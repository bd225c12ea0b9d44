//! Reading the index: a query in tantivy's syntax, filtered by
//! personality and time, hits newest first or by relevance, each with a
//! snippet of its text and the ranges to highlight in it. Readers take no
//! lock: they see the index's last commit, beside a running sync.

use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, IndexReader, Order, Searcher, TantivyDocument, Term};

use super::SearchError;
use super::coverage::Coverage;
use super::document::{Role, VersionKind};
use super::index::{self, Opened};
use super::schema::Fields;

/// Most characters of a snippet.
pub const SNIPPET_CHARS: usize = 160;

/// How hits are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// The newest message first (by its place in the history).
    #[default]
    Newest,
    /// The best match first (BM25).
    Relevance,
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// tantivy's query syntax: words (all must match), `"a phrase"`,
    /// `a OR b`, `-word`, `role:user`, `version:earlier`, `deleted:true`.
    pub text: String,
    /// Only these personalities (slugs); all when empty.
    pub personalities: Vec<String>,
    /// Only messages placed at this time or later.
    pub since: Option<DateTime<Utc>>,
    /// Only messages placed before this time (exclusive).
    pub before: Option<DateTime<Utc>>,
    pub sort: Sort,
    /// Hits to skip (pages), then at most `limit`.
    pub offset: usize,
    pub limit: usize,
}

impl SearchQuery {
    /// A query for `text` over everything, newest first, 20 hits.
    pub fn new(text: impl Into<String>) -> SearchQuery {
        SearchQuery {
            text: text.into(),
            personalities: Vec::new(),
            since: None,
            before: None,
            sort: Sort::Newest,
            offset: 0,
            limit: 20,
        }
    }
}

/// The hits of a query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchResults {
    /// Documents that match in all (pieces of text, not messages).
    pub total: usize,
    pub hits: Vec<Hit>,
}

/// One piece of text that matched: which message, who wrote it, which
/// version, and a snippet.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub personality: String,
    /// The message's id as JSON (`"m-1"`, `7`): with `place`, what finds
    /// the message in its history.
    pub id: String,
    /// The message's place (its `ts` when first stored), in seconds.
    pub place: f64,
    /// This version's own `ts`, in seconds.
    pub ts: f64,
    /// `place` as RFC 3339 with milliseconds.
    pub time: String,
    pub role: Role,
    pub version: VersionKind,
    /// For an earlier version: when it was superseded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_at: Option<String>,
    /// The message has earlier versions.
    pub revised: bool,
    /// When the service was first seen not to return the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_upstream_at: Option<String>,
    /// The relevance score (BM25; 0 when sorted by time).
    pub score: f32,
    pub snippet: Snippet,
}

/// A fragment of a hit's text, and the byte ranges in it that matched.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snippet {
    pub text: String,
    pub highlighted: Vec<Range<usize>>,
}

impl Snippet {
    /// The fragment with each highlighted range between `before` and
    /// `after` (escape `text` first for HTML: use the ranges instead).
    pub fn marked(&self, before: &str, after: &str) -> String {
        let mut out = String::with_capacity(self.text.len() + 8 * self.highlighted.len());
        let mut at = 0;
        for range in &self.highlighted {
            if range.start < at || range.end > self.text.len() {
                continue;
            }
            out.push_str(&self.text[at..range.start]);
            out.push_str(before);
            out.push_str(&self.text[range.clone()]);
            out.push_str(after);
            at = range.end;
        }
        out.push_str(&self.text[at..]);
        out
    }
}

/// The index opened for reading.
pub struct SearchIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    coverage: Coverage,
}

impl SearchIndex {
    /// Opens `<data_dir>/search` as of its last commit, read-only.
    pub fn open(data_dir: &Path) -> Result<SearchIndex, SearchError> {
        let dir = index::index_dir(data_dir);
        let Opened {
            index,
            fields,
            coverage,
        } = index::open(&dir)?;
        let reader = index::reader(&index, &dir)?;
        Ok(SearchIndex {
            dir,
            index,
            reader,
            fields,
            coverage,
        })
    }

    /// What the index covers.
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    fn fail(&self) -> impl Fn(tantivy::TantivyError) -> SearchError + '_ {
        |source| SearchError::Index {
            path: self.dir.clone(),
            source,
        }
    }

    /// Runs `query`: [`SearchError::Query`] for a query tantivy cannot
    /// parse, with its reason.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        let parsed = self.parse(&query.text)?;
        let filtered = self.filtered(parsed.box_clone(), query);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(query.limit.max(1)).and_offset(query.offset);
        let (total, found): (usize, Vec<(f32, DocAddress)>) = match query.sort {
            Sort::Relevance => searcher
                .search(&filtered, &(Count, top.order_by_score()))
                .map_err(self.fail())?,
            Sort::Newest => {
                let (total, docs) = searcher
                    .search(
                        &filtered,
                        &(Count, top.order_by_fast_field::<f64>("place", Order::Desc)),
                    )
                    .map_err(self.fail())?;
                (total, docs.into_iter().map(|(_, doc)| (0.0, doc)).collect())
            }
        };
        let mut snippets =
            SnippetGenerator::create(&searcher, &*parsed, self.fields.text).map_err(self.fail())?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let hits = found
            .into_iter()
            .filter(|_| query.limit > 0)
            .map(|(score, address)| self.hit(&searcher, &snippets, score, address))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchResults { total, hits })
    }

    fn parse(&self, text: &str) -> Result<Box<dyn Query>, SearchError> {
        let f = &self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.text]);
        parser.set_conjunction_by_default();
        parser
            .parse_query(text)
            .map_err(|e| SearchError::Query(e.to_string()))
    }

    /// `parsed`, and the personalities and time range asked for.
    fn filtered(&self, parsed: Box<dyn Query>, query: &SearchQuery) -> BooleanQuery {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, parsed)];
        if !query.personalities.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = query
                .personalities
                .iter()
                .map(|name| {
                    let term = TermQuery::new(
                        Term::from_field_text(f.personality, name),
                        IndexRecordOption::Basic,
                    );
                    (Occur::Should, Box::new(term) as Box<dyn Query>)
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if query.since.is_some() || query.before.is_some() {
            let seconds = |t: DateTime<Utc>| t.timestamp_millis() as f64 / 1000.0;
            let lower = query.since.map_or(Bound::Unbounded, |t| {
                Bound::Included(Term::from_field_f64(f.place, seconds(t)))
            });
            let upper = query.before.map_or(Bound::Unbounded, |t| {
                Bound::Excluded(Term::from_field_f64(f.place, seconds(t)))
            });
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        BooleanQuery::new(clauses)
    }

    fn hit(
        &self,
        searcher: &Searcher,
        snippets: &SnippetGenerator,
        score: f32,
        address: DocAddress,
    ) -> Result<Hit, SearchError> {
        let f = &self.fields;
        let doc: TantivyDocument = searcher.doc(address).map_err(self.fail())?;
        let text = |field| doc.get_first(field).and_then(|v| v.as_str()).map(str::to_owned);
        let number = |field| doc.get_first(field).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let place = number(f.place);
        let snippet = snippets.snippet_from_doc(&doc);
        let mut snippet = Snippet {
            text: snippet.fragment().to_owned(),
            highlighted: snippet.highlighted().to_vec(),
        };
        if snippet.text.is_empty() {
            // A match with nothing to highlight (`deleted:true` alone): the
            // start of the text.
            let whole = text(f.text).unwrap_or_default();
            snippet.text = whole.chars().take(SNIPPET_CHARS).collect();
        }
        Ok(Hit {
            personality: text(f.personality).unwrap_or_default(),
            id: text(f.id).unwrap_or_default(),
            place,
            ts: number(f.ts),
            time: crate::message::Ts::new(place).map_or_else(String::new, |ts| ts.to_rfc3339()),
            role: text(f.role)
                .as_deref()
                .and_then(Role::parse)
                .unwrap_or(Role::User),
            version: text(f.version)
                .as_deref()
                .and_then(VersionKind::parse)
                .unwrap_or(VersionKind::Current),
            superseded_at: text(f.superseded_at),
            revised: doc
                .get_first(f.revised)
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            deleted_upstream_at: text(f.deleted_at),
            score,
            snippet,
        })
    }
}
