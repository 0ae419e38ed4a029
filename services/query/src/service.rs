//! [`QueryService`]: what every query handler shares.

use std::sync::Arc;
use std::time::Duration;

use embedding_contract::{EmbeddingKind, Generate};
use shared::{ActionError, Ctx};

use crate::actions::{Hit, Retrieval, Search, check_name, check_top_k};
use crate::answerer::Answerer;
use crate::store::{ScoredChunk, SearchRequest, StoreError, VectorStore};

/// The store, the answerer, and how long to wait for the embedding service.
#[derive(Clone)]
pub struct QueryService {
    /// The vector store (this service is its only user).
    pub store: Arc<dyn VectorStore>,
    /// Turns passages into an answer.
    pub answerer: Arc<dyn Answerer>,
    /// How long an `embedding.generate` request may take.
    pub embed_timeout: Duration,
    /// How a search that does not say finds chunks.
    pub retrieval: Retrieval,
}

impl QueryService {
    /// Embeds `texts` over `embedding.<tenant>.rpc` (the interactive path: nothing stored,
    /// answered by whichever embedding instance is free). Any text that fails fails the call,
    /// naming its index: a chunk indexed without its vector would never be found.
    pub async fn embed(
        &self,
        ctx: &Ctx,
        texts: Vec<String>,
        kind: EmbeddingKind,
    ) -> Result<Vec<Vec<f32>>, ActionError> {
        let generated = ctx
            .request(
                Generate {
                    texts,
                    kind,
                    model: None,
                },
                self.embed_timeout,
            )
            .await?;
        if let Some(failure) = generated.failures.first() {
            return Err(ActionError::handler(format!(
                "text {} could not be embedded: {}",
                failure.index, failure.reason
            )));
        }
        generated
            .vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| ActionError::handler(format!("text {i} has no vector"))))
            .collect()
    }

    /// Runs a search inside the action's tenant: embeds the query text if no vector came,
    /// and matches its words too when the search is hybrid.
    pub async fn search(
        &self,
        ctx: &Ctx,
        search: &Search,
    ) -> Result<Vec<ScoredChunk>, ActionError> {
        check_top_k(search.top_k)?;
        for collection in &search.collections {
            check_name("collection", collection)?;
        }
        let vector = match (&search.vector, &search.query) {
            (Some(vector), _) => vector.clone(),
            (None, Some(query)) if !query.trim().is_empty() => self
                .embed(ctx, vec![query.clone()], EmbeddingKind::Query)
                .await?
                .remove(0),
            _ => return Err(ActionError::invalid("give a query text or a vector")),
        };
        let keywords = match search.retrieval.unwrap_or(self.retrieval) {
            Retrieval::Hybrid => search.query.as_deref(),
            Retrieval::Dense => None,
        };
        let request = SearchRequest {
            tenant: ctx.tenant(),
            collections: &search.collections,
            vector: &vector,
            keywords,
            top_k: search.top_k,
            score_threshold: search.score_threshold,
            filter: search.filter.as_ref(),
        };
        self.store.search(request).await.map_err(store_error)
    }
}

/// A store error as the action's error: bad vectors and filters are the caller's fault
/// (`invalid_action`); a failing backend is worth retrying (`unavailable`).
pub fn store_error(err: StoreError) -> ActionError {
    match err {
        StoreError::Dimensions { .. } | StoreError::Filter { .. } => {
            ActionError::invalid(err.to_string())
        }
        StoreError::Backend(_) => ActionError::unavailable(err.to_string()),
    }
}

/// A stored chunk as a search hit.
pub fn hit(found: ScoredChunk) -> Hit {
    Hit {
        text: found.chunk.text,
        score: found.score,
        document_id: found.chunk.document_id,
        chunk_index: found.chunk.chunk_index,
        collection: found.chunk.collection,
        metadata: found.chunk.metadata,
    }
}
