//! Unpacking a snapshot into a directory.
//!
//! The target directory is checked first (see [`fsio::check_output_dir`]:
//! nobody else may be able to write in it, a sticky one such as `/tmp`
//! aside), the file's SHA-256 is checked against the manifest before
//! anything is written, and every target is checked for an existing file
//! first, so a refused restore writes nothing. Members are written
//! atomically (0600), each under its own plain name in the target
//! directory: a member whose name has a directory part, `..`, or is
//! absolute, or that is anything but a regular file, or that the manifest
//! does not list, stops the restore. Without `--force` a member takes its
//! name with `link(2)`, so a file or a symbolic link that appears there in
//! the meantime is not replaced either; with it, `rename(2)` replaces the
//! entry there (a link itself, never what it points to).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use super::encryption::Identities;
use super::manifest::{Manifest, SnapshotEntry};
use super::snapshot::{MEDIA_MEMBER_DIR, hex, media_member_hash};
use super::{ArchiveError, archive_dir};
use crate::config::Config;
use crate::store::fsio;

/// What to restore, where.
pub struct RestoreOptions<'a> {
    /// `latest`, a file name, or a snapshot's time (`20260102T030405Z` or
    /// `2026-01-02T03:04:05Z`).
    pub snapshot: &'a str,
    pub to: &'a Path,
    /// Replace files that exist.
    pub force: bool,
    /// Needed for an encrypted snapshot.
    pub identity: Option<&'a Identities>,
}

/// What a restore wrote.
#[derive(Debug)]
pub struct RestoreReport {
    pub snapshot: String,
    pub files: Vec<PathBuf>,
}

/// Restores a snapshot of `name` into `options.to` (created 0700 if
/// missing). Needs no lock: it only reads the archive.
pub fn restore(config: &Config, name: &str, options: &RestoreOptions) -> Result<RestoreReport, ArchiveError> {
    fsio::check_output_path(options.to).map_err(ArchiveError::UnsafeDir)?;
    let dir = archive_dir(config, name)?;
    let manifest = Manifest::load(&dir, name)?;
    let entry = manifest.entry(name, options.snapshot)?;
    restore_file(&dir.join(&entry.file), entry, options)
}

/// Restores the snapshot file at `path`, which `entry` describes, into
/// `options.to`: the file's size and SHA-256 are checked against `entry`
/// first. For a local snapshot, or one downloaded from a remote.
pub fn restore_file(
    path: &Path,
    entry: &SnapshotEntry,
    options: &RestoreOptions,
) -> Result<RestoreReport, ArchiveError> {
    fsio::check_output_path(options.to).map_err(ArchiveError::UnsafeDir)?;
    if entry.encrypted && options.identity.is_none() {
        return Err(ArchiveError::NeedIdentity {
            file: entry.file.clone(),
        });
    }
    check_digest(path, entry)?;
    let targets: Vec<PathBuf> = entry.members.iter().map(|m| options.to.join(m)).collect();
    if !options.force {
        let existing: Vec<PathBuf> = targets
            .iter()
            .filter(|t| t.symlink_metadata().is_ok())
            .cloned()
            .collect();
        if !existing.is_empty() {
            return Err(ArchiveError::WouldOverwrite { paths: existing });
        }
    }
    fsio::create_output_dir(options.to).map_err(|source| match fsio::into_unsafe_dir(source) {
        Ok(found) => ArchiveError::UnsafeDir(found),
        Err(source) => ArchiveError::Io {
            path: options.to.to_owned(),
            source,
        },
    })?;
    // Media members go to `media/` below it, made 0700 here, or checked
    // to be the restorer's alone: never through a link someone put there.
    if entry.members.iter().any(|m| media_member_hash(m).is_some()) {
        let media = options.to.join(MEDIA_MEMBER_DIR);
        fsio::create_private_dir(&media).map_err(|source| match fsio::into_unsafe_dir(source) {
            Ok(found) => ArchiveError::UnsafeDir(found),
            Err(source) => ArchiveError::Io { path: media, source },
        })?;
    }
    let file = fsio::open_read(path).map_err(|source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    })?;
    let file = BufReader::with_capacity(1 << 16, file);
    let files = match options.identity {
        Some(identity) if entry.encrypted => {
            let plain = identity.decrypt(file).map_err(|source| ArchiveError::Decrypt {
                file: entry.file.clone(),
                identity: identity.path().to_owned(),
                source,
            })?;
            unpack(plain, entry, options)?
        }
        _ => unpack(file, entry, options)?,
    };
    Ok(RestoreReport {
        snapshot: entry.file.clone(),
        files,
    })
}

/// Compares the file's size and SHA-256 with the manifest's.
pub(super) fn check_digest(path: &Path, entry: &SnapshotEntry) -> Result<(), ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fsio::open_read(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let sha256 = hex(&hasher.finalize());
    if size != entry.size || sha256 != entry.sha256 {
        return Err(ArchiveError::Damaged {
            file: entry.file.clone(),
            reason: format!(
                "the manifest says {} bytes with SHA-256 {}, the file has {size} bytes with {sha256}; \
                 run `chatkeep verify` for details, and restore another snapshot",
                entry.size, entry.sha256
            ),
        });
    }
    Ok(())
}

fn unpack(
    plain: impl Read,
    entry: &SnapshotEntry,
    options: &RestoreOptions,
) -> Result<Vec<PathBuf>, ArchiveError> {
    let damaged = |reason: String| ArchiveError::Damaged {
        file: entry.file.clone(),
        reason,
    };
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 16, plain)));
    let mut written = Vec::new();
    let listed: std::collections::HashSet<&str> = entry.members.iter().map(String::as_str).collect();
    for member in archive.entries().map_err(|e| damaged(e.to_string()))? {
        let mut member = member.map_err(|e| damaged(e.to_string()))?;
        let raw = String::from_utf8_lossy(&member.path_bytes()).into_owned();
        let name = member_name(&raw)
            .filter(|n| listed.contains(n.as_str()))
            .ok_or_else(|| ArchiveError::UnsafeMember {
                file: entry.file.clone(),
                member: raw.clone(),
            })?;
        if !member.header().entry_type().is_file() {
            return Err(ArchiveError::UnsafeMember {
                file: entry.file.clone(),
                member: raw,
            });
        }
        let target = options.to.join(&name);
        if !options.force && target.symlink_metadata().is_ok() {
            return Err(ArchiveError::WouldOverwrite { paths: vec![target] });
        }
        let copy = |out: &mut File| io::copy(&mut member, out).map(|_| ());
        let wrote = if options.force {
            fsio::write_atomic_with(&target, copy)
        } else {
            fsio::write_new_with(&target, copy)
        };
        wrote.map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => ArchiveError::WouldOverwrite {
                paths: vec![target.clone()],
            },
            _ => ArchiveError::Io {
                path: target.clone(),
                source,
            },
        })?;
        written.push(target);
    }
    // The gzip trailer (CRC-32, length) is checked at the end of the stream.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| damaged(e.to_string()))?;
    Ok(written)
}

/// `raw` as a single plain file name, or `None` if it has a directory
/// part, `..`, a root, or is empty. The rule for every member name, which
/// `verify` applies too.
pub(super) fn plain_name(raw: &str) -> Option<String> {
    let mut components = Path::new(raw).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(name)), None) => name.to_str().map(str::to_owned),
        _ => None,
    }
}

/// `raw` as the relative path a member is unpacked to: a plain file name,
/// or `media/<sha256>.<ext>` exactly (see [`media_member_hash`]).
pub(super) fn member_name(raw: &str) -> Option<String> {
    plain_name(raw).or_else(|| media_member_hash(raw).map(|_| raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_unpacked() {
        assert_eq!(plain_name("lilith.json").as_deref(), Some("lilith.json"));
        for bad in ["../x", "/etc/passwd", "a/b", "", ".", "..", "./../x"] {
            assert_eq!(plain_name(bad), None, "{bad}");
        }
        let hash = "0123456789abcdef".repeat(4);
        let media = format!("media/{hash}.png");
        assert_eq!(member_name(&media), Some(media.clone()));
        for bad in [
            format!("media/{hash}.sh"),
            format!("media/../{hash}.png"),
            format!("media/{}.png", hash.to_uppercase()),
            format!("media/{hash}.png/x"),
            format!("/media/{hash}.png"),
            format!("other/{hash}.png"),
            "media/../../evil.sh".to_owned(),
        ] {
            assert_eq!(member_name(&bad), None, "{bad}");
        }
    }
}
