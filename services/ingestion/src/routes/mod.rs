//! The HTTP API: documents, collections and tasks. [`router`] is what the gateway mounts; every route
//! authenticates with an API key whose tenant is the only tenant it acts for.
//!
//! | route | does |
//! |---|---|
//! | `POST /v1/documents` | JSON `{collection, text \| url, title?, metadata?}` or a multipart upload (one or many `file` parts plus a `collection` field): 202 `{task_id, document_id}` (a list for several files) |
//! | `GET /v1/documents?collection=` | the tenant's documents with status, chunk count, size |
//! | `GET /v1/documents/{id}` | one document |
//! | `DELETE /v1/documents/{id}` | its original, its chunks, its state |
//! | `GET /v1/collections` | `{collections: [{collection, chunk_tokens, chunk_overlap, documents}]}`: every collection with settings or documents |
//! | `PUT /v1/collections/{name}` | `{chunk_tokens, chunk_overlap}`: 200 the stored `{collection, chunk_tokens, chunk_overlap}`, 400 if invalid |
//! | `GET /v1/tasks/{task_id}` | status, percentage, counts, error |
//! | `GET /v1/tasks/{task_id}/events` | the same, live, as server-sent events until it ends |
//!
//! Errors are JSON `{error: {code, message}}`: 400 bad fields, 401, 404, 413 too large,
//! 415 unsupported type, 422 unreadable document, 429 too many uploads or event streams of
//! the tenant at once (with `Retry-After`), 503 NATS unreachable, 507 the documents store
//! is full (`insufficient_storage`, with `Retry-After`) or the upload would take the
//! tenant past its stored bytes (`quota_exceeded`, without: deleting documents frees room).

pub mod collections;
pub mod documents;
pub mod tasks;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, put};
use platform::http::{ApiKeys, TenantSlots};
use shared::publish::Publisher;

use crate::IngestionService;

/// What the routes share.
#[derive(Clone)]
pub struct Api {
    /// The pipeline's state.
    pub service: IngestionService,
    /// Enqueues `ingestion.ingest_document` and requests `query.delete`.
    pub publisher: Publisher,
    /// Verifies API keys.
    pub keys: ApiKeys,
    /// Uploads in progress per tenant (`Limits::uploads_per_tenant`).
    pub uploads: TenantSlots,
    /// Live task streams open per tenant (`Limits::event_streams_per_tenant`).
    pub event_streams: TenantSlots,
}

impl Api {
    /// The routes' state, with the per-tenant caps of `service`'s limits.
    pub fn new(service: IngestionService, publisher: Publisher, keys: ApiKeys) -> Self {
        let limits = service.limits;
        Self {
            service,
            publisher,
            keys,
            uploads: TenantSlots::new("uploads", limits.uploads_per_tenant),
            event_streams: TenantSlots::new("task event streams", limits.event_streams_per_tenant),
        }
    }
}

impl FromRef<Api> for ApiKeys {
    fn from_ref(api: &Api) -> Self {
        api.keys.clone()
    }
}

/// The documents, collections and tasks routes, with the upload size limit applied.
pub fn router(api: Api) -> Router {
    // Multipart framing adds a little to the file itself.
    let limit = api.service.limits.max_bytes + 64 * 1024;
    Router::new()
        .route(
            "/v1/documents",
            get(documents::list).post(documents::create),
        )
        .route(
            "/v1/documents/{document_id}",
            get(documents::get).delete(documents::delete),
        )
        .route("/v1/collections", get(collections::list))
        .route("/v1/collections/{collection}", put(collections::put))
        .route("/v1/tasks/{task_id}", get(tasks::get))
        .route("/v1/tasks/{task_id}/events", get(tasks::events))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(api)
}

/// How long an HTTP delete waits for the vector store.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
