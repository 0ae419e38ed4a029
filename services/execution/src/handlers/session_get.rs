use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::ExecutionService;
use crate::actions::SessionGet;
use crate::history::Session;

/// The tenant's conversation as stored; a session nothing was said in (or that expired)
/// is empty rather than an error, so a client can open any session id.
pub async fn session_get(
    action: Action<SessionGet>,
    ctx: Ctx,
    service: Arc<ExecutionService>,
) -> Result<Session, ActionError> {
    service
        .sessions
        .load(ctx.tenant(), &action.data.session_id)
        .await
}
