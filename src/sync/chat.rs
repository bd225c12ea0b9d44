//! The backward walk through chat history and its commit.
//!
//! The service hands out history newest first, 50 at a time, through
//! `before_ts`. Whether `before_ts` is `<` or `<=` is unknown, page order is
//! not promised, and many messages may share one `ts`. The walk asks for the
//! next page with `before_ts` just above the oldest `ts` seen (so a tie group
//! on the boundary comes back whole under either semantics) and drops ids it
//! already has; a page that brings nothing new either grows the `limit` (a
//! tie group larger than a page) or steps past its oldest `ts`. Every page is
//! spooled with its checkpoint before the next request, so a crash costs at
//! most the page in flight.

use std::collections::HashSet;
use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::api::{ApiClient, ApiError, PersonalityId};
use crate::message::{Message, MessageId, Ts};
use crate::store::{Boundary, ChatStore, ChatStoreError, Checkpoint, Head, SpoolError};

/// A tie group larger than this is treated as a hostile answer.
const MAX_TIE_IDS: usize = 100_000;

/// Where chat pages come from: the service, or a script in unit tests.
pub trait PageSource {
    fn page(
        &self,
        before: Option<Ts>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Message>, ApiError>> + Send;
}

/// The service's chat history of one personality.
pub struct ServicePages<'a> {
    pub client: &'a ApiClient,
    pub id: &'a PersonalityId,
}

impl PageSource for ServicePages<'_> {
    fn page(
        &self,
        before: Option<Ts>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Message>, ApiError>> + Send {
        self.client.chat_page(self.id, before, limit)
    }
}

/// Page sizes of a walk.
#[derive(Debug, Clone, Copy)]
pub struct WalkLimits {
    /// The `limit` normally asked for (known to be honoured).
    pub page_size: u32,
    /// The largest `limit` asked for to take a tie group whole.
    pub max_page_size: u32,
}

/// Progress of a walk, reported after every page.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkProgress {
    pub requests: u64,
    pub spooled: u64,
}

/// What a chat sync did.
#[derive(Debug, Clone, Default)]
pub struct ChatReport {
    pub new_messages: u64,
    pub total_messages: u64,
    /// Chat requests made by this run (not counting an earlier interrupted run).
    pub requests: u64,
    /// True when the run continued a walk an earlier run left unfinished.
    pub resumed: bool,
    /// Messages a tie group larger than the largest page may have hidden.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatSyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] ChatStoreError),
    #[error("stopped at a page boundary; the walk resumes from its checkpoint on the next run")]
    Cancelled,
}

impl From<SpoolError> for ChatSyncError {
    fn from(e: SpoolError) -> Self {
        ChatSyncError::Store(e.into())
    }
}

/// Brings the stored history up to date with the service: resumes or starts
/// a walk, then commits it. A resumed walk began in an earlier run, so
/// messages may have arrived above it since: one more (incremental) walk
/// from the top picks them up.
pub async fn sync_chat(
    store: &mut ChatStore,
    source: &impl PageSource,
    limits: WalkLimits,
    cancel: &CancellationToken,
    mut on_page: impl FnMut(WalkProgress),
) -> Result<ChatReport, ChatSyncError> {
    let mut report = ChatReport::default();
    loop {
        let resumed = walk_and_commit(store, source, limits, cancel, &mut on_page, &mut report).await?;
        if !resumed {
            break;
        }
        report.resumed = true;
    }
    report.total_messages = store.state().message_count;
    Ok(report)
}

/// One walk (resumed or new) and its commit, added to `report`. Returns
/// whether the walk was resumed.
async fn walk_and_commit(
    store: &mut ChatStore,
    source: &impl PageSource,
    limits: WalkLimits,
    cancel: &CancellationToken,
    on_page: &mut impl FnMut(WalkProgress),
    report: &mut ChatReport,
) -> Result<bool, ChatSyncError> {
    let mut spool = store.open_walk()?;
    let resumed = spool.checkpoint().is_some();
    if resumed {
        tracing::info!(
            spooled = spool.checkpoint().map_or(0, |c| c.spooled),
            done = spool.is_done(),
            "resuming an interrupted walk"
        );
    }
    if !spool.is_done() {
        let head = store.state().head.clone();
        let mut checkpoint = spool
            .checkpoint()
            .cloned()
            .unwrap_or(Checkpoint::start(limits.page_size));
        loop {
            if cancel.is_cancelled() {
                return Err(ChatSyncError::Cancelled);
            }
            let step = match source.page(checkpoint.cursor, checkpoint.limit).await {
                Ok(page) => {
                    report.requests += 1;
                    // A failed `advance` leaves cursor, limit and count as they were.
                    match advance(&mut checkpoint, head.as_ref(), page, limits) {
                        Ok(step) => step,
                        Err(e) => return Err(stopped(e, &checkpoint)),
                    }
                }
                Err(e) => return Err(stopped(e, &checkpoint)),
            };
            if let Some(w) = step.warning {
                tracing::warn!("{w}");
                report.warnings.push(w);
            }
            if step.done {
                spool.append_last_page(&checkpoint, &step.new)?;
            } else {
                spool.append_page(&checkpoint, &step.new)?;
            }
            on_page(WalkProgress {
                requests: checkpoint.requests,
                spooled: checkpoint.spooled,
            });
            if step.done {
                break;
            }
        }
    }
    report.new_messages += store.commit(spool)?.added;
    Ok(resumed)
}

/// Logs why the walk stopped at a page, which was not spooled: the store
/// holds only what earlier pages brought, and the checkpoint says where the
/// next run goes on.
fn stopped(error: ApiError, at: &Checkpoint) -> ChatSyncError {
    tracing::warn!(
        before_ts = at.cursor.map(|c| c.to_string()),
        limit = at.limit,
        spooled = at.spooled,
        %error,
        "chat walk stopped at a page; nothing of it was stored, and the next run resumes from the \
         checkpoint before it"
    );
    ChatSyncError::Api(error)
}

/// The result of one page.
#[derive(Debug)]
struct Step {
    /// Messages neither stored nor spooled before, to spool now.
    new: Vec<Message>,
    /// The walk has reached stored history or the start of history.
    done: bool,
    warning: Option<String>,
}

/// Decides what a page means and where the walk goes next. Updates the
/// checkpoint in place; pure apart from that, so it is tested on its own.
fn advance(
    cp: &mut Checkpoint,
    head: Option<&Head>,
    page: Vec<Message>,
    limits: WalkLimits,
) -> Result<Step, ApiError> {
    let asked = cp.limit;
    cp.requests += 1;
    let Some(min_ts) = page.iter().map(|m| m.ts).min_by(|a, b| a.total_cmp(b)) else {
        return Ok(Step {
            new: Vec::new(),
            done: true,
            warning: None,
        });
    };
    if let Some(cursor) = cp.cursor {
        if let Some(m) = page.iter().find(|m| m.ts > cursor) {
            return Err(ApiError::Contract(format!(
                "asked for messages before ts {cursor}, got message {} at ts {}",
                m.id.as_str(),
                m.ts
            )));
        }
        if page.iter().any(|m| m.ts == cursor) {
            cp.inclusive = Some(true);
        }
    }
    let single_ts = page.iter().all(|m| m.ts == min_ts);
    let full = page.len() >= asked as usize;
    let reached_head = head.is_some_and(|h| page.iter().any(|m| m.ts < h.ts));

    // Only the previous boundary's tie group can come back a second time:
    // every cursor is at or below the oldest `ts` seen so far.
    let previous = cp.boundary.take();
    let previous_ids: HashSet<&MessageId> = previous.iter().flat_map(|b| &b.ids).collect();
    let already_spooled =
        |m: &Message| previous.as_ref().is_some_and(|b| b.ts == m.ts) && previous_ids.contains(&m.id);
    let mut boundary = match &previous {
        Some(b) if b.ts == min_ts => b.clone(),
        _ => Boundary {
            ts: min_ts,
            ids: Vec::new(),
        },
    };
    let mut in_boundary: HashSet<MessageId> = boundary.ids.iter().cloned().collect();
    let mut in_page = HashSet::new();
    let mut new = Vec::new();
    for m in page {
        if !in_page.insert(m.id.clone()) {
            continue;
        }
        if m.ts == min_ts && in_boundary.insert(m.id.clone()) {
            boundary.ids.push(m.id.clone());
        }
        if !already_spooled(&m) && !head.is_some_and(|h| h.holds(&m)) {
            new.push(m);
        }
    }
    if boundary.ids.len() > MAX_TIE_IDS {
        return Err(ApiError::Contract(format!(
            "more than {MAX_TIE_IDS} messages claim the same ts {min_ts}"
        )));
    }
    cp.boundary = Some(boundary);
    cp.spooled += new.len() as u64;

    let mut warning = None;
    let done = reached_head;
    if !done {
        if !new.is_empty() {
            cp.cursor = Some(min_ts.next_up());
            cp.limit = if single_ts && full {
                grow(asked, limits)
            } else {
                limits.page_size
            };
        } else if single_ts && full && asked < limits.max_page_size {
            cp.limit = grow(asked, limits);
        } else {
            // Nothing new here: step past this ts. Under `<` semantics
            // `before_ts = ts` does it; under `<=` the value just below it.
            let group = cp.boundary.as_ref().map_or(0, |b| b.ids.len());
            let capped = single_ts && (full || asked > limits.page_size);
            if capped {
                warning = Some(format!(
                    "{group} messages share ts {min_ts} and the service gave at most {} of them at once; \
                     any others at that exact time could not be fetched",
                    page_len_hint(asked, full)
                ));
            }
            cp.cursor = Some(if cp.inclusive == Some(true) {
                min_ts.next_down()
            } else {
                min_ts
            });
            cp.limit = limits.page_size;
        }
    }
    Ok(Step { new, done, warning })
}

fn page_len_hint(asked: u32, full: bool) -> String {
    if full {
        asked.to_string()
    } else {
        format!("fewer than {asked}")
    }
}

fn grow(limit: u32, limits: WalkLimits) -> u32 {
    limit.saturating_mul(2).min(limits.max_page_size).max(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WalkLimits = WalkLimits {
        page_size: 3,
        max_page_size: 12,
    };

    fn msg(id: &str, ts: f64) -> Message {
        Message::from_stored_line(&format!(r#"{{"id":"{id}","ts":{ts}}}"#)).unwrap()
    }

    fn start() -> Checkpoint {
        Checkpoint::start(LIMITS.page_size)
    }

    fn ids(step: &Step) -> Vec<&str> {
        step.new.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn the_next_cursor_sits_just_above_the_oldest_ts_and_its_group_is_dropped_again() {
        let mut cp = start();
        let step = advance(
            &mut cp,
            None,
            vec![msg("c", 3.0), msg("b", 2.0), msg("a", 2.0)],
            LIMITS,
        )
        .unwrap();
        assert_eq!(ids(&step), ["c", "b", "a"]);
        assert_eq!(cp.cursor, Some(Ts::new(2.0).unwrap().next_up()));
        let step = advance(
            &mut cp,
            None,
            vec![msg("a", 2.0), msg("b", 2.0), msg("z", 1.0)],
            LIMITS,
        )
        .unwrap();
        assert_eq!(ids(&step), ["z"]);
        assert!(!step.done);
    }

    #[test]
    fn a_full_page_of_one_stale_ts_grows_the_limit_then_steps_past_with_a_warning() {
        let mut cp = start();
        let group = || vec![msg("a", 5.0), msg("b", 5.0), msg("c", 5.0)];
        advance(&mut cp, None, group(), LIMITS).unwrap();
        assert_eq!(cp.limit, 6, "single-ts full page asks for more at once");
        let mut cp2 = cp.clone();
        // A server that caps the limit answers the same three again.
        let step = advance(&mut cp2, None, group(), LIMITS).unwrap();
        assert!(step.new.is_empty());
        assert!(step.warning.is_some());
        assert_eq!(cp2.cursor, Ts::new(5.0), "steps past the group");
        assert_eq!(cp2.limit, LIMITS.page_size);
    }

    #[test]
    fn an_inclusive_server_is_recognised_and_stepped_below() {
        let mut cp = start();
        cp.cursor = Ts::new(5.0);
        cp.boundary = Some(Boundary {
            ts: Ts::new(5.0).unwrap(),
            ids: vec!["a".into()],
        });
        let step = advance(&mut cp, None, vec![msg("a", 5.0)], LIMITS).unwrap();
        assert_eq!(cp.inclusive, Some(true));
        assert!(step.new.is_empty());
        assert_eq!(cp.cursor, Some(Ts::new(5.0).unwrap().next_down()));
    }

    #[test]
    fn reaching_stored_history_ends_the_walk_keeping_new_messages_at_the_head_ts() {
        let head = Head {
            ts: Ts::new(4.0).unwrap(),
            ids: vec!["h".into()],
        };
        let mut cp = start();
        let page = vec![msg("n", 4.0), msg("h", 4.0), msg("old", 3.0)];
        let step = advance(&mut cp, Some(&head), page, LIMITS).unwrap();
        assert!(step.done);
        assert_eq!(ids(&step), ["n"]);
    }

    #[test]
    fn a_message_newer_than_before_ts_is_a_contract_breach() {
        let mut cp = start();
        cp.cursor = Ts::new(5.0);
        let err = advance(&mut cp, None, vec![msg("x", 6.0)], LIMITS).unwrap_err();
        assert!(matches!(err, ApiError::Contract(_)));
        assert_eq!(cp.cursor, Ts::new(5.0), "the checkpoint is untouched");
    }

    #[test]
    fn an_empty_page_ends_the_walk() {
        let mut cp = start();
        assert!(advance(&mut cp, None, Vec::new(), LIMITS).unwrap().done);
    }
}
