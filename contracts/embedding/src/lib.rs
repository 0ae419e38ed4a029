//! # The embedding contract
//!
//! The payloads of the `embedding` domain: what a client sends (`embedding.generate`) and
//! gets back. Services that ask for embeddings (query, ingestion) depend on this light
//! crate, never on the embedding service itself, so they do not build its model runtime and
//! editing its handlers rebuilds nothing of theirs. The wire form is `docs/wire.md`.
//!
//! - [`model`]: where the default model's files are, and its tokenizer (feature
//!   `tokenizer`), for services that measure text in its tokens.

pub mod model;

use serde::{Deserialize, Serialize};
use shared::ActionPayload;

/// What the texts are for. Symmetric models (all-MiniLM-L6-v2, OpenAI's) embed both kinds
/// the same way; the field exists so asymmetric models (e5, bge) can add their prefixes
/// without changing the contract.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingKind {
    /// Passages to be stored and searched.
    #[default]
    Document,
    /// A search query.
    Query,
}

/// `embedding.generate`: embed a batch of texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Generate {
    /// The texts, in order; results come back in the same order.
    pub texts: Vec<String>,
    /// Documents or a query.
    #[serde(default)]
    pub kind: EmbeddingKind,
    /// A model name; the configured one when absent. The local service runs exactly one
    /// model and refuses others; an API service passes the name on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl ActionPayload for Generate {
    const ACTION_TYPE: &'static str = "embedding.generate";
    type Output = Generated;
}

/// Why one text got no vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TextFailure {
    /// Its index in `texts`.
    pub index: usize,
    /// Why, for people.
    pub reason: String,
}

/// The result of `embedding.generate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Generated {
    /// One entry per text, in order: its unit-length vector, or `null` if it failed.
    pub vectors: Vec<Option<Vec<f32>>>,
    /// The model that made them.
    pub model: String,
    /// The length of every vector.
    pub dimensions: usize,
    /// Tokens the model read (after truncation), for usage accounting.
    pub total_tokens: u64,
    /// Indices of the texts that got no vector (as the Python system this replaces named it).
    pub failed_indices: Vec<usize>,
    /// Why each of those failed.
    #[serde(default)]
    pub failures: Vec<TextFailure>,
    /// Indices of texts longer than the model's window, embedded from their beginning
    /// only (as sentence-transformers does); split such texts to embed all of them.
    #[serde(default)]
    pub truncated_indices: Vec<usize>,
}
