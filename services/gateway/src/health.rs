//! `/healthz` and `/readyz`, for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use platform::http::{ApiError, ApiJson};
use serde_json::{Value, json};

use crate::Gateway;

/// The process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = crate::openapi::Health)),
    security(()),
)]
pub async fn healthz() -> ApiJson<Value> {
    ApiJson(json!({"status": "ok"}))
}

/// NATS is connected and JetStream answers; 503 otherwise, so traffic goes elsewhere.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::Health),
        (status = 503, description = "NATS or JetStream unreachable"),
    ),
    security(()),
)]
pub async fn readyz(
    State(gateway): State<Gateway>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    if gateway.client.connection_state() != async_nats::connection::State::Connected {
        return Err(ApiError::unavailable("not connected to NATS"));
    }
    let js = gateway.publisher.jetstream();
    js.query_account()
        .await
        .map_err(|err| ApiError::unavailable(format!("JetStream does not answer: {err}")))?;
    Ok((
        StatusCode::OK,
        ApiJson(json!({"status": "ready", "nats": "connected"})),
    ))
}
