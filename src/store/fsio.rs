//! The only ways chatkeep writes files: private permissions, and replacement
//! through a temporary file, fsync, rename and directory fsync, so a crash
//! leaves either the old or the new content and never a torn file.
//!
//! None of them follows a symbolic link at the last step or writes into a
//! file it did not create: appended files are opened with `O_NOFOLLOW`,
//! temporary files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, and a
//! file takes its name by `rename(2)` (which replaces a link there, never
//! what it points to) or `link(2)` (which fails if the name is taken). The
//! directories they write in are checked by [`dirs`]: nobody else may be
//! able to write there.

mod dirs;

pub use dirs::{
    Problem, UnsafeDir, check_output_dir, check_output_path, check_private_dir, create_fresh_dir,
    create_output_dir, create_private_dir, effective_uid, into_unsafe_dir, unsafe_dir,
};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Mode for every file chatkeep creates: the backup is personal data.
pub const FILE_MODE: u32 = 0o600;
/// Mode for every directory chatkeep creates.
pub const DIR_MODE: u32 = 0o700;

/// `O_NOFOLLOW`: opening a symbolic link fails (ELOOP) instead of opening
/// what it points to.
fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Makes every file and directory the process creates private, 0600 and
/// 0700 at most, whatever the umask it was started with: those chatkeep
/// creates itself have explicit modes, but the log files are created by
/// tracing-appender (0644 under the usual umask 022, with its directory
/// 0755) and any crate may create others. Call once at start-up, before
/// anything is created. The unit files set `UMask=0077` too; this covers
/// cron, a shell and containers.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

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
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => format!(
            "is a symbolic link{os}, and chatkeep follows none where it writes: someone who could \
             write in its directory may have planted it; remove the link, and make sure no other \
             user can write there"
        ),
        _ => match unsafe_dir(e) {
            Some(found) => found.to_string(),
            None => e.to_string(),
        },
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

/// Opens (creating if needed, mode 0600) a file for appending writes: the
/// chat log, a spool, the lock, the rate limit state. A symbolic link in
/// its place is refused (`O_NOFOLLOW`), as is anything but a regular file
/// (a FIFO or a device someone put there).
pub fn open_private_rw(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(no_follow())
        .open(path)?;
    regular_only(file, "writes only into files it created")
}

/// `file` if it is a regular file; else an error saying what chatkeep
/// `does` with files, and to move this one away.
fn regular_only(file: File, does: &str) -> io::Result<File> {
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is not a regular file; chatkeep {does}: move it away"),
        ));
    }
    Ok(file)
}

/// Opens a file of the data or archive directory for reading, never
/// through a symbolic link (`O_NOFOLLOW`: a link there fails with ELOOP,
/// which [`explain`] words): what chatkeep reads back is what it wrote.
/// Anything but a regular file is refused; `O_NONBLOCK` keeps a planted
/// pipe from hanging the open (it changes nothing for a regular file).
pub fn open_read(path: &Path) -> io::Result<File> {
    let flags = no_follow() | rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let file = OpenOptions::new().read(true).custom_flags(flags).open(path)?;
    regular_only(file, "reads only files it wrote")
}

/// Reads a whole file of the data or archive directory, as
/// [`std::fs::read`] does but through [`open_read`].
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut open_read(path)?, &mut bytes)?;
    Ok(bytes)
}

/// Flushes a directory entry change (create, rename, unlink) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Mode of the one kind of file another user may read: the metrics file
/// given to a group (`[metrics] group`), for node_exporter.
pub const GROUP_READ_FILE_MODE: u32 = 0o640;

/// Like [`write_atomic`], for a file the members of group `gid` may read.
/// The temporary file is created as every other one (0600, exclusively,
/// never through a link); only once it is written is it given the group
/// and mode [`GROUP_READ_FILE_MODE`], through its open descriptor, and then
/// renamed into place. So the group never reads a half-written file, and
/// nothing else chatkeep writes changes mode.
pub fn write_atomic_for_group(path: &Path, bytes: &[u8], gid: u32) -> io::Result<()> {
    write_atomic_with(path, |file| {
        file.write_all(bytes)?;
        std::os::unix::fs::fchown(&*file, None, Some(gid))?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(GROUP_READ_FILE_MODE))
    })
}

/// Like [`write_atomic`], but the content is streamed by `fill`, so large
/// files never need to be held in memory. The file is open for reading
/// too, so that `fill` can check what it wrote before it takes effect.
///
/// The rename replaces whatever entry has the name `path`: a file, or a
/// symbolic link itself, never the file a link points to.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    through_temp(path, fill, |_, tmp| fs::rename(tmp, path))
}

/// Writes and fsyncs a temporary file next to `path` with `fill`, then lets
/// `place` give it its name (the temporary file is open, at its end), then
/// fsyncs the directory. On any failure the temporary file is removed.
fn through_temp(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
    place: impl FnOnce(&mut File, &Path) -> io::Result<()>,
) -> io::Result<()> {
    let (dir, tmp) = temp_path(path)?;
    let _turn = TempName::claim(&tmp);
    let mut file = create_temp(&tmp)?;
    let result = (|| {
        fill(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        place(&mut file, &tmp)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is harmless but untidy (and
        // gone already when `place` renamed it).
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes a new file at `path` with `bytes`, which must not exist: for a
/// file a person asked for that must not replace anything (`restore`
/// without `--force`). Fails with `AlreadyExists` if anything (a file, a
/// symbolic link) has the name, even if it appeared just now.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_new_with(path, |file| file.write_all(bytes))
}

/// Like [`write_new`], the content streamed by `fill`. As crash-safe as
/// [`write_atomic_with`]: the file is written and fsynced under a temporary
/// name, then given its name with `link(2)`, which fails if the name is
/// taken and never follows a link there. On a file system without hard
/// links (FAT), the content is copied into `path` created with `O_EXCL |
/// O_NOFOLLOW` instead; a crash during that copy can leave it short.
pub fn write_new_with(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    through_temp(path, fill, |file, tmp| {
        match fs::hard_link(tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
                ) =>
            {
                copy_into_new(file, path)?
            }
            Err(e) => return Err(e),
        }
        fs::remove_file(tmp)
    })
}

/// Creates a new, empty file at `path` (0600) for a writer that streams
/// into it and names it itself: `O_CREAT | O_EXCL | O_NOFOLLOW`, so it is
/// never a file or link someone else put there. The media downloads use
/// it, whose final name (their hash) is known only once they are written.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(no_follow())
        .open(path)
}

/// The fallback of [`write_new_with`] where hard links are not possible.
fn copy_into_new(from: &mut File, path: &Path) -> io::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(no_follow())
        .open(path)?;
    let copied = (|| {
        from.rewind()?;
        io::copy(from, &mut out)?;
        out.sync_all()
    })();
    if copied.is_err() {
        // Ours: created just now by the exclusive open.
        let _ = fs::remove_file(path);
    }
    copied
}

/// A temporary name in use by a writer of this process. The name holds the
/// pid only, so two threads replacing the same file (the daemon's status
/// and metrics, written after each personality's sync) take turns: else
/// one would remove the other's half-written file, or rename it into place.
struct TempName(PathBuf);

static TEMP_NAMES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
static TEMP_NAME_FREED: std::sync::Condvar = std::sync::Condvar::new();

impl TempName {
    /// Waits until no other thread of this process uses `tmp`, then takes it.
    fn claim(tmp: &Path) -> TempName {
        let mut names = TEMP_NAMES.lock().unwrap_or_else(|p| p.into_inner());
        while names.iter().any(|n| n == tmp) {
            names = TEMP_NAME_FREED.wait(names).unwrap_or_else(|p| p.into_inner());
        }
        names.push(tmp.to_owned());
        TempName(tmp.to_owned())
    }
}

impl Drop for TempName {
    fn drop(&mut self) {
        let mut names = TEMP_NAMES.lock().unwrap_or_else(|p| p.into_inner());
        names.retain(|n| *n != self.0);
        TEMP_NAME_FREED.notify_all();
    }
}

/// The directory of `path` and the temporary name next to it,
/// `.<name>.tmp-<pid>`.
fn temp_path(path: &Path) -> io::Result<(&Path, PathBuf)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    Ok((dir, tmp))
}

/// Creates the temporary file `tmp` (0600) exclusively: `O_CREAT | O_EXCL
/// | O_NOFOLLOW`, after removing a stale one of the same name (left by a
/// crashed process that had our pid; `unlink(2)` removes a link itself,
/// never what it points to). Something that takes the name in between
/// makes the create fail; nothing is ever written through it.
fn create_temp(tmp: &Path) -> io::Result<File> {
    match fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_new_private(tmp)
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
    fn a_file_for_a_group_is_0640_with_that_group_and_the_temp_file_is_gone() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        // Our own group: any user may give a file its own group.
        let gid = rustix::process::getegid().as_raw();
        write_atomic(&path, b"old").unwrap();
        write_atomic_for_group(&path, b"new", gid).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, GROUP_READ_FILE_MODE);
        assert_eq!(meta.gid(), gid);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // Other files keep the private mode.
        write_atomic(&path, b"again").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
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

    /// A victim file outside the directory, and a link to it.
    fn planted(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let link = dir.join(name);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        (victim, link)
    }

    #[test]
    fn a_pipe_planted_where_a_file_is_read_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success(), "mkfifo (coreutils) is needed");
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn threads_replacing_one_file_at_once_each_leave_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|t| vec![b'a' + t; 64 * 1024]).collect();
        std::thread::scope(|scope| {
            for body in &contents {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, body).unwrap();
                    }
                });
            }
        });
        let left = fs::read(&path).unwrap();
        assert!(
            contents.contains(&left),
            "a mixed or short file of {} bytes",
            left.len()
        );
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["status.json"]);
    }

    #[test]
    fn a_link_planted_at_the_temporary_name_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let tmp = format!(".state.json.tmp-{}", std::process::id());
        let (victim, _) = planted(dir.path(), &tmp);
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_replaced_link_is_replaced_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, link) = planted(dir.path(), "doc.json");
        write_atomic(&link, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&link).unwrap(), b"new");
    }

    #[test]
    fn an_appended_file_is_never_opened_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, link) = planted(dir.path(), "chat.jsonl.gz");
        let err = open_private_rw(&link).unwrap_err();
        assert!(
            explain(&err).starts_with("is a symbolic link (os error 40)"),
            "{}",
            explain(&err)
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let err = open_private_rw(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_new_file_never_replaces_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lilith.json");
        write_new(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
        let err = write_new(&path, b"two").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"one");
        // Not even a dangling link is written through.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert_eq!(
            write_new(&dangling, b"x").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert!(!dir.path().join("nowhere").exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }
}
