use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::ExecutionService;
use crate::actions::{SessionDelete, SessionDeleted};

/// Forgets the tenant's conversation. Deleting one that is not there succeeds with
/// `deleted: false`, so a retried delete does not fail; another tenant's session of the
/// same id is a different key and is never touched.
pub async fn session_delete(
    action: Action<SessionDelete>,
    ctx: Ctx,
    service: Arc<ExecutionService>,
) -> Result<SessionDeleted, ActionError> {
    let deleted = service
        .sessions
        .delete(ctx.tenant(), &action.data.session_id)
        .await?;
    Ok(SessionDeleted { deleted })
}
