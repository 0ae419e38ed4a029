//! # Test support
//!
//! Real parts for tests, never mocks, and never compiled into a production build (only
//! `[dev-dependencies]` name this crate):
//!
//! - [`TestServer`]: a real nats-server per test on a free loopback port with a temp store
//!   (plain or secured with the tenant accounts of `nats/accounts.conf`).
//! - [`Cluster`]: the three-node cluster of `nats/cluster/`, as local processes.
//! - [`spawn_worker`]: a worker serving a dispatcher in the background.
//! - [`openai_stub`]: a local HTTP server speaking the OpenAI wire format, the one stand-in
//!   the project allows (for paid APIs).
//!
//! ```no_run
//! # async fn t() {
//! let server = testkit::TestServer::start().await;
//! let client = server.client().await;
//! # }
//! ```

use std::path::Path;
use std::time::Duration;

use async_nats::Client;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use platform::nats_server::{LocalServer, SecuredLogins, ServerOptions};
use shared::{Dispatcher, Worker, WorkerConfig};

mod cluster;
pub mod openai_stub;

pub use cluster::Cluster;

/// A nats-server on a free loopback port with a temporary store, using the shipped
/// `nats/server.conf`. Killed when dropped.
pub struct TestServer {
    server: Option<LocalServer>,
    options: ServerOptions,
    /// The logins of a secured server ([`TestServer::start_secured`]).
    logins: Option<SecuredLogins>,
    _dir: TempDir,
}

impl TestServer {
    /// Starts a server. Panics with the reason if it cannot (a test cannot go on without one).
    pub async fn start() -> Self {
        Self::start_with_config(&platform::nats_server::single_node_config()).await
    }

    /// Starts a server with another config file than the shipped `nats/server.conf`, e.g.
    /// `nats/server-always.conf` (fsync before every acknowledgement), so a test can prove
    /// what that profile promises. It keeps that config across [`TestServer::restart`].
    pub async fn start_with_config(config: &Path) -> Self {
        let config = config.to_path_buf();
        Self::start_in_temp_dir(move |dir| {
            let options = ServerOptions {
                config,
                ..ServerOptions::single_node(dir, None)
            };
            (options, None)
        })
        .await
    }

    /// Starts a server running the secured config (`nats/accounts.conf`: the services'
    /// account and one account per tenant) with fresh passwords. [`TestServer::client`]
    /// logs in as `services`; [`TestServer::client_as`] as a tenant.
    pub async fn start_secured() -> Self {
        Self::start_in_temp_dir(|dir| {
            let logins = SecuredLogins::generate();
            (ServerOptions::secured(dir, None, &logins), Some(logins))
        })
        .await
    }

    /// Starts the server `options_in` describes for a fresh temporary directory.
    async fn start_in_temp_dir(
        options_in: impl FnOnce(&Path) -> (ServerOptions, Option<SecuredLogins>),
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("da-nats-")
            .tempdir()
            .unwrap_or_else(|err| panic!("temp dir: {err}"));
        let (options, logins) = options_in(dir.path());
        let server = LocalServer::start(options.clone())
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        Self {
            server: Some(server),
            options,
            logins,
            _dir: dir,
        }
    }

    /// The logins of a secured server.
    pub fn logins(&self) -> Option<&SecuredLogins> {
        self.logins.as_ref()
    }

    /// The URL with `user`'s login in it on a secured server (else the plain URL), as a
    /// process would get it in `NATS_URL`.
    pub fn url_as(&self, user: &str) -> String {
        match &self.logins {
            Some(logins) => logins.url_for(user, &self.url()),
            None => self.url(),
        }
    }

    /// A plain async-nats client logged in as `user` (its password from the secured
    /// server's logins), with the default `_INBOX.` prefix: in a tenant's own account,
    /// inboxes are its own.
    pub async fn client_as(&self, user: &str) -> Client {
        let password = self
            .logins
            .as_ref()
            .and_then(|l| l.password(user))
            .unwrap_or_else(|| panic!("no login {user} on this server"));
        async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
            .connection_timeout(Duration::from_secs(5))
            .connect(self.url())
            .await
            .unwrap_or_else(|err| panic!("log in to {} as {user}: {err}", self.url()))
    }

    /// The client URL.
    pub fn url(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.url().to_owned())
            .unwrap_or_default()
    }

    /// A plain async-nats client connected to this server (as `services` on a secured one).
    pub async fn client(&self) -> Client {
        if self.logins.is_some() {
            return self.client_as("services").await;
        }
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(self.url())
            .await
            .unwrap_or_else(|err| panic!("connect to {}: {err}", self.url()))
    }

    /// Stops the server (SIGTERM, or SIGKILL when `kill`) and starts it again on the same
    /// port and store, as an operator's restart or a crash would.
    pub async fn restart(&mut self, kill: bool) {
        let Some(server) = self.server.take() else {
            return;
        };
        let port = server.port();
        if kill {
            server.kill().await;
        } else {
            server.stop().await;
        }
        let options = ServerOptions {
            port: Some(port),
            ..self.options.clone()
        };
        self.server = Some(
            LocalServer::start(options)
                .await
                .unwrap_or_else(|err| panic!("restart: {err}")),
        );
    }
}

/// A worker running in a background task.
pub struct RunningWorker {
    /// Cancel to make the worker drain and stop.
    pub shutdown: CancellationToken,
    /// Finishes when the worker has drained.
    pub handle: JoinHandle<()>,
}

impl RunningWorker {
    /// Drains the worker and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
    }
}

/// A worker configuration for tests: short retry delays so retry paths finish quickly.
pub fn quick_config() -> WorkerConfig {
    WorkerConfig {
        retry_backoff: vec![Duration::from_millis(50)],
        drain_timeout: Duration::from_secs(10),
        ..WorkerConfig::default()
    }
}

/// Starts a worker for `dispatcher` and waits until its streams exist and its rpc endpoint answers.
pub async fn spawn_worker(
    client: Client,
    dispatcher: Dispatcher,
    config: WorkerConfig,
) -> RunningWorker {
    let shutdown = CancellationToken::new();
    let domain = dispatcher.domain().clone();
    let rpc = config.rpc;
    let worker = Worker::new(client.clone(), dispatcher).config(config);
    let stop = shutdown.clone();
    let handle = tokio::spawn(async move {
        if let Err(err) = worker.run(stop).await {
            panic!("worker: {err}");
        }
    });
    if rpc {
        shared::worker::wait_until_serving(&client, &domain, Duration::from_secs(5)).await;
    } else {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    RunningWorker { shutdown, handle }
}
