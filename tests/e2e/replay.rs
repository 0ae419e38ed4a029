//! `domain-actions replay`: history read back by tenant, type, sequence and time; sent again
//! with fresh ids; handled locally with nothing published. The durable consumer never moves.

use std::process::Output;

use serde_json::{Value, json};

use crate::harness::*;

/// Stdout of a run that must have exited 0.
pub fn succeeded(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stdout of a run that must have exited 0, as JSON lines.
pub fn json_lines(output: &Output) -> Vec<Value> {
    succeeded(output)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect()
}

/// Asserts `args` fails with exit 2 (bad flags) and says something containing `needle`.
pub async fn refused(env: &Env, args: &str, needle: &str) {
    let output = cli(&env.url(), args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args}: stderr: {stderr}");
    assert!(stderr.contains(needle), "{args}: stderr: {stderr}");
}

/// Publishes a complete action of `tenant` to `echo.<tenant>.actions`, results to `callback`.
async fn send_as(env: &Env, tenant: &str, action_type: &str, data: Value, callback: &str) -> Sent {
    let id = new_id();
    let body = tenant_action_body(tenant, &id, action_type, data);
    let subject = format!("echo.{tenant}.actions");
    let ack = env
        .publish(&subject, action_headers(action_type, &id, callback), &body)
        .await;
    Sent { id, ack }
}

/// The `action_id`s of the bodies of printed actions.
fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|line| line["body"]["action_id"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn ids_of(sent: &[&Sent]) -> Vec<String> {
    sent.iter().map(|s| s.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_prints_exactly_the_chosen_actions() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let sleep = json!({"ms": 1});
    let acme_ping = send_as(&env, "acme", "echo.ping", json!({"n": 1}), &inbox).await;
    let globex_ping = send_as(&env, "globex", "echo.ping", json!({"n": 2}), &inbox).await;
    let acme_sleep = send_as(&env, "acme", "echo.sleep", sleep.clone(), &inbox).await;
    let globex_sleep = send_as(&env, "globex", "echo.sleep", sleep, &inbox).await;
    let acme_ping2 = send_as(&env, "acme", "echo.ping", json!({"n": 3}), &inbox).await;
    for _ in 0..5 {
        next_json(&mut results).await;
    }
    let before = env.wait_idle(acme_ping2.ack.sequence).await;
    let url = env.url();

    let all = json_lines(&cli(&url, "replay echo").await);
    let every = [
        &acme_ping,
        &globex_ping,
        &acme_sleep,
        &globex_sleep,
        &acme_ping2,
    ];
    assert_eq!(ids(&all), ids_of(&every));
    let first = &all[0];
    assert_eq!(first["stream"], ECHO, "{first}");
    assert_eq!(first["sequence"], acme_ping.ack.sequence, "{first}");
    assert_eq!(first["subject"], ACTIONS, "{first}");
    assert_eq!(first["headers"]["action_type"], "echo.ping", "{first}");
    assert_eq!(first["body"]["data"], json!({"n": 1}), "{first}");
    assert!(
        first["time"].as_str().is_some_and(|t| t.contains('T')),
        "{first}"
    );

    let acme_pings =
        json_lines(&cli(&url, "replay echo --tenant acme --action-type echo.ping").await);
    assert_eq!(ids(&acme_pings), ids_of(&[&acme_ping, &acme_ping2]));

    let sleeps = json_lines(&cli(&url, "replay echo --action-type echo.sleep").await);
    assert_eq!(ids(&sleeps), ids_of(&[&acme_sleep, &globex_sleep]));

    let globex = json_lines(&cli(&url, "replay echo -t globex").await);
    assert_eq!(ids(&globex), ids_of(&[&globex_ping, &globex_sleep]));

    let (from, to) = (globex_ping.ack.sequence, globex_sleep.ack.sequence);
    let range = json_lines(
        &cli(
            &url,
            &format!("replay echo --from-seq {from} --to-seq {to}"),
        )
        .await,
    );
    assert_eq!(
        ids(&range),
        ids_of(&[&globex_ping, &acme_sleep, &globex_sleep])
    );

    let since = json_lines(&cli(&url, "replay echo --since 1h --tenant acme").await);
    assert_eq!(ids(&since), ids_of(&[&acme_ping, &acme_sleep, &acme_ping2]));
    let old = json_lines(&cli(&url, "replay echo --since 2000-01-01T00:00:00Z").await);
    assert_eq!(old.len(), 5);
    let none = json_lines(&cli(&url, "replay echo --until 2000-01-01T00:00:00Z").await);
    assert!(none.is_empty(), "{none:?}");
    let other = json_lines(&cli(&url, "replay echo --tenant nobody").await);
    assert!(other.is_empty(), "{other:?}");

    // Reading history moved nothing of the services' durable consumer.
    let after = env.consumer_info().await;
    assert_eq!(
        after.delivered.stream_sequence,
        before.delivered.stream_sequence
    );
    assert_eq!(
        after.ack_floor.stream_sequence,
        before.ack_floor.stream_sequence
    );
    assert_eq!((after.num_pending, after.num_ack_pending), (0, 0));
    // And left no reading consumer behind on the history it read.
    let mut history = env.js.get_stream(ECHO_HISTORY).await.expect("history");
    let consumers = history
        .info()
        .await
        .expect("history info")
        .state
        .consumer_count;
    assert_eq!(consumers, 0, "no reader left on {ECHO_HISTORY}");
    expect_nothing(&mut results, "a result caused by printing history").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_refuses_bad_flags_with_exit_2() {
    let env = Env::start().await;
    refused(&env, "replay echo --since yesterday-ish", "RFC 3339").await;
    refused(
        &env,
        "replay echo --action-type query.search",
        "not of domain echo",
    )
    .await;
    refused(&env, "replay dlq", "dlq").await;
    refused(&env, "replay echo --tenant a.b", "a.b").await;
    refused(&env, "replay echo --follow --republish", "--republish").await;
    refused(&env, "replay echo --republish --handle echo", "--handle").await;
    refused(&env, "replay echo --since 1h --from-seq 3", "--from-seq").await;
    refused(&env, "replay echo --from-seq 5 --to-seq 2", "--from-seq").await;
    refused(&env, "replay echo --handle query", "serves domain query").await;
    refused(&env, "replay echo --handle nothing", "nothing").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn republish_sends_fresh_actions_the_worker_handles_again() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let first = env.send_action("echo.ping", json!({"n": 1}), &inbox).await;
    let second = env.send_action("echo.ping", json!({"n": 2}), &inbox).await;
    let other = send_as(&env, "globex", "echo.ping", json!({"n": 3}), &inbox).await;
    for _ in 0..3 {
        next_json(&mut results).await;
    }

    let sent = json_lines(&cli(&env.url(), "replay echo --tenant acme --republish").await);
    assert_eq!(sent.len(), 2, "{sent:?}");
    for (line, original) in sent.iter().zip([&first, &second]) {
        let origin = format!("{ECHO}:{}", original.ack.sequence);
        assert_eq!(line["replayed_from"], origin.as_str(), "{line}");
        let new_id = line["action_id"].as_str().expect("action_id");
        assert_ne!(new_id, original.id, "a fresh id");
        assert!(
            line["sequence"].as_u64() > Some(other.ack.sequence),
            "{line}"
        );

        let stored = env
            .stored_action(line["sequence"].as_u64().expect("sequence"))
            .await;
        assert_eq!(stored.subject.as_str(), ACTIONS);
        let headers = Some(&stored.headers);
        assert_eq!(header(headers, "replayed_from"), Some(origin.as_str()));
        assert_eq!(header(headers, "Nats-Msg-Id"), Some(new_id));
        assert_eq!(header(headers, "callback_subject"), Some(inbox.as_str()));

        // The worker handles it again: one result, answering the new id.
        let (_, result) = next_json(&mut results).await;
        let data = json!({"n": if original.id == first.id { 1 } else { 2 }});
        assert_success(&result, new_id, &data);
    }
    expect_nothing(&mut results, "more results than actions republished").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handle_runs_the_handler_here_and_publishes_nothing() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let ping = env
        .send_action("echo.ping", json!({"here": true}), &inbox)
        .await;
    let fail = env
        .send_action("echo.fail", json!({"message": "no"}), &inbox)
        .await;
    for _ in 0..2 {
        next_json(&mut results).await;
    }
    env.dead_letter(DLQ_ACME).await;
    env.wait_idle(fail.ack.sequence).await;
    let stored_before = env
        .js
        .get_stream(ECHO)
        .await
        .expect("ECHO")
        .info()
        .await
        .expect("info")
        .state
        .messages;

    let handled = json_lines(&cli(&env.url(), "replay echo --handle echo").await);
    assert_eq!(handled.len(), 2, "{handled:?}");
    let origin = |sent: &Sent| format!("{ECHO}:{}", sent.ack.sequence);
    assert_eq!(handled[0]["replayed_from"], origin(&ping).as_str());
    assert_success(&handled[0]["result"], &ping.id, &json!({"here": true}));
    assert_eq!(handled[0]["result"]["action_type"], "echo.ping.result");
    assert_eq!(handled[1]["replayed_from"], origin(&fail).as_str());
    assert_error(&handled[1]["result"], "handler_error");

    expect_nothing(&mut results, "a result published by a local replay").await;
    let stored_after = env
        .js
        .get_stream(ECHO)
        .await
        .expect("ECHO")
        .info()
        .await
        .expect("info")
        .state
        .messages;
    assert_eq!(stored_after, stored_before, "nothing stored");
    let dlq = env
        .js
        .get_stream("DLQ")
        .await
        .expect("DLQ")
        .info()
        .await
        .expect("info")
        .state
        .messages;
    assert_eq!(dlq, 1, "no dead letter from a local replay");
}
