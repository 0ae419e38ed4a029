//! [`Agent`]: what an agent is allowed and told to do. The execution service keeps agents
//! in its KV bucket `agents`; clients create, read and list them with the
//! `execution.agent_*` actions (and the gateway's `/v1/agents`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::ActionError;
use time::OffsetDateTime;

use crate::sampling::Sampling;

/// The longest system prompt accepted: generous for instructions, small enough that a
/// stored agent never nears the KV value limit.
pub const MAX_SYSTEM_PROMPT_BYTES: usize = 64 * 1024;

/// Model calls a run may make at most, whatever an agent asks for: bounds the cost of a
/// model that never stops calling tools.
pub const MAX_ITERATIONS: u32 = 50;

/// The longest tool call an agent may allow (10 minutes).
pub const MAX_TOOL_TIMEOUT_MS: u64 = 600_000;

/// The agent every tenant has: a run or chat message that names no agent goes to it, and
/// the first run that needs it stores it (so it can then be listed, edited or replaced).
pub const DEFAULT_AGENT_ID: &str = "assistant";

/// A stored agent. Every field but `agent_id` has a default, so a client can create an
/// agent by naming only what differs from the defaults.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct Agent {
    /// Its id, unique within the tenant: `[A-Za-z0-9_-]{1,64}` (a KV key token).
    pub agent_id: String,
    /// What people call it; the `agent_id` when not given.
    #[serde(default)]
    pub name: String,
    /// Its instructions to a chat model (the extractive answerer has no use for them).
    #[serde(default)]
    pub system_prompt: String,
    /// A chat model other than the configured `DA_CHAT_MODEL`.
    #[serde(default)]
    pub model: Option<String>,
    /// Whether runs search the tenant's documents (the Python system's agents always did).
    #[serde(default = "yes")]
    pub retrieval: bool,
    /// The collections searched; empty: all of the tenant's.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Passages per search (1 to 100).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Passages scoring below this (cosine, -1 to 1) are not used.
    #[serde(default)]
    pub score_threshold: Option<f32>,
    /// Model calls a run may make before it stops (10 by default, as before; 1 to 50).
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u32,
    /// How long one `knowledge` tool call may take, in milliseconds.
    #[serde(default = "default_tool_timeout_ms")]
    pub tool_timeout_ms: u64,
    /// With a chat API: let the model search when it wants to through the `knowledge` tool
    /// (a ReAct loop) instead of searching once with the message; ignored by the
    /// extractive answerer.
    #[serde(default = "yes")]
    pub tools: bool,
    /// `temperature`, `max_tokens`, `top_p` for a chat model (a run may set them again).
    #[serde(flatten)]
    pub sampling: Sampling,
    /// When it was first stored.
    #[serde(with = "time::serde::rfc3339", default = "OffsetDateTime::now_utc")]
    #[schema(value_type = String, format = DateTime)]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: OffsetDateTime,
    /// When it was last stored.
    #[serde(with = "time::serde::rfc3339", default = "OffsetDateTime::now_utc")]
    #[schema(value_type = String, format = DateTime)]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub updated_at: OffsetDateTime,
}

fn yes() -> bool {
    true
}

fn default_top_k() -> usize {
    5
}

fn default_max_iterations() -> u32 {
    10
}

fn default_tool_timeout_ms() -> u64 {
    30_000
}

impl Agent {
    /// The tenant's default agent ([`DEFAULT_AGENT_ID`]) as first stored: retrieval over
    /// every collection of the tenant, with instructions to answer from its documents.
    pub fn default_agent() -> Self {
        Self {
            name: "Assistant".to_owned(),
            system_prompt: "You answer questions about the documents uploaded to this workspace."
                .to_owned(),
            ..Self::new(DEFAULT_AGENT_ID)
        }
    }

    /// An agent with every default, for tests and tools that build one in code.
    pub fn new(agent_id: impl Into<String>) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            agent_id: agent_id.into(),
            name: String::new(),
            system_prompt: String::new(),
            model: None,
            retrieval: true,
            collections: Vec::new(),
            top_k: default_top_k(),
            score_threshold: None,
            max_iterations: default_max_iterations(),
            tool_timeout_ms: default_tool_timeout_ms(),
            tools: true,
            sampling: Sampling::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// How long one tool call may take.
    pub fn tool_timeout(&self) -> Duration {
        Duration::from_millis(self.tool_timeout_ms)
    }

    /// Refuses an agent a run could not use, naming the field, so the mistake surfaces when
    /// the agent is stored rather than at its first run.
    pub fn validate(&self) -> Result<(), ActionError> {
        check_agent_id(&self.agent_id)?;
        if self.name.chars().count() > 256 || self.name.chars().any(char::is_control) {
            return Err(ActionError::invalid(
                "name must be at most 256 characters without control characters",
            ));
        }
        if self.system_prompt.len() > MAX_SYSTEM_PROMPT_BYTES {
            return Err(ActionError::invalid(format!(
                "system_prompt is {} bytes; at most {MAX_SYSTEM_PROMPT_BYTES} are accepted",
                self.system_prompt.len()
            )));
        }
        if let Some(model) = &self.model {
            let ok = !model.trim().is_empty()
                && model.len() <= 256
                && !model.chars().any(char::is_control);
            if !ok {
                return Err(ActionError::invalid(
                    "model must be 1 to 256 bytes without control characters (or absent)",
                ));
            }
        }
        for collection in &self.collections {
            query_contract::check_name("collection", collection)?;
        }
        query_contract::check_top_k(self.top_k)?;
        if let Some(threshold) = self.score_threshold
            && !(threshold.is_finite() && (-1.0..=1.0).contains(&threshold))
        {
            return Err(ActionError::invalid(format!(
                "score_threshold is {threshold}; it must be -1 to 1"
            )));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.max_iterations) {
            return Err(ActionError::invalid(format!(
                "max_iterations is {}; it must be 1 to {MAX_ITERATIONS}",
                self.max_iterations
            )));
        }
        if !(1..=MAX_TOOL_TIMEOUT_MS).contains(&self.tool_timeout_ms) {
            return Err(ActionError::invalid(format!(
                "tool_timeout_ms is {}; it must be 1 to {MAX_TOOL_TIMEOUT_MS}",
                self.tool_timeout_ms
            )));
        }
        self.sampling.validate()
    }
}

/// Checks an agent id: it becomes a token of a KV key, which must not contain `.`, `*`, `>`
/// or spaces.
pub fn check_agent_id(agent_id: &str) -> Result<(), ActionError> {
    if is_token(agent_id) {
        Ok(())
    } else {
        Err(ActionError::invalid(format!(
            "agent_id {agent_id:?} must be 1 to 64 of A-Z, a-z, 0-9, _ and -"
        )))
    }
}

/// Whether `id` is `[A-Za-z0-9_-]{1,64}`: safe as a KV key token and a subject token.
pub fn is_token(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
