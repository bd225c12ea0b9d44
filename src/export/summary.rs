//! A conversation's `summary`, made without network or model: its opening
//! user line, cut short, and its most distinctive terms, the words it uses
//! most once the commonest English words are set aside.
//!
//! Memory is bounded whatever the length of a conversation: the opening is
//! cut at [`OPENING_CHARS`], and at most [`MAX_DISTINCT_TERMS`] distinct
//! terms are counted; once that many are known, new ones are not counted
//! (the frequent terms of a conversation show up early, and a conversation
//! that long is rare). Terms are compared within the conversation only: a
//! weighting against the whole history would need every term of it.

use std::collections::HashMap;

/// The opening line is cut after this many characters, with `…` added.
pub const OPENING_CHARS: usize = 200;
/// How many terms a summary lists.
pub const TERMS: usize = 8;
/// At most this many distinct terms are counted per conversation.
pub const MAX_DISTINCT_TERMS: usize = 20_000;

/// Words too common to tell one conversation from another.
const STOP_WORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "and",
    "any",
    "are",
    "aren",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "can",
    "cannot",
    "could",
    "did",
    "didn",
    "does",
    "doesn",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "even",
    "ever",
    "few",
    "for",
    "from",
    "further",
    "get",
    "got",
    "had",
    "has",
    "have",
    "having",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "into",
    "its",
    "itself",
    "just",
    "know",
    "let",
    "like",
    "more",
    "most",
    "much",
    "must",
    "myself",
    "not",
    "now",
    "off",
    "once",
    "one",
    "only",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "really",
    "said",
    "same",
    "say",
    "see",
    "she",
    "should",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "thing",
    "think",
    "this",
    "those",
    "through",
    "too",
    "under",
    "until",
    "very",
    "want",
    "was",
    "way",
    "well",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "yes",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Builds one conversation's summary, fed one stored message at a time.
#[derive(Debug, Default)]
pub struct Summary {
    opening: Option<String>,
    counts: HashMap<String, u64>,
}

impl Summary {
    /// Takes in one message: the user's text and the reply.
    pub fn add(&mut self, user: Option<&str>, reply: Option<&str>) {
        if self.opening.is_none()
            && let Some(text) = user.map(str::trim).filter(|t| !t.is_empty())
        {
            self.opening = Some(cut(text));
        }
        for text in [user, reply].into_iter().flatten() {
            for word in text.split(|c: char| !c.is_alphanumeric()) {
                self.count(word);
            }
        }
    }

    fn count(&mut self, word: &str) {
        // Three letters at least, not all digits: "ok", "42" tell nothing.
        if word.chars().count() < 3 || word.chars().all(|c| c.is_numeric()) {
            return;
        }
        let word = word.to_lowercase();
        if STOP_WORDS.binary_search(&word.as_str()).is_ok() {
            return;
        }
        if let Some(n) = self.counts.get_mut(&word) {
            *n += 1;
        } else if self.counts.len() < MAX_DISTINCT_TERMS {
            self.counts.insert(word, 1);
        }
    }

    /// `{"opening": "…", "terms": ["…"]}`: the opening user line (null when
    /// the user said nothing), and up to [`TERMS`] terms, the most frequent
    /// first (ties in alphabetical order), each used at least twice.
    pub fn to_json(&self) -> serde_json::Value {
        let mut terms: Vec<(&String, &u64)> = self.counts.iter().filter(|(_, n)| **n >= 2).collect();
        terms.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let terms: Vec<&str> = terms.into_iter().take(TERMS).map(|(t, _)| t.as_str()).collect();
        serde_json::json!({ "opening": self.opening, "terms": terms })
    }
}

/// `text` on one line, cut after [`OPENING_CHARS`] characters.
fn cut(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(OPENING_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_the_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_summary_is_the_opening_line_and_the_frequent_uncommon_words() {
        let mut summary = Summary::default();
        summary.add(None, Some("Welcome back!"));
        summary.add(
            Some("  Tell me about\nthe Lantern garden  "),
            Some("The lantern glows in the garden."),
        );
        summary.add(
            Some("And the lantern? 42 42 ok"),
            Some("Lanterns, gardens, lantern."),
        );
        let json = summary.to_json();
        assert_eq!(json["opening"], "Tell me about the Lantern garden");
        assert_eq!(json["terms"], serde_json::json!(["lantern", "garden"]));
    }

    #[test]
    fn the_opening_is_cut_and_the_terms_are_bounded() {
        let mut summary = Summary::default();
        let long = "é".repeat(OPENING_CHARS + 50);
        summary.add(Some(&long), None);
        let opening = summary.to_json()["opening"].as_str().unwrap().to_owned();
        assert_eq!(opening.chars().count(), OPENING_CHARS + 1);
        assert!(opening.ends_with('…'));
        for i in 0..MAX_DISTINCT_TERMS + 100 {
            summary.add(Some(&format!("word{i}")), None);
        }
        assert_eq!(summary.counts.len(), MAX_DISTINCT_TERMS);
        assert_eq!(Summary::default().to_json()["opening"], serde_json::Value::Null);
    }
}
