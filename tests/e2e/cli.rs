//! The `domain-actions` command against a real server and an in-process echo worker.

use std::process::Output;

use serde_json::{Value, json};
use shared::{Action, PublishError, Publisher, TenantId};

use crate::harness::*;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout as JSON, after checking the command exited with `code`.
fn printed_json(output: &Output, code: i32) -> Value {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {}", stdout(output)))
}

/// Runs `args` and expects exit 0 and the success result of `echo.ping` with `data` printed.
async fn prints_ping_result(env: &Env, args: &str, data: Value) {
    let result = printed_json(&cli(&env.url(), args).await, 0);
    assert_eq!(result["action_type"], "echo.ping.result", "{result}");
    assert_eq!(result["data"]["status"], "success", "{result}");
    assert_eq!(result["data"]["result"], data, "{result}");
}

/// Runs `args`, expects it to fail with `needle` on stderr, and returns its exit code.
async fn fails_saying(env: &Env, args: &str, needle: &str) -> Option<i32> {
    let output = cli(&env.url(), args).await;
    assert!(!output.status.success(), "{args}: exited {}", output.status);
    assert!(
        stderr(&output).contains(needle),
        "{args}: stderr: {}",
        stderr(&output)
    );
    output.status.code()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_prints_the_result() {
    let env = Env::start().await;
    prints_ping_result(
        &env,
        r#"request echo.ping --tenant acme --data {"x":1}"#,
        json!({"x": 1}),
    )
    .await;
    env.assert_stored(ACTIONS, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_waits_for_the_result() {
    let env = Env::start().await;
    prints_ping_result(
        &env,
        r#"publish echo.ping --tenant acme --data {"durable":true}"#,
        json!({"durable": true}),
    )
    .await;
    env.assert_stored(ACTIONS, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_failure_exits_1_with_the_code() {
    let env = Env::start().await;
    let output = cli(&env.url(), "request echo.fail --tenant acme").await;
    assert_error(&printed_json(&output, 1), "handler_error");
    assert!(
        stderr(&output).contains("handler_error"),
        "stderr: {}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_2() {
    let env = Env::start().await;
    let bad_tenant = fails_saying(&env, "request echo.ping --tenant a.b", "a.b").await;
    assert_eq!(bad_tenant, Some(2));
    let bad_data = fails_saying(&env, "request echo.ping --tenant acme --data {nope", "JSON").await;
    assert_eq!(bad_data, Some(2));
    env.assert_stored(ACTIONS, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_no_wait_prints_where_it_is_stored() {
    let env = Env::start().await;
    let stored = printed_json(
        &cli(&env.url(), "publish echo.ping --tenant acme --no-wait").await,
        0,
    );
    assert_eq!(stored["stream"], ECHO, "{stored}");
    assert_eq!(stored["duplicate"], false, "{stored}");
    let sequence = stored["sequence"].as_u64().expect("sequence");
    let action_id = stored["action_id"].as_str().expect("action_id");
    let stream = env.js.get_stream(ECHO).await.expect("ECHO stream");
    let message = stream
        .get_raw_message(sequence)
        .await
        .expect("the stored action");
    assert_eq!(message.subject.as_str(), ACTIONS);
    let body: Value = serde_json::from_slice(&message.payload).expect("stored body");
    assert_eq!(body["action_id"], action_id, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_body_is_refused_with_payload_too_large() {
    let env = Env::start().await;
    // A JSON string of about 1.1 MB: more than the server's 1 MiB max payload.
    let data = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(data.path(), format!("\"{}\"", "x".repeat(1_100_000))).expect("write data");
    for command in ["publish", "request"] {
        let args = format!(
            "{command} echo.ping --tenant acme --data @{}",
            data.path().display()
        );
        fails_saying(&env, &args, "payload_too_large").await;
    }
    env.assert_stored(ACTIONS, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_ls_lists_the_streams() {
    let env = Env::start().await;
    let output = cli(&env.url(), "streams ls").await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let listed: Vec<String> = stdout(&output)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    for stream in [ECHO, "DLQ"] {
        assert!(
            listed.iter().any(|s| s == stream),
            "{stream} not listed:\n{}",
            stdout(&output)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publisher_refuses_an_oversize_action() {
    let env = Env::start().await;
    let tenant = TenantId::new("acme").expect("tenant");
    let action = Action::new(tenant, echo::actions::Ping(json!("x".repeat(1_100_000))));
    let refused = Publisher::new(env.client.clone()).enqueue(&action).await;
    match refused {
        Err(PublishError::PayloadTooLarge { size, max }) => {
            assert_eq!(max, env.client.max_payload());
            assert!(size > max, "{size} > {max}");
        }
        other => panic!("expected payload_too_large, got {other:?}"),
    }
    env.assert_stored(ACTIONS, 0).await;
}
