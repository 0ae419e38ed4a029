//! # The execution contract
//!
//! The payloads of the `execution` domain: agent runs, agents, sessions. The orchestrator
//! depends on this light crate, never on the execution service. The wire form is
//! `docs/wire.md`.
//!
//! - [`agent`]: [`Agent`], what an agent is allowed and told to do.
//! - [`session`]: [`Session`], a conversation.
//! - [`sampling`]: [`sampling::Sampling`], a chat model's temperature, answer length and
//!   `top_p`, per agent and per request.
//!
//! Citations and token usage are the query contract's own types, so an agent's answer and a
//! `query.answer` answer read the same to a client.

pub mod agent;
pub mod sampling;
pub mod session;

use serde::{Deserialize, Serialize};
use shared::ActionPayload;

pub use query_contract::{Citation, Usage};

use crate::agent::Agent;
use crate::session::Session;

/// `execution.agent_put`: create an agent or replace it whole (its `created_at` is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentPut {
    /// The agent; `created_at` and `updated_at` are set by the service, whatever comes.
    pub agent: Agent,
}

impl ActionPayload for AgentPut {
    const ACTION_TYPE: &'static str = "execution.agent_put";
    type Output = Agent;
}

/// `execution.agent_get`: one agent of the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentGet {
    /// Which.
    pub agent_id: String,
}

impl ActionPayload for AgentGet {
    const ACTION_TYPE: &'static str = "execution.agent_get";
    type Output = Agent;
}

/// `execution.agent_list`: every agent of the tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentList {}

impl ActionPayload for AgentList {
    const ACTION_TYPE: &'static str = "execution.agent_list";
    type Output = Agents;
}

/// The result of `execution.agent_list`, in `agent_id` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Agents {
    /// The agents.
    pub agents: Vec<Agent>,
}

/// `execution.agent_delete`: remove an agent (its conversations expire on their own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentDelete {
    /// Which.
    pub agent_id: String,
}

impl ActionPayload for AgentDelete {
    const ACTION_TYPE: &'static str = "execution.agent_delete";
    type Output = AgentDeleted;
}

/// The result of `execution.agent_delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentDeleted {
    /// Whether there was such an agent (deleting a missing one is not an error, so a
    /// retried delete succeeds).
    pub deleted: bool,
}

/// `execution.agent_run`: answer `message` in conversation `session_id` with an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentRun {
    /// The agent; the tenant's default agent ([`agent::DEFAULT_AGENT_ID`]) when absent.
    #[serde(default = "default_agent_id")]
    pub agent_id: String,
    /// The conversation (`[A-Za-z0-9_-]{1,64}`: it is a token of the event subject).
    pub session_id: String,
    /// The user's message.
    pub message: String,
    /// Also publish the answer's tokens, as they are written, to
    /// `orchestrator.<tenant>.events.session.<session_id>`.
    #[serde(default)]
    pub stream: bool,
    /// `temperature`, `max_tokens`, `top_p` for this run, over the agent's own.
    #[serde(flatten)]
    pub sampling: sampling::Sampling,
}

fn default_agent_id() -> String {
    agent::DEFAULT_AGENT_ID.to_owned()
}

impl ActionPayload for AgentRun {
    const ACTION_TYPE: &'static str = "execution.agent_run";
    type Output = Reply;
}

/// The result of `execution.agent_run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reply {
    /// The answer, with `[n]` markers pointing at `citations`.
    pub answer: String,
    /// The passages it cites (all passages used when it cites none by number).
    pub citations: Vec<Citation>,
    /// Tokens used, summed over every model call of the run.
    pub usage: Usage,
    /// Model calls made (1 for the extractive answerer and for answers without tools).
    pub iterations: u32,
    /// Who answered: a chat model's name, or `extractive`.
    pub model: String,
}

/// `execution.session_get`: a conversation as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionGet {
    /// Which.
    pub session_id: String,
}

impl ActionPayload for SessionGet {
    const ACTION_TYPE: &'static str = "execution.session_get";
    type Output = Session;
}

/// `execution.session_delete`: forget a conversation now rather than when it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionDelete {
    /// Which.
    pub session_id: String,
}

impl ActionPayload for SessionDelete {
    const ACTION_TYPE: &'static str = "execution.session_delete";
    type Output = SessionDeleted;
}

/// The result of `execution.session_delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionDeleted {
    /// Whether the tenant had such a session (deleting a missing one is not an error, so a
    /// retried delete succeeds).
    pub deleted: bool,
}
