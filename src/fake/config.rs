//! What a test chooses: how the whole service behaves ([`FakeConfig`]) and
//! what each personality holds ([`PersonalitySpec`]).

use std::net::{Ipv4Addr, SocketAddr};

use super::faults::FaultPlan;
use super::generate;
use super::media::FakeMediaConfig;

/// How `before_ts=T` bounds a chat page. The real service's choice is
/// unknown, so a client must work with both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeTs {
    /// Messages with `ts < T`.
    Strict,
    /// Messages with `ts <= T`.
    Inclusive,
}

/// Order of the messages inside one returned page. The page's content is
/// always the same contiguous window of history; only its order changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOrder {
    NewestFirst,
    OldestFirst,
    /// A permutation decided by the seed and the request number, so a
    /// failing test replays identically.
    Shuffled,
}

/// The user the fake is logged in as, unless a config says otherwise.
pub const DEFAULT_USER_ID: &str = "5b0c1e7a-3f2d-4c8e-9a61-2d7f4e8b1c90";

/// The service as a whole.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Drives every generated id and text, random faults and shuffles.
    pub seed: u64,
    /// The word for a personality in paths (`/api/{jargon}/...`).
    pub jargon: String,
    pub before_ts: BeforeTs,
    pub order: PageOrder,
    /// Largest `limit` honoured; larger asks are silently capped to it.
    pub max_limit: usize,
    /// When set, a chat request whose `limit` is above it gets a 400
    /// (`{"error":"limit must be at most N"}`) instead of a page, as a
    /// service that refuses large pages would. Checked before `max_limit`
    /// caps anything. `None` (the default) refuses nothing.
    pub reject_limit_above: Option<usize>,
    /// `(cookie name, token)`: when set, every request must carry a `Cookie`
    /// header holding `name=token`, or it gets a 401.
    pub cookie: Option<(String, String)>,
    /// `/api/users/me` answers with these; profiles owned by `user_id`
    /// appear under `category=self` and may read knowledge and training.
    pub user_id: String,
    pub user_name: String,
    pub faults: FaultPlan,
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// When set, a media host starts beside the service (see
    /// `fake::media`): messages point at its images and voice replies and
    /// profiles carry an `avatar_url` there. Off by default, so generated
    /// messages keep their null URLs.
    pub media: Option<FakeMediaConfig>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            seed: 0x5eed,
            jargon: "shapes".to_owned(),
            before_ts: BeforeTs::Strict,
            order: PageOrder::NewestFirst,
            max_limit: 500,
            reject_limit_above: None,
            cookie: None,
            user_id: DEFAULT_USER_ID.to_owned(),
            user_name: "Fake User".to_owned(),
            faults: FaultPlan::default(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            media: None,
        }
    }
}

/// One personality and the history it starts with.
#[derive(Debug, Clone)]
pub struct PersonalitySpec {
    /// Human name used by the profile endpoint (`/username/{slug}`).
    pub slug: String,
    /// UUID-looking id used by every other endpoint.
    pub id: String,
    pub display_name: String,
    /// The profile's `user_id`. Empty means "the fake's own user"
    /// (`FakeConfig::user_id`), resolved when the service starts.
    pub owner_id: String,
    /// Length of the generated history.
    pub messages: usize,
    /// Message `i` has ts `start_ts_ms + i * step_ms` (milliseconds), except
    /// inside tie groups.
    pub start_ts_ms: u64,
    pub step_ms: u64,
    /// `(index of first message, size)`: those messages all take the first
    /// one's ts, as bulk imports and regenerations do.
    pub tie_groups: Vec<(usize, usize)>,
    /// Add unknown fields (nested objects, arrays, `2.50`, `1e-7`, big ints).
    pub extra_fields: bool,
    /// Texts with emoji, RTL, ZWJ sequences, escapes, `\u0000`, escaped
    /// surrogate pairs and combining marks.
    pub hostile_unicode: bool,
    /// Number of generated items served by the memory, knowledge (`story`)
    /// and training endpoints; 0 makes the endpoint answer 404.
    pub memories: usize,
    pub knowledge: usize,
    pub training: usize,
}

impl PersonalitySpec {
    /// A personality owned by the fake's user, with `messages` messages one
    /// minute apart starting 2023-11-14, a deterministic id derived from the
    /// slug, and a few memories, knowledge and training items.
    pub fn new(slug: impl Into<String>, messages: usize) -> Self {
        let slug = slug.into();
        let mut display_name: String = slug.clone();
        if let Some(first) = display_name.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        PersonalitySpec {
            id: generate::personality_id(&slug),
            display_name,
            slug,
            owner_id: String::new(),
            messages,
            start_ts_ms: 1_700_000_000_000,
            step_ms: 60_000,
            tie_groups: Vec::new(),
            extra_fields: false,
            hostile_unicode: false,
            memories: 3,
            knowledge: 2,
            training: 2,
        }
    }
}
