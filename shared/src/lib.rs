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
//! - [`schema`]: the JSON Schemas of each registered action type's messages.
//! - [`context`]: [`Ctx`], what a handler gets besides its action.
//! - [`publish`]: [`Publisher`]: enqueue (durable), request (rpc), results.
//! - [`quota`]: per-tenant limits ([`quota::Quotas`]): records in the KV bucket `tenants`,
//!   requests per minute, concurrent actions, LLM tokens per day, allowed models.
//! - `replies`: rpc replies on the requesting tenant's own inboxes (`_INBOX_<tenant>.…`).
//! - [`connect`]: connecting with the `nats` CLI's credentials (user, token, creds, nkey, TLS).
//! - `pipeline`: one way through for every received action, durable or rpc: admit, decode
//!   and check, the layers around the handler (span, metrics, timeout, panic catch), settle.
//! - [`worker`]: [`Worker`]: durable pull consumers, the outcome table, dead letters, drain.
//! - `service`: the rpc endpoint as a NATS micro service (run by the worker).
//! - [`streams`]: stream and consumer definitions from `nats/`, applied idempotently.
//! - [`metrics`]: the worker metrics (actions handled, errors, handler latency, in flight,
//!   redeliveries, dead letters); with `prometheus`, the recorder and `GET /metrics`.
//! - [`telemetry`]: tracing setup and W3C trace context.
//! - [`settings`]: the one configuration loader.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a cancellation token.
//!
//! The framework knows no application domain: a service names its domain in
//! [`Dispatcher::new`] and its streams come from the per-domain template in `nats/template/`.
//! What services share beyond the wire (an OpenAI-compatible client, HTTP API keys, KV
//! state, the AsyncAPI document, starting nats-server) is the `platform` crate; test
//! support (real nats-servers, a cluster, the OpenAI stand-in) is the `testkit` crate.

pub mod action;
pub mod connect;
pub mod context;
pub mod dispatcher;
pub mod headers;
pub mod metrics;
mod pipeline;
pub mod publish;
pub mod quota;
mod replies;
pub mod schema;
mod service;
pub mod settings;
pub mod shutdown;
pub mod streams;
pub mod subject;
pub mod telemetry;
pub mod worker;

pub use action::{
    Action, ActionError, ActionPayload, ActionResult, ActionType, Domain, ErrorCode, RawAction,
    ResultStatus, TenantId,
};
pub use context::Ctx;
pub use dispatcher::{Dispatcher, Handler};
pub use publish::{Enqueued, PublishError, Publisher};
pub use schema::Catalog;
pub use settings::Settings;
pub use subject::CallbackSubject;
pub use worker::{Worker, WorkerConfig, WorkerError};
