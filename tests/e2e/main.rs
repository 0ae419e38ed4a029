//! End-to-end tests: a real nats-server per test, the echo service as a worker (in-process,
//! or the real `domain-actions` binary in `process`), and a bare async-nats client that talks
//! to it exactly as a `nats` CLI user would: raw headers, hand-written JSON bodies.
//!
//! One test target, so it links once; one file per topic:
//!
//! - [`harness`]: the shared helpers (server + worker, headers, waits, dead letters).
//! - [`durable`]: actions published through JetStream, results, dedupe, trace, leases.
//! - [`fairness`]: tenants take turns; a full backlog refuses, nothing is evicted.
//! - [`rpc`]: request/reply and the micro service endpoints.
//! - [`schema`]: the AsyncAPI document against every service and against real traffic.
//! - [`poison`]: every kind of message a worker must refuse, and that it keeps serving.
//! - [`retries`]: retryable failures, backoff and the last delivery.
//! - [`process`]: drain on SIGTERM and max deliveries across crashed processes.
//! - [`crash`]: kill -9 of a worker process and restarts of nats-server under load.
//! - [`metrics`]: a worker process's Prometheus metrics on `--metrics-addr`; spans over OTLP.
//! - [`cli`]: the `domain-actions` command.
//! - [`replay`]: `replay`: history by tenant, type, sequence and time; republish; local handling.
//! - [`dlq`]: `dlq ls|show|redrive` and `streams ls`.
//! - [`cluster`]: three nodes, streams at R3, the stream leader killed mid-run.
//! - [`deploy`]: compose.yaml, the Dockerfile and the configs they use, without a container engine.
//! - [`permissions`]: tenant users of `nats/accounts.conf` kept to their own subjects.
//! - [`chat`]: the orchestrator: chat over WebSockets, answers across instances, tenants.
//! - [`gateway`]: the HTTP front door: health, actions over HTTP, errors, request ids.
//! - [`ingest`]: the ingestion service over HTTP and NATS: formats, errors, progress, crashes.
//! - [`rag`]: the embedding and query services: index, search, answer, tenants, APIs.
//! - [`limits`]: per-tenant caps on event streams and chat sockets (429), uploads over the
//!   size limit (413, nothing stored), a full documents store (507).
//! - [`execution`]: agents over the query service: runs, history, streamed tokens, ReAct, tenants.
//! - [`quotas`]: per-tenant limits: requests per minute at the gateway and the workers, LLM tokens, models.

mod harness;

mod chat;
mod cli;
mod cluster;
mod crash;
mod deploy;
mod dlq;
mod durable;
mod embedding_workers;
mod execution;
mod fairness;
mod gateway;
mod hostile;
mod hostile_documents;
mod ingest;
mod limits;
mod login;
mod metrics;
mod permissions;
mod poison;
mod process;
mod quotas;
mod rag;
mod replay;
mod retries;
mod rpc;
mod schema;
mod ssrf;
