//! The only ways chatkeep writes files: private permissions, and replacement
//! through a temporary file, fsync, rename and directory fsync, so a crash
//! leaves either the old or the new content and never a torn file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode for every file chatkeep creates: the backup is personal data.
pub const FILE_MODE: u32 = 0o600;
/// Mode for every directory chatkeep creates.
pub const DIR_MODE: u32 = 0o700;

/// An I/O error in words for the person at the terminal: for the errors of
/// a full disk, a file size limit or a read-only file system, the cause in
/// plain words (`no space left on the device`, `file too large`) and what
/// to do. Meant after the path it concerns (`{path}: {explain}`).
///
/// Saying that what was stored is intact is true of every write chatkeep
/// makes: replaced files go through [`write_atomic`], appended ones count
/// only up to a committed length.
pub fn explain(e: &io::Error) -> String {
    let os = e
        .raw_os_error()
        .map(|n| format!(" (os error {n})"))
        .unwrap_or_default();
    const KEPT: &str = "what was stored before is intact, and the next run goes on from the last checkpoint";
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            format!("no space left on the device{os}: free some space; {KEPT}")
        }
        io::ErrorKind::FileTooLarge => format!(
            "file too large{os}: it would pass the file size limit of this process (`ulimit -f`, or \
             LimitFSIZE= under systemd): raise it; {KEPT}"
        ),
        io::ErrorKind::ReadOnlyFilesystem => format!(
            "read-only file system{os}: remount it read-write, or set storage.data_dir to a writable \
             directory"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("permission denied{os}: make it writable by the user chatkeep runs as")
        }
        _ => e.to_string(),
    }
}

/// Makes a file size limit (`ulimit -f`, systemd's `LimitFSIZE=`) fail the
/// write that passes it with EFBIG, reported like a full disk, instead of
/// killing the process with SIGXFSZ, silently and mid-write. Call once at
/// start-up.
pub fn survive_file_size_limit() {
    // A handler that only sets a flag: the signal no longer terminates, and
    // the write returns EFBIG as POSIX says.
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, flag) {
        tracing::warn!(error = %e, "cannot catch SIGXFSZ; a file size limit would end the process");
    }
}

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Opens (creating if needed, mode 0600) a file for appending writes.
pub fn open_private_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
}

/// Flushes a directory entry change (create, rename, unlink) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Like [`write_atomic`], but the content is streamed by `fill`, so large
/// files never need to be held in memory. The file is open for reading
/// too, so that `fill` can check what it wrote before it takes effect.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        fill(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is harmless but untidy.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes a file if it exists and makes the removal durable.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_content_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind");
    }

    #[test]
    fn failed_fill_keeps_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.json");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn full_disk_errors_say_what_happened_and_what_to_do() {
        let full = explain(&io::Error::from_raw_os_error(28));
        assert!(
            full.starts_with("no space left on the device (os error 28): free some space"),
            "{full}"
        );
        let big = explain(&io::Error::from_raw_os_error(27));
        assert!(
            big.starts_with("file too large (os error 27)") && big.contains("raise it"),
            "{big}"
        );
        let ro = explain(&io::Error::from_raw_os_error(30));
        assert!(ro.contains("storage.data_dir"), "{ro}");
        assert_eq!(explain(&io::Error::other("odd")), "odd");
    }

    #[test]
    fn private_dir_mode_is_0700() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        let mode = fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, DIR_MODE);
    }
}
