//! Cutting extracted text into chunks by tokens of the embedder's own tokenizer (so a chunk
//! of N tokens is N tokens to the model), with `text-splitter`, which prefers to cut at
//! paragraph, then sentence, then word boundaries. Each chunk keeps the heading and page
//! of the section it came from in its metadata.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use text_splitter::{ChunkConfig, ChunkSizer, TextSplitter};
use tokenizers::Tokenizer;

use crate::extract::Extracted;
use crate::extract::limits::{MAX_HEADING_BYTES, MAX_TITLE_BYTES, truncate};

/// Why text could not be chunked.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Size and overlap do not fit together.
    #[error("chunk_tokens {tokens} with chunk_overlap {overlap}: {reason}")]
    Config {
        /// Tokens per chunk.
        tokens: usize,
        /// Overlap.
        overlap: usize,
        /// Why.
        reason: String,
    },
}

/// A chunk before it is embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkDraft {
    /// Its text.
    pub text: String,
    /// `heading`, `page` (where known) and `title`.
    pub metadata: Map<String, Value>,
}

/// Counts a text's tokens the way the embedder will.
struct TokenCount<'a>(&'a Tokenizer);

impl ChunkSizer for TokenCount<'_> {
    fn size(&self, chunk: &str) -> usize {
        // A text the tokenizer cannot read is sized by a rough 4 bytes per token.
        self.0
            .encode_fast(chunk, false)
            .map(|encoding| encoding.len())
            .unwrap_or(chunk.len() / 4)
    }
}

/// Cuts documents into token-sized chunks.
#[derive(Clone)]
pub struct Chunker {
    tokenizer: Arc<Tokenizer>,
}

impl Chunker {
    /// Uses the tokenizer of the model in `model_dir` (all-MiniLM-L6-v2 by default).
    pub fn load(model_dir: &Path) -> Result<Self, embedding_contract::model::ModelError> {
        Ok(Self {
            tokenizer: Arc::new(embedding_contract::model::load_tokenizer(model_dir)?),
        })
    }

    /// The chunks of `document`, in reading order; `tokens` per chunk at most, `overlap`
    /// tokens shared by neighbours. The title and headings copied into every chunk's
    /// metadata are cut to [`MAX_TITLE_BYTES`] and [`MAX_HEADING_BYTES`] first, whatever
    /// their source, so one long title is not repeated in thousands of chunks.
    pub fn chunk(
        &self,
        document: &Extracted,
        title: Option<&str>,
        tokens: usize,
        overlap: usize,
    ) -> Result<Vec<ChunkDraft>, ChunkError> {
        let config = ChunkConfig::new(tokens)
            .with_overlap(overlap)
            .map_err(|err| ChunkError::Config {
                tokens,
                overlap,
                reason: err.to_string(),
            })?
            .with_sizer(TokenCount(&self.tokenizer));
        let splitter = TextSplitter::new(config);
        let title = title.map(|title| truncate(title, MAX_TITLE_BYTES));
        let mut chunks = Vec::new();
        for section in &document.sections {
            let heading = section
                .heading
                .as_deref()
                .map(|heading| truncate(heading, MAX_HEADING_BYTES));
            for text in splitter.chunks(&section.text) {
                let mut metadata = Map::new();
                if let Some(title) = &title {
                    metadata.insert("title".into(), title.clone().into());
                }
                if let Some(heading) = &heading {
                    metadata.insert("heading".into(), heading.clone().into());
                }
                if let Some(page) = section.page {
                    metadata.insert("page".into(), page.into());
                }
                chunks.push(ChunkDraft {
                    text: text.to_owned(),
                    metadata,
                });
            }
        }
        Ok(chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Section;

    fn chunker() -> Chunker {
        Chunker::load(&embedding_contract::model::model_dir(None).unwrap()).unwrap()
    }

    #[test]
    fn chunks_fit_the_token_budget_and_keep_their_section() {
        let chunker = chunker();
        let long = "Cats sleep most of the day. ".repeat(100);
        let document = Extracted {
            title: Some("Cats".into()),
            sections: vec![
                Section {
                    text: long,
                    heading: Some("Sleep".into()),
                    page: Some(2),
                },
                Section {
                    text: "Short section.".into(),
                    heading: None,
                    page: None,
                },
            ],
        };
        let chunks = chunker.chunk(&document, Some("Cats"), 64, 8).unwrap();
        assert!(chunks.len() > 5, "{}", chunks.len());
        for chunk in &chunks[..chunks.len() - 1] {
            let size = TokenCount(&chunker.tokenizer).size(&chunk.text);
            assert!(size <= 64, "{size} tokens");
            assert_eq!(chunk.metadata["heading"], "Sleep");
            assert_eq!(chunk.metadata["page"], 2);
        }
        let last = chunks.last().unwrap();
        assert_eq!(last.text, "Short section.");
        assert_eq!(last.metadata["title"], "Cats");
        assert!(last.metadata.get("heading").is_none());
    }

    #[test]
    fn long_titles_and_headings_are_cut_before_they_are_copied() {
        let document = Extracted {
            title: None,
            sections: vec![Section {
                text: "Some words to index. ".repeat(200),
                heading: Some("h".repeat(10 * 1024 * 1024)),
                page: None,
            }],
        };
        let title = "t".repeat(900 * 1024);
        let chunks = chunker().chunk(&document, Some(&title), 32, 0).unwrap();
        assert!(chunks.len() > 10, "{}", chunks.len());
        for chunk in &chunks {
            let title = chunk.metadata["title"].as_str().unwrap_or_default();
            let heading = chunk.metadata["heading"].as_str().unwrap_or_default();
            assert!(title.len() <= MAX_TITLE_BYTES && title.starts_with("ttt"));
            assert!(heading.len() <= MAX_HEADING_BYTES && heading.starts_with("hhh"));
        }
    }

    #[test]
    fn overlap_must_be_smaller_than_the_chunk() {
        let err = chunker()
            .chunk(
                &Extracted {
                    title: None,
                    sections: vec![],
                },
                None,
                10,
                10,
            )
            .unwrap_err();
        assert!(err.to_string().contains("chunk_overlap 10"));
    }
}
