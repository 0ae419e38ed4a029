//! Turning a message, its conversation and the tenant's documents into an answer.
//!
//! - [`extractive`]: the offline default: quotes the best passages (no model, deterministic).
//! - [`chat`]: an OpenAI-compatible chat API with the passages in the prompt.
//! - [`react`]: the same API in a ReAct loop, searching through the `knowledge` tool.
//! - [`local`]: a small model in the process (offline), with the passages in the prompt.
//!
//! Which one runs follows `DA_ANSWERER`, as in the query service ([`AgentAnswerer`]):
//! extractive by default, or with `DA_CHAT_API_URL` set; with the chat API, the ReAct loop
//! when the agent has `retrieval` and `tools`, else one chat call (with passages when it
//! has `retrieval`); with the local model, one generation (it calls no tools).

pub mod chat;
pub mod extractive;
pub mod local;
pub mod react;

use std::time::Duration;

use answering::{Question, ScoredChunk};
use shared::ActionError;

use crate::agent::Agent;
use crate::history::Message;
use crate::knowledge::{Knowledge, Passages};

/// Who answers the service's runs.
#[derive(Clone)]
pub enum AgentAnswerer {
    /// Quotes the passages found ([`extractive`]).
    Extractive,
    /// An OpenAI-compatible chat API ([`chat`], [`react`]).
    Chat(chat::ChatAgent),
    /// The model in the process ([`local`]).
    Local(local::LocalAgent),
}

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

impl Turn<'_> {
    /// The passages found with the message, at most `top_k`, when the agent has
    /// `retrieval`; none otherwise.
    pub async fn passages<K: Knowledge>(
        &self,
        knowledge: &K,
        top_k: usize,
    ) -> Result<Passages, ActionError> {
        let mut passages = Passages::default();
        if self.agent.retrieval {
            passages.add(
                knowledge
                    .search(self.message, top_k, self.search_timeout)
                    .await?,
            );
        }
        Ok(passages)
    }

    /// What a model answering in one call reads last: with `retrieval`, the message after
    /// `passages` numbered as the query service's chat answerer numbers them; without, the
    /// message alone.
    pub fn user_message(&self, passages: &[ScoredChunk]) -> String {
        if self.agent.retrieval {
            answering::chat::prompt(&Question {
                query: self.message,
                passages,
                system_prompt: None,
                model: None,
            })
        } else {
            self.message.to_owned()
        }
    }

    /// The agent's prompt, followed by how to use numbered passages when it has
    /// `retrieval`.
    pub fn system_prompt(&self) -> Option<String> {
        chat::system_prompt(
            &self.agent.system_prompt,
            self.agent.retrieval.then_some(chat::PASSAGE_RULES),
        )
    }
}
