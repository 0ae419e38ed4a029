//! Fair share between tenants on the durable path: a tenant with a deep backlog delays no
//! other tenant's action behind it, and a tenant that fills its share of the work queue is
//! refused new actions, with nothing stored evicted, while everyone else's are handled.
//! Behaviour only: no timing is asserted.

use serde_json::json;
use shared::WorkerConfig;
use testkit::quick_config;

use crate::harness::*;

/// A worker with few handler slots, so a backlog builds up quickly.
fn few_slots() -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        ..quick_config()
    }
}

/// Publishes `n` durable `echo.sleep` actions of `tenant`, no callback, without waiting
/// for each acknowledgement; returns how many the stream stored and how many it refused
/// (with the server's reason for the first refusal).
async fn flood(env: &Env, tenant: &str, n: usize, ms: u64) -> (usize, usize, Option<String>) {
    let subject = format!("echo.{tenant}.actions");
    let mut acks = Vec::with_capacity(n);
    for _ in 0..n {
        let id = new_id();
        let body = tenant_action_body(tenant, &id, "echo.sleep", json!({"ms": ms}));
        let headers = headers(&[("action_type", "echo.sleep"), ("Nats-Msg-Id", &id)]);
        acks.push(
            env.js
                .publish_with_headers(subject.clone(), headers, body.into())
                .await
                .expect("publish sent"),
        );
    }
    let (mut stored, mut refused, mut why) = (0, 0, None);
    for ack in acks {
        match ack.await {
            Ok(_) => stored += 1,
            Err(err) => {
                refused += 1;
                why.get_or_insert(err.to_string());
            }
        }
    }
    (stored, refused, why)
}

/// How many actions `tenant` still has waiting in the ECHO work queue.
async fn waiting(env: &Env, tenant: &str) -> usize {
    let subject = format!("echo.{tenant}.actions");
    let stream = env.js.get_stream(ECHO).await.expect("ECHO stream");
    read_stored(&stream, &subject).await.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_tenants_action_is_handled_while_a_noisy_backlog_waits() {
    let env = Env::with_config(few_slots()).await;
    // 2,000 actions of 20 ms on 4 slots: about 10 s of work for noisy alone.
    let (stored, refused, why) = flood(&env, "noisy", 2000, 20).await;
    assert_eq!((stored, refused), (2000, 0), "{why:?}");
    // Noisy's lane is busy before quiet shows up.
    let js = &env.js;
    eventually("noisy's consumer handling its backlog", || async move {
        let stream = js.get_stream(ECHO).await.ok()?;
        let info = stream.consumer_info("echo-actions-noisy").await.ok()?;
        (info.num_ack_pending > 0).then_some(())
    })
    .await;

    let (inbox, mut results) = env.inbox().await;
    let id = new_id();
    let body = tenant_action_body("quiet", &id, "echo.ping", json!({"q": 1}));
    env.publish(
        "echo.quiet.actions",
        action_headers("echo.ping", &id, &inbox),
        &body,
    )
    .await;
    let (_, result) = next_json(&mut results).await;
    assert_success(&result, &id, &json!({"q": 1}));
    let left = waiting(&env, "noisy").await;
    assert!(
        left > 1000,
        "quiet's action waited for most of noisy's backlog: only {left} of 2000 left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_with_a_full_backlog_is_refused_and_every_other_action_is_handled() {
    // One slot: while acme's long action runs, nothing else of acme's drains.
    let env = Env::with_config(WorkerConfig {
        concurrency: 1,
        ..quick_config()
    })
    .await;
    // An operator tightens the per-tenant backlog of ECHO (as `nats stream edit` would).
    let mut stream = env.js.get_stream(ECHO).await.expect("ECHO stream");
    let mut config = stream.info().await.expect("ECHO info").config.clone();
    config.max_messages_per_subject = 5;
    env.js
        .update_stream(config)
        .await
        .expect("a smaller backlog");

    // globex queues three actions; acme starts a long action, then floods behind it.
    let (inbox, mut results) = env.inbox().await;
    let mut globex = Vec::new();
    for n in 0..3 {
        let id = new_id();
        let body = tenant_action_body("globex", &id, "echo.ping", json!({"n": n}));
        env.publish(
            "echo.globex.actions",
            action_headers("echo.ping", &id, &inbox),
            &body,
        )
        .await;
        globex.push(id);
    }
    let (stored, _, _) = flood(&env, "acme", 1, 3000).await;
    assert_eq!(stored, 1);
    env.wait_consumer("acme's long action in flight", |c| c.num_ack_pending == 1)
        .await;
    let (stored, refused, why) = flood(&env, "acme", 40, 10).await;
    assert!(
        stored <= 4,
        "at most its backlog of 5, one in flight: {stored}"
    );
    assert!(refused >= 36, "the flooder heard no: {refused} refused");
    let why = why.unwrap_or_default();
    assert!(
        why.contains("maximum messages per subject exceeded"),
        "the server says why: {why}"
    );
    // The CLI says so too, and exits non-zero (acme's long action still holds its place).
    let output = cli(&env.url(), "publish echo.ping --tenant acme --no-wait").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("backlog_full"), "{stderr}");

    // Every one of globex's actions is handled, the flood notwithstanding.
    let mut answered = Vec::new();
    while answered.len() < globex.len() {
        let (_, result) = next_json(&mut results).await;
        answered.push(result["correlation_id"].as_str().unwrap_or("?").to_owned());
    }
    answered.sort();
    globex.sort();
    assert_eq!(answered, globex);

    // Nothing acme stored was evicted: each of its stored actions is handled in the end.
    let env = &env;
    eventually("acme's stored actions all handled", || async move {
        (waiting(env, "acme").await == 0).then_some(())
    })
    .await;
    let dlq = env
        .js
        .get_stream(shared::streams::DLQ_STREAM)
        .await
        .expect("DLQ")
        .info()
        .await
        .expect("DLQ info")
        .state
        .messages;
    assert_eq!(dlq, 0, "nothing dead-lettered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_concurrent_limit_caps_its_actions_in_flight_on_the_durable_path() {
    let env = Env::start().await;
    let set = cli(&env.url(), "tenants set acme --concurrent 2").await;
    assert_eq!(
        set.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let (stored, refused, why) = flood(&env, "acme", 10, 300).await;
    assert_eq!((stored, refused), (10, 0), "{why:?}");
    // The server hands acme's consumer no more than two at once, over every instance.
    let info = env
        .wait_consumer("two of acme's actions in flight", |c| {
            c.num_ack_pending == 2
        })
        .await;
    assert_eq!(info.config.max_ack_pending, 2);
    assert!(info.num_pending > 0, "the rest wait their turn");
}
