//! [`Pipeline`]: what `bench --suite ingest` and `--suite rag` run against.
//!
//! A fresh nats-server with the built-in streams on a temporary store, and the embedding,
//! query and ingestion workers in-process (their data in a temporary `DA_DATA_DIR`), with
//! the rest of the settings from the environment (`DA_MINILM_RUNTIME`, `QDRANT_URL`, …).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use platform::nats_server::{LocalServer, ServerOptions};
use shared::streams::Definitions;
use shared::{Publisher, Settings, TenantId, Worker, WorkerConfig};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commands::ingest::{
    self, Candidate, FileReport, Filter, IN_FLIGHT, PIPELINE, Progress, Submitter,
};
use crate::exit::{Failure, connect};
use crate::services;

/// Long enough for any one document of a slow machine; a stuck task still ends the run.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The tenant the benches' documents and requests belong to.
pub(super) fn bench_tenant() -> Result<TenantId, Failure> {
    TenantId::new("bench").map_err(Failure::runtime)
}

/// The files of `corpus` matching `globs`, by name, at most `limit` of them (`--docs`).
pub(super) fn corpus_files(
    corpus: &Path,
    globs: &[&str],
    limit: Option<usize>,
) -> Result<Vec<Candidate>, Failure> {
    if !corpus.is_dir() {
        return Err(Failure::usage(format!(
            "corpus {} not found: install it with `apt-get install postgresql-doc-15`, or give --corpus DIR (a directory of html, markdown, text, pdf or docx files)",
            corpus.display()
        )));
    }
    let globs: Vec<String> = globs.iter().map(|g| (*g).to_owned()).collect();
    let mut files = ingest::find_files(&[corpus.to_path_buf()], &Filter::new(&globs, &[])?)?.files;
    if let Some(limit) = limit {
        files.truncate(limit);
    }
    if files.is_empty() {
        let docs = if limit.is_some() {
            ", or --docs is 0"
        } else {
            ""
        };
        return Err(Failure::usage(format!(
            "no documents ({}) in {}{docs}",
            globs.join(", "),
            corpus.display()
        )));
    }
    Ok(files)
}

/// The reports of an ingestion and the time it took.
pub(super) struct Ingested {
    /// One per file, as `domain-actions ingest` reports them.
    pub reports: Vec<FileReport>,
    /// From the first submission to the last final state.
    pub elapsed: Duration,
}

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

    /// Submits `files` into `collection` of the bench tenant, [`IN_FLIGHT`] at a time, each
    /// followed until its task is final, with a progress bar.
    pub(super) async fn ingest(
        &self,
        files: Vec<Candidate>,
        collection: &str,
    ) -> Result<Ingested, Failure> {
        let service = ingest::open_service(&self.settings, &self.client).await?;
        let publisher = Publisher::new(self.client.clone());
        let tenant = bench_tenant()?;
        let submitter = Submitter {
            service: &service,
            publisher: &publisher,
            tenant: &tenant,
            collection,
            title: None,
            wait_timeout: WAIT_TIMEOUT,
            in_flight: IN_FLIGHT,
        };
        let progress = Progress::new(files.len(), Progress::interactive());
        let started = Instant::now();
        let reports = submitter.ingest_all(files, &progress).await;
        let elapsed = started.elapsed();
        progress.finish();
        Ok(Ingested { reports, elapsed })
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
