//! [`Agent`]: what an agent is allowed and told to do, kept in the KV bucket `agents`
//! under `<tenant>.<agent_id>`, so every instance of the service runs the same agents and
//! one tenant's agents can never be looked up with another tenant's key.

use std::time::Duration;

use async_nats::jetstream;
use platform::kv::{JsonBucket, StateError};
use shared::{ActionError, TenantId};
use time::OffsetDateTime;

pub use execution_contract::agent::{
    Agent, DEFAULT_AGENT_ID, MAX_ITERATIONS, MAX_SYSTEM_PROMPT_BYTES, MAX_TOOL_TIMEOUT_MS,
    check_agent_id, is_token,
};

/// The bucket's name.
pub const BUCKET: &str = "agents";

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

    /// The tenant's agent `agent_id`; an unknown (or malformed) id is the caller's mistake,
    /// except the default agent, which is stored the first time it is asked for.
    pub async fn load(&self, tenant: &TenantId, agent_id: &str) -> Result<Agent, ActionError> {
        check_agent_id(agent_id)?;
        match self.0.get(&key(tenant, agent_id)).await? {
            Some((agent, _)) => Ok(agent),
            None if agent_id == DEFAULT_AGENT_ID => self.put(tenant, Agent::default_agent()).await,
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
        Ok(self.0.remove(&key(tenant, agent_id)).await?)
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
