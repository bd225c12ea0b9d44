//! The session cookie: accepted as a bare token or as `name=value`, sent
//! verbatim, never printed. What the service's `Set-Cookie` does to it is
//! read in `set_cookie`.

use std::fmt;

/// Cookie names of the two known generations of the service.
pub const CURRENT_NAME: &str = "__Secure-better-auth.session_token";
pub const LEGACY_NAME: &str = "appSession";

/// The session cookie to send. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCookie {
    name: String,
    token: String,
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionCookie({}=[redacted])", self.name)
    }
}

impl SessionCookie {
    /// Reads what a user pasted: a bare token, `name=token` for the configured
    /// or a known name, or a whole `Cookie:` header that contains one of them.
    /// A bare token may itself contain `=` (base64 padding), so only a known
    /// name before the first `=` makes it a pair.
    ///
    /// Only a token that a `Cookie` header can carry is accepted (visible
    /// ASCII but `;`): anything else would fail on every request instead of
    /// here, where the user can be told to paste it again.
    pub fn parse(input: &str, configured_name: &str) -> Option<SessionCookie> {
        let input = input.trim();
        let input = input.strip_prefix("Cookie:").map(str::trim).unwrap_or(input);
        if input.is_empty() {
            return None;
        }
        let known = [configured_name, CURRENT_NAME, LEGACY_NAME];
        for part in input.split(';').map(str::trim) {
            if let Some((name, value)) = part.split_once('=')
                && known.contains(&name)
                && !value.trim().is_empty()
            {
                let value = value.trim();
                return is_sendable(value).then(|| SessionCookie {
                    name: name.to_owned(),
                    token: value.to_owned(),
                });
            }
        }
        is_sendable(input).then(|| SessionCookie {
            name: configured_name.to_owned(),
            token: input.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token itself; only for the Cookie header and the cookie file.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A copy with another token (after the service rotated it).
    pub fn with_token(&self, token: &str) -> SessionCookie {
        SessionCookie {
            name: self.name.clone(),
            token: token.to_owned(),
        }
    }

    /// The `Cookie` header value: the session pair, then extras verbatim.
    pub fn header_value<'a>(&self, extra: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
        let mut value = format!("{}={}", self.name, self.token);
        for (name, extra_value) in extra {
            value.push_str("; ");
            value.push_str(name);
            value.push('=');
            value.push_str(extra_value);
        }
        value
    }
}

/// A token a `Cookie` header can carry as it is: visible ASCII, no `;`.
pub(crate) fn is_sendable(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_tokens_and_pairs_of_both_generations_are_understood() {
        let bare = SessionCookie::parse(" abc.def== \n", CURRENT_NAME).unwrap();
        assert_eq!((bare.name(), bare.token()), (CURRENT_NAME, "abc.def=="));
        let pair = SessionCookie::parse("appSession=xyz", CURRENT_NAME).unwrap();
        assert_eq!((pair.name(), pair.token()), (LEGACY_NAME, "xyz"));
        let header = SessionCookie::parse(
            "Cookie: _ga=1; __Secure-better-auth.session_token=t0k; x=y",
            LEGACY_NAME,
        )
        .unwrap();
        assert_eq!((header.name(), header.token()), (CURRENT_NAME, "t0k"));
        assert!(SessionCookie::parse("", CURRENT_NAME).is_none());
        assert!(SessionCookie::parse("two words", CURRENT_NAME).is_none());
        let spaced = SessionCookie::parse("appSession= xyz ;x=y", CURRENT_NAME).unwrap();
        assert_eq!(spaced.token(), "xyz");
        let wrapped = SessionCookie::parse("__Secure-better-auth.session_token=\n0", LEGACY_NAME).unwrap();
        assert_eq!(wrapped.token(), "0");
    }

    #[test]
    fn tokens_a_header_cannot_carry_are_refused_here_not_on_every_request() {
        for bad in [
            "__Secure-better-auth.session_token=a\n0",
            "appSession=a\u{1}b",
            "appSession=a b",
            "t\u{f6}ken",
            "a\u{7f}",
        ] {
            assert!(SessionCookie::parse(bad, CURRENT_NAME).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = SessionCookie::parse("s3cr3t", CURRENT_NAME).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn header_carries_extras_verbatim() {
        let c = SessionCookie::parse("t", "appSession").unwrap();
        assert_eq!(
            c.header_value([("connect.sid", "s%3Aabc"), ("_csrf", "q")]),
            "appSession=t; connect.sid=s%3Aabc; _csrf=q"
        );
    }
}
