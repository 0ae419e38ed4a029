use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::ExecutionService;
use crate::actions::{AgentDelete, AgentDeleted};

/// Removes the tenant's agent. Deleting one that is not there succeeds with
/// `deleted: false`, so a retried delete does not fail.
pub async fn agent_delete(
    action: Action<AgentDelete>,
    ctx: Ctx,
    service: Arc<ExecutionService>,
) -> Result<AgentDeleted, ActionError> {
    let deleted = service
        .agents
        .delete(ctx.tenant(), &action.data.agent_id)
        .await?;
    Ok(AgentDeleted { deleted })
}
