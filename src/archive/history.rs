//! The chat history member of a snapshot, checked as it streams past: the
//! export object is visited key by key and its `messages` one at a time,
//! so only what the checks need is kept (at [`Depth::Full`], 20 bytes per
//! message for the id check).

use std::io::{BufReader, Read};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

use super::manifest::SnapshotEntry;
use super::verify::Depth;
use crate::message::{MessageId, Ts};

/// Problems of one kind listed in full before the rest are only counted.
const SHOWN: usize = 3;

/// What a chat history member holds, gathered while it streams past.
#[derive(Default)]
struct History {
    depth_full: bool,
    count: u64,
    first: Option<f64>,
    last: Option<f64>,
    /// Messages whose `ts` is smaller than the one before: count, first one.
    disorder: u64,
    first_disorder: Option<(u64, f64, f64)>,
    /// Messages without a usable `id` or `ts`: count, first few.
    bad: u64,
    bad_shown: Vec<String>,
    /// Truncated SHA-256 of each id, with the message's number.
    ids: Vec<([u8; 16], u32)>,
    header_count: Option<u64>,
    header_range: Option<DateRange>,
    has_messages: bool,
}

#[derive(Deserialize)]
struct DateRange {
    earliest: Option<String>,
    latest: Option<String>,
}

/// The keys of a message a check needs; the rest is skipped. A message
/// whose current version came with another `ts` than the one that placed
/// it says where it stands in `_chatkeep.position_ts`.
#[derive(Deserialize)]
struct Keys {
    id: Option<Box<serde_json::value::RawValue>>,
    ts: Option<serde_json::Number>,
    #[serde(rename = "_chatkeep", default)]
    chatkeep: Option<serde_json::Value>,
}

impl Keys {
    /// The `ts` that places the message.
    fn position(&self) -> Option<f64> {
        let placed = self
            .chatkeep
            .as_ref()
            .and_then(|note| note.get("position_ts"))
            .and_then(serde_json::Value::as_f64);
        placed.or_else(|| self.ts.as_ref().and_then(serde_json::Number::as_f64))
    }
}

/// Checks the chat history member. A JSON or read error is returned for
/// the caller to report; every other finding goes to `problems`.
pub(super) fn check_history(
    member: impl Read,
    name: &str,
    entry: &SnapshotEntry,
    depth: Depth,
    problems: &mut Vec<String>,
) -> Result<(), serde_json::Error> {
    let mut history = History {
        depth_full: depth == Depth::Full,
        ..History::default()
    };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 16, member));
    de::Deserializer::deserialize_map(&mut de, HistoryVisitor(&mut history)).and_then(|()| de.end())?;
    if !history.has_messages {
        problems.push(format!("{name} has no \"messages\" list"));
    }
    let what = |n: u64| format!("{n} message{}", if n == 1 { "" } else { "s" });
    if entry.message_count != history.count {
        problems.push(format!(
            "{name}: the manifest says {}, the snapshot holds {}",
            what(entry.message_count),
            what(history.count)
        ));
    }
    match history.header_count {
        Some(n) if n != history.count => problems.push(format!(
            "{name}: its message_count says {}, it holds {}",
            what(n),
            what(history.count)
        )),
        Some(_) => {}
        None => problems.push(format!("{name} has no message_count")),
    }
    let shown = |ts: Option<f64>| ts.and_then(Ts::new).map(Ts::to_rfc3339);
    let (first, last) = (shown(history.first), shown(history.last));
    for (which, found, manifest) in [
        ("oldest", &first, &entry.first_message),
        ("newest", &last, &entry.last_message),
    ] {
        if found != manifest {
            problems.push(format!(
                "{name}: the {which} message is from {}, the manifest says {}",
                found.as_deref().unwrap_or("(none)"),
                manifest.as_deref().unwrap_or("(none)")
            ));
        }
    }
    if let Some(range) = &history.header_range
        && (range.earliest != first || range.latest != last)
    {
        problems.push(format!(
            "{name}: its date_range says {} to {}, its messages span {} to {}",
            range.earliest.as_deref().unwrap_or("null"),
            range.latest.as_deref().unwrap_or("null"),
            first.as_deref().unwrap_or("null"),
            last.as_deref().unwrap_or("null")
        ));
    }
    if let Some((n, before, ts)) = history.first_disorder {
        problems.push(format!(
            "{name}: messages are not oldest first: message {n} has ts {ts}, after {before} in \
             message {}; {} such place{}",
            n - 1,
            history.disorder,
            if history.disorder == 1 { "" } else { "s" }
        ));
    }
    if history.bad > 0 {
        problems.push(format!(
            "{name}: {} without a usable id or ts: {}",
            what(history.bad),
            history.bad_shown.join("; ")
        ));
    }
    if history.depth_full {
        duplicates(&mut history.ids, name, problems);
    }
    Ok(())
}

/// Reports ids that appear more than once.
fn duplicates(ids: &mut [([u8; 16], u32)], name: &str, problems: &mut Vec<String>) {
    ids.sort_unstable();
    let mut groups = 0u64;
    let mut shown = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i + 1;
        while j < ids.len() && ids[j].0 == ids[i].0 {
            j += 1;
        }
        if j - i > 1 {
            groups += 1;
            if shown.len() < SHOWN {
                let numbers: Vec<String> = ids[i..j].iter().map(|(_, n)| n.to_string()).collect();
                shown.push(format!("messages {}", numbers.join(", ")));
            }
        }
        i = j;
    }
    if groups > 0 {
        problems.push(format!(
            "{name}: {groups} {} more than once ({})",
            if groups == 1 { "id appears" } else { "ids appear" },
            shown.join("; ")
        ));
    }
}

impl History {
    fn message(&mut self, keys: Keys) {
        self.count += 1;
        let n = self.count;
        let ts = keys.position().and_then(Ts::new);
        // `"7"` and `7` are two ids, and a number is its text: two long
        // numbers that round to the same float are two ids too.
        let id = keys.id.as_deref().and_then(MessageId::from_json).map(|id| {
            let kind = if id.is_number() { 'n' } else { 's' };
            format!("{kind}{}", id.as_str())
        });
        let (Some(ts), Some(id)) = (ts, id) else {
            self.bad += 1;
            if self.bad_shown.len() < SHOWN {
                let part = if ts.is_none() { "ts" } else { "id" };
                self.bad_shown.push(format!("message {n} has no usable {part}"));
            }
            return;
        };
        let ts = ts.as_f64();
        if let Some(before) = self.last
            && ts < before
        {
            self.disorder += 1;
            self.first_disorder.get_or_insert((n, before, ts));
        }
        self.first.get_or_insert(ts);
        self.last = Some(ts);
        if self.depth_full
            && let Ok(number) = u32::try_from(n)
        {
            let digest = Sha256::digest(id.as_bytes());
            let mut short = [0u8; 16];
            short.copy_from_slice(&digest[..16]);
            self.ids.push((short, number));
        }
    }
}

/// Visits the export's top-level object, streaming `messages`.
struct HistoryVisitor<'a>(&'a mut History);

impl<'de> Visitor<'de> for HistoryVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(
            "the export object {shape_id, shape_name, message_count, date_range, export_date, messages}",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "message_count" => self.0.header_count = Some(map.next_value()?),
                "date_range" => self.0.header_range = Some(map.next_value()?),
                "messages" => {
                    self.0.has_messages = true;
                    map.next_value_seed(MessagesSeed(self.0))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `messages` list, one message at a time.
struct MessagesSeed<'a>(&'a mut History);

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of message objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(keys) = seq.next_element::<Keys>()? {
            self.0.message(keys);
        }
        Ok(())
    }
}
