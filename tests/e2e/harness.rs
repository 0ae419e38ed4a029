//! Shared helpers of the end-to-end tests.
//!
//! Every wait is bounded ([`WAIT`]); nothing asserts that something is fast. Messages are
//! sent with a bare async-nats client: raw headers and hand-written JSON bodies, as a `nats`
//! CLI user would send them.

use std::future::Future;
use std::path::PathBuf;
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use async_nats::jetstream::consumer::{self, pull::OrderedConfig};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, message::StreamMessage};
use async_nats::{Client, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use shared::{Dispatcher, WorkerConfig};
use tempfile::TempDir;
use testkit::{self, RunningWorker, TestServer, quick_config};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long to watch a subscription for something that must not arrive (a second result, a
/// result aimed at another tenant). Long enough for a message already sent to get through.
pub const QUIET: Duration = Duration::from_millis(1000);

/// The subjects of tenant `acme` of the echo domain.
pub const ACTIONS: &str = "echo.acme.actions";
pub const CALLBACKS: &str = "echo.acme.callbacks";
pub const RPC: &str = "echo.acme.rpc";
pub const DLQ_ACME: &str = "dlq.echo.acme";
/// The echo domain's stream and acme's durable consumer on it (made when acme has work).
pub const ECHO: &str = "ECHO";
pub const ECHO_ACTIONS: &str = "echo-actions-acme";
/// Where ECHO republishes every action it stores, as `history.<subject>`.
pub const ECHO_HISTORY: &str = "ECHO_HISTORY";

/// A nats-server of its own, a bare client on it, and (usually) an echo worker.
pub struct Env {
    pub server: TestServer,
    /// The test's own connection: what a `nats` CLI user would have.
    pub client: Client,
    pub js: jetstream::Context,
    workers: Vec<RunningWorker>,
}

/// An action this test published durably.
pub struct Sent {
    /// Its `action_id` (and `Nats-Msg-Id`).
    pub id: String,
    /// The stream's acknowledgement.
    pub ack: PublishAck,
}

/// A dead letter read back from the DLQ stream.
pub struct Letter {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Letter {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(Some(&self.headers), name)
    }
}

impl Env {
    /// A server and the echo worker with the test configuration.
    pub async fn start() -> Self {
        Self::with_config(testkit::quick_config()).await
    }

    /// A server and the echo worker with `config`.
    pub async fn with_config(config: WorkerConfig) -> Self {
        Self::with_worker(echo::dispatcher(), config).await
    }

    /// A server and an in-process worker running `dispatcher`.
    pub async fn with_worker(dispatcher: Dispatcher, config: WorkerConfig) -> Self {
        let mut env = Self::server_only().await;
        env.add_worker(dispatcher, config).await;
        env
    }

    /// Starts the service `name` (embedding, query, ingestion, execution or orchestrator) in
    /// process, built from `settings` as `domain-actions worker` would build it.
    pub async fn add_service(&mut self, name: &str, settings: &shared::Settings) {
        let dispatcher = match name {
            "embedding" => embedding::dispatcher(
                embedding::EmbeddingConfig::from_settings(settings)
                    .expect("embedding settings")
                    .build()
                    .await
                    .expect("embedding model"),
            ),
            "query" => query::dispatcher(
                query::QueryConfig::from_settings(settings)
                    .expect("query settings")
                    .build()
                    .await
                    .expect("query store"),
            ),
            "ingestion" => ingestion::dispatcher(
                ingestion::IngestionConfig::from_settings(settings)
                    .expect("ingestion settings")
                    .build(&self.js)
                    .await
                    .expect("ingestion state"),
            ),
            "execution" => execution::dispatcher(
                execution::ExecutionConfig::from_settings(settings)
                    .expect("execution settings")
                    .build(&self.js)
                    .await
                    .expect("execution state"),
            ),
            "orchestrator" => orchestrator::dispatcher(self.server.client().await),
            other => panic!("no service {other}"),
        };
        self.add_worker(dispatcher, quick_config()).await;
    }

    /// Starts one more in-process worker on this server (another service).
    pub async fn add_worker(&mut self, dispatcher: Dispatcher, config: WorkerConfig) {
        let worker_client = self.server.client().await;
        self.workers
            .push(testkit::spawn_worker(worker_client, dispatcher, config).await);
    }

    /// A server and no worker (the test starts worker processes itself).
    pub async fn server_only() -> Self {
        Self::on_server(TestServer::start().await).await
    }

    /// `server` (started with a config of the test's choosing) and no worker.
    pub async fn on_server(server: TestServer) -> Self {
        let client = server.client().await;
        let js = jetstream::new(client.clone());
        Self {
            server,
            client,
            js,
            workers: Vec::new(),
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A core subscription, known to the server when this returns.
    pub async fn subscribe(&self, subject: &str) -> Subscriber {
        let subscription = self
            .client
            .subscribe(subject.to_owned())
            .await
            .expect("subscribe");
        self.client.flush().await.expect("flush");
        subscription
    }

    /// A fresh `_INBOX.` subject and a subscription to it.
    pub async fn inbox(&self) -> (String, Subscriber) {
        let inbox = self.client.new_inbox();
        let subscription = self.subscribe(&inbox).await;
        (inbox, subscription)
    }

    /// Publishes through JetStream and waits for the stream's acknowledgement.
    pub async fn publish(&self, subject: &str, headers: HeaderMap, body: &[u8]) -> PublishAck {
        let publish = async {
            self.js
                .publish_with_headers(subject.to_owned(), headers, Bytes::copy_from_slice(body))
                .await
                .expect("publish")
                .await
                .expect("publish acknowledgement")
        };
        timeout(WAIT, publish)
            .await
            .unwrap_or_else(|_| panic!("no acknowledgement of a publish to {subject}"))
    }

    /// Publishes a complete action of `action_type` to `echo.acme.actions` with the headers a
    /// client sets (`action_type`, `callback_subject`, `Nats-Msg-Id`).
    pub async fn send_action(&self, action_type: &str, data: Value, callback: &str) -> Sent {
        let id = new_id();
        let body = action_body(&id, action_type, data);
        let ack = self
            .publish(ACTIONS, action_headers(action_type, &id, callback), &body)
            .await;
        Sent { id, ack }
    }

    /// A core NATS request; the reply and its body as JSON.
    pub async fn request(
        &self,
        subject: &str,
        headers: HeaderMap,
        body: &[u8],
    ) -> (Message, Value) {
        let request = self.client.request_with_headers(
            subject.to_owned(),
            headers,
            Bytes::copy_from_slice(body),
        );
        let reply = timeout(WAIT, request)
            .await
            .unwrap_or_else(|_| panic!("no reply on {subject} within {WAIT:?}"))
            .unwrap_or_else(|err| panic!("request to {subject}: {err}"));
        let value = json_of(&reply);
        (reply, value)
    }

    /// `query.search` over rpc as `tenant` in `collection`: the hits (the search must succeed).
    pub async fn search(
        &self,
        tenant: &str,
        collection: &str,
        query: &str,
        top_k: usize,
    ) -> Vec<Value> {
        let body = tenant_action_body(
            tenant,
            &new_id(),
            "query.search",
            json!({"query": query, "collections": [collection], "top_k": top_k}),
        );
        let (_, result) = self
            .request(
                &format!("query.{tenant}.rpc"),
                headers(&[("action_type", "query.search")]),
                &body,
            )
            .await;
        assert_eq!(result["data"]["status"], "success", "{result}");
        result["data"]["result"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The state of acme's `echo-actions-acme` consumer, once the worker has made it (it
    /// does when acme has work).
    pub async fn consumer_info(&self) -> consumer::Info {
        let stream = self.js.get_stream(ECHO).await.expect("ECHO stream");
        let deadline = Instant::now() + WAIT;
        loop {
            match stream.consumer_info(ECHO_ACTIONS).await {
                Ok(info) => return info,
                Err(err) => assert!(
                    Instant::now() < deadline,
                    "{ECHO_ACTIONS} not made within {WAIT:?}: {err}"
                ),
            }
            sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the `echo-actions-acme` consumer satisfies `ok`; returns its state then.
    pub async fn wait_consumer(
        &self,
        what: &str,
        ok: impl Fn(&consumer::Info) -> bool,
    ) -> consumer::Info {
        let deadline = Instant::now() + WAIT;
        loop {
            let info = self.consumer_info().await;
            if ok(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "{ECHO_ACTIONS}: not {what} within {WAIT:?}: delivered {:?}, ack floor {:?}, pending {}, ack pending {}, redelivered {}",
                info.delivered,
                info.ack_floor,
                info.num_pending,
                info.num_ack_pending,
                info.num_redelivered
            );
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the worker has handled every action up to stream sequence `sequence`
    /// and holds none in flight.
    pub async fn wait_idle(&self, sequence: u64) -> consumer::Info {
        self.wait_consumer("idle", |c| {
            c.delivered.stream_sequence >= sequence && c.num_pending == 0 && c.num_ack_pending == 0
        })
        .await
    }

    /// Waits until a `$SRV.PING` of service `name` is answered.
    pub async fn wait_service(&self, name: &str) -> Value {
        let subject = format!("$SRV.PING.{name}");
        let client = &self.client;
        let subject = &subject;
        let reply = eventually(&format!("an answer on {subject}"), || async move {
            client.request(subject.clone(), Bytes::new()).await.ok()
        })
        .await;
        json_of(&reply)
    }

    /// Asserts exactly `expected` messages were stored on `subject`: for actions, as kept
    /// in ECHO_HISTORY (the ECHO work queue drops each once handled); for anything else,
    /// as ECHO still holds them (results on a callbacks subject wait for a consumer).
    pub async fn assert_stored(&self, subject: &str, expected: usize) {
        let (stream, subject) = if subject.ends_with(".actions") {
            (ECHO_HISTORY, format!("history.{subject}"))
        } else {
            (ECHO, subject.to_owned())
        };
        let subject = subject.as_str();
        let stream = self.js.get_stream(stream).await.expect("stream");
        let mut subjects = stream
            .info_with_subjects(subject)
            .await
            .expect("stream info");
        let mut count = 0;
        while let Some((name, n)) = subjects.try_next().await.expect("stream subjects") {
            if name == subject {
                count += n;
            }
        }
        assert_eq!(count, expected, "messages stored on {subject}");
    }

    /// The action ECHO stored at `sequence`, as kept in ECHO_HISTORY once handled (with
    /// its original subject; the history's `Nats-*` republish headers are left on).
    pub async fn stored_action(&self, sequence: u64) -> StreamMessage {
        let history = self.js.get_stream(ECHO_HISTORY).await.expect("history");
        let history = &history;
        eventually(
            &format!("ECHO:{sequence} in {ECHO_HISTORY}"),
            || async move {
                let mut found = read_stored(history, "history.echo.*.actions")
                    .await
                    .into_iter()
                    .find(|m| {
                        m.headers.get("Nats-Sequence").map(|v| v.as_str())
                            == Some(&sequence.to_string())
                    })?;
                let original = found.headers.get("Nats-Subject")?.as_str().to_owned();
                found.subject = original.into();
                Some(found)
            },
        )
        .await
    }

    /// The last message `stream` stores on `subject`, once there is one.
    pub async fn stored_last(&self, stream: &str, subject: &str) -> StreamMessage {
        let stream = self.js.get_stream(stream).await.expect("stream");
        let stream = &stream;
        eventually(&format!("a message stored on {subject}"), || async move {
            stream.get_last_raw_message_by_subject(subject).await.ok()
        })
        .await
    }

    /// The first `n` dead letters on `subject`, read from the DLQ stream with an ordered
    /// (ephemeral) consumer filtered by that subject.
    pub async fn dead_letters(&self, subject: &str, n: usize) -> Vec<Letter> {
        let stream = self
            .js
            .get_stream(shared::streams::DLQ_STREAM)
            .await
            .expect("DLQ stream");
        let config = OrderedConfig {
            filter_subject: subject.to_owned(),
            ..Default::default()
        };
        let consumer = stream
            .create_consumer(config)
            .await
            .expect("ordered consumer on DLQ");
        let mut messages = consumer.messages().await.expect("DLQ messages");
        let mut letters = Vec::new();
        let deadline = Instant::now() + WAIT;
        while letters.len() < n {
            let next = timeout(
                deadline.saturating_duration_since(Instant::now()),
                messages.next(),
            )
            .await;
            let Ok(Some(message)) = next else {
                panic!(
                    "{} of {n} dead letters on {subject} within {WAIT:?}",
                    letters.len()
                );
            };
            let message = message.expect("DLQ message").message;
            letters.push(Letter {
                headers: message.headers.unwrap_or_default(),
                body: message.payload,
            });
        }
        letters
    }

    /// The only dead letter on `subject`.
    pub async fn dead_letter(&self, subject: &str) -> Letter {
        self.dead_letters(subject, 1).await.remove(0)
    }

    /// A new API key of `tenant`.
    pub async fn api_key(&self, tenant: &str) -> String {
        platform::http::ApiKeys::open(&self.js, 1)
            .await
            .expect("api keys")
            .create(&shared::TenantId::new(tenant).expect("tenant"), None)
            .await
            .expect("key")
    }

    /// The ingestion HTTP routes alone (what the gateway mounts for `/v1/documents`,
    /// `/v1/tasks` and `/v1/collections`) built from `settings`, on a free loopback port:
    /// their base URL and the API keys they accept.
    pub async fn serve_ingestion(
        &self,
        settings: &shared::Settings,
    ) -> (String, platform::http::ApiKeys) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let keys = platform::http::ApiKeys::open(&self.js, 1)
            .await
            .expect("api keys");
        let service = ingestion::IngestionConfig::from_settings(settings)
            .expect("settings")
            .build(&self.js)
            .await
            .expect("ingestion state");
        let api = ingestion::routes::Api::new(
            service,
            shared::Publisher::new(self.client.clone()),
            keys.clone(),
        );
        (serve_router(ingestion::routes::router(api)).await, keys)
    }

    /// The gateway built from `settings` on a free loopback port, served until the test
    /// ends; its base URL (`http://127.0.0.1:PORT`).
    pub async fn serve_gateway(&self, settings: &shared::Settings) -> String {
        let stop = tokio_util::sync::CancellationToken::new();
        let app = gateway::router(self.client.clone(), settings, stop.clone())
            .await
            .expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(gateway::serve::serve(listener, app, stop));
        base
    }

    /// Checks the worker still serves: an `echo.ping` gets its success result.
    pub async fn assert_serving(&self) {
        let (inbox, mut results) = self.inbox().await;
        let data = json!({"still": "serving"});
        let sent = self.send_action("echo.ping", data.clone(), &inbox).await;
        let (_, result) = next_json(&mut results).await;
        assert_success(&result, &sent.id, &data);
    }
}

/// Serves `router` on a free loopback port until the test ends; its base URL.
pub async fn serve_router(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(axum::serve(listener, router).into_future());
    base
}

/// Probes until `probe` gives a value; panics after [`WAIT`].
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(value)) =
            timeout(deadline.saturating_duration_since(Instant::now()), probe()).await
        {
            return value;
        }
        assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// A header map from pairs.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, *value);
    }
    map
}

/// The headers a client sets on an action: its type, where the result goes, its id.
pub fn action_headers(action_type: &str, id: &str, callback: &str) -> HeaderMap {
    headers(&[
        ("action_type", action_type),
        ("callback_subject", callback),
        ("Nats-Msg-Id", id),
    ])
}

/// A complete hand-written action body of tenant `acme`.
pub fn action_body(id: &str, action_type: &str, data: Value) -> Vec<u8> {
    tenant_action_body("acme", id, action_type, data)
}

/// A complete hand-written action body of `tenant`.
pub fn tenant_action_body(tenant: &str, id: &str, action_type: &str, data: Value) -> Vec<u8> {
    let body = json!({
        "action_id": id,
        "action_type": action_type,
        "tenant_id": tenant,
        "created_at": "2026-01-01T00:00:00Z",
        "data": data,
    });
    serde_json::to_vec(&body).expect("encode body")
}

/// The value of header `name`, if present.
pub fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str())
}

/// A new UUID v7, as a publisher would make it.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A chain of actions as a caller sees it: its correlation id and W3C trace context.
pub struct Chain {
    pub correlation: String,
    /// The `traceparent` the caller sends.
    pub traceparent: String,
}

impl Chain {
    /// A chain correlated by `correlation`, in a fresh trace.
    pub fn new(correlation: &str) -> Self {
        let trace = uuid::Uuid::new_v4().simple().to_string();
        let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
        Self {
            correlation: correlation.to_owned(),
            traceparent: format!("00-{trace}-{span}-01"),
        }
    }

    /// Sets the `correlation_id` and `traceparent` headers a caller in this chain sends.
    pub fn add_to(&self, headers: &mut HeaderMap) {
        headers.insert("correlation_id", self.correlation.as_str());
        headers.insert("traceparent", self.traceparent.as_str());
    }

    /// Asserts `message` (a result) carries this chain: the same `correlation_id` header and
    /// a `traceparent` of the same trace with a span of its own.
    pub fn assert_carried_by(&self, message: &Message) {
        let headers = message.headers.as_ref();
        assert_eq!(
            header(headers, "correlation_id"),
            Some(self.correlation.as_str())
        );
        let trace = header(headers, "traceparent").expect("a traceparent header");
        // 00-<trace id>-<parent span id>-<flags>
        let sent: Vec<&str> = self.traceparent.split('-').collect();
        let got: Vec<&str> = trace.split('-').collect();
        assert_eq!(
            got.get(1),
            sent.get(1),
            "same trace id: {trace} vs {}",
            self.traceparent
        );
        assert_ne!(
            got.get(2),
            sent.get(2),
            "a span of its own: {trace} vs {}",
            self.traceparent
        );
    }
}

/// A message's body as JSON; panics with the body when it is not.
pub fn json_of(message: &Message) -> Value {
    serde_json::from_slice(&message.payload).unwrap_or_else(|err| {
        panic!(
            "body on {} is not JSON ({err}): {}",
            message.subject,
            String::from_utf8_lossy(&message.payload)
        )
    })
}

/// The next message on `subscription` and its JSON body; panics after [`WAIT`].
pub async fn next_json(subscription: &mut Subscriber) -> (Message, Value) {
    let message = timeout(WAIT, subscription.next())
        .await
        .unwrap_or_else(|_| panic!("no message within {WAIT:?}"))
        .expect("subscription closed");
    let value = json_of(&message);
    (message, value)
}

/// Everything that arrives on `subscription` within `wait`.
pub async fn collect_for(subscription: &mut Subscriber, wait: Duration) -> Vec<Message> {
    let mut messages = Vec::new();
    let deadline = Instant::now() + wait;
    while let Ok(Some(message)) = timeout(
        deadline.saturating_duration_since(Instant::now()),
        subscription.next(),
    )
    .await
    {
        messages.push(message);
    }
    messages
}

/// Asserts nothing arrives on `subscription` for [`QUIET`].
pub async fn expect_nothing(subscription: &mut Subscriber, what: &str) {
    let extra = collect_for(subscription, QUIET).await;
    let bodies: Vec<_> = extra
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert!(extra.is_empty(), "{what}: unexpected messages {bodies:?}");
}

/// Asserts `result` is the success result of request `id` carrying `output`.
pub fn assert_success(result: &Value, id: &str, output: &Value) {
    assert_eq!(result["data"]["status"], "success", "{result}");
    assert_eq!(&result["data"]["result"], output, "{result}");
    assert_eq!(result["correlation_id"], id, "{result}");
}

/// Asserts `result` is an error result with `code`.
pub fn assert_error(result: &Value, code: &str) {
    assert_eq!(result["data"]["status"], "error", "{result}");
    assert_eq!(result["data"]["error"]["code"], code, "{result}");
    assert!(
        result["data"]["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{result}"
    );
}

/// Asserts a dead letter of a stored action: why, and where it came from.
pub fn assert_stored_letter(letter: &Letter, reason: &str, sequence: u64, deliveries: u64) {
    // Shortened: a poison message may carry a header of tens of kilobytes.
    let all: Vec<String> = letter
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v:?}").chars().take(300).collect())
        .collect();
    assert_eq!(letter.header("dlq_reason"), Some(reason), "{all:?}");
    assert!(
        letter.header("dlq_error").is_some_and(|e| !e.is_empty()),
        "{all:?}"
    );
    assert_eq!(letter.header("dlq_stream"), Some(ECHO), "{all:?}");
    assert_eq!(
        letter.header("dlq_sequence"),
        Some(sequence.to_string().as_str()),
        "{all:?}"
    );
    assert_eq!(
        letter.header("dlq_deliveries"),
        Some(deliveries.to_string().as_str()),
        "{all:?}"
    );
    // The consumer of the subject's tenant; a tenant that is no valid name (a poison
    // subject) gets one named by a hash.
    let tenant = letter
        .header("dlq_subject")
        .and_then(|s| s.split('.').nth(1))
        .unwrap_or_default();
    let consumer = letter.header("dlq_consumer").unwrap_or_default();
    match shared::TenantId::new(tenant) {
        Ok(_) => assert_eq!(consumer, format!("echo-actions-{tenant}"), "{all:?}"),
        Err(_) => assert!(consumer.starts_with("echo-actions-invalid-"), "{all:?}"),
    }
}

/// The `domain-actions` binary with `args`, output discarded, killed when dropped.
pub fn domain_actions(args: &[&str]) -> Command {
    let mut command = binary();
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// The `domain-actions` binary built with these tests.
fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_domain-actions"));
    // Only the settings a test gives apply, whatever the developer's shell has.
    for (key, _) in std::env::vars() {
        if key.starts_with("DA_") || (key.starts_with("NATS_") && key != "NATS_SERVER_BIN") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// Runs `domain-actions ARGS` against `url` (ARGS split on whitespace, as a shell would
/// without quotes) and waits for it (bounded).
pub async fn cli(url: &str, args: &str) -> Output {
    cli_with(url, args, &[]).await
}

/// [`cli`] with the variables `env` set too.
pub async fn cli_with(url: &str, args: &str, env: &[(&str, &str)]) -> Output {
    let mut command = binary();
    command
        .args(args.split_whitespace())
        .env("NATS_URL", url)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    timeout(WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("domain-actions {args} did not finish within {WAIT:?}"))
        .expect("run domain-actions")
}

/// `domain-actions worker echo` as a child process, its log in a temp file.
pub struct WorkerProcess {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl WorkerProcess {
    /// Starts an echo worker process against `url` with `settings` (DA_* variables).
    pub fn spawn(url: &str, settings: &[(&str, &str)]) -> Self {
        Self::spawn_service("echo", url, settings)
    }

    /// Starts `domain-actions worker SERVICE` against `url` with `settings`.
    pub fn spawn_service(service: &str, url: &str, settings: &[(&str, &str)]) -> Self {
        Self::spawn_args(&["worker", service], url, settings)
    }

    /// Starts `domain-actions ARGS` (a `worker` command line) against `url` with `settings`.
    pub fn spawn_args(args: &[&str], url: &str, settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("da-worker-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("worker.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = binary();
        command
            .args(args)
            .env("NATS_URL", url)
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .stderr(file);
        let child = command.spawn().expect("start domain-actions worker");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    /// The process's peak resident memory (VmHWM of /proc/PID/status), in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        let pid = self.child.id().expect("worker still running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib / 1024)
            .expect("VmHWM in /proc/PID/status")
    }

    /// Whether the process is still running (it neither exited nor crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as an orchestrator stopping the process would.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("worker still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn exit_status(&mut self) -> ExitStatus {
        match timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.expect("wait for worker"),
            Err(_) => panic!("worker did not exit within {WAIT:?}; log:\n{}", self.log()),
        }
    }

    /// SIGKILL: a crash, with no chance to drain.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill -9 worker");
    }
}

/// Settings as a worker reads them: `vars`, plus `DA_DATA_DIR` in `data`.
pub fn settings_in(data: &std::path::Path, vars: &[(&str, &str)]) -> shared::Settings {
    let mut map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("DA_DATA_DIR".into(), data.display().to_string());
    shared::Settings::from_vars(&map).expect("settings")
}

/// Every message `stream` stores on `subject`, oldest first, read one by one by sequence
/// (direct get): works on a work-queue stream, where an ordered consumer is refused.
pub async fn read_stored(stream: &jetstream::stream::Stream, subject: &str) -> Vec<StreamMessage> {
    try_read_stored(stream, subject)
        .await
        .unwrap_or_else(|err| panic!("{err}"))
}

/// [`read_stored`] for a caller that reads again on an error: on a cluster that has just
/// lost a node, a read can be answered "JetStream system temporarily unavailable" (503).
pub async fn try_read_stored(
    stream: &jetstream::stream::Stream,
    subject: &str,
) -> Result<Vec<StreamMessage>, String> {
    let mut messages = Vec::new();
    let mut next = 1;
    loop {
        match stream.get_first_raw_message_by_subject(subject, next).await {
            Ok(message) => {
                next = message.sequence + 1;
                messages.push(message);
            }
            Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(messages);
            }
            Err(err) => return Err(format!("reading {subject}: {err}")),
        }
    }
}

/// A loopback address with a port nothing listens on (the process binds it right after).
pub fn free_loopback_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// `GET /metrics`, if it answers 200.
pub async fn scrape(http: &reqwest::Client, addr: &str) -> Option<String> {
    let response = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    Some(text)
}

/// The value of the series `series` (`name{labels}` exactly as rendered), if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
