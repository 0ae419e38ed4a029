//! # domain-actions: the command
//!
//! One binary to run, use and operate the system:
//!
//! - [`commands::dev`]: everything on embedded defaults (a local nats-server if none answers).
//! - [`commands::worker`]: run services against an existing NATS.
//! - [`commands::send`]: `publish` (durable) and `request` (rpc) an action built from flags.
//! - [`commands::ingest`]: files and directory trees into a collection, with live progress.
//! - [`commands::tail`]: print actions, results and dead letters as they pass.
//! - [`commands::replay`]: read a domain's stored actions back: print, republish or handle them.
//! - [`commands::dlq`]: list, show and redrive dead letters.
//! - [`commands::streams`]: apply and list the stream definitions.
//! - [`commands::keys`]: create, list and revoke the API keys of HTTP callers.
//! - [`commands::tenants`]: set, show and list each tenant's limits.
//! - [`commands::schema`]: the AsyncAPI 3 document of every action type, for other languages.
//! - [`commands::bench`]: our path against a hand-written async-nats baseline, same run.
//!
//! Exit codes: 0 success, 1 the action failed or something went wrong, 2 bad flags or input.

mod commands;
mod exit;
mod history;
mod services;

use clap::{Parser, Subcommand};

use exit::Failure;

// The hot path allocates small, short-lived buffers (headers, JSON) on every message;
// mimalloc serves those markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run, use and operate Domain Actions services.
#[derive(Parser)]
#[command(name = "domain-actions", version, about, long_about = None)]
struct Cli {
    /// NATS server or cluster to use (nodes separated by commas). Logs in as the nats CLI
    /// does: `nats://user:password@host:4222` or `nats://token@host:4222`, or NATS_USER +
    /// NATS_PASSWORD, NATS_TOKEN, NATS_CREDS (credentials file), NATS_NKEY (seed file);
    /// TLS with NATS_CA and NATS_CERT + NATS_KEY.
    #[arg(long, global = true, env = "NATS_URL", hide_env_values = true, default_value = shared::settings::DEFAULT_NATS_URL)]
    nats_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything locally: nats-server (if none answers at NATS_URL), streams, every service.
    Dev(commands::dev::Args),
    /// Run one or more services against an existing NATS.
    Worker(commands::worker::Args),
    /// Run the HTTP/WebSocket gateway (and the web page) against an existing NATS.
    Gateway(commands::gateway::Args),
    /// Enqueue an action durably and (unless --no-wait) print its result.
    Publish(commands::send::PublishArgs),
    /// Send an action over rpc and print its result.
    Request(commands::send::RequestArgs),
    /// Ingest files and directories into a collection, with live progress and a summary.
    Ingest(commands::ingest::Args),
    /// Print every message on a subject (actions, results, dead letters) as JSON lines.
    Tail(commands::tail::Args),
    /// Read a domain's stored actions back by time or sequence: print, republish or handle them.
    Replay(commands::replay::Args),
    /// List, show or redrive dead letters (the DLQ stream).
    #[command(subcommand)]
    Dlq(commands::dlq::Command),
    /// Apply or list the JetStream streams and consumers.
    #[command(subcommand)]
    Streams(commands::streams::Command),
    /// Create, list or revoke API keys (each names the tenant its HTTP requests act as).
    #[command(subcommand)]
    Keys(commands::keys::Command),
    /// Set, show or list each tenant's limits (requests per minute, concurrent actions, LLM
    /// tokens per day, stored bytes, allowed models, tier).
    #[command(subcommand)]
    Tenants(commands::tenants::Command),
    /// Print the AsyncAPI 3 document of every action type (JSON Schemas of payloads and results).
    Schema(commands::schema::Args),
    /// Measure our round trips against a hand-written async-nats baseline in the same run.
    Bench(commands::bench::Args),
}

fn main() {
    let cli = Cli::parse();
    // Long-running commands log what they do; one-shot commands only warnings, so their
    // stdout/stderr stay readable and scriptable.
    let long_running = matches!(
        cli.command,
        Command::Dev(_) | Command::Worker(_) | Command::Gateway(_)
    );
    let telemetry = shared::telemetry::init(if long_running {
        "info,async_nats=warn,qdrant_edge=error"
    } else {
        "warn,qdrant_edge=error"
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => Failure::runtime(format!("cannot start the async runtime: {err}")).exit(),
    };
    let url = cli.nats_url;
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => commands::dev::run(&url, args).await,
            Command::Worker(args) => commands::worker::run(&url, args).await,
            Command::Gateway(args) => commands::gateway::run(&url, args).await,
            Command::Publish(args) => commands::send::publish(&url, args).await,
            Command::Request(args) => commands::send::request(&url, args).await,
            Command::Ingest(args) => commands::ingest::run(&url, args).await,
            Command::Tail(args) => commands::tail::run(&url, args).await,
            Command::Replay(args) => commands::replay::run(&url, args).await,
            Command::Dlq(command) => commands::dlq::run(&url, command).await,
            Command::Streams(command) => commands::streams::run(&url, command).await,
            Command::Keys(command) => commands::keys::run(&url, command).await,
            Command::Tenants(command) => commands::tenants::run(&url, command).await,
            Command::Schema(args) => commands::schema::run(args),
            Command::Bench(args) => commands::bench::run(&url, args).await,
        }
    });
    // Sends the spans still batched (when exported): `exit` skips destructors.
    drop(telemetry);
    if let Err(failure) = outcome {
        failure.exit();
    }
}
