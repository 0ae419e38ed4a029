//! URL ingestion cannot be turned against the ingestion host (server-side request
//! forgery): loopback, names resolving to it, cloud metadata and redirects into any of them
//! are refused before a connection is made, with the same text as a closed port, and a
//! secret served on loopback never reaches the index. The embedding, query and ingestion
//! services run against a real nats-server behind the real gateway.
//!
//! The fixtures listen on loopback only: a "secret" server on 127.0.0.1 (never listed) and
//! a redirector on 127.0.0.2 (listed in `DA_INGEST_URL_ALLOW`, standing in for a public
//! site; Linux routes all of 127/8 to the loopback interface).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Redirect;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::harness::*;

/// What every refused or failed URL fetch says, whatever the reason.
const UNREACHABLE: &str =
    "the URL could not be fetched: it is not a public http(s) address, or it did not answer";
/// The secret the loopback server guards; it must never be indexed.
const SECRET: &str = "vault combination 7319-ALPHA-CANARY";
/// The page the listed redirector serves, to show that listed hosts are fetched.
const PUBLIC: &str = "Lighthouses guide ships along rocky coasts at night.";
const COLLECTION: &str = "web";

/// A loopback fixture server that counts the requests it receives.
struct Fixture {
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Fixture {
    /// Serves `/secret.txt`, `/public.txt` and `/to?url=U` (a redirect to `U`) on `ip`.
    async fn start(ip: &str) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = Router::new()
            .route("/secret.txt", get(|| async { SECRET }))
            .route("/public.txt", get(|| async { PUBLIC }))
            .route(
                "/to",
                get(|request: Request| async move {
                    let target = request
                        .uri()
                        .query()
                        .and_then(|q| q.strip_prefix("url="))
                        .unwrap_or("/")
                        .to_owned();
                    Redirect::temporary(&target)
                }),
            )
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            }));
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind a loopback fixture");
        let address = listener.local_addr().expect("address");
        tokio::spawn(axum::serve(listener, app).into_future());
        Self { address, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The services and the gateway, with 127.0.0.2 listed, and a key of tenant `acme`.
struct Site {
    env: Env,
    base: String,
    key: String,
    http: reqwest::Client,
    _data: TempDir,
}

impl Site {
    async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data = TempDir::new().expect("temp dir");
        // A fetch that tried to connect somewhere nothing answers would wait this long:
        // longer than any wait of the test, so such an attempt fails it.
        let settings = settings_in(
            data.path(),
            &[
                ("DA_INGEST_URL_ALLOW", "127.0.0.2"),
                ("DA_INGEST_FETCH_TIMEOUT", "10m"),
            ],
        );
        let mut env = Env::server_only().await;
        for service in ["embedding", "query", "ingestion"] {
            env.add_service(service, &settings).await;
        }
        let key = env.api_key("acme").await;
        let base = env.serve_gateway(&settings).await;
        Self {
            env,
            base,
            key,
            http: reqwest::Client::new(),
            _data: data,
        }
    }

    /// `POST /v1/documents {collection, url}`, then waits for the task to finish; the task.
    async fn ingest_url(&self, url: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/documents", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"collection": COLLECTION, "url": url}))
            .send()
            .await
            .expect("post");
        let status = response.status();
        let accepted: Value = response.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::ACCEPTED, "{url}: {accepted}");
        let task_id = accepted["task_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no task_id: {accepted}"))
            .to_owned();
        eventually(&format!("task {task_id} ({url}) to finish"), || async {
            let response = self
                .http
                .get(format!("{}/v1/tasks/{task_id}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await
                .expect("get task");
            assert_eq!(response.status(), StatusCode::OK);
            let task: Value = response.json().await.expect("task JSON");
            matches!(task["status"].as_str(), Some("completed" | "failed")).then_some(task)
        })
        .await
    }

    /// Asserts that ingesting `url` failed with exactly the uniform text.
    async fn assert_refused(&self, url: &str) {
        let task = self.ingest_url(url).await;
        assert_eq!(task["status"], "failed", "{url}: {task}");
        assert_eq!(
            task["error"].as_str(),
            Some(format!("fetching {url}: {UNREACHABLE}").as_str()),
            "{url}: {task}"
        );
    }

    /// `query.search` over the collection as `acme`: the texts of the hits.
    async fn search(&self, query: &str) -> Vec<String> {
        let hits = self.env.search("acme", COLLECTION, query, 10).await;
        hits.iter()
            .map(|hit| hit["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Asserts no search result carries the secret.
    async fn assert_secret_not_indexed(&self) {
        for query in [SECRET, "vault combination"] {
            let texts = self.search(query).await;
            assert!(
                texts.iter().all(|text| !text.contains("CANARY")),
                "the secret was indexed: {texts:?}"
            );
        }
    }
}

/// A loopback port with nothing listening (bound, then released).
fn closed_port(ip: &str) -> SocketAddr {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind loopback");
    listener.local_addr().expect("address")
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_by_address_or_name_is_refused_like_a_closed_port() {
    let site = Site::start().await;
    let secret = Fixture::start("127.0.0.1").await;
    let port = secret.address.port();
    for url in [
        secret.url("/secret.txt"),
        format!("http://localhost:{port}/secret.txt"),
        format!("http://[::ffff:127.0.0.1]:{port}/secret.txt"),
        format!("http://0x7f000001:{port}/secret.txt"),
    ] {
        site.assert_refused(&url).await;
    }
    // A listed address with nothing listening says the same: errors tell no port state.
    site.assert_refused(&format!("http://{}/secret.txt", closed_port("127.0.0.2")))
        .await;
    assert_eq!(secret.hits(), 0, "the secret server was contacted");
    site.assert_secret_not_indexed().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_metadata_is_refused_without_connecting() {
    let site = Site::start().await;
    // Nothing listens there; with a 10-minute fetch timeout, only a refusal made before
    // connecting finishes the task within the test's waits.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
    ] {
        site.assert_refused(url).await;
    }
    assert!(site.search("meta-data").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listed_site_redirecting_to_loopback_is_refused() {
    let site = Site::start().await;
    let secret = Fixture::start("127.0.0.1").await;
    let redirector = Fixture::start("127.0.0.2").await;

    // The listed host itself is fetched and indexed: the allowlist works end to end.
    let task = site.ingest_url(&redirector.url("/public.txt")).await;
    assert_eq!(task["status"], "completed", "{task}");
    let texts = site.search("lighthouses on rocky coasts").await;
    assert!(
        texts.iter().any(|text| text.contains("Lighthouses")),
        "{texts:?}"
    );

    let port = secret.address.port();
    for target in [
        secret.url("/secret.txt"),
        format!("http://localhost:{port}/secret.txt"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        site.assert_refused(&redirector.url(&format!("/to?url={target}")))
            .await;
    }
    // One request for the page, one per redirect; none reached the secret.
    assert_eq!(redirector.hits(), 4);
    assert_eq!(secret.hits(), 0, "a redirect reached the secret server");
    site.assert_secret_not_indexed().await;
}
