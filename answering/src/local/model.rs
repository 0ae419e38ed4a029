//! [`LocalLlm`]: a quantized Llama-architecture GGUF (SmolLM2-135M-Instruct) on candle,
//! with its tokenizer, generating one token at a time.
//!
//! The weights are widened to f32 when loaded ([`widened`]): candle's quantized kernels
//! pick their SIMD code at compile time, and the workspace builds for baseline x86-64, so
//! they run scalar, while its f32 matrix products (the `gemm` crate) detect AVX2 and FMA at
//! run time. Reading a prompt is about four times faster that way, so the first token of a
//! streamed answer comes that much sooner, and writing somewhat slower (README, "Answers
//! (RAG eval)"); the price is memory: 4 bytes a parameter (some 540 MB for SmolLM2-135M) instead
//! of the file's 98 MB.

use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use candle_transformers::utils::apply_repeat_penalty;
use tokenizers::Tokenizer;

use super::{LocalError, Sampling, tokenizer};

/// The token that ends an assistant's message in ChatML.
pub const END_OF_MESSAGE: &str = "<|im_end|>";

/// How much a token already written is penalised (candle's examples' usual value): a
/// 135M-parameter model left greedy otherwise tends to repeat a sentence until the cap.
const REPEAT_PENALTY: f32 = 1.1;

/// The last tokens of the answer the penalty looks at.
const REPEAT_WINDOW: usize = 64;

/// The seed of sampling above temperature 0: the same prompt and settings give the same
/// answer, as the extractive answerer does.
const SEED: u64 = 299_792_458;

/// The weights and tokenizer of one GGUF, loaded.
pub struct LocalLlm {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    end: u32,
}

/// What a generation wrote, and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The answer: every streamed piece, concatenated.
    pub text: String,
    /// Tokens of the prompt.
    pub prompt_tokens: u32,
    /// Tokens written.
    pub completion_tokens: u32,
    /// Reading the prompt (time to the first token).
    pub prefill: Duration,
    /// Writing the answer, after the first token.
    pub decode: Duration,
}

impl Generation {
    /// Its token counts, as results report them.
    pub fn usage(&self) -> query_contract::Usage {
        query_contract::Usage {
            prompt_tokens: self.prompt_tokens.into(),
            completion_tokens: self.completion_tokens.into(),
            total_tokens: u64::from(self.prompt_tokens) + u64::from(self.completion_tokens),
        }
    }
}

impl LocalLlm {
    /// Reads the GGUF at `path`: weights, and the tokenizer from its metadata.
    pub fn load(path: &Path) -> Result<Self, LocalError> {
        let read = |reason: String| LocalError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = File::open(path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                LocalError::NotFound(path.to_path_buf())
            } else {
                read(err.to_string())
            }
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(|err| read(err.to_string()))?;
        let tokenizer = tokenizer::from_metadata(&content.metadata)?;
        let end = tokenizer
            .token_to_id(END_OF_MESSAGE)
            .ok_or_else(|| LocalError::Tokenizer(format!("no {END_OF_MESSAGE} token")))?;
        let (content, mut data) =
            widened(content, &mut file).map_err(|err| read(err.to_string()))?;
        let weights = ModelWeights::from_gguf(content, &mut data, &Device::Cpu)
            .map_err(|err| read(err.to_string()))?;
        Ok(Self {
            weights,
            tokenizer,
            end,
        })
    }

    /// The tokenizer, for callers that count or check tokens.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Continues `prompt` (ChatML text, [`super::prompt::chat_ml`]) until the model ends
    /// its message or `sampling.max_tokens` are written, passing each piece of text to
    /// `on_text` as soon as it is whole (a character split over two tokens waits for the
    /// second).
    pub fn generate(
        &mut self,
        prompt: &str,
        sampling: Sampling,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, LocalError> {
        let run = |err: candle_core::Error| LocalError::Run(err.to_string());
        let tokenize = |err: tokenizers::Error| LocalError::Tokenizer(err.to_string());
        let prompt_ids = self
            .tokenizer
            .encode(prompt, false)
            .map_err(tokenize)?
            .get_ids()
            .to_vec();
        let room = MAX_SEQ_LEN.saturating_sub(prompt_ids.len());
        if room == 0 {
            return Err(LocalError::TooLong {
                tokens: prompt_ids.len(),
                max: MAX_SEQ_LEN,
            });
        }
        let max_tokens = (sampling.max_tokens as usize).min(room);
        let temperature = f64::from(sampling.temperature);
        let mut logits_processor = LogitsProcessor::new(
            SEED,
            (temperature > 0.0).then_some(temperature),
            sampling.top_p.map(f64::from),
        );
        self.weights.clear_kv_cache();

        let started = Instant::now();
        let input = Tensor::new(prompt_ids.as_slice(), &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .map_err(run)?;
        let mut logits = self.weights.forward(&input, 0).map_err(run)?;
        let prefill = started.elapsed();

        let mut written: Vec<u32> = Vec::new();
        let mut text = String::new();
        let mut decoder = self.tokenizer.decode_stream(true);
        loop {
            let logits_1d = logits.squeeze(0).map_err(run)?;
            let start = written.len().saturating_sub(REPEAT_WINDOW);
            let logits_1d =
                apply_repeat_penalty(&logits_1d, REPEAT_PENALTY, &written[start..]).map_err(run)?;
            let next = logits_processor.sample(&logits_1d).map_err(run)?;
            if next == self.end {
                break;
            }
            written.push(next);
            if let Some(piece) = decoder.step(next).map_err(tokenize)? {
                on_text(&piece);
                text.push_str(&piece);
            }
            if written.len() >= max_tokens {
                break;
            }
            let input = Tensor::new(&[next], &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(run)?;
            logits = self
                .weights
                .forward(&input, prompt_ids.len() + written.len() - 1)
                .map_err(run)?;
        }
        Ok(Generation {
            text,
            prompt_tokens: prompt_ids.len() as u32,
            completion_tokens: written.len() as u32,
            prefill,
            decode: started.elapsed().saturating_sub(prefill),
        })
    }
}

/// `content` with every tensor read from `file` and widened to f32, and the data its tensor
/// infos now point into: what [`ModelWeights::from_gguf`] reads to hold plain f32 matrices
/// (see the module documentation for why).
pub fn widened<R: Read + Seek>(
    mut content: gguf_file::Content,
    file: &mut R,
) -> candle_core::Result<(gguf_file::Content, Cursor<Vec<u8>>)> {
    let elements: usize = content
        .tensor_infos
        .values()
        .map(|info| info.shape.elem_count())
        .sum();
    let mut data: Vec<u8> = Vec::with_capacity(elements * 4);
    for info in content.tensor_infos.values_mut() {
        let tensor = info
            .read(file, content.tensor_data_offset, &Device::Cpu)?
            .dequantize(&Device::Cpu)?;
        info.offset = data.len() as u64;
        info.ggml_dtype = GgmlDType::F32;
        data.extend_from_slice(&QTensor::quantize(&tensor, GgmlDType::F32)?.data()?);
    }
    content.tensor_data_offset = 0;
    Ok((content, Cursor::new(data)))
}
