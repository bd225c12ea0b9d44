//! `chatkeep backup NAME...`: the earlier export script's one-liner, with
//! chatkeep's guarantees. No config file: the service and the cookie come
//! from the script's environment variables, the backup goes to the
//! script's `./data/service-backup/<name>/`, and each personality's
//! `<name>_chat_history.json` is written beside its documents, as the
//! script wrote them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::{Fatal, exit};
use crate::config::{Config, PersonalitySlug};
use crate::export::{self, ExportMeta, Format};
use crate::store::{ChatStore, fsio};

/// The script's variables: the session cookie, the service's address, and
/// the word its URLs use for a personality.
pub const COOKIE_VAR: &str = "SERVICE_COOKIE";
pub const WEBSITE_VAR: &str = "SERVICE_WEBSITE";
pub const JARGON_VAR: &str = "PERSONALITY_JARGON_TERM";
/// Where the script put its backups, below the current directory.
pub const DATA_DIR: &str = "data/service-backup";

/// The config the environment stands for, as TOML: what `--help` and a
/// user who wants the daemon next can start from. The cookie is named by
/// its variable, never written.
pub fn config_text(website: &str, jargon: &str, names: &[PersonalitySlug], all: bool) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "[service]\nbase_url = {}\njargon = {}\ncookie_env = \"{COOKIE_VAR}\"\n\n[storage]\ndata_dir = \"{DATA_DIR}\"\n",
        quote(website),
        quote(jargon)
    );
    if all {
        text.push_str("\n[discover]\nowned = true\n");
    }
    for name in names {
        text.push_str(&format!("\n[[personality]]\nname = {}\n", quote(name.as_str())));
    }
    text
}

/// Backs up `names` (and with `all` every personality the account owns)
/// as `chatkeep sync` would, then writes each one's chat history file.
pub async fn run(names: &[PersonalitySlug], all: bool, print_config: bool) -> Result<ExitCode, Fatal> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let website = var(WEBSITE_VAR);
    let jargon = var(JARGON_VAR);
    let missing: Vec<&str> = [
        (COOKIE_VAR, var(COOKIE_VAR).is_some()),
        (WEBSITE_VAR, website.is_some()),
        (JARGON_VAR, jargon.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| !set)
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        return Err(Fatal::usage(format!(
            "{} not set: `chatkeep backup` takes the service, the cookie and the jargon term from \
             {COOKIE_VAR}, {WEBSITE_VAR} and {PERSONALITY}, as the earlier script did \
             (see `chatkeep backup --help`)",
            missing.join(", "),
            PERSONALITY = JARGON_VAR
        )));
    }
    if names.is_empty() && !all {
        return Err(Fatal::usage(
            "name the personalities to back up (their slugs), or pass --all for every one the account owns",
        ));
    }
    let (website, jargon) = (website.unwrap_or_default(), jargon.unwrap_or_default());
    let text = config_text(&website, &jargon, names, all);
    if print_config {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let here = std::env::current_dir()
        .map_err(|e| Fatal::usage(format!("the current directory: {}", fsio::explain(&e))))?;
    // Errors name this, and relative paths resolve against the current
    // directory, as the script's did.
    let source = here.join(format!("(the environment: {WEBSITE_VAR}, {JARGON_VAR})"));
    let config = Config::from_toml_str(&text, &source).map_err(|e| Fatal::usage(e.to_string()))?;
    let code = super::sync::run(
        &config,
        names,
        super::sync::Selection {
            owned: all,
            recent: false,
        },
        Duration::ZERO,
    )
    .await?;
    write_histories(&config.storage.data_dir)?;
    Ok(code)
}

/// Writes `<name>_chat_history.json` into each personality's directory
/// that holds a chat history, replacing the last one whole.
fn write_histories(data_dir: &Path) -> Result<(), Fatal> {
    let failed = |path: &Path, e: &dyn std::fmt::Display| Fatal {
        code: exit::FAILED,
        message: format!("writing {}: {e}", path.display()),
    };
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Ok(());
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("chat_state.json").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let store = ChatStore::open_read_only(&dir).map_err(|e| failed(&dir, &e))?;
        let id = store.state().personality_id.clone().unwrap_or_default();
        let meta = ExportMeta {
            shape_id: &id,
            shape_name: &name,
            display_name: None,
        };
        let target = dir.join(Format::Json.file_name(&name));
        let mut result = Ok(0);
        fsio::write_atomic_with(&target, |file| {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
            result = export::write(&store, &meta, Format::Json, &mut out);
            std::io::Write::flush(&mut out)
        })
        .map_err(|e| failed(&target, &fsio::explain(&e)))?;
        let messages = result.map_err(|e| failed(&target, &e))?;
        println!("wrote {} ({messages} messages)", target.display());
    }
    Ok(())
}
