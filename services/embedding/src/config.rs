//! Which model the embedding service runs, from [`Settings`].
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DA_EMBEDDING_API_URL` | unset: the local model | base URL of an OpenAI-compatible API, with its `/v1` (e.g. `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`) |
//! | `DA_EMBEDDING_API_KEY` | none | its bearer key |
//! | `DA_EMBEDDING_MODEL` | `text-embedding-3-small` with an API | the API's model |
//! | `DA_EMBEDDING_TIMEOUT` | `30s` | per API call |
//! | `DA_EMBEDDING_BATCH_SIZE` | `32` | texts per model call |
//! | `DA_EMBEDDING_MAX_CHARS` | `32768` | longer texts fail their index |
//! | `DA_MINILM_DIR` | the model in `.venv` | where all-MiniLM-L6-v2's files are |
//! | `DA_MINILM_RUNTIME` | `openvino` | what runs it: `openvino` (OpenVINO), `onnx` (ONNX Runtime) or `candle` |
//! | `DA_OPENVINO_LIB` | the wheel's in `.venv` | the `libopenvino_c` file OpenVINO is opened from |
//! | `DA_ONNXRUNTIME_LIB` | the wheel's in `.venv` | the `libonnxruntime` file ONNX Runtime is opened from |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use platform::openai::{OpenAiClient, OpenAiConfig, OpenAiError};
use shared::Settings;
use shared::settings::SettingsError;

use crate::embedder::{EmbeddingService, Limits};
use crate::minilm::{LocalEmbedder, MiniLm, ModelError, Runtime, model_dir};
use crate::openai::ApiEmbedder;

/// Where vectors come from.
#[derive(Debug, Clone)]
pub enum Backend {
    /// all-MiniLM-L6-v2 in process; `None` finds it in `.venv`.
    Local {
        /// `DA_MINILM_DIR`.
        model_dir: Option<PathBuf>,
        /// `DA_MINILM_RUNTIME`, and `DA_OPENVINO_LIB` or `DA_ONNXRUNTIME_LIB`.
        runtime: Runtime,
    },
    /// An OpenAI-compatible API.
    Api {
        /// Base URL, key and timeout.
        api: OpenAiConfig,
        /// The model to ask for.
        model: String,
    },
}

/// The embedding service's settings.
#[derive(Debug, Clone)]
pub struct EmbeddingConfig {
    /// The model.
    pub backend: Backend,
    /// Batch size and size limits.
    pub limits: Limits,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The local model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The API client.
    #[error("embeddings API client: {0}")]
    Api(#[from] OpenAiError),
}

impl EmbeddingConfig {
    /// Reads the `DA_EMBEDDING_*` and `DA_MINILM_DIR` settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let defaults = Limits::default();
        let limits = Limits {
            batch_size: settings
                .parsed_var("DA_EMBEDDING_BATCH_SIZE")?
                .unwrap_or(defaults.batch_size),
            max_chars: settings
                .parsed_var("DA_EMBEDDING_MAX_CHARS")?
                .unwrap_or(defaults.max_chars),
            max_texts: defaults.max_texts,
        };
        let backend = match settings.var("DA_EMBEDDING_API_URL") {
            Some(url) => Backend::Api {
                api: OpenAiConfig {
                    base_url: url.to_owned(),
                    api_key: settings.var("DA_EMBEDDING_API_KEY").map(str::to_owned),
                    timeout: settings
                        .duration_var("DA_EMBEDDING_TIMEOUT")?
                        .unwrap_or(Duration::from_secs(30)),
                },
                model: settings
                    .var("DA_EMBEDDING_MODEL")
                    .unwrap_or("text-embedding-3-small")
                    .to_owned(),
            },
            None => Backend::Local {
                model_dir: settings.var("DA_MINILM_DIR").map(PathBuf::from),
                runtime: Runtime::from_settings(settings)?,
            },
        };
        Ok(Self { backend, limits })
    }

    /// Loads the model (or builds the API client) and wraps it in the service.
    pub async fn build(self) -> Result<EmbeddingService, SetupError> {
        let embedder: Arc<dyn crate::Embedder> = match self.backend {
            Backend::Local {
                model_dir: dir,
                runtime,
            } => {
                let dir = model_dir(dir.as_deref())?;
                let model = tokio::task::spawn_blocking(move || MiniLm::load(&dir, &runtime))
                    .await
                    .map_err(|err| ModelError::Run(err.to_string()))??;
                Arc::new(LocalEmbedder::new(model))
            }
            Backend::Api { api, model } => {
                Arc::new(ApiEmbedder::new(OpenAiClient::new(api)?, model))
            }
        };
        Ok(EmbeddingService::new(embedder, self.limits))
    }
}
