//! [`Cluster`]: three real nats-server nodes on loopback, clustered with JetStream, started
//! from the same `nats/cluster/n*.conf` files `compose.yaml` runs: secured, with the
//! services' account and one per tenant (`nats/tenants.conf`), passwords made per cluster.

use std::time::Duration;

use async_nats::Client;
use tempfile::TempDir;

use platform::nats_server::{LocalServer, SecuredLogins, ServerOptions, cluster_configs};

/// How long the nodes get to form a cluster and elect a JetStream meta leader.
const FORM_WAIT: Duration = Duration::from_secs(30);

/// A three-node JetStream cluster of local nats-server processes, each with its own
/// temporary store, client port chosen by the server (`-p -1`) and route port picked free
/// at start. Nodes are named after their config file (`n1`, `n2`, `n3`), which is also the
/// name JetStream reports as a stream's leader. Killed when dropped.
pub struct Cluster {
    nodes: Vec<(String, Option<LocalServer>)>,
    urls: Vec<String>,
    logins: SecuredLogins,
    _dir: TempDir,
}

impl Cluster {
    /// Starts the three nodes and waits until JetStream has a meta leader. Panics with the
    /// reason if it cannot (a test cannot go on without a cluster).
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("da-cluster-")
            .tempdir()
            .unwrap_or_else(|err| panic!("temp dir: {err}"));
        let configs = cluster_configs();
        let route_ports: Vec<u16> = configs.iter().map(|_| free_loopback_port()).collect();
        let routes: Vec<(String, String)> = route_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                (
                    format!("NATS_ROUTE_N{}", i + 1),
                    format!("nats-route://127.0.0.1:{port}"),
                )
            })
            .collect();
        let logins = SecuredLogins::generate();
        let mut nodes = Vec::new();
        let mut urls = Vec::new();
        for (config, port) in configs.iter().zip(&route_ports) {
            let name = config
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let node_dir = dir.path().join(&name);
            let mut env = routes.clone();
            env.extend(logins.env());
            env.push((
                "NATS_CLUSTER_LISTEN".to_owned(),
                format!("127.0.0.1:{port}"),
            ));
            let options = ServerOptions {
                config: config.clone(),
                env,
                ..ServerOptions::single_node(&node_dir, None)
            };
            let server = LocalServer::start(options)
                .await
                .unwrap_or_else(|err| panic!("cluster node {name}: {err}"));
            urls.push(server.url().to_owned());
            nodes.push((name, Some(server)));
        }
        let cluster = Self {
            nodes,
            urls,
            logins,
            _dir: dir,
        };
        cluster.wait_for_meta_leader().await;
        cluster
    }

    /// Every node's client URL, as a client should be given them all so it reconnects to
    /// another node when its own goes away.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The client URLs joined by commas, the way `NATS_URL` names a cluster, each with the
    /// services' login in it.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|url| self.logins.url_for("services", url))
            .collect();
        urls.join(",")
    }

    /// The logins of the cluster's users (`services` and the tenants).
    pub fn logins(&self) -> &SecuredLogins {
        &self.logins
    }

    /// An async-nats client given all three URLs, logged in as `services`.
    pub async fn client(&self) -> Client {
        let password = self.logins.password("services").unwrap_or_default();
        async_nats::ConnectOptions::with_user_and_password("services".into(), password.into())
            .connection_timeout(Duration::from_secs(5))
            .connect(self.urls.as_slice())
            .await
            .unwrap_or_else(|err| panic!("connect to {}: {err}", self.urls.join(",")))
    }

    /// Kills node `name` (`n1`, `n2` or `n3`) without warning (SIGKILL), as a crash would.
    pub async fn kill(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|(n, _)| n == name)
            .and_then(|(_, server)| server.take())
            .unwrap_or_else(|| panic!("no running cluster node {name}"));
        node.kill().await;
    }

    /// Waits until the JetStream API answers: only the meta leader answers account info on
    /// a cluster, so an answer means one has been elected.
    async fn wait_for_meta_leader(&self) {
        let js = async_nats::jetstream::new(self.client().await);
        let deadline = tokio::time::Instant::now() + FORM_WAIT;
        loop {
            let answer = tokio::time::timeout(Duration::from_secs(2), js.query_account()).await;
            match answer {
                Ok(Ok(_)) => return,
                Ok(Err(err)) if tokio::time::Instant::now() > deadline => {
                    panic!("no JetStream meta leader within {FORM_WAIT:?}: {err}")
                }
                Err(_) if tokio::time::Instant::now() > deadline => {
                    panic!("no JetStream meta leader within {FORM_WAIT:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// A loopback port free right now: bound, read and released. Route ports must be known to
/// every peer before the nodes start, so they cannot be left to the server (`-1`).
fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("a free loopback port: {err}"))
}
