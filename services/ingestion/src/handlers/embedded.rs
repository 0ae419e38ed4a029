use std::sync::Arc;
use std::time::Instant;

use embedding_contract::Generated;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{Action, ActionError, ActionResult, Ctx};

use crate::IngestionService;
use crate::task::TaskStatus;

/// Where a batch's vectors go: carried in the `embedding.generate` action's metadata
/// (under [`BatchTarget::KEY`]) and copied by the embedding service onto its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchTarget {
    /// The task.
    pub task_id: String,
    /// The document.
    pub document_id: String,
    /// The collection.
    pub collection: String,
    /// The batch's number.
    pub batch: u32,
    /// The document-wide index of the batch's first chunk.
    pub first_chunk_index: u32,
    /// The batch's chunks (`{text, metadata}`), in the order of the texts embedded.
    pub chunks: Vec<Value>,
}

impl BatchTarget {
    /// The metadata key.
    pub const KEY: &'static str = "ingestion";
}

/// Indexes one embedded batch through `query.index`, then records the batch as done;
/// after the last batch the task completes. A batch delivered twice (a crash before its
/// ack) is indexed again under the same chunk ids and counted once.
pub async fn embedded(
    action: Action<ActionResult<Generated>>,
    ctx: Ctx,
    service: Arc<IngestionService>,
) -> Result<(), ActionError> {
    let tenant = ctx.tenant().clone();
    let target: BatchTarget = action
        .metadata
        .get(BatchTarget::KEY)
        .cloned()
        .ok_or_else(|| {
            ActionError::invalid("an embedding result without metadata.ingestion reached ingestion")
        })
        .and_then(|v| {
            serde_json::from_value(v)
                .map_err(|e| ActionError::invalid(format!("metadata.ingestion: {e}")))
        })?;
    let task = service.tasks.get(&tenant, &target.task_id).await?;
    if task.as_ref().is_none_or(|t| t.status.is_final()) {
        return Ok(()); // The task is gone or already over: nothing to add to it.
    }

    let result = action.data;
    let generated = match (result.result, result.error) {
        (Some(generated), _) if generated.failures.is_empty() => generated,
        (Some(generated), _) => {
            let failure = &generated.failures[0];
            return fail(
                &service,
                &ctx,
                &target,
                format!(
                    "chunk {} could not be embedded: {}",
                    target.first_chunk_index as usize + failure.index,
                    failure.reason
                ),
            )
            .await;
        }
        (None, error) => {
            let why = error.map_or("no vectors".to_owned(), |e| e.message);
            return fail(&service, &ctx, &target, format!("embedding failed: {why}")).await;
        }
    };
    let embed_ms = result.duration_ms;
    let chunks: Vec<query_contract::ChunkInput> = target
        .chunks
        .iter()
        .zip(generated.vectors)
        .enumerate()
        .map(|(i, (chunk, vector))| query_contract::ChunkInput {
            chunk_index: target.first_chunk_index + i as u32,
            text: chunk["text"].as_str().unwrap_or_default().to_owned(),
            vector,
            metadata: chunk["metadata"].as_object().cloned().unwrap_or_default(),
        })
        .collect();
    let count = chunks.len();
    let indexing = Instant::now();
    ctx.request(
        query_contract::Index {
            collection: target.collection.clone(),
            document_id: target.document_id.clone(),
            chunks,
            replace: false,
        },
        service.limits.query_timeout,
    )
    .await?;
    let index_ms = indexing.elapsed().as_millis() as u64;

    let task = service
        .tasks
        .update(&tenant, &target.task_id, |task| {
            if task.finish_batch(target.batch, count) {
                task.timings.embed_ms += embed_ms;
                task.timings.index_ms += index_ms;
            }
        })
        .await?;
    if task.status == TaskStatus::Storing {
        service
            .documents
            .update_record(&tenant, &target.document_id, |record| {
                record.chunks = task.chunks_done;
                record.status = TaskStatus::Completed;
            })
            .await?;
        service
            .tasks
            .update(&tenant, &target.task_id, |task| {
                task.advance(TaskStatus::Completed)
            })
            .await?;
    }
    Ok(())
}

/// Fails the task and the document, and the callback too (so it is dead-lettered).
async fn fail(
    service: &IngestionService,
    ctx: &Ctx,
    target: &BatchTarget,
    reason: String,
) -> Result<(), ActionError> {
    let tenant = ctx.tenant();
    service
        .tasks
        .update(tenant, &target.task_id, |task| task.fail(reason.clone()))
        .await?;
    let _ = service
        .documents
        .update_record(tenant, &target.document_id, |record| {
            record.status = TaskStatus::Failed
        })
        .await;
    Err(ActionError::handler(reason))
}
