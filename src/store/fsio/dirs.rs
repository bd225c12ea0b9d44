//! Which directories chatkeep writes in, and why it can trust them.
//!
//! chatkeep often runs as root or as a service user beside other users. A
//! user who can write in a directory chatkeep writes in can plant a symbolic
//! link or a file under a name chatkeep is about to use, or swap the
//! directory's content between two of its steps. The file operations in
//! [`super`] never follow a link at the last step and never write into a
//! file they did not create (`O_NOFOLLOW`, `O_EXCL`, rename and link); the
//! checks here make sure that nobody else can write in the directories
//! themselves, so that what chatkeep finds there is what it left.
//!
//! Two rules, one check ([`check`]):
//! - **Private** directories hold the backup: the data directory, the
//!   archive directory, everything below them, the log directory, the
//!   demo's directory. Each must be a real directory (not a symbolic link),
//!   owned by the user chatkeep runs as, that neither its group nor others
//!   can write. One of ours that others can write is refused, not
//!   tightened: something may already have been planted in it, and the
//!   person should look before chatkeep uses it again. One that others can
//!   only read or enter is accepted as it is: every file in it is 0600.
//! - **Output** directories are where a person asks for a file (`export
//!   -o`, `restore --to`, `cookie set`): owned by them or by root, and not
//!   writable by others, except a sticky directory such as `/tmp` (see
//!   [`check_output_dir`] for why that is safe).
//!
//! The directories above the checked one are trusted as the administrator
//! set them up: a data directory inside another user's directory could be
//! renamed away by that user, which no check here detects.

use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rand::Rng;

use super::DIR_MODE;

/// Bits of a mode that let the group or others create, rename or remove
/// entries.
const GROUP_OTHER_WRITE: u32 = 0o022;
/// The sticky bit: only an entry's owner (or the directory's, or root) may
/// remove or rename it.
const STICKY: u32 = 0o1000;

/// The user chatkeep runs as, whose directories it trusts.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A directory chatkeep refuses to write in, and what to do about it.
#[derive(Debug)]
pub struct UnsafeDir {
    pub dir: PathBuf,
    pub problem: Problem,
}

/// What is wrong with an [`UnsafeDir`].
#[derive(Debug)]
pub enum Problem {
    /// A private directory that is a symbolic link.
    Symlink,
    /// An output directory reached through a symbolic link that another
    /// user owns (and so can point elsewhere at any time).
    ForeignSymlink {
        owner: u32,
    },
    NotADirectory,
    /// Owned by `owner`, neither the user chatkeep runs as nor (for an
    /// output directory) root.
    Owner {
        owner: u32,
        euid: u32,
        private: bool,
    },
    /// The group or others can write in it (and, for an output
    /// directory, it is not sticky).
    Writable {
        mode: u32,
    },
    /// It could not be examined.
    Unreadable(io::Error),
}

impl fmt::Display for UnsafeDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.dir.display();
        write!(f, "directory {dir} ")?;
        match &self.problem {
            Problem::Symlink => write!(
                f,
                "is a symbolic link, and chatkeep follows none to a directory it keeps files in: \
                 name the real directory instead"
            ),
            Problem::ForeignSymlink { owner } => write!(
                f,
                "is a symbolic link owned by uid {owner}, another user, who could point it elsewhere \
                 at any time: name the real directory instead"
            ),
            Problem::NotADirectory => write!(f, "is not a directory"),
            Problem::Owner { owner, euid, private } => {
                write!(
                    f,
                    "belongs to uid {owner}, not to uid {euid} that chatkeep runs as, so its owner could \
                     replace the files chatkeep writes there: "
                )?;
                if *private {
                    write!(
                        f,
                        "`chown -R {euid} {dir}` if it is chatkeep's, or run chatkeep as its owner"
                    )
                } else {
                    write!(f, "write into a directory of your own, or `chown {euid} {dir}`")
                }
            }
            Problem::Writable { mode } => {
                let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                    (true, true) => "its group and others",
                    (true, false) => "its group",
                    _ => "others",
                };
                write!(
                    f,
                    "is writable by {who} (mode {:04o}), so another user could plant links or files in \
                     it: `chmod go-w {dir}` (and look at what is in it), or use another directory",
                    mode & 0o7777
                )
            }
            Problem::Unreadable(e) => write!(f, "cannot be checked: {e}"),
        }
    }
}

impl std::error::Error for UnsafeDir {}

impl From<UnsafeDir> for io::Error {
    /// A directory that could not be examined keeps its own error (and its
    /// kind: permission denied, not found); any other finding becomes an
    /// error of kind `Other` that [`unsafe_dir`] recognises.
    fn from(e: UnsafeDir) -> io::Error {
        match e.problem {
            Problem::Unreadable(source) => source,
            _ => io::Error::other(e),
        }
    }
}

/// The [`UnsafeDir`] an I/O error stands for, if it does: for callers that
/// answer it differently (exit 2: nothing was done) from a failed write.
pub fn unsafe_dir(e: &io::Error) -> Option<&UnsafeDir> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<UnsafeDir>())
}

/// Like [`unsafe_dir`], taking the error: the finding, or the error back.
pub fn into_unsafe_dir(e: io::Error) -> Result<UnsafeDir, io::Error> {
    if unsafe_dir(&e).is_none() {
        return Err(e);
    }
    match e.into_inner().map(|inner| inner.downcast::<UnsafeDir>()) {
        Some(Ok(found)) => Ok(*found),
        _ => unreachable!("checked to hold an UnsafeDir just above"),
    }
}

/// Checks a directory that holds chatkeep's own files (see the module
/// notes): a real directory, not a symbolic link, owned by the effective
/// user, not writable by its group or others.
pub fn check_private_dir(dir: &Path) -> Result<(), UnsafeDir> {
    check(dir, Rule::Private)
}

/// Checks a directory a person named for chatkeep to write a file into
/// (the parent of `export -o FILE`, `restore --to DIR`): owned by the
/// effective user or root, reached through no symbolic link another user
/// owns, and writable by nobody else unless it is sticky.
///
/// A sticky directory that everyone can write, such as `/tmp`, is safe for
/// the way chatkeep writes there. It creates its temporary file with
/// `O_CREAT | O_EXCL | O_NOFOLLOW`: a name another user took first (a file
/// or a symbolic link) makes the create fail, never writes through it. The
/// sticky bit then keeps everyone else (root aside) from removing or
/// renaming that file before it is moved into place. The move is
/// `rename(2)` (replacing whatever entry has the target's name, a link
/// itself and not what it points to) or, when nothing may be replaced,
/// `link(2)`, which fails if the name is taken. The most another user can
/// do is take a name first, and the command then fails saying so.
pub fn check_output_dir(dir: &Path) -> Result<(), UnsafeDir> {
    check(dir, Rule::Output)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Private,
    Output,
}

/// The one check behind [`check_private_dir`] and [`check_output_dir`].
fn check(dir: &Path, rule: Rule) -> Result<(), UnsafeDir> {
    let unsafe_dir = |problem| UnsafeDir {
        dir: dir.to_owned(),
        problem,
    };
    let euid = effective_uid();
    let trusted = |uid: u32| uid == euid || (rule == Rule::Output && uid == 0);
    let entry = fs::symlink_metadata(dir).map_err(|e| unsafe_dir(Problem::Unreadable(e)))?;
    let meta = if entry.file_type().is_symlink() {
        match rule {
            Rule::Private => return Err(unsafe_dir(Problem::Symlink)),
            Rule::Output if !trusted(entry.uid()) => {
                return Err(unsafe_dir(Problem::ForeignSymlink { owner: entry.uid() }));
            }
            Rule::Output => fs::metadata(dir).map_err(|e| unsafe_dir(Problem::Unreadable(e)))?,
        }
    } else {
        entry
    };
    if !meta.is_dir() {
        return Err(unsafe_dir(Problem::NotADirectory));
    }
    if !trusted(meta.uid()) {
        return Err(unsafe_dir(Problem::Owner {
            owner: meta.uid(),
            euid,
            private: rule == Rule::Private,
        }));
    }
    let mode = meta.mode();
    let sticky_ok = rule == Rule::Output && mode & STICKY != 0;
    if mode & GROUP_OTHER_WRITE != 0 && !sticky_ok {
        return Err(unsafe_dir(Problem::Writable { mode }));
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0700, or, if it exists,
/// checks it with [`check_private_dir`]. An [`UnsafeDir`] comes back as an
/// I/O error that [`unsafe_dir`] recognises.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
        }
        _ => {}
    }
    check_private_dir(dir).map_err(io::Error::from)
}

/// Checks where a person asked for a directory of files (`restore --to
/// DIR`): `dir` itself if it exists, else the nearest ancestor that does,
/// with [`check_output_dir`].
pub fn check_output_path(dir: &Path) -> Result<(), UnsafeDir> {
    let existing = dir
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| fs::symlink_metadata(a).is_ok())
        .unwrap_or(Path::new("."));
    check_output_dir(existing)
}

/// Makes `dir` ready for files a person asked for (`restore --to`): it
/// must pass [`check_output_path`]; if missing, it is then created 0700
/// with its missing parents.
pub fn create_output_dir(dir: &Path) -> io::Result<()> {
    check_output_path(dir)?;
    if fs::symlink_metadata(dir).is_err() {
        DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
        check_private_dir(dir)?;
    }
    Ok(())
}

/// Creates a new directory, mode 0700, named `prefix` and random letters,
/// in `parent`: never one that already exists (as `mkdtemp(3)` does), so
/// a directory someone made in advance under a name they guessed is not
/// used.
pub fn create_fresh_dir(parent: &Path, prefix: &str) -> io::Result<PathBuf> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    for _ in 0..100 {
        let suffix: String = (0..12)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let dir = parent.join(format!("{prefix}{suffix}"));
        // Not recursive: mkdir(2) fails if the name is taken, even by a
        // symbolic link.
        match DirBuilder::new().mode(DIR_MODE).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "no free name for a new directory in {} after 100 tries",
            parent.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, chown, lchown, symlink};

    const NOBODY: u32 = 65534;

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn problem(result: Result<(), UnsafeDir>) -> Problem {
        result.expect_err("refused").problem
    }

    #[test]
    fn a_private_directory_of_ours_passes_and_a_readable_one_too() {
        let root = tempfile::tempdir().unwrap();
        check_private_dir(root.path()).unwrap();
        set_mode(root.path(), 0o755);
        check_private_dir(root.path()).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused_saying_what_to_chmod() {
        let root = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o770, 0o1777, 0o702] {
            set_mode(root.path(), mode);
            let err = check_private_dir(root.path()).unwrap_err();
            assert!(matches!(err.problem, Problem::Writable { .. }), "{mode:o}: {err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("`chmod go-w {}`", root.path().display())),
                "{text}"
            );
        }
        // Sticky is fine where a person asks for a file, not for the backup.
        set_mode(root.path(), 0o1777);
        check_output_dir(root.path()).unwrap();
        set_mode(root.path(), 0o777);
        assert!(matches!(
            problem(check_output_dir(root.path())),
            Problem::Writable { mode: 0o40777 }
        ));
        set_mode(root.path(), 0o700);
    }

    #[test]
    fn a_symbolic_link_is_never_a_private_directory() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = root.path().join("link");
        symlink(&real, &link).unwrap();
        assert!(matches!(problem(check_private_dir(&link)), Problem::Symlink));
        let err = create_private_dir(&link).unwrap_err();
        assert!(unsafe_dir(&err).is_some(), "{err}");
        // A person's own link to an output directory is followed.
        check_output_dir(&link).unwrap();
    }

    /// Needs root, as the test suite runs: the directories are handed to
    /// `nobody` with chown.
    #[test]
    fn directories_and_links_of_another_user_are_refused() {
        // Never a silent skip: .ci/run runs the tests as root.
        assert_eq!(
            effective_uid(),
            0,
            "this test needs root, to chown a directory to nobody"
        );
        let root = tempfile::tempdir().unwrap();
        let theirs = root.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
        let err = check_private_dir(&theirs).unwrap_err();
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
        assert!(matches!(
            problem(check_output_dir(&theirs)),
            Problem::Owner { .. }
        ));
        // Root's own directory, writable by nobody else, is fine to export
        // into, but not through a link that nobody owns.
        check_output_dir(root.path()).unwrap();
        let link = root.path().join("link");
        symlink(root.path(), &link).unwrap();
        lchown(&link, Some(NOBODY), None).unwrap();
        assert!(matches!(
            problem(check_output_dir(&link)),
            Problem::ForeignSymlink { owner: NOBODY }
        ));
    }

    #[test]
    fn a_missing_directory_is_created_private_and_an_existing_one_checked() {
        let root = tempfile::tempdir().unwrap();
        let sub = root.path().join("a/b");
        create_private_dir(&sub).unwrap();
        let mode = fs::metadata(&sub).unwrap().mode() & 0o7777;
        assert_eq!(mode, DIR_MODE);
        create_private_dir(&sub).unwrap();
        set_mode(&sub, 0o777);
        let err = create_private_dir(&sub).unwrap_err();
        assert!(unsafe_dir(&err).is_some_and(|u| u.dir == sub), "{err}");
        assert!(into_unsafe_dir(err).is_ok());
        let file = root.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            problem(check_private_dir(&file)),
            Problem::NotADirectory
        ));
    }

    #[test]
    fn an_output_directory_is_made_only_under_a_safe_ancestor() {
        let root = tempfile::tempdir().unwrap();
        let to = root.path().join("x/y");
        create_output_dir(&to).unwrap();
        assert_eq!(fs::metadata(&to).unwrap().mode() & 0o7777, DIR_MODE);
        let open = root.path().join("open");
        fs::create_dir(&open).unwrap();
        set_mode(&open, 0o777);
        let err = create_output_dir(&open.join("z")).unwrap_err();
        assert!(unsafe_dir(&err).is_some_and(|u| u.dir == open), "{err}");
        assert!(!open.join("z").exists());
    }

    #[test]
    fn fresh_directories_are_new_private_and_distinct() {
        let root = tempfile::tempdir().unwrap();
        let a = create_fresh_dir(root.path(), "chatkeep-demo-").unwrap();
        let b = create_fresh_dir(root.path(), "chatkeep-demo-").unwrap();
        assert_ne!(a, b);
        for dir in [&a, &b] {
            assert!(
                dir.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("chatkeep-demo-")
            );
            assert_eq!(fs::metadata(dir).unwrap().mode() & 0o7777, DIR_MODE);
        }
    }
}
