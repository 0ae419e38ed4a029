//! `GET /v1/chat`: the WebSocket upgrade.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::Response;
use platform::http::query_key::query_key;
use platform::http::{ApiError, ApiKeys, QueryAuthenticated};
use shared::TenantId;

use super::Api;
use crate::socket;

/// Upgrades to a chat connection (see [`crate::protocol`]).
///
/// A request that presents a key is authenticated before the upgrade, like any route: a
/// bad key is a 401 and no socket is opened. A request without one is upgraded anyway,
/// because a browser cannot set headers on a WebSocket and a key in the URL ends up in
/// logs; its first frame must then be `{"type":"auth","api_key"}`.
///
/// Each socket holds one of its tenant's [`Api::sockets`] places until it closes: a keyed
/// request past the cap is refused with 429 before the upgrade; a socket that
/// authenticates by frame past the cap gets an `error` frame (`unavailable`) and is closed
/// with 1013 (try again later).
#[utoipa::path(
    get,
    path = "/v1/chat",
    tag = "chat",
    operation_id = "chat",
    summary = "Open a chat WebSocket",
    description = concat!(
        "A WebSocket upgrade (`Connection: Upgrade`, `Upgrade: websocket`). The key goes in ",
        "`Authorization: Bearer`, in `?api_key=`, or, when neither is given (browsers), in a ",
        "first frame `{\"type\": \"auth\", \"api_key\": \"da_…\"}`.\n\n",
        "Every frame is one JSON text object with a `type`.\n\n",
        "Client to server:\n\n",
        "- `auth`: `api_key` (only on a connection opened without a key)\n",
        "- `message`: `session_id`, `agent_id` (each `[A-Za-z0-9_-]{1,64}`), `message` ",
        "(at most 32 KiB)\n\n",
        "Server to client:\n\n",
        "- `connection_ack`: authenticated; messages may be sent\n",
        "- `task_created`: `task_id`, `session_id`: a message was accepted\n",
        "- `stream_chunk`: `session_id`, `task_id`, `content`: one token of the answer\n",
        "- `response`: `task_id`, `session_id`, `answer`, `citations`, `usage`\n",
        "- `task_completed`: `task_id`, `session_id`\n",
        "- `error`: `code`, `message`, and `task_id`, `session_id` when concerned; a bad ",
        "frame is answered with code `invalid_action` and the connection stays open\n\n",
        "When the server stops, sockets are closed with 1001 (going away): reconnect.",
    ),
    params(("api_key" = Option<String>, Query,
        description = "An API key, for clients that cannot set headers (ends up in logs)")),
    responses(
        (status = 101, description = "Switching protocols: the chat connection"),
        (status = 401, description = "The request presented a bad key"),
        (status = 429, description = "The key's tenant already holds as many chat sockets \
            as it may at once (`DA_CHAT_SOCKETS_PER_TENANT`); retry after `Retry-After` \
            seconds or close one"),
        (status = 400, description = "Not a WebSocket upgrade request (upgrade headers)",
            content_type = "text/plain", body = String),
    ),
    security((), ("api_key" = [])),
)]
pub async fn chat(
    State(api): State<Api>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let max = api.config.max_frame_bytes;
    // A keyed caller's place is taken before the upgrade, so the refusal is a plain 429;
    // the closure owns it, so it is given back if the upgrade never completes.
    let opened = match caller.0 {
        Some(tenant) => {
            let slot = api.sockets.acquire(&tenant)?;
            socket::Opened::Keyed(tenant, slot)
        }
        None => socket::Opened::Anonymous,
    };
    Ok(upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |ws| socket::run(ws, api, opened)))
}

/// Who opens the connection: the tenant of the key the request presents, or nobody yet
/// when it presents none (the `auth` frame will say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(Option<TenantId>);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    ApiKeys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if !presents_key(parts) {
            return Ok(Self(None));
        }
        // A browser cannot set headers on a WebSocket: this route takes `?api_key=` too.
        let auth = QueryAuthenticated::from_request_parts(parts, state).await?;
        Ok(Self(Some(auth.tenant)))
    }
}

/// Whether the request carries a key at all (header or non-empty `api_key`): then that
/// key decides, and a bad one is refused rather than silently downgraded to an `auth`
/// frame the client does not mean to send.
fn presents_key(parts: &Parts) -> bool {
    parts.headers.contains_key(AUTHORIZATION) || query_key(&parts.uri).is_some()
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(uri: &str, authorization: Option<&str>) -> Parts {
        let mut request = Request::builder().uri(uri);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn a_key_is_presented_by_header_or_query() {
        assert!(presents_key(&parts("/v1/chat", Some("Bearer da_x"))));
        assert!(presents_key(&parts("/v1/chat", Some("Basic x"))));
        assert!(presents_key(&parts("/v1/chat?api_key=da_x", None)));
        assert!(!presents_key(&parts("/v1/chat", None)));
        assert!(!presents_key(&parts("/v1/chat?api_key=", None)));
        assert!(!presents_key(&parts("/v1/chat?other=1", None)));
    }
}
