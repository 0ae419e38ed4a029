//! The orchestrator end to end: chat over real WebSockets (tokio-tungstenite) against the
//! orchestrator's router served on loopback and its callbacks worker, with the real
//! embedding, query and execution services (offline: the local model, the extractive
//! answerer) on a real nats-server. Every answer is a real agent run over an indexed
//! document, streamed by execution and delivered by the orchestrator.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use orchestrator::{Api, ChatConfig};
use platform::http::ApiKeys;
use serde_json::{Value, json};
use shared::TenantId;
use shared::publish::Publisher;
use tempfile::TempDir;
use testkit::{self, RunningWorker, quick_config};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The document every tenant's agent answers from.
const MANUAL: &[&str] = &[
    "Refunds are accepted within 30 days of purchase with a receipt.",
    "Exchanges can be made in any of our stores within 60 days.",
];
/// A question the manual answers.
const QUESTION: &str = "How long do I have to ask for a refund?";
/// The agent every tenant has.
const AGENT: &str = "support";
/// How long the tests give a socket to send its `auth` frame (the default is 10 s).
const AUTH_TIMEOUT: Duration = Duration::from_millis(500);

// ---- the system under test ----

/// One orchestrator instance: its router on a loopback port, its callbacks worker, and its
/// own NATS connections (as a separate process would have).
struct Instance {
    addr: SocketAddr,
    worker: Option<RunningWorker>,
    /// Stops the instance's sockets, as the server's shutdown would.
    shutdown: CancellationToken,
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A server, the services, orchestrator instances, and keys for two tenants that each
/// have the manual indexed and an agent over it.
struct Chat {
    env: Env,
    instances: Vec<Instance>,
    acme: String,
    globex: String,
    _data: TempDir,
}

impl Chat {
    async fn start() -> Self {
        Self::with_instances(1).await
    }

    async fn with_instances(count: usize) -> Self {
        let data = TempDir::new().expect("temp dir");
        let settings = settings_in(data.path(), &[]);
        let mut env = Env::server_only().await;
        for service in ["embedding", "query", "execution"] {
            env.add_service(service, &settings).await;
        }
        for tenant in ["acme", "globex"] {
            let chunks: Vec<Value> = MANUAL
                .iter()
                .enumerate()
                .map(|(i, text)| json!({"chunk_index": i, "text": text}))
                .collect();
            let index = json!({"collection": "manual", "document_id": "refunds", "chunks": chunks});
            rpc(&env, tenant, "query.index", index).await;
            let agent = json!({"agent_id": AGENT, "collections": ["manual"], "top_k": 2});
            rpc(&env, tenant, "execution.agent_put", json!({"agent": agent})).await;
        }
        let keys = ApiKeys::open(&env.js, 1).await.expect("api keys");
        let acme = keys.create(&tenant("acme"), None).await.expect("key");
        let globex = keys.create(&tenant("globex"), None).await.expect("key");
        let mut instances = Vec::new();
        for _ in 0..count {
            let worker = testkit::spawn_worker(
                env.server.client().await,
                orchestrator::dispatcher(env.server.client().await),
                quick_config(),
            )
            .await;
            let shutdown = CancellationToken::new();
            let api = Api::new(
                Publisher::new(env.server.client().await),
                keys.clone(),
                ChatConfig {
                    auth_timeout: AUTH_TIMEOUT,
                    ..ChatConfig::default()
                },
                shutdown.clone(),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            tokio::spawn(axum::serve(listener, orchestrator::router(api)).into_future());
            instances.push(Instance {
                addr,
                worker: Some(worker),
                shutdown,
            });
        }
        Self {
            env,
            instances,
            acme,
            globex,
            _data: data,
        }
    }

    /// An authenticated socket on instance `index` (key in the header), past its ack.
    async fn socket(&self, index: usize, key: &str) -> Socket {
        let mut socket = connect(&self.instances[index].url("/v1/chat"), Some(key))
            .await
            .expect("connect");
        assert_eq!(recv(&mut socket).await, json!({"type": "connection_ack"}));
        socket
    }

    /// `GET /v1/sessions/{id}` on instance 0 as `key`'s tenant.
    async fn history(&self, key: &str, session_id: &str) -> (u16, Value) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = self.instances[0].http(&format!("/v1/sessions/{session_id}"));
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("get history");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// `DELETE /v1/sessions/{id}` on instance 0 as `key`'s tenant: the status, and the JSON
    /// body if there is one.
    async fn forget(&self, key: &str, session_id: &str) -> (u16, Value) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = self.instances[0].http(&format!("/v1/sessions/{session_id}"));
        let response = reqwest::Client::new()
            .delete(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("delete session");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A hand-written action of `tenant` over `<domain>.<tenant>.rpc`; asserts success.
async fn rpc(env: &Env, tenant: &str, action_type: &str, data: Value) -> Value {
    let domain = action_type.split('.').next().expect("domain");
    let body = tenant_action_body(tenant, &new_id(), action_type, data);
    let (_, result) = env
        .request(
            &format!("{domain}.{tenant}.rpc"),
            headers(&[("action_type", action_type)]),
            &body,
        )
        .await;
    assert_eq!(result["data"]["status"], "success", "{result}");
    result["data"]["result"].clone()
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("tenant")
}

// ---- a WebSocket client ----

/// Opens a WebSocket to `url`, with `Authorization: Bearer <key>` when given.
pub(crate) async fn connect(url: &str, key: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let mut request = url.into_client_request()?;
    if let Some(key) = key {
        let value = format!("Bearer {key}").parse().expect("header value");
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let (socket, _) = timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap_or_else(|_| panic!("no handshake with {url} within {WAIT:?}"))?;
    Ok(socket)
}

/// Sends one JSON text frame.
async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::text(frame.to_string()))
        .await
        .expect("send frame");
}

/// A user message frame for the tenant's agent.
fn message(session_id: &str, text: &str) -> Value {
    json!({"type": "message", "session_id": session_id, "agent_id": AGENT, "message": text})
}

/// The next text frame as JSON; panics on a close or after [`WAIT`].
pub(crate) async fn recv(socket: &mut Socket) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let next = timeout(
            deadline.saturating_duration_since(Instant::now()),
            socket.next(),
        )
        .await
        .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"));
        match next {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .unwrap_or_else(|err| panic!("frame is not JSON ({err}): {text}"));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server closes; the close code, if it sent one.
async fn closed(socket: &mut Socket) -> Option<CloseCode> {
    let deadline = Instant::now() + WAIT;
    loop {
        let next = timeout(
            deadline.saturating_duration_since(Instant::now()),
            socket.next(),
        )
        .await
        .unwrap_or_else(|_| panic!("socket not closed within {WAIT:?}"));
        match next {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            None | Some(Err(_)) => return None,
            Some(Ok(Message::Text(text))) => panic!("unexpected frame before close: {text}"),
            Some(Ok(_)) => {}
        }
    }
}

/// Frames until (and with) the `task_completed` or `error` of `task_id`.
async fn until_done(socket: &mut Socket, task_id: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = recv(socket).await;
        let done = frame["task_id"] == task_id
            && matches!(frame["type"].as_str(), Some("task_completed" | "error"));
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// Sends a message and returns its task id (from `task_created`).
async fn ask(socket: &mut Socket, session_id: &str, text: &str) -> String {
    send(socket, message(session_id, text)).await;
    let created = recv(socket).await;
    assert_eq!(created["type"], "task_created", "{created}");
    assert_eq!(created["session_id"], session_id, "{created}");
    let task_id = created["task_id"].as_str().expect("task_id").to_owned();
    let id = uuid::Uuid::parse_str(&task_id).expect("task_id is a UUID");
    assert_eq!(id.get_version_num(), 7, "{task_id}");
    task_id
}

/// Asserts `frames` are one answer of `task_id`: ≥1 `stream_chunk`, then `response` (citing
/// the manual), then `task_completed`, and nothing else; the chunks add up to the answer.
fn assert_answer(frames: &[Value], session_id: &str, task_id: &str) {
    let types: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    let chunks = types.iter().take_while(|t| **t == "stream_chunk").count();
    assert!(chunks >= 1, "no stream_chunk first: {frames:?}");
    assert_eq!(
        &types[chunks..],
        ["response", "task_completed"],
        "{frames:?}"
    );
    for frame in frames {
        assert_eq!(frame["task_id"], task_id, "{frame}");
        assert_eq!(frame["session_id"], session_id, "{frame}");
    }
    let squeeze = |text: &str| text.split_whitespace().collect::<String>();
    let streamed: String = frames[..chunks]
        .iter()
        .filter_map(|f| f["content"].as_str())
        .collect();
    let response = &frames[chunks];
    let answer = response["answer"].as_str().expect("answer");
    assert!(answer.contains("30 days"), "{response}");
    assert_eq!(squeeze(&streamed), squeeze(answer), "{frames:?}");
    let citations = response["citations"].as_array().expect("citations");
    assert!(!citations.is_empty(), "{response}");
    for citation in citations {
        assert_eq!(citation["document_id"], "refunds", "{response}");
        assert_eq!(citation["collection"], "manual", "{response}");
        assert!(citation["number"].is_u64(), "{response}");
        assert!(citation["chunk_index"].is_u64(), "{response}");
        assert!(citation["score"].is_number(), "{response}");
    }
    assert!(response["usage"]["total_tokens"].is_u64(), "{response}");
}

/// Asserts nothing arrives on `socket` for [`QUIET`].
async fn silent(socket: &mut Socket, what: &str) {
    if let Ok(Some(frame)) = timeout(QUIET, socket.next()).await {
        panic!("{what}: unexpected {frame:?}");
    }
}

// ---- (a) authentication ----

#[tokio::test(flavor = "multi_thread")]
async fn a_key_in_the_header_or_the_query_authenticates_the_upgrade() {
    let chat = Chat::start().await;
    let mut socket = chat.socket(0, &chat.acme).await;
    let task_id = ask(&mut socket, "s1", QUESTION).await;
    assert_answer(&until_done(&mut socket, &task_id).await, "s1", &task_id);

    let url = chat.instances[0].url(&format!("/v1/chat?api_key={}", chat.acme));
    let mut socket = connect(&url, None).await.expect("connect");
    assert_eq!(recv(&mut socket).await, json!({"type": "connection_ack"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_auth_frame_authenticates_a_browser_socket() {
    let chat = Chat::start().await;
    let mut socket = connect(&chat.instances[0].url("/v1/chat"), None)
        .await
        .expect("connect");
    send(&mut socket, json!({"type": "auth", "api_key": chat.acme})).await;
    assert_eq!(recv(&mut socket).await, json!({"type": "connection_ack"}));
    let task_id = ask(&mut socket, "s1", QUESTION).await;
    assert_answer(&until_done(&mut socket, &task_id).await, "s1", &task_id);
    // A second auth frame is refused, and the socket stays usable.
    send(&mut socket, json!({"type": "auth", "api_key": chat.acme})).await;
    assert_eq!(recv(&mut socket).await["code"], "invalid_action");
    ask(&mut socket, "s1", "again").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_key_is_refused_with_an_error_and_a_close() {
    let chat = Chat::start().await;
    let url = chat.instances[0].url("/v1/chat");
    // The real key with its last digit changed: well formed, never issued.
    let mut forged = chat.acme.clone();
    let last = if forged.pop() == Some('0') { '1' } else { '0' };
    forged.push(last);
    // In the auth frame: an error frame, then a policy close.
    for bad in ["nonsense", "da_0000", &forged] {
        let mut socket = connect(&url, None).await.expect("connect");
        send(&mut socket, json!({"type": "auth", "api_key": bad})).await;
        let error = recv(&mut socket).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], "unauthorized", "{error}");
        assert_eq!(closed(&mut socket).await, Some(CloseCode::Policy), "{bad}");
    }
    // In the header or the query: the upgrade itself is refused with a 401.
    for (url, key) in [
        (url.clone(), Some("da_0000")),
        (format!("{url}?api_key=da_0000"), None),
    ] {
        match connect(&url, key).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "{url}");
            }
            Err(err) => panic!("{url}: expected a 401, got {err}"),
            Ok(_) => panic!("{url}: a bad key was upgraded"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_does_not_authenticate_first_is_closed() {
    let chat = Chat::start().await;
    let url = chat.instances[0].url("/v1/chat");
    // Silence: closed after the auth timeout.
    let mut socket = connect(&url, None).await.expect("connect");
    let error = recv(&mut socket).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "unauthorized", "{error}");
    assert_eq!(closed(&mut socket).await, Some(CloseCode::Policy));
    // A message before the auth frame: closed at once, nothing enqueued.
    let mut socket = connect(&url, None).await.expect("connect");
    send(&mut socket, message("s1", "hello")).await;
    let error = recv(&mut socket).await;
    assert_eq!(error["code"], "unauthorized", "{error}");
    assert_eq!(closed(&mut socket).await, Some(CloseCode::Policy));
}

// ---- (b) one message, in order ----

#[tokio::test(flavor = "multi_thread")]
async fn a_message_gets_created_chunks_response_and_completed_in_order() {
    let chat = Chat::start().await;
    let mut socket = chat.socket(0, &chat.acme).await;
    let mut tasks = Vec::new();
    for text in [QUESTION, "Within how many days are refunds accepted?"] {
        let task_id = ask(&mut socket, "s1", text).await;
        let frames = until_done(&mut socket, &task_id).await;
        assert_answer(&frames, "s1", &task_id);
        tasks.push(task_id);
    }
    assert_ne!(tasks[0], tasks[1], "a task id per message");
    // A failed run (no such agent) is an error event of its task.
    send(
        &mut socket,
        json!({"type": "message", "session_id": "s1", "agent_id": "nobody", "message": QUESTION}),
    )
    .await;
    let created = recv(&mut socket).await;
    assert_eq!(created["type"], "task_created", "{created}");
    let task_id = created["task_id"].as_str().expect("task_id");
    let frames = until_done(&mut socket, task_id).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    let error = &frames[0];
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "invalid_action", "{error}");
    assert_eq!(error["session_id"], "s1", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("no agent nobody")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_naming_no_agent_goes_to_the_tenants_default_agent() {
    let chat = Chat::start().await;
    // globex has only its "support" agent: the default one does not exist yet.
    let agents = rpc(&chat.env, "globex", "execution.agent_list", json!({})).await;
    assert!(!agents.to_string().contains("\"assistant\""), "{agents}");
    let mut socket = chat.socket(0, &chat.globex).await;
    send(
        &mut socket,
        json!({"type": "message", "session_id": "s9", "message": QUESTION}),
    )
    .await;
    let created = recv(&mut socket).await;
    assert_eq!(created["type"], "task_created", "{created}");
    let task_id = created["task_id"].as_str().expect("task_id").to_owned();
    let frames = until_done(&mut socket, &task_id).await;
    assert_answer(&frames, "s9", &task_id);
    // Its first run stored it, with retrieval over every collection (the manual answered).
    let agent = rpc(
        &chat.env,
        "globex",
        "execution.agent_get",
        json!({"agent_id": "assistant"}),
    )
    .await;
    assert_eq!(agent["name"], "Assistant", "{agent}");
    assert_eq!(agent["retrieval"], true, "{agent}");
}

// ---- (c) two instances ----

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_reaches_the_socket_whichever_instance_pulls_the_callback() {
    let mut chat = Chat::with_instances(2).await;
    let mut on_a = chat.socket(0, &chat.acme).await;
    let mut on_b = chat.socket(1, &chat.acme).await;
    // Both workers pull from the shared consumer: every answer still reaches A's socket.
    for _ in 0..6 {
        let task_id = ask(&mut on_a, "s-a", QUESTION).await;
        assert_answer(&until_done(&mut on_a, &task_id).await, "s-a", &task_id);
    }
    // With A's worker stopped, only B's pulls callbacks; A's socket gets them all the same.
    let worker_a = chat.instances[0].worker.take().expect("worker A");
    worker_a.stop().await;
    for _ in 0..3 {
        let task_id = ask(&mut on_a, "s-a", QUESTION).await;
        assert_answer(&until_done(&mut on_a, &task_id).await, "s-a", &task_id);
    }
    // B's socket follows another session and heard none of it.
    silent(&mut on_b, "a socket on another session").await;
    let task_id = ask(&mut on_b, "s-b", QUESTION).await;
    assert_answer(&until_done(&mut on_b, &task_id).await, "s-b", &task_id);
    silent(&mut on_a, "a socket on another session").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_instance_closes_its_sockets_as_going_away() {
    let chat = Chat::start().await;
    let mut socket = chat.socket(0, &chat.acme).await;
    let task_id = ask(&mut socket, "s1", QUESTION).await;
    assert_answer(&until_done(&mut socket, &task_id).await, "s1", &task_id);
    chat.instances[0].shutdown.cancel();
    assert_eq!(closed(&mut socket).await, Some(CloseCode::Away));
}

// ---- (d) a closed socket ----

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_given_after_the_socket_closed_is_in_the_history() {
    let chat = Chat::start().await;
    let mut socket = chat.socket(0, &chat.acme).await;
    send(&mut socket, message("s-closed", QUESTION)).await;
    socket.close(None).await.expect("close");
    drop(socket);
    let history = eventually("the answer in the session's history", || async {
        let (status, body) = chat.history(&chat.acme, "s-closed").await;
        if status == 404 {
            return None; // nothing stored yet
        }
        assert_eq!(status, 200, "{body}");
        let answered = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "assistant"));
        answered.then_some(body)
    })
    .await;
    assert_eq!(history["session_id"], "s-closed");
    assert_eq!(history["agent_id"], AGENT);
    let messages = history["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{history}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], QUESTION);
    assert_eq!(messages[1]["role"], "assistant");
    assert!(
        messages[1]["content"]
            .as_str()
            .is_some_and(|a| a.contains("30 days")),
        "{history}"
    );
    assert_eq!(messages[1]["citations"][0]["document_id"], "refunds");
    // The route checks its caller and its id.
    let (status, _) = chat.history("da_0000", "s-closed").await;
    assert_eq!(status, 401);
    let (status, body) = chat.history(&chat.acme, "bad.id").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    let (status, body) = chat.history(&chat.globex, "s-closed").await;
    assert_eq!(status, 404, "another tenant's history: {body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (status, body) = chat.history(&chat.acme, "never-used").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_can_be_deleted_by_its_tenant_only() {
    let chat = Chat::start().await;
    let mut socket = chat.socket(0, &chat.acme).await;
    // The history is stored before the answer is sent, so it is there once it is done.
    let task_id = ask(&mut socket, "s-forget", QUESTION).await;
    until_done(&mut socket, &task_id).await;
    let (status, _) = chat.history(&chat.acme, "s-forget").await;
    assert_eq!(status, 200);

    // Another tenant's delete of the same id finds nothing and removes nothing.
    let (status, body) = chat.forget(&chat.globex, "s-forget").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (status, _) = chat.history(&chat.acme, "s-forget").await;
    assert_eq!(status, 200, "another tenant deleted acme's session");

    let (status, body) = chat.forget(&chat.acme, "bad.id").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = chat.forget("da_0000", "s-forget").await;
    assert_eq!(status, 401);
    let (status, body) = chat.forget(&chat.acme, "s-forget").await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = chat.history(&chat.acme, "s-forget").await;
    assert_eq!(status, 404, "a deleted session is gone");
    let (status, _) = chat.forget(&chat.acme, "s-forget").await;
    assert_eq!(status, 404, "deleted twice");

    // The same id starts afresh.
    let task_id = ask(&mut socket, "s-forget", QUESTION).await;
    until_done(&mut socket, &task_id).await;
    let (status, body) = chat.history(&chat.acme, "s-forget").await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2), "{body}");
}

// ---- (e) invalid messages ----

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_message_is_an_error_and_the_socket_stays_usable() {
    let chat = Chat::start().await;
    let mut socket = chat.socket(0, &chat.acme).await;
    let too_long = "x".repeat(orchestrator::protocol::MAX_MESSAGE_BYTES + 1);
    let invalid = [
        json!("not an object"),
        json!({"type": "shout"}),
        json!({"type": "message", "session_id": "s1"}),
        message("s.1", "hi"),
        message("", "hi"),
        message(&"s".repeat(65), "hi"),
        json!({"type": "message", "session_id": "s1", "agent_id": "a*", "message": "hi"}),
        message("s1", ""),
        message("s1", "   "),
        message("s1", &too_long),
    ];
    for frame in invalid {
        send(&mut socket, frame.clone()).await;
        let error = recv(&mut socket).await;
        assert_eq!(error["type"], "error", "{frame}: {error}");
        assert_eq!(error["code"], "invalid_action", "{frame}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    socket.send(Message::text("{not json")).await.expect("send");
    assert_eq!(recv(&mut socket).await["code"], "invalid_action");
    socket
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(recv(&mut socket).await["code"], "invalid_action");
    // Still usable, and nothing was enqueued for the refused frames.
    let task_id = ask(&mut socket, "s1", QUESTION).await;
    assert_answer(&until_done(&mut socket, &task_id).await, "s1", &task_id);
    silent(&mut socket, "after the only valid message's answer").await;
}

// ---- (f) tenants ----

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_never_hears_a_session_of_the_same_id() {
    let chat = Chat::start().await;
    let mut acme = chat.socket(0, &chat.acme).await;
    let mut globex = chat.socket(0, &chat.globex).await;
    // Globex follows "shared" too (its own message), then acme talks in its "shared".
    let task_id = ask(&mut globex, "shared", QUESTION).await;
    assert_answer(&until_done(&mut globex, &task_id).await, "shared", &task_id);
    let task_id = ask(&mut acme, "shared", QUESTION).await;
    assert_answer(&until_done(&mut acme, &task_id).await, "shared", &task_id);
    silent(&mut globex, "acme's events on globex's socket").await;
    // And a bare NATS subscriber of globex's subject hears nothing of acme's next answer.
    let mut globex_events = chat
        .env
        .subscribe("orchestrator.globex.events.session.shared")
        .await;
    let task_id = ask(&mut acme, "shared", QUESTION).await;
    assert_answer(&until_done(&mut acme, &task_id).await, "shared", &task_id);
    expect_nothing(&mut globex_events, "acme's events on globex's subject").await;
    silent(&mut globex, "acme's events on globex's socket").await;
}
