//! Which config file a command reads when the command line does not name
//! one: the user's own (`$XDG_CONFIG_HOME/chatkeep/config.toml`, else
//! `~/.config/chatkeep/config.toml`) if there is one, so that chatkeep runs
//! without root; else the system's, `/etc/chatkeep/config.toml`, which the
//! systemd units name explicitly.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// The system-wide config file, the one the systemd units run with.
pub const SYSTEM_CONFIG: &str = "/etc/chatkeep/config.toml";

/// The config file a command reads, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The file to read.
    pub path: PathBuf,
    /// Every file looked for, in order, when neither `--config` nor
    /// `CHATKEEP_CONFIG` named one and there is no user's file, so the
    /// system's was taken (the last is `path`). Empty otherwise: a file
    /// named, or found, that cannot be read is that file's error alone.
    pub searched: Vec<PathBuf>,
}

impl ConfigLocation {
    /// `given` (from `--config`), else `$CHATKEEP_CONFIG` when not empty,
    /// else the user's config file if it exists, else [`SYSTEM_CONFIG`].
    pub fn find(given: Option<PathBuf>) -> ConfigLocation {
        ConfigLocation::find_with(given, |name| std::env::var_os(name), is_there)
    }

    /// [`ConfigLocation::find`] with the environment and the file system
    /// passed in, so the order can be tested without touching either.
    fn find_with(
        given: Option<PathBuf>,
        env: impl Fn(&str) -> Option<OsString>,
        exists: impl Fn(&Path) -> bool,
    ) -> ConfigLocation {
        let named = given.or_else(|| {
            env("CHATKEEP_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        if let Some(path) = named {
            return ConfigLocation {
                path,
                searched: Vec::new(),
            };
        }
        match user_config(&env) {
            Some(user) if exists(&user) => ConfigLocation {
                path: user,
                searched: Vec::new(),
            },
            user => ConfigLocation {
                path: PathBuf::from(SYSTEM_CONFIG),
                searched: user.into_iter().chain([PathBuf::from(SYSTEM_CONFIG)]).collect(),
            },
        }
    }

    /// Reads, parses and validates the file. When it was looked for rather
    /// than named and none exists, the error lists where it was looked for
    /// and how to make one.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.path).map_err(|e| match e {
            ConfigError::Read { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound && !self.searched.is_empty() =>
            {
                ConfigError::NotFound {
                    searched: self.searched.clone(),
                }
            }
            other => other,
        })
    }
}

/// The user's config file, as the XDG base directory specification places
/// it: under `$XDG_CONFIG_HOME`, or `$HOME/.config` when that is unset,
/// empty or relative (the specification says to ignore a relative one).
/// None when neither gives an absolute directory.
fn user_config(env: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let absolute = |name: &str| env(name).map(PathBuf::from).filter(|dir| dir.is_absolute());
    let config_home =
        absolute("XDG_CONFIG_HOME").or_else(|| absolute("HOME").map(|home| home.join(".config")))?;
    Some(config_home.join("chatkeep").join("config.toml"))
}

/// Whether anything is at `path`. A file that is there but cannot be read
/// (a dangling link, a directory without search permission) still counts,
/// so that its error is reported instead of the system config being read
/// in its place without a word.
fn is_there(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ),
    }
}

/// The message of [`ConfigError::NotFound`].
pub(super) fn not_found_message(searched: &[PathBuf]) -> String {
    let looked = searched
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", then ");
    let make = match searched.first() {
        // 0600: a config may hold cookies (extra_cookies, cookie).
        Some(user) if searched.len() > 1 => format!(
            "for yourself, `install -D -m 0600 config.example.toml {}`, then edit it \
             (relative paths in it are taken from its directory)",
            user.display()
        ),
        _ => format!(
            "as root, `install -D -m 0640 config.example.toml {SYSTEM_CONFIG}`, then edit it \
             (no per-user file is looked for, as neither XDG_CONFIG_HOME nor HOME is an \
             absolute directory)"
        ),
    };
    format!(
        "no config file: looked for {looked}. Make one from config.example.toml (in the \
         source tree, or /usr/share/doc/chatkeep/examples/ from the Debian package): {make}; \
         or name one with --config FILE or CHATKEEP_CONFIG"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn find(vars: &[(&str, &str)], existing: &[&str]) -> ConfigLocation {
        ConfigLocation::find_with(None, env(vars), |p| existing.iter().any(|e| Path::new(e) == p))
    }

    #[test]
    fn the_xdg_config_home_file_wins_over_the_system_one() {
        let found = find(
            &[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")],
            &["/x/chatkeep/config.toml", "/h/.config/chatkeep/config.toml"],
        );
        assert_eq!(found.path, Path::new("/x/chatkeep/config.toml"));
        assert!(found.searched.is_empty());
    }

    #[test]
    fn an_unset_empty_or_relative_xdg_config_home_means_home_dot_config() {
        for xdg in [None, Some(""), Some("relative/dir")] {
            let mut vars = vec![("HOME", "/h")];
            vars.extend(xdg.map(|x| ("XDG_CONFIG_HOME", x)));
            let found = find(&vars, &["/h/.config/chatkeep/config.toml"]);
            assert_eq!(
                found.path,
                Path::new("/h/.config/chatkeep/config.toml"),
                "{xdg:?}"
            );
        }
    }

    #[test]
    fn without_a_user_file_the_system_one_is_read_and_both_were_searched() {
        let found = find(&[("HOME", "/h")], &[SYSTEM_CONFIG]);
        assert_eq!(found.path, Path::new(SYSTEM_CONFIG));
        assert_eq!(
            found.searched,
            vec![
                PathBuf::from("/h/.config/chatkeep/config.toml"),
                PathBuf::from(SYSTEM_CONFIG)
            ]
        );
        let homeless = find(&[("HOME", "relative")], &[]);
        assert_eq!(homeless.searched, vec![PathBuf::from(SYSTEM_CONFIG)]);
    }

    #[test]
    fn a_named_file_is_read_whatever_exists() {
        let vars = [("CHATKEEP_CONFIG", "/env.toml"), ("XDG_CONFIG_HOME", "/x")];
        let existing = |p: &Path| p == Path::new("/x/chatkeep/config.toml");
        let by_env = ConfigLocation::find_with(None, env(&vars), existing);
        assert_eq!(by_env.path, Path::new("/env.toml"));
        assert!(by_env.searched.is_empty());
        let by_flag = ConfigLocation::find_with(Some("/flag.toml".into()), env(&vars), existing);
        assert_eq!(by_flag.path, Path::new("/flag.toml"));
    }
}
