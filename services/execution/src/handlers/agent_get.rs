use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::ExecutionService;
use crate::actions::AgentGet;
use crate::agent::Agent;

/// The tenant's agent; another tenant's agent of the same id is simply not there.
pub async fn agent_get(
    action: Action<AgentGet>,
    ctx: Ctx,
    service: Arc<ExecutionService>,
) -> Result<Agent, ActionError> {
    service
        .agents
        .load(ctx.tenant(), &action.data.agent_id)
        .await
}
