//! `execution.agent_run.result`, arriving on `orchestrator.<tenant>.callbacks`.

use std::sync::Arc;

use execution_contract::Reply;
use shared::{Action, ActionError, ActionResult, Ctx};

use crate::events::{EventPublisher, SessionEvent};

/// Turns an agent's result into session events: `response` then `task_completed`, or
/// `error`.
///
/// Whichever instance pulls the callback publishes them on the session's events subject,
/// and every instance holding a socket on that session forwards them, so the answer
/// reaches the user wherever their socket is connected. An error result is delivered as
/// an event and the callback succeeds: execution already dead-lettered the failed run, and
/// retrying here could not make it succeed.
pub async fn agent_run_result(
    action: Action<ActionResult<Reply>>,
    ctx: Ctx,
    events: Arc<EventPublisher>,
) -> Result<(), ActionError> {
    let Action {
        session_id,
        task_id,
        data,
        ..
    } = action;
    let Some(session_id) = session_id else {
        // Nobody can be watching a session that has no id; the dead letter keeps it.
        return Err(ActionError::invalid(
            "an execution.agent_run result without session_id reached the orchestrator",
        ));
    };
    let task_id = task_id.as_deref();
    let session_id = session_id.as_str();
    match data.into_result() {
        Ok(answer) => {
            let response = SessionEvent::Response {
                task_id,
                session_id,
                answer: &answer.answer,
                citations: &answer.citations,
                usage: &answer.usage,
            };
            let completed = SessionEvent::TaskCompleted {
                task_id,
                session_id,
            };
            events
                .publish(ctx.tenant(), session_id, &[response, completed])
                .await
        }
        Err(error) => {
            let failed = SessionEvent::Error {
                task_id,
                session_id,
                code: error.code,
                message: &error.message,
            };
            events.publish(ctx.tenant(), session_id, &[failed]).await
        }
    }
}
