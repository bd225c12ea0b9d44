//! Memories: fetched whole each sync (they change and vanish upstream),
//! merged by id into the stored list, oldest first. A memory that vanished
//! upstream stays, marked `deleted_upstream_at`; the file's earlier contents
//! are kept under `versions/` whenever it changes.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api::{ApiClient, ApiError, PersonalityId};

/// The mark appended to a vanished memory's object.
const MARK: &str = ",\"deleted_upstream_at\":\"";

/// Memories per request.
const PAGE_LIMIT: u32 = 50;

/// One memory in the backup.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMemory {
    pub id: String,
    /// The object as last received from upstream, compact.
    pub raw: String,
    /// When chatkeep first saw it missing upstream (RFC 3339).
    pub deleted_upstream_at: Option<String>,
}

impl StoredMemory {
    /// The object as written to the file: upstream's, plus the mark.
    fn render(&self) -> String {
        match &self.deleted_upstream_at {
            None => self.raw.clone(),
            Some(at) => {
                let body = &self.raw[..self.raw.len() - 1];
                let sep = if body.trim_end() == "{" { &MARK[1..] } else { MARK };
                format!("{body}{sep}{at}\"}}")
            }
        }
    }
}

/// What a merge changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryCounts {
    pub new: u64,
    pub changed: u64,
    pub vanished: u64,
    /// Memories upstream now.
    pub upstream: u64,
    /// Memories in the backup, vanished ones included.
    pub total: u64,
}

/// All memories upstream, newest first, and whether the walk saw them all.
pub struct Fetched {
    pub newest_first: Vec<String>,
    pub complete: bool,
}

/// Walks every memory page, up to `max_pages`.
pub async fn fetch(client: &ApiClient, id: &PersonalityId, max_pages: u32) -> Result<Fetched, ApiError> {
    let mut newest_first = Vec::new();
    for page in 1..=max_pages {
        match client.memories_page(id, page, PAGE_LIMIT).await? {
            None => {
                return Ok(Fetched {
                    newest_first,
                    complete: true,
                });
            }
            Some(p) => {
                newest_first.extend(p.items);
                if !p.has_next {
                    return Ok(Fetched {
                        newest_first,
                        complete: true,
                    });
                }
            }
        }
    }
    tracing::warn!(
        max_pages,
        fetched = newest_first.len(),
        "stopped after the safety cap of memory pages ([sync] max_memory_pages); \
         memories beyond it are not backed up and none is marked vanished"
    );
    Ok(Fetched {
        newest_first,
        complete: false,
    })
}

/// The id of a memory object (string, or a number's text).
fn memory_id(raw: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    let parsed: Id = serde_json::from_str(raw).map_err(|e| format!("a memory is not an object: {e}"))?;
    match parsed
        .id
        .map(|r| serde_json::from_str::<serde_json::Value>(r.get()))
    {
        Some(Ok(serde_json::Value::String(s))) if !s.is_empty() => Ok(s),
        Some(Ok(serde_json::Value::Number(n))) => Ok(n.to_string()),
        _ => Err("a memory has no usable `id`".into()),
    }
}

/// Reads the stored file (a JSON array of memory objects).
pub fn parse_stored(bytes: &[u8]) -> Result<Vec<StoredMemory>, String> {
    let items: Vec<&RawValue> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    items
        .into_iter()
        .map(|raw| {
            let text = raw.get();
            let (raw, deleted_upstream_at) = split_mark(text);
            Ok(StoredMemory {
                id: memory_id(&raw)?,
                raw,
                deleted_upstream_at,
            })
        })
        .collect()
}

/// Separates chatkeep's mark from upstream's object.
fn split_mark(text: &str) -> (String, Option<String>) {
    let stripped = |pos: usize, skip: usize| {
        let at = &text[pos + skip..text.len() - 2];
        (!at.contains('"')).then(|| (text[..pos].to_owned() + "}", Some(at.to_owned())))
    };
    if text.ends_with("\"}") {
        if let Some(pos) = text.rfind(MARK)
            && let Some(split) = stripped(pos, MARK.len())
        {
            return split;
        }
        if let Some(rest) = text.strip_prefix('{')
            && rest.starts_with(&MARK[1..])
            && let Some((_, at)) = stripped(0, MARK.len())
        {
            return ("{}".to_owned(), at);
        }
    }
    (text.to_owned(), None)
}

/// Renders the backup file: one memory per line, oldest first.
pub fn render(memories: &[StoredMemory]) -> Vec<u8> {
    let mut out = String::from("[");
    for (i, m) in memories.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        out.push_str(&m.render());
    }
    out.push_str(if memories.is_empty() { "]\n" } else { "\n]\n" });
    out.into_bytes()
}

/// Merges what upstream has now into what the backup holds.
pub fn merge(
    stored: Vec<StoredMemory>,
    fetched: Fetched,
    now: &str,
) -> Result<(Vec<StoredMemory>, MemoryCounts), String> {
    let mut upstream: HashMap<String, String> = HashMap::new();
    let mut order = Vec::new();
    for raw in fetched.newest_first {
        let id = memory_id(&raw)?;
        if let std::collections::hash_map::Entry::Vacant(slot) = upstream.entry(id.clone()) {
            order.push(id);
            slot.insert(raw);
        }
    }
    let mut counts = MemoryCounts {
        upstream: upstream.len() as u64,
        ..MemoryCounts::default()
    };
    let mut merged = Vec::with_capacity(stored.len() + upstream.len());
    for mut m in stored {
        match upstream.remove(&m.id) {
            Some(raw) => {
                if raw != m.raw {
                    counts.changed += 1;
                }
                m.raw = raw;
                m.deleted_upstream_at = None;
            }
            None if fetched.complete && m.deleted_upstream_at.is_none() => {
                counts.vanished += 1;
                m.deleted_upstream_at = Some(now.to_owned());
            }
            None => {}
        }
        merged.push(m);
    }
    for id in order.into_iter().rev() {
        if let Some(raw) = upstream.remove(&id) {
            counts.new += 1;
            merged.push(StoredMemory {
                id,
                raw,
                deleted_upstream_at: None,
            });
        }
    }
    counts.total = merged.len() as u64;
    Ok((merged, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(newest_first: &[&str]) -> Fetched {
        Fetched {
            newest_first: newest_first.iter().map(|s| s.to_string()).collect(),
            complete: true,
        }
    }

    #[test]
    fn merge_keeps_order_marks_vanished_and_counts() {
        let (first, c) = merge(
            vec![],
            fetched(&[r#"{"id":"b","t":2}"#, r#"{"id":"a","t":1}"#]),
            "T1",
        )
        .unwrap();
        assert_eq!(
            first.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!((c.new, c.total), (2, 2));
        let (second, c) = merge(first, fetched(&[r#"{"id":"c"}"#, r#"{"id":"a","t":9}"#]), "T2").unwrap();
        assert_eq!(
            (c.new, c.changed, c.vanished, c.total, c.upstream),
            (1, 1, 1, 3, 2)
        );
        assert_eq!(second[1].deleted_upstream_at.as_deref(), Some("T2"));
        // Round trip through the file keeps the mark apart from upstream's object.
        let back = parse_stored(&render(&second)).unwrap();
        assert_eq!(back, second);
        assert!(
            String::from_utf8(render(&second))
                .unwrap()
                .contains(r#"{"id":"b","t":2,"deleted_upstream_at":"T2"}"#)
        );
    }

    #[test]
    fn an_incomplete_walk_marks_nothing_vanished() {
        let (stored, _) = merge(vec![], fetched(&[r#"{"id":"a"}"#]), "T1").unwrap();
        let partial = Fetched {
            newest_first: vec![],
            complete: false,
        };
        let (after, c) = merge(stored, partial, "T2").unwrap();
        assert_eq!(c.vanished, 0);
        assert!(after[0].deleted_upstream_at.is_none());
    }

    #[test]
    fn a_memory_that_returns_loses_its_mark() {
        let stored = vec![StoredMemory {
            id: "a".into(),
            raw: r#"{"id":"a"}"#.into(),
            deleted_upstream_at: Some("T1".into()),
        }];
        let (after, _) = merge(stored, fetched(&[r#"{"id":"a"}"#]), "T2").unwrap();
        assert!(after[0].deleted_upstream_at.is_none());
    }
}
