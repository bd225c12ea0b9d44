//! Everything but chat history: listings, memories, knowledge, training and
//! user personalization. Their answers are small; each comes back as the raw
//! JSON received, with only the structure the sync needs parsed out.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ApiClient, ApiError, PersonalityId};
use crate::message::minify;

/// Which personalities a listing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The account's own (`?category=self`).
    Owned,
    /// Recently used (`?category=recent`).
    Recent,
}

/// The small per-personality documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    Knowledge,
    Training,
    UserPersonalization,
}

impl Document {
    fn path_word(self) -> &'static str {
        match self {
            Document::Knowledge => "story",
            Document::Training => "training",
            Document::UserPersonalization => "user",
        }
    }
}

/// One page of memories, newest first, as compact raw JSON objects.
#[derive(Debug, Clone)]
pub struct MemoryPage {
    pub items: Vec<String>,
    pub has_next: bool,
}

#[derive(Deserialize)]
struct Pagination {
    page: Option<u64>,
    total_pages: Option<u64>,
    has_next: Option<bool>,
}

#[derive(Deserialize)]
struct Meta {
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct RawMemoryPage<'a> {
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    memories: Option<Vec<&'a RawValue>>,
    pagination: Option<Pagination>,
    meta: Option<Meta>,
}

impl ApiClient {
    /// The usernames the service lists for the account in `category`; a
    /// listing naming more than `max` is refused whole (`[discover]
    /// max_personalities`), so a broken or hostile answer cannot make a
    /// run create and walk thousands of personalities.
    pub async fn list(&self, category: Category, max: u32) -> Result<Vec<String>, ApiError> {
        #[derive(Deserialize)]
        struct Listed {
            username: Option<String>,
        }
        let word = match category {
            Category::Owned => "self",
            Category::Recent => "recent",
        };
        let body = self
            .get(&format!("/api/{}?category={word}", self.options.jargon))
            .await?;
        let listed: Vec<Listed> = serde_json::from_slice(&body).map_err(|e| {
            ApiError::Contract(format!("the `{word}` listing is not an array of profiles: {e}"))
        })?;
        let names: Vec<String> = listed.into_iter().filter_map(|l| l.username).collect();
        if names.len() > max as usize {
            return Err(ApiError::Contract(format!(
                "the `{word}` listing names {} personalities, more than [discover] max_personalities = {max}; \
                 none of them is synced. Raise max_personalities if the account really has that many",
                names.len()
            )));
        }
        Ok(names)
    }

    /// One page of memories (1 is the newest); `None` when there are none (404).
    pub async fn memories_page(
        &self,
        id: &PersonalityId,
        page: u32,
        limit: u32,
    ) -> Result<Option<MemoryPage>, ApiError> {
        let body = match self
            .get(&format!("/api/memory/{id}?page={page}&limit={limit}"))
            .await
        {
            Ok(body) => body,
            Err(ApiError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        parse_memory_page(&body, page, limit).map(Some)
    }

    /// A small document as received (compact), or `None` for "none" (404,
    /// or an empty object).
    pub async fn document(&self, id: &PersonalityId, which: Document) -> Result<Option<String>, ApiError> {
        let path = format!("/api/{}/{id}/{}", self.options.jargon, which.path_word());
        match self.get(&path).await {
            Ok(body) => {
                let text = std::str::from_utf8(&body)
                    .map_err(|e| ApiError::Contract(format!("{path}: not UTF-8: {e}")))?;
                let compact = minify(text);
                Ok((compact != "{}").then_some(compact))
            }
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Entries in a knowledge or training answer: an array, `{"items": [...]}`,
/// or a single object.
pub fn entry_count(doc: &str) -> u64 {
    #[derive(Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        items: Vec<&'a RawValue>,
    }
    if let Ok(list) = serde_json::from_str::<Vec<&RawValue>>(doc) {
        return list.len() as u64;
    }
    if let Ok(w) = serde_json::from_str::<Wrapped>(doc) {
        return w.items.len() as u64;
    }
    1
}

/// Reads either deployment's page shape; decides `has_next` from whatever
/// the page offers (`has_next`, else `total_pages`, else a full page).
pub fn parse_memory_page(body: &[u8], page: u32, limit: u32) -> Result<MemoryPage, ApiError> {
    let raw: RawMemoryPage = serde_json::from_slice(body)
        .map_err(|e| ApiError::Contract(format!("memories page {page} is not an object: {e}")))?;
    let items = raw.items.or(raw.memories).ok_or_else(|| {
        ApiError::Contract(format!("memories page {page} has neither `items` nor `memories`"))
    })?;
    let pagination = raw.pagination.or(raw.meta.and_then(|m| m.pagination));
    let full = items.len() >= limit as usize;
    let has_next = match pagination {
        Some(Pagination {
            has_next: Some(next), ..
        }) => next,
        Some(Pagination {
            total_pages: Some(total),
            page: current,
            ..
        }) => current.unwrap_or(u64::from(page)) < total,
        _ => full,
    } && !items.is_empty();
    Ok(MemoryPage {
        items: items.into_iter().map(|r| minify(r.get())).collect(),
        has_next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_memory_page_shapes_are_read() {
        let a = parse_memory_page(
            br#"{"items":[{"id":"a"}],"pagination":{"page":1,"total_pages":2,"has_next":true}}"#,
            1,
            20,
        )
        .unwrap();
        assert_eq!((a.items.len(), a.has_next), (1, true));
        let b = parse_memory_page(
            br#"{"memories":[{"id":"a"},{"id":"b"}],"meta":{"pagination":{"page":2,"total_pages":2}}}"#,
            2,
            20,
        )
        .unwrap();
        assert_eq!((b.items.len(), b.has_next), (2, false));
        let c = parse_memory_page(br#"{"items":[{"id":"a"},{"id":"b"}]}"#, 1, 2).unwrap();
        assert!(c.has_next, "a full page without pagination asks for the next");
        assert!(parse_memory_page(br#"{"data":[]}"#, 1, 2).is_err());
    }

    #[test]
    fn entries_are_counted_in_every_shape() {
        assert_eq!(entry_count(r#"[{"a":1},{"b":2}]"#), 2);
        assert_eq!(entry_count(r#"{"items":[{"a":1}]}"#), 1);
        assert_eq!(entry_count(r#"{"backstory":"x"}"#), 1);
    }
}
