//! Turning retrieved passages into an answer with citations.
//!
//! - [`extractive`]: quotes the passage sentences that best match the question
//!   (deterministic, offline: the default, and what tests use).
//! - [`chat`]: any OpenAI-compatible chat API (Groq, OpenAI, Ollama, vLLM).

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

/// The distinct `[n]` (or `[n, m]`) markers in `answer` with 1 ≤ n ≤ `passages`, in order of
/// appearance: the passages a model's answer actually cites.
pub fn cited_numbers(answer: &str, passages: usize) -> Vec<usize> {
    let mut numbers = Vec::new();
    for part in answer.split('[').skip(1) {
        let Some((inside, _)) = part.split_once(']') else {
            continue;
        };
        for n in inside
            .split(',')
            .filter_map(|n| n.trim().parse::<usize>().ok())
        {
            if (1..=passages).contains(&n) && !numbers.contains(&n) {
                numbers.push(n);
            }
        }
    }
    numbers
}
