//! How message text becomes terms, for every script alike.
//!
//! tantivy's default tokenizer splits on anything not alphanumeric and
//! keeps a run of CJK characters as one term, so `漢字` inside a sentence
//! and every emoji are unfindable. [`ScriptTokenizer`] instead emits:
//!
//! - a word of letters and digits (any script: Latin, Cyrillic, Hebrew,
//!   Arabic, Devanagari, ...) as one term, combining marks left out of the
//!   term so that `e` + U+0301 reads as `é` does;
//! - each Han, kana and Hangul character as a term of its own (unigrams:
//!   these scripts write no spaces between words, and a query `漢字` is
//!   parsed into the phrase `漢 字`, which matches the two characters next
//!   to each other);
//! - each emoji as a term of its own, without the joiners, variation
//!   selectors and skin-tone modifiers that glue emoji sequences
//!   (`👩‍💻` is the phrase `👩 💻`).
//!
//! [`analyzer`] then lower-cases the terms and folds accented Latin letters
//! to ASCII (tantivy's filters), so `Café`, `cafe` and `CAFÉ` meet.

use std::iter::Peekable;
use std::str::CharIndices;

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name the index registers the analyzer under (the schema names it).
pub const NAME: &str = "chatkeep";

/// Terms longer than this many bytes are left out (a URL, a base64 blob):
/// nobody searches for them whole, and tantivy caps a term's length.
const LONGEST_TERM: usize = 100;

/// The analyzer of the message text: [`ScriptTokenizer`], lower case,
/// ASCII folding, overlong terms dropped. Queries go through it too.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(ScriptTokenizer::default())
        .filter(RemoveLongFilter::limit(LONGEST_TERM))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Splits text into words, single CJK characters and single emoji (see
/// the module's documentation).
#[derive(Debug, Clone, Default)]
pub struct ScriptTokenizer {
    token: Token,
}

/// What a character does to the term being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Part of a word.
    Word,
    /// A combining mark: continues a word, not written into the term.
    Mark,
    /// A term on its own (a CJK character, an emoji).
    Single,
    /// Glue inside an emoji sequence: ignored, and it ends a word.
    Glue,
    /// Anything else: a separator.
    Break,
}

fn class(c: char) -> Class {
    let u = u32::from(c);
    if is_mark(u) {
        Class::Mark
    } else if is_glue(u) {
        Class::Glue
    } else if is_cjk(u) || is_emoji(u) {
        Class::Single
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Break
    }
}

/// Combining marks that are not letters themselves: accents, Hebrew and
/// Arabic vowel points, kana voicing marks.
fn is_mark(u: u32) -> bool {
    matches!(u,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x05BF | 0x05C1..=0x05C2
        | 0x05C4..=0x05C5 | 0x05C7 | 0x0610..=0x061A | 0x064B..=0x065F | 0x0670
        | 0x06D6..=0x06DC | 0x06DF..=0x06E4 | 0x06E7..=0x06E8 | 0x06EA..=0x06ED
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0x3099..=0x309A
        | 0xFE20..=0xFE2F)
}

/// Zero-width joiner, variation selectors, emoji tags and skin tones.
fn is_glue(u: u32) -> bool {
    matches!(u, 0x200D | 0xFE00..=0xFE0F | 0xE0020..=0xE007F | 0x1F3FB..=0x1F3FF)
}

/// Han ideographs, kana, Hangul: scripts written without spaces between
/// words (Hangul with them, but with particles glued on), read a
/// character at a time.
fn is_cjk(u: u32) -> bool {
    matches!(u,
        0x1100..=0x11FF | 0x2E80..=0x2FDF | 0x3005..=0x3007 | 0x3021..=0x3029
        | 0x3040..=0x30FF | 0x3130..=0x318F | 0x31F0..=0x31FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xA960..=0xA97F | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F | 0x20000..=0x3134F)
}

/// Pictographs and symbols that are emoji (a superset of the common ones;
/// a symbol here that is not an emoji is still a fine term of its own).
fn is_emoji(u: u32) -> bool {
    matches!(u,
        0x2300..=0x23FF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x3030 | 0x303D | 0x3297
        | 0x3299 | 0x1F000..=0x1FAFF)
}

impl Tokenizer for ScriptTokenizer {
    type TokenStream<'a> = ScriptTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ScriptTokenStream<'a> {
        self.token.reset();
        ScriptTokenStream {
            chars: text.char_indices().peekable(),
            token: &mut self.token,
        }
    }
}

/// The terms of one text, in order.
pub struct ScriptTokenStream<'a> {
    chars: Peekable<CharIndices<'a>>,
    token: &'a mut Token,
}

impl ScriptTokenStream<'_> {
    /// Reads the rest of a word begun by the character just taken.
    fn finish_word(&mut self) {
        while let Some(&(at, c)) = self.chars.peek() {
            match class(c) {
                Class::Word => self.token.text.push(c),
                Class::Mark => {}
                Class::Single | Class::Glue | Class::Break => break,
            }
            self.token.offset_to = at + c.len_utf8();
            self.chars.next();
        }
    }
}

impl TokenStream for ScriptTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.token.text.clear();
        while let Some((at, c)) = self.chars.next() {
            let class = class(c);
            if !matches!(class, Class::Word | Class::Single) {
                continue;
            }
            // `reset` leaves the position at usize::MAX: the first term is 0.
            self.token.position = self.token.position.wrapping_add(1);
            self.token.offset_from = at;
            self.token.offset_to = at + c.len_utf8();
            self.token.text.push(c);
            if class == Class::Word {
                self.finish_word();
            }
            return true;
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The terms the analyzer makes of `text`, with their positions.
    fn terms(text: &str) -> Vec<(String, usize)> {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push((token.text.clone(), token.position));
        }
        out
    }

    fn words(text: &str) -> Vec<String> {
        terms(text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn latin_words_are_lower_cased_and_folded_to_ascii() {
        assert_eq!(
            words("Café CRÈME, naïve   Straße!"),
            ["cafe", "creme", "naive", "strasse"]
        );
    }

    #[test]
    fn a_combining_accent_reads_as_the_precomposed_letter() {
        // e + U+0301 and é, n + U+0303 and ñ.
        assert_eq!(words("e\u{301}te\u{301} man\u{303}ana"), words("été mañana"));
        assert_eq!(words("e\u{301}te\u{301}"), ["ete"]);
        // Marks stacked on every letter, precomposed letters among them.
        assert_eq!(
            words(
                "Z\u{324}\u{354}\u{367}\u{311}\u{313}\u{e4}\u{356}\u{32d}\u{308}\u{307}l\u{36e}\u{312}\u{36b}\u{1eb}\u{317}\u{320}"
            ),
            ["zalo"]
        );
    }

    #[test]
    fn cjk_characters_are_terms_of_their_own_in_order() {
        assert_eq!(
            terms("cjk 漢字かなカナ 한국어"),
            [
                ("cjk".to_owned(), 0),
                ("漢".to_owned(), 1),
                ("字".to_owned(), 2),
                ("か".to_owned(), 3),
                ("な".to_owned(), 4),
                ("カ".to_owned(), 5),
                ("ナ".to_owned(), 6),
                ("한".to_owned(), 7),
                ("국".to_owned(), 8),
                ("어".to_owned(), 9),
            ]
        );
        // CJK glued to Latin letters still splits from them.
        assert_eq!(words("abc漢字def"), ["abc", "漢", "字", "def"]);
    }

    #[test]
    fn emoji_are_terms_without_their_glue() {
        assert_eq!(words("emoji 😀🎉!"), ["emoji", "😀", "🎉"]);
        // A ZWJ family, a flag with a variation selector, a skin tone.
        assert_eq!(words("👩\u{200d}👩\u{200d}👧"), ["👩", "👩", "👧"]);
        assert_eq!(words("🏳\u{fe0f}\u{200d}🌈"), ["🏳", "🌈"]);
        assert_eq!(words("👍🏽ok"), ["👍", "ok"]);
    }

    #[test]
    fn right_to_left_scripts_and_their_digits_are_words() {
        assert_eq!(words("שלום עולם, מה שלומך?"), ["שלום", "עולם", "מה", "שלומך"]);
        assert_eq!(words("مرحبا بالعالم ١٢٣"), ["مرحبا", "بالعالم", "١٢٣"]);
        // Vowel points do not split or change a word.
        assert_eq!(words("שָׁלוֹם"), ["שלום"]);
    }

    #[test]
    fn punctuation_controls_and_markup_separate_words() {
        assert_eq!(
            words("<script>alert(\"x\")</script> nul\u{0}cr\r\u{202e}evil\u{202c}"),
            ["script", "alert", "x", "script", "nul", "cr", "evil"]
        );
        assert!(words("  ... \u{200d}\u{fe0f} ").is_empty());
    }

    #[test]
    fn offsets_cover_the_original_bytes_marks_included() {
        let text = "a e\u{301}t 漢";
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut spans = Vec::new();
        while let Some(token) = stream.next() {
            spans.push(&text[token.offset_from..token.offset_to]);
        }
        assert_eq!(spans, ["a", "e\u{301}t", "漢"]);
    }

    #[test]
    fn overlong_terms_are_dropped() {
        let long = "x".repeat(LONGEST_TERM + 1);
        assert_eq!(words(&format!("short {long} end")), ["short", "end"]);
    }
}
