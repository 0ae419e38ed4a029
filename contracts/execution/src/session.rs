//! [`Session`]: a conversation as `execution.session_get` returns it, turn by turn. The
//! execution service keeps sessions in its KV bucket `sessions`.

use serde::{Deserialize, Serialize};
use shared::ActionError;
use time::OffsetDateTime;

use crate::Citation;
use crate::agent::is_token;

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person (or the service acting for them).
    User,
    /// The agent.
    Assistant,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub at: OffsetDateTime,
    /// For an answer: the passages it cites, so a client can show sources for old turns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
}

impl Message {
    /// A user turn said `at`.
    pub fn user(content: impl Into<String>, at: OffsetDateTime) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
            at,
            citations: Vec::new(),
        }
    }

    /// An answer written now.
    pub fn assistant(content: impl Into<String>, citations: Vec<Citation>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
            at: OffsetDateTime::now_utc(),
            citations,
        }
    }
}

/// A conversation as stored (and as `execution.session_get` returns it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Session {
    /// Its id.
    pub session_id: String,
    /// The agent of its last run; empty for a session nothing was said in yet.
    #[serde(default)]
    pub agent_id: String,
    /// Its turns, oldest first.
    #[serde(default)]
    pub messages: Vec<Message>,
}

impl Session {
    /// A session nothing was said in yet.
    pub fn empty(session_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            agent_id: String::new(),
            messages: Vec::new(),
        }
    }

    /// Appends `messages`, then drops the oldest beyond `max`.
    pub fn push(&mut self, messages: impl IntoIterator<Item = Message>, max: usize) {
        self.messages.extend(messages);
        let excess = self.messages.len().saturating_sub(max);
        self.messages.drain(..excess);
    }
}

/// Checks a session id: it becomes a token of a KV key and of the event subject.
pub fn check_session_id(session_id: &str) -> Result<(), ActionError> {
    if is_token(session_id) {
        Ok(())
    } else {
        Err(ActionError::invalid(format!(
            "session_id {session_id:?} must be 1 to 64 of A-Z, a-z, 0-9, _ and -"
        )))
    }
}
