//! Bounded resources per tenant at the gateway: a tenant past its cap of live task streams
//! or chat sockets gets 429 with `Retry-After` while another tenant is still served, and a
//! place frees when one closes; an upload over the size limit is refused while it streams
//! and leaves nothing in the documents object store; a full store refuses new uploads with
//! 507 and `Retry-After` and evicts nothing. The real gateway over real HTTP, against a
//! real nats-server.

use futures::SinkExt;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::chat::{connect, recv};
use crate::harness::*;

/// The gateway with `vars` (and the ingestion worker when `worker`), keys of two tenants.
pub(crate) struct Limited {
    pub(crate) env: Env,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) acme: String,
    pub(crate) globex: String,
    _data: TempDir,
}

impl Limited {
    async fn start(vars: &[(&str, &str)], worker: bool) -> Self {
        let data = TempDir::new().expect("temp dir");
        let settings = settings_in(data.path(), vars);
        let services: &[&str] = if worker { &["ingestion"] } else { &[] };
        Self::serving(data, &settings, services).await
    }

    /// The gateway and `services` on `settings` (whose data is in `data`).
    pub(crate) async fn serving(
        data: TempDir,
        settings: &shared::Settings,
        services: &[&str],
    ) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut env = Env::server_only().await;
        for service in services {
            env.add_service(service, settings).await;
        }
        let base = env.serve_gateway(settings).await;
        let acme = env.api_key("acme").await;
        let globex = env.api_key("globex").await;
        Self::assemble(env, base, [acme, globex], data)
    }

    /// `env` served at `base`, with the keys of acme and globex; `data` lives as long.
    pub(crate) fn assemble(env: Env, base: String, keys: [String; 2], data: TempDir) -> Self {
        let [acme, globex] = keys;
        Self {
            env,
            base,
            http: reqwest::Client::new(),
            acme,
            globex,
            _data: data,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A pending task of `tenant` (no worker moves it, so its event stream stays open).
    async fn pending_task(&self, tenant: &str, task_id: &str) {
        let tenant = shared::TenantId::new(tenant).expect("tenant");
        ingestion::task::Tasks::open(&self.env.js, 1)
            .await
            .expect("tasks")
            .create(ingestion::task::TaskState::pending(
                &tenant, task_id, task_id, "manual",
            ))
            .await
            .expect("task");
    }

    /// Opens the task's event stream; the response is kept open by the caller.
    async fn events(&self, key: &str, task_id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/v1/tasks/{task_id}/events")))
            .bearer_auth(key)
            .send()
            .await
            .expect("events")
    }

    /// Uploads `bytes` as a text file as `key`'s tenant.
    pub(crate) async fn upload(&self, key: &str, name: &str, bytes: Vec<u8>) -> reqwest::Response {
        let form = Form::new()
            .text("collection", "manual")
            .part("file", Part::bytes(bytes).file_name(name.to_owned()));
        self.http
            .post(self.url("/v1/documents"))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    /// Messages and bytes in the documents object store's stream.
    pub(crate) async fn stored(&self) -> (u64, u64) {
        let mut stream = self
            .env
            .js
            .get_stream("OBJ_documents")
            .await
            .expect("documents object store");
        let info = stream.info().await.expect("info");
        (info.state.messages, info.state.bytes)
    }
}

/// The refusal's `Retry-After` (seconds) and JSON error code.
async fn refusal(response: reqwest::Response, status: StatusCode) -> (u64, Value) {
    assert_eq!(response.status(), status);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry_after > 0);
    let body: Value = response.json().await.expect("JSON error body");
    (retry_after, body)
}

/// `n` bytes of text, different for each `seed`.
pub(crate) fn text(seed: &str, n: usize) -> Vec<u8> {
    format!("{seed} is a line of plain text.\n")
        .repeat(n / (seed.len() + 26) + 1)
        .into_bytes()
        .into_iter()
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_past_its_event_stream_cap_gets_429_until_one_closes() {
    let it = Limited::start(&[("DA_INGEST_EVENT_STREAMS_PER_TENANT", "2")], false).await;
    it.pending_task("acme", "t1").await;
    it.pending_task("globex", "t2").await;

    let first = it.events(&it.acme, "t1").await;
    let second = it.events(&it.acme, "t1").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let (_, body) = refusal(
        it.events(&it.acme, "t1").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");

    // Another tenant is not held back by acme's streams.
    let other = it.events(&it.globex, "t2").await;
    assert_eq!(other.status(), StatusCode::OK);

    // Closing one of acme's streams gives its place back.
    drop(first);
    let third = eventually("a freed event stream place", || async {
        let response = it.events(&it.acme, "t1").await;
        (response.status() == StatusCode::OK).then_some(response)
    })
    .await;
    drop((second, third, other));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_past_its_chat_socket_cap_gets_429_until_one_closes() {
    let it = Limited::start(&[("DA_CHAT_SOCKETS_PER_TENANT", "1")], false).await;
    let chat = format!("{}/v1/chat", it.base.replacen("http", "ws", 1));

    let mut first = connect(&chat, Some(&it.acme)).await.expect("first socket");
    assert_eq!(recv(&mut first).await["type"], "connection_ack");
    match connect(&chat, Some(&it.acme)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            assert!(retry_after.is_some_and(|s| s > 0), "{response:?}");
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("JSON error body");
            assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
        }
        Err(other) => panic!("expected a 429, got {other}"),
        Ok(_) => panic!("a second socket past the cap was opened"),
    }

    // Another tenant still connects.
    let mut other = connect(&chat, Some(&it.globex))
        .await
        .expect("globex socket");
    assert_eq!(recv(&mut other).await["type"], "connection_ack");

    // Closing acme's socket gives its place back.
    first.send(Message::Close(None)).await.expect("close");
    drop(first);
    let mut again = eventually("a freed socket place", || async {
        connect(&chat, Some(&it.acme)).await.ok()
    })
    .await;
    assert_eq!(recv(&mut again).await["type"], "connection_ack");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_size_limit_is_413_and_leaves_nothing_stored() {
    // Past two of the store's 128 KiB chunks before the limit, so some were published.
    let it = Limited::start(&[("DA_INGEST_MAX_BYTES", "300000")], true).await;
    let response = it.upload(&it.acme, "big.txt", text("big", 400_000)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert_eq!(
        it.stored().await,
        (0, 0),
        "nothing of the refused upload stays"
    );

    // A file under the limit is stored and accepted.
    let response = it.upload(&it.acme, "fits.txt", text("fits", 200_000)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(it.stored().await.0 > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_documents_store_answers_507_and_evicts_nothing() {
    let it = Limited::start(&[("DA_INGEST_STORE_MAX_BYTES", "300000")], true).await;
    let response = it
        .upload(&it.acme, "first.txt", text("first", 200_000))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.expect("accepted");
    let first = accepted["document_id"].as_str().expect("document_id");
    let (_, before) = it.stored().await;

    let response = it
        .upload(&it.globex, "second.txt", text("second", 200_000))
        .await;
    let (retry_after, body) = refusal(response, StatusCode::INSUFFICIENT_STORAGE).await;
    assert!(retry_after > 0);
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");

    // The first original is whole and nothing of the second stayed.
    let store = it
        .env
        .js
        .get_object_store("documents")
        .await
        .expect("documents object store");
    let info = store
        .info(format!("acme/{first}"))
        .await
        .expect("the first original is still stored");
    assert_eq!(info.size, 200_000);
    assert_eq!(it.stored().await.1, before);
}
