//! `domain-actions worker <service>…`: run services against an existing NATS until SIGTERM
//! or Ctrl-C, then drain (in-flight actions finish and are acknowledged).

use futures::future::try_join_all;
use shared::{Settings, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::exit::{Failure, Outcome, connect};
use crate::services;

/// Flags of `worker`.
#[derive(clap::Args)]
pub struct Args {
    /// Services to run (known: echo, embedding, query, ingestion).
    #[arg(required = true, value_parser = clap::builder::PossibleValuesParser::new(services::ALL))]
    pub services: Vec<String>,
}

/// Runs the services until a signal.
pub async fn run(url: &str, args: Args) -> Outcome {
    let shutdown = shared::shutdown::on_signal();
    run_until(url, &args.services, shutdown).await
}

/// Runs the named services until `shutdown` is cancelled; used by `dev` too.
pub async fn run_until(url: &str, names: &[String], shutdown: CancellationToken) -> Outcome {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let config = WorkerConfig::from_settings(&settings);
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
