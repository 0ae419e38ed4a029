//! # query: the vector store's only owner
//!
//! The query service: index chunks, search them, answer from
//! them with citations, delete them. Only this service opens the vector store (the
//! embedded one allows one writer), so ingestion indexes by sending `query.index`.
//! Every read and delete is confined to the tenant of the action's subject.
//!
//! - [`actions`]: the payload and result types: the `query-contract` crate, which other
//!   services depend on instead of this one.
//! - [`service`]: [`QueryService`], what the handlers share: store, answerer, embedding.
//! - [`store`]: the [`store::VectorStore`] trait; Qdrant Edge (default) and Qdrant server.
//! - [`answerer`]: extractive answers (offline default), an OpenAI-compatible chat API, or a
//!   small local model (`DA_ANSWERER=local`): the `answering` crate, shared with the
//!   execution service.
//! - [`config`]: which store and answerer run, from [`shared::Settings`].
//! - [`handlers`]: one file per handler.
//!
//! | action type | data | result |
//! |---|---|---|
//! | `query.index` | `{collection, document_id, chunks: [{chunk_index, text, vector?, metadata}], replace?}` | `{indexed, embedded, removed}` |
//! | `query.search` | `{query \| vector, collections, top_k, score_threshold?, filter?}` | `{hits: [{text, score, document_id, chunk_index, collection, metadata}]}` |
//! | `query.answer` | `{query, collections, top_k, system_prompt?, model?}` | `{answer, citations, usage, model}` |
//! | `query.delete` | `{collection, document_id?}` | `{deleted}` |
//! | `embedding.generate.result` (callback) | a result whose metadata has `index` | chunks indexed |

pub use answering as answerer;
pub use query_contract as actions;
pub mod config;
pub mod handlers;
pub mod service;
pub mod store;

pub use config::QueryConfig;
pub use service::QueryService;
use shared::Dispatcher;

/// The query domain's dispatcher over `service`.
pub fn dispatcher(service: QueryService) -> Dispatcher {
    routes().with_state(service)
}

/// Every handler of the domain, still waiting for the state they run on: its
/// [`Dispatcher::catalog`] is what `domain-actions schema` describes, built without opening
/// a model, a store or a NATS connection.
pub fn routes() -> Dispatcher<QueryService> {
    Dispatcher::new("query")
        .on::<actions::Index, _>(handlers::index)
        .on::<actions::Search, _>(handlers::search)
        .on::<actions::Answer, _>(handlers::answer)
        .on::<actions::Delete, _>(handlers::delete)
        .on_result::<embedding_contract::Generate, _>(handlers::embedded)
}
