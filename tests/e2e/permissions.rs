//! Tenant isolation of the secured server (`nats/accounts.conf`: the services in account
//! `DA`, each tenant in an account of its own importing only its own subjects): a tenant
//! cannot publish to another tenant's actions or rpc subjects, nor read its callbacks or
//! replies, while its own durable actions, results and rpc requests work through a real
//! echo worker logged in as `services`. The attacks of a hostile tenant are in `hostile.rs`.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use shared::WorkerConfig;
use shared::subject::Inboxes;
use testkit::{self, TestServer};
use tokio::time::timeout;

use crate::harness::*;

/// A worker configuration for the secured server: results only to tenant inboxes.
pub fn secured_config() -> WorkerConfig {
    WorkerConfig {
        inboxes: Inboxes::Tenant,
        ..testkit::quick_config()
    }
}

/// acme's `echo.ping` with `data` through JetStream, its result sent to `callback` and read
/// from `results` (subscribed to `callback`): checks it succeeded.
pub async fn ping_durably(acme: &Client, callback: &str, results: &mut Subscriber, data: &Value) {
    let id = new_id();
    let stored = async_nats::jetstream::new(acme.clone())
        .publish_with_headers(
            ACTIONS,
            action_headers("echo.ping", &id, callback),
            Bytes::from(action_body(&id, "echo.ping", data.clone())),
        )
        .await
        .expect("publish");
    timeout(WAIT, stored)
        .await
        .expect("an acknowledgement in time")
        .expect("stored");
    let (_, result) = next_json(results).await;
    assert_success(&result, &id, data);
}

/// acme's `echo.ping` with `data` over rpc, on the client's own inbox: checks it succeeded.
pub async fn ping_rpc(acme: &Client, data: &Value) {
    let id = new_id();
    let reply = timeout(
        WAIT,
        acme.request_with_headers(
            RPC,
            headers(&[("action_type", "echo.ping")]),
            Bytes::from(action_body(&id, "echo.ping", data.clone())),
        ),
    )
    .await
    .expect("a reply in time")
    .expect("a reply");
    assert_success(&json_of(&reply), &id, data);
}

/// A core subscription the server knows about when this returns.
async fn subscribe(client: &Client, subject: &str) -> Subscriber {
    let subscription = client
        .subscribe(subject.to_owned())
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    subscription
}

/// Publishes `body` on `subject` until `subscription` hears it: an import's interest can
/// reach the exporting account a moment after the importer's subscription was flushed (seen
/// on a loaded machine), and the test is about where messages go, not about that moment.
async fn publish_until_heard(
    publisher: &Client,
    subject: &'static str,
    body: &'static [u8],
    subscription: &mut Subscriber,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        publisher
            .publish(subject, Bytes::from_static(body))
            .await
            .expect("publish");
        publisher.flush().await.expect("flush");
        if let Ok(Some(message)) = timeout(Duration::from_millis(500), subscription.next()).await {
            return json_of(&message);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing heard on {subject} within 20s"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_reach_another_tenants_subjects() {
    let server = TestServer::start_secured().await;
    let services = server.client().await;
    let globex = server.client_as("globex").await;
    let acme = server.client_as("acme").await;
    let mut actions = subscribe(&services, ACTIONS).await;
    let mut rpc = subscribe(&services, RPC).await;

    // globex publishing acme's actions or rpc requests: they stay in globex's account.
    for subject in [ACTIONS, RPC] {
        globex
            .publish(subject, Bytes::from_static(b"{}"))
            .await
            .expect("publish");
    }
    globex.flush().await.expect("flush");
    expect_nothing(&mut actions, "globex's publish to acme's actions").await;
    expect_nothing(&mut rpc, "globex's publish to acme's rpc").await;
    let refused = timeout(WAIT, globex.request(RPC, Bytes::from_static(b"{}")))
        .await
        .expect("an answer in time");
    assert!(
        matches!(&refused, Err(err) if err.kind() == async_nats::RequestErrorKind::NoResponders),
        "globex's request to acme's rpc: {refused:?}"
    );

    // globex subscribing to acme's results or replies: nothing delivered.
    let mut stolen_results = subscribe(&globex, CALLBACKS).await;
    let mut stolen_replies = subscribe(&globex, "_INBOX_acme.>").await;
    let mut stolen_anything = subscribe(&globex, ">").await;

    // acme's own subjects work, with the same subscriptions in place.
    acme.publish(ACTIONS, Bytes::from_static(b"{\"mine\":1}"))
        .await
        .expect("publish");
    acme.flush().await.expect("flush");
    let (_, own) = next_json(&mut actions).await;
    assert_eq!(own, json!({"mine": 1}));
    let mut results = subscribe(&acme, CALLBACKS).await;
    let mut replies = subscribe(&acme, "_INBOX_acme.>").await;
    let result = publish_until_heard(&services, CALLBACKS, b"{\"result\":1}", &mut results).await;
    assert_eq!(result, json!({"result": 1}));
    let reply = publish_until_heard(
        &services,
        "_INBOX_acme.reply",
        b"{\"reply\":1}",
        &mut replies,
    )
    .await;
    assert_eq!(reply, json!({"reply": 1}));
    expect_nothing(&mut stolen_results, "acme's result at globex").await;
    expect_nothing(&mut stolen_replies, "acme's reply at globex").await;
    expect_nothing(&mut stolen_anything, "anything of acme's at globex").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_publishes_durably_and_requests_through_a_services_worker() {
    let server = TestServer::start_secured().await;
    let worker =
        testkit::spawn_worker(server.client().await, echo::dispatcher(), secured_config()).await;
    let acme = server.client_as("acme").await;

    // A durable action: the stream's acknowledgement comes back on acme's own inbox.
    let data = json!({"tenant": "acme"});
    let mut results = subscribe(&acme, CALLBACKS).await;
    ping_durably(&acme, CALLBACKS, &mut results, &data).await;

    // rpc with the client's default inbox: the reply crosses back into acme's account.
    ping_rpc(&acme, &data).await;

    // A durable result on acme's own inbox prefix, which the services publish in their account.
    let inbox = format!("_INBOX_acme.{}", new_id());
    let mut inbox_results = subscribe(&acme, &inbox).await;
    ping_durably(&acme, &inbox, &mut inbox_results, &data).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_refused() {
    let server = TestServer::start_secured().await;
    let refused = ConnectOptions::with_user_and_password("acme".into(), "guess".into())
        .connect(server.url())
        .await;
    assert!(refused.is_err(), "logged in with a wrong password");
}
