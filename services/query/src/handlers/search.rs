use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::QueryService;
use crate::actions::{Search, SearchHits};
use crate::service::hit;

/// The nearest chunks to the query, from the action's tenant only.
pub async fn search(
    action: Action<Search>,
    ctx: Ctx,
    service: Arc<QueryService>,
) -> Result<SearchHits, ActionError> {
    let found = service.search(&ctx, &action.data).await?;
    Ok(SearchHits {
        hits: found.into_iter().map(hit).collect(),
    })
}
