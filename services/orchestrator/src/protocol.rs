//! The chat WebSocket protocol: the JSON text frames a client and the server exchange on
//! `GET /v1/chat`.
//!
//! Every frame is one JSON object with a `type`. The client sends:
//!
//! | type | fields | when |
//! |---|---|---|
//! | `auth` | `api_key` | first frame of a connection opened without a key (browsers) |
//! | `message` | `session_id`, `agent_id`, `message` | any time once authenticated |
//!
//! The server sends its own frames ([`ServerFrame`]: `connection_ack`, `task_created`,
//! `error`) and forwards the session events published on
//! `orchestrator.<tenant>.events.session.<session_id>` unchanged (`stream_chunk`,
//! `response`, `task_completed`, `error`).
//!
//! A frame that does not parse or validate is answered with an `error` frame of code
//! `invalid_action` and the connection stays open: one bad message from a UI should not
//! cost the user their live sessions.

use serde::{Deserialize, Serialize};
use shared::ErrorCode;

/// The longest `message` accepted, in bytes of UTF-8: an agent prompt, not a document
/// (documents go through ingestion).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// The longest session or agent id: one NATS subject token, like a tenant id.
pub const MAX_ID_LEN: usize = 64;

/// A frame from the client. Unknown types are refused rather than ignored, so a client
/// typo shows up as an error instead of a message that silently never gets an answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Authenticates a connection opened without a key: browsers cannot set headers on a
    /// WebSocket, and a key in the URL ends up in logs.
    Auth {
        /// An API key (`da_…`); its tenant becomes the connection's.
        api_key: String,
    },
    /// A user message for an agent.
    Message(ChatMessage),
}

impl ClientFrame {
    /// Parses a text frame; the error says what is wrong, for the client's developer.
    pub fn parse(text: &str) -> Result<Self, InvalidFrame> {
        serde_json::from_str(text).map_err(|err| InvalidFrame::Json(err.to_string()))
    }
}

/// A user message: which conversation, which agent, what was said.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChatMessage {
    /// The conversation; the client chooses it, so a reconnecting UI can continue one.
    pub session_id: String,
    /// The agent that answers; the tenant's default agent (`assistant`) when absent.
    #[serde(default = "default_agent_id")]
    pub agent_id: String,
    /// What the user said.
    pub message: String,
    /// `temperature`, `max_tokens`, `top_p` for this answer, over the agent's own.
    #[serde(flatten)]
    pub sampling: execution_contract::sampling::Sampling,
}

fn default_agent_id() -> String {
    execution_contract::agent::DEFAULT_AGENT_ID.to_owned()
}

impl ChatMessage {
    /// Checks the ids (they end up in subjects and keys) and the message size before
    /// anything is sent on, so a bad message costs no action and no model call.
    pub fn validate(&self) -> Result<(), InvalidFrame> {
        for (field, value) in [
            ("session_id", &self.session_id),
            ("agent_id", &self.agent_id),
        ] {
            if !is_valid_id(value) {
                return Err(InvalidFrame::Id {
                    field,
                    value: value.clone(),
                });
            }
        }
        if self.message.trim().is_empty() {
            return Err(InvalidFrame::EmptyMessage);
        }
        if self.message.len() > MAX_MESSAGE_BYTES {
            return Err(InvalidFrame::MessageTooLong(self.message.len()));
        }
        self.sampling
            .validate()
            .map_err(|err| InvalidFrame::Sampling(err.message))
    }
}

/// Whether `id` is `[A-Za-z0-9_-]{1,64}`: one NATS subject token, so a session id can name
/// its events subject without escaping and cannot reach another session's (`*`, `>`, `.`).
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why a client frame was refused; the message is sent back in the `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFrame {
    /// Not JSON, or not one of the frame types.
    #[error(
        "not a chat frame ({0}); send {{\"type\":\"message\",\"session_id\",\"agent_id\",\"message\"}}"
    )]
    Json(String),
    /// A binary frame: the protocol is JSON text.
    #[error("binary frames are not accepted; send JSON text frames")]
    Binary,
    /// A session or agent id breaks the id rule.
    #[error("invalid {field} {value:?}: expected 1 to {MAX_ID_LEN} of [A-Za-z0-9_-]")]
    Id {
        /// `session_id` or `agent_id`.
        field: &'static str,
        /// What was sent.
        value: String,
    },
    /// The message is empty or only whitespace.
    #[error("message is empty")]
    EmptyMessage,
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message is {0} bytes; at most {MAX_MESSAGE_BYTES} are accepted")]
    MessageTooLong(usize),
    /// An `auth` frame on a connection that is already authenticated.
    #[error("this connection is already authenticated")]
    AlreadyAuthenticated,
    /// `temperature`, `max_tokens` or `top_p` out of range.
    #[error("{0}")]
    Sampling(String),
}

/// A frame the server writes itself. Session events are not among them: they are forwarded
/// byte for byte as published, so every instance sends the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The connection is authenticated; messages may be sent.
    ConnectionAck,
    /// A message was accepted: its answer will come as events carrying this `task_id`.
    TaskCreated {
        /// The new task (UUID v7), on every event of this answer.
        task_id: String,
        /// The session it belongs to.
        session_id: String,
    },
    /// Something the client sent was refused or could not be passed on.
    Error {
        /// A wire contract code: `unauthorized`, `invalid_action`, `unavailable`, ….
        code: ErrorCode,
        /// What went wrong, for a person.
        message: String,
        /// The task concerned, when the failure happened after `task_created`.
        #[serde(skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
        /// The session concerned, when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
    },
}

impl ServerFrame {
    /// An error about the connection or a frame, not about a task.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            task_id: None,
            session_id: None,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // A tagged enum of strings and a `Copy` code always serialises; the fallback only
        // keeps this total.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"handler_error","message":"unencodable frame"}"#.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn message(session_id: &str, agent_id: &str, text: &str) -> ChatMessage {
        ChatMessage {
            session_id: session_id.into(),
            agent_id: agent_id.into(),
            message: text.into(),
            sampling: Default::default(),
        }
    }

    #[test]
    fn a_message_may_set_its_sampling_and_a_bad_value_is_refused() {
        let frame = ClientFrame::parse(
            r#"{"type":"message","session_id":"s","message":"hi","temperature":0.9,"top_p":0.5}"#,
        )
        .expect("frame");
        let ClientFrame::Message(message) = frame else {
            panic!("not a message: {frame:?}");
        };
        assert_eq!(message.sampling.temperature, Some(0.9));
        assert_eq!(message.sampling.top_p, Some(0.5));
        assert_eq!(message.sampling.max_tokens, None);
        assert_eq!(message.validate(), Ok(()));
        let mut hot = message;
        hot.sampling.temperature = Some(3.0);
        let err = hot.validate().expect_err("too hot");
        assert!(err.to_string().contains("temperature"), "{err}");
    }

    #[test]
    fn parses_both_client_frames() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"auth","api_key":"da_x"}"#),
            Ok(ClientFrame::Auth {
                api_key: "da_x".into()
            })
        );
        assert_eq!(
            ClientFrame::parse(
                r#"{"type":"message","session_id":"s1","agent_id":"a","message":"hi","extra":1}"#
            ),
            Ok(ClientFrame::Message(message("s1", "a", "hi")))
        );
        for bad in [
            "nope",
            "{}",
            r#"{"type":"shout"}"#,
            r#"{"type":"message","session_id":"s1"}"#,
        ] {
            assert!(
                matches!(ClientFrame::parse(bad), Err(InvalidFrame::Json(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn validates_ids_and_message_size() {
        assert_eq!(message("s-1_A", "agent", "hi").validate(), Ok(()));
        let long_id = "a".repeat(MAX_ID_LEN + 1);
        for (session, agent) in [("", "a"), ("s.1", "a"), ("s1", "a*"), ("s1", &long_id)] {
            assert!(
                matches!(
                    message(session, agent, "hi").validate(),
                    Err(InvalidFrame::Id { .. })
                ),
                "{session} {agent}"
            );
        }
        assert_eq!(
            message("s", "a", " \n").validate(),
            Err(InvalidFrame::EmptyMessage)
        );
        let at_limit = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(message("s", "a", &at_limit).validate(), Ok(()));
        assert_eq!(
            message("s", "a", &format!("{at_limit}y")).validate(),
            Err(InvalidFrame::MessageTooLong(MAX_MESSAGE_BYTES + 1))
        );
    }

    #[test]
    fn server_frames_have_the_protocol_shape() {
        let json = |frame: ServerFrame| serde_json::from_str::<Value>(&frame.to_json()).ok();
        assert_eq!(
            json(ServerFrame::ConnectionAck),
            Some(json!({"type": "connection_ack"}))
        );
        assert_eq!(
            json(ServerFrame::TaskCreated {
                task_id: "t".into(),
                session_id: "s".into()
            }),
            Some(json!({"type": "task_created", "task_id": "t", "session_id": "s"}))
        );
        assert_eq!(
            json(ServerFrame::error(ErrorCode::InvalidAction, "bad")),
            Some(json!({"type": "error", "code": "invalid_action", "message": "bad"}))
        );
    }
}
