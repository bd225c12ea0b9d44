//! The live store checked against itself: every message of the committed
//! chat log and overlay decoded, merged, and the count, order, oldest `ts`,
//! newest `ts` and the ids there compared with the state file; overlay
//! records that match no stored message named; and the media files its
//! references point to, hashed.

use std::collections::HashSet;

use crate::message::{Message, MessageId, Ts};
use crate::store::{ChatStore, PersonalityDir};

/// Unreadable lines listed in full before the rest are only counted.
const SHOWN: usize = 3;

/// What checking the live store found.
#[derive(Debug, Default)]
pub struct LiveCheck {
    pub problems: Vec<String>,
    /// Messages decoded from the chat log.
    pub messages: u64,
}

/// Decodes the whole committed chat log of `dir` and compares it with the
/// state file: message count, oldest `ts`, newest `ts` and the ids there.
/// Reads only, without the lock.
pub fn check_live(dir: &PersonalityDir) -> LiveCheck {
    let mut check = LiveCheck::default();
    let chat = match ChatStore::open_read_only(dir.path()) {
        Ok(chat) => chat,
        Err(e) => {
            check.problems.push(format!("chat state: {e}"));
            return check;
        }
    };
    let mut history = match chat.history_with_keys() {
        Ok(history) => history,
        Err(e) => {
            check.problems.push(format!("chat log: {e}"));
            return check;
        }
    };
    let mut oldest: Option<Ts> = None;
    let mut newest: Option<(Ts, HashSet<MessageId>)> = None;
    let mut last: Option<Ts> = None;
    let mut disorder = 0u64;
    let mut bad = Vec::new();
    for entry in history.by_ref() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                check.messages += 1;
                if bad.len() < SHOWN {
                    bad.push(e.to_string());
                }
                continue;
            }
            Err(e) => {
                check.problems.push(format!(
                    "chat log: cannot be decoded after {} messages: {e}",
                    check.messages
                ));
                return check;
            }
        };
        check.messages += 1;
        let Some(key) = entry.key else { continue };
        // A log line was parsed to be merged; a version from the overlay not.
        if entry.story.is_some()
            && let Err(e) = Message::from_stored_line(&entry.message)
            && bad.len() < SHOWN
        {
            bad.push(format!("message {}: {e}", check.messages));
        }
        oldest.get_or_insert(key.position);
        if last.is_some_and(|l| key.position < l) {
            disorder += 1;
        }
        last = Some(key.position);
        // The head is the chat log's newest: late messages (in the overlay)
        // are not in it, even one dated beyond it.
        if entry.story.as_ref().is_some_and(|s| s.late) {
            continue;
        }
        match &mut newest {
            Some((ts, _)) if key.position < *ts => {}
            Some((ts, ids)) if key.position == *ts => {
                ids.insert(key.id);
            }
            _ => newest = Some((key.position, HashSet::from([key.id]))),
        }
    }
    let (anomalies, shown) = history.anomalies();
    if anomalies > 0 {
        check.problems.push(format!(
            "overlay: {anomalies} record{} that do not fit the chat log: {}",
            if anomalies == 1 { "" } else { "s" },
            shown.join("; ")
        ));
    }
    if !bad.is_empty() {
        check
            .problems
            .push(format!("chat history: unreadable messages: {}", bad.join("; ")));
    }
    if disorder > 0 {
        check.problems.push(format!(
            "chat log: {disorder} message{} older than one before {}",
            if disorder == 1 { "" } else { "s" },
            if disorder == 1 { "it" } else { "them" }
        ));
    }
    let state = chat.state();
    if state.message_count != check.messages {
        check.problems.push(format!(
            "chat state: says {} messages, the chat log holds {}",
            state.message_count, check.messages
        ));
    }
    if state.oldest != oldest {
        check.problems.push(format!(
            "chat state: says the oldest message is from {}, the log's is from {}",
            shown_ts(state.oldest),
            shown_ts(oldest)
        ));
    }
    let state_head = state
        .head
        .as_ref()
        .map(|h| (h.ts, h.ids.iter().cloned().collect::<HashSet<_>>()));
    if state_head != newest {
        let describe = |head: &Option<(Ts, HashSet<MessageId>)>| match head {
            Some((ts, ids)) => format!(
                "{} ({} id{})",
                ts.to_rfc3339(),
                ids.len(),
                if ids.len() == 1 { "" } else { "s" }
            ),
            None => "none".to_owned(),
        };
        check.problems.push(format!(
            "chat state: says the newest message is {}, the log's is {}",
            describe(&state_head),
            describe(&newest)
        ));
    }
    check
}

/// The media files the personality's references point to, each read and
/// hashed: one problem per file missing or damaged. Reads only.
pub fn check_media(data_dir: &std::path::Path, dir: &PersonalityDir) -> Vec<String> {
    match crate::media::Catalog::read(data_dir, dir.path()) {
        Ok(catalog) => catalog.check_files().unwrap_or_else(|e| {
            vec![format!(
                "media: cannot read the index: {}",
                crate::store::fsio::explain(&e)
            )]
        }),
        Err(e) => vec![format!(
            "media: cannot read the references or the index: {}",
            crate::store::fsio::explain(&e)
        )],
    }
}

fn shown_ts(ts: Option<Ts>) -> String {
    ts.map(Ts::to_rfc3339).unwrap_or_else(|| "none".to_owned())
}
