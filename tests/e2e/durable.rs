//! The durable path: actions published through JetStream to `echo.acme.actions`, results on
//! an inbox or the durable callbacks subject, dedupe, trace propagation, leases, follow-ups.

use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use shared::{Action, ActionError, CallbackSubject, Ctx, Dispatcher, WorkerConfig};
use testkit::quick_config;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn inbox_callback_gets_exactly_one_success_result() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let data = json!({"hello": "world", "n": [1, 2, 3], "nested": {"ok": true}});
    let sent = env.send_action("echo.ping", data.clone(), &inbox).await;

    let (message, result) = next_json(&mut results).await;
    assert_eq!(
        header(message.headers.as_ref(), "action_type"),
        Some("echo.ping.result")
    );
    assert_eq!(result["action_type"], "echo.ping.result", "{result}");
    assert_eq!(result["tenant_id"], "acme", "{result}");
    assert_success(&result, &sent.id, &data);
    let msg_id =
        header(message.headers.as_ref(), "Nats-Msg-Id").expect("the result has a Nats-Msg-Id");
    assert_eq!(result["action_id"], msg_id, "{result}");
    assert_ne!(msg_id, sent.id, "a result has an id of its own");
    expect_nothing(&mut results, "a second result").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn minimal_hand_written_action_works() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    // Only the action_type header (and where to answer): no action_id, tenant_id or created_at.
    let hdrs = headers(&[("action_type", "echo.ping"), ("callback_subject", &inbox)]);
    env.publish(ACTIONS, hdrs, br#"{"data":{"minimal":true}}"#)
        .await;

    let (message, result) = next_json(&mut results).await;
    assert_eq!(result["action_type"], "echo.ping.result", "{result}");
    assert_eq!(
        result["tenant_id"], "acme",
        "the tenant comes from the subject: {result}"
    );
    assert_eq!(result["data"]["status"], "success", "{result}");
    assert_eq!(
        result["data"]["result"],
        json!({"minimal": true}),
        "{result}"
    );
    let filled_in = result["correlation_id"].as_str().expect("correlation_id");
    assert!(
        uuid::Uuid::parse_str(filled_in).is_ok(),
        "the filled-in action id is a UUID: {result}"
    );
    assert!(header(message.headers.as_ref(), "Nats-Msg-Id").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn durable_callback_result_is_stored_in_the_stream() {
    let env = Env::start().await;
    let data = json!({"stored": "please"});
    let sent = env.send_action("echo.ping", data.clone(), CALLBACKS).await;

    let stored = env.stored_last(ECHO, CALLBACKS).await;
    let result: Value = serde_json::from_slice(&stored.payload).expect("stored result is JSON");
    assert_eq!(
        header(Some(&stored.headers), "action_type"),
        Some("echo.ping.result")
    );
    assert_eq!(
        header(Some(&stored.headers), "Nats-Msg-Id"),
        result["action_id"].as_str()
    );
    assert_eq!(result["action_type"], "echo.ping.result", "{result}");
    assert_success(&result, &sent.id, &data);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_publish_inside_the_window_gives_one_result() {
    let env = Env::start().await;
    let mut results = env.subscribe(CALLBACKS).await;
    let id = new_id();
    let data = json!({"dup": true});
    let body = action_body(&id, "echo.ping", data.clone());
    let first = env
        .publish(ACTIONS, action_headers("echo.ping", &id, CALLBACKS), &body)
        .await;
    let second = env
        .publish(ACTIONS, action_headers("echo.ping", &id, CALLBACKS), &body)
        .await;
    assert!(!first.duplicate);
    assert!(
        second.duplicate,
        "the same Nats-Msg-Id inside the window is a duplicate"
    );

    let (_, result) = next_json(&mut results).await;
    assert_success(&result, &id, &data);
    env.wait_idle(first.sequence).await;
    expect_nothing(&mut results, "a second result").await;
    env.assert_stored(CALLBACKS, 1).await;
    env.assert_stored(ACTIONS, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn same_action_stored_twice_yields_one_stored_result() {
    let env = Env::start().await;
    let mut results = env.subscribe(CALLBACKS).await;
    let id = new_id();
    let data = json!({"again": 2});
    let body = action_body(&id, "echo.ping", data.clone());
    // Different Nats-Msg-Id: both are stored and both processed, as a redelivery would be.
    let copy = || {
        env.publish(
            ACTIONS,
            action_headers("echo.ping", &new_id(), CALLBACKS),
            &body,
        )
    };
    let (first, second) = (copy().await, copy().await);
    assert!(!first.duplicate && !second.duplicate);
    assert_ne!(first.sequence, second.sequence);

    let info = env.wait_idle(second.sequence).await;
    assert_eq!(
        info.delivered.consumer_sequence, 2,
        "each copy delivered once"
    );
    // Each processing publishes its result; the stream keeps one (deterministic result id).
    let seen = collect_for(&mut results, QUIET).await;
    assert!((1..=2).contains(&seen.len()), "{} results seen", seen.len());
    let ids: Vec<Value> = seen
        .iter()
        .map(|m| json_of(m)["action_id"].clone())
        .collect();
    assert!(
        ids.iter().all(|r| *r == ids[0]),
        "result ids differ: {ids:?}"
    );
    for message in &seen {
        assert_success(&json_of(message), &id, &data);
    }
    env.assert_stored(CALLBACKS, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn correlation_and_trace_headers_propagate_to_the_result() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let id = new_id();
    let chain = Chain::new(&format!("chain-{}", new_id()));
    let mut hdrs = action_headers("echo.ping", &id, &inbox);
    chain.add_to(&mut hdrs);
    env.publish(ACTIONS, hdrs, &action_body(&id, "echo.ping", json!(1)))
        .await;

    let (message, result) = next_json(&mut results).await;
    assert_success(&result, &id, &json!(1));
    chain.assert_carried_by(&message);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_handler_keeps_its_lease() {
    let config = WorkerConfig {
        ack_wait: Some(Duration::from_secs(1)),
        ..quick_config()
    };
    let env = Env::with_config(config).await;
    let (inbox, mut results) = env.inbox().await;
    let sent = env
        .send_action("echo.sleep", json!({"ms": 3000}), &inbox)
        .await;

    let (_, result) = next_json(&mut results).await;
    assert_success(&result, &sent.id, &json!({"slept_ms": 3000}));
    let info = env.wait_idle(sent.ack.sequence).await;
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(
        info.delivered.consumer_sequence, 1,
        "delivered once: the lease was kept"
    );
    expect_nothing(&mut results, "a second result").await;
}

/// `echo.ping` whose data names an inbox: enqueues an `echo.sleep` follow-up answering there.
async fn ping_then_sleep(
    action: Action<echo::actions::Ping>,
    ctx: Ctx,
) -> Result<Box<RawValue>, ActionError> {
    let data: Value = serde_json::from_str(action.data.0.get())
        .map_err(|err| ActionError::invalid(err.to_string()))?;
    let reply_to = data["reply_to"]
        .as_str()
        .ok_or_else(|| ActionError::handler("no reply_to"))?;
    let callback = CallbackSubject::inbox(reply_to.to_owned())?;
    let follow_up = ctx
        .follow_up(echo::actions::Sleep { ms: 0 })
        .with_callback(&callback);
    let stored = ctx.enqueue(&follow_up).await?;
    serde_json::value::to_raw_value(&json!({"follow_up": stored.action_id}))
        .map_err(|err| ActionError::handler(err.to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_ups_carry_correlation_and_trace() {
    let dispatcher = Dispatcher::new("echo")
        .on::<echo::actions::Ping, _>(ping_then_sleep)
        .on::<echo::actions::Sleep, _>(echo::handlers::sleep);
    let env = Env::with_worker(dispatcher, quick_config()).await;
    let (ping_inbox, mut ping_results) = env.inbox().await;
    let (sleep_inbox, mut sleep_results) = env.inbox().await;
    let id = new_id();
    // No correlation_id header: the ping starts the chain, so its id correlates it.
    let chain = Chain::new(&id);
    let mut hdrs = action_headers("echo.ping", &id, &ping_inbox);
    hdrs.insert("traceparent", chain.traceparent.as_str());
    env.publish(
        ACTIONS,
        hdrs,
        &action_body(&id, "echo.ping", json!({"reply_to": sleep_inbox})),
    )
    .await;

    let (_, ping_result) = next_json(&mut ping_results).await;
    assert_eq!(ping_result["data"]["status"], "success", "{ping_result}");
    let follow_up_id = ping_result["data"]["result"]["follow_up"]
        .as_str()
        .expect("follow-up id");

    let (message, result) = next_json(&mut sleep_results).await;
    assert_eq!(result["action_type"], "echo.sleep.result", "{result}");
    assert_success(&result, follow_up_id, &json!({"slept_ms": 0}));
    chain.assert_carried_by(&message);
}
