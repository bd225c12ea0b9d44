//! The media store read without writing: what a personality's references
//! became, for snapshots, `verify` and exports. [`MediaStore::open`]
//! removes leftover downloads and writes the index, which only the holder
//! of the data directory's lock may do; exports and `verify` run beside a
//! daemon without it, so they read through this instead.
//!
//! [`MediaStore::open`]: super::MediaStore::open

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::index::{MediaRecord, MediaState, Reader};
use super::refs::MediaKind;
use super::store::MEDIA_DIR;
use super::{MediaHash, MediaUrl};
use crate::store::fsio;

/// One personality's references and what became of each, as the index
/// had them when the catalog was read: every read of it sees that one
/// commit, whatever a sync beside it records meanwhile.
#[derive(Debug)]
pub struct Catalog {
    /// `<data_dir>/media`.
    dir: PathBuf,
    personality: String,
    /// `None`: no index, or no reference of this personality.
    reader: Option<Reader>,
}

impl Catalog {
    /// The references of the personality in `personality_dir` (its name
    /// is the directory's) and the index records of their URLs.
    pub fn read(data_dir: &Path, personality_dir: &Path) -> io::Result<Catalog> {
        let dir = data_dir.join(MEDIA_DIR);
        let personality = personality_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reader = match Reader::open(&dir)? {
            Some(reader) => {
                reader.consistent()?;
                reader.has_refs(&personality)?.then_some(reader)
            }
            None => None,
        };
        Ok(Catalog {
            dir,
            personality,
            reader,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.reader.is_none()
    }

    /// The path of a stored file, as its record names it.
    pub fn path_of(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Each fetched file once, with its hash and size as recorded, in the
    /// order of its first reference.
    pub fn for_each_file<E: From<io::Error>>(
        &self,
        f: impl FnMut(&MediaHash, &str, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.reader {
            Some(reader) => reader.for_each_file(&self.personality, f),
            None => Ok(()),
        }
    }

    /// One JSON line per reference, in the order first seen: what its URL
    /// became. The file is named as a snapshot holds it
    /// (`media/<hash>.<ext>`). Only what describes the content is written,
    /// not when or how often a failure was retried, so the same media make
    /// the same lines.
    pub fn write_mapping(&self, out: &mut dyn Write) -> io::Result<()> {
        let Some(reader) = &self.reader else {
            return Ok(());
        };
        reader.for_each_ref(&self.personality, |r, record| -> io::Result<()> {
            let mut line = serde_json::json!({
                "url": r.url.as_str(),
                "kind": r.kind,
            });
            if let Some(message) = &r.message {
                // The id as the message has it: its JSON text, unchanged.
                line["message"] = serde_json::from_str(message).unwrap_or(serde_json::Value::Null);
            }
            let described = describe(record.map(|r| &r.state));
            if let (Some(line), Some(described)) = (line.as_object_mut(), described.as_object()) {
                line.extend(described.clone());
            }
            serde_json::to_writer(&mut *out, &line).map_err(io::Error::other)?;
            out.write_all(b"\n")
        })
    }

    /// Each fetched file read and hashed: one sentence per file that is
    /// missing, unreadable or does not hash to its name.
    pub fn check_files(&self) -> io::Result<Vec<String>> {
        let mut problems = Vec::new();
        self.for_each_file(|hash, file, size| -> io::Result<()> {
            let path = self.path_of(file);
            match hash_file(&path) {
                Ok((found, len)) if found == *hash && len == size => {}
                Ok((found, len)) => problems.push(format!(
                    "media {file}: its content has SHA-256 {found} and {len} bytes, the index says \
                     {hash} and {size}; the file is damaged"
                )),
                Err(e) => problems.push(format!("media {file}: {}", fsio::explain(&e))),
            }
            Ok(())
        })?;
        Ok(problems)
    }
}

/// The part of a mapping line that says what a URL became.
fn describe(state: Option<&MediaState>) -> serde_json::Value {
    match state {
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
        Some(MediaState::TooLarge { limit }) => serde_json::json!({ "state": "too_large", "limit": limit }),
        Some(MediaState::Refused { reason }) => serde_json::json!({ "state": "refused", "reason": reason }),
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
    /// `None`: no index (no media ever referenced here).
    index: Option<Reader>,
    /// `<data_dir>/media`.
    dir: PathBuf,
    local: bool,
    linked: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl MediaView {
    /// The index of `data_dir`, read only; `local`: links go to the
    /// files, as `media/<hash>.<ext>` beside the export.
    pub fn read(data_dir: &Path, local: bool) -> io::Result<MediaView> {
        let dir = data_dir.join(MEDIA_DIR);
        let index = Reader::open(&dir)?;
        if let Some(index) = &index {
            index.consistent()?;
        }
        Ok(MediaView {
            index,
            dir,
            local,
            linked: Default::default(),
        })
    }

    pub fn is_local(&self) -> bool {
        self.local
    }

    /// What `url` became; `None` when nothing is recorded (or the index
    /// cannot be read: the export links the URL, as without media).
    pub fn state(&self, url: &MediaUrl) -> Option<MediaState> {
        let index = self.index.as_ref()?;
        match index.get(url) {
            Ok(record) => record.map(|r: MediaRecord| r.state),
            Err(e) => {
                tracing::warn!(error = %e, "media index not read");
                None
            }
        }
    }

    /// `media/<hash>.<ext>`, relative to the export's directory, when
    /// links are local and `url` was fetched; the file is remembered as
    /// linked.
    pub fn local_path(&self, url: &MediaUrl) -> Option<String> {
        if !self.local {
            return None;
        }
        let Some(MediaState::Fetched { file, .. }) = self.state(url) else {
            return None;
        };
        let path = format!("{MEDIA_DIR}/{file}");
        self.linked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(file);
        Some(path)
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
    use crate::media::MediaRef;
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
        let refs = [
            r#"{"url":"https://c/a.png","kind":"attachment","message":"\"m1\""}"#,
            r#"{"url":"https://c/b.png","kind":"attachment","message":"7"}"#,
            r#"{"url":"https://c/gone.mp3","kind":"voice","message":"7"}"#,
            r#"{"url":"https://c/new.png","kind":"avatar"}"#,
        ];
        let refs: Vec<MediaRef> = refs.iter().map(|r| serde_json::from_str(r).unwrap()).collect();
        store.add_refs("x", &refs).unwrap();
        let catalog = Catalog::read(data.path(), &personality).unwrap();
        // What a sync records after the catalog was read is not in it.
        let later = MediaRef {
            message: Some("8".into()),
            ..refs[0].clone()
        };
        store.add_refs("x", &[later]).unwrap();
        let mut files = Vec::new();
        catalog
            .for_each_file(|h, f, size| -> io::Result<()> {
                files.push((h.clone(), f.to_owned(), size));
                Ok(())
            })
            .unwrap();
        assert_eq!(files, [(hash, file.clone(), 9)], "one file for the two URLs");
        let mut out = Vec::new();
        catalog.write_mapping(&mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["file"], format!("media/{file}"));
        assert_eq!(lines[0]["message"], "m1");
        assert_eq!(lines[1]["message"], 7);
        assert_eq!(lines[2]["state"], "gone");
        assert_eq!(lines[3]["state"], "pending");
        assert!(catalog.check_files().unwrap().is_empty());
        std::fs::write(catalog.path_of(&file), b"png bytez").unwrap();
        let problems = catalog.check_files().unwrap();
        assert!(
            problems[0].contains(&file) && problems[0].contains("damaged"),
            "{problems:?}"
        );
        assert!(
            Catalog::read(data.path(), &data.path().join("nobody"))
                .unwrap()
                .is_empty()
        );
    }
}
