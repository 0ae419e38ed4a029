//! # Domain Actions framework
//!
//! Multi-tenant services that talk through one message shape, the *domain action*, over
//! NATS JetStream. The wire contract is `docs/wire.md` in this repository; this crate implements it.
//!
//! ```no_run
//! use shared::{Action, ActionError, ActionPayload, Ctx, Dispatcher, Worker};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize, schemars::JsonSchema)] struct Ping { text: String }
//! # impl ActionPayload for Ping { const ACTION_TYPE: &'static str = "echo.ping"; type Output = Ping; }
//! async fn ping(action: Action<Ping>, _ctx: Ctx) -> Result<Ping, ActionError> {
//!     Ok(action.data)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let nats = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let actions = Dispatcher::new("echo").on::<Ping, _>(ping);
//! Worker::new(nats, actions).run(shared::shutdown::on_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! ## Modules
//!
//! - [`action`]: the envelope [`Action<T>`], results, error codes, validated names, decoding.
//! - [`subject`]: the only place subjects are built and parsed.
//! - [`headers`]: header names of the wire contract.
//! - [`dispatcher`]: typed handler registration and routing by `action_type`.
//! - [`asyncapi`]: the AsyncAPI 3 document of the registered action types, for non-Rust clients.
//! - [`context`]: [`Ctx`], what a handler gets besides its action.
//! - [`publish`]: [`Publisher`]: enqueue (durable), request (rpc), results.
//! - `replies`: rpc replies on the requesting tenant's own inboxes (`_INBOX_<tenant>.…`).
//! - [`connect`]: connecting with the `nats` CLI's credentials (user, token, creds, nkey, TLS).
//! - [`worker`]: [`Worker`]: durable pull consumers, the outcome table, dead letters, drain.
//! - `service`: the rpc endpoint as a NATS micro service (run by the worker).
//! - [`streams`]: stream and consumer definitions from `nats/`, applied idempotently.
//! - [`metrics`]: the worker metrics (actions handled, errors, handler latency, in flight,
//!   redeliveries, dead letters); with `prometheus`, the recorder and `GET /metrics`.
//! - [`kv`]: JSON values in a JetStream KV bucket with compare-and-set updates (service state).
//! - [`telemetry`]: tracing setup and W3C trace context.
//! - [`settings`]: the one configuration loader.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a cancellation token.
//! - [`nats_server`]: finding and starting a local nats-server.
//! - `http` (feature): JSON errors, API keys and the authenticating extractor for HTTP routes.
//! - `openai` (feature): a client for OpenAI-compatible HTTP APIs (embeddings, chat, streaming).
//! - `openai_stub` (features `openai` + `testkit`): a local server speaking that API for tests.
//! - `testkit` (feature): a real nats-server per test, workers in the background.

pub mod action;
pub mod asyncapi;
pub mod connect;
pub mod context;
pub mod dispatcher;
pub mod headers;
#[cfg(feature = "http")]
pub mod http;
pub mod kv;
pub mod metrics;
pub mod nats_server;
#[cfg(feature = "openai")]
pub mod openai;
#[cfg(all(feature = "openai", feature = "testkit"))]
pub mod openai_stub;
pub mod publish;
mod replies;
mod service;
pub mod settings;
pub mod shutdown;
pub mod streams;
pub mod subject;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod worker;

pub use action::{
    Action, ActionError, ActionPayload, ActionResult, ActionType, Domain, ErrorCode, RawAction,
    ResultStatus, TenantId,
};
pub use context::Ctx;
pub use dispatcher::Dispatcher;
pub use publish::{Enqueued, PublishError, Publisher};
pub use settings::Settings;
pub use subject::CallbackSubject;
pub use worker::{Worker, WorkerConfig, WorkerError};
