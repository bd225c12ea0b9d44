//! The token bucket's state between runs, `<data_dir>/rate_limit.state`, so
//! that a restarted process (a crash loop under systemd, a cron'd `chatkeep
//! sync`, a killed run started again) goes on with the tokens the last one
//! left instead of a full burst.
//!
//! A GCRA bucket's whole state is one time, its "theoretical arrival time"
//! (see [`crate::api::RateLimiter`]); it is kept here as wall-clock time,
//! seconds and nanoseconds since the Unix epoch, in one fixed-size line of
//! text: `SSSSSSSSSSSS.NNNNNNNNN\n` (23 bytes, seconds zero-padded to 12
//! digits), such as `001767225600.250000000\n`.
//!
//! It is rewritten in place after every request, so the write must be
//! cheap: one `pwrite` of the same 23 bytes at offset 0, never a
//! temporary file and a rename, and no fsync. A process killed at any
//! instant leaves its last write in the page cache, where the next process
//! reads it (a `kill -9` takes effect between system calls, so the file
//! holds the last record or the one before, never half of one). A power
//! loss may lose the last writes, and the next boot then starts from an
//! older time, or a full bucket: acceptable, as a reboot takes longer than
//! the bucket takes to fill anyway, at any sensible rate.
//!
//! Only a process that holds the data directory ([`super::Store`]) writes
//! it. Anything wrong with it (missing, unreadable, garbled) means a full
//! bucket, as before this file existed: it is logged at debug level and
//! never fails a run.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::fsio;

/// The file's name in the data directory; one of
/// [`crate::config::RESERVED_NAMES`].
pub const RATE_STATE_FILE: &str = "rate_limit.state";

/// Length of the one record: 12 digits, `.`, 9 digits, a newline.
const RECORD_LEN: usize = 23;

/// The open state file of the data directory.
#[derive(Debug)]
pub struct RateStateFile {
    path: PathBuf,
    file: File,
    /// Set after the first failed write, which alone is logged.
    write_failed: AtomicBool,
}

impl RateStateFile {
    /// Opens (creating, 0600) the state file in `root`.
    pub(super) fn open(root: &Path) -> io::Result<RateStateFile> {
        let path = root.join(RATE_STATE_FILE);
        let file = fsio::open_private_rw(&path)?;
        Ok(RateStateFile {
            path,
            file,
            write_failed: AtomicBool::new(false),
        })
    }

    /// The time the last process saved, if the file holds one. Anything
    /// else is logged at debug level and gives `None` (a full bucket); a
    /// garbled file is emptied, so that the next [`save`](Self::save)
    /// leaves a valid record.
    pub fn load(&self) -> Option<SystemTime> {
        // One byte more than a record, to tell a record from a longer file.
        let mut buf = [0u8; RECORD_LEN + 1];
        let read = read_prefix(&self.file, &mut buf);
        let found = match read {
            Ok(0) => {
                tracing::debug!(path = %self.path.display(), "no saved rate limit state; the bucket starts full");
                return None;
            }
            Ok(len) => decode(&buf[..len]),
            Err(ref e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "cannot read the saved rate limit state; the bucket starts full");
                None
            }
        };
        if found.is_none() && read.is_ok() {
            tracing::debug!(path = %self.path.display(), "the saved rate limit state is garbled; the bucket starts full");
            if let Err(e) = self.file.set_len(0) {
                tracing::debug!(path = %self.path.display(), error = %e, "cannot empty the garbled rate limit state");
            }
        }
        found
    }

    /// Records `tat` in place of what the file held. A failure is logged
    /// once (it costs only the protection against a full burst at the next
    /// start) and never fails the request that caused it.
    pub fn save(&self, tat: SystemTime) {
        let Some(record) = encode(tat) else {
            return;
        };
        if let Err(e) = self.file.write_all_at(&record, 0)
            && !self.write_failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                path = %self.path.display(),
                error = %fsio::explain(&e),
                "cannot record the rate limit state; a restart may send a full burst at once"
            );
        }
    }
}

/// Reads from offset 0 until `buf` is full or the file ends.
fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// The record of `tat`; `None` for a time before 1970 or after the year
/// 33658, which no clock of a running system shows.
fn encode(tat: SystemTime) -> Option<[u8; RECORD_LEN]> {
    let since = tat.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let text = format!("{:012}.{:09}\n", since.as_secs(), since.subsec_nanos());
    text.as_bytes().try_into().ok()
}

/// The time in a record, if `bytes` is exactly one.
fn decode(bytes: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
    let (secs, nanos) = text.split_once('.')?;
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs, 12) || !digits(nanos, 9) {
        return None;
    }
    let since = Duration::new(secs.parse().ok()?, nanos.parse().ok()?);
    SystemTime::UNIX_EPOCH.checked_add(since)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_saved_time_loads_back_to_the_nanosecond() {
        let dir = tempfile::tempdir().unwrap();
        let state = RateStateFile::open(dir.path()).unwrap();
        assert_eq!(state.load(), None, "a new file holds nothing");
        let tat = SystemTime::UNIX_EPOCH + Duration::new(1_767_225_600, 250_000_001);
        state.save(tat);
        let path = dir.path().join(RATE_STATE_FILE);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "001767225600.250000001\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Overwritten in place, by the same process or the next one.
        let later = tat + Duration::from_millis(200);
        state.save(later);
        assert_eq!(state.load(), Some(later));
        drop(state);
        assert_eq!(RateStateFile::open(dir.path()).unwrap().load(), Some(later));
    }

    #[test]
    fn garbage_gives_no_time_and_is_replaced_by_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RATE_STATE_FILE);
        for garbage in [
            "hello",
            "001767225600.250000000",
            "001767225600.250000000\n\n",
            "001767225600.250000000\nand more after the record",
            "1767225600.250000000\n",
            "001767225600,250000000\n",
            "0017672256x0.250000000\n",
            "-01767225600.250000000\n",
            "001767225600.2500000000\n",
            "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ] {
            std::fs::write(&path, garbage).unwrap();
            let state = RateStateFile::open(dir.path()).unwrap();
            assert_eq!(state.load(), None, "{garbage:?}");
            let tat = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
            state.save(tat);
            assert_eq!(state.load(), Some(tat), "after {garbage:?}");
        }
        // Not UTF-8 either.
        std::fs::write(&path, [0xff; RECORD_LEN]).unwrap();
        assert_eq!(RateStateFile::open(dir.path()).unwrap().load(), None);
    }

    #[test]
    fn a_time_before_the_epoch_is_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let state = RateStateFile::open(dir.path()).unwrap();
        state.save(SystemTime::UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(std::fs::read(dir.path().join(RATE_STATE_FILE)).unwrap(), b"");
        assert_eq!(state.load(), None);
    }
}
