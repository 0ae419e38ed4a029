//! # The query contract
//!
//! The payloads of the `query` domain (`query.index`, `query.search`, `query.answer`,
//! `query.delete`) and the name rules they check. Services that index or search (ingestion,
//! execution) depend on this light crate, never on the query service and its vector store.
//! The wire form is `docs/wire.md`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::{ActionError, ActionPayload};

/// One chunk to index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChunkInput {
    /// Its position in the document; with the document it names the chunk.
    pub chunk_index: u32,
    /// Its text, returned by searches and quoted by answers.
    pub text: String,
    /// Its embedding; absent vectors are made by the embedding service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Anything to keep with it (title, heading, page); searches can filter on it.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// `query.index`: store a document's chunks in a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Index {
    /// The tenant's collection.
    pub collection: String,
    /// The document the chunks come from.
    pub document_id: String,
    /// The chunks.
    pub chunks: Vec<ChunkInput>,
    /// `true` (the default): these chunks replace every chunk the document had, so
    /// re-indexing leaves no stale or duplicate chunk. `false`: add or overwrite only these
    /// (for a document sent in several batches after a first one with `true`).
    #[serde(default = "yes")]
    pub replace: bool,
}

fn yes() -> bool {
    true
}

impl ActionPayload for Index {
    const ACTION_TYPE: &'static str = "query.index";
    type Output = Indexed;
}

/// The result of `query.index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Indexed {
    /// The collection.
    pub collection: String,
    /// The document.
    pub document_id: String,
    /// Chunks stored.
    pub indexed: usize,
    /// Of those, chunks whose vectors the embedding service made.
    pub embedded: usize,
    /// Chunks the document had before and no longer has.
    pub removed: u64,
}

fn default_top_k() -> usize {
    5
}

/// `query.search`: the chunks nearest to a query, in the tenant's collections only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Search {
    /// The query text (embedded over `embedding.<tenant>.rpc`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// …or a ready vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Collections to search; empty: all of the tenant's.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Hits at most (1 to 100).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Hits scoring below this (cosine, -1 to 1) are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    /// Exact matches on chunk metadata, e.g. `{"lang": "en"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Map<String, Value>>,
}

impl ActionPayload for Search {
    const ACTION_TYPE: &'static str = "query.search";
    type Output = SearchHits;
}

/// One chunk found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hit {
    /// Its text.
    pub text: String,
    /// Its similarity to the query (cosine; higher is closer).
    pub score: f32,
    /// Its document.
    pub document_id: String,
    /// Its position in the document.
    pub chunk_index: u32,
    /// Its collection.
    pub collection: String,
    /// What was indexed with it.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// The result of `query.search`: best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SearchHits {
    /// The hits.
    pub hits: Vec<Hit>,
}

/// `query.answer`: search, then answer from what was found, citing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Answer {
    /// The question.
    pub query: String,
    /// Collections to search; empty: all of the tenant's.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Passages to answer from (1 to 100).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Passages scoring below this are not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    /// Replaces the default instructions given to a chat model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// A chat model other than the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Exact matches on chunk metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Map<String, Value>>,
}

impl ActionPayload for Answer {
    const ACTION_TYPE: &'static str = "query.answer";
    type Output = Answered;
}

/// A passage an answer rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Citation {
    /// Its number in the answer's `[n]` markers.
    pub number: usize,
    /// Its document.
    pub document_id: String,
    /// Its position in the document.
    pub chunk_index: u32,
    /// Its collection.
    pub collection: String,
    /// Its search score.
    pub score: f32,
}

/// Tokens a model used (zeros for the extractive answerer).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Usage {
    /// Read.
    pub prompt_tokens: u64,
    /// Written.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// The result of `query.answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Answered {
    /// The answer, with `[n]` markers pointing at `citations`.
    pub answer: String,
    /// The passages it cites.
    pub citations: Vec<Citation>,
    /// Tokens used.
    pub usage: Usage,
    /// Who answered: a chat model's name, or `extractive`.
    pub model: String,
}

/// `query.delete`: one document's chunks, or a whole collection, of this tenant only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delete {
    /// The collection.
    pub collection: String,
    /// One document; absent: the whole collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
}

impl ActionPayload for Delete {
    const ACTION_TYPE: &'static str = "query.delete";
    type Output = Deleted;
}

/// The result of `query.delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Deleted {
    /// Chunks removed.
    pub deleted: u64,
}

/// Checks a collection or document name: stored as a payload value, never a subject, but
/// still bounded and printable so it shows up readably everywhere.
pub fn check_name(what: &str, name: &str) -> Result<(), ActionError> {
    let ok = !name.is_empty() && name.len() <= 256 && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ActionError::invalid(format!(
            "{what} {name:?} must be 1 to 256 bytes without control characters"
        )))
    }
}

/// Checks `top_k`.
pub fn check_top_k(top_k: usize) -> Result<(), ActionError> {
    if (1..=100).contains(&top_k) {
        Ok(())
    } else {
        Err(ActionError::invalid(format!(
            "top_k is {top_k}; it must be 1 to 100"
        )))
    }
}
