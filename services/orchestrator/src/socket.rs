//! One chat connection, from upgrade to close.
//!
//! A connection authenticates (unless the upgrade request did), acknowledges, then loops
//! over two sources at once: frames from the client and events of the sessions it follows.
//! Each session followed is one core NATS subscription to
//! `orchestrator.<tenant>.events.session.<session_id>`, held by this connection alone and
//! dropped (unsubscribed) when it closes.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use execution_contract::AgentRun;
use futures::StreamExt;
use futures::stream::SelectAll;
use platform::http::Slot;
use platform::http::auth::INVALID_KEY;
use shared::{Action, ActionError, CallbackSubject, ErrorCode, TenantId};
use tokio::time::timeout;
use uuid::Uuid;

use crate::events::session_subject;
use crate::protocol::{ChatMessage, ClientFrame, InvalidFrame, ServerFrame};
use crate::routes::Api;

/// How long a refused connection waits for the client's close reply before dropping it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The client went away: nothing more can be sent, so the connection ends.
#[derive(Debug, thiserror::Error)]
#[error("the client went away")]
struct Gone;

/// Why a message got `task_created` but could not be started; sent as an `error` frame
/// with the task's id, and the connection stays open.
#[derive(Debug, thiserror::Error)]
enum TaskError {
    /// The session's events could not be subscribed to (NATS is down).
    #[error("cannot follow the session's events: {0}")]
    Subscribe(String),
    /// The agent run could not be stored.
    #[error("cannot send the message to the agent: {0}")]
    Enqueue(ActionError),
}

impl TaskError {
    /// The wire code the client sees.
    fn code(&self) -> ErrorCode {
        match self {
            TaskError::Subscribe(_) => ErrorCode::Unavailable,
            TaskError::Enqueue(err) => err.code,
        }
    }
}

/// What a client frame turned out to be.
enum Incoming {
    Text(Utf8Bytes),
    Binary,
}

/// How a connection was opened.
pub enum Opened {
    /// The upgrade request's key named this tenant, and its socket place is already held.
    Keyed(TenantId, Slot),
    /// No key with the upgrade: the first frame must authenticate, then a place is taken.
    Anonymous,
}

/// Serves one upgraded connection; the tenant's socket place is held until it returns.
pub async fn run(mut ws: WebSocket, api: Api, opened: Opened) {
    let (tenant, _slot) = match opened {
        Opened::Keyed(tenant, slot) => (tenant, slot),
        Opened::Anonymous => {
            let Some(tenant) = authenticate(&mut ws, &api).await else {
                return;
            };
            match api.sockets.acquire(&tenant) {
                Ok(slot) => (tenant, slot),
                Err(refused) => {
                    // No wire code says "too many": unavailable (retryable) with the reason,
                    // and 1013, "try again later", like a key store that did not answer.
                    refuse(
                        &mut ws,
                        ErrorCode::Unavailable,
                        refused.message,
                        close_code::AGAIN,
                    )
                    .await;
                    return;
                }
            }
        }
    };
    let mut connection = Connection {
        ws,
        api,
        tenant,
        sessions: Sessions::default(),
    };
    if connection.send(&ServerFrame::ConnectionAck).await.is_ok() {
        connection.serve().await;
    }
    tracing::debug!(tenant = %connection.tenant, sessions = connection.sessions.followed.len(), "chat connection closed");
}

/// Reads the `auth` frame of a connection opened without a key and verifies its key.
/// Anything else, or nothing within the timeout, closes the connection with an `error`.
async fn authenticate(ws: &mut WebSocket, api: &Api) -> Option<TenantId> {
    let limit = api.config.auth_timeout;
    let first = match timeout(limit, next_frame(ws)).await {
        Ok(Some(first)) => first,
        Ok(None) => return None,
        Err(_) => {
            let why = format!(
                "no auth frame within {limit:?}: send {{\"type\":\"auth\",\"api_key\":\"da_…\"}} first"
            );
            refuse(ws, ErrorCode::Unauthorized, why, close_code::POLICY).await;
            return None;
        }
    };
    let api_key = match first {
        Incoming::Text(text) => match ClientFrame::parse(&text) {
            Ok(ClientFrame::Auth { api_key }) => Some(api_key),
            _ => None,
        },
        Incoming::Binary => None,
    };
    let Some(api_key) = api_key else {
        let why = "the first frame must be {\"type\":\"auth\",\"api_key\":\"da_…\"} (or send the key with the upgrade request)";
        refuse(ws, ErrorCode::Unauthorized, why, close_code::POLICY).await;
        return None;
    };
    match api.keys.verify(&api_key).await {
        Ok(Some(tenant)) => Some(tenant),
        Ok(None) => {
            refuse(ws, ErrorCode::Unauthorized, INVALID_KEY, close_code::POLICY).await;
            None
        }
        Err(err) => {
            // The key store did not answer: "try again later", not "your key is bad".
            refuse(
                ws,
                ErrorCode::Unavailable,
                err.to_string(),
                close_code::AGAIN,
            )
            .await;
            None
        }
    }
}

/// Sends an `error` frame, then closes with `code`, giving the client a moment to answer
/// the close so it sees a clean close rather than a reset.
async fn refuse(ws: &mut WebSocket, code: ErrorCode, message: impl Into<String>, close: u16) {
    let frame = ServerFrame::error(code, message);
    let _ = ws.send(Message::Text(frame.to_json().into())).await;
    let close = CloseFrame {
        code: close,
        reason: Utf8Bytes::from_static(code.as_str()),
    };
    if ws.send(Message::Close(Some(close))).await.is_ok() {
        let _ = timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = ws.recv().await {}
        })
        .await;
    }
}

/// The next text or binary frame; `None` once the client closed or the connection broke.
/// Pings are answered by the WebSocket layer and skipped here.
async fn next_frame(ws: &mut WebSocket) -> Option<Incoming> {
    while let Some(Ok(message)) = ws.recv().await {
        match message {
            Message::Text(text) => return Some(Incoming::Text(text)),
            Message::Binary(_) => return Some(Incoming::Binary),
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    None
}

/// The sessions a connection follows and their merged events.
#[derive(Default)]
struct Sessions {
    followed: HashSet<String>,
    events: SelectAll<Subscriber>,
}

impl Sessions {
    /// Subscribes to the session's events unless already subscribed. The subscription is
    /// sent on the same connection as the agent run that follows it, so the server has it
    /// before execution can publish the first token.
    async fn follow(
        &mut self,
        client: &Client,
        tenant: &TenantId,
        session_id: &str,
    ) -> Result<(), TaskError> {
        if self.followed.contains(session_id) {
            return Ok(());
        }
        let subject = session_subject(tenant, session_id)
            .map_err(|err| TaskError::Subscribe(err.to_string()))?;
        let subscriber = client
            .subscribe(subject)
            .await
            .map_err(|err| TaskError::Subscribe(err.to_string()))?;
        self.followed.insert(session_id.to_owned());
        self.events.push(subscriber);
        Ok(())
    }
}

/// An authenticated connection.
struct Connection {
    ws: WebSocket,
    api: Api,
    tenant: TenantId,
    sessions: Sessions,
}

impl Connection {
    /// Serves frames and events until the client goes away or the server stops; the
    /// subscriptions are dropped with the connection.
    async fn serve(&mut self) {
        let shutdown = self.api.shutdown.clone();
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => {
                    let away = CloseFrame {
                        code: close_code::AWAY,
                        reason: Utf8Bytes::from_static("server stopping; reconnect"),
                    };
                    let _ = self.ws.send(Message::Close(Some(away))).await;
                    break;
                },
                incoming = next_frame(&mut self.ws) => match incoming {
                    Some(incoming) => self.on_frame(incoming).await,
                    None => break,
                },
                Some(event) = self.sessions.events.next(), if !self.sessions.events.is_empty() => {
                    self.forward(event).await
                }
            };
            if outcome.is_err() {
                break;
            }
        }
    }

    /// Handles one client frame. A bad frame is answered with an `error` and the
    /// connection stays open.
    async fn on_frame(&mut self, incoming: Incoming) -> Result<(), Gone> {
        let frame = match incoming {
            Incoming::Text(text) => ClientFrame::parse(&text),
            Incoming::Binary => Err(InvalidFrame::Binary),
        };
        match frame {
            Ok(ClientFrame::Message(message)) => self.on_message(message).await,
            Ok(ClientFrame::Auth { .. }) => self.invalid(InvalidFrame::AlreadyAuthenticated).await,
            Err(why) => self.invalid(why).await,
        }
    }

    /// Starts a task for a user message: `task_created`, then the session's events are
    /// followed, then the agent run is enqueued with this tenant's callbacks as its
    /// callback, so the result comes back to some orchestrator instance durably. The
    /// connection only ends (`Gone`) when the client can no longer be written to.
    async fn on_message(&mut self, message: ChatMessage) -> Result<(), Gone> {
        if let Err(why) = message.validate() {
            return self.invalid(why).await;
        }
        let new_session = !self.sessions.followed.contains(&message.session_id);
        if new_session && self.sessions.followed.len() >= self.api.config.max_sessions {
            let why = format!(
                "this connection already follows {} sessions; open another connection for more",
                self.sessions.followed.len()
            );
            return self
                .send(&ServerFrame::error(ErrorCode::InvalidAction, why))
                .await;
        }
        let task_id = Uuid::now_v7().to_string();
        let session_id = message.session_id.clone();
        let created = self
            .send(&ServerFrame::TaskCreated {
                task_id: task_id.clone(),
                session_id: session_id.clone(),
            })
            .await;
        // A message that was received is started even if the client is already gone (a
        // closed tab): its answer then waits in the session's history.
        let started = self.start(message, &task_id).await;
        created?;
        if let Err(err) = started {
            tracing::warn!(tenant = %self.tenant, %session_id, %task_id, %err, "chat message not started");
            let frame = ServerFrame::Error {
                code: err.code(),
                message: err.to_string(),
                task_id: Some(task_id),
                session_id: Some(session_id),
            };
            return self.send(&frame).await;
        }
        Ok(())
    }

    /// Follows the session, then enqueues `execution.agent_run` (streaming on).
    async fn start(&mut self, message: ChatMessage, task_id: &str) -> Result<(), TaskError> {
        let client = self.api.publisher.client();
        self.sessions
            .follow(client, &self.tenant, &message.session_id)
            .await?;
        let callback = CallbackSubject::callbacks(&crate::domain(), &self.tenant);
        let session_id = message.session_id.clone();
        let run = AgentRun {
            agent_id: message.agent_id,
            session_id: message.session_id,
            message: message.message,
            stream: true,
            sampling: message.sampling,
        };
        let action = Action::new(self.tenant.clone(), run)
            .with_session(session_id)
            .with_task(task_id)
            .with_callback(&callback);
        self.api
            .publisher
            .enqueue(&action)
            .await
            .map_err(|err| TaskError::Enqueue(err.into()))?;
        tracing::debug!(tenant = %self.tenant, %task_id, action_id = %action.action_id, "agent run enqueued");
        Ok(())
    }

    /// Forwards a session event unchanged.
    async fn forward(&mut self, event: async_nats::Message) -> Result<(), Gone> {
        match Utf8Bytes::try_from(event.payload) {
            Ok(text) => self.ws.send(Message::Text(text)).await.map_err(|_| Gone),
            Err(_) => {
                tracing::warn!(subject = %event.subject, "session event is not UTF-8; not forwarded");
                Ok(())
            }
        }
    }

    /// Answers a refused frame with `invalid_action`.
    async fn invalid(&mut self, why: InvalidFrame) -> Result<(), Gone> {
        self.send(&ServerFrame::error(
            ErrorCode::InvalidAction,
            why.to_string(),
        ))
        .await
    }

    /// Sends one of the server's own frames.
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), Gone> {
        self.ws
            .send(Message::Text(frame.to_json().into()))
            .await
            .map_err(|_| Gone)
    }
}
