//! A hostile tenant against the secured deployment (`nats/accounts.conf`), driven by plain
//! async-nats clients and raw protocol lines, never by our publisher: every way a tenant
//! could aim a reply or a result outside itself, forge a dead letter for another tenant, or
//! knock the workers off NATS. Each test checks the victim's state is unchanged and what
//! the attacker got instead. URL and document attacks are in `ssrf.rs` and
//! `hostile_documents.rs`.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::{Client, HeaderMap, Subscriber};
use bytes::Bytes;
use serde_json::json;
use testkit::{self, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::harness::*;
use crate::permissions::{ping_durably, ping_rpc, secured_config};

/// Where a tenant could try to aim a reply or a result: another tenant's state, the
/// JetStream API, dead letters, another tenant's inbox, events and callbacks.
const TARGETS: [&str; 8] = [
    "$KV.sessions.globex.s1",
    "$KV.api_keys.0000",
    "$JS.API.STREAM.DELETE.ECHO",
    "$JS.API.STREAM.PURGE.ECHO",
    "dlq.echo.globex",
    "_INBOX_globex.stolen",
    "orchestrator.globex.events.session.s1",
    "echo.globex.callbacks",
];

/// The victim's state: globex's chat history in the KV bucket `sessions`.
struct Victim {
    sessions: kv::Store,
    revision: u64,
}

impl Victim {
    async fn create(services: &Client) -> Self {
        let js = jetstream::new(services.clone());
        let sessions = js
            .create_key_value(kv::Config {
                bucket: "sessions".into(),
                ..Default::default()
            })
            .await
            .expect("sessions bucket");
        let revision = sessions
            .put(
                "globex.s1",
                Bytes::from_static(b"{\"messages\":[\"hello\"]}"),
            )
            .await
            .expect("globex's history");
        Self { sessions, revision }
    }

    /// globex's history is exactly as it was, and the ECHO stream was neither deleted nor
    /// purged: it still counts at least `echo_messages` stored (a work queue drops what is
    /// handled, so its last sequence is what a deletion would reset), and its history still
    /// holds them.
    async fn assert_unchanged(&self, services: &Client, echo_messages: u64) {
        let entry = self
            .sessions
            .entry("globex.s1")
            .await
            .expect("read history")
            .expect("history still there");
        assert_eq!(
            entry.revision, self.revision,
            "globex's history was written"
        );
        assert_eq!(&entry.value[..], b"{\"messages\":[\"hello\"]}");
        let js = jetstream::new(services.clone());
        let mut echo = js.get_stream(ECHO).await.expect("ECHO still exists");
        let info = echo.info().await.expect("ECHO info");
        assert!(
            info.state.last_sequence >= echo_messages,
            "ECHO was re-created: last sequence {} < {echo_messages}",
            info.state.last_sequence
        );
        let mut history = js.get_stream(ECHO_HISTORY).await.expect("history exists");
        let kept = history.info().await.expect("history info").state.messages;
        assert!(
            kept >= echo_messages,
            "{ECHO_HISTORY} lost messages: {kept} < {echo_messages}"
        );
    }
}

/// Subscriptions (as `services`, which sees everything in its account) on every target that
/// is a plain subject, to see that nothing is ever published there.
async fn watch_targets(services: &Client) -> Vec<(String, Subscriber)> {
    let mut watched = Vec::new();
    for target in TARGETS.iter().filter(|t| !t.starts_with('$')) {
        let subscription = services.subscribe(target.to_string()).await.expect("sub");
        watched.push((target.to_string(), subscription));
    }
    services.flush().await.expect("flush");
    watched
}

async fn assert_nothing_arrived(watched: &mut [(String, Subscriber)]) {
    for (target, subscription) in watched.iter_mut() {
        expect_nothing(subscription, &format!("a message on {target}")).await;
    }
}

/// An rpc request `echo.ping` of acme with `reply` as its reply subject.
async fn request_with_reply(client: &Client, reply: &str) {
    let id = new_id();
    client
        .publish_with_reply_and_headers(
            RPC,
            reply.to_owned(),
            headers(&[("action_type", "echo.ping")]),
            Bytes::from(action_body(&id, "echo.ping", json!({"attack": reply}))),
        )
        .await
        .expect("publish");
}

/// A durable `echo.ping` of acme whose result is to go to `callback`; the stream's
/// acknowledgement goes to `reply` (a JetStream publish answers whatever reply it is given).
async fn action_with_callback(client: &Client, callback: &str, reply: &str) {
    let id = new_id();
    client
        .publish_with_reply_and_headers(
            ACTIONS,
            reply.to_owned(),
            action_headers("echo.ping", &id, callback),
            Bytes::from(action_body(&id, "echo.ping", json!({"attack": callback}))),
        )
        .await
        .expect("publish");
}

/// On the secured server, nothing acme names as a reply subject, a JetStream publish's
/// reply, or a callback reaches the services' account: globex's history, the streams, the
/// dead letters, globex's inboxes, events and callbacks are untouched. The replies come
/// back into acme's own account (acme sees them there); the callbacks are refused and
/// dead-lettered as `forbidden` under acme.
#[tokio::test(flavor = "multi_thread")]
async fn replies_and_callbacks_stay_inside_the_tenant() {
    let mut env = Env::on_server(TestServer::start_secured().await).await;
    env.add_worker(echo::dispatcher(), secured_config()).await;
    let (server, services) = (&env.server, &env.client);
    let victim = Victim::create(services).await;
    let mut watched = watch_targets(services).await;
    let globex = server.client_as("globex").await;
    let mut globex_sees = globex.subscribe(">").await.expect("sub");
    globex.flush().await.expect("flush");

    let acme = server.client_as("acme").await;
    // In its own account, acme may listen where it aims: the replies come back there.
    let mut echoed = acme.subscribe("$KV.sessions.globex.s1").await.expect("sub");
    acme.flush().await.expect("flush");
    for target in TARGETS {
        request_with_reply(&acme, target).await;
        action_with_callback(&acme, target, target).await;
    }
    acme.flush().await.expect("flush");

    // The reply aimed at globex's history came back into acme's own account, as a success
    // (beside the stream's acknowledgement of the durable action aimed there too).
    loop {
        let (_, reply) = next_json(&mut echoed).await;
        if reply.get("data").is_some() {
            assert_eq!(reply["data"]["status"], "success", "{reply}");
            break;
        }
        assert!(reply.get("stream").is_some(), "{reply}");
    }
    // Every callback outside acme was refused and dead-lettered under acme, with the reason.
    let letters = env.dead_letters(DLQ_ACME, TARGETS.len()).await;
    for letter in &letters {
        assert_eq!(letter.header("dlq_reason"), Some("forbidden"));
        let error = letter.header("dlq_error").unwrap_or_default();
        assert!(error.contains("callback subject"), "{error}");
    }
    assert_nothing_arrived(&mut watched).await;
    expect_nothing(&mut globex_sees, "anything at globex").await;
    victim
        .assert_unchanged(services, TARGETS.len() as u64)
        .await;
}

/// The same attacks from inside the services' account, as on a server without accounts:
/// the worker itself refuses every reply subject and callback outside the tenant (a
/// `forbidden` dead letter each, nothing published there), and with `Inboxes::Tenant`
/// even the shared `_INBOX.` prefix.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_refuses_replies_and_callbacks_outside_the_tenant() {
    let env = Env::with_worker(echo::dispatcher(), secured_config()).await;
    let victim = Victim::create(&env.client).await;
    let mut watched = watch_targets(&env.client).await;
    let attacker = env.server.client().await;
    for target in TARGETS.into_iter().chain(["_INBOX.shared"]) {
        request_with_reply(&attacker, target).await;
        // The stream's acknowledgement goes to the attacker's own inbox here: inside one
        // account JetStream answers any reply subject, which is why tenants get accounts.
        action_with_callback(&attacker, target, &attacker.new_inbox()).await;
    }
    attacker.flush().await.expect("flush");
    let letters = env.dead_letters(DLQ_ACME, 2 * (TARGETS.len() + 1)).await;
    let mut replies = 0;
    for letter in &letters {
        assert_eq!(letter.header("dlq_reason"), Some("forbidden"));
        let error = letter.header("dlq_error").unwrap_or_default();
        if error.starts_with("reply subject") {
            replies += 1;
        } else {
            assert!(error.starts_with("callback subject"), "{error}");
        }
    }
    assert_eq!(replies, TARGETS.len() + 1, "one refused reply per target");
    assert_nothing_arrived(&mut watched).await;
    victim.assert_unchanged(&env.client, 0).await;

    // acme's own inbox prefix still gets its reply.
    let own = format!("_INBOX_acme.{}", new_id());
    let mut replies = env.subscribe(&own).await;
    request_with_reply(&attacker, &own).await;
    let (_, reply) = next_json(&mut replies).await;
    assert_eq!(reply["data"]["status"], "success", "{reply}");
}

/// acme cannot store a dead letter at all on the secured server (`dlq.>` is not among its
/// imports), and `dlq redrive` refuses a letter stored under one tenant that claims to
/// come from another's subject, so a forged letter is never republished as globex.
#[tokio::test(flavor = "multi_thread")]
async fn forged_dead_letters_are_neither_stored_nor_redriven() {
    let mut env = Env::on_server(TestServer::start_secured().await).await;
    env.add_worker(echo::dispatcher(), secured_config()).await;
    let server = &env.server;
    let acme = server.client_as("acme").await;
    let forged = forged_letter();
    for subject in ["dlq.echo.acme", "dlq.echo.globex", "dlq.execution.globex"] {
        acme.publish_with_headers(subject, forged.clone(), Bytes::from_static(b"{}"))
            .await
            .expect("publish");
        let stored = timeout(WAIT, acme.request(subject, Bytes::from_static(b"{}")))
            .await
            .expect("an answer in time");
        assert!(stored.is_err(), "{subject}: something answered {stored:?}");
    }
    acme.flush().await.expect("flush");
    tokio::time::sleep(QUIET).await;
    let mut dlq = env
        .js
        .get_stream(shared::streams::DLQ_STREAM)
        .await
        .expect("DLQ");
    assert_eq!(dlq.info().await.expect("info").state.messages, 0);

    // A letter that got in anyway (written by someone with the services' rights, or on a
    // server without accounts): stored under acme, claiming globex's subject.
    let body = tenant_action_body("acme", &new_id(), "echo.ping", json!({"forged": true}));
    env.publish("dlq.echo.acme", forged, &body).await;
    let out = cli(&server.url_as("services"), "dlq redrive --all").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "refused: it is stored on dlq.echo.acme but claims to come from echo.globex.actions"
        ),
        "{stdout}"
    );
    let echo = env.js.get_stream(ECHO).await.expect("ECHO");
    let sent_as_globex = echo
        .get_last_raw_message_by_subject("echo.globex.actions")
        .await;
    assert!(sent_as_globex.is_err(), "something was sent as globex");
}

/// Headers of a dead letter claiming to come from globex's execution actions.
fn forged_letter() -> HeaderMap {
    headers(&[
        ("action_type", "echo.ping"),
        ("dlq_reason", "unavailable"),
        ("dlq_error", "db down"),
        ("dlq_subject", "echo.globex.actions"),
    ])
}

/// A tenant that sends a malformed header block (a bare line break in a value, a line that
/// is no `name: value`; async-nats 0.51 and 0.52 answered both by dropping the connection,
/// so every subscriber of the message went offline) does not knock the workers off NATS: a
/// services connection subscribed to the same subjects stays connected throughout, and the
/// next actions, rpc and durable, are answered.
#[tokio::test(flavor = "multi_thread")]
async fn a_header_with_a_line_break_leaves_the_workers_serving() {
    let server = TestServer::start_secured().await;
    let worker =
        testkit::spawn_worker(server.client().await, echo::dispatcher(), secured_config()).await;
    let (events, mut observed) = tokio::sync::mpsc::unbounded_channel();
    let services_password = server
        .logins()
        .and_then(|l| l.password("services"))
        .expect("services' password")
        .to_owned();
    let observer =
        async_nats::ConnectOptions::with_user_and_password("services".into(), services_password)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    let _ = events.send(event.to_string());
                }
            })
            .connect(server.url())
            .await
            .expect("observer");
    let mut copies = observer.subscribe(RPC).await.expect("sub");
    observer.flush().await.expect("flush");
    let password = server
        .logins()
        .and_then(|l| l.password("acme"))
        .expect("acme's password")
        .to_owned();
    let id = new_id();
    let body = String::from_utf8(action_body(&id, "echo.ping", json!({"evil": 1}))).expect("utf8");
    let raw = RawClient::login(&server.url(), "acme", &password).await;
    for evil in ["a\nb", "a\rb", "a\r\nPUB x 1"] {
        let headers =
            format!("NATS/1.0\r\naction_type: echo.ping\r\nx-evil: {evil}\r\nx-after: 1\r\n\r\n");
        raw.hpub(RPC, Some("_INBOX.evil"), &headers, &body).await;
        raw.hpub(ACTIONS, Some("_INBOX.evil"), &headers, &body)
            .await;
    }
    // The server may pass these on or close the attacker's connection; either is fine.
    let _ = raw.ping().await;
    // The observer got the malformed requests (bad lines skipped) and never lost its
    // connection.
    for _ in 0..3 {
        let copy = timeout(WAIT, futures::StreamExt::next(&mut copies))
            .await
            .expect("a copy of the malformed request")
            .expect("subscription open");
        assert_eq!(
            header(copy.headers.as_ref(), "action_type"),
            Some("echo.ping")
        );
    }
    observer.flush().await.expect("flush");
    while let Ok(event) = observed.try_recv() {
        assert!(
            !event.contains("disconnected"),
            "a malformed header dropped the connection: {event}"
        );
    }

    let acme = server.client_as("acme").await;
    let data = json!({"after": "the attack"});
    for _ in 0..3 {
        ping_rpc(&acme, &data).await;
    }
    let mut results = acme.subscribe(CALLBACKS).await.expect("sub");
    acme.flush().await.expect("flush");
    ping_durably(&acme, CALLBACKS, &mut results, &data).await;
    worker.stop().await;
}

/// A tenant cannot read the services' account: no JetStream API (so no consumer on the
/// streams that hold every tenant's actions), no key-value buckets, no dead letters.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_read_the_services_account() {
    let server = TestServer::start_secured().await;
    let services = server.client().await;
    let worker =
        testkit::spawn_worker(server.client().await, echo::dispatcher(), secured_config()).await;
    let _victim = Victim::create(&services).await;
    let acme = server.client_as("acme").await;
    let mut sees = acme.subscribe(">").await.expect("sub");
    acme.flush().await.expect("flush");
    let listing = timeout(
        WAIT,
        acme.request("$JS.API.STREAM.NAMES", Bytes::from_static(b"{}")),
    )
    .await
    .expect("an answer in time");
    if let Ok(reply) = &listing {
        let text = String::from_utf8_lossy(&reply.payload);
        assert!(
            !text.contains("ECHO"),
            "acme listed the services' streams: {text}"
        );
    }
    let history = timeout(
        WAIT,
        acme.request(
            "$JS.API.DIRECT.GET.KV_sessions.$KV.sessions.globex.s1",
            Bytes::new(),
        ),
    )
    .await
    .expect("an answer in time");
    if let Ok(reply) = &history {
        assert!(
            !String::from_utf8_lossy(&reply.payload).contains("hello"),
            "acme read globex's history"
        );
    }
    // The services' own traffic (a dead letter, KV writes) shows up nowhere in acme's account.
    services
        .publish("dlq.echo.globex", Bytes::from_static(b"{}"))
        .await
        .expect("publish");
    services.flush().await.expect("flush");
    let seen = collect_for(&mut sees, Duration::from_millis(500)).await;
    // What acme sees is its own: its requests, its own account's advisories about them,
    // and the replies, none of which carries the services' streams or globex's history.
    for message in &seen {
        let own = ["$JS.API.", "$JS.EVENT.ADVISORY.", "_INBOX."]
            .iter()
            .any(|prefix| message.subject.starts_with(prefix));
        assert!(own, "acme saw {}", message.subject);
        if message.subject.starts_with("_INBOX.") {
            let text = String::from_utf8_lossy(&message.payload);
            assert!(!text.contains("hello") && !text.contains("ECHO"), "{text}");
        }
    }
    worker.stop().await;
}

/// Whoever answers on a request's inbox, only the result of that request is taken as its
/// reply: a result of another action (another `correlation_id`) is refused, so a message
/// slipped onto an inbox passes for nothing (`publish` and `?wait` skip such messages the
/// same way, through `Publisher::enqueue_and_wait`).
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_that_does_not_answer_the_request_is_refused() {
    use futures::StreamExt;
    let env = Env::server_only().await;
    let mut requests = env.subscribe(RPC).await;
    let impostor = env.client.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply else { continue };
            let forged = json!({
                "action_id": new_id(), "action_type": "echo.ping.result", "tenant_id": "acme",
                "correlation_id": new_id(), "created_at": "2026-01-01T00:00:00Z",
                "data": {"status": "success", "result": {"forged": true}, "duration_ms": 0},
            });
            let _ = impostor
                .publish(reply, Bytes::from(forged.to_string()))
                .await;
        }
    });
    let publisher = shared::Publisher::new(env.client.clone());
    let acme = shared::TenantId::new("acme").expect("tenant");
    let ping = echo::actions::Ping::new(&json!({"n": 1}));
    let refused = publisher
        .request(&shared::Action::new(acme, ping), WAIT)
        .await
        .expect_err("a forged reply was taken");
    assert_eq!(
        refused.code,
        shared::ErrorCode::InvalidAction,
        "{refused:?}"
    );
    assert!(
        refused.message.contains("instead of request"),
        "{}",
        refused.message
    );
}

/// A client speaking the NATS protocol by hand, to send what a well-behaved client refuses.
struct RawClient {
    writer: tokio::sync::Mutex<tokio::net::tcp::OwnedWriteHalf>,
    reader: tokio::sync::Mutex<BufReader<tokio::net::tcp::OwnedReadHalf>>,
}

impl RawClient {
    async fn login(url: &str, user: &str, password: &str) -> Self {
        let address = url.trim_start_matches("nats://");
        let stream = timeout(WAIT, TcpStream::connect(address))
            .await
            .expect("connect in time")
            .expect("connect");
        let (read, write) = stream.into_split();
        let client = Self {
            writer: tokio::sync::Mutex::new(write),
            reader: tokio::sync::Mutex::new(BufReader::new(read)),
        };
        let info = client.line().await;
        assert!(info.starts_with("INFO "), "{info}");
        let connect = json!({
            "verbose": false, "pedantic": false, "headers": true, "no_responders": true,
            "protocol": 1, "user": user, "pass": password, "name": "hostile",
        });
        client.send(&format!("CONNECT {connect}\r\n")).await;
        assert!(client.ping().await, "{user} could not log in");
        client
    }

    /// Writes `text`; a connection the server closed swallows it.
    async fn send(&self, text: &str) {
        let mut writer = self.writer.lock().await;
        let _ = writer.write_all(text.as_bytes()).await;
        let _ = writer.flush().await;
    }

    /// The next line, empty once the server closed the connection.
    async fn line(&self) -> String {
        let mut line = String::new();
        let mut reader = self.reader.lock().await;
        let _ = timeout(WAIT, reader.read_line(&mut line))
            .await
            .expect("a line in time");
        line
    }

    /// `HPUB subject [reply] <header bytes> <total bytes>`, headers given verbatim.
    async fn hpub(&self, subject: &str, reply: Option<&str>, headers: &str, body: &str) {
        let total = headers.len() + body.len();
        let reply = reply.map(|r| format!("{r} ")).unwrap_or_default();
        self.send(&format!(
            "HPUB {subject} {reply}{} {total}\r\n{headers}{body}\r\n",
            headers.len()
        ))
        .await;
    }

    /// PING, and waits for PONG (skipping what the server sends first): false when the
    /// server closed the connection instead.
    async fn ping(&self) -> bool {
        self.send("PING\r\n").await;
        loop {
            let line = self.line().await;
            if line.is_empty() {
                return false;
            }
            if line.starts_with("PONG") {
                return true;
            }
        }
    }
}
