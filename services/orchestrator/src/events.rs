//! Session events: what flows on `orchestrator.<tenant>.events.session.<session_id>`.
//!
//! Core NATS, not JetStream: events are live progress for whoever is watching now. Every
//! orchestrator instance holding a socket on the session subscribes to its subject, so an
//! event published by any instance (or by execution, for `stream_chunk`) reaches the right
//! socket wherever it is connected. Nothing is lost when nobody watches: the history is
//! execution's, readable through `GET /v1/sessions/{id}`.
//!
//! | type | published by | fields |
//! |---|---|---|
//! | `stream_chunk` | execution, while answering | `session_id`, `task_id`, `content` |
//! | `tool_call` | execution, when a chat agent's model calls a tool | `session_id`, `task_id`, `call_id`, `name`, `arguments` (JSON text) |
//! | `tool_result` | execution, when the tool has answered | `session_id`, `task_id`, `call_id`, `name`, `passages` (`number`, `document_id`, `source`), `error`? |
//! | `response` | the orchestrator, from the result | `task_id`, `session_id`, `answer`, `citations`, `usage` |
//! | `task_completed` | the orchestrator, after `response` | `task_id`, `session_id` |
//! | `error` | the orchestrator, from an error result | `task_id`, `session_id`, `code`, `message` |

use async_nats::Client;
use bytes::Bytes;
use serde::Serialize;
use shared::subject::{self, SubjectError};
use shared::{ActionError, ErrorCode, TenantId};

use execution_contract::{Citation, Usage};

/// The events subject of one session of one tenant. The tenant is in the subject, so a
/// socket of another tenant can never subscribe to it, whatever session id it sends.
pub fn session_subject(tenant: &TenantId, session_id: &str) -> Result<String, SubjectError> {
    subject::events(&crate::domain(), tenant, &format!("session.{session_id}"))
}

/// An event the orchestrator publishes about a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent<'a> {
    /// The agent's answer.
    Response {
        /// The task the answer belongs to.
        task_id: Option<&'a str>,
        /// Its session.
        session_id: &'a str,
        /// The answer text.
        answer: &'a str,
        /// The passages it cites.
        citations: &'a [Citation],
        /// Tokens used.
        usage: &'a Usage,
    },
    /// The task is over; nothing more will come for it.
    TaskCompleted {
        /// The task.
        task_id: Option<&'a str>,
        /// Its session.
        session_id: &'a str,
    },
    /// The task failed; nothing more will come for it.
    Error {
        /// The task.
        task_id: Option<&'a str>,
        /// Its session.
        session_id: &'a str,
        /// The wire contract code of the failure.
        code: ErrorCode,
        /// What went wrong, for a person.
        message: &'a str,
    },
}

impl SessionEvent<'_> {
    /// The event as the JSON body published (and forwarded to sockets unchanged).
    pub fn to_bytes(&self) -> Result<Bytes, serde_json::Error> {
        serde_json::to_vec(self).map(Bytes::from)
    }
}

/// Publishes session events; the callbacks handler finds it in the dispatcher's state.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    client: Client,
}

impl EventPublisher {
    /// Publishes on `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Publishes `events`, in order, on the session's subject and waits until the server
    /// has them, so a callback is acknowledged only after its events left this process.
    /// A session id that cannot name a subject is `invalid_action` (dead-lettered: nobody
    /// could be listening); a connection failure is `unavailable` (the callback is retried).
    pub async fn publish(
        &self,
        tenant: &TenantId,
        session_id: &str,
        events: &[SessionEvent<'_>],
    ) -> Result<(), ActionError> {
        let subject = session_subject(tenant, session_id)
            .map_err(|err| ActionError::invalid(format!("session_id: {err}")))?;
        for event in events {
            let body = event
                .to_bytes()
                .map_err(|err| ActionError::handler(format!("cannot encode an event: {err}")))?;
            self.client
                .publish(subject.clone(), body)
                .await
                .map_err(|err| ActionError::unavailable(format!("publish on {subject}: {err}")))?;
        }
        self.client
            .flush()
            .await
            .map_err(|err| ActionError::unavailable(format!("flush events on {subject}: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).expect("tenant")
    }

    #[test]
    fn subjects_carry_tenant_and_session() {
        assert_eq!(
            session_subject(&tenant("acme"), "s1").ok().as_deref(),
            Some("orchestrator.acme.events.session.s1")
        );
        assert!(session_subject(&tenant("acme"), "s.>").is_err());
        assert_ne!(
            session_subject(&tenant("acme"), "s1").ok(),
            session_subject(&tenant("globex"), "s1").ok()
        );
    }

    #[test]
    fn events_have_the_documented_shape() {
        let json = |event: SessionEvent| {
            serde_json::from_slice::<Value>(&event.to_bytes().expect("encode")).expect("JSON")
        };
        let citations = [Citation {
            number: 1,
            document_id: "d".into(),
            chunk_index: 2,
            collection: "c".into(),
            score: 0.5,
            title: Some("Cats".into()),
            file_name: None,
            heading: Some("Sleep".into()),
            page: Some(3),
            passage: "Cats sleep a lot.".into(),
        }];
        let usage = Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
            total_tokens: 3,
        };
        assert_eq!(
            json(SessionEvent::Response {
                task_id: Some("t"),
                session_id: "s",
                answer: "a",
                citations: &citations,
                usage: &usage,
            }),
            json!({"type": "response", "task_id": "t", "session_id": "s", "answer": "a",
                   "citations": [{"number": 1, "document_id": "d", "chunk_index": 2,
                                  "collection": "c", "score": 0.5, "title": "Cats",
                                  "heading": "Sleep", "page": 3,
                                  "passage": "Cats sleep a lot."}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
        );
        assert_eq!(
            json(SessionEvent::TaskCompleted {
                task_id: Some("t"),
                session_id: "s"
            }),
            json!({"type": "task_completed", "task_id": "t", "session_id": "s"})
        );
        assert_eq!(
            json(SessionEvent::Error {
                task_id: Some("t"),
                session_id: "s",
                code: ErrorCode::Timeout,
                message: "slow"
            }),
            json!({"type": "error", "task_id": "t", "session_id": "s", "code": "timeout",
                   "message": "slow"})
        );
    }
}
