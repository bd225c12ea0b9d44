//! The media store read without writing: what a personality's references
//! became, for snapshots, `verify` and exports. [`MediaStore::open`]
//! removes leftover downloads and cuts a torn index line, which only the
//! holder of the data directory's lock may do; exports and `verify` run
//! beside a daemon without it, so they read through this instead, taking
//! a torn last line as absent.
//!
//! [`MediaStore::open`]: super::MediaStore::open

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::index::{MediaRecord, MediaState};
use super::refs::{MediaKind, MediaRef};
use super::run::REFS_FILE;
use super::store::{INDEX_FILE, MEDIA_DIR};
use super::{MediaHash, MediaUrl};
use crate::store::fsio;

/// The last state of each URL of the index that `wanted` keeps.
/// No index (media never fetched here) is an empty map.
pub fn read_index(
    data_dir: &Path,
    wanted: impl Fn(&MediaUrl) -> bool,
) -> io::Result<HashMap<MediaUrl, MediaState>> {
    let path = data_dir.join(MEDIA_DIR).join(INDEX_FILE);
    let mut latest = HashMap::new();
    let file = match fsio::open_read(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(latest),
        Err(e) => return Err(e),
    };
    let mut reader = io::BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        // A line without its newline is an append still under way (or
        // torn by a crash): not a record yet.
        if reader.read_line(&mut line)? == 0 || !line.ends_with('\n') {
            break;
        }
        if let Ok(record) = serde_json::from_str::<MediaRecord>(&line)
            && wanted(&record.url)
        {
            latest.insert(record.url, record.state);
        }
    }
    Ok(latest)
}

/// The references a personality's `media_refs.jsonl` lists, in its order,
/// each once; none when it has no such file (media never fetched for it).
pub fn read_refs(personality_dir: &Path) -> io::Result<Vec<MediaRef>> {
    let file = match fsio::open_read(&personality_dir.join(REFS_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut seen = HashSet::new();
    let mut refs = Vec::new();
    for line in io::BufReader::new(file).lines() {
        // A torn last line does not parse, and is skipped like any other.
        if let Ok(r) = serde_json::from_str::<MediaRef>(&line?)
            && seen.insert(r.clone())
        {
            refs.push(r);
        }
    }
    Ok(refs)
}

/// One personality's references and what became of each.
#[derive(Debug)]
pub struct Catalog {
    /// `<data_dir>/media`.
    dir: PathBuf,
    /// In the order of the references file; the state `None` when the
    /// index has no record of the URL yet.
    entries: Vec<(MediaRef, Option<MediaState>)>,
}

impl Catalog {
    /// Reads the references of the personality in `personality_dir` and the
    /// index records of their URLs.
    pub fn read(data_dir: &Path, personality_dir: &Path) -> io::Result<Catalog> {
        let refs = read_refs(personality_dir)?;
        let urls: HashSet<&MediaUrl> = refs.iter().map(|r| &r.url).collect();
        let mut index = read_index(data_dir, |url| urls.contains(url))?;
        let entries = refs
            .into_iter()
            .map(|r| {
                let state = index.get(&r.url).cloned();
                (r, state)
            })
            .collect();
        index.clear();
        Ok(Catalog {
            dir: data_dir.join(MEDIA_DIR),
            entries,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[(MediaRef, Option<MediaState>)] {
        &self.entries
    }

    /// The path of a stored file, as its record names it.
    pub fn path_of(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Each fetched file once, with its hash and size as recorded, in the
    /// order of its first reference.
    pub fn files(&self) -> Vec<(&MediaHash, &str, u64)> {
        let mut seen = HashSet::new();
        self.entries
            .iter()
            .filter_map(|(_, state)| match state {
                Some(MediaState::Fetched { hash, file, size, .. }) if seen.insert(file.as_str()) => {
                    Some((hash, file.as_str(), *size))
                }
                _ => None,
            })
            .collect()
    }

    /// One JSON line per reference: what its URL became. The file is named
    /// as a snapshot holds it (`media/<hash>.<ext>`). Only what describes
    /// the content is written, not when or how often a failure was retried,
    /// so the same media make the same lines.
    pub fn mapping_lines(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (r, state) in &self.entries {
            let mut line = serde_json::json!({
                "url": r.url.as_str(),
                "kind": r.kind,
            });
            if let Some(message) = &r.message {
                // The id as the message has it: its JSON text, unchanged.
                line["message"] = serde_json::from_str(message).unwrap_or(serde_json::Value::Null);
            }
            let described = match state {
                None => serde_json::json!({ "state": "pending" }),
                Some(MediaState::Fetched {
                    file,
                    size,
                    content_type,
                    ..
                }) => serde_json::json!({
                    "state": "fetched",
                    "file": format!("{MEDIA_DIR}/{file}"),
                    "size": size,
                    "content_type": content_type,
                }),
                Some(MediaState::Failed { .. }) => serde_json::json!({ "state": "failed" }),
                Some(MediaState::Gone { status }) => serde_json::json!({ "state": "gone", "status": status }),
                Some(MediaState::TooLarge { limit }) => {
                    serde_json::json!({ "state": "too_large", "limit": limit })
                }
                Some(MediaState::Refused { reason }) => {
                    serde_json::json!({ "state": "refused", "reason": reason })
                }
            };
            if let (Some(line), Some(described)) = (line.as_object_mut(), described.as_object()) {
                line.extend(described.clone());
            }
            // A map of strings and numbers always serializes.
            let _ = serde_json::to_writer(&mut out, &line);
            out.push(b'\n');
        }
        out
    }

    /// Each fetched file read and hashed: one sentence per file that is
    /// missing, unreadable or does not hash to its name.
    pub fn check_files(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (hash, file, size) in self.files() {
            let path = self.path_of(file);
            match hash_file(&path) {
                Ok((found, len)) if found == *hash && len == size => {}
                Ok((found, len)) => problems.push(format!(
                    "media {file}: its content has SHA-256 {found} and {len} bytes, the index says \
                     {hash} and {size}; the file is damaged"
                )),
                Err(e) => problems.push(format!("media {file}: {}", fsio::explain(&e))),
            }
        }
        problems
    }
}

/// The SHA-256 and length of a file, read in blocks.
pub fn hash_file(path: &Path) -> io::Result<(MediaHash, u64)> {
    let mut file = fsio::open_read(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((MediaHash::from_digest(&hasher.finalize()), len))
}

/// What the URLs messages point to became, for an export; with local
/// links, it also remembers which files the export linked, to copy them
/// beside it.
#[derive(Debug, Default)]
pub struct MediaView {
    index: HashMap<MediaUrl, MediaState>,
    /// `<data_dir>/media`.
    dir: PathBuf,
    local: bool,
    linked: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl MediaView {
    /// The whole index of `data_dir`, read only; `local`: links go to the
    /// files, as `media/<hash>.<ext>` beside the export.
    pub fn read(data_dir: &Path, local: bool) -> io::Result<MediaView> {
        Ok(MediaView {
            index: read_index(data_dir, |_| true)?,
            dir: data_dir.join(MEDIA_DIR),
            local,
            linked: Default::default(),
        })
    }

    pub fn is_local(&self) -> bool {
        self.local
    }

    pub fn state(&self, url: &MediaUrl) -> Option<&MediaState> {
        self.index.get(url)
    }

    /// `media/<hash>.<ext>`, relative to the export's directory, when
    /// links are local and `url` was fetched; the file is remembered as
    /// linked.
    pub fn local_path(&self, url: &MediaUrl) -> Option<String> {
        if !self.local {
            return None;
        }
        let Some(MediaState::Fetched { file, .. }) = self.index.get(url) else {
            return None;
        };
        self.linked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(file.clone());
        Some(format!("{MEDIA_DIR}/{file}"))
    }

    /// Every file [`MediaView::local_path`] linked, and where it is stored.
    pub fn linked(&self) -> Vec<(String, PathBuf)> {
        self.linked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|file| (file.clone(), self.dir.join(file)))
            .collect()
    }
}

/// The field name of a kind in `_chatkeep.media`: the message field's
/// name without `_url`.
pub fn kind_field(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Attachment => "attachment",
        MediaKind::Voice => "voice_reply",
        MediaKind::Avatar => "avatar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::store::MediaStore;

    #[test]
    fn the_catalog_reads_without_writing_and_describes_each_reference() {
        let data = tempfile::tempdir().unwrap();
        let personality = data.path().join("x");
        std::fs::create_dir(&personality).unwrap();
        let store = MediaStore::open(data.path()).unwrap();
        let mut part = store.begin().unwrap();
        part.write(b"png bytes").unwrap();
        let (hash, file) = part.finish("png").unwrap();
        let fetched = MediaState::Fetched {
            hash: hash.clone(),
            file: file.clone(),
            size: 9,
            content_type: Some("image/png".into()),
        };
        for (url, state) in [
            ("https://c/a.png", fetched.clone()),
            ("https://c/b.png", fetched),
            ("https://c/gone.mp3", MediaState::Gone { status: 410 }),
        ] {
            store
                .record(MediaRecord {
                    url: MediaUrl::new(url),
                    at: chrono::Utc::now(),
                    state,
                })
                .unwrap();
        }
        drop(store);
        let refs = [
            r#"{"url":"https://c/a.png","kind":"attachment","message":"\"m1\""}"#,
            r#"{"url":"https://c/b.png","kind":"attachment","message":"7"}"#,
            r#"{"url":"https://c/gone.mp3","kind":"voice","message":"7"}"#,
            r#"{"url":"https://c/new.png","kind":"avatar"}"#,
            r#"{"url":"https://c/torn"#,
        ];
        std::fs::write(personality.join(REFS_FILE), refs.join("\n")).unwrap();
        // A torn index line: read as absent, and left as it is.
        let index = data.path().join("media/index.jsonl");
        let mut text = std::fs::read_to_string(&index).unwrap();
        text.push_str(r#"{"url":"https://c/new.png","#);
        std::fs::write(&index, &text).unwrap();
        let catalog = Catalog::read(data.path(), &personality).unwrap();
        assert_eq!(std::fs::read_to_string(&index).unwrap(), text);
        assert_eq!(catalog.entries().len(), 4);
        assert_eq!(catalog.files(), [(&hash, file.as_str(), 9)]);
        let lines: Vec<serde_json::Value> = String::from_utf8(catalog.mapping_lines())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["file"], format!("media/{file}"));
        assert_eq!(lines[0]["message"], "m1");
        assert_eq!(lines[1]["message"], 7);
        assert_eq!(lines[2]["state"], "gone");
        assert_eq!(lines[3]["state"], "pending");
        assert!(catalog.check_files().is_empty());
        std::fs::write(catalog.path_of(&file), b"png bytez").unwrap();
        let problems = catalog.check_files();
        assert!(
            problems[0].contains(&file) && problems[0].contains("damaged"),
            "{problems:?}"
        );
    }
}
