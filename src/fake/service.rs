//! [`FakeService`]: a running fake and the handle a test steers it with.
//! The edits that make history not append-only are in `drift`.

mod drift;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::{BeforeTs, FakeConfig, PageOrder, PersonalitySpec};
use super::conn::{AbortSwitch, AbortableListener};
use super::faults::FaultPlan;
use super::media::FakeMedia;
use super::server;
use super::state::{DocumentKind, Growth, MemoryShape, RequestRecord, ServiceState, SharedState, lock};

/// How long `shutdown` lets in-flight requests finish before it aborts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The fake service, listening on loopback until shut down or dropped.
///
/// Methods that name a personality by slug panic when it is unknown: that is
/// a bug in the test, not a condition to handle.
#[derive(Debug)]
pub struct FakeService {
    shared: SharedState,
    addr: SocketAddr,
    /// Tells the server to stop accepting and close connections gracefully.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The media host, when `FakeConfig::media` asked for one.
    media: Option<FakeMedia>,
}

impl FakeService {
    /// Binds `config.bind`, generates every personality's history, and
    /// starts serving. Fails with `InvalidInput` for an unusable config
    /// (duplicate slug or id, `max_limit` 0, a jargon with a `/`, more than
    /// `u32::MAX` messages).
    pub async fn start(config: FakeConfig, personalities: Vec<PersonalitySpec>) -> io::Result<FakeService> {
        let bind = config.bind;
        let media = match &config.media {
            Some(media) => Some(FakeMedia::start(media.clone()).await?),
            None => None,
        };
        let state = ServiceState::new(config, personalities, media.as_ref().map(FakeMedia::base_url))
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = SharedState::new(state.into());
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::app(shared.clone()).into_make_service_with_connect_info::<AbortSwitch>();
        let serve = axum::serve(AbortableListener::new(listener), app).with_graceful_shutdown(
            // Resolves on `send` and on drop of the sender alike.
            async move {
                let _ = stopped.await;
            },
        );
        let task = tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::warn!("fake service stopped with an error: {e}");
            }
        });
        Ok(FakeService {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
            media,
        })
    }

    /// The media host.
    ///
    /// # Panics
    /// If the fake was started without `FakeConfig::media`.
    pub fn media(&self) -> &FakeMedia {
        self.media
            .as_ref()
            .expect("the fake was started without a media host")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash; the API lives
    /// under `/api`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The id of the personality with this slug.
    pub fn personality_id(&self, slug: &str) -> String {
        lock(&self.shared).by_slug(slug).id.clone()
    }

    /// Serves these memories (oldest first) instead of the generated ones;
    /// an empty list makes the endpoint answer 404.
    pub fn set_memories(&self, slug: &str, oldest_first: Vec<serde_json::Value>) {
        lock(&self.shared).by_slug_mut(slug).memory_items = Some(oldest_first);
    }

    /// Wraps memories pages the way another deployment does.
    pub fn set_memory_shape(&self, slug: &str, shape: MemoryShape) {
        lock(&self.shared).by_slug_mut(slug).memory_shape = shape;
    }

    /// Serves `doc` (any JSON: an array, `{"items": [...]}`, an object) for
    /// knowledge, training or user personalization, or 404 for `None`.
    /// Knowledge and training stay owner-only.
    pub fn set_document(&self, slug: &str, kind: DocumentKind, doc: Option<serde_json::Value>) {
        lock(&self.shared).by_slug_mut(slug).documents.insert(kind, doc);
    }

    /// Appends `k` generated messages, each newer than every existing one.
    pub fn append_messages(&self, slug: &str, k: usize) {
        lock(&self.shared).by_slug_mut(slug).history.append_generated(k);
    }

    /// Appends one message given as raw JSON; it is served byte for byte as
    /// given, and its `ts` orders it.
    ///
    /// # Panics
    /// If the text has no numeric `ts`, or that ts is older than the newest
    /// message's.
    pub fn push_raw_message(&self, slug: &str, raw_json: &str) {
        lock(&self.shared).by_slug_mut(slug).history.push_raw(raw_json);
    }

    /// Inserts one message given as raw JSON in its place by `ts`, below
    /// newer ones if there are; served byte for byte as given.
    ///
    /// # Panics
    /// If the text has no numeric `ts`.
    pub fn insert_raw_message(&self, slug: &str, raw_json: &str) {
        lock(&self.shared).by_slug_mut(slug).history.insert_raw(raw_json);
    }

    /// Answers the next chat-history requests (of any personality, one
    /// each, in order) with these bodies instead: `Some(bytes)` is sent
    /// verbatim as a 200 `application/json` answer, whatever it holds
    /// (invalid JSON, invalid UTF-8, 50 MiB), `None` lets the normal answer
    /// through. Replaces an earlier queue; an empty one ends it. A fault
    /// drawn for a request takes precedence and leaves the queue alone.
    pub fn queue_chat_bodies(&self, bodies: impl IntoIterator<Item = Option<Vec<u8>>>) {
        lock(&self.shared).chat_bodies = bodies.into_iter().collect();
    }

    /// From now on, after every `every_n_chat_requests`-th chat request for
    /// this personality (whatever its outcome, faults included), append `k`
    /// messages: new messages arriving while a client walks backwards.
    /// `every_n_chat_requests == 0` or `k == 0` stops the growth.
    pub fn grow_while_walking(&self, slug: &str, every_n_chat_requests: usize, k: usize) {
        let mut state = lock(&self.shared);
        let p = state.by_slug_mut(slug);
        p.growth = (every_n_chat_requests > 0 && k > 0).then_some(Growth {
            every: every_n_chat_requests,
            k,
            seen: 0,
        });
    }

    /// The JSON text of every message now in the history, oldest first,
    /// exactly the bytes the server sends for each (regenerated replies as
    /// now served; deleted messages gone).
    pub fn ground_truth(&self, slug: &str) -> Vec<String> {
        let state = lock(&self.shared);
        let history = &state.by_slug(slug).history;
        (0..history.len()).map(|i| history.message(i)).collect()
    }

    pub fn message_count(&self, slug: &str) -> usize {
        lock(&self.shared).by_slug(slug).history.len()
    }

    /// Replaces the fault plan; the old script's unused faults are dropped.
    pub fn set_faults(&self, plan: FaultPlan) {
        lock(&self.shared).faults.replace_plan(plan);
    }

    pub fn set_before_ts(&self, semantics: BeforeTs) {
        lock(&self.shared).before_ts = semantics;
    }

    pub fn set_order(&self, order: PageOrder) {
        lock(&self.shared).order = order;
    }

    /// Changes the largest `limit` honoured.
    ///
    /// # Panics
    /// If `max_limit` is 0.
    pub fn set_max_limit(&self, max_limit: usize) {
        assert!(max_limit > 0, "max_limit must be at least 1");
        lock(&self.shared).max_limit = max_limit;
    }

    /// Makes chat requests whose `limit` is above `most` fail with a 400
    /// (see `FakeConfig::reject_limit_above`); `None` accepts any limit.
    pub fn set_reject_limit_above(&self, most: Option<usize>) {
        lock(&self.shared).reject_limit_above = most;
    }

    /// Replaces the required cookie at once, without telling the client:
    /// `Some` with another token is an expired session, `None` turns the
    /// check off.
    pub fn set_cookie(&self, cookie: Option<(String, String)>) {
        let mut state = lock(&self.shared);
        state.cookie = cookie;
        state.pending_token = None;
    }

    /// Rotates the session token the way the service does: the next
    /// response carries `Set-Cookie: {name}={new_token}; ...` (beside an
    /// unrelated analytics cookie), and from then on only the new token is
    /// accepted. Does nothing when no cookie is required.
    pub fn rotate_cookie(&self, new_token: &str) {
        lock(&self.shared).pending_token = Some(new_token.to_owned());
    }

    /// Sends `value` verbatim as one more `Set-Cookie` header of the next
    /// response (whatever that response is, faults included), without
    /// changing the cookie the fake requires: for answers a real service
    /// should not give, such as `{name}=deleted; Max-Age=0` or a cookie
    /// with `Domain=` of another site. Several calls before the next
    /// response send several headers, in order.
    pub fn set_cookie_header(&self, value: &str) {
        lock(&self.shared).pending_set_cookies.push(value.to_owned());
    }

    /// The current required cookie, as `(name, token)`.
    pub fn cookie(&self) -> Option<(String, String)> {
        lock(&self.shared).cookie.clone()
    }

    /// Every request received since the start or the last clear, in arrival
    /// order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared).log.records().to_vec()
    }

    /// Chat-history requests for this personality since the start or the
    /// last clear.
    pub fn chat_requests(&self, slug: &str) -> usize {
        let state = lock(&self.shared);
        state
            .log
            .records()
            .iter()
            .filter(|r| r.is_chat && r.personality.as_deref() == Some(slug))
            .count()
    }

    pub fn clear_requests(&self) {
        let mut state = lock(&self.shared);
        let next = state.requests_seen;
        state.log.clear(next);
    }

    /// Stops accepting, closes idle connections, lets requests in flight
    /// finish (for at most a few seconds), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }

    /// Heap held by this personality's history index.
    #[cfg(test)]
    pub(super) fn history_heap_bytes(&self, slug: &str) -> usize {
        lock(&self.shared).by_slug(slug).history.heap_bytes()
    }
}

impl Drop for FakeService {
    /// Drop cannot wait, so the server task is aborted; the stop signal
    /// still reaches the connections, which close once idle.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
