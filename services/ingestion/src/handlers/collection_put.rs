use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::IngestionService;
use crate::actions::CollectionPut;
use crate::collections::{CollectionRecord, CollectionSettings};

/// Stores the chunking settings of one of the action tenant's collections, so NATS users
/// can configure what HTTP users set with `PUT /v1/collections/{name}`. Invalid sizes are
/// `invalid_action`, not retried.
pub async fn collection_put(
    action: Action<CollectionPut>,
    ctx: Ctx,
    service: Arc<IngestionService>,
) -> Result<CollectionRecord, ActionError> {
    let request = action.data;
    Ok(service
        .collections
        .put(
            ctx.tenant(),
            &request.collection,
            CollectionSettings {
                chunk_tokens: request.chunk_tokens,
                chunk_overlap: request.chunk_overlap,
            },
        )
        .await?)
}
