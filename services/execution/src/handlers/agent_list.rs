use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::ExecutionService;
use crate::actions::{AgentList, Agents};

/// Every agent of the tenant, for a client's agent picker.
pub async fn agent_list(
    _action: Action<AgentList>,
    ctx: Ctx,
    service: Arc<ExecutionService>,
) -> Result<Agents, ActionError> {
    Ok(Agents {
        agents: service.agents.list(ctx.tenant()).await?,
    })
}
