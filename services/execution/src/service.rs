//! [`ExecutionService`]: what every execution handler shares.

use std::time::Duration;

use crate::agent::AgentStore;
use crate::answer::chat::ChatAgent;
use crate::history::SessionStore;

/// The buckets, the chat API (if configured) and the search timeout.
#[derive(Clone)]
pub struct ExecutionService {
    /// The `agents` bucket.
    pub agents: AgentStore,
    /// The `sessions` bucket.
    pub sessions: SessionStore,
    /// The chat API; `None`: answers are extractive.
    pub chat: Option<ChatAgent>,
    /// How long the search made with a run's message may take.
    pub search_timeout: Duration,
}
