//! The HTTP API: the chat WebSocket and session history. [`router`] is what the gateway
//! mounts; every route acts for the tenant of the caller's API key only.
//!
//! | route | does |
//! |---|---|
//! | `GET /v1/chat` | WebSocket (see [`crate::protocol`]); key in `Authorization: Bearer`, `?api_key=`, or a first `auth` frame |
//! | `GET /v1/sessions/{session_id}` | the session's history from execution (`execution.session_get`), so an answer given while no socket was open is not lost |
//!
//! Errors before the upgrade and on the history route are JSON `{error: {code, message}}`:
//! 400 bad session id, 401, 429 the tenant already holds as many sockets as it may (with
//! `Retry-After`), 503 NATS or execution unreachable, 504 execution too slow.

pub mod chat;
pub mod sessions;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use platform::http::{ApiKeys, TenantSlots};
use shared::publish::Publisher;
use tokio_util::sync::CancellationToken;

use crate::ChatConfig;

/// What the routes and every open socket share.
#[derive(Clone)]
pub struct Api {
    /// Enqueues `execution.agent_run`, requests `execution.session_get`, and subscribes
    /// sockets to their sessions' events.
    pub publisher: Publisher,
    /// Verifies API keys (upgrade requests and `auth` frames).
    pub keys: ApiKeys,
    /// Limits of connections.
    pub config: ChatConfig,
    /// Cancelled when the server stops: open sockets are then closed with 1001 (going
    /// away), so browsers reconnect, through the load balancer, to an instance that stays.
    /// A graceful HTTP shutdown does not wait for upgraded connections, so without this
    /// they would just be cut.
    pub shutdown: CancellationToken,
    /// Sockets open per tenant (`ChatConfig::sockets_per_tenant`), shared by every socket
    /// of this instance.
    pub sockets: TenantSlots,
}

impl Api {
    /// The routes' state, with the per-tenant socket cap of `config`.
    pub fn new(
        publisher: Publisher,
        keys: ApiKeys,
        config: ChatConfig,
        shutdown: CancellationToken,
    ) -> Self {
        let sockets = TenantSlots::new("chat sockets", config.sockets_per_tenant);
        Self {
            publisher,
            keys,
            config,
            shutdown,
            sockets,
        }
    }
}

impl FromRef<Api> for ApiKeys {
    fn from_ref(api: &Api) -> Self {
        api.keys.clone()
    }
}

/// The chat and session routes.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/chat", get(chat::chat))
        .route(
            "/v1/sessions/{session_id}",
            get(sessions::get).delete(sessions::delete),
        )
        .with_state(api)
}
