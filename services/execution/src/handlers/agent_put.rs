use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::ExecutionService;
use crate::actions::AgentPut;
use crate::agent::Agent;

/// Stores the agent for the action's tenant, replacing one with the same id: agents are
/// configuration, so a client sends the whole of it every time.
pub async fn agent_put(
    action: Action<AgentPut>,
    ctx: Ctx,
    service: Arc<ExecutionService>,
) -> Result<Agent, ActionError> {
    service.agents.put(ctx.tenant(), action.data.agent).await
}
