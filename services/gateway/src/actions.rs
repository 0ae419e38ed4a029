//! `POST /v1/actions`: any action over HTTP, for clients that speak neither NATS nor a
//! service's own routes. The action is durable (stored before the answer); `?wait=5s`
//! waits that long for its result.
//!
//! ```text
//! POST /v1/actions?wait=5s
//! Authorization: Bearer da_…
//! {"action_type": "query.search", "data": {"query": "cats", "top_k": 3}}
//! ```
//!
//! Answers 202 `{action_id, status: "accepted"}`, or 200 `{action_id, status, result |
//! error}` once the result arrived within `wait` (at most 60 s).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use platform::http::{ApiError, ApiJson, Authenticated};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::{Action, ActionType};

use crate::Gateway;

/// The longest `?wait=`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The body of `POST /v1/actions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewAction {
    /// `<domain>.<verb>`.
    pub action_type: String,
    /// The payload.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
    /// A conversation id.
    pub session_id: Option<String>,
    /// Copied onto the result.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// `?wait=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// How long to wait for the result (`500ms`, `5s`).
    pub wait: Option<String>,
}

/// Enqueues the action as the key's tenant; waits for its result if asked.
#[utoipa::path(
    post,
    path = "/v1/actions",
    tag = "actions",
    operation_id = "actions_create",
    params(WaitQuery),
    request_body = NewAction,
    responses(
        (status = 202, description = "Stored and enqueued (or no result within `wait`)",
            body = crate::openapi::ActionAccepted),
        (status = 200, description = "The result arrived within `wait`",
            body = crate::openapi::ActionOutcome),
        (status = 400, description = "Bad `action_type`, a result type, or a bad `wait`"),
        (status = 401, description = "No or bad API key"),
        (status = 503, description = "NATS unreachable"),
    ),
    security(("api_key" = [])),
)]
pub async fn create(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    Query(query): Query<WaitQuery>,
    ApiJson(new): ApiJson<NewAction>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let action_type = ActionType::new(&new.action_type)
        .map_err(|err| ApiError::bad_request(format!("action_type: {err}")))?;
    if action_type.is_result() {
        return Err(ApiError::bad_request("results cannot be sent as actions"));
    }
    let wait = match query.wait.as_deref() {
        None => None,
        Some(text) => Some(
            humantime::parse_duration(text)
                .map_err(|err| ApiError::bad_request(format!("wait={text:?}: {err}")))?
                .min(MAX_WAIT),
        ),
    };
    let mut action = Action::of_type(action_type, auth.tenant, new.data);
    action.session_id = new.session_id;
    action.metadata = new.metadata;
    let id = action.action_id.to_string();

    let Some(wait) = wait else {
        gateway
            .publisher
            .enqueue(&action)
            .await
            .map_err(ApiError::from)?;
        return Ok((
            StatusCode::ACCEPTED,
            ApiJson(json!({"action_id": id, "status": "accepted"})),
        ));
    };
    let (_, result) = gateway
        .publisher
        .enqueue_and_wait(action, wait)
        .await
        .map_err(ApiError::from)?;
    match result {
        Some(result) => {
            let data = &result.data;
            Ok((
                StatusCode::OK,
                ApiJson(json!({
                    "action_id": id,
                    "status": data["status"],
                    "result": data.get("result"),
                    "error": data.get("error"),
                })),
            ))
        }
        _ => Ok((
            StatusCode::ACCEPTED,
            ApiJson(json!({"action_id": id, "status": "accepted"})),
        )),
    }
}
