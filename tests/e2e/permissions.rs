//! Tenant permissions (`nats/accounts.conf`): a tenant's user cannot publish to another
//! tenant's actions or rpc subjects, nor read its callbacks or replies, while its own
//! durable actions, results and rpc requests work through a real echo worker logged in as
//! `services`.

use async_nats::{Client, ConnectOptions, Event};
use bytes::Bytes;
use serde_json::json;
use shared::nats_server::{LocalServer, ServerOptions, repo_root};
use shared::testkit;
use tempfile::TempDir;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::timeout;

use crate::harness::*;

/// A server running the example accounts file.
struct Accounts {
    server: LocalServer,
    _dir: TempDir,
}

impl Accounts {
    async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("da-accounts-")
            .tempdir()
            .expect("temp dir");
        let options = ServerOptions {
            config: repo_root().join("nats/accounts.conf"),
            ..ServerOptions::single_node(dir.path(), None)
        };
        let server = LocalServer::start(options).await.expect("nats-server");
        Self { server, _dir: dir }
    }

    /// A client logged in as `user` (password from the example file), with replies on the
    /// tenant's own inbox prefix unless it is the services user; the server's errors (such
    /// as permissions violations) arrive on the returned channel.
    async fn login(&self, user: &str) -> (Client, UnboundedReceiver<String>) {
        let (errors, received) = unbounded_channel();
        let mut options =
            ConnectOptions::with_user_and_password(user.into(), format!("{user}-example-password"))
                .event_callback(move |event| report(errors.clone(), event));
        if user != "services" {
            options = options.custom_inbox_prefix(format!("_INBOX_{user}"));
        }
        let client = options
            .connect(self.server.url())
            .await
            .unwrap_or_else(|err| panic!("log in as {user}: {err}"));
        (client, received)
    }
}

async fn report(errors: UnboundedSender<String>, event: Event) {
    if let Event::ServerError(err) = event {
        let _ = errors.send(err.to_string());
    }
}

/// Waits (bounded) for the server to report a permissions violation about `subject`.
async fn expect_violation(errors: &mut UnboundedReceiver<String>, what: &str, subject: &str) {
    let wanted = format!("Permissions Violation for {what} to \"{subject}\"");
    loop {
        let error = timeout(WAIT, errors.recv())
            .await
            .unwrap_or_else(|_| panic!("no error {wanted:?} within {WAIT:?}"))
            .expect("error channel open");
        if error.contains(&wanted) {
            return;
        }
    }
}

/// A core subscription the server knows about when this returns.
async fn subscribe(client: &Client, subject: &str) -> async_nats::Subscriber {
    let subscription = client
        .subscribe(subject.to_owned())
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    subscription
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_reach_another_tenants_subjects() {
    let accounts = Accounts::start().await;
    let (services, _) = accounts.login("services").await;
    let (globex, mut globex_errors) = accounts.login("globex").await;
    let (acme, mut acme_errors) = accounts.login("acme").await;
    let mut actions = subscribe(&services, ACTIONS).await;
    let mut rpc = subscribe(&services, RPC).await;

    // globex publishing acme's actions or rpc requests: refused, never delivered.
    for subject in [ACTIONS, RPC] {
        globex
            .publish(subject, Bytes::from_static(b"{}"))
            .await
            .expect("publish");
        globex.flush().await.expect("flush");
        expect_violation(&mut globex_errors, "Publish", subject).await;
    }
    expect_nothing(&mut actions, "globex's publish to acme's actions").await;
    expect_nothing(&mut rpc, "globex's publish to acme's rpc").await;

    // globex subscribing to acme's results or replies: refused, nothing delivered.
    let mut stolen_results = globex.subscribe(CALLBACKS).await.expect("subscribe sent");
    expect_violation(&mut globex_errors, "Subscription", CALLBACKS).await;
    let mut stolen_replies = globex
        .subscribe("_INBOX_acme.>")
        .await
        .expect("subscribe sent");
    expect_violation(&mut globex_errors, "Subscription", "_INBOX_acme.>").await;

    // acme's own subjects work, with the same subscriptions in place.
    acme.publish(ACTIONS, Bytes::from_static(b"{\"mine\":1}"))
        .await
        .expect("publish");
    acme.flush().await.expect("flush");
    let (_, own) = next_json(&mut actions).await;
    assert_eq!(own, json!({"mine": 1}));
    let mut results = subscribe(&acme, CALLBACKS).await;
    services
        .publish(CALLBACKS, Bytes::from_static(b"{\"result\":1}"))
        .await
        .expect("publish");
    services
        .publish("_INBOX_acme.reply", Bytes::from_static(b"{}"))
        .await
        .expect("publish");
    services.flush().await.expect("flush");
    let (_, result) = next_json(&mut results).await;
    assert_eq!(result, json!({"result": 1}));
    expect_nothing(&mut stolen_results, "acme's result at globex").await;
    expect_nothing(&mut stolen_replies, "acme's reply at globex").await;
    assert!(
        acme_errors.try_recv().is_err(),
        "acme's own subjects are allowed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_publishes_durably_and_requests_through_a_services_worker() {
    let accounts = Accounts::start().await;
    let (services, _) = accounts.login("services").await;
    let worker = testkit::spawn_worker(services, echo::dispatcher(), testkit::quick_config()).await;
    let (acme, mut acme_errors) = accounts.login("acme").await;

    // A durable action: the stream's acknowledgement comes back on acme's own inbox.
    let mut results = subscribe(&acme, CALLBACKS).await;
    let js = async_nats::jetstream::new(acme.clone());
    let id = new_id();
    let data = json!({"tenant": "acme"});
    timeout(WAIT, async {
        js.publish_with_headers(
            ACTIONS,
            action_headers("echo.ping", &id, CALLBACKS),
            Bytes::from(action_body(&id, "echo.ping", data.clone())),
        )
        .await
        .expect("publish")
        .await
        .expect("acknowledged on _INBOX_acme")
    })
    .await
    .expect("an acknowledgement");
    let (_, result) = next_json(&mut results).await;
    assert_success(&result, &id, &data);

    // rpc: the worker's reply comes back on acme's own inbox.
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
    assert!(
        reply.subject.starts_with("_INBOX_acme."),
        "{}",
        reply.subject
    );
    assert_success(&json_of(&reply), &id, &data);
    assert!(
        acme_errors.try_recv().is_err(),
        "acme's own subjects are allowed"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_refused() {
    let accounts = Accounts::start().await;
    let refused = ConnectOptions::with_user_and_password("acme".into(), "guess".into())
        .connect(accounts.server.url())
        .await;
    assert!(refused.is_err(), "logged in with a wrong password");
}
