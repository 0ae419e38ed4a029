//! `GET /v1/tasks/{task_id}` and its live variant.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use platform::http::{ApiError, ApiJson, Authenticated, QueryAuthenticated};

use super::Api;
use crate::task::{TaskState, check_id};

/// A task of the caller's tenant.
#[utoipa::path(
    get,
    path = "/v1/tasks/{task_id}",
    tag = "tasks",
    operation_id = "tasks_get",
    params(("task_id" = String, Path, description = "From the upload's answer")),
    responses(
        (status = 200, description = "Status, percentage, counts, error", body = TaskState),
        (status = 400, description = "Malformed id"),
        (status = 401, description = "No or bad API key"),
        (status = 404, description = "No such task"),
    ),
    security(("api_key" = [])),
)]
pub async fn get(
    State(api): State<Api>,
    auth: Authenticated,
    Path(task_id): Path<String>,
) -> Result<ApiJson<TaskState>, ApiError> {
    check_id("task_id", &task_id)?;
    api.service
        .tasks
        .get(&auth.tenant, &task_id)
        .await
        .map_err(shared::ActionError::from)?
        .map(ApiJson)
        .ok_or_else(|| ApiError::not_found(format!("no task {task_id}")))
}

/// The task now and at every change, as server-sent `progress` events; the stream ends
/// after the task completes or fails. The key may come as `?api_key=`, because a browser's
/// `EventSource` cannot send headers. Each open stream holds one of its tenant's
/// [`Api::event_streams`] places until it ends or the client goes away.
#[utoipa::path(
    get,
    path = "/v1/tasks/{task_id}/events",
    tag = "tasks",
    operation_id = "tasks_events",
    params(
        ("task_id" = String, Path, description = "From the upload's answer"),
        ("api_key" = Option<String>, Query,
            description = "An API key, for clients that cannot set headers (`EventSource`)"),
    ),
    responses(
        (status = 200, description = "Server-sent events named `progress`, each a `TaskState` \
            as JSON; the stream ends after `completed` or `failed`",
            content_type = "text/event-stream", body = TaskState),
        (status = 400, description = "Malformed id"),
        (status = 401, description = "No or bad API key"),
        (status = 404, description = "No such task"),
        (status = 429, description = "The tenant already holds as many event streams as it \
            may at once (`DA_INGEST_EVENT_STREAMS_PER_TENANT`); retry after `Retry-After` \
            seconds or close one"),
    ),
    security(("api_key" = [])),
)]
pub async fn events(
    State(api): State<Api>,
    auth: QueryAuthenticated,
    Path(task_id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check_id("task_id", &task_id)?;
    let slot = api.event_streams.acquire(&auth.tenant)?;
    if api
        .service
        .tasks
        .get(&auth.tenant, &task_id)
        .await
        .map_err(shared::ActionError::from)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no task {task_id}")));
    }
    let updates = api
        .service
        .tasks
        .watch(&auth.tenant, &task_id)
        .await
        .map_err(shared::ActionError::from)?;
    // Each update passes; the one after a final status ends the stream.
    let stream = updates
        .scan(false, |ended, task| {
            let next = (!*ended).then(|| {
                *ended = task.status.is_final();
                task
            });
            futures::future::ready(next)
        })
        // The stream owns the slot: it is given back when the response body is dropped,
        // at the end of the task or when the client disconnects.
        .map(move |task| {
            let _held = &slot;
            Ok(Event::default()
                .event("progress")
                .json_data(&task)
                .unwrap_or_else(|_| Event::default().event("progress")))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
