//! The vector store behind one small trait, so the handlers never know which backend runs.
//!
//! - [`edge`]: Qdrant Edge in process, on disk under the data dir (the default: offline,
//!   one writer, which is why only the query service opens it).
//! - [`qdrant_server`]: a Qdrant server or cluster over gRPC (when `QDRANT_URL` is set).
//!
//! - [`lexical`]: the words of chunks and queries (BM25 sparse vectors), which both
//!   backends store beside the dense vectors for hybrid search.
//!
//! Both keep every tenant's chunks in one collection and tell tenants apart by the payload
//! field `tenant_id` (Qdrant's multitenancy guide: one collection, a tenant payload index),
//! and our own "collections" by the payload field `collection`. Every read and delete takes
//! a [`TenantId`] and filters on it: there is no method that could see another tenant's data.
//! The same conformance tests (`conformance`) run against both backends.

pub mod edge;
pub mod lexical;
pub mod qdrant_server;

#[cfg(test)]
pub(crate) mod conformance;

use async_trait::async_trait;

use serde_json::{Map, Value};
use shared::TenantId;
use uuid::Uuid;

pub use answering::{ScoredChunk, StoredChunk};

/// A chunk with its vector and deterministic id, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPoint {
    /// See [`point_id`].
    pub id: Uuid,
    /// Its embedding.
    pub vector: Vec<f32>,
    /// Its payload.
    pub chunk: StoredChunk,
}

impl ChunkPoint {
    /// A point whose id is derived from where the chunk belongs, so indexing the same chunk
    /// again overwrites it instead of adding a duplicate.
    pub fn new(chunk: StoredChunk, vector: Vec<f32>) -> Self {
        let id = point_id(
            &chunk.tenant_id,
            &chunk.collection,
            &chunk.document_id,
            chunk.chunk_index,
        );
        Self { id, vector, chunk }
    }
}

/// The id of a chunk: a UUID v5 of tenant, collection, document and chunk index. The parts
/// are length-prefixed so no two different tuples can produce the same name.
pub fn point_id(tenant: &str, collection: &str, document_id: &str, chunk_index: u32) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6d0c_8a5e_52b4_4f7e_9b52_1c36_0e3a_7f11);
    let name = format!(
        "{}:{tenant}{}:{collection}{}:{document_id}{chunk_index}",
        tenant.len(),
        collection.len(),
        document_id.len()
    );
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// What to search for: always inside one tenant.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    /// The tenant whose chunks may match; no other tenant's ever do.
    pub tenant: &'a TenantId,
    /// The tenant's collections to search; empty means all of them.
    pub collections: &'a [String],
    /// The query vector.
    pub vector: &'a [f32],
    /// The query's words, for a hybrid search: chunks are then also found by these words
    /// (BM25, [`lexical`]) and the two rankings fused. `None`: by the vector alone.
    pub keywords: Option<&'a str>,
    /// How many hits at most.
    pub top_k: usize,
    /// Chunks less similar than this (cosine) are not found by the vector; chunks found by
    /// their words are kept.
    pub score_threshold: Option<f32>,
    /// Exact matches on chunk metadata: `{"lang": "en"}` keeps chunks whose
    /// `metadata.lang` is `"en"`. Values are strings, numbers or booleans.
    pub filter: Option<&'a Map<String, Value>>,
}

impl SearchRequest<'_> {
    /// The words of [`SearchRequest::keywords`] to match, if any are left once stopwords
    /// are dropped; `None`: the search is by the vector alone.
    pub fn words(&self) -> Option<lexical::Terms> {
        self.keywords
            .map(lexical::query_terms)
            .filter(|terms| !terms.is_empty())
    }
}

/// Which of a tenant's chunks an operation touches.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The tenant; always applied.
    pub tenant: &'a TenantId,
    /// One collection, or all of the tenant's.
    pub collection: Option<&'a str>,
    /// One document (within `collection`, if given), or all.
    pub document_id: Option<&'a str>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A vector's length differs from the store's.
    #[error("vector has {got} dimensions; the store holds {expected}-dimension vectors")]
    Dimensions {
        /// The store's.
        expected: usize,
        /// The vector's.
        got: usize,
    },
    /// A filter value that is not a string, number or boolean.
    #[error("filter on {key:?}: only strings, integers and booleans can be matched exactly")]
    Filter {
        /// The metadata key.
        key: String,
    },
    /// The backend failed (disk, network, server); worth retrying.
    #[error("vector store: {0}")]
    Backend(String),
}

/// A vector store holding every tenant's chunks.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// The length of every vector it holds.
    fn dimensions(&self) -> usize;

    /// Inserts or overwrites points (same id: overwritten).
    async fn upsert(&self, points: Vec<ChunkPoint>) -> Result<(), StoreError>;

    /// The best matches inside the request's tenant, best first: by the vector, or with
    /// [`SearchRequest::keywords`] by the vector and the words, fused by reciprocal rank.
    async fn search(&self, request: SearchRequest<'_>) -> Result<Vec<ScoredChunk>, StoreError>;

    /// Deletes every chunk in `scope`; returns how many there were.
    async fn delete(&self, scope: Scope<'_>) -> Result<u64, StoreError>;

    /// How many chunks are in `scope`.
    async fn count(&self, scope: Scope<'_>) -> Result<u64, StoreError>;
}

/// Checks every point's vector length before anything is written.
pub fn check_dimensions(expected: usize, points: &[ChunkPoint]) -> Result<(), StoreError> {
    match points.iter().find(|p| p.vector.len() != expected) {
        Some(bad) => Err(StoreError::Dimensions {
            expected,
            got: bad.vector.len(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_stable_and_distinct() {
        let a = point_id("acme", "docs", "d1", 0);
        assert_eq!(a, point_id("acme", "docs", "d1", 0));
        assert_ne!(a, point_id("acme", "docs", "d1", 1));
        assert_ne!(a, point_id("other", "docs", "d1", 0));
        // Moving a separator between parts never collides.
        assert_ne!(point_id("ab", "c", "d", 0), point_id("a", "bc", "d", 0));
    }
}
