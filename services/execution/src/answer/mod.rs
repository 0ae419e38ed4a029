//! Turning a message, its conversation and the tenant's documents into an answer.
//!
//! - [`extractive`]: the offline default: quotes the best passages (no model, deterministic).
//! - [`chat`]: an OpenAI-compatible chat API with the passages in the prompt.
//! - [`react`]: the same API in a ReAct loop, searching through the `knowledge` tool.
//!
//! Which one runs: no `DA_CHAT_API_URL` → extractive; otherwise the ReAct loop when the
//! agent has `retrieval` and `tools`, else one chat call (with passages when it has
//! `retrieval`).

pub mod chat;
pub mod extractive;
pub mod react;

use std::time::Duration;

use crate::agent::Agent;
use crate::history::Message;

/// What a run answers.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    /// The agent answering.
    pub agent: &'a Agent,
    /// The conversation so far, oldest first.
    pub history: &'a [Message],
    /// The new message.
    pub message: &'a str,
    /// How long the search made with the message may take (`DA_EXECUTION_SEARCH_TIMEOUT`);
    /// tool searches take the agent's `tool_timeout_ms` instead.
    pub search_timeout: Duration,
}
