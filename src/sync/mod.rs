//! Joins the client and the store: one personality's sync.

pub mod chat;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::api::{ApiClient, ApiError};
use crate::store::{ChatStoreError, Store, StoreError};
use chat::{ChatReport, ChatSyncError, ServicePages, WalkLimits, WalkProgress};

/// What one personality's sync did.
#[derive(Debug, Clone)]
pub struct PersonalityReport {
    pub name: String,
    pub profile_changed: bool,
    pub chat: ChatReport,
    pub elapsed: Duration,
}

impl std::fmt::Display for PersonalityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: chat {} new, {} total ({} requests{}); profile {}",
            self.name,
            self.chat.new_messages,
            self.chat.total_messages,
            self.chat.requests,
            if self.chat.resumed { ", resumed" } else { "" },
            if self.profile_changed {
                "updated"
            } else {
                "unchanged"
            },
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chat(#[from] ChatStoreError),
    #[error(
        "`{name}` now resolves to personality {now}, but its backup holds the history of {stored}; \
         move {dir} aside to start a new backup, or fix the name in the config"
    )]
    IdChanged {
        name: String,
        now: String,
        stored: String,
        dir: String,
    },
    #[error("stopped at a page boundary; the next run resumes from the checkpoint")]
    Cancelled,
}

impl SyncError {
    /// The service refused the session: no other personality can succeed either.
    pub fn is_auth(&self) -> bool {
        matches!(self, SyncError::Api(ApiError::Auth { .. }))
    }
}

impl From<ChatSyncError> for SyncError {
    fn from(e: ChatSyncError) -> Self {
        match e {
            ChatSyncError::Api(e) => SyncError::Api(e),
            ChatSyncError::Store(e) => SyncError::Chat(e),
            ChatSyncError::Cancelled => SyncError::Cancelled,
        }
    }
}

/// Fetches the profile (to resolve the slug to its id, and to keep it), then
/// brings the chat history up to date.
pub async fn sync_personality(
    client: &ApiClient,
    store: &Store,
    name: &str,
    limits: WalkLimits,
    cancel: &CancellationToken,
    on_page: impl FnMut(WalkProgress),
) -> Result<PersonalityReport, SyncError> {
    let started = Instant::now();
    let dir = store.personality(name)?;
    let profile = client.profile(name).await?;
    let mut chat = dir.chat()?;
    if let Some(stored) = chat.state().personality_id.as_deref()
        && stored != profile.id.as_str()
    {
        return Err(SyncError::IdChanged {
            name: name.to_owned(),
            now: profile.id.to_string(),
            stored: stored.to_owned(),
            dir: dir.path().display().to_string(),
        });
    }
    chat.set_personality_id(profile.id.as_str())?;
    let mut doc = profile.raw.get().as_bytes().to_vec();
    doc.push(b'\n');
    let profile_changed = dir.write_document(&dir.profile_path(), &doc)?;
    let pages = ServicePages {
        client,
        id: &profile.id,
    };
    let chat_report = chat::sync_chat(&mut chat, &pages, limits, cancel, on_page).await?;
    let report = PersonalityReport {
        name: name.to_owned(),
        profile_changed,
        chat: chat_report,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        personality = name,
        new = report.chat.new_messages,
        total = report.chat.total_messages,
        requests = report.chat.requests,
        resumed = report.chat.resumed,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "sync finished"
    );
    Ok(report)
}
