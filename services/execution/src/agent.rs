//! [`Agent`]: what an agent is allowed and told to do, kept in the KV bucket `agents`
//! under `<tenant>.<agent_id>`, so every instance of the service runs the same agents and
//! one tenant's agents can never be looked up with another tenant's key.

use std::time::Duration;

use async_nats::jetstream;
use platform::kv::{JsonBucket, StateError};
use serde::{Deserialize, Serialize};
use shared::{ActionError, TenantId};
use time::OffsetDateTime;

/// The bucket's name.
pub const BUCKET: &str = "agents";

/// The longest system prompt accepted: generous for instructions, small enough that a
/// stored agent never nears the KV value limit.
pub const MAX_SYSTEM_PROMPT_BYTES: usize = 64 * 1024;

/// Model calls a run may make at most, whatever an agent asks for: bounds the cost of a
/// model that never stops calling tools.
pub const MAX_ITERATIONS: u32 = 50;

/// The longest tool call an agent may allow (10 minutes).
pub const MAX_TOOL_TIMEOUT_MS: u64 = 600_000;

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
            query::actions::check_name("collection", collection)?;
        }
        query::actions::check_top_k(self.top_k)?;
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
        Ok(())
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

/// The key of an agent: the tenant first, so a tenant's agents are one key prefix.
pub fn key(tenant: &TenantId, agent_id: &str) -> String {
    format!("{tenant}.{agent_id}")
}

/// The `agents` bucket.
#[derive(Clone)]
pub struct AgentStore(JsonBucket<Agent>);

impl AgentStore {
    /// Opens the bucket, creating it with `replicas` copies if needed (agents never expire;
    /// an existing bucket keeps the replicas it was created with).
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, StateError> {
        let bucket = JsonBucket::open(
            js,
            BUCKET,
            "Agents of the execution service, by <tenant>.<agent_id>",
            Duration::ZERO,
            replicas,
        )
        .await?;
        Ok(Self(bucket))
    }

    /// The tenant's agent `agent_id`; an unknown (or malformed) id is the caller's mistake.
    pub async fn load(&self, tenant: &TenantId, agent_id: &str) -> Result<Agent, ActionError> {
        check_agent_id(agent_id)?;
        match self.0.get(&key(tenant, agent_id)).await? {
            Some((agent, _)) => Ok(agent),
            None => Err(ActionError::invalid(format!("no agent {agent_id}"))),
        }
    }

    /// Validates and stores `agent` for the tenant, keeping the `created_at` of the agent
    /// it replaces. Returns what was stored.
    pub async fn put(&self, tenant: &TenantId, mut agent: Agent) -> Result<Agent, ActionError> {
        if agent.name.trim().is_empty() {
            agent.name = agent.agent_id.clone();
        }
        agent.validate()?;
        let key = key(tenant, &agent.agent_id);
        let now = OffsetDateTime::now_utc();
        agent.created_at = match self.0.get(&key).await? {
            Some((previous, _)) => previous.created_at,
            None => now,
        };
        agent.updated_at = now;
        self.0.put(&key, &agent).await?;
        Ok(agent)
    }

    /// Every agent of the tenant, in `agent_id` order.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Agent>, StateError> {
        self.0.scan(&format!("{tenant}.")).await
    }

    /// Removes the tenant's agent `agent_id`; whether there was one.
    pub async fn delete(&self, tenant: &TenantId, agent_id: &str) -> Result<bool, ActionError> {
        check_agent_id(agent_id)?;
        let key = key(tenant, agent_id);
        if self.0.get(&key).await?.is_none() {
            return Ok(false);
        }
        self.0.delete(&key).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_fill_an_agent_given_only_its_id() {
        let agent: Agent = serde_json::from_value(json!({"agent_id": "helper"})).expect("agent");
        assert!(agent.retrieval && agent.tools);
        assert_eq!(
            (agent.top_k, agent.max_iterations, agent.tool_timeout_ms),
            (5, 10, 30_000)
        );
        assert!(agent.collections.is_empty() && agent.model.is_none());
        assert_eq!(agent.validate(), Ok(()));
        let round_trip: Agent =
            serde_json::from_value(serde_json::to_value(&agent).expect("json")).expect("agent");
        assert_eq!(round_trip, agent);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let bad = |change: fn(&mut Agent)| {
            let mut agent = Agent::new("a-1_B");
            change(&mut agent);
            agent.validate().expect_err("invalid").message
        };
        assert!(bad(|a| a.agent_id = "a.b".into()).contains("agent_id"));
        assert!(bad(|a| a.agent_id = String::new()).contains("agent_id"));
        assert!(bad(|a| a.agent_id = "x".repeat(65)).contains("agent_id"));
        assert!(bad(|a| a.top_k = 0).contains("top_k"));
        assert!(bad(|a| a.top_k = 101).contains("top_k"));
        assert!(bad(|a| a.max_iterations = 0).contains("max_iterations"));
        assert!(bad(|a| a.tool_timeout_ms = 0).contains("tool_timeout_ms"));
        assert!(bad(|a| a.score_threshold = Some(f32::NAN)).contains("score_threshold"));
        assert!(bad(|a| a.score_threshold = Some(1.5)).contains("score_threshold"));
        assert!(bad(|a| a.collections = vec![String::new()]).contains("collection"));
        assert!(bad(|a| a.model = Some(" ".into())).contains("model"));
        assert!(
            bad(|a| a.system_prompt = "x".repeat(MAX_SYSTEM_PROMPT_BYTES + 1))
                .contains("system_prompt")
        );
        assert!(bad(|a| a.name = "tab\there".into()).contains("name"));
        let mut fine = Agent::new("A_z-09");
        fine.score_threshold = Some(0.2);
        fine.collections = vec!["handbook".into()];
        assert_eq!(fine.validate(), Ok(()));
    }

    #[tokio::test]
    async fn stored_agents_keep_their_creation_time_and_stay_in_their_tenant() {
        let server = testkit::TestServer::start().await;
        let js = jetstream::new(server.client().await);
        let store = AgentStore::open(&js, 1).await.expect("bucket");
        let acme = TenantId::new("acme").expect("tenant");
        let globex = TenantId::new("globex").expect("tenant");
        let first = store.put(&acme, Agent::new("helper")).await.expect("put");
        assert_eq!(first.name, "helper");
        let mut changed = Agent::new("helper");
        changed.top_k = 2;
        let second = store.put(&acme, changed).await.expect("put");
        assert_eq!(second.created_at, first.created_at);
        assert!(second.updated_at >= first.updated_at);
        assert_eq!(store.load(&acme, "helper").await.expect("load"), second);
        store.put(&acme, Agent::new("another")).await.expect("put");
        let ids: Vec<String> = store
            .list(&acme)
            .await
            .expect("list")
            .into_iter()
            .map(|a| a.agent_id)
            .collect();
        assert_eq!(ids, ["another", "helper"]);

        let err = store
            .load(&globex, "helper")
            .await
            .expect_err("not globex's");
        assert_eq!(err.message, "no agent helper");
        assert!(store.list(&globex).await.expect("list").is_empty());
        assert!(!store.delete(&globex, "helper").await.expect("delete"));
        assert!(store.delete(&acme, "helper").await.expect("delete"));
        assert!(store.load(&acme, "helper").await.is_err());
        assert!(store.load(&acme, "no.such").await.is_err());
    }
}
