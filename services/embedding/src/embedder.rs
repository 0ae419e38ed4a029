//! [`Embedder`]: what a model must do, and [`EmbeddingService`]: the rules every model
//! shares (validation, batching, per-text failures), so the models stay small.

use std::sync::Arc;

use async_trait::async_trait;
use shared::ActionError;

use crate::actions::{EmbeddingKind, Generate, Generated, TextFailure};

/// The vectors of one batch, in the batch's order.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchVectors {
    /// Unit-length vectors, one per text.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, after truncation.
    pub tokens: u64,
    /// Which texts were cut to the model's window.
    pub truncated: Vec<bool>,
}

/// A model that turns texts into vectors.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The name results report.
    fn model(&self) -> &str;

    /// Whether a request naming `model` can be served by this embedder.
    fn serves(&self, model: &str) -> bool;

    /// The most requests worth taking at once (see [`shared::Dispatcher::with_capacity`]);
    /// `None`: as many as the worker allows (an API serves many at once).
    fn capacity(&self) -> Option<usize> {
        None
    }

    /// Embeds one batch (at most the service's batch size). An error fails the whole
    /// batch: retryable ones (`unavailable`) retry the action; others make the service
    /// retry text by text to find the culprit.
    async fn embed(
        &self,
        texts: Vec<String>,
        kind: EmbeddingKind,
        model: &str,
    ) -> Result<BatchVectors, ActionError>;
}

/// Limits applied to every request, whatever the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Texts per model call.
    pub batch_size: usize,
    /// Longer texts fail their index instead of being silently cut to the model's window:
    /// a caller sending a whole book as one text wants to hear about it.
    pub max_chars: usize,
    /// Texts per action; more is refused as a whole (`invalid_action`).
    pub max_texts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            batch_size: 32,
            max_chars: 32_768,
            max_texts: 2_048,
        }
    }
}

/// A model with the shared rules around it: what the `embedding.generate` handler runs.
#[derive(Clone)]
pub struct EmbeddingService {
    embedder: Arc<dyn Embedder>,
    limits: Limits,
}

impl EmbeddingService {
    /// Wraps a model.
    pub fn new(embedder: Arc<dyn Embedder>, limits: Limits) -> Self {
        Self { embedder, limits }
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        self.embedder.model()
    }

    /// The most requests worth taking at once, if the model has a limit.
    pub fn capacity(&self) -> Option<usize> {
        self.embedder.capacity()
    }

    /// Embeds `request`'s texts: validates each, embeds the valid ones in batches of
    /// similar length (less padding), and puts everything back in the request's order.
    pub async fn generate(&self, request: Generate) -> Result<Generated, ActionError> {
        let Generate { texts, kind, model } = request;
        if texts.len() > self.limits.max_texts {
            return Err(ActionError::invalid(format!(
                "{} texts in one action; the limit is {} (send several actions)",
                texts.len(),
                self.limits.max_texts
            )));
        }
        let model = match model {
            Some(asked) if !self.embedder.serves(&asked) => {
                return Err(ActionError::handler(format!(
                    "model {asked:?} is not served here; this service runs {:?}",
                    self.embedder.model()
                )));
            }
            Some(asked) => asked,
            None => self.embedder.model().to_owned(),
        };

        let mut out = Generated {
            vectors: vec![None; texts.len()],
            model: model.clone(),
            dimensions: 0,
            total_tokens: 0,
            failed_indices: Vec::new(),
            failures: Vec::new(),
            truncated_indices: Vec::new(),
        };
        let mut valid: Vec<usize> = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            match self.check(text) {
                Ok(()) => valid.push(index),
                Err(reason) => out.failures.push(TextFailure { index, reason }),
            }
        }
        valid.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));

        for batch in valid.chunks(self.limits.batch_size.max(1)) {
            let batch_texts: Vec<String> = batch.iter().map(|&i| texts[i].clone()).collect();
            match self.embedder.embed(batch_texts, kind, &model).await {
                Ok(vectors) => place(&mut out, batch, vectors),
                Err(err) if err.retryable => return Err(err),
                Err(err) if batch.len() == 1 => out.failures.push(TextFailure {
                    index: batch[0],
                    reason: err.message,
                }),
                Err(_) => {
                    // One bad text spoils an API batch: find it by asking one at a time.
                    for &index in batch {
                        match self
                            .embedder
                            .embed(vec![texts[index].clone()], kind, &model)
                            .await
                        {
                            Ok(vectors) => place(&mut out, &[index], vectors),
                            Err(err) if err.retryable => return Err(err),
                            Err(err) => out.failures.push(TextFailure {
                                index,
                                reason: err.message,
                            }),
                        }
                    }
                }
            }
        }
        out.failures.sort_by_key(|f| f.index);
        out.failed_indices = out.failures.iter().map(|f| f.index).collect();
        out.truncated_indices.sort_unstable();
        Ok(out)
    }

    fn check(&self, text: &str) -> Result<(), String> {
        if text.trim().is_empty() {
            return Err("empty text".to_owned());
        }
        let chars = text.chars().count();
        if chars > self.limits.max_chars {
            return Err(format!(
                "text has {chars} characters; the limit is {} (split it into chunks)",
                self.limits.max_chars
            ));
        }
        Ok(())
    }
}

fn place(out: &mut Generated, indices: &[usize], batch: BatchVectors) {
    out.total_tokens += batch.tokens;
    for (slot, (vector, truncated)) in indices
        .iter()
        .zip(batch.vectors.into_iter().zip(batch.truncated))
    {
        out.dimensions = vector.len();
        if truncated {
            out.truncated_indices.push(*slot);
        }
        out.vectors[*slot] = Some(vector);
    }
}

/// Scales `vector` to unit length (a zero vector stays zero), so cosine similarity is a
/// dot product whatever the model returned.
pub fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > f32::EPSILON {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that fails any text containing "bad", and the whole call when asked.
    struct Picky;

    #[async_trait]
    impl Embedder for Picky {
        fn model(&self) -> &str {
            "picky"
        }
        fn serves(&self, model: &str) -> bool {
            model == "picky"
        }
        async fn embed(
            &self,
            texts: Vec<String>,
            _kind: EmbeddingKind,
            _model: &str,
        ) -> Result<BatchVectors, ActionError> {
            if texts.iter().any(|t| t.contains("down")) {
                return Err(ActionError::unavailable("model server down"));
            }
            if texts.iter().any(|t| t.contains("bad")) {
                return Err(ActionError::handler("bad input"));
            }
            Ok(BatchVectors {
                vectors: texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect(),
                tokens: texts.len() as u64,
                truncated: texts.iter().map(|t| t.len() > 10).collect(),
            })
        }
    }

    fn service(batch_size: usize) -> EmbeddingService {
        let limits = Limits {
            batch_size,
            max_chars: 20,
            max_texts: 5,
        };
        EmbeddingService::new(Arc::new(Picky), limits)
    }

    fn request(texts: &[&str]) -> Generate {
        Generate {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            kind: EmbeddingKind::Document,
            model: None,
        }
    }

    #[tokio::test]
    async fn failures_stay_at_their_index_and_order_is_kept() {
        let texts = ["a", " ", "bad one", "twelve chars", &"x".repeat(21)];
        let out = service(2).generate(request(&texts)).await.unwrap();
        assert_eq!(out.failed_indices, vec![1, 2, 4]);
        assert_eq!(out.failures[0].reason, "empty text");
        assert_eq!(out.failures[1].reason, "bad input");
        assert!(out.failures[2].reason.contains("21 characters"));
        assert_eq!(out.vectors[0], Some(vec![1.0, 1.0]));
        assert_eq!(out.vectors[3], Some(vec![12.0, 1.0]));
        assert_eq!(out.vectors[1], None);
        assert_eq!(out.truncated_indices, vec![3]);
        assert_eq!(out.total_tokens, 2);
        assert_eq!(out.dimensions, 2);
    }

    #[tokio::test]
    async fn retryable_failures_fail_the_action_and_limits_are_enforced() {
        let err = service(2).generate(request(&["down"])).await.unwrap_err();
        assert!(err.retryable);
        let err = service(2)
            .generate(request(&["a", "b", "c", "d", "e", "f"]))
            .await
            .unwrap_err();
        assert!(err.message.contains("limit is 5"));
        let mut other = request(&["a"]);
        other.model = Some("gpt".into());
        let err = service(2).generate(other).await.unwrap_err();
        assert!(err.message.contains("not served here"));
    }

    #[test]
    fn normalizes() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0, 0.0];
        normalize(&mut zero);
        assert_eq!(zero, vec![0.0, 0.0]);
    }
}
