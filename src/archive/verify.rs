//! Checking a snapshot file against its manifest entry, and saying exactly
//! what is wrong.
//!
//! The size and SHA-256 of the file; then (unencrypted, or with an
//! identity) the gzip stream to its trailer, every tar member a plain file
//! the manifest lists, every member parsed as JSON, and the chat history's
//! message count, `ts` order, time range and (at [`Depth::Full`]) unique
//! ids, which [`super::history`] checks as it streams past.

use std::collections::HashSet;
use std::io::{self, BufReader, Read};

use flate2::read::GzDecoder;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

use super::encryption::Identities;
use super::history::check_history;
use super::manifest::SnapshotEntry;
use super::restore::plain_name;
use super::snapshot::{chat_member, hex, known_members, media_member_hash};

/// How much a chat history check may remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Constant memory: everything but id uniqueness. The check of a
    /// snapshot just written (its ids come from the store, where a sync
    /// keeps them unique).
    Stream,
    /// Also that no id appears twice, which keeps 20 bytes per message
    /// (20 MiB for a million): `chatkeep verify`.
    Full,
}

/// What checking one snapshot file found.
#[derive(Debug, Default)]
pub struct FileCheck {
    /// Each a sentence naming the part, what was expected and what was found.
    pub problems: Vec<String>,
    /// False when only the size and SHA-256 could be checked (encrypted, no
    /// identity given).
    pub content_checked: bool,
}

/// Checks the snapshot of personality `name` read from `file` against
/// `entry`. An encrypted one is decrypted with `identities` when given;
/// without, only its size and SHA-256 are checked.
pub fn check_file(
    file: impl Read,
    name: &str,
    entry: &SnapshotEntry,
    identities: Option<&Identities>,
    depth: Depth,
) -> FileCheck {
    let mut check = FileCheck::default();
    let mut hashing = HashingReader::new(BufReader::with_capacity(1 << 16, file));
    match (entry.encrypted, identities) {
        (false, _) => {
            check.content_checked = true;
            check_content(&mut hashing, name, entry, depth, &mut check.problems);
        }
        (true, Some(identities)) => match identities.decrypt(&mut hashing) {
            Ok(plain) => {
                check.content_checked = true;
                check_content(plain, name, entry, depth, &mut check.problems);
            }
            Err(e) => check.problems.push(format!(
                "cannot decrypt it with the identity in {}: {e}",
                identities.path().display()
            )),
        },
        (true, None) => {}
    }
    // Whatever the checks left unread still counts for the SHA-256.
    if let Err(e) = io::copy(&mut hashing, &mut io::sink()) {
        check.problems.insert(0, format!("cannot read the file: {e}"));
        return check;
    }
    let (size, sha256) = hashing.finish();
    let mut first = Vec::new();
    if size != entry.size {
        first.push(format!(
            "size: the manifest says {} bytes, the file has {size}",
            entry.size
        ));
    }
    if sha256 != entry.sha256 {
        first.push(format!(
            "SHA-256: the manifest says {}, the file has {sha256}",
            entry.sha256
        ));
    }
    check.problems.splice(0..0, first);
    check
}

/// The gzip stream of a snapshot: its tar, its members, its trailer.
fn check_content(
    plain: impl Read,
    name: &str,
    entry: &SnapshotEntry,
    depth: Depth,
    problems: &mut Vec<String>,
) {
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 16, plain)));
    let chat = chat_member(name);
    let known: HashSet<String> = known_members(name).into_iter().collect();
    let listed: HashSet<&str> = entry.members.iter().map(String::as_str).collect();
    let is_known = |file: &str| known.contains(file) || media_member_hash(file).is_some();
    let mut seen: HashSet<String> = HashSet::new();
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!("cannot read the archive: {e}"));
            return;
        }
    };
    for member in entries {
        let mut member = match member {
            Ok(member) => member,
            Err(e) => {
                problems.push(format!(
                    "cannot read the archive after {} members: {e}",
                    seen.len()
                ));
                return;
            }
        };
        // The name as stored, not as the tar crate would normalise it: a
        // `./x` or `a/../x` must show here as restore would see it.
        let file = String::from_utf8_lossy(&member.path_bytes()).into_owned();
        let kind = member.header().entry_type();
        if !kind.is_file() {
            problems.push(format!("member {file:?} is not a plain file ({kind:?})"));
            continue;
        }
        let media_hash = media_member_hash(&file);
        if plain_name(&file).is_none() && media_hash.is_none() {
            problems.push(format!(
                "member {file:?} is not a plain file name (a directory part, `..` or a root): restore refuses it"
            ));
            continue;
        }
        if !is_known(&file) {
            problems.push(format!("member {file:?} is not one a snapshot of {name} holds"));
        }
        if !listed.contains(file.as_str()) {
            problems.push(format!("member {file:?} is not one the manifest lists"));
        }
        if seen.contains(&file) {
            problems.push(format!("member {file:?} appears twice"));
        }
        let parsed = if let Some(hash) = media_hash {
            check_media(&mut member, &file, hash, problems)
        } else if file == chat {
            check_history(&mut member, &file, entry, depth, problems)
        } else if file.ends_with(".jsonl") {
            check_lines(&mut member, &file, problems)
        } else {
            serde_json::from_reader::<_, IgnoredAny>(BufReader::new(&mut member)).map(|_| ())
        };
        match parsed {
            Ok(()) => {}
            // The stream itself broke (damaged gzip or age data): nothing
            // after this point can be read.
            Err(e) if e.is_io() => {
                problems.push(format!(
                    "{file} cannot be read to its end, the archive is damaged: {e}"
                ));
                return;
            }
            Err(e) => problems.push(format!("{file} is not valid JSON: {e}")),
        }
        seen.insert(file);
    }
    for missing in entry.members.iter().filter(|m| !seen.contains(*m)) {
        problems.push(format!("{missing} is missing, though the manifest lists it"));
    }
    // Whatever the manifest says, a snapshot holds the chat history.
    if !seen.contains(&chat) && !entry.members.contains(&chat) {
        problems.push(format!(
            "{chat} is missing: every snapshot holds the chat history"
        ));
    }
    for unknown in entry.members.iter().filter(|m| !is_known(m)) {
        problems.push(format!(
            "the manifest lists {:?}, which is not a member a snapshot of {name} holds",
            unknown
        ));
    }
    // tar stops at its end marker; the gzip trailer (CRC-32 and length)
    // is checked only when the stream is read to its end.
    if let Err(e) = io::copy(&mut archive.into_inner(), &mut io::sink()) {
        problems.push(format!("the gzip stream is damaged: {e}"));
    }
}

/// A media member: its bytes hash to the hash its name says.
fn check_media(
    member: impl Read,
    file: &str,
    hash: &str,
    problems: &mut Vec<String>,
) -> Result<(), serde_json::Error> {
    let mut hashing = HashingReader::new(member);
    io::copy(&mut hashing, &mut io::sink()).map_err(serde_json::Error::io)?;
    let (_, found) = hashing.finish();
    if found != hash {
        problems.push(format!(
            "{file}: its content has SHA-256 {found}, not the one its name says"
        ));
    }
    Ok(())
}

/// A JSON Lines member: every line one JSON object.
fn check_lines(member: impl Read, file: &str, problems: &mut Vec<String>) -> Result<(), serde_json::Error> {
    use std::io::BufRead;
    for (n, line) in BufReader::new(member).lines().enumerate() {
        let line = line.map_err(serde_json::Error::io)?;
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                problems.push(format!("{file}: line {} is not a JSON object", n + 1));
                return Ok(());
            }
            Err(e) => {
                problems.push(format!("{file}: line {} is not valid JSON: {e}", n + 1));
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Counts and hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.len, hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    /// A snapshot of personality `x` whose chat history holds `messages`,
    /// and a manifest entry that agrees with it on the count and range.
    fn snapshot(messages: &[&str], first: &str, last: &str) -> (Vec<u8>, SnapshotEntry) {
        let history = format!(
            "{{\"shape_id\": \"\", \"shape_name\": \"x\", \"message_count\": {}, \
             \"date_range\": {{\"earliest\": \"{first}\", \"latest\": \"{last}\"}}, \
             \"export_date\": \"2026-01-01T00:00:00.000Z\", \"messages\": [{}]}}",
            messages.len(),
            messages.join(",")
        );
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, body) in [("x.json", "{}"), ("x_chat_history.json", history.as_str())] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o600);
            tar.append_data(&mut header, name, body.as_bytes()).unwrap();
        }
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        let entry = SnapshotEntry {
            message_count: messages.len() as u64,
            first_message: Some(first.into()),
            last_message: Some(last.into()),
            ..entry_of(&bytes, &["x.json", "x_chat_history.json"])
        };
        (bytes, entry)
    }

    /// A manifest entry for `bytes` with the right size and SHA-256, listing
    /// `members`, of an empty history.
    fn entry_of(bytes: &[u8], members: &[&str]) -> SnapshotEntry {
        SnapshotEntry {
            file: "x-20260101T000000Z.tar.gz".into(),
            time: chrono::DateTime::UNIX_EPOCH,
            size: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
            message_count: 0,
            first_message: None,
            last_message: None,
            content_digest: String::new(),
            encrypted: false,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            beginning_confirmed_at: None,
            tail_probed_at: None,
        }
    }

    fn problems(bytes: &[u8], entry: &SnapshotEntry, depth: Depth) -> Vec<String> {
        check_file(bytes, "x", entry, None, depth).problems
    }

    /// A snapshot of `x` holding members with these raw names (written
    /// into the tar header as they are, `..` and all), and a manifest entry
    /// that lists `listed`, with the right size and SHA-256.
    fn crafted(names: &[&str], listed: &[&str]) -> (Vec<u8>, SnapshotEntry) {
        let history = r#"{"shape_id": "", "shape_name": "x", "message_count": 0, "date_range": {"earliest": null, "latest": null}, "export_date": "2026-01-01T00:00:00.000Z", "messages": []}"#;
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for name in names {
            let body = if name.ends_with("_chat_history.json") {
                history
            } else {
                "{}"
            };
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_size(body.len() as u64);
            header.set_mode(0o600);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            tar.append(&header, body.as_bytes()).unwrap();
        }
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        let entry = entry_of(&bytes, listed);
        (bytes, entry)
    }

    #[test]
    fn members_restore_would_refuse_fail_verify_too() {
        for bad in ["../x.json", "/abs.json", "sub/x.json", "./x.json"] {
            let (bytes, entry) = crafted(&[bad, "x_chat_history.json"], &[bad, "x_chat_history.json"]);
            let found = problems(&bytes, &entry, Depth::Full);
            assert!(
                found
                    .iter()
                    .any(|p| p.contains(bad) && p.contains("not a plain file name")),
                "{bad}: {found:?}"
            );
        }
        // A plain name, but not one a snapshot of x holds.
        let (bytes, entry) = crafted(
            &["x.json", "notes.json", "x_chat_history.json"],
            &["x.json", "notes.json", "x_chat_history.json"],
        );
        let found = problems(&bytes, &entry, Depth::Full);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|p| p.contains("notes.json")), "{found:?}");
    }

    #[test]
    fn a_media_member_must_hash_to_its_name() {
        let body = b"\x89PNG not really";
        let right = format!("media/{}.png", hex(&Sha256::digest(body)));
        let wrong = format!("media/{}.png", "0".repeat(64));
        let at = "1970-01-01T00:00:01.000Z";
        let (bytes, sound) = snapshot(&[r#"{"id":"a","ts":1}"#], at, at);
        // The sound snapshot's members, then the two media members.
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut plain = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for member in plain.entries().unwrap() {
            let mut member = member.unwrap();
            let mut header = member.header().clone();
            let path = member.path().unwrap().into_owned();
            let mut data = Vec::new();
            io::copy(&mut member, &mut data).unwrap();
            tar.append_data(&mut header, path, &data[..]).unwrap();
        }
        for name in [&right, &wrong] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o600);
            tar.append_data(&mut header, name, &body[..]).unwrap();
        }
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        let entry = SnapshotEntry {
            message_count: 1,
            first_message: sound.first_message,
            last_message: sound.last_message,
            ..entry_of(&bytes, &["x.json", "x_chat_history.json", &right, &wrong])
        };
        let found = problems(&bytes, &entry, Depth::Full);
        assert_eq!(
            found,
            [format!(
                "{wrong}: its content has SHA-256 {}, not the one its name says",
                hex(&Sha256::digest(body))
            )]
        );
    }

    #[test]
    fn a_snapshot_without_its_chat_history_fails_whatever_the_manifest_says() {
        let (bytes, entry) = crafted(&["x.json"], &["x.json"]);
        let found = problems(&bytes, &entry, Depth::Full);
        assert_eq!(
            found,
            ["x_chat_history.json is missing: every snapshot holds the chat history"]
        );
    }

    #[test]
    fn a_sound_history_passes() {
        let (bytes, entry) = snapshot(
            &[
                r#"{"id":"a","ts":1}"#,
                r#"{"id":7,"ts":1,"x":[1]}"#,
                r#"{"id":"b","ts":2.5}"#,
            ],
            "1970-01-01T00:00:01.000Z",
            "1970-01-01T00:00:02.500Z",
        );
        assert_eq!(problems(&bytes, &entry, Depth::Full), Vec::<String>::new());
    }

    #[test]
    fn duplicate_ids_and_disorder_are_found() {
        let (bytes, entry) = snapshot(
            &[
                r#"{"id":"a","ts":1}"#,
                r#"{"id":"b","ts":3}"#,
                r#"{"id":"a","ts":2}"#,
                r#"{"ts":4}"#,
            ],
            "1970-01-01T00:00:01.000Z",
            "1970-01-01T00:00:02.000Z",
        );
        let found = problems(&bytes, &entry, Depth::Full);
        assert_eq!(
            found,
            [
                "x_chat_history.json: messages are not oldest first: message 3 has ts 2, after 3 in \
                 message 2; 1 such place",
                "x_chat_history.json: 1 message without a usable id or ts: message 4 has no usable id",
                "x_chat_history.json: 1 id appears more than once (messages 1, 3)",
            ]
        );
        // The constant-memory check leaves ids out.
        assert_eq!(problems(&bytes, &entry, Depth::Stream).len(), 2);
    }

    #[test]
    fn a_range_or_member_list_that_disagrees_is_named() {
        let (bytes, mut entry) = snapshot(
            &[r#"{"id":"a","ts":1}"#],
            "1970-01-01T00:00:01.000Z",
            "1970-01-01T00:00:01.000Z",
        );
        entry.last_message = Some("1970-01-01T00:00:09.000Z".into());
        entry.members.insert(1, "x_memories.json".into());
        assert_eq!(
            problems(&bytes, &entry, Depth::Full),
            [
                "x_chat_history.json: the newest message is from 1970-01-01T00:00:01.000Z, the \
                 manifest says 1970-01-01T00:00:09.000Z",
                "x_memories.json is missing, though the manifest lists it",
            ]
        );
    }
}
