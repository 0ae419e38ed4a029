//! # orchestrator: chat over WebSocket
//!
//! A user chats with an agent over a WebSocket; the orchestrator turns each message into a
//! durable `execution.agent_run` and brings the answer back to the socket. It never calls a
//! model and keeps no history (both are execution's): it holds live sockets only, so any
//! number of instances can run behind a load balancer.
//!
//! How an answer finds its socket, whichever instance handles what:
//!
//! 1. The socket's instance subscribes (core NATS) to
//!    `orchestrator.<tenant>.events.session.<session_id>` and enqueues the run with
//!    callback `orchestrator.<tenant>.callbacks`.
//! 2. Execution publishes tokens (`stream_chunk`) on that events subject while it answers,
//!    then its result on the callbacks subject (JetStream).
//! 3. Any instance's worker pulls the result from the shared `orchestrator-callbacks`
//!    consumer and publishes `response` + `task_completed` (or `error`) on the events
//!    subject.
//! 4. Every instance holding a socket on the session forwards those events to it.
//!
//! - [`protocol`]: the WebSocket frames.
//! - [`routes`]: the HTTP API ([`routes::router`], mounted by the gateway).
//! - [`config`]: [`ChatConfig`], the limits of connections.
//! - `socket`: one connection: authentication, subscriptions, enqueueing.
//! - `events`: the session events subject and the events the orchestrator publishes.
//! - `handlers`: the callbacks handler.
//!
//! The payloads are execution's own types (the `execution-contract` crate): the orchestrator builds
//! against that crate, so a change of the contract fails to compile here rather than to
//! decode at run time.
//!
//! | action type | data | what happens |
//! |---|---|---|
//! | `execution.agent_run.result` (callback) | the agent's answer or error | `response` + `task_completed`, or `error`, on the session's events subject |

pub mod config;
mod events;
mod handlers;
pub mod protocol;
pub mod routes;
mod socket;

use async_nats::Client;
use shared::{Dispatcher, Domain};

pub use config::ChatConfig;
pub use routes::{Api, router};

/// The orchestrator's domain: the first token of its subjects.
pub const DOMAIN: &str = "orchestrator";

/// The domain as a validated name, for building subjects.
fn domain() -> Domain {
    // A constant that the tests below check; a bad one would be a bug found at once.
    Domain::new(DOMAIN).unwrap_or_else(|err| panic!("orchestrator domain: {err}"))
}

/// The orchestrator's dispatcher: the handler of `execution.agent_run` results, which
/// publishes session events on `client`. Run it with a [`shared::Worker`] in every
/// instance; the instances share the durable callbacks consumer.
pub fn dispatcher(client: Client) -> Dispatcher {
    routes().with_state(events::EventPublisher::new(client))
}

/// Every handler of the domain, still waiting for the state they run on: its
/// [`Dispatcher::catalog`] is what `domain-actions schema` describes, built without opening
/// a model, a store or a NATS connection.
pub fn routes() -> Dispatcher<events::EventPublisher> {
    Dispatcher::new(DOMAIN).on_result::<execution_contract::AgentRun, _>(handlers::agent_run_result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_is_a_valid_name() {
        assert_eq!(domain().as_str(), DOMAIN);
        assert_eq!(domain().stream_name(), "ORCHESTRATOR");
    }
}
