//! # Answering
//!
//! Turning retrieved passages into an answer with citations: the query service's
//! `query.answer` and the execution service's agent runs answer the same way, from this
//! crate, so neither service builds the other.
//!
//! - [`extractive`]: quotes the passage sentences that best match the question
//!   (deterministic, offline: the default, and what tests use).
//! - [`chat`]: any OpenAI-compatible chat API (Groq, OpenAI, Ollama, vLLM).

pub mod chat;
pub mod extractive;

use std::time::Duration;

use async_trait::async_trait;
use platform::openai::OpenAiConfig;
use query_contract::{Answered, Citation, CitedPassage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::settings::SettingsError;
use shared::{ActionError, Settings};

/// One chunk of a document as stored: its payload in the query service's vector store, and
/// what an answer quotes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredChunk {
    /// The tenant that owns it (taken from the action's subject, never from its body).
    pub tenant_id: String,
    /// The tenant's collection it belongs to.
    pub collection: String,
    /// The document it was cut from.
    pub document_id: String,
    /// Its position in the document.
    pub chunk_index: u32,
    /// Its text.
    pub text: String,
    /// Whatever the indexer attached (title, heading, page…); filters match on it.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// A chunk that matched, with its similarity (cosine: higher is closer).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredChunk {
    /// The stored chunk.
    pub chunk: StoredChunk,
    /// Its score.
    pub score: f32,
}

/// Who writes answers.
#[derive(Debug, Clone)]
pub enum AnswererBackend {
    /// Quotes and cites the best passages (offline).
    Extractive,
    /// An OpenAI-compatible chat API.
    Chat {
        /// Base URL, key, timeout.
        api: OpenAiConfig,
        /// The default model.
        model: String,
    },
}

impl AnswererBackend {
    /// Reads `DA_CHAT_API_URL`, `DA_CHAT_API_KEY`, `DA_CHAT_MODEL` (default `gpt-4o-mini`)
    /// and `DA_CHAT_TIMEOUT` (default `60s`): unset URL, the extractive answerer. The query
    /// and execution services both read them here, so they always agree.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        Ok(match settings.var("DA_CHAT_API_URL") {
            Some(url) => AnswererBackend::Chat {
                api: OpenAiConfig {
                    base_url: url.to_owned(),
                    api_key: settings.var("DA_CHAT_API_KEY").map(str::to_owned),
                    timeout: settings
                        .duration_var("DA_CHAT_TIMEOUT")?
                        .unwrap_or(Duration::from_secs(60)),
                },
                model: settings
                    .var("DA_CHAT_MODEL")
                    .unwrap_or("gpt-4o-mini")
                    .to_owned(),
            },
            None => AnswererBackend::Extractive,
        })
    }
}

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

    /// Whether answering calls a paid model API, so the handler holds the tenant to its
    /// model list and LLM tokens first ([`shared::Ctx::check_llm`]); an answerer that
    /// runs locally costs nothing and is not limited.
    fn calls_api(&self) -> bool {
        false
    }
}

/// The citation of passage number `number` (1-based).
pub fn citation(number: usize, passage: &ScoredChunk) -> Citation {
    Citation::of(number, cited(passage))
}

/// `passage` as citations and prompts read it.
pub fn cited(passage: &ScoredChunk) -> CitedPassage<'_> {
    CitedPassage {
        document_id: &passage.chunk.document_id,
        chunk_index: passage.chunk.chunk_index,
        collection: &passage.chunk.collection,
        score: passage.score,
        text: &passage.chunk.text,
        metadata: &passage.chunk.metadata,
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
