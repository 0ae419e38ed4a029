//! The ingestion service's settings.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DA_INGEST_MAX_BYTES` | `52428800` (50 MiB) | largest document (upload, URL, inline text) |
//! | `DA_INGEST_FETCH_TIMEOUT` | `30s` | URL fetch time limit |
//! | `DA_CHUNK_TOKENS` | `256` | tokens per chunk (all-MiniLM-L6-v2 reads 256; raise it with a model that reads more) |
//! | `DA_CHUNK_OVERLAP` | `32` | tokens shared by neighbouring chunks |
//! | `DA_INGEST_BATCH` | `32` | chunks per embedding batch |
//! | `DA_MINILM_DIR` | the model in `.venv` | where the tokenizer used to count tokens is |

use std::path::PathBuf;

use async_nats::jetstream;
use shared::Settings;
use shared::settings::SettingsError;

use crate::IngestionService;
use crate::bucket::StateError;
use crate::chunker::Chunker;
use crate::service::Limits;

/// The ingestion settings.
#[derive(Debug, Clone)]
pub struct IngestionConfig {
    /// Sizes and limits.
    pub limits: Limits,
    /// `DA_MINILM_DIR`.
    pub tokenizer_dir: Option<PathBuf>,
    /// `DA_STREAM_REPLICAS`: copies of the buckets and the object store when they are
    /// created, so on a cluster they survive losing a node like the streams do.
    pub replicas: usize,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] embedding::minilm::ModelError),
    /// The buckets.
    #[error(transparent)]
    State(#[from] StateError),
}

impl IngestionConfig {
    /// Reads the settings in the module's table.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let d = Limits::default();
        Ok(Self {
            limits: Limits {
                max_bytes: settings
                    .parsed_var("DA_INGEST_MAX_BYTES")?
                    .unwrap_or(d.max_bytes),
                fetch_timeout: settings
                    .duration_var("DA_INGEST_FETCH_TIMEOUT")?
                    .unwrap_or(d.fetch_timeout),
                batch_size: settings
                    .parsed_var("DA_INGEST_BATCH")?
                    .unwrap_or(d.batch_size),
                chunk_tokens: settings
                    .parsed_var("DA_CHUNK_TOKENS")?
                    .unwrap_or(d.chunk_tokens),
                chunk_overlap: settings
                    .parsed_var("DA_CHUNK_OVERLAP")?
                    .unwrap_or(d.chunk_overlap),
                query_timeout: d.query_timeout,
            },
            tokenizer_dir: settings.var("DA_MINILM_DIR").map(PathBuf::from),
            replicas: settings.stream_replicas,
        })
    }

    /// Loads the tokenizer and opens the buckets.
    pub async fn build(self, js: &jetstream::Context) -> Result<IngestionService, SetupError> {
        let dir = embedding::minilm::model_dir(self.tokenizer_dir.as_deref())?;
        let chunker = tokio::task::spawn_blocking(move || Chunker::load(&dir))
            .await
            .map_err(|err| embedding::minilm::ModelError::Run(err.to_string()))??;
        Ok(IngestionService::open(js, chunker, self.limits, self.replicas).await?)
    }
}
