use shared::{Action, ActionError, Ctx};

use crate::ExecutionService;
use crate::actions::{AgentList, Agents};

/// Every agent of the tenant, for a client's agent picker.
pub async fn agent_list(_action: Action<AgentList>, ctx: Ctx) -> Result<Agents, ActionError> {
    let service = ctx.state::<ExecutionService>()?;
    Ok(Agents {
        agents: service.agents.list(ctx.tenant()).await?,
    })
}
