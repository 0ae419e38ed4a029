//! Turning retrieved passages into an answer with citations.
//!
//! - [`extractive`]: quotes the passage sentences that best match the question
//!   (deterministic, offline: the default, and what tests use).
//! - [`chat`]: any OpenAI-compatible chat API (Groq as in the seed, OpenAI, Ollama, vLLM).

pub mod chat;
pub mod extractive;

use async_trait::async_trait;
use shared::ActionError;

use crate::actions::{Answered, Citation};
use crate::store::ScoredChunk;

/// What an answerer is asked.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The question.
    pub query: &'a str,
    /// The retrieved passages, best first; `[n]` in an answer cites `passages[n - 1]`.
    pub passages: &'a [ScoredChunk],
    /// Instructions replacing the default (chat models only).
    pub system_prompt: Option<&'a str>,
    /// Another model (chat models only).
    pub model: Option<&'a str>,
}

/// Answers a question from passages.
#[async_trait]
pub trait Answerer: Send + Sync {
    /// The answer, citing the passages it used.
    async fn answer(&self, question: Question<'_>) -> Result<Answered, ActionError>;
}

/// The citation of passage number `number` (1-based).
pub fn citation(number: usize, passage: &ScoredChunk) -> Citation {
    Citation {
        number,
        document_id: passage.chunk.document_id.clone(),
        chunk_index: passage.chunk.chunk_index,
        collection: passage.chunk.collection.clone(),
        score: passage.score,
    }
}
