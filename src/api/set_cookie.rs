//! What a `Set-Cookie` header says about the session cookie, read the way
//! a browser reads it (RFC 6265 §5.2 and §5.3, as far as one cookie of one
//! configured site needs): the name, the value, and the attributes that
//! decide whether it applies at all (`Domain`) and whether it is a new
//! token or the end of the session (`Max-Age`, `Expires`).
//!
//! `Path`, `Secure`, `HttpOnly` and `SameSite` change nothing here: the
//! client sends the session cookie to the API only, and only to the
//! configured origin (see `ApiClient`).

use chrono::{DateTime, NaiveDate, Utc};

/// What one `Set-Cookie` header does to the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionUpdate<'a> {
    /// A new token, to send from now on (the service rotated it).
    Rotated(&'a str),
    /// The service cleared the session cookie (`Max-Age` of 0 or less, or
    /// an `Expires` date that has passed): the session is over, and no
    /// token of it is worth sending again.
    Ended,
    /// A header for the session cookie that a browser would not apply, or
    /// whose value a `Cookie` header cannot carry; the reason is a fixed
    /// text, never the service's words.
    Ignored(&'static str),
}

/// Reads `set_cookie`, a `Set-Cookie` value received from `host` (the
/// configured service's host, lowercase, as a URL names it), for the
/// session cookie `name`. `None` when it sets another cookie (analytics,
/// CSRF, load balancer), or is not a cookie at all.
///
/// A `Domain` attribute that `host` does not domain-match makes the whole
/// header ignored, as a browser ignores it. `Max-Age` wins over `Expires`;
/// an attribute value that cannot be read is ignored, as RFC 6265 says.
pub fn session_update<'a>(
    set_cookie: &'a str,
    name: &str,
    host: &str,
    now: DateTime<Utc>,
) -> Option<SessionUpdate<'a>> {
    let mut parts = set_cookie.split(';');
    let (cookie_name, value) = parts.next()?.split_once('=')?;
    if cookie_name.trim() != name {
        return None;
    }
    let value = value.trim();
    let mut max_age_ended = None;
    let mut expires = None;
    let mut domain = None;
    let mut path = None;
    for attribute in parts {
        let (key, attribute_value) = attribute.split_once('=').unwrap_or((attribute, ""));
        let attribute_value = attribute_value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "max-age" => max_age_ended = max_age_is_past(attribute_value).or(max_age_ended),
            "expires" => expires = cookie_date(attribute_value).or(expires),
            "domain" if !attribute_value.is_empty() => {
                let bare = attribute_value.strip_prefix('.').unwrap_or(attribute_value);
                domain = Some(bare.to_ascii_lowercase());
            }
            // RFC 6265 §5.2.4: a path not starting with `/` is the default.
            "path" if attribute_value.starts_with('/') => path = Some(attribute_value.to_owned()),
            _ => {}
        }
    }
    if let Some(domain) = domain
        && !domain_matches(host, &domain)
    {
        return Some(SessionUpdate::Ignored(
            "it is for another domain than the service's",
        ));
    }
    // A cookie of the same name for another path is another cookie: the
    // session cookie is sent with every API request, under `/api/`.
    if let Some(path) = path
        && !path_matches(API_PATH, &path)
    {
        return Some(SessionUpdate::Ignored("it is for another path than the API's"));
    }
    let ended = max_age_ended.unwrap_or_else(|| expires.is_some_and(|at| at <= now));
    Some(if ended {
        SessionUpdate::Ended
    } else if value.is_empty() {
        SessionUpdate::Ignored("it has an empty value")
    } else if !super::cookie::is_sendable(value) {
        SessionUpdate::Ignored("its value cannot be sent back in a Cookie header")
    } else {
        SessionUpdate::Rotated(value)
    })
}

/// The path every API request starts with.
const API_PATH: &str = "/api/";

/// RFC 6265 §5.1.4: a cookie with `cookie_path` is sent with a request for
/// `request_path`.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path[cookie_path.len()..].starts_with('/')))
}

/// Whether a `Max-Age` value puts the expiry in the past (it is 0 or
/// less); `None` when it is not a (possibly negative) whole number.
fn max_age_is_past(value: &str) -> Option<bool> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.starts_with('-') || digits.bytes().all(|b| b == b'0'))
}

/// RFC 6265 §5.1.3: `host` is `domain`, or a name under it (never an IP
/// address under it).
fn domain_matches(host: &str, domain: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if host == domain {
        return true;
    }
    let is_ip = host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok();
    !is_ip && host.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.'))
}

/// A date as RFC 6265 §5.1.1 reads the `Expires` attribute: lenient, so
/// that the forms servers send are all understood (`Sun, 06 Nov 1994
/// 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`, `Sun Nov  6 08:49:37
/// 1994`, `Thu, 01-Jan-1970 00:00:01 GMT`). The time is UTC whatever zone
/// the text names.
fn cookie_date(text: &str) -> Option<DateTime<Utc>> {
    let is_delimiter = |c: char| matches!(c, '\t' | '\u{20}'..='\u{2f}' | '\u{3b}'..='\u{40}' | '\u{5b}'..='\u{60}' | '\u{7b}'..='\u{7e}');
    let (mut time, mut day, mut month, mut year) = (None, None, None, None);
    for token in text.split(is_delimiter).filter(|t| !t.is_empty()) {
        if time.is_none()
            && let Some(found) = time_of_day(token)
        {
            time = Some(found);
        } else if day.is_none()
            && let Some(found) = leading_number(token, 1, 2)
        {
            day = Some(found);
        } else if month.is_none()
            && let Some(found) = month_of(token)
        {
            month = Some(found);
        } else if year.is_none()
            && let Some(found) = leading_number(token, 2, 4)
        {
            year = Some(found);
        }
    }
    let (hour, minute, second) = time?;
    let year = match year? {
        y @ 70..=99 => y + 1900,
        y @ 0..=69 => y + 2000,
        y => y,
    };
    if year < 1601 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month?, day?)?;
    Some(date.and_hms_opt(hour, minute, second)?.and_utc())
}

/// `1*2DIGIT ":" 1*2DIGIT ":" 1*2DIGIT`, then anything that does not
/// start with a digit.
fn time_of_day(token: &str) -> Option<(u32, u32, u32)> {
    let mut fields = token.splitn(3, ':');
    let hour = whole_number(fields.next()?, 1, 2)?;
    let minute = whole_number(fields.next()?, 1, 2)?;
    let second = leading_number(fields.next()?, 1, 2)?;
    Some((hour, minute, second))
}

/// A token that is only `min..=max` digits.
fn whole_number(token: &str, min: usize, max: usize) -> Option<u32> {
    let n = leading_number(token, min, max)?;
    token.bytes().all(|b| b.is_ascii_digit()).then_some(n)
}

/// `min..=max` digits at the start of `token`, then anything that does not
/// start with a digit.
fn leading_number(token: &str, min: usize, max: usize) -> Option<u32> {
    let digits = token.bytes().take_while(u8::is_ascii_digit).count();
    if !(min..=max).contains(&digits) {
        return None;
    }
    token[..digits].parse().ok()
}

/// A month named by the first three letters of `token`, 1 to 12.
fn month_of(token: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let prefix = token.get(..3)?.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| *m == prefix)
        .and_then(|i| u32::try_from(i + 1).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "appSession";
    const HOST: &str = "shapes.inc";

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc()
    }

    fn update(header: &str) -> Option<SessionUpdate<'_>> {
        session_update(header, NAME, HOST, now())
    }

    #[test]
    fn a_new_value_is_a_rotation_and_other_cookies_are_not_ours() {
        assert_eq!(
            update("appSession=new; Path=/; HttpOnly; Secure; SameSite=Lax"),
            Some(SessionUpdate::Rotated("new"))
        );
        assert_eq!(
            update(" appSession = n=w= ;"),
            Some(SessionUpdate::Rotated("n=w="))
        );
        assert_eq!(update("_ga=1; Path=/"), None);
        assert_eq!(update("appSessionX=1"), None);
        assert_eq!(update("no pair at all"), None);
        assert_eq!(
            update("appSession=; Path=/"),
            Some(SessionUpdate::Ignored("it has an empty value"))
        );
        assert!(matches!(
            update("appSession=a b"),
            Some(SessionUpdate::Ignored(_))
        ));
    }

    #[test]
    fn a_max_age_of_zero_or_less_ends_the_session_and_wins_over_expires() {
        for header in [
            "appSession=deleted; Max-Age=0",
            "appSession=deleted; max-age=-1; Path=/",
            "appSession=; Max-Age=000",
            "appSession=x; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Max-Age=0",
        ] {
            assert_eq!(update(header), Some(SessionUpdate::Ended), "{header}");
        }
        // A Max-Age in the future wins over an Expires in the past.
        assert_eq!(
            update("appSession=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60"),
            Some(SessionUpdate::Rotated("x"))
        );
        // An unreadable Max-Age is ignored.
        assert_eq!(
            update("appSession=x; Max-Age=soon"),
            Some(SessionUpdate::Rotated("x"))
        );
        assert_eq!(
            update("appSession=x; Max-Age=-"),
            Some(SessionUpdate::Rotated("x"))
        );
    }

    #[test]
    fn an_expires_date_in_the_past_ends_the_session_in_every_date_form() {
        for past in [
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Thu, 01-Jan-1970 00:00:01 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Fri, 02 Jan 2026 03:04:05 GMT",
        ] {
            let header = format!("appSession=gone; Expires={past}; Path=/");
            assert_eq!(update(&header), Some(SessionUpdate::Ended), "{past}");
        }
        for future in [
            "Fri, 02 Jan 2026 03:04:06 GMT",
            "Wed, 01-Jan-2070 00:00:00 GMT",
            "not a date",
            "Fri, 31 Feb 2025 00:00:00 GMT",
        ] {
            let header = format!("appSession=kept; Expires={future}");
            assert_eq!(update(&header), Some(SessionUpdate::Rotated("kept")), "{future}");
        }
    }

    #[test]
    fn dates_are_read_as_rfc_6265_says() {
        let at = |y, mo, d, h, mi, s| {
            NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, s)
                .unwrap()
                .and_utc()
        };
        assert_eq!(
            cookie_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(at(1994, 11, 6, 8, 49, 37))
        );
        assert_eq!(cookie_date("06-nov-69 8:9:7"), Some(at(2069, 11, 6, 8, 9, 7)));
        assert_eq!(cookie_date("Sun, 06 Nov 1994 24:00:00 GMT"), None);
        assert_eq!(cookie_date("Sun, 06 Nov 1600 08:49:37 GMT"), None);
        assert_eq!(cookie_date("Sun, 06 Nov 1994"), None, "no time");
        assert_eq!(cookie_date("Sun, 123 Nov 1994 08:49:37"), None, "no day");
    }

    #[test]
    fn a_cookie_for_another_path_is_another_cookie_and_neither_rotates_nor_ends_the_session() {
        let other = Some(SessionUpdate::Ignored("it is for another path than the API's"));
        assert_eq!(update("appSession=x; Path=/other"), other);
        assert_eq!(update("appSession=deleted; Max-Age=0; Path=/app"), other);
        assert_eq!(update("appSession=x; Path=/apiary"), other);
        assert_eq!(update("appSession=x; Path=/api/users/me"), other);
        for ours in ["/", "/api", "/api/", "", "relative"] {
            let header = format!("appSession=x; Path={ours}");
            assert_eq!(update(&header), Some(SessionUpdate::Rotated("x")), "{ours}");
        }
        assert_eq!(
            update("appSession=deleted; Max-Age=0; Path=/"),
            Some(SessionUpdate::Ended)
        );
    }

    #[test]
    fn a_domain_the_host_does_not_match_makes_the_header_ignored() {
        let foreign = Some(SessionUpdate::Ignored(
            "it is for another domain than the service's",
        ));
        assert_eq!(update("appSession=x; Domain=evil.example"), foreign);
        assert_eq!(update("appSession=x; Domain=hapes.inc"), foreign);
        assert_eq!(update("appSession=x; Domain=api.shapes.inc"), foreign);
        assert_eq!(
            update("appSession=deleted; Max-Age=0; Domain=evil.example"),
            foreign
        );
        for ours in ["shapes.inc", ".Shapes.INC", ""] {
            let header = format!("appSession=x; Domain={ours}");
            assert_eq!(update(&header), Some(SessionUpdate::Rotated("x")), "{ours}");
        }
        let sub = session_update("appSession=x; Domain=shapes.inc", NAME, "api.shapes.inc", now());
        assert_eq!(sub, Some(SessionUpdate::Rotated("x")));
        // An IP address only matches itself.
        let ip = |domain: &str, host: &str| {
            session_update(&format!("appSession=x; Domain={domain}"), NAME, host, now())
                .map(|u| u == SessionUpdate::Rotated("x"))
        };
        assert_eq!(ip("127.0.0.1", "127.0.0.1"), Some(true));
        assert_eq!(ip("0.0.1", "127.0.0.1"), Some(false));
        assert_eq!(ip("localhost", "127.0.0.1"), Some(false));
    }
}
