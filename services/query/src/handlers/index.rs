use std::sync::Arc;

use embedding_contract::EmbeddingKind;
use shared::{Action, ActionError, Ctx, TenantId};

use crate::QueryService;
use crate::actions::{ChunkInput, Index, Indexed, check_name};
use crate::service::store_error;
use crate::store::{ChunkPoint, Scope, StoredChunk};

/// Stores a document's chunks; chunks without vectors are embedded first (over rpc).
pub async fn index(
    action: Action<Index>,
    ctx: Ctx,
    service: Arc<QueryService>,
) -> Result<Indexed, ActionError> {
    let Index {
        collection,
        document_id,
        mut chunks,
        replace,
    } = action.data;
    check(&collection, &document_id, &chunks)?;

    let missing: Vec<usize> = (0..chunks.len())
        .filter(|&i| chunks[i].vector.is_none())
        .collect();
    if !missing.is_empty() {
        let texts = missing.iter().map(|&i| chunks[i].text.clone()).collect();
        let vectors = service.embed(&ctx, texts, EmbeddingKind::Document).await?;
        for (i, vector) in missing.iter().zip(vectors) {
            chunks[*i].vector = Some(vector);
        }
    }
    let mut indexed = store_chunks(
        &service,
        ctx.tenant(),
        &collection,
        &document_id,
        chunks,
        replace,
    )
    .await?;
    indexed.embedded = missing.len();
    Ok(indexed)
}

/// Checks names and chunks before anything is embedded or written.
fn check(collection: &str, document_id: &str, chunks: &[ChunkInput]) -> Result<(), ActionError> {
    check_name("collection", collection)?;
    check_name("document_id", document_id)?;
    if chunks.is_empty() {
        return Err(ActionError::invalid(
            "no chunks to index (use query.delete to remove a document)",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for chunk in chunks {
        if !seen.insert(chunk.chunk_index) {
            return Err(ActionError::invalid(format!(
                "chunk_index {} appears twice",
                chunk.chunk_index
            )));
        }
        if chunk.text.trim().is_empty() {
            return Err(ActionError::invalid(format!(
                "chunk {} has no text",
                chunk.chunk_index
            )));
        }
    }
    Ok(())
}

/// Writes chunks that all have vectors, replacing the document's old chunks if asked.
/// Shared by `query.index` and the embedding-callback handler.
pub async fn store_chunks(
    service: &QueryService,
    tenant: &TenantId,
    collection: &str,
    document_id: &str,
    chunks: Vec<ChunkInput>,
    replace: bool,
) -> Result<Indexed, ActionError> {
    let points = chunks
        .into_iter()
        .map(|chunk| {
            let vector = chunk.vector.ok_or_else(|| {
                ActionError::handler(format!("chunk {} has no vector", chunk.chunk_index))
            })?;
            let stored = StoredChunk {
                tenant_id: tenant.as_str().to_owned(),
                collection: collection.to_owned(),
                document_id: document_id.to_owned(),
                chunk_index: chunk.chunk_index,
                text: chunk.text,
                metadata: chunk.metadata,
            };
            Ok(ChunkPoint::new(stored, vector))
        })
        .collect::<Result<Vec<_>, ActionError>>()?;
    crate::store::check_dimensions(service.store.dimensions(), &points).map_err(store_error)?;
    let indexed = points.len();
    let removed = if replace {
        service
            .store
            .delete(Scope {
                tenant,
                collection: Some(collection),
                document_id: Some(document_id),
            })
            .await
            .map_err(store_error)?
    } else {
        0
    };
    service.store.upsert(points).await.map_err(store_error)?;
    Ok(Indexed {
        collection: collection.to_owned(),
        document_id: document_id.to_owned(),
        indexed,
        embedded: 0,
        removed: removed.saturating_sub(indexed as u64),
    })
}
