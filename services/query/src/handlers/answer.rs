use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::QueryService;
use crate::actions::{Answer, Answered, Search};
use crate::answerer::Question;

/// Searches the tenant's collections, then answers from the passages found, citing them.
pub async fn answer(
    action: Action<Answer>,
    ctx: Ctx,
    service: Arc<QueryService>,
) -> Result<Answered, ActionError> {
    let ask = action.data;
    if ask.query.trim().is_empty() {
        return Err(ActionError::invalid("the question is empty"));
    }
    let search = Search {
        query: Some(ask.query.clone()),
        vector: None,
        collections: ask.collections,
        top_k: ask.top_k,
        score_threshold: ask.score_threshold,
        filter: ask.filter,
    };
    let passages = service.search(&ctx, &search).await?;
    service
        .answerer
        .answer(Question {
            query: &ask.query,
            passages: &passages,
            system_prompt: ask.system_prompt.as_deref(),
            model: ask.model.as_deref(),
        })
        .await
}
