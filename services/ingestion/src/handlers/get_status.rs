use std::sync::Arc;

use shared::{Action, ActionError, Ctx, ErrorCode};

use crate::IngestionService;
use crate::actions::GetStatus;
use crate::task::{TaskState, check_id};

/// A task of the action's tenant (another tenant's task is as absent as a missing one).
pub async fn get_status(
    action: Action<GetStatus>,
    ctx: Ctx,
    service: Arc<IngestionService>,
) -> Result<TaskState, ActionError> {
    check_id("task_id", &action.data.task_id)?;
    service
        .tasks
        .get(ctx.tenant(), &action.data.task_id)
        .await?
        .ok_or_else(|| {
            ActionError::new(
                ErrorCode::InvalidAction,
                format!("no task {}", action.data.task_id),
            )
        })
}
