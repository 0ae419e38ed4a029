//! # gateway: the front door
//!
//! One axum application composing the services' HTTP routes, so a browser or an HTTP
//! client reaches everything at one address with one API key. The key's tenant is the
//! tenant of everything a request does; no request field can choose another.
//!
//! - [`app`]: [`Gateway`], its state, and [`app::router`], which mounts every route.
//! - [`actions`]: `POST /v1/actions`, any registered action over HTTP (durable).
//! - [`agents`]: `/v1/agents`, the tenant's agents (kept by the execution service).
//! - [`health`]: `/healthz` (the process answers) and `/readyz` (NATS reachable).
//! - [`openapi`]: `/openapi.json`, the API as an OpenAPI 3.1 document built from the code.
//! - [`metrics`]: `/metrics` in the Prometheus text format, behind the bearer token
//!   `DA_METRICS_TOKEN` (not served without it), and the middleware recording every
//!   request's count and duration by route template.
//! - [`limits`]: each tenant's requests per minute under `/v1/`: 429 with `Retry-After`,
//!   and the `RateLimit-*` headers on every counted response.
//! - [`page`]: the web page at `/`, built into the binary.
//! - [`headers`]: `nosniff` everywhere; CSP, no framing and no referrer on the page.
//! - [`query_keys`]: `?api_key=` refused except where browsers cannot send headers.
//! - [`trace`]: a span per request, with the `api_key` redacted from its URL.
//! - [`serve`]: running the app until shutdown.
//!
//! Routes mounted from services: ingestion's `/v1/documents` and `/v1/tasks`
//! (see `ingestion::routes`), the orchestrator's `/v1/chat` WebSocket and `/v1/sessions`.

pub mod actions;
pub mod agents;
pub mod app;
pub mod headers;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod query_keys;
pub mod serve;
pub mod trace;

pub use app::{Gateway, router};
