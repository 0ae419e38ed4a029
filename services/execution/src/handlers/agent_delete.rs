use shared::{Action, ActionError, Ctx};

use crate::ExecutionService;
use crate::actions::{AgentDelete, AgentDeleted};

/// Removes the tenant's agent. Deleting one that is not there succeeds with
/// `deleted: false`, so a retried delete does not fail.
pub async fn agent_delete(
    action: Action<AgentDelete>,
    ctx: Ctx,
) -> Result<AgentDeleted, ActionError> {
    let service = ctx.state::<ExecutionService>()?;
    let deleted = service
        .agents
        .delete(ctx.tenant(), &action.data.agent_id)
        .await?;
    Ok(AgentDeleted { deleted })
}
