use std::sync::Arc;

use embedding_contract::Generated;
use serde::{Deserialize, Serialize};
use shared::{Action, ActionError, ActionResult, Ctx};

use crate::QueryService;
use crate::actions::{ChunkInput, check_name};
use crate::handlers::store_chunks;

/// Where the vectors of a durable `embedding.generate` should be indexed: put under
/// `metadata.index` of that action, with `callback_subject: query.<tenant>.callbacks`. This
/// is the batch path: the embedding service works
/// through a backlog at its own pace and nobody waits on a socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexTarget {
    /// The collection.
    pub collection: String,
    /// The document.
    pub document_id: String,
    /// The chunks, in the same order as the action's `texts` (their vectors are ignored).
    pub chunks: Vec<ChunkInput>,
    /// As `query.index`'s `replace`.
    #[serde(default = "yes")]
    pub replace: bool,
}

fn yes() -> bool {
    true
}

/// Indexes the chunks of an `embedding.generate` result that arrived on the callbacks
/// subject. Anything that cannot be indexed fails, so the result is dead-lettered with
/// the reason rather than dropped.
pub async fn embedded(
    action: Action<ActionResult<Generated>>,
    ctx: Ctx,
    service: Arc<QueryService>,
) -> Result<(), ActionError> {
    let target = action.metadata.get("index").ok_or_else(|| {
        ActionError::invalid(
            "an embedding result reached query without metadata.index saying where to index it",
        )
    })?;
    let target: IndexTarget = serde_json::from_value(target.clone())
        .map_err(|err| ActionError::invalid(format!("metadata.index: {err}")))?;
    check_name("collection", &target.collection)?;
    check_name("document_id", &target.document_id)?;

    let result = action.data;
    let generated = match (result.result, result.error) {
        (Some(generated), _) => generated,
        (None, Some(error)) => {
            return Err(ActionError::handler(format!(
                "embedding failed, nothing indexed: {}",
                error.message
            )));
        }
        (None, None) => return Err(ActionError::invalid("an embedding result with no vectors")),
    };
    if generated.vectors.len() != target.chunks.len() {
        return Err(ActionError::invalid(format!(
            "{} vectors for {} chunks",
            generated.vectors.len(),
            target.chunks.len()
        )));
    }
    if let Some(failure) = generated.failures.first() {
        return Err(ActionError::handler(format!(
            "chunk at position {} was not embedded: {}",
            failure.index, failure.reason
        )));
    }
    let chunks = target
        .chunks
        .into_iter()
        .zip(generated.vectors)
        .map(|(chunk, vector)| ChunkInput { vector, ..chunk })
        .collect();
    store_chunks(
        &service,
        ctx.tenant(),
        &target.collection,
        &target.document_id,
        chunks,
        target.replace,
    )
    .await?;
    Ok(())
}
