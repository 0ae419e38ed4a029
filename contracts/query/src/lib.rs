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

/// How a search finds chunks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Retrieval {
    /// By meaning and by words: the nearest vectors and the best keyword (BM25) matches of
    /// the query text, fused by reciprocal rank. Finds the chunk that names an identifier,
    /// an option or an error code the embedding model blurs. The default.
    #[default]
    Hybrid,
    /// By meaning only: the nearest vectors (cosine).
    Dense,
}

impl std::str::FromStr for Retrieval {
    type Err = String;

    /// The wire names: `hybrid` or `dense` (as `DA_RETRIEVAL` takes them).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(name.to_owned()))
            .map_err(|_| format!("{name:?} is not a retrieval (hybrid or dense)"))
    }
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
    /// Chunks less similar than this (cosine, -1 to 1) are not found by meaning; in a
    /// hybrid search, chunks found by their words are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    /// Exact matches on chunk metadata, e.g. `{"lang": "en"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Map<String, Value>>,
    /// How to search; absent: the service's setting (`DA_RETRIEVAL`, hybrid by default).
    /// Hybrid needs the query text: a search by vector alone is dense.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
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
    /// How well it matches, higher is better: the cosine similarity (-1 to 1) in a dense
    /// search; in a hybrid one, the reciprocal-rank-fusion score (the sum over the two
    /// rankings of 1 / (60 + rank), the first rank 0), comparable only within one search.
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
    /// How to find the passages, as `query.search`'s `retrieval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
}

impl ActionPayload for Answer {
    const ACTION_TYPE: &'static str = "query.answer";
    type Output = Answered;
}

/// A passage an answer rests on, with what a reader needs to find it and check it: where it
/// is (title, file, heading, page) and the passage itself.
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
    /// Its document's title (given, found in the document, or its file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The file its document was uploaded as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// The heading of the section it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    /// The page it is on (PDF), from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// The passage as it was indexed.
    #[serde(default)]
    pub passage: String,
}

/// A passage as [`Citation::of`] reads it: borrowed from a search [`Hit`] or a stored chunk.
#[derive(Debug, Clone, Copy)]
pub struct CitedPassage<'a> {
    /// Its document.
    pub document_id: &'a str,
    /// Its position in the document.
    pub chunk_index: u32,
    /// Its collection.
    pub collection: &'a str,
    /// Its search score.
    pub score: f32,
    /// Its text.
    pub text: &'a str,
    /// What was indexed with it (`title`, `file_name`, `heading`, `page` are read).
    pub metadata: &'a Map<String, Value>,
}

impl<'a> From<&'a Hit> for CitedPassage<'a> {
    fn from(hit: &'a Hit) -> Self {
        Self {
            document_id: &hit.document_id,
            chunk_index: hit.chunk_index,
            collection: &hit.collection,
            score: hit.score,
            text: &hit.text,
            metadata: &hit.metadata,
        }
    }
}

impl CitedPassage<'_> {
    /// Where the passage is, as a reader would name it: `Title › Heading, page 3` with what
    /// is known, else the document id and part. What a model's prompt shows beside each
    /// numbered passage.
    pub fn source(&self) -> String {
        let text = |key: &str| {
            self.metadata_text(key)
                .map(str::trim)
                .filter(|text| !text.is_empty())
        };
        let mut source = match (text("title").or(text("file_name")), text("heading")) {
            (Some(title), Some(heading)) => format!("{title} › {heading}"),
            (Some(title), None) => title.to_owned(),
            (None, Some(heading)) => format!("{}, {heading}", self.document_id),
            (None, None) => format!("{}, part {}", self.document_id, self.chunk_index),
        };
        if let Some(page) = self.page() {
            source.push_str(&format!(", page {page}"));
        }
        source
    }

    /// The text ingestion indexed under `key` (`title`, `file_name`, `heading`), if any.
    fn metadata_text(&self, key: &str) -> Option<&'_ str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    /// The page ingestion indexed (PDF), if any.
    fn page(&self) -> Option<u64> {
        self.metadata.get("page").and_then(Value::as_u64)
    }
}

impl Citation {
    /// The citation numbered `number` of `passage`, with its title, file name, heading and
    /// page read from the metadata ingestion indexes with every chunk.
    pub fn of(number: usize, passage: CitedPassage<'_>) -> Self {
        let text = |key: &str| passage.metadata_text(key).map(str::to_owned);
        Self {
            number,
            document_id: passage.document_id.to_owned(),
            chunk_index: passage.chunk_index,
            collection: passage.collection.to_owned(),
            score: passage.score,
            title: text("title"),
            file_name: text("file_name"),
            heading: text("heading"),
            page: passage.page(),
            passage: passage.text.to_owned(),
        }
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hit(metadata: Value) -> Hit {
        Hit {
            text: "Comments begin with --.".into(),
            score: 0.75,
            document_id: "doc-1".into(),
            chunk_index: 4,
            collection: "manuals".into(),
            metadata: metadata.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_citation_says_where_its_passage_is_and_quotes_it() {
        let hit = hit(json!({"title": "libtasn1", "file_name": "libtasn1.pdf",
                             "heading": "ASN.1 syntax", "page": 7, "lang": "en"}));
        let citation = Citation::of(2, (&hit).into());
        assert_eq!(
            serde_json::to_value(&citation).unwrap(),
            json!({"number": 2, "document_id": "doc-1", "chunk_index": 4,
                   "collection": "manuals", "score": 0.75, "title": "libtasn1",
                   "file_name": "libtasn1.pdf", "heading": "ASN.1 syntax", "page": 7,
                   "passage": "Comments begin with --."})
        );
        assert_eq!(
            CitedPassage::from(&hit).source(),
            "libtasn1 › ASN.1 syntax, page 7"
        );
    }

    #[test]
    fn without_metadata_a_passage_is_named_by_document_and_part() {
        let bare = hit(json!({}));
        assert_eq!(CitedPassage::from(&bare).source(), "doc-1, part 4");
        let citation = Citation::of(1, (&bare).into());
        assert_eq!((citation.title, citation.page), (None, None));
        // Citations written before these fields existed still read.
        let old: Citation = serde_json::from_value(json!({"number": 1, "document_id": "d",
            "chunk_index": 0, "collection": "c", "score": 0.1}))
        .unwrap();
        assert!(old.passage.is_empty());
        let named = hit(json!({"file_name": "notes.md", "heading": " "}));
        assert_eq!(CitedPassage::from(&named).source(), "notes.md");
    }
}
