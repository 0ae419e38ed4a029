//! Any OpenAI-compatible `/v1/embeddings` API (OpenAI, Ollama, TEI, vLLM) as an
//! [`Embedder`]. HTTP 429 and 5xx become retryable `unavailable` errors (the action is
//! retried with backoff); other 4xx become `handler_error` (see [`platform::openai`]).

use async_trait::async_trait;
use platform::openai::OpenAiClient;
use shared::ActionError;

use crate::actions::EmbeddingKind;
use crate::embedder::{BatchVectors, Embedder, normalize};

/// An OpenAI-compatible embeddings endpoint and the model to ask for.
pub struct ApiEmbedder {
    client: OpenAiClient,
    model: String,
}

impl ApiEmbedder {
    /// Uses `client` with `model` unless a request names another.
    pub fn new(client: OpenAiClient, model: impl Into<String>) -> Self {
        Self {
            client,
            model: model.into(),
        }
    }
}

#[async_trait]
impl Embedder for ApiEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    fn serves(&self, _model: &str) -> bool {
        // The API knows its models; an unknown name comes back as a 4xx, reported per text.
        true
    }

    async fn embed(
        &self,
        texts: Vec<String>,
        _kind: EmbeddingKind,
        model: &str,
    ) -> Result<BatchVectors, ActionError> {
        let count = texts.len();
        let response = self.client.embeddings(model, &texts).await?;
        if response.vectors.len() != count {
            return Err(ActionError::handler(format!(
                "the embeddings API returned {} vectors for {count} texts",
                response.vectors.len()
            )));
        }
        let mut vectors = response.vectors;
        vectors.iter_mut().for_each(|v| normalize(v));
        Ok(BatchVectors {
            vectors,
            tokens: response.prompt_tokens,
            truncated: vec![false; count],
        })
    }
}
