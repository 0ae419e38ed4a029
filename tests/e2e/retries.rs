//! Retryable failures: retried with backoff, dead-lettered on the last delivery.

use std::time::Duration;

use serde_json::json;
use shared::WorkerConfig;
use testkit::quick_config;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn retryable_failure_is_retried_then_dead_lettered_once() {
    let config = WorkerConfig {
        max_deliver: Some(3),
        retry_backoff: vec![Duration::from_millis(50)],
        ..quick_config()
    };
    let env = Env::with_config(config).await;
    let (inbox, mut results) = env.inbox().await;
    let data = json!({"retryable": true, "message": "down for now"});
    let sent = env.send_action("echo.fail", data, &inbox).await;

    let letter = env.dead_letter(DLQ_ACME).await;
    assert_stored_letter(&letter, "unavailable", sent.ack.sequence, 3);
    let (_, result) = next_json(&mut results).await;
    assert_error(&result, "unavailable");
    assert_eq!(result["correlation_id"], sent.id.as_str(), "{result}");
    expect_nothing(&mut results, "a second error result").await;

    let info = env.wait_idle(sent.ack.sequence).await;
    assert_eq!(
        info.delivered.consumer_sequence, 3,
        "delivered max_deliver times"
    );
}
