//! `GET` and `DELETE /v1/sessions/{session_id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use execution_contract::session::Session;
use execution_contract::{SessionDelete, SessionGet};
use platform::http::{ApiError, ApiJson, Authenticated};
use shared::{Action, ActionPayload};

use super::Api;
use crate::protocol::{MAX_ID_LEN, is_valid_id};

/// The session's history as execution keeps it: the way back to an answer that arrived
/// while no socket was open (a closed tab, a dropped connection), since live events are
/// not stored. Sessions are per tenant: another tenant's session id finds nothing (404),
/// as does a session nothing was said in, or one that expired or was deleted.
#[utoipa::path(
    get,
    path = "/v1/sessions/{session_id}",
    tag = "chat",
    operation_id = "sessions_get",
    summary = "A chat session's history",
    params(("session_id" = String, Path, description = "`[A-Za-z0-9_-]{1,64}`")),
    responses(
        (status = 200, description = "`{session_id, agent_id, messages: [{role, content, at, \
            citations}]}`, oldest first", body = Object),
        (status = 400, description = "Malformed session id"),
        (status = 401, description = "No or bad API key"),
        (status = 404, description = "No such session for this tenant"),
        (status = 503, description = "NATS or the execution service unreachable"),
        (status = 504, description = "The execution service answered too slowly"),
    ),
    security(("api_key" = [])),
)]
pub async fn get(
    State(api): State<Api>,
    auth: Authenticated,
    Path(session_id): Path<String>,
) -> Result<ApiJson<Session>, ApiError> {
    let history = ask(&api, auth, &session_id, |session_id| SessionGet {
        session_id,
    })
    .await?;
    // A session exists from its first message on.
    if history.messages.is_empty() {
        return Err(no_session(&session_id));
    }
    Ok(ApiJson(history))
}

/// Forgets a conversation now rather than when it expires (`DA_HISTORY_TTL` after its last
/// message): its history is gone, and a chat message naming it starts it afresh.
#[utoipa::path(
    delete,
    path = "/v1/sessions/{session_id}",
    tag = "chat",
    operation_id = "sessions_delete",
    summary = "Delete a chat session",
    params(("session_id" = String, Path, description = "`[A-Za-z0-9_-]{1,64}`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed session id"),
        (status = 401, description = "No or bad API key"),
        (status = 404, description = "No such session for this tenant"),
        (status = 503, description = "NATS or the execution service unreachable"),
        (status = 504, description = "The execution service answered too slowly"),
    ),
    security(("api_key" = [])),
)]
pub async fn delete(
    State(api): State<Api>,
    auth: Authenticated,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = ask(&api, auth, &session_id, |session_id| SessionDelete {
        session_id,
    })
    .await?;
    if deleted.deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_session(&session_id))
    }
}

/// Sends the tenant's `request` about `session_id` to the execution service once the id is
/// checked, and waits for its answer.
async fn ask<P: ActionPayload>(
    api: &Api,
    auth: Authenticated,
    session_id: &str,
    request: impl FnOnce(String) -> P,
) -> Result<P::Output, ApiError> {
    if !is_valid_id(session_id) {
        return Err(ApiError::bad_request(format!(
            "invalid session_id {session_id:?}: expected 1 to {MAX_ID_LEN} of [A-Za-z0-9_-]"
        )));
    }
    let action = Action::new(auth.tenant, request(session_id.to_owned()))
        .with_session(session_id.to_owned());
    Ok(api
        .publisher
        .request(&action, api.config.history_timeout)
        .await?)
}

fn no_session(session_id: &str) -> ApiError {
    ApiError::not_found(format!("no session {session_id}"))
}
