//! [`Pipeline`]: what `bench --suite ingest` and `--suite rag` run against.
//!
//! A fresh nats-server with the built-in streams on a temporary store, and the embedding,
//! query and ingestion workers in-process (their data in a temporary `DA_DATA_DIR`), with
//! the rest of the settings from the environment (`DA_MINILM_RUNTIME`, `QDRANT_URL`, …).

use std::collections::HashMap;
use std::time::Duration;

use platform::nats_server::{LocalServer, ServerOptions};
use shared::streams::Definitions;
use shared::{Settings, Worker, WorkerConfig};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commands::ingest::{self, PIPELINE};
use crate::exit::{Failure, connect};
use crate::services;

/// The server and the running workers; [`Pipeline::stop`] drains and stops them.
pub(super) struct Pipeline {
    /// The settings the workers run with.
    pub settings: Settings,
    /// A connection for the bench's own requests.
    pub client: async_nats::Client,
    server: LocalServer,
    shutdown: CancellationToken,
    workers: Vec<JoinHandle<()>>,
    _temp: TempDir,
}

impl Pipeline {
    /// Starts the server and the workers; `prefix` names the temporary directory.
    pub(super) async fn start(prefix: &str) -> Result<Self, Failure> {
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|err| Failure::runtime(format!("creating a temporary directory: {err}")))?;
        let server =
            LocalServer::start(ServerOptions::single_node(&temp.path().join("nats"), None))
                .await
                .map_err(|err| Failure::runtime(format!("starting nats-server: {err}")))?;
        let url = server.url().to_owned();
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        vars.insert(
            "DA_DATA_DIR".into(),
            temp.path().join("data").display().to_string(),
        );
        vars.insert("NATS_URL".into(), url.clone());
        let started = async {
            let settings = Settings::from_vars(&vars).map_err(Failure::usage)?;
            let client = connect(&url).await?;
            let js = async_nats::jetstream::new(client.clone());
            Definitions::built_in()
                .and_then(|d| d.for_domains(&services::domains()))
                .map_err(Failure::runtime)?
                .apply(&js)
                .await
                .map_err(|err| Failure::runtime(format!("applying the streams: {err}")))?;
            Ok::<_, Failure>((settings, client))
        }
        .await;
        let (settings, client) = match started {
            Ok(started) => started,
            Err(failure) => {
                server.stop().await;
                return Err(failure);
            }
        };
        let shutdown = CancellationToken::new();
        let mut pipeline = Self {
            settings,
            client,
            server,
            shutdown,
            workers: Vec::new(),
            _temp: temp,
        };
        if let Err(failure) = pipeline.start_workers().await {
            pipeline.stop().await;
            return Err(failure);
        }
        Ok(pipeline)
    }

    /// Embedding, query, then ingestion: each one's dependencies serve before it does.
    async fn start_workers(&mut self) -> Result<(), Failure> {
        for name in PIPELINE.iter().rev() {
            let dispatcher = services::dispatcher(name, &self.settings, &self.client)
                .await
                .map_err(|err| Failure::runtime(format!("starting {name}: {err}")))?
                .ok_or_else(|| Failure::runtime(format!("no service called {name}")))?;
            let worker = Worker::new(self.client.clone(), dispatcher)
                .config(WorkerConfig::from_settings(&self.settings));
            let stop = self.shutdown.clone();
            let name = *name;
            self.workers.push(tokio::spawn(async move {
                if let Err(err) = worker.run(stop).await {
                    eprintln!("bench: the {name} worker stopped: {err}");
                }
            }));
        }
        ingest::require_workers(&self.client, &self.settings.nats_url).await?;
        Ok(())
    }

    /// Drains the workers like `worker` on Ctrl-C, so the server is not stopped under
    /// them, then stops the server.
    pub(super) async fn stop(self) {
        self.shutdown.cancel();
        for worker in self.workers {
            let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
        }
        self.server.stop().await;
    }
}
