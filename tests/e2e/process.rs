//! The real `domain-actions worker echo` process: draining on SIGTERM, and dead-lettering
//! an action whose every delivery died with its worker.

use std::collections::HashMap;

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_actions_and_loses_none() {
    const ACTIONS_SENT: usize = 20;
    let env = Env::server_only().await;
    let settings = [("DA_DRAIN_TIMEOUT", "20s")];
    let mut first = WorkerProcess::spawn(&env.url(), &settings);
    env.wait_service("echo").await;
    let mut results = env.subscribe(CALLBACKS).await;
    let mut ids = Vec::new();
    for _ in 0..ACTIONS_SENT {
        ids.push(
            env.send_action("echo.sleep", json!({"ms": 1500}), CALLBACKS)
                .await
                .id,
        );
    }
    env.wait_consumer("holding actions in flight", |c| c.num_ack_pending > 0)
        .await;

    first.terminate();
    let status = first.exit_status().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; log:\n{}",
        first.log()
    );

    let second = WorkerProcess::spawn(&env.url(), &settings);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let all_seen = |seen: &HashMap<String, usize>| ids.iter().all(|id| seen.contains_key(id));
    while !all_seen(&seen) {
        let (_, result) = next_json(&mut results).await;
        assert_eq!(result["data"]["status"], "success", "{result}");
        let id = result["correlation_id"]
            .as_str()
            .expect("correlation_id")
            .to_owned();
        *seen.entry(id).or_default() += 1;
    }
    for message in collect_for(&mut results, QUIET).await {
        let id = json_of(&message)["correlation_id"]
            .as_str()
            .expect("correlation_id")
            .to_owned();
        *seen.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "processed more than once: {twice:?}; second worker log:\n{}",
        second.log()
    );
    assert_eq!(
        seen.len(),
        ACTIONS_SENT,
        "results for unknown actions: {seen:?}"
    );
    env.assert_stored(CALLBACKS, ACTIONS_SENT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crashing_on_every_delivery_ends_in_max_deliveries() {
    let env = Env::server_only().await;
    let settings = [("DA_ACK_WAIT", "1s"), ("DA_MAX_DELIVER", "2")];
    let mut worker = WorkerProcess::spawn(&env.url(), &settings);
    env.wait_service("echo").await;
    let (inbox, mut results) = env.inbox().await;
    let sent = env
        .send_action("echo.sleep", json!({"ms": 60000}), &inbox)
        .await;

    env.wait_consumer("delivered once", |c| c.num_ack_pending == 1)
        .await;
    worker.kill().await;
    let mut worker = WorkerProcess::spawn(&env.url(), &settings);
    env.wait_consumer("delivered a second time", |c| {
        c.delivered.consumer_sequence >= 2
    })
    .await;
    worker.kill().await;
    let worker = WorkerProcess::spawn(&env.url(), &settings);

    let letter = env.dead_letter(DLQ_ACME).await;
    assert_stored_letter(&letter, "max_deliveries", sent.ack.sequence, 2);
    assert_eq!(
        letter.body,
        action_body(&sent.id, "echo.sleep", json!({"ms": 60000}))
    );
    let (_, result) = next_json(&mut results).await;
    assert_error(&result, "max_deliveries");
    assert_eq!(
        result["correlation_id"],
        sent.id.as_str(),
        "{result}; log:\n{}",
        worker.log()
    );
}
