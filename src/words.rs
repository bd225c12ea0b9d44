//! Counted words for messages people read: "1 message", "2 messages".

/// `n` followed by the word for one or for several (`counted(1,
/// "personality", "personalities")` is "1 personality").
pub fn counted(n: u64, one: &str, many: &str) -> String {
    let word = if n == 1 { one } else { many };
    format!("{n} {word}")
}

/// [`counted`] for words whose plural only adds an `s`.
pub fn count(n: u64, one: &str) -> String {
    let word = if n == 1 { one.to_owned() } else { format!("{one}s") };
    format!("{n} {word}")
}

/// Bytes in KiB, MiB or GiB, whichever reads best.
pub fn size(bytes: u64) -> String {
    let bytes = bytes as f64;
    match bytes {
        b if b < 1024.0 * 1024.0 => format!("{:.1} KiB", b / 1024.0),
        b if b < 1024.0 * 1024.0 * 1024.0 => format!("{:.1} MiB", b / (1024.0 * 1024.0)),
        b => format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(counted(1, "personality", "personalities"), "1 personality");
        assert_eq!(counted(0, "personality", "personalities"), "0 personalities");
        assert_eq!(count(1, "request"), "1 request");
        assert_eq!(count(2, "request"), "2 requests");
    }
}
