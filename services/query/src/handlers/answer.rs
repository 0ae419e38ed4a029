use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::QueryService;
use crate::actions::{Answer, Answered, Search};
use crate::answerer::Question;

/// Searches the tenant's collections, then answers from the passages found, citing them.
/// With a chat API, the tenant's model list and LLM tokens are checked before anything is
/// searched or paid for, and the tokens the API reports are counted after.
pub async fn answer(
    action: Action<Answer>,
    ctx: Ctx,
    service: Arc<QueryService>,
) -> Result<Answered, ActionError> {
    let ask = action.data;
    if ask.query.trim().is_empty() {
        return Err(ActionError::invalid("the question is empty"));
    }
    let paid = service.answerer.calls_api();
    if paid {
        ctx.check_llm(ask.model.as_deref()).await?;
    }
    let search = Search {
        query: Some(ask.query.clone()),
        vector: None,
        collections: ask.collections,
        top_k: ask.top_k,
        score_threshold: ask.score_threshold,
        filter: ask.filter,
        retrieval: ask.retrieval,
    };
    let passages = service.search(&ctx, &search).await?;
    let answered = service
        .answerer
        .answer(Question {
            query: &ask.query,
            passages: &passages,
            system_prompt: ask.system_prompt.as_deref(),
            model: ask.model.as_deref(),
        })
        .await?;
    if paid {
        ctx.record_llm_tokens(answered.usage.total_tokens).await;
    }
    Ok(answered)
}
