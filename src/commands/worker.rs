//! `domain-actions worker <service>…`: run services against an existing NATS until SIGTERM
//! or Ctrl-C, then drain (in-flight actions finish and are acknowledged). With
//! `--metrics-addr`, it also serves the worker metrics ([`shared::metrics`]) in the
//! Prometheus text format on `GET /metrics` at that address.

use futures::future::try_join_all;
use shared::{Settings, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::exit::{Failure, Outcome, connect, credentials};
use crate::services;

/// Flags of `worker`.
#[derive(clap::Args)]
pub struct Args {
    /// Services to run (known: echo, embedding, query, ingestion).
    #[arg(required = true, value_parser = clap::builder::PossibleValuesParser::new(services::ALL))]
    pub services: Vec<String>,
    /// Serve Prometheus metrics on GET /metrics at this address (e.g. 127.0.0.1:9100); off if absent.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}

/// Runs the services until a signal.
pub async fn run(url: &str, args: Args) -> Outcome {
    let shutdown = shared::shutdown::on_signal();
    if let Some(addr) = &args.metrics_addr {
        let listener = shared::metrics::bind(addr)
            .await
            .map_err(|err| Failure::usage(format!("--metrics-addr {addr}: {err}")))?;
        // Before the workers start: they bind their metric handles to the recorder then.
        shared::metrics::install();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = shared::metrics::serve(listener, stop).await {
                tracing::error!(%err, "metrics endpoint stopped");
            }
        });
    }
    run_until(url, &args.services, shutdown).await
}

/// Runs the named services until `shutdown` is cancelled; used by `dev` too.
pub async fn run_until(url: &str, names: &[String], shutdown: CancellationToken) -> Outcome {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let mut config = WorkerConfig::from_settings(&settings);
    config.inboxes = credentials(&settings, url)?.inboxes(&settings);
    tracing::info!(
        inboxes = config.inboxes.as_str(),
        "results and rpc replies go only to the tenant's callbacks and these inboxes"
    );
    let client = connect(url).await?;
    let mut workers = Vec::new();
    for name in names {
        let dispatcher = services::dispatcher(name, &settings, &client)
            .await
            .map_err(|err| Failure::runtime(format!("starting {name}: {err}")))?
            .ok_or_else(|| Failure::usage(format!("unknown service {name:?}")))?;
        let worker = Worker::new(client.clone(), dispatcher).config(config.clone());
        workers.push(worker.run(shutdown.clone()));
    }
    try_join_all(workers).await.map_err(Failure::runtime)?;
    Ok(())
}
