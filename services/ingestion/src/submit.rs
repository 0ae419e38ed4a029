//! Handing a document to the pipeline: what the HTTP routes and `domain-actions ingest`
//! both do. The original goes to the object store (large files never travel inline in an
//! action), a pending task is created, and `ingestion.ingest_document` is enqueued on the
//! durable path, so the work survives any restart from here on.

use bytes::Bytes;
use platform::http::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::publish::Publisher;
use shared::{Action, TenantId};

use crate::IngestionService;
use crate::actions::IngestDocument;
use crate::documents::content_hash;
use crate::task::TaskState;

/// What an accepted document answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Follow it at `/v1/tasks/{task_id}` (or `ingestion.get_status`).
    pub task_id: String,
    /// The document's id.
    pub document_id: String,
    /// The uploaded file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Set when this content is already in the collection: that document's id (nothing
    /// new is indexed, and `task_id` is that document's task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

/// A file to ingest.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// The collection.
    pub collection: String,
    /// Its bytes.
    pub bytes: Bytes,
    /// Its name.
    pub file_name: Option<String>,
    /// Its content type, if known.
    pub content_type: Option<String>,
    /// A title.
    pub title: Option<String>,
    /// Kept with every chunk.
    pub metadata: Map<String, Value>,
}

/// A file already in the object store (an upload streamed there), to be ingested.
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// Its id, the name of its original in the store.
    pub document_id: String,
    /// The collection.
    pub collection: String,
    /// Its name.
    pub file_name: Option<String>,
    /// Its content type, if known.
    pub content_type: Option<String>,
    /// A title.
    pub title: Option<String>,
    /// Kept with every chunk.
    pub metadata: Map<String, Value>,
}

/// Where refusals of the tenant's stored bytes are counted in `/metrics`.
const AT: &str = "ingestion";

/// Stores `file` and submits it, unless its content is already in the collection; refused
/// (`quota_exceeded`, 507 at HTTP) if it would take the tenant past its stored bytes.
pub async fn submit_file(
    service: &IngestionService,
    publisher: &Publisher,
    tenant: &TenantId,
    file: NewFile,
) -> Result<Accepted, ApiError> {
    let document_id = uuid::Uuid::now_v7().to_string();
    let hash = content_hash(&file.bytes);
    let claim = service
        .documents
        .claim_content(tenant, &file.collection, &hash, &document_id)
        .await?;
    if let Some(existing) = claim {
        return duplicate(service, tenant, existing, file.file_name).await;
    }
    let size = file.bytes.len() as u64;
    service.quotas.reserve_stored(tenant, size, AT).await?;
    let put = service
        .documents
        .put_original(tenant, &document_id, &file.bytes)
        .await;
    if let Err(err) = put {
        service.quotas.release_stored(tenant, size).await;
        return Err(err.into());
    }
    let stored = StoredFile {
        document_id,
        collection: file.collection,
        file_name: file.file_name,
        content_type: file.content_type,
        title: file.title,
        metadata: file.metadata,
    };
    submit_stored(service, publisher, tenant, stored).await
}

/// The answer for a file whose content the collection already has in document `existing`.
pub async fn duplicate(
    service: &IngestionService,
    tenant: &TenantId,
    existing: String,
    file_name: Option<String>,
) -> Result<Accepted, ApiError> {
    let record = service.documents.record(tenant, &existing).await?;
    Ok(Accepted {
        task_id: record.map(|r| r.task_id).unwrap_or_default(),
        document_id: existing.clone(),
        file_name,
        duplicate_of: Some(existing),
    })
}

/// Submits a file whose original is already stored (its content claimed).
pub async fn submit_stored(
    service: &IngestionService,
    publisher: &Publisher,
    tenant: &TenantId,
    file: StoredFile,
) -> Result<Accepted, ApiError> {
    let ingest = IngestDocument {
        collection: file.collection,
        document_id: Some(file.document_id),
        task_id: None,
        text: None,
        url: None,
        stored: true,
        file_name: file.file_name.clone(),
        content_type: file.content_type,
        title: file.title,
        metadata: file.metadata,
        chunk_tokens: None,
        chunk_overlap: None,
    };
    let mut accepted = submit(service, publisher, tenant, ingest).await?;
    accepted.file_name = file.file_name;
    Ok(accepted)
}

/// Creates the task and enqueues the action; ids default to the action's id.
pub async fn submit(
    service: &IngestionService,
    publisher: &Publisher,
    tenant: &TenantId,
    mut ingest: IngestDocument,
) -> Result<Accepted, ApiError> {
    let mut action = Action::new(tenant.clone(), ingest.clone());
    let id = action.action_id.to_string();
    let document_id = ingest.document_id.clone().unwrap_or_else(|| id.clone());
    ingest.document_id = Some(document_id.clone());
    ingest.task_id = Some(id.clone());
    action.task_id = Some(id.clone());
    service
        .tasks
        .create(TaskState::pending(
            tenant,
            &id,
            &document_id,
            &ingest.collection,
        ))
        .await?;
    action.data = ingest;
    publisher.enqueue(&action).await.map_err(ApiError::from)?;
    Ok(Accepted {
        task_id: id,
        document_id,
        file_name: None,
        duplicate_of: None,
    })
}
