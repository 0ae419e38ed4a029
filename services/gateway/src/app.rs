//! [`Gateway`]: what the gateway's own routes share, and [`router`], the whole app.

use async_nats::Client;
use axum::Router;
use axum::extract::FromRef;
use axum::http::HeaderName;
use axum::routing::{get, post};
use platform::http::ApiKeys;
use shared::publish::Publisher;
use shared::{Settings, settings::SettingsError};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use tokio_util::sync::CancellationToken;

use crate::{actions, agents, headers, health, limits, metrics, openapi, page, query_keys, trace};

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
    Keys(#[from] platform::http::ApiKeysError),
    /// The ingestion service's state.
    #[error("ingestion: {0}")]
    Ingestion(String),
}

/// The gateway's own routes, mounted under its state.
fn own_routes(gateway: Gateway) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/actions", post(actions::create))
        .route("/v1/agents", get(agents::list))
        .route(
            "/v1/agents/{agent_id}",
            get(agents::get).put(agents::put).delete(agents::delete),
        )
        .with_state(gateway)
        .merge(page::routes())
}

/// Every route: the gateway's own, ingestion's documents and tasks, the orchestrator's chat
/// WebSocket and sessions (each service's router keeps its own state and body limits), and
/// `/metrics` only if `DA_METRICS_TOKEN` is set (behind that token: [`metrics`]).
/// Requests get an `x-request-id` (kept if the client sent one), echoed on the response,
/// and a tracing span with the `api_key` redacted from the URL ([`trace`]); `?api_key=` is
/// refused except on the chat WebSocket and task events ([`query_keys`]); each tenant is
/// held to its requests per minute under `/v1/` ([`limits`]); every response
/// says `nosniff` ([`headers`]). `shutdown` closes open chat sockets as "going away" when
/// the server stops.
pub async fn router(
    client: Client,
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<Router, GatewayError> {
    let js = async_nats::jetstream::new(client.clone());
    let keys = ApiKeys::open(&js, settings.stream_replicas).await?;
    let publisher = Publisher::new(client.clone());
    let limits = limits::Limits {
        keys: keys.clone(),
        quotas: shared::quota::Quotas::new(
            client.clone(),
            settings.quota.clone(),
            settings.stream_replicas,
        ),
    };
    let ingestion = ingestion::IngestionConfig::from_settings(settings)?
        .build(&js)
        .await
        .map_err(|err| GatewayError::Ingestion(err.to_string()))?;
    let gateway = Gateway {
        client,
        publisher: publisher.clone(),
        keys: keys.clone(),
    };
    let documents = ingestion::routes::router(ingestion::routes::Api::new(
        ingestion,
        publisher.clone(),
        keys.clone(),
    ));
    let chat = orchestrator::router(orchestrator::Api::new(
        publisher,
        keys,
        orchestrator::ChatConfig::from_settings(settings)?,
        shutdown,
    ));
    let request_id = HeaderName::from_static("x-request-id");
    // The last layer added runs first: the request id is set before the span is made.
    Ok(own_routes(gateway)
        .merge(documents)
        .merge(chat)
        .merge(metrics::routes(metrics::MetricsToken::from_settings(
            settings,
        )))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            limits::enforce,
        ))
        .layer(axum::middleware::from_fn(query_keys::refuse))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::map_response(headers::nosniff))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(trace::layer())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid)))
}
