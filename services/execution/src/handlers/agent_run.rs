use std::sync::Arc;

use shared::{Action, ActionError, Ctx};
use time::OffsetDateTime;

use crate::ExecutionService;
use crate::actions::{AgentRun, Reply};
use crate::answer::{AgentAnswerer, Turn, extractive};
use crate::history::{Message, check_session_id};
use crate::knowledge::RpcKnowledge;
use crate::token_stream::SessionStream;

/// The longest message accepted, in bytes: far beyond any question, small enough that a
/// capped conversation stays well inside a KV value.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// Answers the message with the agent, in its conversation: loads both, answers (searching
/// the tenant's documents as the agent allows, streaming tokens if asked), then saves the
/// user's turn and the answer, so the next run of the session sees them.
pub async fn agent_run(
    action: Action<AgentRun>,
    ctx: Ctx,
    service: Arc<ExecutionService>,
) -> Result<Reply, ActionError> {
    let said_at = OffsetDateTime::now_utc();
    let task_id = action
        .task_id
        .clone()
        .unwrap_or_else(|| action.action_id.to_string());
    let run = action.data;
    check_session_id(&run.session_id)?;
    if run.message.trim().is_empty() {
        return Err(ActionError::invalid("the message is empty"));
    }
    if run.message.len() > MAX_MESSAGE_BYTES {
        return Err(ActionError::invalid(format!(
            "the message is {} bytes; at most {MAX_MESSAGE_BYTES} are accepted",
            run.message.len()
        )));
    }
    run.sampling.validate()?;
    let tenant = ctx.tenant();
    let mut agent = service.agents.load(tenant, &run.agent_id).await?;
    // This run's temperature, max_tokens and top_p, over the agent's own.
    agent.sampling = run.sampling.over(agent.sampling);
    let session = service.sessions.load(tenant, &run.session_id).await?;
    let turn = Turn {
        agent: &agent,
        history: &session.messages,
        message: &run.message,
        search_timeout: service.search_timeout,
    };
    let knowledge = RpcKnowledge::new(&ctx, &agent);
    let tokens = if run.stream {
        Some(SessionStream::new(&ctx, &run.session_id, &task_id)?)
    } else {
        None
    };
    let reply = match &service.answerer {
        AgentAnswerer::Extractive => {
            extractive::answer(&turn, tenant, &knowledge, tokens.as_ref()).await?
        }
        AgentAnswerer::Local(local) => {
            local
                .answer(&turn, tenant, &knowledge, tokens.as_ref())
                .await?
        }
        AgentAnswerer::Chat(chat) => {
            // The tenant's model list and LLM tokens, before the API is paid for.
            ctx.check_llm(agent.model.as_deref()).await?;
            let reply = chat
                .answer(&turn, tenant, &knowledge, tokens.as_ref())
                .await?;
            ctx.record_llm_tokens(reply.usage.total_tokens).await;
            reply
        }
    };
    service
        .sessions
        .append(
            tenant,
            &run.session_id,
            &agent.agent_id,
            vec![
                Message::user(run.message, said_at),
                Message::assistant(reply.answer.clone(), reply.citations.clone()),
            ],
        )
        .await?;
    Ok(reply)
}
