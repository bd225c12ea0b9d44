//! The backward walk through chat history.
//!
//! The service hands out history newest first, a page at a time, through
//! `before_ts`. Whether `before_ts` is `<` or `<=` is unknown, page order is
//! not promised, and many messages may share one `ts`. The walk asks for the
//! next page with `before_ts` just above the oldest `ts` seen (so a tie group
//! on the boundary comes back whole under either semantics) and drops ids it
//! already has; a page that brings nothing new either grows the `limit` (a
//! tie group larger than a page) or steps past its oldest `ts`. It asks for
//! one more than the page size, so that each page still brings a page size
//! of new messages besides the boundary one (unless the service refuses
//! that limit; then it asks for the page size).
//!
//! An empty answer is not believed at once: a replica under load answers
//! `[]` in the middle of history too. The walk asks again after a pause; only
//! a second empty answer ends it at the beginning of history.
//!
//! Every page is spooled with its checkpoint before the next request, so a
//! crash costs at most the page in flight. Every message received is
//! spooled; the commit compares them with the store.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::chat::{ChatReport, ChatSyncError};
use crate::api::{ApiClient, ApiError, PersonalityId};
use crate::message::{Message, MessageId, Ts};
use crate::store::{Boundary, Checkpoint, Head, Spool, WalkEnd};

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

/// Page sizes of a walk, and its pause before believing an empty answer.
#[derive(Debug, Clone, Copy)]
pub struct WalkLimits {
    /// The page size known to be honoured (`chat_page_size`).
    pub page_size: u32,
    /// The largest `limit` asked for to take a tie group whole.
    pub max_page_size: u32,
    /// Ask for `page_size + 1`: the page after a boundary then still brings
    /// `page_size` new messages. Off once the service refused it.
    pub larger_limit: bool,
    /// How long to wait before asking again after an empty answer.
    pub confirm_pause: Duration,
    /// Bytes a walk's spool may reach before the walk stops
    /// (`[storage] max_walk_spool`).
    pub max_spool: u64,
}

impl WalkLimits {
    /// The limits `[service]` sets.
    pub fn from_config(config: &crate::config::Config) -> WalkLimits {
        WalkLimits {
            page_size: config.service.chat_page_size,
            max_page_size: config.service.max_page_size,
            larger_limit: true,
            confirm_pause: config.service.initial_backoff,
            max_spool: config.storage.max_walk_spool,
        }
    }

    /// The `limit` of an ordinary request.
    pub fn ordinary(&self) -> u32 {
        if self.larger_limit {
            self.page_size.saturating_add(1)
        } else {
            self.page_size
        }
    }
}

/// Progress of a walk, reported after every page.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkProgress {
    pub requests: u64,
    pub spooled: u64,
}

/// Where a walk goes and when it stops.
#[derive(Debug, Clone)]
pub enum Target {
    /// From the newest message until a page reaches stored history (a
    /// message older than `head`), having received at least
    /// `refresh_messages` and reached below `refresh_below`; to the
    /// beginning when nothing is stored.
    Top {
        head: Option<Head>,
        refresh_messages: u64,
        refresh_below: Option<Ts>,
    },
    /// Below the oldest stored message: ends at the first empty answer if
    /// nothing was found (asked twice when `confirm` says the beginning is
    /// not confirmed yet), else walks to the beginning.
    Tail {
        oldest: Ts,
        /// Ids stored at `oldest`.
        known: Vec<MessageId>,
        confirm: bool,
    },
    /// The whole history, to the beginning.
    Audit,
}

/// What the walks of one run share: where pages come from, the limits (a
/// refused larger limit stays refused), the stop signal, progress and the
/// report the walks add their requests, warnings and glitches to.
pub(super) struct Walker<'a, P, F> {
    pub source: &'a P,
    pub limits: WalkLimits,
    pub cancel: &'a CancellationToken,
    pub on_page: F,
    pub report: &'a mut ChatReport,
}

impl<P: PageSource, F: FnMut(WalkProgress)> Walker<'_, P, F> {
    /// Runs a walk from `checkpoint` until its end, spooling every page.
    pub(super) async fn walk(
        &mut self,
        spool: &mut Spool,
        mut checkpoint: Checkpoint,
        target: &Target,
    ) -> Result<(), ChatSyncError> {
        loop {
            if self.cancel.is_cancelled() {
                return Err(ChatSyncError::Cancelled);
            }
            // Checked before asking: a run that resumes a walk at its bound
            // sends nothing, and the spool never outgrows it by more than
            // one page.
            if spool.bytes() >= self.limits.max_spool {
                return Err(ChatSyncError::SpoolLimit {
                    spooled: spool.bytes(),
                    messages: checkpoint.spooled,
                    limit: self.limits.max_spool,
                });
            }
            let asked = checkpoint.limit;
            let step = match self.source.page(checkpoint.cursor, asked).await {
                Ok(page) => {
                    self.report.requests += 1;
                    // A failed `advance` leaves cursor, limit and count as they were.
                    match advance(&mut checkpoint, target, page, &self.limits) {
                        Ok(step) => step,
                        Err(e) => return Err(stopped(e, &checkpoint)),
                    }
                }
                Err(ApiError::Status { status: 400 | 422 }) if asked > self.limits.page_size => {
                    self.report.requests += 1;
                    checkpoint.requests += 1;
                    if self.limits.larger_limit && asked == self.limits.ordinary() {
                        tracing::info!(
                            limit = asked,
                            "the service refused a limit one larger than the page size; asking for the page \
                             size from now on"
                        );
                        self.limits.larger_limit = false;
                        self.report.larger_limit_refused = true;
                        checkpoint.limit = self.limits.ordinary();
                        continue;
                    }
                    refused_growth(&mut checkpoint, asked, &self.limits)
                }
                Err(e) => return Err(stopped(e, &checkpoint)),
            };
            if step.glitch {
                self.report.glitches += 1;
                tracing::warn!(
                    before_ts = checkpoint.cursor.map(|c| c.to_string()),
                    "the service answered [] here, then messages when asked again: an empty answer that \
                     was not the beginning of history"
                );
            }
            if step.confirm {
                tracing::debug!(
                    before_ts = checkpoint.cursor.map(|c| c.to_string()),
                    "an empty answer; asking again before believing it"
                );
                tokio::select! {
                    () = tokio::time::sleep(self.limits.confirm_pause) => {}
                    () = self.cancel.cancelled() => return Err(ChatSyncError::Cancelled),
                }
                continue;
            }
            if let Some(w) = step.warning {
                tracing::warn!("{w}");
                self.report.warnings.push(w);
            }
            if step.done {
                spool.append_last_page(&checkpoint, &step.new)?;
            } else {
                spool.append_page(&checkpoint, &step.new)?;
            }
            (self.on_page)(WalkProgress {
                requests: checkpoint.requests,
                spooled: checkpoint.spooled,
            });
            if step.done {
                return Ok(());
            }
        }
    }
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
#[derive(Debug, Default)]
pub(super) struct Step {
    /// Messages not spooled before in this walk, to spool now.
    pub new: Vec<Message>,
    /// The walk has ended (`Checkpoint::ended` says why).
    pub done: bool,
    /// An empty answer to ask for again, after a pause, before believing it.
    pub confirm: bool,
    /// Messages came where an empty answer came before.
    pub glitch: bool,
    pub warning: Option<String>,
}

/// Decides what a page means and where the walk goes next. Updates the
/// checkpoint in place; pure apart from that, so it is tested on its own.
pub(super) fn advance(
    cp: &mut Checkpoint,
    target: &Target,
    page: Vec<Message>,
    limits: &WalkLimits,
) -> Result<Step, ApiError> {
    let asked = cp.limit;
    cp.requests += 1;
    let Some(min_ts) = page.iter().map(|m| m.ts).min_by(|a, b| a.total_cmp(b)) else {
        return Ok(empty_page(cp, target));
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
    let glitch = std::mem::take(&mut cp.empty_once);
    let max_ts = page
        .iter()
        .map(|m| m.ts)
        .max_by(|a, b| a.total_cmp(b))
        .unwrap_or(min_ts);
    cp.low = Some(cp.low.map_or(min_ts, |l| if min_ts < l { min_ts } else { l }));
    cp.high = Some(cp.high.map_or(max_ts, |h| if max_ts > h { max_ts } else { h }));
    let single_ts = page.iter().all(|m| m.ts == min_ts);
    // A service that has answered this limit in full before and answers it
    // short now has given everything below the cursor.
    let rest_of_history = page.len() < asked as usize && cp.longest_page >= asked;
    // The page size is known to be honoured: fewer is all there is.
    cp.bottom |= page.len() < asked.min(limits.page_size) as usize;
    cp.longest_page = cp.longest_page.max(u32::try_from(page.len()).unwrap_or(u32::MAX));
    // An ordinary page is full at the page size: one more is a bonus the
    // service may not give. A grown limit is full only when met.
    let full = if asked <= limits.ordinary() {
        page.len() >= asked.min(limits.page_size) as usize
    } else {
        page.len() >= asked as usize
    };

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
    let reaches_head = match target {
        Target::Top { head, .. } => head.as_ref().is_some_and(|h| page.iter().any(|m| m.ts < h.ts)),
        Target::Tail { .. } | Target::Audit => false,
    };
    let mut in_page = HashSet::new();
    let mut new = Vec::new();
    for m in page {
        if !in_page.insert(m.id.clone()) {
            continue;
        }
        if m.ts == min_ts && in_boundary.insert(m.id.clone()) {
            boundary.ids.push(m.id.clone());
        }
        if !already_spooled(&m) {
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

    let done = match target {
        Target::Top {
            refresh_messages,
            refresh_below,
            ..
        } => {
            reaches_head
                && cp.spooled >= *refresh_messages
                && refresh_below.is_none_or(|below| min_ts < below)
        }
        Target::Tail { oldest, known, .. } => {
            cp.found |= new
                .iter()
                .any(|m| m.ts < *oldest || (m.ts == *oldest && !known.contains(&m.id)));
            false
        }
        Target::Audit => false,
    };
    let mut step = Step {
        glitch,
        done,
        ..Step::default()
    };
    if done {
        cp.ended = Some(WalkEnd::Reached);
    } else if !new.is_empty() && rest_of_history {
        // The next answer is the (empty) beginning: no need to see the
        // boundary message again.
        step_past(cp, min_ts, limits);
    } else if !new.is_empty() {
        cp.cursor = Some(min_ts.next_up());
        cp.limit = if single_ts && full {
            grow(asked, limits)
        } else {
            limits.ordinary()
        };
    } else if single_ts && full && asked < limits.max_page_size {
        cp.limit = grow(asked, limits);
    } else {
        // Nothing new here: step past this ts, warning if a tie group may
        // have been larger than what the service gives at once.
        let capped = single_ts && (full || asked > limits.ordinary());
        if capped {
            step.warning = Some(capped_warning(cp, min_ts, page_len_hint(asked, full)));
        }
        step_past(cp, min_ts, limits);
    }
    step.new = new;
    Ok(step)
}

/// An empty answer: asked for again once before it ends the walk, except a
/// probe below a confirmed beginning that found nothing, which one empty
/// answer ends.
fn empty_page(cp: &mut Checkpoint, target: &Target) -> Step {
    let probe_only = matches!(target, Target::Tail { confirm: false, .. }) && !cp.found;
    if probe_only {
        cp.ended = Some(WalkEnd::NothingFound);
    } else if !cp.empty_once {
        cp.empty_once = true;
        return Step {
            confirm: true,
            ..Step::default()
        };
    } else {
        cp.empty_once = false;
        cp.ended = Some(WalkEnd::Beginning);
    }
    Step {
        done: true,
        ..Step::default()
    }
}

/// A grown `limit` the service refused: the tie group at the boundary is
/// taken as far as it came, and the walk steps past it.
fn refused_growth(cp: &mut Checkpoint, asked: u32, limits: &WalkLimits) -> Step {
    let Some(ts) = cp.boundary.as_ref().map(|b| b.ts) else {
        cp.limit = limits.ordinary();
        return Step::default();
    };
    let warning = capped_warning(cp, ts, format!("fewer than {asked} (it refused that limit)"));
    step_past(cp, ts, limits);
    Step {
        warning: Some(warning),
        ..Step::default()
    }
}

fn capped_warning(cp: &Checkpoint, ts: Ts, gave: String) -> String {
    let group = cp.boundary.as_ref().map_or(0, |b| b.ids.len());
    format!(
        "{group} messages share ts {ts} and the service gave at most {gave} of them at once; any \
         others at that exact time could not be fetched"
    )
}

/// Moves the cursor past `ts`: under `<` semantics `before_ts = ts` does it;
/// under `<=` the value just below it.
fn step_past(cp: &mut Checkpoint, ts: Ts, limits: &WalkLimits) {
    cp.cursor = Some(if cp.inclusive == Some(true) {
        ts.next_down()
    } else {
        ts
    });
    cp.limit = limits.ordinary();
}

fn page_len_hint(asked: u32, full: bool) -> String {
    if full {
        asked.to_string()
    } else {
        format!("fewer than {asked}")
    }
}

fn grow(limit: u32, limits: &WalkLimits) -> u32 {
    limit.saturating_mul(2).min(limits.max_page_size).max(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WalkKind;

    const LIMITS: WalkLimits = WalkLimits {
        page_size: 3,
        max_page_size: 12,
        larger_limit: false,
        confirm_pause: Duration::ZERO,
        max_spool: u64::MAX,
    };

    const TOP: Target = Target::Top {
        head: None,
        refresh_messages: 0,
        refresh_below: None,
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

    fn ts(t: f64) -> Ts {
        Ts::new(t).unwrap()
    }

    #[test]
    fn the_next_cursor_sits_just_above_the_oldest_ts_and_its_group_is_dropped_again() {
        let mut cp = start();
        let step = advance(
            &mut cp,
            &TOP,
            vec![msg("c", 3.0), msg("b", 2.0), msg("a", 2.0)],
            &LIMITS,
        )
        .unwrap();
        assert_eq!(ids(&step), ["c", "b", "a"]);
        assert_eq!(cp.cursor, Some(ts(2.0).next_up()));
        let step = advance(
            &mut cp,
            &TOP,
            vec![msg("a", 2.0), msg("b", 2.0), msg("z", 1.0)],
            &LIMITS,
        )
        .unwrap();
        assert_eq!(ids(&step), ["z"]);
        assert!(!step.done);
        assert_eq!((cp.low, cp.high), (Some(ts(1.0)), Some(ts(3.0))));
    }

    #[test]
    fn a_full_page_of_one_stale_ts_grows_the_limit_then_steps_past_with_a_warning() {
        let mut cp = start();
        let group = || vec![msg("a", 5.0), msg("b", 5.0), msg("c", 5.0)];
        advance(&mut cp, &TOP, group(), &LIMITS).unwrap();
        assert_eq!(cp.limit, 6, "single-ts full page asks for more at once");
        let mut cp2 = cp.clone();
        // A server that caps the limit answers the same three again.
        let step = advance(&mut cp2, &TOP, group(), &LIMITS).unwrap();
        assert!(step.new.is_empty());
        assert!(step.warning.is_some());
        assert_eq!(cp2.cursor, Some(ts(5.0)), "steps past the group");
        assert_eq!(cp2.limit, LIMITS.page_size);
    }

    #[test]
    fn an_inclusive_server_is_recognised_and_stepped_below() {
        let mut cp = start();
        cp.cursor = Some(ts(5.0));
        cp.boundary = Some(Boundary {
            ts: ts(5.0),
            ids: vec!["a".into()],
        });
        let step = advance(&mut cp, &TOP, vec![msg("a", 5.0)], &LIMITS).unwrap();
        assert_eq!(cp.inclusive, Some(true));
        assert!(step.new.is_empty());
        assert_eq!(cp.cursor, Some(ts(5.0).next_down()));
    }

    #[test]
    fn reaching_stored_history_ends_the_walk_keeping_every_message_for_the_commit() {
        let head = Head {
            ts: ts(4.0),
            ids: vec!["h".into()],
        };
        let target = Target::Top {
            head: Some(head),
            refresh_messages: 0,
            refresh_below: None,
        };
        let mut cp = start();
        let page = vec![msg("n", 4.0), msg("h", 4.0), msg("old", 3.0)];
        let step = advance(&mut cp, &target, page, &LIMITS).unwrap();
        assert!(step.done);
        assert_eq!(cp.ended, Some(WalkEnd::Reached));
        assert_eq!(ids(&step), ["n", "h", "old"], "the commit compares them all");
    }

    #[test]
    fn a_wider_refresh_walks_on_past_stored_history() {
        let head = Head {
            ts: ts(9.0),
            ids: vec!["h".into()],
        };
        let by_count = Target::Top {
            head: Some(head.clone()),
            refresh_messages: 5,
            refresh_below: None,
        };
        let by_span = Target::Top {
            head: Some(head),
            refresh_messages: 0,
            refresh_below: Some(ts(6.5)),
        };
        for target in [by_count, by_span] {
            let mut cp = start();
            let first = vec![msg("h", 9.0), msg("g", 8.0), msg("f", 7.0)];
            assert!(
                !advance(&mut cp, &target, first, &LIMITS).unwrap().done,
                "{target:?}"
            );
            let second = vec![msg("f", 7.0), msg("e", 6.0), msg("d", 5.0)];
            assert!(
                advance(&mut cp, &target, second, &LIMITS).unwrap().done,
                "{target:?}"
            );
        }
    }

    #[test]
    fn a_message_newer_than_before_ts_is_a_contract_breach() {
        let mut cp = start();
        cp.cursor = Some(ts(5.0));
        let err = advance(&mut cp, &TOP, vec![msg("x", 6.0)], &LIMITS).unwrap_err();
        assert!(matches!(err, ApiError::Contract(_)));
        assert_eq!(cp.cursor, Some(ts(5.0)), "the checkpoint is untouched");
    }

    #[test]
    fn an_empty_page_ends_the_walk_only_when_asked_again() {
        let mut cp = start();
        let step = advance(&mut cp, &TOP, Vec::new(), &LIMITS).unwrap();
        assert!(step.confirm && !step.done);
        let step = advance(&mut cp, &TOP, Vec::new(), &LIMITS).unwrap();
        assert!(step.done && !step.confirm);
        assert_eq!(cp.ended, Some(WalkEnd::Beginning));
        // A lie: the second answer brings messages, and the walk goes on.
        let mut cp = start();
        advance(&mut cp, &TOP, Vec::new(), &LIMITS).unwrap();
        let step = advance(&mut cp, &TOP, vec![msg("a", 1.0)], &LIMITS).unwrap();
        assert!(step.glitch && !step.done);
        assert_eq!(ids(&step), ["a"]);
        assert!(!cp.empty_once);
    }

    #[test]
    fn a_probe_below_a_confirmed_beginning_takes_one_empty_answer() {
        let oldest = ts(10.0);
        let probe = |confirm| Target::Tail {
            oldest,
            known: vec!["k".into()],
            confirm,
        };
        let mut cp = Checkpoint::new(WalkKind::Tail, Some(oldest), 3);
        let step = advance(&mut cp, &probe(false), Vec::new(), &LIMITS).unwrap();
        assert!(step.done);
        assert_eq!(cp.ended, Some(WalkEnd::NothingFound));
        let mut cp = Checkpoint::new(WalkKind::Tail, Some(oldest), 3);
        assert!(
            advance(&mut cp, &probe(true), Vec::new(), &LIMITS)
                .unwrap()
                .confirm
        );
        // Found something: walk to the beginning, confirmed.
        let mut cp = Checkpoint::new(WalkKind::Tail, Some(oldest), 3);
        let step = advance(&mut cp, &probe(false), vec![msg("o", 9.0)], &LIMITS).unwrap();
        assert!(cp.found && !step.done);
        assert!(
            advance(&mut cp, &probe(false), Vec::new(), &LIMITS)
                .unwrap()
                .confirm
        );
        assert!(advance(&mut cp, &probe(false), Vec::new(), &LIMITS).unwrap().done);
        assert_eq!(cp.ended, Some(WalkEnd::Beginning));
        // Known messages at the oldest ts are not a find.
        let mut cp = Checkpoint::new(WalkKind::Tail, Some(oldest), 3);
        advance(&mut cp, &probe(false), vec![msg("k", 10.0)], &LIMITS).unwrap();
        assert!(!cp.found);
    }

    #[test]
    fn a_short_answer_to_a_limit_answered_in_full_before_steps_past_the_last_message() {
        let mut cp = start();
        let page = vec![msg("f", 6.0), msg("e", 5.0), msg("d", 4.0)];
        advance(&mut cp, &TOP, page, &LIMITS).unwrap();
        assert_eq!(cp.cursor, Some(ts(4.0).next_up()));
        let step = advance(&mut cp, &TOP, vec![msg("d", 4.0), msg("c", 3.0)], &LIMITS).unwrap();
        assert_eq!(ids(&step), ["c"]);
        assert_eq!(cp.cursor, Some(ts(3.0)), "below the last message, not above it");
        // Never told the service gives this many: above it, as usual.
        let mut cp = start();
        advance(&mut cp, &TOP, vec![msg("b", 2.0), msg("a", 1.0)], &LIMITS).unwrap();
        assert_eq!(cp.cursor, Some(ts(1.0).next_up()));
    }

    #[test]
    fn one_more_than_the_page_size_is_asked_and_a_page_of_the_page_size_counts_as_full() {
        let limits = WalkLimits {
            larger_limit: true,
            ..LIMITS
        };
        assert_eq!(limits.ordinary(), 4);
        let mut cp = Checkpoint::start(limits.ordinary());
        // A service that caps at the page size: three of one ts are full.
        let group = vec![msg("a", 5.0), msg("b", 5.0), msg("c", 5.0)];
        advance(&mut cp, &TOP, group, &limits).unwrap();
        assert_eq!(cp.limit, 8, "a full single-ts page grows the limit");
        let mut cp = Checkpoint::start(limits.ordinary());
        let page = vec![msg("d", 4.0), msg("c", 3.0), msg("b", 2.0), msg("a", 1.0)];
        let step = advance(&mut cp, &TOP, page, &limits).unwrap();
        assert_eq!(step.new.len(), 4);
        assert_eq!(cp.limit, 4);
    }
}
