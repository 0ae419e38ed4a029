use std::sync::Arc;

use shared::{Action, ActionError, Ctx, TenantId};

use crate::IngestionService;
use crate::actions::{DeleteDocument, DocumentDeleted};
use crate::task::check_id;

/// Removes a document of the action's tenant: its chunks, its original, its record.
pub async fn delete_document(
    action: Action<DeleteDocument>,
    ctx: Ctx,
    service: Arc<IngestionService>,
) -> Result<DocumentDeleted, ActionError> {
    let tenant = ctx.tenant().clone();
    let timeout = service.limits.query_timeout;
    remove_document(
        &service,
        &tenant,
        &action.data.document_id,
        |delete| async move { ctx.request(delete, timeout).await },
    )
    .await
}

/// Deletes a document's chunks (through `delete_chunks`, a `query.delete` request), its
/// original (its bytes given back to the tenant's stored bytes), its content claim, its task and its record; the HTTP route and the action
/// share it. A document that does not exist is an `invalid_action` error.
pub async fn remove_document<F, Fut>(
    service: &IngestionService,
    tenant: &TenantId,
    document_id: &str,
    delete_chunks: F,
) -> Result<DocumentDeleted, ActionError>
where
    F: FnOnce(query_contract::Delete) -> Fut,
    Fut: Future<Output = Result<query_contract::Deleted, ActionError>>,
{
    check_id("document_id", document_id)?;
    let record = service
        .documents
        .record(tenant, document_id)
        .await?
        .ok_or_else(|| ActionError::invalid(format!("no document {document_id}")))?;
    let deleted = delete_chunks(query_contract::Delete {
        collection: record.collection.clone(),
        document_id: Some(document_id.to_owned()),
    })
    .await?;
    let removed = service
        .documents
        .delete_original(tenant, document_id)
        .await?;
    service.quotas.release_stored(tenant, removed).await;
    service
        .documents
        .release_content(tenant, &record.collection, &record.content_hash)
        .await?;
    service.tasks.delete(tenant, &record.task_id).await?;
    service.documents.delete_record(tenant, document_id).await?;
    Ok(DocumentDeleted {
        document_id: document_id.to_owned(),
        chunks_deleted: deleted.deleted,
    })
}
