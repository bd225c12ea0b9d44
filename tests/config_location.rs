//! Which config file the real binary reads when the command line names
//! none: the user's own under `$XDG_CONFIG_HOME` or `~/.config`, else
//! `/etc/chatkeep/config.toml`; and what it says when there is none.
//!
//! Every run sets HOME and XDG_CONFIG_HOME to temporary directories, so no
//! test ever reads the files of the user running it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SYSTEM_CONFIG: &str = "/etc/chatkeep/config.toml";

/// A home directory and an XDG config directory, both empty at first.
struct Homes {
    _dir: tempfile::TempDir,
    home: PathBuf,
    xdg: PathBuf,
}

impl Homes {
    fn new() -> Homes {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let xdg = dir.path().join("xdg");
        std::fs::create_dir(&home).unwrap();
        std::fs::create_dir(&xdg).unwrap();
        Homes { _dir: dir, home, xdg }
    }

    /// The binary with these homes, and neither `--config` nor
    /// `CHATKEEP_CONFIG`.
    fn chatkeep(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatkeep"));
        cmd.args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.xdg)
            .env_remove("CHATKEEP_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("CREDENTIALS_DIRECTORY");
        cmd
    }
}

/// Writes a valid config for one personality, `name`, at `path`, with its
/// cookie file and data directory given relative to it.
fn write_config(path: &Path, name: &str) {
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let cookie = dir.join("cookie");
    std::fs::write(&cookie, "a-token\n").unwrap();
    std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        path,
        format!(
            "[service]\nbase_url = \"https://x.example\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\n\
             [storage]\ndata_dir = \"data\"\n\n[[personality]]\nname = \"{name}\"\n"
        ),
    )
    .unwrap();
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `check-config` accepted the file at `path`, and it is the one it read.
fn assert_checked(out: &Output, path: &Path, name: &str) {
    assert!(out.status.success(), "{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: valid, 1 personality", path.display())),
        "{}",
        text(out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("name = \"{name}\"")), "{}", text(out));
}

#[test]
fn a_config_under_xdg_config_home_is_read_with_paths_relative_to_it() {
    let homes = Homes::new();
    let config = homes.xdg.join("chatkeep/config.toml");
    write_config(&config, "lilith");
    // A config in ~/.config too: XDG_CONFIG_HOME, when set, is the place.
    write_config(&homes.home.join(".config/chatkeep/config.toml"), "other");
    let out = run(&mut homes.chatkeep(&["check-config"]));
    assert_checked(&out, &config, "lilith");
    let data_dir = homes.xdg.join("chatkeep/data");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("data_dir = \"{}\"", data_dir.display())),
        "{}",
        text(&out)
    );
}

#[test]
fn a_config_under_home_dot_config_is_read_when_xdg_config_home_is_unset_empty_or_relative() {
    let homes = Homes::new();
    let config = homes.home.join(".config/chatkeep/config.toml");
    write_config(&config, "lilith");
    let out = run(homes.chatkeep(&["check-config"]).env_remove("XDG_CONFIG_HOME"));
    assert_checked(&out, &config, "lilith");
    for xdg in ["", "relative/xdg"] {
        let out = run(homes.chatkeep(&["check-config"]).env("XDG_CONFIG_HOME", xdg));
        assert_checked(&out, &config, "lilith");
    }
}

#[test]
fn config_flag_and_chatkeep_config_win_over_the_users_config() {
    let homes = Homes::new();
    write_config(&homes.xdg.join("chatkeep/config.toml"), "users");
    let named = homes.home.join("elsewhere/named.toml");
    write_config(&named, "named");
    let by_env = run(homes.chatkeep(&["check-config"]).env("CHATKEEP_CONFIG", &named));
    assert_checked(&by_env, &named, "named");
    let by_flag = run(&mut homes.chatkeep(&["--config", named.to_str().unwrap(), "check-config"]));
    assert_checked(&by_flag, &named, "named");
    // A named file that is missing is an error of its own: the user's
    // config is not read in its place.
    let missing = homes.home.join("missing.toml");
    let out = run(homes.chatkeep(&["check-config"]).env("CHATKEEP_CONFIG", &missing));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{}", text(&out));
    assert!(!stderr.contains("users"), "{}", text(&out));
}

#[test]
fn without_any_config_the_error_names_the_places_looked_in_and_how_to_make_one() {
    // A machine with a system config (rightly) reads it: this test cannot
    // check the error there, and says so rather than pass unchecked.
    assert!(
        !Path::new(SYSTEM_CONFIG).exists(),
        "{SYSTEM_CONFIG} exists on this machine, so there is no \"no config\" to test; \
         move it aside to run this test"
    );
    let homes = Homes::new();
    let user_config = homes.xdg.join("chatkeep/config.toml");
    for command in [&["sync"][..], &["check-config"], &["status"]] {
        let out = run(&mut homes.chatkeep(command));
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let looked = format!("looked for {}, then {SYSTEM_CONFIG}", user_config.display());
        assert!(stderr.contains(&looked), "{command:?}: {}", text(&out));
        assert!(
            stderr.contains(&format!(
                "install -D -m 0600 config.example.toml {}",
                user_config.display()
            )),
            "{command:?}: {}",
            text(&out)
        );
        assert!(
            stderr.contains("--config FILE or CHATKEEP_CONFIG"),
            "{}",
            text(&out)
        );
    }
    // `status --data-dir` needs no config; it still says there is none.
    let data_dir = homes.home.join("data");
    let out = run(&mut homes.chatkeep(&["status", "--data-dir", data_dir.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let looked = format!(
        "there is none (looked for {}, then {SYSTEM_CONFIG})",
        user_config.display()
    );
    // In the report, on standard output.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&looked),
        "{}",
        text(&out)
    );
}

#[test]
fn help_for_config_gives_the_lookup_order() {
    let homes = Homes::new();
    let out = run(&mut homes.chatkeep(&["--help"]));
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let user = help.find("$XDG_CONFIG_HOME/chatkeep/config.toml");
    let home = help.find("~/.config/chatkeep/config.toml");
    let system = help.find("else /etc/chatkeep/config.toml");
    assert!(
        matches!((user, home, system), (Some(u), Some(h), Some(s)) if u < h && h < s),
        "{help}"
    );
}
