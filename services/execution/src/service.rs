//! [`ExecutionService`]: what every execution handler shares.

use std::time::Duration;

use crate::agent::AgentStore;
use crate::answer::AgentAnswerer;
use crate::history::SessionStore;

/// The buckets, who answers, and the search timeout.
#[derive(Clone)]
pub struct ExecutionService {
    /// The `agents` bucket.
    pub agents: AgentStore,
    /// The `sessions` bucket.
    pub sessions: SessionStore,
    /// Who answers runs.
    pub answerer: AgentAnswerer,
    /// How long the search made with a run's message may take.
    pub search_timeout: Duration,
}
