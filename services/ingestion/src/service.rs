//! [`IngestionService`]: what the ingestion handlers and HTTP routes share.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use shared::quota::{QuotaDefaults, Quotas};

use crate::bucket::StateError;
use crate::chunker::Chunker;
use crate::collections::Collections;
use crate::documents::Documents;
use crate::extract::url::Allowlist;
use crate::task::Tasks;

/// Sizes and limits of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest original accepted (upload, URL or inline text), in bytes.
    pub max_bytes: usize,
    /// How long a URL fetch may take.
    pub fetch_timeout: Duration,
    /// Chunks per `embedding.generate` batch (progress moves per batch).
    pub batch_size: usize,
    /// Tokens per chunk, unless the request or the collection's settings say otherwise.
    pub chunk_tokens: usize,
    /// Tokens shared by neighbouring chunks, unless the request or the collection's
    /// settings say otherwise.
    pub chunk_overlap: usize,
    /// How long a `query.*` request may take.
    pub query_timeout: Duration,
    /// Uploads (`POST /v1/documents`) one tenant may have in progress at once on one
    /// gateway; `0`: no cap.
    pub uploads_per_tenant: usize,
    /// Live task streams (`GET /v1/tasks/{id}/events`) one tenant may hold open at once on
    /// one gateway (each holds a KV watch); `0`: no cap.
    pub event_streams_per_tenant: usize,
    /// The most the `documents` object store may hold, in bytes: past it uploads are
    /// refused (507) rather than older originals evicted.
    pub store_max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            fetch_timeout: Duration::from_secs(30),
            batch_size: 32,
            // all-MiniLM-L6-v2 reads 256 tokens; longer chunks would be cut in half unseen.
            chunk_tokens: 256,
            chunk_overlap: 32,
            query_timeout: Duration::from_secs(30),
            uploads_per_tenant: 4,
            event_streams_per_tenant: 16,
            // The same bound as every stream of work (1 GiB): reserved on the server when
            // the store is created, so it must fit a developer's disk too.
            store_max_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Task state, documents, collection settings, the chunker and the limits.
#[derive(Clone)]
pub struct IngestionService {
    /// The `tasks` bucket.
    pub tasks: Tasks,
    /// Originals, records, content index.
    pub documents: Documents,
    /// Per-collection chunking settings.
    pub collections: Collections,
    /// Cuts text into chunks.
    pub chunker: Chunker,
    /// Sizes and limits.
    pub limits: Limits,
    /// The non-public hosts and ranges URL ingestion may reach (`DA_INGEST_URL_ALLOW`);
    /// empty from [`IngestionService::open`]: public addresses only.
    pub url_allow: Arc<Allowlist>,
    /// Tenants' limits: each tenant's stored bytes are counted (and held to its
    /// `stored_bytes`) here, in the `tenants` bucket every instance shares.
    pub quotas: Quotas,
}

impl IngestionService {
    /// Opens the buckets and the object store (creating them with `replicas` copies if
    /// needed: `Settings::stream_replicas`); `quota` holds tenants without a record of
    /// their own.
    pub async fn open(
        js: &jetstream::Context,
        chunker: Chunker,
        limits: Limits,
        replicas: usize,
        quota: QuotaDefaults,
    ) -> Result<Self, StateError> {
        Ok(Self {
            tasks: Tasks::open(js, replicas).await?,
            documents: Documents::open(js, replicas, limits.store_max_bytes).await?,
            collections: Collections::open(js, replicas).await?,
            chunker,
            limits,
            url_allow: Arc::default(),
            quotas: Quotas::with_jetstream(js.clone(), quota, replicas),
        })
    }
}
