//! Payloads of the ingestion domain.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::ActionPayload;

use crate::collections::CollectionRecord;
use crate::task::TaskState;

/// `ingestion.ingest_document`: extract, chunk, embed and index one document.
///
/// The content is exactly one of `text` (inline), `url` (fetched with a size limit and a
/// timeout) or `stored: true` (the original is already in the object store `documents` as
/// `<tenant>/<document_id>`: how HTTP uploads arrive, since large files never travel inline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IngestDocument {
    /// The tenant's collection to index into.
    pub collection: String,
    /// The document's id; the action id when absent (so a redelivery is the same document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    /// The task tracking it; the action id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Inline text (plain or markdown, see `file_name`/`content_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A URL to fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The original is in the object store already.
    #[serde(default)]
    pub stored: bool,
    /// The original file name (helps detect the format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// The original content type (helps detect the format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// A title; else the document's own (HTML title, first heading) or the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Kept with every chunk; searches can filter on it. At most 64 KiB of JSON.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Tokens per chunk, 16 to 8192 (default: the collection's setting, else
    /// `DA_CHUNK_TOKENS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_tokens: Option<usize>,
    /// Tokens shared by neighbouring chunks, fewer than the chunk's (default: the
    /// collection's setting, else `DA_CHUNK_OVERLAP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_overlap: Option<usize>,
}

/// The largest `metadata` a request may carry, as compact JSON: it is copied into every
/// chunk's payload, so a megabyte of it would be stored thousands of times.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

impl IngestDocument {
    /// Checks the request's own knobs before anything is stored or enqueued: chunk sizes by
    /// the same rule as collection settings
    /// ([`crate::collections::validate_request_chunking`]) and the size of `metadata`. The
    /// error is `invalid_action` (HTTP 400).
    pub fn validate(&self) -> Result<(), shared::ActionError> {
        crate::collections::validate_request_chunking(self.chunk_tokens, self.chunk_overlap)?;
        check_metadata(&self.metadata)
    }
}

/// Refuses `metadata` past [`MAX_METADATA_BYTES`] of compact JSON.
pub fn check_metadata(metadata: &Map<String, Value>) -> Result<(), shared::ActionError> {
    let size = serde_json::to_vec(metadata).map_or(0, |json| json.len());
    if size > MAX_METADATA_BYTES {
        return Err(shared::ActionError::invalid(format!(
            "metadata is {size} bytes of JSON; the limit is {MAX_METADATA_BYTES} (it is copied into every chunk)"
        )));
    }
    Ok(())
}

impl ActionPayload for IngestDocument {
    const ACTION_TYPE: &'static str = "ingestion.ingest_document";
    type Output = TaskState;
}

/// `ingestion.get_status`: where a task is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetStatus {
    /// The task.
    pub task_id: String,
}

impl ActionPayload for GetStatus {
    const ACTION_TYPE: &'static str = "ingestion.get_status";
    type Output = TaskState;
}

/// `ingestion.delete_document`: the original, its chunks and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeleteDocument {
    /// The document.
    pub document_id: String,
}

impl ActionPayload for DeleteDocument {
    const ACTION_TYPE: &'static str = "ingestion.delete_document";
    type Output = DocumentDeleted;
}

/// The result of `ingestion.delete_document`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentDeleted {
    /// The document.
    pub document_id: String,
    /// Chunks removed from the vector store.
    pub chunks_deleted: u64,
}

/// `ingestion.collection_put`: how a collection's documents are chunked from now on
/// (documents already indexed keep their chunks until ingested again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CollectionPut {
    /// The tenant's collection (free text, as in `ingest_document`).
    pub collection: String,
    /// Tokens per chunk (16 to 8192).
    pub chunk_tokens: usize,
    /// Tokens shared by neighbouring chunks (fewer than `chunk_tokens`).
    pub chunk_overlap: usize,
}

impl ActionPayload for CollectionPut {
    const ACTION_TYPE: &'static str = "ingestion.collection_put";
    type Output = CollectionRecord;
}
