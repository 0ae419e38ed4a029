//! `domain-actions dlq ls|show|redrive` against dead letters a real worker wrote (and one
//! written by hand, as any NATS client could), and `streams ls` on the streams they fill.

use serde_json::{Value, json};

use crate::harness::*;
use crate::replay::{json_lines, refused, succeeded};

/// One row of `dlq ls`: sequence, id, time, subject, action type, reason.
struct Row {
    sequence: u64,
    id: String,
    subject: String,
    action_type: String,
    reason: String,
}

async fn ls(env: &Env, flags: &str) -> Vec<Row> {
    let output = succeeded(&cli(&env.url(), &format!("dlq ls {flags}")).await);
    output
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert!(cols.len() >= 6, "a short row: {line}");
            Row {
                sequence: cols[0]
                    .parse()
                    .unwrap_or_else(|_| panic!("sequence: {line}")),
                id: cols[1].to_owned(),
                subject: cols[3].to_owned(),
                action_type: cols[4].to_owned(),
                reason: cols[5].to_owned(),
            }
        })
        .collect()
}

fn reasons(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|r| r.reason.as_str()).collect()
}

/// `dlq show ARG` printed as JSON.
async fn show(env: &Env, letter: &str) -> Value {
    let output = succeeded(&cli(&env.url(), &format!("dlq show {letter}")).await);
    serde_json::from_str(&output).unwrap_or_else(|err| panic!("not JSON ({err}): {output}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_and_show_list_dead_letters_with_their_reasons() {
    let env = Env::start().await;
    let (inbox, _results) = env.inbox().await;
    let fail = env
        .send_action("echo.fail", json!({"message": "no thanks"}), &inbox)
        .await;
    env.dead_letter(DLQ_ACME).await;
    let garbage = env
        .publish(
            ACTIONS,
            headers(&[("action_type", "echo.ping")]),
            b"not json",
        )
        .await;
    env.dead_letters(DLQ_ACME, 2).await;
    let id = new_id();
    let body = tenant_action_body("globex", &id, "echo.fail", json!({}));
    env.publish(
        "echo.globex.actions",
        action_headers("echo.fail", &id, &inbox),
        &body,
    )
    .await;
    env.dead_letter("dlq.echo.globex").await;

    let all = ls(&env, "").await;
    assert_eq!(
        reasons(&all),
        ["handler_error", "invalid_action", "handler_error"]
    );
    assert_eq!(all[0].id, format!("dlq-{ECHO}-{}", fail.ack.sequence));
    assert_eq!(all[0].subject, ACTIONS);
    assert_eq!(all[0].action_type, "echo.fail");
    assert_eq!(all[1].id, format!("dlq-{ECHO}-{}", garbage.sequence));
    assert_eq!(all[2].subject, "echo.globex.actions");

    assert_eq!(
        reasons(&ls(&env, "--tenant acme").await),
        ["handler_error", "invalid_action"]
    );
    assert_eq!(
        reasons(&ls(&env, "--reason invalid_action").await),
        ["invalid_action"]
    );
    let globex = ls(&env, "--domain echo --tenant globex --reason handler_error").await;
    assert_eq!(globex.len(), 1);
    assert!(ls(&env, "--domain query").await.is_empty());

    // Shown whole, by sequence or by id: every header and the original body.
    let by_sequence = show(&env, &all[0].sequence.to_string()).await;
    let by_id = show(&env, &all[0].id).await;
    assert_eq!(by_sequence, by_id);
    let headers = &by_id["headers"];
    assert_eq!(headers["dlq_reason"], "handler_error", "{by_id}");
    assert_eq!(headers["dlq_subject"], ACTIONS, "{by_id}");
    assert_eq!(
        headers["dlq_sequence"],
        fail.ack.sequence.to_string(),
        "{by_id}"
    );
    assert!(
        headers["dlq_error"]
            .as_str()
            .is_some_and(|e| e.contains("no thanks")),
        "{by_id}"
    );
    assert_eq!(by_id["body"]["action_id"], fail.id.as_str(), "{by_id}");
    assert_eq!(by_id["subject"], DLQ_ACME, "{by_id}");
    assert_eq!(
        show(&env, &all[1].sequence.to_string()).await["body"],
        "not json"
    );

    let missing = cli(&env.url(), "dlq show 999").await;
    assert_eq!(missing.status.code(), Some(1));
    refused(&env, "dlq show bogus", "bogus").await;
    refused(&env, "dlq ls --reason nope", "max_deliveries").await;
    refused(&env, "dlq ls --tenant a.b", "a.b").await;
    refused(&env, "dlq redrive", "--all").await;
    refused(&env, "dlq redrive 1 --all", "--all").await;
    refused(&env, "dlq redrive 1 --tenant acme", "--all").await;
}

/// Writes by hand, as any NATS client could, the dead letter of an `echo.ping` that failed
/// while a dependency was down: it will succeed when sent back. Returns its DLQ sequence.
async fn hand_written_letter(env: &Env, id: &str, callback: &str) -> u64 {
    let body = action_body(id, "echo.ping", json!({"back": "again"}));
    let mut letter = action_headers("echo.ping", "dlq-ECHO-4242", callback);
    for (name, value) in [
        ("dlq_reason", "unavailable"),
        ("dlq_error", "the model server was down"),
        ("dlq_subject", ACTIONS),
        ("dlq_stream", ECHO),
        ("dlq_sequence", "4242"),
        ("dlq_deliveries", "5"),
        ("dlq_consumer", ECHO_ACTIONS),
    ] {
        letter.insert(name, value);
    }
    env.publish(DLQ_ACME, letter, &body).await.sequence
}

#[tokio::test(flavor = "multi_thread")]
async fn redriving_twice_processes_each_letter_once() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let ping_id = new_id();
    let ping_letter = hand_written_letter(&env, &ping_id, &inbox).await;
    let fail = env
        .send_action("echo.fail", json!({"message": "still no"}), &inbox)
        .await;
    let (_, first_error) = next_json(&mut results).await;
    assert_error(&first_error, "handler_error");
    env.dead_letters(DLQ_ACME, 2).await;
    let fail_letter = ls(&env, "--reason handler_error").await[0].sequence;

    let args = format!("dlq redrive {ping_letter} {fail_letter}");
    let redriven = json_lines(&cli(&env.url(), &args).await);
    assert_eq!(redriven.len(), 2, "{redriven:?}");
    let new_id = |line: &Value| line["action_id"].as_str().expect("action_id").to_owned();
    let (ping_new, fail_new) = (new_id(&redriven[0]), new_id(&redriven[1]));
    assert_eq!(redriven[0]["redriven_from"], format!("DLQ:{ping_letter}"));
    assert_eq!(redriven[0]["subject"], ACTIONS);
    assert_ne!(
        ping_new, ping_id,
        "a new id: the result of the original is not repeated"
    );

    // The redriven ping is stored with its new id and where it came from, no dlq_* headers.
    let stored = env
        .stored_action(redriven[0]["sequence"].as_u64().expect("sequence"))
        .await;
    let headers = Some(&stored.headers);
    assert_eq!(header(headers, "Nats-Msg-Id"), Some(ping_new.as_str()));
    assert_eq!(
        header(headers, "redriven_from"),
        Some(format!("DLQ:{ping_letter}").as_str())
    );
    assert_eq!(header(headers, "dlq_reason"), None);
    let body: Value = serde_json::from_slice(&stored.payload).expect("stored body");
    assert_eq!(body["action_id"], ping_new.as_str(), "{body}");

    // Both were deleted from the DLQ once sent, so a second redrive finds nothing to send.
    let again = succeeded(&cli(&env.url(), &args).await);
    assert_eq!(again.matches("not in the DLQ").count(), 2, "{again}");

    // Exactly one result each: the ping now succeeds, the fail fails (and is dead-lettered
    // afresh, naming the letter it was redriven from).
    let mut by_request = std::collections::HashMap::new();
    for _ in 0..2 {
        let (_, result) = next_json(&mut results).await;
        by_request.insert(
            result["correlation_id"].as_str().unwrap_or("?").to_owned(),
            result,
        );
    }
    assert_success(&by_request[&ping_new], &ping_new, &json!({"back": "again"}));
    assert_error(&by_request[&fail_new], "handler_error");
    expect_nothing(&mut results, "a second result of a letter redriven twice").await;

    let left = ls(&env, "").await;
    assert_eq!(left.len(), 1, "only the new dead letter of the fail");
    let letter = show(&env, &left[0].sequence.to_string()).await;
    assert_eq!(
        letter["headers"]["redriven_from"],
        format!("DLQ:{fail_letter}"),
        "{letter}"
    );
    assert_eq!(letter["body"]["action_id"], fail_new.as_str(), "{letter}");
    assert_ne!(left[0].sequence, fail.ack.sequence);
}

#[tokio::test(flavor = "multi_thread")]
async fn redrive_all_sends_the_chosen_letters_and_skips_rpc_requests() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let ping_id = new_id();
    hand_written_letter(&env, &ping_id, &inbox).await;
    // A failed rpc request is dead-lettered too, but nobody waits for its reply any more.
    let body = action_body(&new_id(), "echo.fail", json!({}));
    env.request(RPC, headers(&[("action_type", "echo.fail")]), &body)
        .await;
    env.dead_letters(DLQ_ACME, 2).await;

    let output = cli(&env.url(), "dlq redrive --all --reason unavailable").await;
    let redriven = json_lines(&output);
    assert_eq!(redriven.len(), 1, "{redriven:?}");
    let (_, result) = next_json(&mut results).await;
    let new_id = redriven[0]["action_id"].as_str().expect("action_id");
    assert_success(&result, new_id, &json!({"back": "again"}));

    let rpc = cli(&env.url(), "dlq redrive --all --tenant acme").await;
    assert_eq!(rpc.status.code(), Some(1), "the rpc letter is not redriven");
    assert!(String::from_utf8_lossy(&rpc.stdout).contains("rpc request"));
    assert_eq!(ls(&env, "").await.len(), 1, "and it stays in the DLQ");
    expect_nothing(&mut results, "a result of an rpc dead letter").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_ls_shows_consumer_counts() {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let sent = env.send_action("echo.ping", json!({}), &inbox).await;
    next_json(&mut results).await;
    env.wait_idle(sent.ack.sequence).await;

    let output = succeeded(&cli(&env.url(), "streams ls").await);
    let row = |name: &str| -> Vec<String> {
        output
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{output}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let echo = row(ECHO);
    assert_eq!(echo[1], "0", "handled, so out of the work queue:\n{output}");
    let history = row(ECHO_HISTORY);
    assert_eq!(history[1], "1", "and kept in the history:\n{output}");
    let consumer = row(ECHO_ACTIONS);
    assert_eq!(
        consumer[1..],
        ["0", "/", "0", "/", "0"],
        "pending / ack pending / redelivered:\n{output}"
    );
}
