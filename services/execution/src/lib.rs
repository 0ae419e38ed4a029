//! # execution: agents that answer from the tenant's documents
//!
//! The Python system's agent executor, rebuilt on the framework. An *agent* is a stored configuration (system
//! prompt, model, which collections it may read, how far a tool loop may go); a *run* answers
//! one message of a conversation with it: it searches the tenant's documents through the
//! query service (`query.search` over rpc, so this service never opens the vector store),
//! answers with the extractive answerer (offline default), an OpenAI-compatible chat API
//! (passages in the prompt, or a ReAct loop with one `knowledge` tool) or a small model run
//! in the process (`DA_ANSWERER=local`, passages in the prompt, no tools), optionally streams
//! the answer's tokens to the session's event subject, and keeps the conversation in a KV
//! bucket so the next run sees it. Everything is confined to the tenant of the action's
//! subject: keys are `<tenant>.<id>`, and searches run as that tenant.
//!
//! - [`actions`]: the payload and result types.
//! - [`agent`]: [`agent::Agent`], its validation and the `agents` bucket.
//! - [`history`]: conversations in the `sessions` bucket, capped and expiring.
//! - [`knowledge`]: searching through the query service, numbered passages, citations.
//! - [`answer`]: extractive answers, chat answers, the ReAct loop and local-model answers.
//! - [`token_stream`]: tokens published to `orchestrator.<tenant>.events.session.<session_id>`.
//! - [`config`]: the settings; [`service`]: what the handlers share.
//! - [`handlers`]: one file per handler.
//!
//! | action type | data | result |
//! |---|---|---|
//! | `execution.agent_put` | `{agent}` | the stored agent |
//! | `execution.agent_get` | `{agent_id}` | the agent |
//! | `execution.agent_list` | `{}` | `{agents}` |
//! | `execution.agent_delete` | `{agent_id}` | `{deleted}` |
//! | `execution.agent_run` | `{agent_id, session_id, message, stream?}` | `{answer, citations, usage, iterations, model}` |
//! | `execution.session_get` | `{session_id}` | `{session_id, agent_id, messages}` |
//! | `execution.session_delete` | `{session_id}` | `{deleted}` |

pub use execution_contract as actions;
pub mod agent;
pub mod answer;
pub mod config;
pub mod handlers;
pub mod history;
pub mod knowledge;
pub mod service;
pub mod token_stream;

pub use config::ExecutionConfig;
pub use service::ExecutionService;
use shared::Dispatcher;

/// The execution domain's dispatcher over `service`.
pub fn dispatcher(service: ExecutionService) -> Dispatcher {
    routes().with_state(service)
}

/// Every handler of the domain, still waiting for the state they run on: its
/// [`Dispatcher::catalog`] is what `domain-actions schema` describes, built without opening
/// a model, a store or a NATS connection.
pub fn routes() -> Dispatcher<ExecutionService> {
    Dispatcher::new("execution")
        .on::<actions::AgentPut, _>(handlers::agent_put)
        .on::<actions::AgentGet, _>(handlers::agent_get)
        .on::<actions::AgentList, _>(handlers::agent_list)
        .on::<actions::AgentDelete, _>(handlers::agent_delete)
        .on::<actions::AgentRun, _>(handlers::agent_run)
        .on::<actions::SessionGet, _>(handlers::session_get)
        .on::<actions::SessionDelete, _>(handlers::session_delete)
}
