use std::sync::Arc;
use std::time::Instant;

use embedding_contract::{EmbeddingKind, Generate};
use serde_json::json;
use shared::subject::CallbackSubject;
use shared::{Action, ActionError, Ctx, Domain, TenantId};

use crate::IngestionService;
use crate::actions::IngestDocument;
use crate::chunker::ChunkDraft;
use crate::documents::{DocumentRecord, content_hash};
use crate::extract::{self, DocumentKind, url::FetchLimits};
use crate::handlers::BatchTarget;
use crate::task::{TaskState, TaskStatus, check_id, now};

/// Runs the first half of the pipeline: read the original, extract its text, chunk it, and
/// enqueue one `embedding.generate` per batch with its callback to
/// `ingestion.<tenant>.callbacks`, where [`super::embedded`] indexes each batch as it
/// comes back. Safe to run again after a crash: ids are derived from the task, so the
/// same batches are enqueued (and deduplicated by JetStream) and no chunk is doubled.
pub async fn ingest_document(
    action: Action<IngestDocument>,
    ctx: Ctx,
    service: Arc<IngestionService>,
) -> Result<TaskState, ActionError> {
    let tenant = ctx.tenant().clone();
    let request = action.data;
    let document_id = request
        .document_id
        .clone()
        .unwrap_or_else(|| action.action_id.to_string());
    let task_id = request
        .task_id
        .clone()
        .unwrap_or_else(|| action.action_id.to_string());
    check_id("document_id", &document_id)?;
    check_id("task_id", &task_id)?;
    query_contract::check_name("collection", &request.collection)?;
    request.validate()?;

    let task = service
        .tasks
        .create(TaskState::pending(
            &tenant,
            &task_id,
            &document_id,
            &request.collection,
        ))
        .await?;
    if task.status.is_final() || task.batches_total > 0 {
        // Already done, or its batches are out: a redelivery has nothing left to do.
        return Ok(task);
    }
    match run(&service, &ctx, &tenant, &task_id, &document_id, &request).await {
        Ok(task) => Ok(task),
        Err(err) if err.retryable => Err(err),
        Err(err) => {
            let message = err.message.clone();
            service
                .tasks
                .update(&tenant, &task_id, |task| task.fail(message.clone()))
                .await?;
            let _ = service
                .documents
                .update_record(&tenant, &document_id, |record| {
                    record.status = TaskStatus::Failed
                })
                .await;
            Err(err)
        }
    }
}

async fn run(
    service: &IngestionService,
    ctx: &Ctx,
    tenant: &TenantId,
    task_id: &str,
    document_id: &str,
    request: &IngestDocument,
) -> Result<TaskState, ActionError> {
    let started = Instant::now();
    service
        .tasks
        .update(tenant, task_id, |task| task.advance(TaskStatus::Processing))
        .await?;
    let Original {
        bytes: original,
        content_type,
        file_name,
    } = read_original(service, tenant, document_id, request).await?;
    let hash = content_hash(&original);
    if let Some(existing) = service
        .documents
        .claim_content(tenant, &request.collection, &hash, document_id)
        .await?
    {
        // Already indexed in this collection: nothing to do but say so.
        if request.stored || request.text.is_some() || request.url.is_some() {
            let removed = service
                .documents
                .delete_original(tenant, document_id)
                .await?;
            service.quotas.release_stored(tenant, removed).await;
        }
        return Ok(service
            .tasks
            .update(tenant, task_id, |task| {
                task.duplicate_of = Some(existing.clone());
                task.advance(TaskStatus::Completed);
            })
            .await?);
    }
    let kind = DocumentKind::detect(file_name.as_deref(), content_type.as_deref(), &original)
        .ok_or_else(|| {
            ActionError::invalid(
                "unsupported document type: expected text, markdown, html, pdf or docx",
            )
        })?;
    let bytes = original.clone();
    let extracted = tokio::task::spawn_blocking(move || extract::extract(&bytes, kind))
        .await
        .map_err(|err| ActionError::handler(format!("extraction task: {err}")))?
        .map_err(|err| ActionError::invalid(err.to_string()))?;
    let title = request
        .title
        .as_deref()
        .or(extracted.title.as_deref())
        .or(file_name.as_deref())
        .map(extract::cap_title);
    let extract_ms = started.elapsed().as_millis() as u64;

    service
        .documents
        .put_record(&DocumentRecord {
            document_id: document_id.to_owned(),
            tenant_id: tenant.as_str().to_owned(),
            collection: request.collection.clone(),
            title: title.clone(),
            file_name: file_name.clone(),
            kind: Some(kind.as_str().to_owned()),
            url: request.url.clone(),
            size_bytes: original.len() as u64,
            content_hash: hash,
            chunks: 0,
            status: TaskStatus::Chunking,
            task_id: task_id.to_owned(),
            created_at: now(),
        })
        .await?;
    service
        .tasks
        .update(tenant, task_id, |task| task.advance(TaskStatus::Chunking))
        .await?;

    let chunking = Instant::now();
    // The request's sizes, else the collection's, else the service's defaults.
    let collection = match (request.chunk_tokens, request.chunk_overlap) {
        (Some(_), Some(_)) => None,
        _ => service.collections.get(tenant, &request.collection).await?,
    };
    let tokens = request
        .chunk_tokens
        .or(collection.map(|c| c.chunk_tokens))
        .unwrap_or(service.limits.chunk_tokens);
    let overlap = request
        .chunk_overlap
        .or(collection.map(|c| c.chunk_overlap))
        .unwrap_or(service.limits.chunk_overlap);
    // The pair actually used, by the same rule as each source: a request's lone overlap
    // may not fit the collection's size, and the defaults come from the environment.
    crate::collections::validate_chunking(tokens, overlap)?;
    let chunker = service.chunker.clone();
    let chunk_title = title.clone();
    let chunks = tokio::task::spawn_blocking(move || {
        chunker.chunk(&extracted, chunk_title.as_deref(), tokens, overlap)
    })
    .await
    .map_err(|err| ActionError::handler(format!("chunking task: {err}")))?
    .map_err(|err| ActionError::invalid(err.to_string()))?;
    if chunks.is_empty() {
        return Err(ActionError::invalid(
            "no text could be extracted from the document",
        ));
    }
    let chunk_ms = chunking.elapsed().as_millis() as u64;

    // Re-ingesting a document replaces it: its old chunks go first.
    ctx.request(
        query_contract::Delete {
            collection: request.collection.clone(),
            document_id: Some(document_id.to_owned()),
        },
        service.limits.query_timeout,
    )
    .await?;

    let batch_size = service.limits.batch_size.max(1);
    let batches: Vec<&[ChunkDraft]> = chunks.chunks(batch_size).collect();
    let task = service
        .tasks
        .update(tenant, task_id, |task| {
            task.chunks_total = chunks.len();
            task.batches_total = batches.len();
            task.timings.extract_ms = extract_ms;
            task.timings.chunk_ms = chunk_ms;
            task.advance(TaskStatus::Embedding);
        })
        .await?;
    let domain = Domain::new("ingestion").map_err(|err| ActionError::handler(err.to_string()))?;
    let callback = CallbackSubject::callbacks(&domain, tenant);
    // What every chunk of the document carries: the request's metadata and the file name,
    // capped as titles are since it is copied into every chunk.
    let mut document_metadata = request.metadata.clone();
    if let Some(file_name) = &file_name {
        document_metadata.insert("file_name".into(), extract::cap_title(file_name).into());
    }
    for (batch, drafts) in batches.iter().enumerate() {
        let target = BatchTarget {
            task_id: task_id.to_owned(),
            document_id: document_id.to_owned(),
            collection: request.collection.clone(),
            batch: batch as u32,
            first_chunk_index: (batch * batch_size) as u32,
            chunks: drafts
                .iter()
                .map(|d| json!({"text": d.text, "metadata": merged(&document_metadata, &d.metadata)}))
                .collect(),
        };
        let mut embed = ctx
            .follow_up(Generate {
                texts: drafts.iter().map(|d| d.text.clone()).collect(),
                kind: EmbeddingKind::Document,
                model: None,
            })
            .with_callback(&callback)
            .with_task(task_id)
            .with_metadata(
                BatchTarget::KEY,
                serde_json::to_value(&target).map_err(|e| ActionError::handler(e.to_string()))?,
            );
        // The same batch of the same task always has the same id: JetStream drops the copy
        // a redelivered ingestion would enqueue.
        embed.action_id = shared::action::derived_id(&[
            task_id.as_bytes(),
            b"batch",
            &(batch as u32).to_be_bytes(),
        ]);
        ctx.enqueue(&embed).await?;
    }
    Ok(task)
}

/// The document's metadata with the chunk's own (heading, page, title) on top.
fn merged(
    document: &serde_json::Map<String, serde_json::Value>,
    chunk: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut all = document.clone();
    all.extend(chunk.clone());
    all
}

/// An original and what is known of its format.
struct Original {
    bytes: bytes::Bytes,
    content_type: Option<String>,
    file_name: Option<String>,
}

/// The original: from the object store, inline text (stored there too), or a URL (stored
/// too, so a redelivery does not fetch it again… unless it crashed before storing).
async fn read_original(
    service: &IngestionService,
    tenant: &TenantId,
    document_id: &str,
    request: &IngestDocument,
) -> Result<Original, ActionError> {
    let limit = service.limits.max_bytes;
    let sources = [
        request.stored,
        request.text.is_some(),
        request.url.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(ActionError::invalid(
            "give exactly one of text, url or stored: true",
        ));
    }
    let mut original = Original {
        bytes: bytes::Bytes::new(),
        content_type: request.content_type.clone(),
        file_name: request.file_name.clone(),
    };
    if request.stored {
        original.bytes = service
            .documents
            .get_original(tenant, document_id)
            .await?
            .ok_or_else(|| {
                ActionError::invalid(format!("no stored original for document {document_id}"))
            })?;
        return Ok(original);
    }
    original.bytes = if let Some(text) = &request.text {
        text.clone().into_bytes().into()
    } else {
        let url = request.url.as_deref().unwrap_or_default();
        let fetched = extract::url::fetch(
            url,
            FetchLimits {
                max_bytes: limit,
                timeout: service.limits.fetch_timeout,
            },
            &service.url_allow,
        )
        .await
        .map_err(|err| ActionError::invalid(format!("fetching {url}: {err}")))?;
        original.content_type = original.content_type.or(fetched.content_type);
        original.file_name = original.file_name.or(fetched.file_name);
        fetched.bytes.into()
    };
    if original.bytes.len() > limit {
        return Err(ActionError::new(
            shared::ErrorCode::PayloadTooLarge,
            format!(
                "the document has {} bytes; the limit is {limit}",
                original.bytes.len()
            ),
        ));
    }
    store_counted(service, tenant, document_id, &original.bytes).await?;
    Ok(original)
}

/// Stores `bytes` as the original of `document_id`, counted in the tenant's stored bytes:
/// what it adds to an original already there (a redelivery, a document ingested again)
/// is reserved first, and refused (`quota_exceeded`, nothing stored) past the tenant's
/// `stored_bytes`.
async fn store_counted(
    service: &IngestionService,
    tenant: &TenantId,
    document_id: &str,
    bytes: &[u8],
) -> Result<(), ActionError> {
    let before = service
        .documents
        .original_size(tenant, document_id)
        .await?
        .unwrap_or(0);
    let after = bytes.len() as u64;
    let quotas = &service.quotas;
    quotas
        .reserve_stored(tenant, after.saturating_sub(before), DOMAIN)
        .await?;
    if let Err(err) = service
        .documents
        .put_original(tenant, document_id, bytes)
        .await
    {
        quotas
            .release_stored(tenant, after.saturating_sub(before))
            .await;
        return Err(err.into());
    }
    quotas
        .release_stored(tenant, before.saturating_sub(after))
        .await;
    Ok(())
}

/// Where refusals are counted in `/metrics`.
const DOMAIN: &str = "ingestion";
