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
//! | `DA_INGEST_UPLOADS_PER_TENANT` | `4` | uploads one tenant may have in progress at once per gateway (`0`: no cap); 429 past it |
//! | `DA_INGEST_EVENT_STREAMS_PER_TENANT` | `16` | live task streams (`/v1/tasks/{id}/events`) one tenant may hold open at once per gateway (`0`: no cap); 429 past it |
//! | `DA_INGEST_STORE_MAX_BYTES` | `1073741824` (1 GiB) | the most the `documents` object store holds; a full store refuses uploads (507) instead of evicting originals |
//! | `DA_INGEST_URL_ALLOW` | unset: public addresses only | hosts, IP addresses and CIDR ranges URL ingestion may reach although not public (`127.0.0.1,10.0.0.0/8,intranet.example`); cloud metadata never |

use std::path::PathBuf;
use std::sync::Arc;

use async_nats::jetstream;
use shared::Settings;
use shared::settings::SettingsError;

use crate::IngestionService;
use crate::bucket::StateError;
use crate::chunker::Chunker;
use crate::extract::url::Allowlist;
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
    /// `DA_INGEST_URL_ALLOW`: the non-public hosts and ranges URL ingestion may reach
    /// (an intranet, a test's loopback server); empty means public addresses only.
    pub url_allow: Allowlist,
    /// `DA_TENANT_*`: limits of tenants without a record (their stored bytes, here).
    pub quota: shared::quota::QuotaDefaults,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] embedding_contract::model::ModelError),
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
                uploads_per_tenant: settings
                    .parsed_var("DA_INGEST_UPLOADS_PER_TENANT")?
                    .unwrap_or(d.uploads_per_tenant),
                event_streams_per_tenant: settings
                    .parsed_var("DA_INGEST_EVENT_STREAMS_PER_TENANT")?
                    .unwrap_or(d.event_streams_per_tenant),
                store_max_bytes: settings
                    .parsed_var("DA_INGEST_STORE_MAX_BYTES")?
                    .unwrap_or(d.store_max_bytes),
            },
            tokenizer_dir: settings.var("DA_MINILM_DIR").map(PathBuf::from),
            replicas: settings.stream_replicas,
            url_allow: url_allow(settings)?,
            quota: settings.quota.clone(),
        })
    }

    /// Loads the tokenizer and opens the buckets.
    pub async fn build(self, js: &jetstream::Context) -> Result<IngestionService, SetupError> {
        let dir = embedding_contract::model::model_dir(self.tokenizer_dir.as_deref())?;
        let chunker = tokio::task::spawn_blocking(move || Chunker::load(&dir))
            .await
            .map_err(|err| embedding_contract::model::ModelError::Run(err.to_string()))??;
        let mut service =
            IngestionService::open(js, chunker, self.limits, self.replicas, self.quota).await?;
        service.url_allow = Arc::new(self.url_allow);
        Ok(service)
    }
}

/// Reads `DA_INGEST_URL_ALLOW`; an entry that is not a host, address or range is an error
/// naming it, never silently ignored.
fn url_allow(settings: &Settings) -> Result<Allowlist, SettingsError> {
    const KEY: &str = "DA_INGEST_URL_ALLOW";
    let Some(value) = settings.var(KEY) else {
        return Ok(Allowlist::default());
    };
    value
        .parse()
        .map_err(|err: crate::extract::url::AllowlistError| SettingsError {
            key: KEY.to_owned(),
            value: value.to_owned(),
            reason: err.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs).expect("settings")
    }

    #[test]
    fn the_url_allowlist_is_read_and_checked() {
        let config = IngestionConfig::from_settings(&settings(&[])).expect("defaults");
        assert!(config.url_allow.is_empty());

        let config = IngestionConfig::from_settings(&settings(&[(
            "DA_INGEST_URL_ALLOW",
            "127.0.0.1, 10.0.0.0/8, intranet.example",
        )]))
        .expect("allowlist");
        assert!(
            config
                .url_allow
                .lists_address("10.1.2.3".parse().expect("ip"))
        );
        assert!(config.url_allow.lists_host("intranet.example"));

        let err =
            IngestionConfig::from_settings(&settings(&[("DA_INGEST_URL_ALLOW", "127.0.0.1:8080")]))
                .expect_err("a port is not an entry");
        assert_eq!(err.key, "DA_INGEST_URL_ALLOW");
        assert!(err.reason.contains("127.0.0.1:8080"), "{err}");
    }
}
