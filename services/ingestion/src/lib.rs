//! # ingestion: documents in, searchable chunks out
//!
//! The Python system's `ingestion_service`, rebuilt on the framework. A document arrives (HTTP upload, JSON
//! text or URL, or an `ingestion.ingest_document` action from any NATS client), its original
//! goes to the JetStream object store, its text is extracted and cut into chunks by the
//! embedder's tokens, the chunks are embedded in batches on the durable path (results come
//! back on `ingestion.<tenant>.callbacks`) and indexed through `query.index`. Task state
//! lives in KV, so progress is visible live from any instance and a crash resumes.
//!
//! - [`actions`]: the payload types.
//! - [`extract`]: text from txt, markdown, html, pdf, docx and URLs.
//! - [`chunker`]: chunks of N tokens of the embedder's tokenizer.
//! - [`task`]: task status and progress in the KV bucket `tasks`.
//! - [`documents`]: originals (object store), records and the content index (KV).
//! - [`original`]: an original streamed into the object store, stored whole or not at all.
//! - [`collections`]: chunking settings per collection in the KV bucket `collections`.
//! - [`bucket`]: JSON values in a KV bucket with compare-and-set updates.
//! - [`service`]: [`IngestionService`], what handlers and routes share, and its limits.
//! - [`submit`]: handing a document to the pipeline (HTTP routes and the CLI).
//! - [`config`]: limits and the tokenizer from [`shared::Settings`].
//! - [`handlers`]: one file per handler.
//! - [`routes`]: the HTTP API ([`routes::router`], mounted by the gateway).
//!
//! | action type | data | result |
//! |---|---|---|
//! | `ingestion.ingest_document` | `{collection, text \| url \| stored, document_id?, title?, metadata?, chunk_tokens?, chunk_overlap?}` | the task: chunked, batches enqueued (chunk sizes: the request's, else the collection's, else the defaults) |
//! | `ingestion.get_status` | `{task_id}` | the task |
//! | `ingestion.delete_document` | `{document_id}` | `{document_id, chunks_deleted}` |
//! | `ingestion.collection_put` | `{collection, chunk_tokens, chunk_overlap}` | the stored `{collection, chunk_tokens, chunk_overlap}` |
//! | `embedding.generate.result` (callback) | one embedded batch | indexed, task advanced |

pub mod actions;
pub mod bucket;
pub mod chunker;
pub mod collections;
pub mod config;
pub mod documents;
pub mod extract;
pub mod handlers;
pub mod original;
pub mod routes;
pub mod service;
pub mod submit;
pub mod task;

pub use config::IngestionConfig;
pub use service::IngestionService;
use shared::Dispatcher;

/// The ingestion domain's dispatcher over `service`.
pub fn dispatcher(service: IngestionService) -> Dispatcher {
    routes().with_state(service)
}

/// Every handler of the domain, still waiting for the state they run on: its
/// [`Dispatcher::catalog`] is what `domain-actions schema` describes, built without opening
/// a model, a store or a NATS connection.
pub fn routes() -> Dispatcher<IngestionService> {
    Dispatcher::new("ingestion")
        .on::<actions::IngestDocument, _>(handlers::ingest_document)
        .on::<actions::GetStatus, _>(handlers::get_status)
        .on::<actions::DeleteDocument, _>(handlers::delete_document)
        .on::<actions::CollectionPut, _>(handlers::collection_put)
        .on_result::<embedding_contract::Generate, _>(handlers::embedded)
}
