//! How the path of a cookie file is shown. A person may paste the cookie
//! itself into `cookie_file`; the path then ends in the cookie, and every
//! message that names the file (`check-config`, "cannot read the cookie
//! file ...", a log line) would echo it. Every place that shows a cookie
//! file's path goes through [`shown_cookie_path`].

use std::path::Path;

/// What stands in for a last component that looks like a cookie value.
pub const REDACTED_COOKIE_PATH: &str = "[redacted: looks like a cookie value; cookie_file must name a file]";

/// Shortest name taken for a cookie value. Session tokens are far longer
/// (better-auth's are 32 characters before their signature); file names
/// this long without an extension are rare.
const MIN_TOKEN_LEN: usize = 20;

/// Longest ending after a `.` taken for a file extension (`.txt`,
/// `.cookie`, `.secret`); the signature after the `.` of a better-auth
/// token or a JWT is far longer.
const MAX_EXTENSION_LEN: usize = 8;

/// `path` as messages, logs and `check-config` show it: as it is, unless
/// it may hold a cookie value, then [`REDACTED_COOKIE_PATH`] instead of
/// all of it. It may when a component looks like one
/// ([`looks_like_cookie_value`]), or when the last few components read
/// together do and one of them has the marks of base64 (upper and lower
/// case and digits, or `+`, `=`): a base64 token holds `/`, so pasted it
/// becomes several short components. A path that is not UTF-8 is shown
/// lossily.
pub fn shown_cookie_path(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let base64ish = |part: &String| {
        let has = |f: fn(&u8) -> bool| part.bytes().any(|b| f(&b));
        (has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_digit))
            || has(|b| *b == b'+' || *b == b'=')
    };
    let hides_token = (0..parts.len()).any(|start| {
        let tail = &parts[start..];
        looks_like_cookie_value(&tail.concat()) && (tail.len() == 1 || tail.iter().any(base64ish))
    });
    if hides_token {
        return REDACTED_COOKIE_PATH.to_owned();
    }
    path.to_string_lossy().into_owned()
}

/// The rule for a file name that is more likely a cookie value: at least
/// [`MIN_TOKEN_LEN`] characters, only ASCII letters, digits and `._~+=%-_`
/// (what tokens are made of, base64 and URL-encoding included), letters
/// and digits both present, and no file extension (a `.` followed by 1 to
/// [`MAX_EXTENSION_LEN`] letters or digits at the end).
///
/// Cookie file names (`cookie`, `session.txt`, `chatkeep-session-cookie`)
/// do not match; tokens (`<32 characters>.<signature>`, a JWT, a hex or
/// base64 secret) do.
pub fn looks_like_cookie_value(name: &str) -> bool {
    let token_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~+=%-_".contains(&b));
    let has_extension = name.rsplit_once('.').is_some_and(|(_, ext)| {
        (1..=MAX_EXTENSION_LEN).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    name.len() >= MIN_TOKEN_LEN
        && token_chars
        && name.bytes().any(|b| b.is_ascii_alphabetic())
        && name.bytes().any(|b| b.is_ascii_digit())
        && !has_extension
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_cookie_values() {
        for token in [
            "t0ps3cret-session-token-value",
            "Xk9fQ2mLr7TzW4bNc8VdH1sJ6yPqA3eU.aB3dEf9hIjKlMnOpQrStUvWxYz0123456789%2B%2F%3D",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "s%3Aj9VbQk2lP0x7TzW4bNc8VdH1sJ6yPqA3",
            "dGhpcyBpcyBhIHNlY3JldCB0b2tlbg==",
        ] {
            assert!(looks_like_cookie_value(token), "{token}");
        }
    }

    #[test]
    fn file_names_do_not() {
        for name in [
            "cookie",
            "session.txt",
            "chatkeep-session-cookie",
            "chatkeep-cookie-2024-01-01.txt",
            "cookie.secret",
            "my cookie file with spaces 2024",
            "short1",
            "12345678901234567890123",
        ] {
            assert!(!looks_like_cookie_value(name), "{name}");
        }
    }

    #[test]
    fn a_path_holding_a_token_is_not_shown_at_all() {
        let token = "t0ps3cret-session-token-value";
        let shown = shown_cookie_path(Path::new(&format!("/etc/chatkeep/{token}")));
        assert_eq!(shown, REDACTED_COOKIE_PATH);
        // A base64 token with `/`, in short pieces, resolved against the
        // config's directory.
        for pasted in [
            "Xk9fQ2mL/r7TzW4b+Nc8Vd",
            "ab/Xk9fQ2mLr7Tz/W4bN=",
            "Xk9f/Q2mL/r7Tz/W4bN/c8Vd",
        ] {
            let shown = shown_cookie_path(&Path::new("/etc/chatkeep").join(pasted));
            assert_eq!(shown, REDACTED_COOKIE_PATH, "{pasted}");
        }
        for plain in [
            "/var/lib/chatkeep2/cookie",
            "/etc/chatkeep/session-2024/cookie.txt",
            "secrets/cookie",
        ] {
            assert_eq!(shown_cookie_path(Path::new(plain)), plain);
        }
        assert_eq!(
            shown_cookie_path(Path::new("/etc/chatkeep/cookie")),
            "/etc/chatkeep/cookie"
        );
        assert_eq!(shown_cookie_path(Path::new(token)), REDACTED_COOKIE_PATH);
        assert_eq!(shown_cookie_path(Path::new("/")), "/");
    }
}
