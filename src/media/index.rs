//! The media index: one SQLite database, `<data_dir>/media/index.sqlite`,
//! shared by every personality. It holds what became of each URL (its
//! last record: fetched, failed, gone, refused) and, per personality, the
//! references its messages and profile make to URLs, in the order they
//! were first seen.
//!
//! Why a database and not lines in a file: a backup of a million pictures
//! has a million URLs, and a run must look each one up, count them by
//! state and list them in order without holding them all in memory. SQLite
//! does that from disk with a bounded page cache, commits crash-safe (a
//! transaction is whole or absent after a kill), and lets exports and
//! `verify` read beside a running daemon (write-ahead log: readers see the
//! last commit and never block the writer).
//!
//! Only the holder of the data directory's lock writes ([`Index`]);
//! everyone else reads through [`Reader`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::refs::{MediaKind, MediaRef};
use super::{MediaHash, MediaUrl};
use crate::store::fsio;

/// The database in `<data_dir>/media`.
pub const INDEX_FILE: &str = "index.sqlite";
/// What chatkeep 0.1 kept instead, one JSON line per record; imported
/// into the database, then removed.
pub const LEGACY_INDEX_FILE: &str = "index.jsonl";

/// How long a reader or the writer waits for the other's lock on the
/// database before giving up (both hold it for milliseconds).
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS urls (
    url TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    file TEXT,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs (
    seq INTEGER PRIMARY KEY,
    personality TEXT NOT NULL,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    UNIQUE (personality, url, kind, message)
);
";

/// What became of a URL, as its last record says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MediaState {
    /// Stored as `file` (`<hash>.<ext>` in the store).
    Fetched {
        hash: MediaHash,
        file: String,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
    /// Not stored this time; tried again from `next_retry` on.
    Failed {
        attempts: u32,
        next_retry: DateTime<Utc>,
        error: String,
    },
    /// The host answered 404 or 410: the message keeps its URL, nothing
    /// more is asked.
    Gone { status: u16 },
    /// Larger than `max_file_size` (at the time): not stored, not retried.
    TooLarge { limit: u64 },
    /// Never fetched: not http(s), an address on the host's own network,
    /// too many redirects.
    Refused { reason: String },
}

impl MediaState {
    /// Whether a run should (try to) fetch the URL at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        matches!(self, MediaState::Failed { next_retry, .. } if *next_retry <= now)
    }

    /// The state's name, as the `state` field has it.
    pub fn name(&self) -> &'static str {
        match self {
            MediaState::Fetched { .. } => "fetched",
            MediaState::Failed { .. } => "failed",
            MediaState::Gone { .. } => "gone",
            MediaState::TooLarge { .. } => "too_large",
            MediaState::Refused { .. } => "refused",
        }
    }
}

/// One record: what happened to a URL, and when.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MediaRecord {
    pub url: MediaUrl,
    /// When this happened.
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub state: MediaState,
}

/// How many distinct URLs of a personality's references are in each state
/// (`pending`: no record yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub pending: u64,
    pub fetched: u64,
    pub failed: u64,
    pub gone: u64,
    pub refused: u64,
}

/// A reference as the database numbers it: `seq` grows with each new one.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberedRef {
    pub seq: i64,
    pub reference: MediaRef,
}

/// One page of a personality's references: those numbered in
/// `above..=up_to`, at most `limit`, in `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefPage {
    pub above: i64,
    pub up_to: i64,
    pub order: Order,
    pub limit: usize,
}

/// Which way to page through references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// First seen first.
    Oldest,
    /// Last seen first.
    Newest,
}

fn sql_error(e: rusqlite::Error) -> std::io::Error {
    std::io::Error::other(format!("the media index: {e}"))
}

/// Opens the database at `path`; `write`: create it and its tables.
fn connect(path: &Path, write: bool) -> std::io::Result<Connection> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
    // A page cache of 2 MiB and temporary b-trees (DISTINCT, ORDER BY) on
    // disk: memory stays the same whatever the number of URLs.
    conn.execute_batch("PRAGMA cache_size = -2048; PRAGMA temp_store = FILE;")
        .map_err(sql_error)?;
    if write {
        // FULL: each commit is fsynced before it returns, as every other
        // record of the store is.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(sql_error)?;
        conn.execute_batch(SCHEMA).map_err(sql_error)?;
    }
    Ok(conn)
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Attachment => "attachment",
        MediaKind::Voice => "voice",
        MediaKind::Avatar => "avatar",
    }
}

fn kind_of(name: &str) -> Option<MediaKind> {
    match name {
        "attachment" => Some(MediaKind::Attachment),
        "voice" => Some(MediaKind::Voice),
        "avatar" => Some(MediaKind::Avatar),
        _ => None,
    }
}

/// `kind IN (...)` for `kinds`, made of the fixed names only.
fn kinds_clause(kinds: &[MediaKind]) -> String {
    let names: Vec<String> = kinds.iter().map(|k| format!("'{}'", kind_name(*k))).collect();
    format!("kind IN ({})", names.join(", "))
}

/// A record stored as JSON; one that does not parse (written by a newer
/// chatkeep, say) is as if absent: the worst outcome is a file fetched again.
fn parse_record(json: &str) -> Option<MediaRecord> {
    serde_json::from_str(json).ok()
}

fn reference(url: String, kind: &str, message: String) -> Option<MediaRef> {
    Some(MediaRef {
        url: MediaUrl::new(url),
        kind: kind_of(kind)?,
        message: (!message.is_empty()).then_some(message),
    })
}

/// Queries both [`Index`] and [`Reader`] answer, on any connection.
mod query {
    use super::*;

    pub fn get(conn: &Connection, url: &MediaUrl) -> std::io::Result<Option<MediaRecord>> {
        let json: Option<String> = conn
            .prepare_cached("SELECT record FROM urls WHERE url = ?1")
            .and_then(|mut s| s.query_row([url.as_str()], |row| row.get(0)).optional())
            .map_err(sql_error)?;
        Ok(json.as_deref().and_then(parse_record))
    }

    pub fn counts(conn: &Connection, personality: &str, kinds: &[MediaKind]) -> std::io::Result<StateCounts> {
        let mut counts = StateCounts::default();
        if kinds.is_empty() {
            return Ok(counts);
        }
        let sql = format!(
            "SELECT COALESCE(u.state, 'pending'), COUNT(*) \
             FROM (SELECT DISTINCT url FROM refs WHERE personality = ?1 AND {}) r \
             LEFT JOIN urls u ON u.url = r.url GROUP BY 1",
            kinds_clause(kinds)
        );
        let mut statement = conn.prepare(&sql).map_err(sql_error)?;
        let rows = statement
            .query_map([personality], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(sql_error)?;
        for row in rows {
            let (state, n) = row.map_err(sql_error)?;
            let n = n.max(0) as u64;
            match state.as_str() {
                "pending" => counts.pending += n,
                "fetched" => counts.fetched += n,
                "failed" => counts.failed += n,
                "gone" => counts.gone += n,
                _ => counts.refused += n,
            }
        }
        Ok(counts)
    }

    pub fn refs_page(
        conn: &Connection,
        personality: &str,
        page: RefPage,
    ) -> std::io::Result<Vec<NumberedRef>> {
        let RefPage {
            above,
            up_to,
            order,
            limit,
        } = page;
        let sql = match order {
            Order::Oldest => {
                "SELECT seq, url, kind, message FROM refs \
                 WHERE personality = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"
            }
            Order::Newest => {
                "SELECT seq, url, kind, message FROM refs \
                 WHERE personality = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq DESC LIMIT ?4"
            }
        };
        let mut statement = conn.prepare_cached(sql).map_err(sql_error)?;
        let rows = statement
            .query_map(params![personality, above, up_to, limit as i64], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(sql_error)?;
        let mut page = Vec::new();
        for row in rows {
            let (seq, url, kind, message) = row.map_err(sql_error)?;
            if let Some(reference) = reference(url, &kind, message) {
                page.push(NumberedRef { seq, reference });
            }
        }
        Ok(page)
    }

    pub fn last_seq(conn: &Connection, personality: &str) -> std::io::Result<i64> {
        conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM refs WHERE personality = ?1")
            .and_then(|mut s| s.query_row([personality], |row| row.get(0)))
            .map_err(sql_error)
    }
}

/// The index as its one writer, the holder of the data directory's lock,
/// has it. The database is made with the first reference: a data directory
/// whose messages point to no media gets no `media/` at all.
#[derive(Debug)]
pub struct Index {
    dir: PathBuf,
    conn: Option<Connection>,
}

impl Index {
    /// Opens the index in `dir` (`<data_dir>/media`) if there is one, and
    /// takes in a legacy `index.jsonl`.
    pub fn open(dir: &Path) -> std::io::Result<Index> {
        let mut index = Index {
            dir: dir.to_owned(),
            conn: None,
        };
        if dir.join(INDEX_FILE).exists() {
            index.connection()?;
        }
        let legacy = dir.join(LEGACY_INDEX_FILE);
        if legacy.exists() {
            index.import_legacy_index(&legacy)?;
        }
        Ok(index)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    /// The connection, made (with `media/`) if need be.
    fn connection(&mut self) -> std::io::Result<&mut Connection> {
        if self.conn.is_none() {
            fsio::create_private_dir(&self.dir)?;
            let conn = connect(&self.path(), true)?;
            fsio::sync_dir(&self.dir)?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("made above"))
    }

    /// The last record of `url`, if any.
    pub fn get(&self, url: &MediaUrl) -> std::io::Result<Option<MediaRecord>> {
        match &self.conn {
            Some(conn) => query::get(conn, url),
            None => Ok(None),
        }
    }

    /// Makes `record` the URL's state, durably.
    pub fn record(&mut self, record: &MediaRecord) -> std::io::Result<()> {
        let json = serde_json::to_string(record).map_err(std::io::Error::other)?;
        let file = match &record.state {
            MediaState::Fetched { file, .. } => Some(file.as_str()),
            _ => None,
        };
        self.connection()?
            .prepare_cached("INSERT OR REPLACE INTO urls (url, state, file, record) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![record.url.as_str(), record.state.name(), file, json]))
            .map_err(sql_error)?;
        Ok(())
    }

    /// Adds the references of `personality` not listed yet, after those
    /// that are, in one transaction; returns how many were new.
    pub fn add_refs(&mut self, personality: &str, refs: &[MediaRef]) -> std::io::Result<u64> {
        if refs.is_empty() {
            return Ok(0);
        }
        let conn = self.connection()?;
        let tx = conn.transaction().map_err(sql_error)?;
        let mut added = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO refs (personality, url, kind, message) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql_error)?;
            for r in refs {
                let message = r.message.as_deref().unwrap_or("");
                added += insert
                    .execute(params![personality, r.url.as_str(), kind_name(r.kind), message])
                    .map_err(sql_error)? as u64;
            }
        }
        tx.commit().map_err(sql_error)?;
        Ok(added)
    }

    /// The number of the last reference of `personality`; 0 for none.
    pub fn last_seq(&self, personality: &str) -> std::io::Result<i64> {
        match &self.conn {
            Some(conn) => query::last_seq(conn, personality),
            None => Ok(0),
        }
    }

    /// A page of the references of `personality`.
    pub fn refs_page(&self, personality: &str, page: RefPage) -> std::io::Result<Vec<NumberedRef>> {
        match &self.conn {
            Some(conn) => query::refs_page(conn, personality, page),
            None => Ok(Vec::new()),
        }
    }

    /// The states of the distinct URLs that references of `kinds` make.
    pub fn counts(&self, personality: &str, kinds: &[MediaKind]) -> std::io::Result<StateCounts> {
        match &self.conn {
            Some(conn) => query::counts(conn, personality, kinds),
            None => Ok(StateCounts::default()),
        }
    }

    /// Drops the references of `personality` (forgotten); the records of
    /// URLs and the files stay, as other personalities may link them.
    pub fn forget(&mut self, personality: &str) -> std::io::Result<u64> {
        if self.conn.is_none() {
            return Ok(0);
        }
        let removed = self
            .connection()?
            .execute("DELETE FROM refs WHERE personality = ?1", [personality])
            .map_err(sql_error)?;
        Ok(removed as u64)
    }

    /// Takes in the records of a legacy `index.jsonl` (the last line of a
    /// URL wins, a torn or unreadable line is skipped), in one transaction,
    /// then removes the file: a kill before the removal imports it again,
    /// which changes nothing.
    fn import_legacy_index(&mut self, legacy: &Path) -> std::io::Result<()> {
        use std::io::BufRead;
        let file = fsio::open_read(legacy)?;
        let conn = self.connection()?;
        let tx = conn.transaction().map_err(sql_error)?;
        let mut imported = 0u64;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO urls (url, state, file, record) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql_error)?;
            for line in std::io::BufReader::new(file).lines() {
                let line = line?;
                let Some(record) = parse_record(&line) else {
                    continue;
                };
                let file = match &record.state {
                    MediaState::Fetched { file, .. } => Some(file.clone()),
                    _ => None,
                };
                insert
                    .execute(params![
                        record.url.as_str(),
                        record.state.name(),
                        file,
                        line.trim_end()
                    ])
                    .map_err(sql_error)?;
                imported += 1;
            }
        }
        tx.commit().map_err(sql_error)?;
        std::fs::remove_file(legacy)?;
        fsio::sync_dir(&self.dir)?;
        tracing::info!(
            records = imported,
            "took the media index of an earlier version into index.sqlite"
        );
        Ok(())
    }

    /// Takes in a personality's legacy `media_refs.jsonl` (chatkeep 0.1),
    /// in its order, then removes it.
    pub fn import_legacy_refs(&mut self, personality: &str, legacy: &Path) -> std::io::Result<()> {
        use std::io::BufRead;
        let file = match fsio::open_read(legacy) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut batch = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            if let Ok(r) = serde_json::from_str::<MediaRef>(&line?) {
                batch.push(r);
            }
            if batch.len() >= 1000 {
                self.add_refs(personality, &batch)?;
                batch.clear();
            }
        }
        self.add_refs(personality, &batch)?;
        std::fs::remove_file(legacy)?;
        if let Some(dir) = legacy.parent() {
            fsio::sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The index read without writing, by exports, `verify` and snapshots,
/// which may run beside a daemon that writes. Every read in one
/// [`Reader::consistent`] sees the same commit.
#[derive(Debug)]
pub struct Reader {
    conn: std::sync::Mutex<Connection>,
}

impl Reader {
    /// The index of `<data_dir>/media`; `None` when there is none (no
    /// media ever referenced here).
    pub fn open(dir: &Path) -> std::io::Result<Option<Reader>> {
        let path = dir.join(INDEX_FILE);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(Reader {
            conn: std::sync::Mutex::new(connect(&path, false)?),
        }))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// From now until the reader is dropped, every read sees the database
    /// as it is now, whatever the writer commits meanwhile.
    pub fn consistent(&self) -> std::io::Result<()> {
        let conn = self.conn();
        conn.execute_batch("BEGIN").map_err(sql_error)?;
        // A read starts the snapshot; BEGIN alone does not.
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(sql_error)
    }

    pub fn get(&self, url: &MediaUrl) -> std::io::Result<Option<MediaRecord>> {
        query::get(&self.conn(), url)
    }

    pub fn has_refs(&self, personality: &str) -> std::io::Result<bool> {
        Ok(query::last_seq(&self.conn(), personality)? > 0)
    }

    pub fn counts(&self, personality: &str, kinds: &[MediaKind]) -> std::io::Result<StateCounts> {
        query::counts(&self.conn(), personality, kinds)
    }

    /// Each reference of `personality` in the order first seen, with the
    /// last record of its URL, read row by row (memory does not grow with
    /// their number). `f` must not use this reader: it holds it.
    pub fn for_each_ref<E: From<std::io::Error>>(
        &self,
        personality: &str,
        mut f: impl FnMut(&MediaRef, Option<&MediaRecord>) -> Result<(), E>,
    ) -> Result<(), E> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached(
                "SELECT r.url, r.kind, r.message, u.record FROM refs r LEFT JOIN urls u ON u.url = r.url \
                 WHERE r.personality = ?1 ORDER BY r.seq",
            )
            .map_err(sql_error)?;
        let mut rows = statement.query([personality]).map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let read = (|| -> rusqlite::Result<_> {
                Ok((
                    row.get(0)?,
                    row.get::<_, String>(1)?,
                    row.get(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            })();
            let (url, kind, message, json) = read.map_err(sql_error)?;
            if let Some(r) = reference(url, &kind, message) {
                let record = json.as_deref().and_then(parse_record);
                f(&r, record.as_ref())?;
            }
        }
        Ok(())
    }

    /// Each file the references of `personality` lead to, once, in the
    /// order of its first reference: its hash, name and size as recorded.
    /// `f` must not use this reader: it holds it.
    pub fn for_each_file<E: From<std::io::Error>>(
        &self,
        personality: &str,
        mut f: impl FnMut(&MediaHash, &str, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached(
                "SELECT MIN(r.seq) AS first, u.record FROM refs r JOIN urls u ON u.url = r.url \
                 WHERE r.personality = ?1 AND u.state = 'fetched' GROUP BY u.file ORDER BY first",
            )
            .map_err(sql_error)?;
        let mut rows = statement.query([personality]).map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let json: String = row.get(1).map_err(sql_error)?;
            if let Some(MediaRecord {
                state: MediaState::Fetched { hash, file, size, .. },
                ..
            }) = parse_record(&json)
            {
                f(&hash, &file, size)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(url: &str, state: MediaState) -> MediaRecord {
        MediaRecord {
            url: MediaUrl::new(url),
            at: Utc::now(),
            state,
        }
    }

    fn page(above: i64, up_to: i64, order: Order, limit: usize) -> RefPage {
        RefPage {
            above,
            up_to,
            order,
            limit,
        }
    }

    fn reference(url: &str, kind: MediaKind, message: Option<&str>) -> MediaRef {
        MediaRef {
            url: MediaUrl::new(url),
            kind,
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn the_last_record_of_a_url_is_its_state_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        let mut index = Index::open(&media).unwrap();
        assert!(!media.exists(), "no media, no directory");
        index
            .record(&record("https://a/1", MediaState::Gone { status: 404 }))
            .unwrap();
        let failed = MediaState::Failed {
            attempts: 1,
            next_retry: Utc::now(),
            error: "x".into(),
        };
        index.record(&record("https://a/2", failed.clone())).unwrap();
        index
            .record(&record("https://a/2", MediaState::TooLarge { limit: 5 }))
            .unwrap();
        drop(index);
        let index = Index::open(&media).unwrap();
        assert_eq!(
            index.get(&MediaUrl::new("https://a/2")).unwrap().unwrap().state,
            MediaState::TooLarge { limit: 5 }
        );
        assert_eq!(
            Reader::open(&media)
                .unwrap()
                .unwrap()
                .get(&MediaUrl::new("https://a/1"))
                .unwrap()
                .unwrap()
                .state,
            MediaState::Gone { status: 404 }
        );
        assert!(failed.is_due(Utc::now()));
    }

    #[test]
    fn references_are_listed_once_each_in_order_and_counted_by_distinct_url() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        let a = reference("https://c/a.png", MediaKind::Attachment, Some("1"));
        let a_again = reference("https://c/a.png", MediaKind::Attachment, Some("2"));
        let v = reference("https://c/v.mp3", MediaKind::Voice, Some("1"));
        let avatar = reference("https://c/me.png", MediaKind::Avatar, None);
        assert_eq!(index.add_refs("x", &[a.clone(), v.clone()]).unwrap(), 2);
        assert_eq!(
            index
                .add_refs("x", &[a.clone(), avatar.clone(), avatar.clone(), a_again.clone()])
                .unwrap(),
            2
        );
        assert_eq!(
            index.add_refs("y", std::slice::from_ref(&a)).unwrap(),
            1,
            "per personality"
        );
        let oldest = index
            .refs_page("x", page(0, i64::MAX, Order::Oldest, 10))
            .unwrap();
        let urls: Vec<_> = oldest.iter().map(|r| r.reference.clone()).collect();
        assert_eq!(urls, [a.clone(), v.clone(), avatar.clone(), a_again]);
        let newest = index
            .refs_page("x", page(0, oldest[1].seq, Order::Newest, 1))
            .unwrap();
        assert_eq!(newest[0].reference, v);
        index
            .record(&record("https://c/v.mp3", MediaState::Gone { status: 410 }))
            .unwrap();
        let all = [MediaKind::Attachment, MediaKind::Voice, MediaKind::Avatar];
        assert_eq!(
            index.counts("x", &all).unwrap(),
            StateCounts {
                pending: 2,
                gone: 1,
                ..StateCounts::default()
            }
        );
        assert_eq!(index.counts("x", &[MediaKind::Voice]).unwrap().gone, 1);
        assert_eq!(index.forget("x").unwrap(), 4);
        assert_eq!(index.last_seq("x").unwrap(), 0);
        assert!(index.last_seq("y").unwrap() > 0);
    }

    #[test]
    fn a_legacy_jsonl_index_is_taken_in_with_its_torn_line_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join(LEGACY_INDEX_FILE);
        let lines = [
            serde_json::to_string(&record("https://a/1", MediaState::Gone { status: 404 })).unwrap(),
            serde_json::to_string(&record("https://a/1", MediaState::TooLarge { limit: 9 })).unwrap(),
            r#"{"url":"https://a/2","at":"#.to_owned(),
        ];
        std::fs::write(&legacy, lines.join("\n")).unwrap();
        let index = Index::open(dir.path()).unwrap();
        assert!(!legacy.exists());
        assert_eq!(
            index.get(&MediaUrl::new("https://a/1")).unwrap().unwrap().state,
            MediaState::TooLarge { limit: 9 }
        );
        assert_eq!(index.get(&MediaUrl::new("https://a/2")).unwrap(), None);
    }

    #[test]
    fn a_legacy_refs_file_is_taken_in_in_its_order_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index::open(&dir.path().join("media")).unwrap();
        let legacy = dir.path().join("media_refs.jsonl");
        let lines = [
            r#"{"url":"https://c/b.png","kind":"attachment","message":"2"}"#,
            r#"{"url":"https://c/a.png","kind":"voice","message":"\"x\""}"#,
            r#"{"url":"https://c/b.png","kind":"attachment","message":"2"}"#,
            r#"{"url":"https://c/torn"#,
        ];
        std::fs::write(&legacy, lines.join("\n")).unwrap();
        index.import_legacy_refs("p", &legacy).unwrap();
        assert!(!legacy.exists());
        let refs = index
            .refs_page("p", page(0, i64::MAX, Order::Oldest, 10))
            .unwrap();
        let urls: Vec<&str> = refs.iter().map(|r| r.reference.url.as_str()).collect();
        assert_eq!(urls, ["https://c/b.png", "https://c/a.png"]);
        assert_eq!(refs[1].reference.message.as_deref(), Some("\"x\""));
        // Already taken in: nothing to do.
        index.import_legacy_refs("p", &legacy).unwrap();
    }
}
