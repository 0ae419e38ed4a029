//! [`Gateway`]: what the gateway's own routes share, and [`router`], the whole app.

use async_nats::Client;
use axum::Router;
use axum::extract::FromRef;
use axum::http::HeaderName;
use axum::routing::{get, post};
use shared::http::ApiKeys;
use shared::publish::Publisher;
use shared::{Settings, settings::SettingsError};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::{actions, health, page};

/// The gateway's state.
#[derive(Clone)]
pub struct Gateway {
    /// The NATS connection (readiness, inboxes).
    pub client: Client,
    /// Enqueues actions.
    pub publisher: Publisher,
    /// Verifies API keys.
    pub keys: ApiKeys,
}

impl FromRef<Gateway> for ApiKeys {
    fn from_ref(gateway: &Gateway) -> Self {
        gateway.keys.clone()
    }
}

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A setting.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The API key store.
    #[error(transparent)]
    Keys(#[from] shared::http::ApiKeysError),
    /// The ingestion service's state.
    #[error("ingestion: {0}")]
    Ingestion(String),
}

/// Every route: the gateway's own and the services' (each service's router keeps its own
/// state and body limits). Requests get an `x-request-id` (kept if the client sent one)
/// that is echoed on the response and logged.
pub async fn router(client: Client, settings: &Settings) -> Result<Router, GatewayError> {
    let js = async_nats::jetstream::new(client.clone());
    let keys = ApiKeys::open(&js).await?;
    let publisher = Publisher::new(client.clone());
    let ingestion = ingestion::IngestionConfig::from_settings(settings)?
        .build(&js)
        .await
        .map_err(|err| GatewayError::Ingestion(err.to_string()))?;
    let gateway = Gateway {
        client,
        publisher: publisher.clone(),
        keys: keys.clone(),
    };
    let own = Router::new()
        .route("/", get(page::index))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/actions", post(actions::create))
        .with_state(gateway);
    let documents = ingestion::routes::router(ingestion::routes::Api {
        service: ingestion,
        publisher,
        keys,
    });
    let request_id = HeaderName::from_static("x-request-id");
    Ok(own
        .merge(documents)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid)))
}
