//! `/v1/agents`: the tenant's agents, kept by the execution service (these routes send it
//! `execution.agent_*` actions over rpc; only execution writes the `agents` bucket).
//!
//! | route | does |
//! |---|---|
//! | `GET /v1/agents` | list |
//! | `PUT /v1/agents/{id}` | create or replace (body: the agent's fields; the id is the path's) |
//! | `GET /v1/agents/{id}` | one agent (404 if none) |
//! | `DELETE /v1/agents/{id}` | delete (404 if none) |

use std::time::Duration;

use axum::extract::{Path, State};
use execution_contract::agent::Agent;
use execution_contract::{AgentDelete, AgentGet, AgentList, AgentPut, Agents};
use platform::http::{ApiError, ApiJson, Authenticated};
use serde_json::{Map, Value};
use shared::{Action, ActionPayload, TenantId};

use crate::Gateway;

/// How long the execution service may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

async fn ask<T: ActionPayload>(
    gateway: &Gateway,
    tenant: TenantId,
    data: T,
) -> Result<T::Output, ApiError> {
    Ok(gateway
        .publisher
        .request(&Action::new(tenant, data), TIMEOUT)
        .await?)
}

/// "No agent X" from execution is a 404 here.
fn not_found_if_missing(err: ApiError, agent_id: &str) -> ApiError {
    if err.message.starts_with("no agent") {
        ApiError::not_found(format!("no agent {agent_id}"))
    } else {
        err
    }
}

/// `GET /v1/agents`
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "agents",
    operation_id = "agents_list",
    summary = "The tenant's agents, in `agent_id` order",
    responses(
        (status = 200, description = "The agents", body = crate::openapi::AgentList),
        (status = 401, description = "No or bad API key"),
        (status = 503, description = "NATS or the execution service unreachable"),
    ),
    security(("api_key" = [])),
)]
pub async fn list(
    State(gateway): State<Gateway>,
    auth: Authenticated,
) -> Result<ApiJson<Agents>, ApiError> {
    Ok(ApiJson(ask(&gateway, auth.tenant, AgentList {}).await?))
}

/// `GET /v1/agents/{id}`
#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}",
    tag = "agents",
    operation_id = "agents_get",
    summary = "One agent",
    params(("agent_id" = String, Path, description = "`[A-Za-z0-9_-]{1,64}`")),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 401, description = "No or bad API key"),
        (status = 404, description = "No such agent"),
    ),
    security(("api_key" = [])),
)]
pub async fn get(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    Path(agent_id): Path<String>,
) -> Result<ApiJson<Agent>, ApiError> {
    ask(
        &gateway,
        auth.tenant,
        AgentGet {
            agent_id: agent_id.clone(),
        },
    )
    .await
    .map(ApiJson)
    .map_err(|err| not_found_if_missing(err, &agent_id))
}

/// `PUT /v1/agents/{id}`
#[utoipa::path(
    put,
    path = "/v1/agents/{agent_id}",
    tag = "agents",
    operation_id = "agents_put",
    summary = "Create or replace an agent",
    description = "The body is the agent's fields, every one optional; `agent_id` is the path's.",
    params(("agent_id" = String, Path, description = "`[A-Za-z0-9_-]{1,64}`")),
    request_body = Agent,
    responses(
        (status = 200, description = "The agent as stored", body = Agent),
        (status = 400, description = "A field is invalid"),
        (status = 401, description = "No or bad API key"),
    ),
    security(("api_key" = [])),
)]
pub async fn put(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    Path(agent_id): Path<String>,
    ApiJson(mut fields): ApiJson<Map<String, Value>>,
) -> Result<ApiJson<Agent>, ApiError> {
    fields.insert("agent_id".into(), Value::String(agent_id));
    let agent: Agent = serde_json::from_value(Value::Object(fields))
        .map_err(|err| ApiError::bad_request(format!("agent: {err}")))?;
    Ok(ApiJson(
        ask(&gateway, auth.tenant, AgentPut { agent }).await?,
    ))
}

/// `DELETE /v1/agents/{id}`
#[utoipa::path(
    delete,
    path = "/v1/agents/{agent_id}",
    tag = "agents",
    operation_id = "agents_delete",
    summary = "Delete an agent",
    params(("agent_id" = String, Path, description = "`[A-Za-z0-9_-]{1,64}`")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::AgentDeleted),
        (status = 401, description = "No or bad API key"),
        (status = 404, description = "No such agent"),
    ),
    security(("api_key" = [])),
)]
pub async fn delete(
    State(gateway): State<Gateway>,
    auth: Authenticated,
    Path(agent_id): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let deleted = ask(
        &gateway,
        auth.tenant,
        AgentDelete {
            agent_id: agent_id.clone(),
        },
    )
    .await?;
    if deleted.deleted {
        Ok(ApiJson(
            serde_json::json!({"agent_id": agent_id, "deleted": true}),
        ))
    } else {
        Err(ApiError::not_found(format!("no agent {agent_id}")))
    }
}
