//! The fake's shared state: settings, personalities, the fault injector and
//! the request log. One `std::sync::Mutex` guards it all; handlers take it
//! for short, synchronous steps and never across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::config::{BeforeTs, FakeConfig, PageOrder, PersonalitySpec};
use super::faults::FaultInjector;
use super::generate::MessageGenerator;
use super::history::History;
use super::routes::PersonalityKey;

/// The state every handler and the `FakeService` handle share.
pub(super) type SharedState = Arc<Mutex<ServiceState>>;

/// Locks the state. A test that panicked while holding the lock (say, by
/// pushing an out-of-order message) must not wedge every later request, so
/// poisoning is ignored: each mutation leaves the state consistent.
pub(super) fn lock(shared: &SharedState) -> MutexGuard<'_, ServiceState> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// When it arrived.
    pub at: Instant,
    pub path: String,
    /// The raw query string, without `?`; empty when there is none.
    pub query: String,
    /// The status sent; 0 while the answer is still being made (a `Slow`
    /// fault in progress).
    pub status: u16,
    /// The slug of the personality the path names, by slug or by id, if it
    /// names a known one.
    pub personality: Option<String>,
    /// A chat-history request (whatever the personality).
    pub is_chat: bool,
    /// The injected fault's name (`Fault::name`), if one applied.
    pub fault: Option<String>,
    /// The `Cookie` header as received (several joined with `; `), if any:
    /// lets a test check what the client sends.
    pub cookie: Option<String>,
}

/// A personality as served.
#[derive(Debug)]
pub(super) struct Personality {
    pub slug: String,
    pub id: String,
    pub display_name: String,
    pub owner_id: String,
    /// The profile's `avatar_url`, when the media host runs.
    pub avatar_url: Option<String>,
    pub history: History,
    pub memories: usize,
    pub knowledge: usize,
    pub training: usize,
    /// Set by `grow_while_walking`.
    pub growth: Option<Growth>,
    /// Set by `set_memories`: the memories, oldest first, instead of the
    /// generated ones.
    pub memory_items: Option<Vec<serde_json::Value>>,
    /// Set by `set_memory_shape`.
    pub memory_shape: MemoryShape,
    /// Set by `set_document`: an answer (or 404 for `None`) instead of the
    /// generated knowledge, training or user personalization.
    pub documents: HashMap<DocumentKind, Option<serde_json::Value>>,
}

/// How a memories page is wrapped; deployments differ (API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryShape {
    /// `{"items": [...], "pagination": {"page", "total_pages", "has_next"}}`
    #[default]
    Items,
    /// `{"memories": [...], "meta": {"pagination": {"page", "total_pages"}}}`, no `has_next`.
    MemoriesMeta,
}

/// The small documents a test can replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    Knowledge,
    Training,
    UserPersonalization,
}

/// "After every `every`-th chat request, append `k` messages."
#[derive(Debug, Clone, Copy)]
pub(super) struct Growth {
    pub every: usize,
    pub k: usize,
    /// Chat requests counted since the growth was set.
    pub seen: usize,
}

/// Everything the fake knows. Settings a test may change at run time live
/// here rather than in a frozen `FakeConfig`.
#[derive(Debug)]
pub(super) struct ServiceState {
    pub seed: u64,
    pub jargon: String,
    pub before_ts: BeforeTs,
    pub order: PageOrder,
    pub max_limit: usize,
    /// See `FakeConfig::reject_limit_above`.
    pub reject_limit_above: Option<usize>,
    /// `(name, token)` every request must present, if set.
    pub cookie: Option<(String, String)>,
    /// A token that replaces the cookie's once it has been announced in a
    /// `Set-Cookie` on the next response.
    pub pending_token: Option<String>,
    /// `Set-Cookie` values sent verbatim on the next response, whatever it
    /// is (set by `set_cookie_header`).
    pub pending_set_cookies: Vec<String>,
    pub user_id: String,
    pub user_name: String,
    pub faults: FaultInjector,
    personalities: Vec<Personality>,
    by_slug: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
    /// Requests received since the start, cleared ones included; a request's
    /// number is its position in that sequence.
    pub requests_seen: u64,
    pub log: RequestLog,
    /// Set by `queue_chat_bodies`: what the next chat-history requests get
    /// instead of their answer (`None`: the normal answer).
    pub chat_bodies: VecDeque<Option<Vec<u8>>>,
    /// The media host's base URL, when it runs.
    media_base: Option<String>,
    /// `FakeMediaConfig::distinct_files`: every link its own file.
    media_distinct: bool,
}

impl ServiceState {
    /// Builds the state, or says which part of the input is unusable.
    pub(super) fn new(
        config: FakeConfig,
        specs: Vec<PersonalitySpec>,
        media_base: Option<String>,
    ) -> Result<Self, String> {
        if config.max_limit == 0 {
            return Err("max_limit must be at least 1".to_owned());
        }
        if config.jargon.is_empty() || config.jargon.contains('/') {
            return Err(format!("jargon {:?} is not one path segment", config.jargon));
        }
        let media_distinct = config.media.as_ref().is_some_and(|m| m.distinct_files);
        let mut state = ServiceState {
            seed: config.seed,
            jargon: config.jargon,
            before_ts: config.before_ts,
            order: config.order,
            max_limit: config.max_limit,
            reject_limit_above: config.reject_limit_above,
            cookie: config.cookie,
            pending_token: None,
            pending_set_cookies: Vec::new(),
            user_id: config.user_id,
            user_name: config.user_name,
            faults: FaultInjector::new(config.seed, config.faults),
            personalities: Vec::with_capacity(specs.len()),
            by_slug: HashMap::new(),
            by_id: HashMap::new(),
            requests_seen: 0,
            log: RequestLog::default(),
            chat_bodies: VecDeque::new(),
            media_base,
            media_distinct,
        };
        for spec in specs {
            state.add_personality(spec)?;
        }
        Ok(state)
    }

    fn add_personality(&mut self, spec: PersonalitySpec) -> Result<(), String> {
        if u32::try_from(spec.messages).is_err() {
            return Err(format!(
                "{:?} asks for {} messages; the fake holds at most u32::MAX",
                spec.slug, spec.messages
            ));
        }
        let index = self.personalities.len();
        if self.by_slug.insert(spec.slug.clone(), index).is_some() {
            return Err(format!("two personalities have the slug {:?}", spec.slug));
        }
        if self.by_id.insert(spec.id.clone(), index).is_some() {
            return Err(format!("two personalities have the id {:?}", spec.id));
        }
        let mut generator =
            MessageGenerator::new(self.seed, &spec.slug, spec.extra_fields, spec.hostile_unicode);
        if let Some(base) = &self.media_base {
            generator = generator.with_media(base, self.media_distinct);
        }
        let avatar_url = self
            .media_base
            .as_deref()
            .map(|base| super::media::media_url(base, &format!("/avatar/{}.png", spec.slug)));
        let history = History::generate(
            generator,
            spec.messages,
            spec.start_ts_ms,
            spec.step_ms,
            &spec.tie_groups,
        );
        let owner_id = if spec.owner_id.is_empty() {
            self.user_id.clone()
        } else {
            spec.owner_id
        };
        self.personalities.push(Personality {
            slug: spec.slug,
            id: spec.id,
            display_name: spec.display_name,
            owner_id,
            avatar_url,
            history,
            memories: spec.memories,
            knowledge: spec.knowledge,
            training: spec.training,
            growth: None,
            memory_items: None,
            memory_shape: MemoryShape::default(),
            documents: HashMap::new(),
        });
        Ok(())
    }

    pub(super) fn personalities(&self) -> &[Personality] {
        &self.personalities
    }

    /// The personality a path names, by slug or id.
    pub(super) fn find(&self, key: PersonalityKey<'_>) -> Option<usize> {
        match key {
            PersonalityKey::Slug(slug) => self.by_slug.get(slug).copied(),
            PersonalityKey::Id(id) => self.by_id.get(id).copied(),
        }
    }

    pub(super) fn personality(&self, index: usize) -> &Personality {
        &self.personalities[index]
    }

    pub(super) fn personality_mut(&mut self, index: usize) -> &mut Personality {
        &mut self.personalities[index]
    }

    /// The personality with this slug, for the test-facing API.
    ///
    /// # Panics
    /// If there is none: a test naming an unknown slug is a bug in the test.
    pub(super) fn by_slug_mut(&mut self, slug: &str) -> &mut Personality {
        match self.by_slug.get(slug) {
            Some(&index) => &mut self.personalities[index],
            None => panic!("the fake service has no personality with slug {slug:?}"),
        }
    }

    pub(super) fn by_slug(&self, slug: &str) -> &Personality {
        match self.by_slug.get(slug) {
            Some(&index) => &self.personalities[index],
            None => panic!("the fake service has no personality with slug {slug:?}"),
        }
    }

    /// Whether the `Cookie` header values carry the required cookie.
    pub(super) fn cookie_accepted<'h>(&self, headers: impl Iterator<Item = &'h str>) -> bool {
        let Some((name, token)) = &self.cookie else {
            return true;
        };
        headers
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(n, v)| n == name && v == token)
    }
}

/// Every request since the last clear, in arrival order.
#[derive(Debug, Default)]
pub(super) struct RequestLog {
    /// The number of `records[0]`.
    first: u64,
    records: Vec<RequestRecord>,
}

impl RequestLog {
    /// Appends the record of request number `number`, which must be the
    /// next one (numbers are handed out under the same lock).
    pub(super) fn push(&mut self, number: u64, record: RequestRecord) {
        debug_assert_eq!(number, self.first + self.records.len() as u64);
        self.records.push(record);
    }

    /// Fills in the status of request `number`, unless it was cleared since.
    pub(super) fn set_status(&mut self, number: u64, status: u16) {
        let Some(offset) = number.checked_sub(self.first) else {
            return;
        };
        if let Some(record) = self.records.get_mut(offset as usize) {
            record.status = status;
        }
    }

    /// Forgets every record; the next request is number `next`.
    pub(super) fn clear(&mut self, next: u64) {
        self.first = next;
        self.records.clear();
    }

    pub(super) fn records(&self) -> &[RequestRecord] {
        &self.records
    }
}
