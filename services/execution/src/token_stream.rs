//! Streaming an answer while it is written: each token goes out as a core NATS message
//! (not JetStream: a token nobody is watching is worth nothing later, and storing every
//! token would cost more than the answer) on the session's event subject,
//! `orchestrator.<tenant>.events.session.<session_id>`, where the orchestrator relays events
//! to the person's browser. The complete answer is always the action's result; streaming
//! is best-effort, so a failed publish is logged and the run goes on.
//!
//! Each message is JSON:
//! `{"type": "stream_chunk", "session_id", "task_id", "content": "<token>"}`, `task_id` being
//! the run's task id (its action id when it has none), so a client can tell two runs in
//! one session apart. The tokens of one run, concatenated, are the answer. While a chat
//! agent searches, the same subject carries what it does ([`ToolEvent`]):
//! `{"type": "tool_call", "session_id", "task_id", "call_id", "name", "arguments"}` when the
//! model calls a tool, and `{"type": "tool_result", …, "call_id", "name", "passages":
//! [{"number", "document_id", "source"}], "error"?}` when the tool has answered.

use std::future::Future;

use serde::Serialize;
use shared::{ActionError, Ctx, Domain, subject};

/// The domain whose event subjects carry a session's events to its client.
pub const EVENTS_DOMAIN: &str = "orchestrator";

/// The `type` of a token message.
pub const STREAM_CHUNK: &str = "stream_chunk";

/// Takes the tokens of an answer as they are written, and what the agent does meanwhile.
pub trait TokenSink: Sync {
    /// Passes on one token.
    fn token(&self, token: &str) -> impl Future<Output = ()> + Send;

    /// Passes on a tool call or its result; nothing by default.
    fn tool(&self, event: &ToolEvent<'_>) -> impl Future<Output = ()> + Send {
        let _ = event;
        async {}
    }
}

/// A tool call of the agent, or its result, as the session's client sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolEvent<'a> {
    /// The model asked for a tool.
    ToolCall {
        /// The model's id of the call, which its result repeats.
        call_id: &'a str,
        /// The tool.
        name: &'a str,
        /// Its arguments, JSON text as the model wrote them.
        arguments: &'a str,
    },
    /// The tool answered.
    ToolResult {
        /// The call's id.
        call_id: &'a str,
        /// The tool.
        name: &'a str,
        /// The passages it returned (numbered as the answer's `[n]` will cite them).
        passages: Vec<ToolPassage>,
        /// Why it returned none, if it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// A passage a tool returned, named as a reader would name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolPassage {
    /// Its number in the run (the answer's `[n]`).
    pub number: usize,
    /// Its document.
    pub document_id: String,
    /// Title, heading and page when known, else document and part.
    pub source: String,
}

/// A session event: the session and run, then the event's own fields.
#[derive(Serialize)]
struct SessionEvent<'a, E> {
    session_id: &'a str,
    task_id: &'a str,
    #[serde(flatten)]
    event: E,
}

/// One token message, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamChunk<'a> {
    /// Always [`STREAM_CHUNK`].
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The conversation.
    pub session_id: &'a str,
    /// The run.
    pub task_id: &'a str,
    /// The token.
    pub content: &'a str,
}

/// Publishes tokens to a session's event subject.
pub struct SessionStream {
    client: async_nats::Client,
    subject: String,
    session_id: String,
    task_id: String,
}

impl SessionStream {
    /// The stream of session `session_id` of the action's tenant, for run `task_id`.
    pub fn new(ctx: &Ctx, session_id: &str, task_id: &str) -> Result<Self, ActionError> {
        let domain = Domain::new(EVENTS_DOMAIN)
            .map_err(|err| ActionError::handler(format!("events domain: {err}")))?;
        let subject = subject::events(&domain, ctx.tenant(), &format!("session.{session_id}"))
            .map_err(|err| ActionError::invalid(format!("session_id {session_id:?}: {err}")))?;
        Ok(Self {
            client: ctx.publisher()?.client().clone(),
            subject,
            session_id: session_id.to_owned(),
            task_id: task_id.to_owned(),
        })
    }

    /// Where the tokens go.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl SessionStream {
    /// Publishes one event, best-effort (see the module documentation).
    async fn publish(&self, event: &impl Serialize) {
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!(%err, "cannot encode a session event");
                return;
            }
        };
        if let Err(err) = self.client.publish(self.subject.clone(), body.into()).await {
            tracing::warn!(%err, subject = %self.subject, "cannot publish a session event");
        }
    }
}

impl TokenSink for SessionStream {
    async fn token(&self, token: &str) {
        self.publish(&StreamChunk {
            kind: STREAM_CHUNK,
            session_id: &self.session_id,
            task_id: &self.task_id,
            content: token,
        })
        .await;
    }

    async fn tool(&self, event: &ToolEvent<'_>) {
        self.publish(&SessionEvent {
            session_id: &self.session_id,
            task_id: &self.task_id,
            event,
        })
        .await;
    }
}

/// `text` cut after each run of whitespace: words with their trailing space, which
/// concatenate back to exactly `text`. How an answer written all at once (the extractive
/// answerer's) is streamed, so clients see the same kind of events either way.
pub fn word_chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let end = rest[word_end..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |i| word_end + i);
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Collects tokens in memory.
    #[derive(Default)]
    pub struct Collect(pub Mutex<Vec<String>>);

    impl Collect {
        pub fn tokens(&self) -> Vec<String> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }

    impl TokenSink for Collect {
        async fn token(&self, token: &str) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(token.to_owned());
        }
    }

    #[test]
    fn word_chunks_concatenate_to_the_text() {
        let text = "Cats sleep  a lot. [1]\nDogs bark.";
        let chunks: Vec<&str> = word_chunks(text).collect();
        assert_eq!(
            chunks,
            ["Cats ", "sleep  ", "a ", "lot. ", "[1]\n", "Dogs ", "bark."]
        );
        assert_eq!(chunks.concat(), text);
        assert_eq!(word_chunks("").count(), 0);
        assert_eq!(word_chunks("  lead").collect::<Vec<_>>(), ["  ", "lead"]);
    }

    #[test]
    fn chunks_have_the_wire_shape() {
        let chunk = StreamChunk {
            kind: STREAM_CHUNK,
            session_id: "s1",
            task_id: "t1",
            content: "Hi ",
        };
        assert_eq!(
            serde_json::to_value(chunk).expect("json"),
            serde_json::json!({"type": "stream_chunk", "session_id": "s1", "task_id": "t1", "content": "Hi "})
        );
    }
}
