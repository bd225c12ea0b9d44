//! `chatkeep search` and `chatkeep reindex`: the full-text index of the
//! chat history (see [`crate::search`]).

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::{Fatal, exit, open_store};
use crate::config::{Config, PersonalitySlug};
use crate::search::{self, Done, Hit, Indexer, SearchError, SearchIndex, SearchQuery, Snippet, Sort};
use crate::store::{Store, StoreError};

/// What `chatkeep search` was asked.
#[derive(Debug, Clone)]
pub struct SearchArgs {
    pub query: String,
    pub personalities: Vec<PersonalitySlug>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub json: bool,
    pub limit: usize,
    pub sort: Sort,
}

/// Prints the hits of `args.query`. Exit 0 when something matched, 1 when
/// nothing did, 2 for a query or date that cannot be used or no index.
///
/// Takes no lock to search. When the index does not cover the store as it
/// stands and nothing holds the data directory, it first catches up (for
/// that moment holding the directory, as `reindex` does); while a daemon
/// or a sync holds it, it searches what the index covers and says what
/// lags behind.
pub fn run(config: &Config, args: &SearchArgs) -> Result<ExitCode, Fatal> {
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        return Err(Fatal::usage("--since is after --until: nothing to search"));
    }
    let data_dir = &config.storage.data_dir;
    if !data_dir.is_dir() {
        return Err(Fatal::usage(format!(
            "no backup in {} yet: nothing to search",
            data_dir.display()
        )));
    }
    catch_up_if_free(data_dir);
    let index = SearchIndex::open(data_dir).map_err(Fatal::usage)?;
    match search::behind(data_dir, index.coverage()) {
        Ok(behind) if !behind.is_empty() => eprintln!(
            "note: the search index does not cover the newest of {} yet (the process holding {} \
             indexes it when its sync ends)",
            behind.join(", "),
            data_dir.display()
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "cannot tell whether the index lags behind"),
    }
    let query = SearchQuery {
        text: args.query.clone(),
        personalities: args.personalities.iter().map(|p| p.as_str().to_owned()).collect(),
        since: args.since,
        before: args.until,
        sort: args.sort,
        offset: 0,
        limit: args.limit,
    };
    let results = index.search(&query).map_err(|e| match e {
        SearchError::Query(_) => Fatal::usage(format!(
            "{e} (words must all match; \"a phrase\", a OR b, -word, role:user, version:earlier, \
             deleted:true; quote a word holding : or other syntax)"
        )),
        e => Fatal::usage(e),
    })?;
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &results)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        let tty = std::io::stdout().is_terminal();
        write_hits(&mut out, &results.hits, tty).and_then(|()| {
            let shown = results.hits.len();
            if results.total > shown {
                writeln!(
                    out,
                    "{shown} of {} matches shown (--limit N shows more)",
                    results.total
                )
            } else {
                Ok(())
            }
        })
    };
    written.map_err(|e| Fatal::usage(format!("cannot write the results: {e}")))?;
    Ok(if results.total > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

/// Catches the index up when it lags behind the store and this process
/// can take the data directory now; else leaves it as it is.
fn catch_up_if_free(data_dir: &Path) {
    let lagging = match SearchIndex::open(data_dir) {
        Ok(index) => search::behind(data_dir, index.coverage()).is_ok_and(|b| !b.is_empty()),
        Err(_) => true,
    };
    if !lagging {
        return;
    }
    let store = match Store::open(data_dir) {
        Ok(store) => store,
        Err(StoreError::Locked { .. }) => return,
        Err(e) => {
            tracing::debug!(error = %e, "cannot take the data directory to update the index");
            return;
        }
    };
    eprintln!("updating the search index from the backup...");
    let result = Indexer::open(&store).and_then(|mut indexer| {
        for (name, done) in indexer.catch_up_all()? {
            if let Err(e) = done {
                eprintln!("warning: `{name}` is not in the search index: {e}");
            }
        }
        indexer.finish()
    });
    if let Err(e) = result {
        eprintln!("warning: the search index was not updated: {e}");
    }
}

/// One hit a line, then its snippet indented; highlighted in bold colour
/// on a terminal, else between `**`.
fn write_hits(out: &mut impl Write, hits: &[Hit], tty: bool) -> std::io::Result<()> {
    let (on, off) = if tty {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    for hit in hits {
        let mut notes = String::new();
        match hit.version {
            search::VersionKind::Current if hit.revised => {
                notes.push_str(" (revised; this is the current version)")
            }
            search::VersionKind::Current => {}
            search::VersionKind::Earlier => notes.push_str(&format!(
                " (earlier version, superseded {})",
                hit.superseded_at.as_deref().unwrap_or("?")
            )),
            search::VersionKind::Regenerated => notes.push_str(" (regenerated reply, replaced upstream)"),
        }
        if let Some(at) = &hit.deleted_upstream_at {
            notes.push_str(&format!(" (gone upstream since {at})"));
        }
        writeln!(
            out,
            "{}  {}  {}  id {}{notes}",
            hit.time,
            hit.personality,
            hit.role.as_str(),
            crate::escape::controls(&hit.id)
        )?;
        writeln!(out, "    {}", render(&hit.snippet, on, off))?;
    }
    Ok(())
}

/// The snippet on one line, controls escaped, matches between `on` and `off`.
fn render(snippet: &Snippet, on: &str, off: &str) -> String {
    let clean = |s: &str| -> String {
        let spaced: Cow<str> = if s.contains(['\n', '\r', '\t']) {
            Cow::Owned(s.replace(['\n', '\r', '\t'], " "))
        } else {
            Cow::Borrowed(s)
        };
        crate::escape::controls(&spaced).into_owned()
    };
    let mut out = String::new();
    let mut at = 0;
    let text = &snippet.text;
    for range in &snippet.highlighted {
        if range.start < at || range.end > text.len() {
            continue;
        }
        out.push_str(&clean(&text[at..range.start]));
        out.push_str(on);
        out.push_str(&clean(&text[range.clone()]));
        out.push_str(off);
        at = range.end;
    }
    out.push_str(&clean(&text[at..]));
    out
}

/// `chatkeep reindex [NAME...]`: makes the named personalities' documents
/// anew from the store (every personality's without names; an index that
/// cannot be opened is made anew first). Takes the data directory's lock.
pub fn reindex(config: &Config, names: &[PersonalitySlug]) -> Result<ExitCode, Fatal> {
    let store = open_store(config)?;
    let root = store.root();
    let all = search::personalities(root).map_err(Fatal::usage)?;
    for name in names {
        if !all.iter().any(|n| n == name.as_str()) {
            return Err(Fatal::usage(format!(
                "no chat history of `{name}` in {}; nothing to index",
                root.display()
            )));
        }
    }
    let mut indexer = Indexer::open(&store).map_err(Fatal::usage)?;
    let chosen: Vec<String> = if names.is_empty() {
        // Personalities no longer in the store leave the index too.
        let gone: Vec<String> = indexer
            .coverage()
            .personalities
            .keys()
            .filter(|n| !all.contains(n))
            .cloned()
            .collect();
        for name in gone {
            indexer.forget(&name).map_err(Fatal::usage)?;
        }
        all
    } else {
        names.iter().map(|n| n.as_str().to_owned()).collect()
    };
    let mut failed = 0;
    for name in &chosen {
        match indexer.rebuild(name) {
            Ok(Done::Rebuilt { messages }) => {
                println!("reindexed `{name}`: {}", crate::words::count(messages, "message"))
            }
            Ok(_) => println!("reindexed `{name}`"),
            Err(e) => {
                failed += 1;
                eprintln!("error: `{name}` was not indexed: {e}");
            }
        }
    }
    indexer.finish().map_err(Fatal::usage)?;
    Ok(if failed > 0 {
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
