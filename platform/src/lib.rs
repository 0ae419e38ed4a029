//! # Platform
//!
//! What the Domain Actions services share besides the wire contract. The framework
//! (`shared`) stays about actions; everything here is something a service may use or not.
//!
//! ## Modules
//!
//! - [`asyncapi`]: the AsyncAPI 3 document of the registered action types, for clients in
//!   any language (`domain-actions schema`).
//! - [`kv`]: JSON values in a JetStream KV bucket with compare-and-set updates (service state).
//! - [`nats_server`]: finding and starting a local nats-server (`domain-actions dev`, tests).
//! - [`venv`]: files of the PyPI packages `scripts/setup` installs into `.venv` (models).
//! - `http` (feature): JSON errors, API keys and the authenticating extractor for HTTP routes.
//! - `openai` (feature): a client for OpenAI-compatible HTTP APIs (embeddings, chat, streaming).

pub mod asyncapi;
#[cfg(feature = "http")]
pub mod http;
pub mod kv;
pub mod nats_server;
#[cfg(feature = "openai")]
pub mod openai;
pub mod venv;
