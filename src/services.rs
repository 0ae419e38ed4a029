//! The services this binary can run, by name. Each later service adds one arm here.

use shared::{Catalog, Dispatcher, Settings};

/// Every service, in the order `dev` starts them (the embedding service first: the query
/// service asks it for vectors).
pub const ALL: &[&str] = &[
    "echo",
    "embedding",
    "query",
    "ingestion",
    "execution",
    "orchestrator",
];

/// The domains of every service this binary runs: what `streams apply` sets up.
pub fn domains() -> Vec<shared::Domain> {
    ALL.iter()
        .filter_map(|name| catalog(name))
        .map(|catalog| catalog.domain().clone())
        .collect()
}

/// Why a service could not be set up.
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

/// The dispatcher of the service called `name`, with its model, store or buckets opened as
/// `settings` say; `None` for an unknown name.
pub async fn dispatcher(
    name: &str,
    settings: &Settings,
    client: &async_nats::Client,
) -> Result<Option<Dispatcher>, SetupError> {
    Ok(Some(match name {
        "echo" => echo::dispatcher(),
        "embedding" => {
            let config = embedding::EmbeddingConfig::from_settings(settings)?;
            embedding::dispatcher(config.build().await?)
        }
        "query" => {
            let config = query::QueryConfig::from_settings(settings)?;
            query::dispatcher(config.build().await?)
        }
        "ingestion" => {
            let config = ingestion::IngestionConfig::from_settings(settings)?;
            let js = async_nats::jetstream::new(client.clone());
            ingestion::dispatcher(config.build(&js).await?)
        }
        "execution" => {
            let config = execution::ExecutionConfig::from_settings(settings)?;
            let js = async_nats::jetstream::new(client.clone());
            execution::dispatcher(config.build(&js).await?)
        }
        "orchestrator" => orchestrator::dispatcher(client.clone()),
        _ => return Ok(None),
    }))
}

/// What the service called `name` handles, described without its state (no model, store
/// or NATS connection). `None` for an unknown name.
pub fn catalog(name: &str) -> Option<Catalog> {
    Some(match name {
        "echo" => echo::dispatcher().catalog().clone(),
        "embedding" => embedding::routes().catalog().clone(),
        "query" => query::routes().catalog().clone(),
        "ingestion" => ingestion::routes().catalog().clone(),
        "execution" => execution::routes().catalog().clone(),
        "orchestrator" => orchestrator::routes().catalog().clone(),
        _ => return None,
    })
}
