//! # embedding: texts to vectors
//!
//! The Python system's `embedding_service`, rebuilt on the framework. One action, `embedding.generate`, turns
//! a batch of texts into vectors; a text that cannot be embedded (empty, too long) fails
//! alone and is reported by index, never the whole batch.
//!
//! - [`actions`]: the payload and result types: the `embedding-contract` crate, which other
//!   services depend on instead of this one.
//! - [`embedder`]: the [`Embedder`] trait both models implement, and the batching and
//!   per-text failure rules every model shares.
//! - [`minilm`]: all-MiniLM-L6-v2 in process (the offline default), on ONNX Runtime or candle.
//! - [`openai`]: any OpenAI-compatible `/v1/embeddings` API (OpenAI, Ollama, TEI, vLLM).
//! - [`config`]: which model runs, from [`shared::Settings`].
//! - [`handlers`]: one file per handler.
//!
//! | action type | data | result |
//! |---|---|---|
//! | `embedding.generate` | `{texts, kind: document\|query, model?}` | `{vectors, model, dimensions, total_tokens, failed_indices, failures, truncated_indices}` |

pub use embedding_contract as actions;
pub mod config;
pub mod embedder;
pub mod handlers;
pub mod minilm;
pub mod openai;

pub use config::EmbeddingConfig;
pub use embedder::Embedder;
use shared::Dispatcher;

/// The embedding domain's dispatcher, running `service`'s model. A local model takes two
/// actions at a time, so several `worker embedding` processes share a backlog.
pub fn dispatcher(service: embedder::EmbeddingService) -> Dispatcher {
    let capacity = service.capacity();
    let dispatcher = routes().with_state(service);
    match capacity {
        Some(actions) => dispatcher.with_capacity(actions),
        None => dispatcher,
    }
}

/// Every handler of the domain, still waiting for the state they run on: its
/// [`Dispatcher::catalog`] is what `domain-actions schema` describes, built without opening
/// a model, a store or a NATS connection.
pub fn routes() -> Dispatcher<embedder::EmbeddingService> {
    Dispatcher::new("embedding").on::<actions::Generate, _>(handlers::generate)
}
