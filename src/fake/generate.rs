//! Deterministic content: ids, texts and the exact JSON text of generated
//! messages.
//!
//! Nothing here is stored: a message is rebuilt from (seed, slug, generator
//! index, ts, revision) whenever it is served, which is what keeps a
//! million-message history cheap. The hashes are written out (FNV-1a, SplitMix64) rather than taken
//! from `std` or `rand`, so the same seed gives the same bytes on every
//! toolchain and every run.

use std::borrow::Cow;
use std::fmt::Write as _;

/// FNV-1a over bytes: a stable hash for slugs and seeds.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64 finaliser: turns any 64-bit value into a well-mixed one.
pub(super) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A tiny deterministic stream of numbers (SplitMix64).
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A number in `0..n` (n > 0); the slight modulo bias does not matter here.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A UUID-shaped string (version 4 layout). The last group carries `tail`
/// verbatim, so ids built with distinct tails never collide.
pub(super) fn uuid_like(head: u64, tail: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        head >> 32,
        (head >> 16) & 0xffff,
        head & 0xfff,
        ((tail >> 48) & 0x3fff) | 0x8000,
        tail & 0xffff_ffff_ffff
    )
}

/// The personality id `PersonalitySpec::new` derives from a slug.
pub(super) fn personality_id(slug: &str) -> String {
    let hash = fnv1a(slug.as_bytes());
    uuid_like(mix(hash), mix(hash ^ 0x5eed))
}

/// Writes a millisecond timestamp the way Python's `json` writes the float
/// `ms / 1000`: seconds, a point, the milliseconds with trailing zeros
/// trimmed but at least one digit (`1712345678.1`, `1712345678.0`).
///
/// For any realistic epoch value this is also the shortest text that
/// round-trips the f64, which is what Python prints.
pub fn format_ts(ms: u64) -> String {
    let secs = ms / 1000;
    let frac = ms % 1000;
    if frac == 0 {
        return format!("{secs}.0");
    }
    let digits = format!("{frac:03}");
    format!("{secs}.{}", digits.trim_end_matches('0'))
}

/// The f64 a client parses from `format_ts(ms)`. Both this division and a
/// correct decimal parse round the same exact rational `ms / 1000`, so they
/// give the same value.
pub(super) fn ts_value(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Inverse of [`ts_value`] for values that came from it.
pub(super) fn ts_ms(value: f64) -> u64 {
    (value * 1000.0).round() as u64
}

/// Mixed with a revision number to draw a regenerated reply's words apart
/// from the user text (purpose 1) and the original reply (purpose 2).
const REPLY_REVISION: u64 = 0x7e9e_6e7a_7e00_0000;

const WORDS: &[&str] = &[
    "hello", "moon", "archive", "coffee", "river", "signal", "quiet", "lantern", "garden", "orbit", "paper",
    "violet", "thunder", "pocket", "window", "marble", "echo", "harbor", "ember", "velvet", "compass",
    "meadow", "static", "ribbon", "glacier", "saffron", "tunnel", "puzzle", "feather", "canyon", "whisper",
    "atlas",
];

/// Hostile text, already written as JSON string contents (escapes and all),
/// so the served bytes contain `\u0000`, escaped surrogate pairs and the
/// like exactly as a Python or JS server could send them.
const HOSTILE: &[&str] = &[
    r#"emoji 😀🎉 and an escaped pair \ud83d\ude00 side by side"#,
    r#"quote \" backslash \\ slash \/ newline \n tab \t nul \u0000 cr \r end"#,
    r#"שלום עולם, מה שלומך? \u200f(RTL)"#,
    r#"مرحبا بالعالم ١٢٣ ‏كيف حالك"#,
    r#"family 👩‍👩‍👧‍👦 flag 🏳️‍🌈 coder 👨\u200d💻"#,
    r#"combining: e\u0301 é Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗̠ n\u0303"#,
    r#"bidi a\u202eevil\u202c, bom \ufeff, line sep \u2028 para \u2029"#,
    r#"<script>alert(\"x\")</script> &amp; {\"not\": \"json\"} [1,2]"#,
    r#"astral 𝕳𝖊𝖑𝖑𝖔 \ud834\udd1e clef, cjk 漢字かなカナ"#,
];

/// Unknown fields in many JSON shapes; a byte-faithful client must keep
/// them exactly (note `2.50` and `1e-7`, which a re-serialiser would change).
const EXTRA_FIELDS: &str = concat!(
    r#","x_meta":{"nested":{"depth":[1,[2,[3,{"k":null}]]]},"weights":[2.50,1e-7,-0.0,1E+2]}"#,
    r#","score":2.50,"tiny":1e-7,"big":123456789012345678901234567890"#,
    r#","neg_big":-98765432109876543210,"flags":[true,false,null],"empty_obj":{}"#,
    r#","model_hint":"fake-model-1""#,
);

/// Builds the messages of one personality. Holds only a few words of state;
/// every message is a pure function of its generator index (see
/// `history.rs`), its timestamp and its revision (how often its reply was
/// regenerated).
#[derive(Debug, Clone)]
pub(super) struct MessageGenerator {
    /// Mixed from the service seed and the slug.
    key: u64,
    extra_fields: bool,
    hostile_unicode: bool,
    /// The media host's base URL, when messages point at it.
    media: Option<std::sync::Arc<str>>,
    /// Every link its own file rather than one of the catalogue's.
    distinct_media: bool,
}

impl MessageGenerator {
    pub(super) fn new(seed: u64, slug: &str, extra_fields: bool, hostile_unicode: bool) -> Self {
        MessageGenerator {
            key: mix(seed ^ fnv1a(slug.as_bytes())),
            extra_fields,
            hostile_unicode,
            media: None,
            distinct_media: false,
        }
    }

    /// Makes every third message carry an image of the media host at
    /// `base` and every fourth a voice reply, cycling through the
    /// catalogue (so many messages share a URL); the others keep nulls.
    /// With `distinct`, each of those links names a file of its own
    /// instead (a backlog as large as the history, for load tests).
    pub(super) fn with_media(mut self, base: &str, distinct: bool) -> Self {
        self.media = Some(base.into());
        self.distinct_media = distinct;
        self
    }

    /// The `attachment_url`, `attachment_type` and `voice_reply_url` of
    /// message `index`, as JSON values.
    fn media_fields(&self, index: usize) -> [Cow<'static, str>; 3] {
        let null = || Cow::Borrowed("null");
        let Some(base) = &self.media else {
            return [null(), null(), null()];
        };
        let quoted = |path: &str| Cow::Owned(format!("\"{}\"", super::media::media_url(base, path)));
        let (image, voice) = (super::media::IMAGES, super::media::VOICES);
        // The key tells personalities apart: no two share a distinct file.
        let own = |dir: &str, ext: &str| format!("/{dir}/{:016x}-{index}.{ext}", self.key);
        let (attachment, kind) = if index.is_multiple_of(3) {
            let path = if self.distinct_media {
                own("img", "png")
            } else {
                image[(index / 3) % image.len()].to_owned()
            };
            (quoted(&path), Cow::Borrowed("\"image\""))
        } else {
            (null(), null())
        };
        let voice = if index % 4 == 1 {
            let path = if self.distinct_media {
                own("voice", "mp3")
            } else {
                voice[(index / 4) % voice.len()].to_owned()
            };
            quoted(&path)
        } else {
            null()
        };
        [attachment, kind, voice]
    }

    fn draws(&self, index: usize, purpose: u64) -> Draws {
        Draws(mix(self.key ^ mix(index as u64) ^ purpose))
    }

    /// Unique per personality: the index sits in the id's last group.
    pub(super) fn message_id(&self, index: usize) -> String {
        uuid_like(mix(self.key ^ index as u64), index as u64)
    }

    /// Appends the JSON text of message `index` (timestamp `ts_ms`) to `out`,
    /// as it reads after `revision` regenerations: the reply is version
    /// `revision`, and the earlier versions, oldest first, fill
    /// `regenerated_replies`. Revision 0 is the message as first generated,
    /// with `regenerated_replies` empty. Only the reply changes.
    pub(super) fn write_message(&self, index: usize, ts_ms: u64, revision: u32, out: &mut String) {
        out.push_str("{\"id\":\"");
        out.push_str(&self.message_id(index));
        out.push_str("\",\"message\":\"");
        self.write_text(index, 1, out);
        out.push_str("\",\"reply\":\"");
        self.write_reply(index, revision, out);
        // Writing to a String cannot fail.
        let [attachment, kind, voice] = self.media_fields(index);
        let _ = write!(
            out,
            "\",\"ts\":{},\"voice_reply_url\":{voice},\"attachment_url\":{attachment},\
             \"attachment_type\":{kind},\"regenerated_replies\":[",
            format_ts(ts_ms)
        );
        for earlier in 0..revision {
            if earlier > 0 {
                out.push(',');
            }
            out.push('"');
            self.write_reply(index, earlier, out);
            out.push('"');
        }
        out.push_str("],\"fallback_model_used\":false");
        if self.extra_fields {
            out.push_str(EXTRA_FIELDS);
            let _ = write!(out, ",\"seq\":{index}");
        }
        out.push('}');
    }

    /// Version `revision` of the reply. Version 0 is the original text;
    /// later ones draw other words and end with `(take N)` (N = revision +
    /// 1), so every version differs from every other even when the draws
    /// happen to coincide.
    fn write_reply(&self, index: usize, revision: u32, out: &mut String) {
        if revision == 0 {
            self.write_text(index, 2, out);
            return;
        }
        self.write_text(index, mix(REPLY_REVISION ^ u64::from(revision)), out);
        let _ = write!(out, " (take {})", u64::from(revision) + 1);
    }

    /// A few words, then (when hostile) one hostile fragment; `purpose`
    /// keeps the user text and the reply apart.
    fn write_text(&self, index: usize, purpose: u64, out: &mut String) {
        let mut draws = self.draws(index, purpose);
        let words = 3 + draws.below(10);
        for n in 0..words {
            if n > 0 {
                out.push(' ');
            }
            out.push_str(WORDS[draws.below(WORDS.len())]);
        }
        if self.hostile_unicode {
            out.push(' ');
            out.push_str(HOSTILE[draws.below(HOSTILE.len())]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_is_written_like_python() {
        assert_eq!(format_ts(1_712_345_678_123), "1712345678.123");
        assert_eq!(format_ts(1_712_345_678_100), "1712345678.1");
        assert_eq!(format_ts(1_712_345_678_120), "1712345678.12");
        assert_eq!(format_ts(1_712_345_678_000), "1712345678.0");
        assert_eq!(format_ts(1_712_345_678_001), "1712345678.001");
        assert_eq!(format_ts(0), "0.0");
    }

    #[test]
    fn ts_value_equals_parsing_the_text() {
        let mut ms = 1_600_000_000_000u64;
        for _ in 0..100_000 {
            let text = format_ts(ms);
            let parsed: f64 = text.parse().unwrap();
            assert_eq!(parsed, ts_value(ms), "{text}");
            assert_eq!(ts_ms(parsed), ms);
            // Python's repr is the shortest round-trip text, as is Rust's.
            assert_eq!(format!("{parsed:?}"), text);
            ms += 7_919;
        }
    }

    #[test]
    fn every_generated_message_is_valid_json() {
        let generator = MessageGenerator::new(7, "lilith", true, true);
        for index in 0..500 {
            let mut text = String::new();
            generator.write_message(index, 1_700_000_000_000 + index as u64, 0, &mut text);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["id"], generator.message_id(index).as_str());
            assert_eq!(value["regenerated_replies"], serde_json::json!([]));
        }
    }

    #[test]
    fn a_revision_moves_the_earlier_replies_into_regenerated_replies() {
        let generator = MessageGenerator::new(7, "lilith", true, true);
        let version = |revision| {
            let mut text = String::new();
            generator.write_message(42, 1_700_000_000_000, revision, &mut text);
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        };
        let (first, second, third) = (version(0), version(1), version(2));
        assert_ne!(first["reply"], second["reply"]);
        assert_ne!(second["reply"], third["reply"]);
        assert_eq!(second["regenerated_replies"], serde_json::json!([first["reply"]]));
        assert_eq!(
            third["regenerated_replies"],
            serde_json::json!([first["reply"], second["reply"]])
        );
        for field in ["id", "message", "ts", "seq", "x_meta"] {
            assert_eq!(first[field], third[field], "{field}");
        }
    }
}
