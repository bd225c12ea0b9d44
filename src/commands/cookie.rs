//! `chatkeep cookie set` and `chatkeep cookie check`: store the session
//! cookie where the config says, and ask the service which account it logs
//! in as. Neither ever prints the cookie, nor a cookie file's path that
//! looks like one (see `config::shown_cookie_path`).

use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{Fatal, client_for, exit, load_session};
use crate::api::{ApiError, SessionCookie};
use crate::config::{Config, CookieSource, shown_cookie_path};
use crate::credentials::{self, Origin, Session};
use crate::store::fsio;

/// Longest line read from standard input; a cookie is a few hundred bytes.
const MAX_INPUT: u64 = 64 * 1024;

/// `cookie set`: reads the cookie (hidden prompt on a terminal, else the
/// first line of standard input) and asks the service whose it is. Only
/// then is it written to `cookie_file` (atomically, 0600): a cookie the
/// service refuses never replaces the previous one. One that cannot be
/// checked (the service unreachable) is saved all the same, and said to be
/// unverified. Saving it forgets what the service said of the cookie before
/// it (a saved rotation, or the end of its session: the cookie the person
/// sets always wins, even the same token again), unless the check itself
/// just recorded a rotation of the new one.
pub async fn set(config: &Config) -> Result<ExitCode, Fatal> {
    let path = cookie_file(config)?;
    let name = &config.service.cookie_name;
    let input = read_input(name)?;
    let cookie = SessionCookie::parse(&input, name).ok_or_else(|| {
        Fatal::usage(format!(
            "that is not a session cookie: paste the value of the `{name}` cookie, or name=value, on one line"
        ))
    })?;
    let data_dir = &config.storage.data_dir;
    // What the data directory says of the previous cookie, to put back if
    // the service refuses the new one (its check may record the refusal).
    let rotated_path = credentials::rotated::path(data_dir);
    let rotated_before = fsio::read(&rotated_path).ok();
    let session = Session {
        configured: credentials::Fingerprint::of(cookie.token()),
        cookie: cookie.clone(),
        origin: Origin::File(path.clone()),
        rotated: false,
    };
    let checked = ask_whose(config, &session).await?;
    if let Err(e @ ApiError::Auth { .. }) = &checked {
        restore_rotated(&rotated_path, rotated_before.as_deref());
        let kept = if path.exists() {
            format!("{} still holds the previous cookie", shown_cookie_path(&path))
        } else {
            "no cookie was saved".to_owned()
        };
        return Err(Fatal {
            code: exit::AUTH,
            message: format!(
                "the service refused the session cookie you gave, so it was not saved ({kept}): {e}"
            ),
        });
    }
    write_cookie_file(&path, &cookie, name)?;
    println!("saved the session cookie to {}", shown_cookie_path(&path));
    // A rotation the check recorded is about the new cookie: kept.
    if fsio::read(&rotated_path).ok() == rotated_before {
        credentials::rotated::forget(data_dir).map_err(|e| {
            Fatal::usage(format!(
                "saved the session cookie, but cannot remove {}, which the next runs would use instead: \
                 {e}; remove that file",
                rotated_path.display()
            ))
        })?;
    }
    if let Some(credential) = credentials::credential_path() {
        eprintln!(
            "warning: the systemd credential {} takes precedence over cookie_file; \
             the service keeps using the credential until it is updated",
            credential.display()
        );
    }
    report(&session, checked, Some(&path))
}

/// Puts back what the data directory said of the previous cookie.
fn restore_rotated(path: &Path, before: Option<&[u8]>) {
    let result = match before {
        Some(bytes) => fsio::write_atomic(path, bytes),
        None if path.exists() => fsio::remove_durably(path),
        None => Ok(()),
    };
    if let Err(e) = result {
        eprintln!(
            "warning: cannot restore {}: {e}; the previous cookie is used as configured",
            path.display()
        );
    }
}

/// `cookie check`: one request with the cookie a sync would send.
pub async fn check(config: &Config) -> Result<ExitCode, Fatal> {
    let session = load_session(config)?;
    let checked = ask_whose(config, &session).await?;
    report(&session, checked, None)
}

/// The file `cookie set` writes; refuses configs that take the cookie from
/// elsewhere, since writing a file they never read would change nothing.
fn cookie_file(config: &Config) -> Result<PathBuf, Fatal> {
    let elsewhere = match &config.service.cookie {
        CookieSource::File(path) => return Ok(path.clone()),
        CookieSource::Env(var) => format!("the environment variable {var} (cookie_env)"),
        CookieSource::Inline(_) => "the config file itself (cookie)".to_owned(),
    };
    Err(Fatal::usage(format!(
        "{} takes the session cookie from {elsewhere}, which `chatkeep cookie set` does not change; \
         to use it, replace that key in [service] with cookie_file = \"/path/to/cookie\"",
        config.source.display()
    )))
}

/// The pasted cookie: hidden input on a terminal, else the first line of
/// standard input.
fn read_input(name: &str) -> Result<String, Fatal> {
    let stdin = std::io::stdin();
    let read = if stdin.is_terminal() {
        rpassword::prompt_password(format!("Paste the session cookie ({name}), input hidden: "))
    } else {
        let mut line = String::new();
        stdin.lock().take(MAX_INPUT).read_line(&mut line).map(|_| line)
    };
    let input = read.map_err(|e| Fatal::usage(format!("cannot read the cookie from standard input: {e}")))?;
    if input.trim().is_empty() {
        return Err(Fatal::usage(
            "no cookie given: paste it at the prompt, or pipe it in on one line",
        ));
    }
    Ok(input)
}

/// Writes the cookie: the bare token when it goes by the configured name
/// (so a later change of `cookie_name` applies to it), else `name=token`.
fn write_cookie_file(path: &Path, cookie: &SessionCookie, configured_name: &str) -> Result<(), Fatal> {
    let failed = |e: std::io::Error| {
        Fatal::usage(format!(
            "cannot write the cookie file {}: {e}",
            shown_cookie_path(path)
        ))
    };
    // Where the person keeps the cookie: checked like the directory of an
    // export (nobody else may write there), or made 0700.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fsio::create_output_dir(dir).map_err(failed)?;
    let text = if cookie.name() == configured_name {
        format!("{}\n", cookie.token())
    } else {
        format!("{}\n", cookie.header_value([]))
    };
    fsio::write_atomic(path, text.as_bytes()).map_err(failed)
}

/// Asks `/api/users/me`, once and without retries, whose session this is.
/// The outer error: no client could be made to ask with.
async fn ask_whose(
    config: &Config,
    session: &Session,
) -> Result<Result<crate::api::Account, ApiError>, Fatal> {
    let mut one_request = config.clone();
    one_request.service.max_retries = 0;
    let client = client_for(&one_request, session)?;
    Ok(client.me().await)
}

/// The answer to [`ask_whose`], for the person. `saved` is where `cookie
/// set` just wrote the cookie, for the messages.
fn report(
    session: &Session,
    checked: Result<crate::api::Account, ApiError>,
    saved: Option<&Path>,
) -> Result<ExitCode, Fatal> {
    let source = if session.rotated {
        format!("{}, as the service last rotated it", session.origin)
    } else {
        session.origin.to_string()
    };
    match checked {
        Ok(account) => {
            let name = account.display_name.as_deref().map(printable);
            println!(
                "the session cookie from {source} authenticates as {} (id {})",
                name.as_deref().unwrap_or("an account without a display name"),
                printable(&account.id)
            );
            Ok(ExitCode::from(exit::OK))
        }
        Err(e @ ApiError::Auth { .. }) => Err(Fatal {
            code: exit::AUTH,
            message: format!("the service refused the session cookie from {source}: {e}"),
        }),
        Err(e) => Err(Fatal {
            code: exit::FAILED,
            message: match saved {
                Some(path) => format!(
                    "the cookie was saved to {} but not verified: {e}; run `chatkeep cookie check` later",
                    shown_cookie_path(path)
                ),
                None => format!("could not check the session cookie from {source}: {e}"),
            },
        }),
    }
}

/// Text from the service, without control characters that could move the
/// terminal's cursor.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}
